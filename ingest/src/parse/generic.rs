//! lull's own JSON format, for channels without a built-in parser (Telegram, Instagram, custom
//! apps). Specified in `docs/gateways.md`:
//!
//! ```json
//! {"account": "shop-1",
//!  "messages": [{"id": "m-1", "user": "tg:42", "kind": "text", "text": "hi",
//!                "sender_name": "Ann", "sent_at": "2026-01-01T12:00:00Z"}]}
//! ```
//!
//! `account` is required (the envelope); each message is read on its own: one without `id` or
//! `user` is skipped (counted), one lull cannot read (an unknown `kind`, a field of the wrong
//! type) is kept as kind `other` with `provider_type` and its `id`, `user` and `text` when those
//! read. `kind` defaults to `text`; the other fields mirror the normalised message. `kind:
//! "edit"` / `"revoke"` with `target: {"message_id"}` change or delete an earlier message.

use serde::Deserialize;

use serde_json::value::RawValue;

use lull_core::message::{Contact, Location, Media, Reaction, Reply, Sender, Target};
use lull_core::{Message, MessageKind, Millis};

use super::{non_empty, raw_array, raw_as, raw_str, Item, ParseError, Parsed, MAX_ITEMS};

#[derive(Deserialize)]
struct Body<'a> {
    account: String,
    #[serde(borrow)]
    messages: &'a RawValue,
}

/// What is read of a message that does not read as a [`GenericMessage`].
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    user: Option<&'a RawValue>,
    #[serde(default, borrow)]
    group: Option<&'a RawValue>,
    #[serde(default, borrow)]
    kind: Option<&'a RawValue>,
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
}

/// `target` of an edit or revoke: only the original's id (the batch it went out in is the
/// core's to set).
#[derive(Deserialize)]
struct GenericTarget {
    message_id: String,
}

#[derive(Deserialize)]
struct GenericMessage {
    #[serde(default)]
    kind: Option<MessageKind>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    media: Option<Media>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default)]
    contacts: Vec<Contact>,
    #[serde(default)]
    reply: Option<Reply>,
    #[serde(default)]
    reaction: Option<Reaction>,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    provider_type: Option<String>,
    #[serde(default)]
    sender_name: Option<String>,
    #[serde(default)]
    sender_phone: Option<String>,
    #[serde(default)]
    sent_at: Option<Millis>,
    #[serde(default)]
    target: Option<GenericTarget>,
}

/// Parses a generic-format body.
pub fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let body: Body<'_> =
        serde_json::from_slice(body).map_err(|e| ParseError::json("generic", &e))?;
    let account =
        non_empty(Some(&body.account)).ok_or_else(|| ParseError::new("generic: empty account"))?;
    let mut out = Parsed::default();
    out.add_account(&account);
    let messages = raw_array(body.messages, MAX_ITEMS)
        .map_err(|e| ParseError::json("generic messages", &e))?;
    out.beyond_cap += messages.beyond;
    for raw in messages.items {
        match message(&account, raw, &mut out.partial) {
            Ok(item) => out.items.push(item),
            Err(reason) => out.ignored.push(reason),
        }
    }
    Ok(out)
}

/// One message; `Err` is the reason it is skipped.
fn message(
    account: &str,
    raw: &RawValue,
    partial: &mut Vec<&'static str>,
) -> Result<Item, &'static str> {
    let head: Head<'_> = serde_json::from_str(raw.get()).map_err(|_| "unreadable")?;
    let id = non_empty(raw_str(head.id).as_deref()).ok_or("no_id")?;
    let user = non_empty(raw_str(head.user).as_deref()).ok_or("no_sender")?;
    let group = non_empty(raw_str(head.group).as_deref());
    let m = raw_as::<GenericMessage>(Some(raw)).filter(|m| {
        m.location
            .as_ref()
            .is_none_or(|l| l.latitude.is_finite() && l.longitude.is_finite())
    });
    let msg = match m {
        Some(m) => {
            let sender = Sender {
                id: user.clone(),
                name: m.sender_name,
                phone: m.sender_phone,
                alt_id: None,
            };
            let mut msg = Message::of_kind(id, m.kind.unwrap_or(MessageKind::Text), sender);
            msg.text = m.text;
            msg.caption = m.caption;
            msg.media = m.media;
            msg.location = m.location;
            msg.contacts = m.contacts;
            msg.reply = m.reply;
            msg.reaction = m.reaction;
            msg.reply_to = m.reply_to;
            msg.provider_type = m.provider_type;
            msg.sent_at = m.sent_at;
            msg.target = m
                .target
                .and_then(|t| non_empty(Some(&t.message_id)))
                .map(|message_id| Target {
                    message_id,
                    batch_id: None,
                });
            if matches!(msg.kind, MessageKind::Edit | MessageKind::Revoke) && msg.target.is_none() {
                partial.push("no_target");
                msg.provider_type = Some(kind_name(msg.kind).into());
                msg.kind = MessageKind::Other;
            }
            msg
        }
        None => {
            // Kept with what reads: id, user, text, and the kind's name as `provider_type`.
            partial.push("unreadable_content");
            let mut msg = Message::of_kind(
                id,
                MessageKind::Other,
                Sender {
                    id: user.clone(),
                    ..Sender::default()
                },
            );
            msg.provider_type = Some(
                non_empty(raw_str(head.kind).as_deref()).unwrap_or_else(|| "unreadable".into()),
            );
            msg.text = raw_str(head.text);
            msg
        }
    };
    Ok(Item {
        account: account.to_string(),
        user: group.clone().unwrap_or(user),
        group,
        message: msg,
        opt_in: None,
    })
}

fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Edit => "edit",
        _ => "revoke",
    }
}
