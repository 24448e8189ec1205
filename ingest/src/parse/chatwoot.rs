//! Chatwoot webhook events (account or inbox webhooks), read for human handover only: what a
//! person in the help desk did to a conversation, never a message to buffer.
//!
//! Shapes, from Chatwoot's own source (`app/listeners/webhook_listener.rb`: each payload is the
//! model's `webhook_data` merged with `event`, and `changed_attributes` for conversation
//! updates as `[{attr: {previous_value, current_value}}]`, `app/listeners/base_listener.rb`):
//!
//! - `message_created`: `Message#webhook_data`: `message_type` (`incoming`, `outgoing`,
//!   `activity`, `template`), `private`, `source_id`, `sender` (the author's `webhook_data`:
//!   `type` `user`, `agent_bot`, `contact`, `captain_assistant`), `inbox.id`, and `conversation`
//!   (the conversation's `webhook_data`, whose `meta.sender` is the contact).
//! - `conversation_status_changed`, `conversation_updated`: `Conversation#webhook_data`
//!   (`Conversations::EventDataPresenter#push_data`): `inbox_id`, `status`, `meta.sender` (the
//!   contact: `phone_number`, `identifier`), `meta.assignee`, plus `changed_attributes`.
//!
//! The rule (`docs/chatwoot.md`): a person's public outgoing message typed in Chatwoot, or the
//! conversation assigned to a person, pauses; the conversation resolved, set back to `pending`
//! (where Chatwoot's agent bots work) or assigned to an agent bot, resumes. Everything else is
//! skipped with a reason: incoming and activity messages, private notes, messages by agent bots
//! or by the tenant's `bot_user_ids`, messages that already carry a `source_id` (imported from
//! the channel: the bot's own WhatsApp messages synced into Chatwoot by Evolution API), and
//! conversation changes that neither take nor hand back the conversation.

use serde::Deserialize;
use serde_json::Value;

use lull_core::Provider;

use super::ParseError;

/// What a delivery asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Pause,
    Resume,
}

/// A handover signal: `change` for the conversation of this contact in this inbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    pub inbox: u64,
    /// The contact's phone number as Chatwoot stores it (E.164, `+5511...`).
    pub phone: Option<String>,
    /// The contact's identifier (Evolution API's integration sets the WhatsApp JID).
    pub identifier: Option<String>,
    pub change: Change,
}

/// A delivery is a signal, or skipped for a reason (the `reason` label of
/// `lull_ignored_events_total{provider="chatwoot"}`).
pub type Read = Result<Signal, &'static str>;

#[derive(Deserialize)]
struct Body {
    event: Option<String>,
    message_type: Option<Value>,
    #[serde(default)]
    private: Option<bool>,
    source_id: Option<Value>,
    sender: Option<Author>,
    inbox: Option<IdOnly>,
    conversation: Option<Conversation>,
    // Conversation events carry the conversation at the top level.
    #[serde(flatten)]
    top: Conversation,
    status: Option<String>,
    changed_attributes: Option<Value>,
}

#[derive(Deserialize, Default)]
struct Conversation {
    inbox_id: Option<u64>,
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Meta {
    sender: Option<Contact>,
}

#[derive(Deserialize)]
struct Contact {
    phone_number: Option<String>,
    identifier: Option<String>,
}

#[derive(Deserialize)]
struct Author {
    id: Option<u64>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<u64>,
}

/// Reads one authenticated delivery. A body that is not a JSON object is a 400; an event this
/// route does not act on is `Ok(Err(reason))`.
pub fn parse(body: &[u8], bot_user_ids: &[u64]) -> Result<Read, ParseError> {
    let b: Body = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("chatwoot: the body is not a webhook event: {e}")))?;
    let event = b.event.as_deref().unwrap_or("");
    let (change, conversation) = match event {
        "message_created" => match message_change(&b, bot_user_ids) {
            Ok(c) => (c, b.conversation.as_ref()),
            Err(reason) => return Ok(Err(reason)),
        },
        "conversation_status_changed" | "conversation_updated" => match conversation_change(&b) {
            Some(c) => (c, Some(&b.top)),
            None => return Ok(Err("no_handover_change")),
        },
        _ => return Ok(Err("event")),
    };
    let inbox = b
        .inbox
        .as_ref()
        .and_then(|i| i.id)
        .or(conversation.and_then(|c| c.inbox_id));
    let Some(inbox) = inbox else {
        return Ok(Err("no_inbox"));
    };
    let contact = conversation
        .and_then(|c| c.meta.as_ref())
        .and_then(|m| m.sender.as_ref());
    let phone = contact.and_then(|c| non_empty(c.phone_number.as_deref()));
    let identifier = contact.and_then(|c| non_empty(c.identifier.as_deref()));
    if phone.is_none() && identifier.is_none() {
        return Ok(Err("no_contact"));
    }
    Ok(Ok(Signal {
        inbox,
        phone,
        identifier,
        change,
    }))
}

/// A message pauses when a person wrote it in Chatwoot to the customer.
fn message_change(b: &Body, bot_user_ids: &[u64]) -> Result<Change, &'static str> {
    let outgoing = match &b.message_type {
        Some(Value::String(s)) => s == "outgoing",
        // `push_event_data` numbers the enum (outgoing = 1); accepted too.
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    };
    if !outgoing {
        return Err("not_outgoing");
    }
    if b.private == Some(true) {
        return Err("private_note");
    }
    let imported = match &b.source_id {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    };
    if imported {
        return Err("from_channel");
    }
    let Some(author) = &b.sender else {
        return Err("no_person");
    };
    match author.kind.as_deref() {
        Some("user") => {}
        Some("agent_bot" | "captain_assistant") => return Err("bot_message"),
        _ => return Err("no_person"),
    }
    if author.id.is_some_and(|id| bot_user_ids.contains(&id)) {
        return Err("bot_message");
    }
    Ok(Change::Pause)
}

/// A conversation change that takes the conversation (assigned to a person) or hands it back
/// (resolved, pending, assigned to an agent bot); `None` for any other change.
fn conversation_change(b: &Body) -> Option<Change> {
    let changed = changed(b.changed_attributes.as_ref());
    let status_changed = changed.iter().any(|(k, _)| *k == "status");
    let status = b.status.as_deref();
    // `conversation_status_changed` always means the status changed, even if a Chatwoot
    // version left `changed_attributes` out.
    let status_event = b.event.as_deref() == Some("conversation_status_changed");
    if (status_changed || status_event) && matches!(status, Some("resolved" | "pending")) {
        return Some(Change::Resume);
    }
    let set = |attr: &str| changed.iter().any(|(k, now)| *k == attr && !now.is_null());
    if set("assignee_agent_bot_id") {
        return Some(Change::Resume);
    }
    if set("assignee_id") {
        return Some(Change::Pause);
    }
    None
}

/// `changed_attributes` as (attribute, current value) pairs: Chatwoot sends a list of
/// one-key objects; a plain object is read the same way.
fn changed(v: Option<&Value>) -> Vec<(&str, &Value)> {
    fn push<'a>(out: &mut Vec<(&'a str, &'a Value)>, map: &'a serde_json::Map<String, Value>) {
        for (k, c) in map.iter().take(MAX_CHANGED) {
            out.push((k.as_str(), c.get("current_value").unwrap_or(&Value::Null)));
        }
    }
    let mut out = Vec::new();
    match v {
        Some(Value::Array(items)) => {
            for item in items.iter().take(MAX_CHANGED) {
                if let Value::Object(map) = item {
                    push(&mut out, map);
                }
            }
        }
        Some(Value::Object(map)) => push(&mut out, map),
        _ => {}
    }
    out
}

/// The most changed attributes read from one delivery (Chatwoot sends a handful).
const MAX_CHANGED: usize = 64;

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The conversation keys' (user, group) lull may hold this contact under on `provider`, most
/// specific first: the identifier as it is (a JID set by Evolution API's integration; a group
/// JID names a group conversation), then the phone number in the gateway's own form. A phone
/// that is not E.164 digits gives none.
pub fn users(
    provider: Provider,
    phone: Option<&str>,
    identifier: Option<&str>,
) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    if let Some(id) = identifier {
        let group = id.ends_with("@g.us").then(|| id.to_string());
        out.push((id.to_string(), group));
    }
    if let Some(digits) = phone.and_then(e164_digits) {
        let user = match provider {
            Provider::Meta => digits.to_string(),
            Provider::Evolution => format!("{digits}@s.whatsapp.net"),
            Provider::Waha => format!("{digits}@c.us"),
            Provider::Twilio => format!("whatsapp:+{digits}"),
            Provider::Generic => format!("+{digits}"),
        };
        if !out.iter().any(|(u, _)| *u == user) {
            out.push((user, None));
        }
    }
    out
}

/// The digits of an E.164 number (`+` optional, 6 to 15 digits).
fn e164_digits(phone: &str) -> Option<&str> {
    let d = phone.trim();
    let d = d.strip_prefix('+').unwrap_or(d);
    (d.len() >= 6 && d.len() <= 15 && d.bytes().all(|b| b.is_ascii_digit())).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: serde_json::Value) -> Read {
        parse(json.to_string().as_bytes(), &[7]).unwrap()
    }

    fn message(kind: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut m = serde_json::json!({
            "event": "message_created", "message_type": "outgoing", "private": false,
            "source_id": null, "sender": {"id": 1, "name": "Ann", "type": kind},
            "inbox": {"id": 3, "name": "WhatsApp"},
            "conversation": {"inbox_id": 3, "meta": {"sender": {
                "phone_number": "+5511999990000", "identifier": null, "type": "contact"}}}
        });
        if let (Some(m), Some(e)) = (m.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        m
    }

    #[test]
    fn a_persons_public_reply_pauses_and_bots_notes_and_imports_do_not() {
        let s = read(message("user", serde_json::json!({}))).unwrap();
        assert_eq!((s.inbox, s.change), (3, Change::Pause));
        assert_eq!(s.phone.as_deref(), Some("+5511999990000"));
        let skip = |kind: &str, extra| read(message(kind, extra)).unwrap_err();
        assert_eq!(skip("agent_bot", serde_json::json!({})), "bot_message");
        assert_eq!(
            skip(
                "user",
                serde_json::json!({"sender": {"id": 7, "type": "user"}})
            ),
            "bot_message"
        );
        assert_eq!(
            skip("user", serde_json::json!({"private": true})),
            "private_note"
        );
        assert_eq!(
            skip("user", serde_json::json!({"source_id": "WAID:3EB0"})),
            "from_channel"
        );
        assert_eq!(
            skip("contact", serde_json::json!({"message_type": "incoming"})),
            "not_outgoing"
        );
    }

    #[test]
    fn resolved_pending_and_assignments_are_read_from_the_change() {
        let conv = |event: &str, status: &str, changed: serde_json::Value| {
            read(serde_json::json!({
                "event": event, "id": 9, "inbox_id": 3, "status": status,
                "meta": {"sender": {"phone_number": "+5511999990000"}},
                "changed_attributes": changed
            }))
        };
        let st = serde_json::json!([{"status": {"previous_value": "open", "current_value": "resolved"}}]);
        assert_eq!(
            conv("conversation_status_changed", "resolved", st)
                .unwrap()
                .change,
            Change::Resume
        );
        let assigned =
            serde_json::json!([{"assignee_id": {"previous_value": null, "current_value": 1}}]);
        assert_eq!(
            conv("conversation_updated", "open", assigned)
                .unwrap()
                .change,
            Change::Pause
        );
        let unassigned =
            serde_json::json!([{"assignee_id": {"previous_value": 1, "current_value": null}}]);
        assert_eq!(
            conv("conversation_updated", "open", unassigned).unwrap_err(),
            "no_handover_change"
        );
        let to_bot = serde_json::json!([{"assignee_agent_bot_id": {"previous_value": null, "current_value": 2}}]);
        assert_eq!(
            conv("conversation_updated", "open", to_bot).unwrap().change,
            Change::Resume
        );
        assert_eq!(
            conv("conversation_status_changed", "open", serde_json::json!([])).unwrap_err(),
            "no_handover_change"
        );
        assert!(parse(b"[1]", &[]).is_err());
    }

    #[test]
    fn a_contact_maps_to_each_gateways_user_form() {
        let u = |p| users(p, Some("+5511999990000"), None);
        assert_eq!(u(Provider::Meta)[0].0, "5511999990000");
        assert_eq!(u(Provider::Evolution)[0].0, "5511999990000@s.whatsapp.net");
        assert_eq!(u(Provider::Waha)[0].0, "5511999990000@c.us");
        assert_eq!(u(Provider::Twilio)[0].0, "whatsapp:+5511999990000");
        let g = users(Provider::Evolution, None, Some("1203630@g.us"));
        assert_eq!(g, [("1203630@g.us".into(), Some("1203630@g.us".into()))]);
        assert!(users(Provider::Meta, Some("call me"), None).is_empty());
    }
}
