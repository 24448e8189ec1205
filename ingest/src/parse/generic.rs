//! lull's own JSON format, for channels without a built-in parser (Telegram, Instagram, custom
//! apps). Specified in `docs/gateways.md`:
//!
//! ```json
//! {"account": "shop-1",
//!  "messages": [{"id": "m-1", "user": "tg:42", "kind": "text", "text": "hi",
//!                "sender_name": "Ann", "sent_at": "2026-01-01T12:00:00Z"}]}
//! ```
//!
//! `account`, and each message's `id` and `user`, are required; `kind` defaults to `text`;
//! the other fields mirror the normalised message.

use serde::Deserialize;

use lull_core::message::{Contact, Location, Media, Reaction, Reply, Sender};
use lull_core::{Message, MessageKind, Millis};

use super::{non_empty, Item, ParseError, Parsed};

#[derive(Deserialize)]
struct Body {
    account: String,
    messages: Vec<GenericMessage>,
}

#[derive(Deserialize)]
struct GenericMessage {
    id: String,
    user: String,
    #[serde(default)]
    group: Option<String>,
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
}

/// Parses a generic-format body.
pub fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let body: Body = serde_json::from_slice(body).map_err(|e| ParseError::json("generic", &e))?;
    let account =
        non_empty(Some(&body.account)).ok_or_else(|| ParseError::new("generic: empty account"))?;
    let mut out = Parsed::default();
    out.add_account(&account);
    for (i, m) in body.messages.into_iter().enumerate() {
        if m.id.trim().is_empty() || m.user.trim().is_empty() {
            return Err(ParseError::new(format!(
                "generic messages[{i}]: empty id or user"
            )));
        }
        if let Some(l) = &m.location {
            if !(l.latitude.is_finite() && l.longitude.is_finite()) {
                return Err(ParseError::new(format!(
                    "generic messages[{i}]: bad location"
                )));
            }
        }
        let group = non_empty(m.group.as_deref());
        let sender = Sender {
            id: m.user.clone(),
            name: m.sender_name,
            phone: m.sender_phone,
            alt_id: None,
        };
        let mut msg = Message::of_kind(m.id, m.kind.unwrap_or(MessageKind::Text), sender);
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
        out.items.push(Item {
            account: account.clone(),
            user: group.clone().unwrap_or(m.user),
            group,
            message: msg,
            opt_in: None,
        });
    }
    Ok(out)
}
