//! WAHA webhooks (devlikeapro/waha: WhatsApp Web behind an HTTP API, engines WEBJS, NOWEB,
//! GOWS).
//!
//! One event per body, its envelope `{id, timestamp, event, session, metadata, me, payload,
//! engine, environment}` (`WAHAWebhook` in WAHA's `src/structures/webhooks.dto.ts`). The session
//! is the business side. Events read:
//!
//! - `message` (incoming messages) and `message.any` (every message, the session's own too):
//!   the payload is a `WAMessage` `{id, timestamp (unix s), from, fromMe, source, to,
//!   participant, author, body, hasMedia, media: {url, mimetype, filename}, location, vCards,
//!   replyTo: {id}, _data}`. The conversation is the chat: `from` for an incoming message, `to`
//!   for the session's own; a group (`@g.us`) is one conversation whose author is
//!   `participant` (or `author`). A tenant may subscribe to both events: the incoming message
//!   then comes twice with one id, and the second is a duplicate.
//! - `message.edited` (WAHA 2025.6.3 and later, every engine): a `WAMessage` of the edit action
//!   (its own `id`, the new `body`) plus `editedMessageId`, the original's id **without** the
//!   chat (`AAAA`, where messages carry `false_<chat>_AAAA[_<participant>]`): lull rebuilds the
//!   original's full id from the action's own (same direction, chat and participant).
//!   `message.revoked`: `{after, before, revokedMessageId}`, `after` the revoke action's
//!   `WAMessage`, `before` usually null (both per devlikeapro/waha-docs
//!   `content/docs/how-to/events/index.md`). They become kinds `edit` and `revoke`.
//! - `presence.update`: read by [`super::presence::parse_waha`].
//!
//! The session's own messages (`fromMe: true`) are never buffered: with `source: "app"` a person
//! typed it in the WhatsApp app (it pauses the conversation, as Evolution's `fromMe` from a
//! phone does); `source: "api"` (or none, before WAHA sent `source`) is the bot's own reply
//! through WAHA's API. `status@broadcast` is ignored. Every other event is acknowledged.
//!
//! `_data` (the engine's raw message, which can be large) is skipped unread: the fields above are
//! WAHA's engine-independent ones.

use serde::Deserialize;
use serde_json::value::RawValue;

use lull_core::message::{Location, Media, Sender, Target};
use lull_core::{Message, MessageKind};

use super::evolution::normalise_event;
use super::{non_empty, raw_array, raw_as, unix_secs_raw, Item, OptIn, ParseError, Parsed};

/// At most this many vCards are read from one message (WhatsApp shares a few contacts at a
/// time); the rest are skipped and the message counted as partial (`too_many_contacts`).
pub const MAX_VCARDS: usize = super::MAX_CONTACTS;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    id: String,
    #[serde(default, borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    from_me: Option<bool>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    participant: Option<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    has_media: Option<bool>,
    #[serde(default)]
    media: Option<WahaMedia>,
    #[serde(default)]
    location: Option<WahaLocation>,
    #[serde(default, borrow)]
    v_cards: Option<&'a RawValue>,
    #[serde(default)]
    reply_to: Option<ReplyTo>,
    /// `message.edited`: the original's id, without the chat.
    #[serde(default)]
    edited_message_id: Option<String>,
}

/// `message.revoked`'s payload.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Revoked<'a> {
    #[serde(default, borrow)]
    after: Option<&'a RawValue>,
    #[serde(default, borrow)]
    before: Option<&'a RawValue>,
    #[serde(default)]
    revoked_message_id: Option<String>,
}

#[derive(Deserialize)]
struct WahaMedia {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    mimetype: Option<String>,
    #[serde(default)]
    filename: Option<String>,
}

#[derive(Deserialize)]
struct WahaLocation {
    #[serde(default)]
    latitude: Option<serde_json::Value>,
    #[serde(default)]
    longitude: Option<serde_json::Value>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct ReplyTo {
    #[serde(default)]
    id: Option<String>,
}

/// What a WAHA body is, by its `event`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WahaEvent {
    /// `message` or `message.any`: read by [`parse`].
    Message,
    /// `message.edited`: read by [`parse`].
    Edited,
    /// `message.revoked`: read by [`parse`].
    Revoked,
    /// `presence.update`: read by [`super::presence::parse_waha`].
    Presence,
    /// Anything else: acknowledged.
    Other,
}

/// The event a WAHA event name is.
pub fn event_kind(event: &str) -> WahaEvent {
    match normalise_event(event).as_str() {
        "message" | "message.any" => WahaEvent::Message,
        "message.edited" => WahaEvent::Edited,
        "message.revoked" => WahaEvent::Revoked,
        "presence.update" => WahaEvent::Presence,
        _ => WahaEvent::Other,
    }
}

/// Parses a WAHA webhook body. A `presence.update` yields no items and `ignored: ["presence"]`
/// (the route reads it with `parse::presence::parse_waha`).
pub fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let env: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| ParseError::json("waha", &e))?;
    let session = non_empty(env.session.as_deref())
        .ok_or_else(|| ParseError::new("waha: missing session"))?;
    let event = env
        .event
        .as_deref()
        .ok_or_else(|| ParseError::new("waha: missing event"))?;
    let mut out = Parsed::default();
    out.add_account(&session);
    match event_kind(event) {
        WahaEvent::Presence => {
            out.ignored.push("presence");
            return Ok(out);
        }
        WahaEvent::Other => {
            out.ignored.push("event");
            return Ok(out);
        }
        WahaEvent::Message | WahaEvent::Edited | WahaEvent::Revoked => {}
    }
    let raw = env
        .payload
        .filter(|p| p.get().trim_start().starts_with('{'))
        .ok_or_else(|| ParseError::new("waha message: payload is not an object"))?;
    let kind = event_kind(event);
    let item = if kind == WahaEvent::Revoked {
        revoked(&session, raw)
    } else {
        match serde_json::from_str::<Payload<'_>>(raw.get()) {
            Ok(p) if kind == WahaEvent::Edited => edited(&session, p, &mut out.partial),
            Ok(p) => message(&session, p, &mut out.partial),
            Err(_) => Err("unreadable"),
        }
    };
    match item {
        Ok(item) => out.items.push(item),
        Err(reason) => out.ignored.push(reason),
    }
    Ok(out)
}

/// The original's full id: the action's own id (`<fromMe>_<chat>_<action id>[_<participant>]`)
/// with the action id replaced by `bare`; `bare` itself when it is already a full id or the
/// action's id has not that shape.
fn full_id(action_id: &str, bare: &str) -> String {
    if bare.contains('_') {
        return bare.to_string();
    }
    let parts: Vec<&str> = action_id.splitn(4, '_').collect();
    match parts.as_slice() {
        [dir @ ("true" | "false"), chat, _id, rest @ ..] => {
            let mut out = format!("{dir}_{chat}_{bare}");
            for r in rest {
                out.push('_');
                out.push_str(r);
            }
            out
        }
        _ => bare.to_string(),
    }
}

/// `message.edited`: the new content as kind `edit` of the original.
fn edited(
    session: &str,
    mut p: Payload<'_>,
    partial: &mut Vec<&'static str>,
) -> Result<Item, &'static str> {
    let bare = non_empty(p.edited_message_id.take().as_deref()).ok_or("no_target")?;
    let mut item = message(session, p, partial)?;
    let original = full_id(&item.message.id, &bare);
    let m = &mut item.message;
    if m.id == original {
        // WEBJS may give the action the original's id: derive one from the new content.
        m.id = format!(
            "{original}#edit:{}",
            super::content_hash(m.text.as_deref().unwrap_or(""))
        );
    }
    m.kind = MessageKind::Edit;
    m.provider_type = Some("message.edited".into());
    m.target = Some(Target {
        message_id: original,
        batch_id: None,
    });
    Ok(item)
}

/// `message.revoked`: kind `revoke` of the original, placed by the revoke action (`after`, or
/// `before` when there is no `after`).
fn revoked(session: &str, raw: &RawValue) -> Result<Item, &'static str> {
    let r: Revoked<'_> = raw_as(Some(raw)).ok_or("unreadable")?;
    let action: Payload<'_> = raw_as(r.after.or(r.before)).ok_or("no_target")?;
    let before_id = raw_as::<Payload<'_>>(r.before).and_then(|b| non_empty(Some(&b.id)));
    let mut item = message(session, action, &mut Vec::new())?;
    let original = match non_empty(r.revoked_message_id.as_deref()) {
        Some(bare) => full_id(&item.message.id, &bare),
        None => before_id.ok_or("no_target")?,
    };
    let m = &mut item.message;
    if m.id == original {
        m.id = format!("{original}#revoke");
    }
    *m = Message {
        kind: MessageKind::Revoke,
        provider_type: Some("message.revoked".into()),
        target: Some(Target {
            message_id: original,
            batch_id: None,
        }),
        ..Message::of_kind(
            std::mem::take(&mut m.id),
            MessageKind::Revoke,
            m.sender.clone(),
        )
    };
    Ok(item)
}

/// The phone number of a `@c.us` / `@s.whatsapp.net` id (without a `:device` suffix).
fn phone_of(id: &str) -> Option<String> {
    let user = id
        .strip_suffix("@c.us")
        .or_else(|| id.strip_suffix("@s.whatsapp.net"))?;
    Some(user.split(':').next().unwrap_or(user).to_string())
}

/// One message; `Err` is the reason it is skipped.
fn message(
    session: &str,
    p: Payload<'_>,
    partial: &mut Vec<&'static str>,
) -> Result<Item, &'static str> {
    if p.id.trim().is_empty() {
        return Err("no_id");
    }
    let from_me = p.from_me == Some(true);
    // The chat: who wrote to the session, or whom the session wrote to.
    let (chat_field, chat) = if from_me {
        ("to", non_empty(p.to.as_deref()))
    } else {
        ("from", non_empty(p.from.as_deref()))
    };
    let chat = chat.ok_or(if chat_field == "to" {
        "no_chat"
    } else {
        "no_sender"
    })?;
    let group = chat.ends_with("@g.us").then(|| chat.clone());
    let sender_id = match &group {
        Some(g) => non_empty(p.participant.as_deref())
            .or_else(|| non_empty(p.author.as_deref()))
            .unwrap_or_else(|| g.clone()),
        None if from_me => non_empty(p.from.as_deref()).unwrap_or_else(|| session.to_string()),
        None => chat.clone(),
    };
    let opt_in = if chat == "status@broadcast" {
        Some(OptIn::StatusBroadcast)
    } else if from_me && p.source.as_deref().map(str::trim) == Some("app") {
        Some(OptIn::Operator)
    } else if from_me {
        Some(OptIn::FromMe)
    } else {
        None
    };
    let sender = Sender {
        phone: phone_of(&sender_id),
        id: sender_id,
        name: None,
        alt_id: None,
    };
    let mut msg = Message::of_kind(p.id.trim(), MessageKind::Text, sender);
    msg.sent_at = p.timestamp.and_then(unix_secs_raw);
    msg.reply_to = p.reply_to.and_then(|r| non_empty(r.id.as_deref()));
    let body = p.body.filter(|b| !b.is_empty());
    let vcards = p
        .v_cards
        .and_then(|v| raw_array(v, MAX_VCARDS).ok())
        .map(|a| {
            if a.beyond > 0 {
                partial.push("too_many_contacts");
            }
            a.items
        })
        .unwrap_or_default();
    if let Some(loc) = p.location.as_ref().and_then(location) {
        msg.kind = MessageKind::Location;
        msg.location = Some(loc);
    } else if !vcards.is_empty() {
        msg.kind = MessageKind::Contacts;
        msg.contacts = vcards
            .iter()
            .filter_map(|v| serde_json::from_str::<String>(v.get()).ok())
            .map(|v| super::evolution::vcard_contact(None, Some(&v)))
            .collect();
    } else if p.has_media == Some(true) || p.media.is_some() {
        let m = p.media;
        let mime = m.as_ref().and_then(|m| non_empty(m.mimetype.as_deref()));
        msg.kind = media_kind(mime.as_deref());
        msg.caption = body;
        msg.media = Some(Media {
            id: None,
            url: m.as_ref().and_then(|m| non_empty(m.url.as_deref())),
            filename: m.as_ref().and_then(|m| non_empty(m.filename.as_deref())),
            voice: false,
            mime_type: mime,
        });
    } else {
        msg.text = body;
        if msg.text.is_none() {
            msg.kind = MessageKind::Other;
            msg.provider_type = Some("empty".into());
        }
    }
    Ok(Item {
        account: session.to_string(),
        user: chat,
        group,
        message: msg,
        opt_in,
    })
}

/// Image, audio, video or (anything else) document, by MIME type.
fn media_kind(mime: Option<&str>) -> MessageKind {
    match mime.and_then(|m| m.split('/').next()) {
        Some("image") => MessageKind::Image,
        Some("audio") => MessageKind::Audio,
        Some("video") => MessageKind::Video,
        _ => MessageKind::Document,
    }
}

/// WAHA sends coordinates as numbers or strings.
fn location(l: &WahaLocation) -> Option<Location> {
    let num = |v: &Option<serde_json::Value>| {
        let v = v.as_ref()?;
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|f: &f64| f.is_finite())
    };
    Some(Location {
        latitude: num(&l.latitude)?,
        longitude: num(&l.longitude)?,
        name: non_empty(l.description.as_deref()),
        address: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(event: &str, payload: serde_json::Value) -> Vec<u8> {
        serde_json::json!({"event": event, "session": "default", "payload": payload})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn own_messages_are_opt_ins_and_app_ones_pause() {
        let p = serde_json::json!({"id": "true_1@c.us_A", "from": "2@c.us", "to": "1@c.us",
            "fromMe": true, "source": "app", "body": "I'll take it from here"});
        let parsed = parse(&body("message.any", p.clone())).unwrap();
        let item = &parsed.items[0];
        assert_eq!(item.user, "1@c.us");
        assert_eq!(item.opt_in, Some(OptIn::Operator));
        let mut api = p.clone();
        api["source"] = "api".into();
        assert_eq!(
            parse(&body("message.any", api)).unwrap().items[0].opt_in,
            Some(OptIn::FromMe)
        );
        let mut none = p;
        none.as_object_mut().unwrap().remove("source");
        assert_eq!(
            parse(&body("message.any", none)).unwrap().items[0].opt_in,
            Some(OptIn::FromMe)
        );
    }

    #[test]
    fn media_location_contacts_and_groups() {
        let p = serde_json::json!({"id": "false_120@g.us_B_5@c.us", "from": "120@g.us",
            "participant": "5@c.us", "fromMe": false, "body": "look", "hasMedia": true,
            "media": {"url": "http://waha/api/files/x.jpg", "mimetype": "image/jpeg",
            "filename": null}});
        let item = &parse(&body("message", p)).unwrap().items[0];
        assert_eq!(item.group.as_deref(), Some("120@g.us"));
        assert_eq!(item.message.sender.id, "5@c.us");
        assert_eq!(item.message.sender.phone.as_deref(), Some("5"));
        assert_eq!(item.message.kind, MessageKind::Image);
        assert_eq!(item.message.caption.as_deref(), Some("look"));
        let p = serde_json::json!({"id": "false_5@c.us_C", "from": "5@c.us", "fromMe": false,
            "body": "", "location": {"latitude": "52.52", "longitude": 13.4,
            "description": "Office"}});
        let item = &parse(&body("message", p)).unwrap().items[0];
        assert_eq!(item.message.location.as_ref().unwrap().latitude, 52.52);
        let p = serde_json::json!({"id": "false_5@c.us_D", "from": "5@c.us", "fromMe": false,
            "vCards": ["BEGIN:VCARD\nFN:Ann\nTEL;type=CELL:+49 1\nEND:VCARD"]});
        let item = &parse(&body("message", p)).unwrap().items[0];
        assert_eq!(item.message.contacts[0].name.as_deref(), Some("Ann"));
        assert_eq!(item.message.contacts[0].phones, vec!["+49 1".to_string()]);
    }

    #[test]
    fn bounds_and_reasons() {
        let cards: Vec<String> = (0..=MAX_VCARDS).map(|_| "BEGIN:VCARD".into()).collect();
        let p = serde_json::json!({"id": "x", "from": "5@c.us", "vCards": cards});
        let p = parse(&body("message", p)).unwrap();
        assert_eq!(p.items[0].message.contacts.len(), MAX_VCARDS);
        assert_eq!(p.partial, ["too_many_contacts"]);
        let p = parse(&body("message", serde_json::json!({"id": "x"}))).unwrap();
        assert!(p.items.is_empty() && p.ignored == ["no_sender"]);
        let e = parse(&body("message", serde_json::json!([1]))).unwrap_err();
        assert!(e.to_string().contains("not an object"), "{e}");
        let e = parse(br#"{"event":"message","payload":{}}"#).unwrap_err();
        assert!(e.to_string().contains("session"), "{e}");
        let e = parse(br#"{"session":"s","payload":{}}"#).unwrap_err();
        assert!(e.to_string().contains("event"), "{e}");
        let other = parse(&body("message.ack", serde_json::json!({"id": "x"}))).unwrap();
        assert!(other.items.is_empty() && other.ignored == ["event"]);
        let pres = parse(&body("presence.update", serde_json::json!({}))).unwrap();
        assert_eq!(pres.ignored, ["presence"]);
    }
}
