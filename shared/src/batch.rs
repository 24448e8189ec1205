//! The batch: the public contract every sink receives (documented in `docs/batch.md`).
//!
//! A batch is a closed window, immutable, with an id unique forever. A retried hand-off carries
//! the same id and the same content, so a receiver that dedupes on `batch_id` sees each message
//! once. Fields are only ever added, never renamed or removed.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::key::ConversationKey;
use crate::message::Message;
use crate::time::Millis;
use crate::turn::TurnReason;

/// The largest a batch's JSON can be: its messages (at most a whole record's budget,
/// [`crate::window::MAX_CONVERSATION_BYTES`], counted as stored, escaped JSON), the joined `text`
/// (no longer than the texts it joins, plus a separator each) and the envelope (ids, times, the
/// conversation key, whose parts are length-capped at ingestion). Sinks with a size limit are
/// checked against it (SQS: 1 MiB), so no batch can ever be too large for its sink.
pub const MAX_BATCH_BYTES: u64 = 2 * crate::window::MAX_CONVERSATION_BYTES + 16 * 1024;

/// Why a window closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The quiet period passed since the last message.
    Quiet,
    /// The max wait passed since the first message.
    MaxWait,
    /// The size cap (messages or bytes) was reached.
    Size,
    /// Buffering is off for the tenant.
    Passthrough,
}

impl CloseReason {
    /// The snake_case name, as in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Quiet => "quiet",
            CloseReason::MaxWait => "max_wait",
            CloseReason::Size => "size",
            CloseReason::Passthrough => "passthrough",
        }
    }
}

/// A batch as handed to a sink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub batch_id: Uuid,
    pub conversation: ConversationKey,
    pub generation: u64,
    pub reason: CloseReason,
    pub opened_at: Millis,
    pub closed_at: Millis,
    /// The next window already held messages when this batch was first handed off.
    pub more_pending: bool,
    pub messages: Vec<Message>,
    /// Every text, caption and reply title, in order, joined by newlines: the AI prompt.
    pub text: String,
    /// Which end-of-turn rule the window waited for (quiet and max-wait closes): `quiet`,
    /// `adaptive_quiet`, `typing_grace`, `typing_hold`, `max_wait` or `paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited: Option<TurnReason>,
    /// The batch this one supersedes (`on_newer = "supersede"`): the user wrote again before the
    /// bot answered it, and the bot discarded its reply. Its messages are in `context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<Uuid>,
    /// The messages of the superseded batch (and of the batches it superseded), in order: a
    /// documented repeat of messages handed off before, to answer with `messages` as one
    /// thought. Never in `text`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<Message>,
    /// What the bot GETs just before sending its answer: did the user write again since this
    /// batch closed?
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_guard: Option<crate::guard::ReplyGuard>,
}

impl Batch {
    /// Builds a batch, deriving `text` from the messages.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch_id: Uuid,
        conversation: ConversationKey,
        generation: u64,
        reason: CloseReason,
        opened_at: Millis,
        closed_at: Millis,
        more_pending: bool,
        messages: Vec<Message>,
    ) -> Batch {
        let text = messages
            .iter()
            .flat_map(Message::prompt_parts)
            .collect::<Vec<_>>()
            .join("\n");
        Batch {
            batch_id,
            conversation,
            generation,
            reason,
            opened_at,
            closed_at,
            more_pending,
            messages,
            text,
            waited: None,
            supersedes: None,
            context: Vec::new(),
            reply_guard: None,
        }
    }

    /// The batch saying which end-of-turn rule its window waited for.
    pub fn waited(mut self, waited: Option<TurnReason>) -> Batch {
        self.waited = waited;
        self
    }

    /// The batch carrying a superseded batch's messages as `context`.
    pub fn carrying(mut self, carried: Option<&crate::window::Carried>) -> Batch {
        if let Some(c) = carried {
            self.supersedes = Some(c.batch_id);
            self.context = c.messages.clone();
        }
        self
    }

    /// The batch as JSON bytes, as sinks send it.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Provider;
    use crate::message::{MessageKind, Reply, Sender};

    #[test]
    fn the_largest_batch_a_record_can_hold_is_within_max_batch_bytes() {
        // Texts that escape badly in JSON (quotes, backslashes, control characters, non-ASCII),
        // as many as the record budget allows, all in one batch.
        let awkward = "\"\\\u{1}\u{7f}é😀\n".repeat(200);
        let mut messages = Vec::new();
        let mut bytes = 0u64;
        let mut i = 0;
        loop {
            let m = Message::text(format!("wamid.{i:0>200}"), "u".repeat(256), awkward.clone());
            let size = m.stored_size();
            if bytes + size > crate::window::MAX_CONVERSATION_BYTES {
                break;
            }
            bytes += size;
            messages.push(m);
            i += 1;
        }
        let key = ConversationKey::new(Provider::Evolution, "a".repeat(256), "u".repeat(256))
            .in_group("g".repeat(256));
        let b = Batch::new(
            Uuid::nil(),
            key,
            u64::MAX,
            CloseReason::MaxWait,
            Millis(4_102_444_800_000),
            Millis(4_102_444_800_000),
            true,
            messages,
        );
        let len = b.to_json().len() as u64;
        assert!(
            len > crate::window::MAX_CONVERSATION_BYTES,
            "the test fills a record"
        );
        assert!(len <= MAX_BATCH_BYTES, "{len} > {MAX_BATCH_BYTES}");
        const { assert!(MAX_BATCH_BYTES <= 1024 * 1024, "fits an SQS message") };
    }

    #[test]
    fn json_shape_is_the_documented_contract() {
        let mut img = Message::of_kind("wamid.2", MessageKind::Image, Sender::default());
        img.caption = Some("this one".into());
        let mut btn = Message::of_kind("wamid.3", MessageKind::Interactive, Sender::default());
        btn.reply = Some(Reply {
            id: "opt-1".into(),
            title: "Vegan".into(),
        });
        let b = Batch::new(
            Uuid::nil(),
            ConversationKey::new(Provider::Meta, "106540352242922", "16505551234"),
            7,
            CloseReason::MaxWait,
            Millis(1_000),
            Millis(31_000),
            true,
            vec![
                Message::text("wamid.1", "16505551234", "2 pizzas"),
                img,
                btn,
            ],
        );
        let v: serde_json::Value = serde_json::from_slice(&b.to_json()).unwrap();
        assert_eq!(v["reason"], "max_wait");
        assert_eq!(v["generation"], 7);
        assert_eq!(v["conversation"]["provider"], "meta");
        assert_eq!(v["conversation"]["account"], "106540352242922");
        assert!(v["conversation"].get("group").is_none());
        assert_eq!(v["opened_at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["more_pending"], true);
        assert_eq!(v["text"], "2 pizzas\nthis one\nVegan");
        assert_eq!(v["messages"][1]["kind"], "image");
        assert_eq!(v["messages"][2]["reply"]["title"], "Vegan");
        let back: Batch = serde_json::from_value(v).unwrap();
        assert_eq!(back, b);
    }
}
