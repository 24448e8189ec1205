//! Helpers the window's tests share.

use crate::key::{ConversationKey, Provider};
use crate::message::{Message, MessageKind, Target};
use crate::policy::Policy;
use crate::time::Millis;
use crate::window::Conversation;

pub(crate) fn key() -> ConversationKey {
    ConversationKey::new(Provider::Meta, "pn", "user")
}

pub(crate) fn counter() -> impl FnMut() -> u64 {
    let mut n = 0;
    move || {
        n += 1;
        n
    }
}

/// The stored size of a message with `text` received at `at`.
pub(crate) fn size_at(text: &str, at: u64) -> u64 {
    let mut m = Message::text("x", "u", text);
    m.received_at = Millis(at);
    m.stored_size()
}

/// A record with the message "a" appended at 0 under the default policy, its window due at
/// 8 s.
pub(crate) fn one_message() -> Conversation {
    Conversation::fresh(key(), Millis(0))
        .plan_append(
            Message::text("a", "u", "1"),
            &Policy::default(),
            Millis(0),
            &mut counter(),
        )
        .unwrap()
        .next
}

/// An edit of `target` (the item a gateway sends when the user edits a message).
pub(crate) fn edit(id: &str, target: &str, text: &str) -> Message {
    Message {
        kind: MessageKind::Edit,
        target: Some(Target {
            message_id: target.into(),
            batch_id: None,
        }),
        ..Message::text(id, "u", text)
    }
}

/// An unsend ("delete for everyone") of `target`.
pub(crate) fn revoke(id: &str, target: &str) -> Message {
    Message {
        kind: MessageKind::Revoke,
        text: None,
        target: Some(Target {
            message_id: target.into(),
            batch_id: None,
        }),
        ..Message::text(id, "u", "")
    }
}
