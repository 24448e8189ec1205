//! The buffering policy of a tenant: when a window is due.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::turn::{QuietRule, TurnPolicy, TypingRule};

/// A duration in whole ms as the turn rule holds it (saturating; policies stay within 7 days).
pub(crate) fn ms32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// When a window becomes due, and whether buffering is on at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// The window is due when its last message is this old (default 8 s).
    #[serde(with = "humantime_serde_ms")]
    pub quiet: Duration,
    /// The window is due when its first message is this old, however chatty the user (default 30 s).
    #[serde(with = "humantime_serde_ms")]
    pub max_wait: Duration,
    /// A window holding this many messages is due at once (default 50).
    pub max_messages: u32,
    /// A window whose stored messages take this many bytes is due at once (default 64 KiB); a
    /// message that would overflow it starts the next window, and a single larger message is a
    /// batch of its own.
    pub max_bytes: u64,
    /// False for passthrough: each message is due at once, through the same path.
    pub buffering: bool,
    /// `quiet = "adaptive"`: each conversation's quiet period follows its user's own gaps,
    /// within these bounds; `quiet` is the prior until the user has written a few turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveQuiet>,
    /// Presence events (Evolution/WAHA `presence.update`) shape the end of a turn; `None`: they
    /// are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<Typing>,
    /// How long a human operator's message (or `lull conversations pause` without `--for`)
    /// pauses the conversation's hand-offs (default 30 min).
    #[serde(default = "default_pause", with = "humantime_serde_ms")]
    pub pause: Duration,
    /// What the next batch does when the user wrote again before the bot answered a batch
    /// (`on_newer`; `docs/batch.md`, "The reply guard").
    #[serde(default, skip_serializing_if = "OnNewer::is_append")]
    pub on_newer: OnNewer,
}

/// `on_newer`: what happens to a batch the user wrote again after, once the bot said it
/// superseded it (its reply guard answered `superseded` while its hand-off was open, or the
/// hand-off's answer declared it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNewer {
    /// Today's behaviour: the next batch carries only its own messages.
    #[default]
    Append,
    /// The next batch repeats the superseded batch's messages as `context` and names it in
    /// `supersedes`, so the AI answers the whole thought once.
    Supersede,
}

impl OnNewer {
    fn is_append(&self) -> bool {
        *self == OnNewer::Append
    }

    /// The name as written in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            OnNewer::Append => "append",
            OnNewer::Supersede => "supersede",
        }
    }
}

impl std::str::FromStr for OnNewer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "append" => Ok(OnNewer::Append),
            "supersede" => Ok(OnNewer::Supersede),
            _ => Err(format!("{s:?} is not append or supersede")),
        }
    }
}

/// The bounds of an adaptive quiet period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdaptiveQuiet {
    #[serde(with = "humantime_serde_ms")]
    pub min: Duration,
    #[serde(with = "humantime_serde_ms")]
    pub max: Duration,
}

/// How presence events shape the end of a turn (see `turn::TypingRule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    /// Once presence flows for a conversation, the quiet period of a fixed-quiet tenant: a
    /// message not followed by `composing` within it ends the turn.
    #[serde(with = "humantime_serde_ms")]
    pub grace: Duration,
    /// The longest a `composing`/`recording` holds the window without a newer event.
    #[serde(with = "humantime_serde_ms")]
    pub hold: Duration,
    /// How long a `paused`/`available` after the last message (the user stopped typing, most
    /// often mid-message, and usually goes on within seconds) holds the window.
    #[serde(default = "default_stop_grace", with = "humantime_serde_ms")]
    pub stop_grace: Duration,
}

/// The default stop grace: 6 s. On the workload of `lull-bench turns` (BENCHMARKS.md section 7)
/// it keeps 92% of the turns a 1.5 s grace split at a mid-message pause, at no cost in median
/// silence; it costs silence only when a user abandons a draft.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(6);

fn default_stop_grace() -> Duration {
    DEFAULT_STOP_GRACE
}

impl Default for Typing {
    fn default() -> Self {
        Typing {
            grace: Duration::from_millis(1_500),
            hold: Duration::from_secs(12),
            stop_grace: DEFAULT_STOP_GRACE,
        }
    }
}

fn default_pause() -> Duration {
    DEFAULT_PAUSE
}

/// The default operator pause: 30 minutes.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(30 * 60);

/// The longest operator pause: 7 days.
pub const MAX_PAUSE: Duration = Duration::from_secs(7 * 24 * 3600);

impl Default for Policy {
    fn default() -> Self {
        Policy {
            quiet: Duration::from_secs(8),
            max_wait: Duration::from_secs(30),
            max_messages: 50,
            max_bytes: 64 * 1024,
            buffering: true,
            adaptive: None,
            typing: None,
            pause: DEFAULT_PAUSE,
            on_newer: OnNewer::Append,
        }
    }
}

/// A policy value that makes no sense; the message names the setting and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("quiet period must be greater than zero (got {0:?})")]
    ZeroQuiet(Duration),
    #[error("max wait ({max_wait:?}) must not be shorter than the quiet period ({quiet:?})")]
    MaxWaitBelowQuiet { quiet: Duration, max_wait: Duration },
    #[error("max messages must be at least 1 (got {0})")]
    ZeroMaxMessages(u32),
    #[error("max bytes must be between 1 KiB and {max} (got {got})", max = MAX_WINDOW_BYTES)]
    MaxBytesOutOfRange { got: u64 },
    #[error("{setting} of {value:?} is longer than the 7-day limit")]
    TooLong {
        setting: &'static str,
        value: Duration,
    },
    #[error("pause must be greater than zero")]
    ZeroPause,
    #[error(transparent)]
    Turn(#[from] crate::turn::TurnPolicyError),
}

/// The largest `max_bytes` allowed: a window must fit in one DynamoDB item (400 KB) with room for
/// a pending batch beside it.
pub const MAX_WINDOW_BYTES: u64 = 160 * 1024;

impl Policy {
    /// Checks the policy, naming the first bad value.
    pub fn validate(&self) -> Result<(), PolicyError> {
        const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
        if self.quiet.is_zero() {
            return Err(PolicyError::ZeroQuiet(self.quiet));
        }
        if self.max_wait < self.quiet {
            return Err(PolicyError::MaxWaitBelowQuiet {
                quiet: self.quiet,
                max_wait: self.max_wait,
            });
        }
        if self.max_wait > WEEK {
            return Err(PolicyError::TooLong {
                setting: "max wait",
                value: self.max_wait,
            });
        }
        if self.max_messages == 0 {
            return Err(PolicyError::ZeroMaxMessages(self.max_messages));
        }
        if !(1024..=MAX_WINDOW_BYTES).contains(&self.max_bytes) {
            return Err(PolicyError::MaxBytesOutOfRange {
                got: self.max_bytes,
            });
        }
        if self.pause.is_zero() {
            return Err(PolicyError::ZeroPause);
        }
        if self.pause > MAX_PAUSE {
            return Err(PolicyError::TooLong {
                setting: "pause",
                value: self.pause,
            });
        }
        self.turn().validate()?;
        Ok(())
    }

    /// The end-of-turn rule of this policy (`turn::due`'s policy).
    pub fn turn(&self) -> TurnPolicy {
        let quiet = match self.adaptive {
            None => QuietRule::Fixed {
                ms: ms32(self.quiet),
            },
            Some(a) => QuietRule::Adaptive {
                min_ms: ms32(a.min),
                max_ms: ms32(a.max),
                prior_ms: ms32(self.quiet.clamp(a.min, a.max.max(a.min))),
            },
        };
        TurnPolicy {
            quiet,
            max_wait_ms: ms32(self.max_wait),
            typing: self.typing.map(|t| TypingRule {
                grace_ms: ms32(t.grace),
                hold_ms: ms32(t.hold),
                stop_grace_ms: Some(ms32(t.stop_grace)),
            }),
        }
    }

    /// A validated policy with the given quiet period and max wait and default caps.
    pub fn with_times(quiet: Duration, max_wait: Duration) -> Result<Policy, PolicyError> {
        let p = Policy {
            quiet,
            max_wait,
            ..Policy::default()
        };
        p.validate().map(|()| p)
    }
}

/// Serialises durations as humantime strings (`8s`, `500ms`) and reads them back.
mod humantime_serde_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_nonsense_and_names_the_value() {
        assert!(Policy::default().validate().is_ok());
        let e = Policy::with_times(Duration::ZERO, Duration::from_secs(30)).unwrap_err();
        assert!(e.to_string().contains("quiet period"), "{e}");
        let e = Policy::with_times(Duration::from_secs(8), Duration::from_secs(5)).unwrap_err();
        assert!(
            e.to_string().contains("5s") && e.to_string().contains("8s"),
            "{e}"
        );
        let p = Policy {
            max_messages: 0,
            ..Policy::default()
        };
        assert!(p
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max messages"));
        let p = Policy {
            max_bytes: 10,
            ..Policy::default()
        };
        assert!(p.validate().unwrap_err().to_string().contains("got 10"));
    }

    #[test]
    fn adaptive_and_typing_settings_are_checked_and_map_onto_the_turn_rule() {
        let p = Policy {
            adaptive: Some(AdaptiveQuiet {
                min: Duration::from_secs(1),
                max: Duration::from_secs(10),
            }),
            typing: Some(Typing::default()),
            ..Policy::default()
        };
        assert!(p.validate().is_ok());
        let t = p.turn();
        assert_eq!(
            t.quiet,
            QuietRule::Adaptive {
                min_ms: 1_000,
                max_ms: 10_000,
                prior_ms: 8_000
            }
        );
        assert_eq!(t.typing.unwrap().grace_ms, 1_500);
        let bad = Policy {
            adaptive: Some(AdaptiveQuiet {
                min: Duration::from_secs(5),
                max: Duration::from_secs(2),
            }),
            ..Policy::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("min"));
        let bad = Policy {
            typing: Some(Typing {
                grace: Duration::from_secs(2),
                hold: Duration::from_secs(60),
                stop_grace: DEFAULT_STOP_GRACE,
            }),
            ..Policy::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("typing hold"));
        let bad = Policy {
            pause: Duration::ZERO,
            ..Policy::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("pause"));
        // A policy stored before these settings existed reads back with them off.
        let old: Policy = serde_json::from_str(
            r#"{"quiet":"8s","max_wait":"30s","max_messages":50,"max_bytes":65536,"buffering":true}"#,
        )
        .unwrap();
        assert_eq!(old, Policy::default());
    }

    #[test]
    fn serialises_durations_readably() {
        let json = serde_json::to_value(Policy::default()).unwrap();
        assert_eq!(json["quiet"], "8s");
        assert_eq!(json["max_wait"], "30s");
        let back: Policy = serde_json::from_value(json).unwrap();
        assert_eq!(back, Policy::default());
    }
}
