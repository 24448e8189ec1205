//! A tenant's end-of-turn settings as an operator writes them (a `[[tenants]]` entry of
//! `lull.toml`, a tenant file): `quiet = "adaptive"` with `quiet_min`/`quiet_max`, `typing = true`
//! with `typing_grace`/`typing_hold`, and `pause`. Every shell reads them through this one
//! function, so they mean the same everywhere; a bad value names its field.

use std::time::Duration;

use crate::policy::{AdaptiveQuiet, Policy, Typing};

/// The adaptive bounds and prior when a tenant sets `quiet = "adaptive"` alone (the figures of
/// `lull-bench turns`, BENCHMARKS.md section 7).
pub const ADAPTIVE_DEFAULT: (Duration, Duration, Duration) = (
    Duration::from_millis(1_500),
    Duration::from_secs(20),
    Duration::from_secs(4),
);

/// The settings, each as written (`None`: not set).
#[derive(Clone, Copy, Debug, Default)]
pub struct TurnSettings<'a> {
    /// `"adaptive"`, or a duration (read by the caller, as before).
    pub quiet: Option<&'a str>,
    pub quiet_min: Option<&'a str>,
    pub quiet_max: Option<&'a str>,
    pub typing: Option<bool>,
    pub typing_grace: Option<&'a str>,
    pub typing_hold: Option<&'a str>,
    pub typing_stop_grace: Option<&'a str>,
    pub pause: Option<&'a str>,
    /// `append` or `supersede` (`docs/batch.md`, "The reply guard").
    pub on_newer: Option<&'a str>,
}

/// True when `quiet` asks for the adaptive quiet period.
pub fn is_adaptive(quiet: &str) -> bool {
    quiet.trim().eq_ignore_ascii_case("adaptive")
}

fn duration(field: &str, v: Option<&str>) -> Result<Option<Duration>, String> {
    v.map(|s| {
        humantime::parse_duration(s.trim())
            .map_err(|e| format!("{field} = {s:?} is not a duration (such as 1500ms or 20s): {e}"))
    })
    .transpose()
}

impl TurnSettings<'_> {
    /// `policy` with these settings applied (its quiet period, max wait and caps already set;
    /// with `quiet = "adaptive"` its quiet period becomes the prior), validated.
    pub fn apply(&self, mut policy: Policy) -> Result<Policy, String> {
        let (min, max, prior) = ADAPTIVE_DEFAULT;
        let adaptive = self.quiet.is_some_and(is_adaptive);
        let quiet_min = duration("quiet_min", self.quiet_min)?;
        let quiet_max = duration("quiet_max", self.quiet_max)?;
        if adaptive {
            policy.quiet = prior;
            policy.adaptive = Some(AdaptiveQuiet {
                min: quiet_min.unwrap_or(min),
                max: quiet_max.unwrap_or(max),
            });
        } else if quiet_min.is_some() || quiet_max.is_some() {
            return Err("quiet_min and quiet_max need quiet = \"adaptive\"".into());
        }
        let grace = duration("typing_grace", self.typing_grace)?;
        let hold = duration("typing_hold", self.typing_hold)?;
        let stop_grace = duration("typing_stop_grace", self.typing_stop_grace)?;
        match self.typing {
            Some(true) => {
                let d = Typing::default();
                policy.typing = Some(Typing {
                    grace: grace.unwrap_or(d.grace),
                    hold: hold.unwrap_or(d.hold),
                    stop_grace: stop_grace.unwrap_or(d.stop_grace),
                });
            }
            _ if grace.is_some() || hold.is_some() || stop_grace.is_some() => {
                return Err(
                    "typing_grace, typing_hold and typing_stop_grace need typing = true".into(),
                )
            }
            _ => policy.typing = None,
        }
        if let Some(p) = duration("pause", self.pause)? {
            policy.pause = p;
        }
        if let Some(v) = self.on_newer {
            policy.on_newer = v.parse().map_err(|e| format!("on_newer = {e}"))?;
        }
        policy.validate().map_err(|e| e.to_string())?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_and_typing_read_with_defaults_and_bad_values_name_their_field() {
        let p = TurnSettings {
            quiet: Some("adaptive"),
            typing: Some(true),
            pause: Some("45m"),
            ..TurnSettings::default()
        }
        .apply(Policy::default())
        .unwrap();
        assert_eq!(
            p.adaptive,
            Some(AdaptiveQuiet {
                min: Duration::from_millis(1_500),
                max: Duration::from_secs(20)
            })
        );
        assert_eq!(p.quiet, Duration::from_secs(4));
        assert_eq!(p.typing, Some(Typing::default()));
        assert_eq!(p.pause, Duration::from_secs(45 * 60));
        // Unset: exactly the policy given.
        assert_eq!(
            TurnSettings::default().apply(Policy::default()).unwrap(),
            Policy::default()
        );
        let e = TurnSettings {
            quiet: Some("adaptive"),
            quiet_min: Some("soon"),
            ..TurnSettings::default()
        }
        .apply(Policy::default())
        .unwrap_err();
        assert!(e.contains("quiet_min") && e.contains("soon"), "{e}");
        let e = TurnSettings {
            typing_grace: Some("1s"),
            ..TurnSettings::default()
        }
        .apply(Policy::default())
        .unwrap_err();
        assert!(e.contains("typing = true"), "{e}");
        let e = TurnSettings {
            quiet: Some("adaptive"),
            quiet_max: Some("2m"),
            ..TurnSettings::default()
        }
        .apply(Policy::default())
        .unwrap_err();
        assert!(e.contains("max wait"), "{e}");
    }
}
