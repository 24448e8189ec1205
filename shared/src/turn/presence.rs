//! What the user's phone says they are doing: the presence state of a conversation.
//!
//! Gateways built on WhatsApp Web (Evolution API over Baileys, WAHA) forward the chat presence
//! the user's app publishes: `composing` (typing), `recording` (a voice note), `paused` (stopped
//! typing), `available`/`unavailable` (online or not). lull keeps only the latest one per
//! conversation, with the time lull received it.
//!
//! Presence is advisory and unreliable: events get lost, arrive late and arrive out of order. So
//! the state only ever *delays* a hand-off within bounds (a `composing` holds the window for at
//! most the typing hold, a `paused` for the typing grace, and never past max wait), and an event
//! older than the stored one, by the gateway's own timestamp when it sends one, is dropped
//! instead of replacing it.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// One presence value, as the gateways name it (WAHA's `typing`/`online`/`offline` map onto
/// `composing`/`available`/`unavailable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceKind {
    Composing,
    Recording,
    Paused,
    Available,
    Unavailable,
}

impl PresenceKind {
    /// True while the user is producing a message (typing or recording a voice note).
    pub fn is_producing(self) -> bool {
        matches!(self, PresenceKind::Composing | PresenceKind::Recording)
    }

    /// Reads a gateway's presence name; `None` for a name lull does not know.
    pub fn parse(s: &str) -> Option<PresenceKind> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "composing" | "typing" => PresenceKind::Composing,
            "recording" | "recording_audio" => PresenceKind::Recording,
            "paused" => PresenceKind::Paused,
            "available" | "online" => PresenceKind::Available,
            "unavailable" | "offline" => PresenceKind::Unavailable,
            _ => return None,
        })
    }

    /// The snake_case name, as in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceKind::Composing => "composing",
            PresenceKind::Recording => "recording",
            PresenceKind::Paused => "paused",
            PresenceKind::Available => "available",
            PresenceKind::Unavailable => "unavailable",
        }
    }
}

/// The latest presence of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub kind: PresenceKind,
    /// lull's receive time: the only time the end-of-turn rule reads.
    pub at: Millis,
    /// The gateway's own time for the event, when it sends one: used only to order events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Millis>,
}

/// What applying an incoming presence did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresenceUpdate {
    /// The incoming event is now the conversation's presence.
    Replaced,
    /// Same kind as stored and no later by the rule's clock: nothing to write.
    Unchanged,
    /// Older than the stored event by the gateway's clock: dropped (counted by the caller).
    OutOfOrder,
}

impl Presence {
    /// Applies `incoming` to the stored presence, keeping whichever is newer: by the gateway's
    /// timestamps when both have one, else by arrival (receive order).
    pub fn apply(stored: &mut Option<Presence>, incoming: Presence) -> PresenceUpdate {
        if let Some(cur) = stored {
            if let (Some(a), Some(b)) = (cur.sent_at, incoming.sent_at) {
                if b < a {
                    return PresenceUpdate::OutOfOrder;
                }
            }
            // A repeated `composing` refreshes the hold, so only identical kind at a time no
            // later than stored is a no-op.
            if cur.kind == incoming.kind && incoming.at <= cur.at {
                return PresenceUpdate::Unchanged;
            }
        }
        *stored = Some(incoming);
        PresenceUpdate::Replaced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kind: PresenceKind, at: u64, sent: Option<u64>) -> Presence {
        Presence {
            kind,
            at: Millis(at),
            sent_at: sent.map(Millis),
        }
    }

    #[test]
    fn parses_both_gateways_vocabularies() {
        assert_eq!(
            PresenceKind::parse("composing"),
            Some(PresenceKind::Composing)
        );
        assert_eq!(PresenceKind::parse("typing"), Some(PresenceKind::Composing));
        assert_eq!(
            PresenceKind::parse(" RECORDING "),
            Some(PresenceKind::Recording)
        );
        assert_eq!(PresenceKind::parse("online"), Some(PresenceKind::Available));
        assert_eq!(
            PresenceKind::parse("offline"),
            Some(PresenceKind::Unavailable)
        );
        assert_eq!(PresenceKind::parse("paused"), Some(PresenceKind::Paused));
        assert_eq!(PresenceKind::parse("dancing"), None);
        for k in [
            PresenceKind::Composing,
            PresenceKind::Recording,
            PresenceKind::Paused,
            PresenceKind::Available,
            PresenceKind::Unavailable,
        ] {
            assert_eq!(PresenceKind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn newer_replaces_older_is_dropped_by_gateway_time() {
        let mut s = None;
        assert_eq!(
            Presence::apply(&mut s, p(PresenceKind::Paused, 2_000, Some(1_900))),
            PresenceUpdate::Replaced
        );
        // The composing that preceded it arrives late: older by the gateway's clock, dropped.
        assert_eq!(
            Presence::apply(&mut s, p(PresenceKind::Composing, 2_100, Some(1_500))),
            PresenceUpdate::OutOfOrder
        );
        assert_eq!(s.unwrap().kind, PresenceKind::Paused);
        assert_eq!(
            Presence::apply(&mut s, p(PresenceKind::Composing, 3_000, Some(2_900))),
            PresenceUpdate::Replaced
        );
        assert_eq!(s.unwrap().at, Millis(3_000));
    }

    #[test]
    fn without_gateway_time_arrival_order_wins() {
        let mut s = Some(p(PresenceKind::Paused, 2_000, None));
        assert_eq!(
            Presence::apply(&mut s, p(PresenceKind::Composing, 2_100, Some(1_500))),
            PresenceUpdate::Replaced
        );
        assert_eq!(s.unwrap().kind, PresenceKind::Composing);
    }

    #[test]
    fn repeated_composing_refreshes_but_a_duplicate_is_a_no_op() {
        let mut s = Some(p(PresenceKind::Composing, 2_000, None));
        assert_eq!(
            Presence::apply(&mut s, p(PresenceKind::Composing, 2_000, None)),
            PresenceUpdate::Unchanged
        );
        assert_eq!(
            Presence::apply(&mut s, p(PresenceKind::Composing, 5_000, None)),
            PresenceUpdate::Replaced
        );
        assert_eq!(s.unwrap().at, Millis(5_000));
    }
}
