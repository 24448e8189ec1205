//! The normalised message: one inbound chat message, whatever gateway it came through.
//!
//! Its provider id (wamid, Evolution key id, Twilio MessageSid) is its identity for dedupe. The
//! shape is part of the public batch JSON (see `docs/batch.md`): fields are only ever added.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// What kind of message this is. Unknown provider types become `Other`, never dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    Image,
    Audio,
    Video,
    Document,
    Sticker,
    Location,
    Contacts,
    Interactive,
    Button,
    Reaction,
    Other,
    /// The user changed an earlier message: `target` names it, the content fields hold the new
    /// content (`docs/batch.md`, "Edits and unsends").
    Edit,
    /// The user deleted an earlier message for everyone: `target` names it; no content.
    Revoke,
}

/// A media attachment: the gateway's media id and/or a URL to fetch it from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// True for a voice note (push-to-talk audio).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub voice: bool,
}

/// A shared location.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

// Coordinates come from parsed JSON and are never NaN; equality is used by tests and dedupe
// checks only.
impl Eq for Location {}

/// The choice a user made on a button or list (interactive replies, template quick replies).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub id: String,
    pub title: String,
}

/// A reaction to an earlier message; no emoji means the reaction was removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
}

/// The message an edit or unsend applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The original message's provider id.
    pub message_id: String,
    /// The batch the original was handed off in, when it already was (set by the core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
}

/// One shared contact card.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<String>,
}

/// Who wrote the message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The id lull keys the user's conversation on (see `docs/gateways.md` for each gateway).
    pub id: String,
    /// The profile name, when the gateway sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The phone number (`wa_id`), when it differs from `id` or `id` is not a phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// A provider's other id for the same user (Meta's business-scoped user id, an Evolution LID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_id: Option<String>,
}

/// One inbound message, normalised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The provider's message id: its identity for dedupe.
    pub id: String,
    pub kind: MessageKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Contact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<Reaction>,
    /// The id of the message this one quotes or answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The provider's own type name, for `other` (e.g. `unsupported`, `system`, `order`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    /// For `edit` and `revoke`: the message changed or deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Set when an edit replaced this message's content before its hand-off: lull's receive time
    /// of the (latest) edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Millis>,
    pub sender: Sender,
    /// The provider's timestamp, for information only (Meta's are whole seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Millis>,
    /// lull's receive time, set by the core when the message is appended.
    #[serde(default)]
    pub received_at: Millis,
}

impl Message {
    /// A text message; the most common kind, and the one tests and the simulator use.
    pub fn text(id: impl Into<String>, sender: impl Into<String>, text: impl Into<String>) -> Self {
        Message {
            id: id.into(),
            kind: MessageKind::Text,
            text: Some(text.into()),
            caption: None,
            media: None,
            location: None,
            contacts: Vec::new(),
            reply: None,
            reaction: None,
            reply_to: None,
            provider_type: None,
            target: None,
            edited_at: None,
            sender: Sender {
                id: sender.into(),
                ..Sender::default()
            },
            sent_at: None,
            received_at: Millis(0),
        }
    }

    /// A message of `kind` with no content yet; parsers fill in the rest.
    pub fn of_kind(id: impl Into<String>, kind: MessageKind, sender: Sender) -> Self {
        Message {
            kind,
            text: None,
            sender,
            ..Message::text(id, "", "")
        }
    }

    /// The parts of this message that go into the batch's prompt text, in order: text, caption,
    /// button or list reply title.
    pub fn prompt_parts(&self) -> impl Iterator<Item = &str> {
        [
            self.text.as_deref(),
            self.caption.as_deref(),
            self.reply.as_ref().map(|r| r.title.as_str()),
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
    }

    /// How many bytes this message takes in a stored window (its JSON form), for the size cap.
    pub fn stored_size(&self) -> u64 {
        serde_json::to_vec(self)
            .map(|v| v.len() as u64)
            .unwrap_or(u64::MAX)
    }
}
