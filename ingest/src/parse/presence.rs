//! Presence webhooks: what the user's phone says they are doing (typing, recording a voice note,
//! stopped typing, online), for the typing-aware end of turn (`lull_core::turn`).
//!
//! Two gateways built on WhatsApp Web forward it:
//!
//! - **Evolution API v2** (Baileys): event `presence.update`, its usual envelope (`instance`,
//!   `date_time`...) around Baileys' own event unchanged: `data` is
//!   `{"id": <chat JID>, "presences": {<participant JID>: {"lastKnownPresence": "composing",
//!   "lastSeen"?: <unix s>}}}`. Values: `composing`, `recording`, `paused`, `available`,
//!   `unavailable`. `date_time` is Evolution's send time (an ISO string that carries the server's
//!   local time with a `Z`, so it is only used to order events, never as an instant).
//! - **WAHA**: event `presence.update`, `session` names the account, `timestamp` (ms) the event,
//!   and `payload` is `{"id": <chat id>, "presences": [{"participant", "lastKnownPresence",
//!   "lastSeen"}]}` with values `typing`, `recording`, `paused`, `online`, `offline`.
//!
//! A chat id ending in `@g.us` is a group: the conversation is the group, each entry one
//! participant. A one-to-one chat addressed by LID (`@lid`) carries no phone alternative in a
//! presence event (messages do, in `remoteJidAlt`), so [`PresenceItem::lid`] tells the caller it
//! may not match the conversation key the messages use (the router maps it with what
//! `crate::lids` learned from messages). Unknown presence values are skipped and
//! counted, never an error; a body that is not a presence event is not this parser's business.

use serde::Deserialize;
use serde_json::Value;

use lull_core::turn::PresenceKind;
use lull_core::Millis;

use super::{evolution::normalise_event, non_empty, ParseError};

/// At most this many presence entries are read from one body (a group's presence names a few
/// participants; nothing legitimate names hundreds).
pub const MAX_PRESENCES: usize = 64;

/// One participant's presence in one chat, before the tenant is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceItem {
    /// Evolution instance or WAHA session: must belong to the authenticated tenant.
    pub account: String,
    /// The user key: the chat id (for groups, the group id), as the gateway wrote it.
    pub user: String,
    /// The group id, for group chats.
    pub group: Option<String>,
    /// Who the presence is about (the user in a one-to-one chat, a member in a group).
    pub participant: String,
    pub kind: PresenceKind,
    /// The gateway's own time for the event, to order events (never an instant for the rule).
    pub sent_at: Option<Millis>,
    /// The chat is addressed by LID: it may not match the phone-keyed conversation of messages.
    pub lid: bool,
}

/// A parsed presence body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceBody {
    pub items: Vec<PresenceItem>,
    /// Entries skipped, by metric `reason` label (`unknown_presence`, `too_many_presences`).
    pub skipped: Vec<&'static str>,
}

#[derive(Deserialize)]
struct EvolutionBody {
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    instance: Option<String>,
    #[serde(default)]
    date_time: Option<String>,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(default)]
    participant: Option<String>,
    #[serde(default)]
    last_known_presence: Option<String>,
}

#[derive(Deserialize)]
struct Chat<P> {
    id: String,
    presences: P,
}

/// True when `event` (or the per-event URL suffix) names a presence update.
pub fn is_presence_event(event: &str) -> bool {
    normalise_event(event) == "presence.update"
}

/// Parses an Evolution `presence.update` body; `path_event` is the per-event URL suffix.
pub fn parse_evolution(body: &[u8], path_event: Option<&str>) -> Result<PresenceBody, ParseError> {
    let b: EvolutionBody =
        serde_json::from_slice(body).map_err(|e| ParseError::json("evolution", &e))?;
    let instance = non_empty(b.instance.as_deref())
        .ok_or_else(|| ParseError::new("evolution: missing instance"))?;
    let event = b.event.as_deref().or(path_event).unwrap_or_default();
    if !is_presence_event(event) {
        return Err(ParseError::new("evolution: not a presence.update event"));
    }
    let chat: Chat<serde_json::Map<String, Value>> = serde_json::from_value(b.data)
        .map_err(|e| ParseError::json("evolution presence.update data", &e))?;
    let sent_at = b
        .date_time
        .as_deref()
        .and_then(|s| Millis::parse_rfc3339(s).ok());
    let entries = chat.presences.into_iter().map(|(jid, v)| {
        let e: Entry = serde_json::from_value(v).unwrap_or(Entry {
            participant: None,
            last_known_presence: None,
        });
        (jid, e.last_known_presence)
    });
    collect(&instance, &chat.id, entries, sent_at)
}

#[derive(Deserialize)]
struct WahaBody {
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    timestamp: Option<u64>,
    #[serde(default)]
    payload: Value,
}

/// Parses a WAHA `presence.update` body.
pub fn parse_waha(body: &[u8]) -> Result<PresenceBody, ParseError> {
    let b: WahaBody = serde_json::from_slice(body).map_err(|e| ParseError::json("waha", &e))?;
    let session =
        non_empty(b.session.as_deref()).ok_or_else(|| ParseError::new("waha: missing session"))?;
    if !b.event.as_deref().is_some_and(is_presence_event) {
        return Err(ParseError::new("waha: not a presence.update event"));
    }
    let chat: Chat<Vec<Value>> = serde_json::from_value(b.payload)
        .map_err(|e| ParseError::json("waha presence.update payload", &e))?;
    let entries = chat.presences.into_iter().map(|v| {
        let e: Entry = serde_json::from_value(v).unwrap_or(Entry {
            participant: None,
            last_known_presence: None,
        });
        (e.participant.unwrap_or_default(), e.last_known_presence)
    });
    collect(&session, &chat.id, entries, b.timestamp.map(Millis))
}

fn collect(
    account: &str,
    chat_id: &str,
    entries: impl Iterator<Item = (String, Option<String>)>,
    sent_at: Option<Millis>,
) -> Result<PresenceBody, ParseError> {
    let chat = chat_id.trim();
    if chat.is_empty() {
        return Err(ParseError::new("presence.update: empty chat id"));
    }
    let group = chat.ends_with("@g.us").then(|| chat.to_string());
    let mut out = PresenceBody::default();
    for (i, (participant, value)) in entries.enumerate() {
        if i >= MAX_PRESENCES {
            out.skipped.push("too_many_presences");
            break;
        }
        let Some(kind) = value.as_deref().and_then(PresenceKind::parse) else {
            out.skipped.push("unknown_presence");
            continue;
        };
        let participant = match participant.trim() {
            "" => chat.to_string(),
            p => p.to_string(),
        };
        out.items.push(PresenceItem {
            account: account.to_string(),
            user: chat.to_string(),
            group: group.clone(),
            lid: group.is_none() && chat.ends_with("@lid"),
            participant,
            kind,
            sent_at,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_event_path_suffix_names_the_event() {
        let body = br#"{"instance":"i","data":{"id":"1@s.whatsapp.net","presences":{"1@s.whatsapp.net":{"lastKnownPresence":"composing"}}}}"#;
        let p = parse_evolution(body, Some("presence-update")).unwrap();
        assert_eq!(p.items[0].kind, PresenceKind::Composing);
        assert!(parse_evolution(body, None).is_err());
    }

    #[test]
    fn bounded_and_unknown_values_are_skipped_not_errors() {
        let mut presences = serde_json::Map::new();
        for i in 0..(MAX_PRESENCES + 10) {
            presences.insert(
                format!("{i}@s.whatsapp.net"),
                serde_json::json!({"lastKnownPresence": if i == 0 { "dancing" } else { "available" }}),
            );
        }
        let body = serde_json::json!({"event": "presence.update", "instance": "i",
            "data": {"id": "120363041967849074@g.us", "presences": presences}});
        let p = parse_evolution(body.to_string().as_bytes(), None).unwrap();
        assert_eq!(p.items.len(), MAX_PRESENCES - 1);
        assert!(p.skipped.contains(&"unknown_presence"));
        assert!(p.skipped.contains(&"too_many_presences"));
    }

    #[test]
    fn bad_bodies_get_a_reason() {
        let e = parse_evolution(br#"{"event":"presence.update","data":{}}"#, None).unwrap_err();
        assert!(e.to_string().contains("instance"), "{e}");
        let e = parse_evolution(
            br#"{"event":"presence.update","instance":"i","data":{"presences":{}}}"#,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("id"), "{e}");
        let e = parse_evolution(
            br#"{"event":"presence.update","instance":"i","data":{"id":" ","presences":{}}}"#,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("empty chat id"), "{e}");
        let e = parse_waha(br#"{"event":"message","session":"s","payload":{}}"#).unwrap_err();
        assert!(e.to_string().contains("not a presence"), "{e}");
        let e = parse_waha(b"[").unwrap_err();
        assert!(e.to_string().contains("JSON"), "{e}");
    }
}
