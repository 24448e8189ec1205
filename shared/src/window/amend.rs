//! Edits and unsends ("amends"): what an `edit` or `revoke` item does to the conversation.
//!
//! - Its original still in the open window: an edit replaces the original's content in place
//!   (same position, same id, `edited_at`) and restarts the quiet period as a new message would;
//!   an unsend removes the original, so its content leaves the stored record with this very write.
//!   A window an unsend leaves empty closes without a batch.
//! - Its original closed into a batch (pending or handed off): a closed batch is immutable (a
//!   retried hand-off carries the same content), so the edit or unsend is itself a message of the
//!   next batch, its `target.batch_id` naming the batch the original is in.
//! - Its original not seen (yet): order is not guaranteed, so the edit or unsend goes out in the
//!   next batch as above (nothing accepted is lost: the original may have been handed off so long
//!   ago that the record forgot it) and is also remembered, so that a late original takes the
//!   edited content, or is suppressed when it was unsent.
//!
//! Every amend is one append: one conditional write, like a message. What the record remembers
//! ([`Conversation::amends`]) is bounded in count and bytes and ends with the dedupe horizon; it
//! also recognises a retried edit or unsend (by its own id) and a resend of an unsent original.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{AppendPlan, AppendRefused, Conversation, MAX_MESSAGE_BYTES, OVERDUE_SLACK};
use crate::batch::CloseReason;
use crate::message::{Message, MessageKind};
use crate::policy::Policy;
use crate::time::Millis;

/// The most amends a record remembers; the oldest is forgotten first.
pub const MAX_AMENDS: usize = 32;

/// The byte budget of the remembered amends (as counted by [`Amend::bytes`]).
pub const AMENDS_BYTES: u64 = 8 * 1024;

/// The largest content an early edit keeps for its late original (its stored size). A larger
/// edit still goes out as an `edit` message; its late original then arrives unedited.
pub const AMEND_CONTENT_BYTES: u64 = 2 * 1024;

/// What one amend counts for beside its ids and content: field names, numbers, punctuation.
const AMEND_BYTES: u64 = 64;

/// One remembered edit or unsend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amend {
    /// The edit's or unsend's own id: a retry of it is a duplicate.
    pub id: String,
    /// The original's id.
    pub target: String,
    /// True for an unsend: the original is suppressed should it (or a resend of it) arrive.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoke: bool,
    /// For an edit whose original has not arrived: the new content, for the late original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Box<Message>>,
    /// lull's receive time of the amend (a late original's `edited_at`).
    pub at: Millis,
    /// The end of its dedupe horizon, in ms: after it the amend just drops.
    pub until: u64,
}

impl Amend {
    /// What this amend counts for in the budget of [`AMENDS_BYTES`].
    pub fn bytes(&self) -> u64 {
        AMEND_BYTES
            + self.id.len() as u64
            + self.target.len() as u64
            + self.content.as_ref().map_or(0, |m| m.stored_size())
    }
}

/// What an amend did, for the counters (`lull_amends_total{effect}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amended {
    /// An edit replaced its original's content in the open window.
    Edited,
    /// An unsend removed its original from the open window.
    Revoked,
    /// An unsend removed the open window's last message: the window closed without a batch.
    Emptied,
    /// The original was closed into a batch already: the amend is a message of the next batch.
    Forwarded,
    /// The original was not seen: the amend is a message of the next batch, and remembered.
    Early,
    /// A late original took the content of an edit that came before it.
    LateEdited,
    /// An edit of a message already unsent: nothing to show, the edit's id is remembered.
    Dropped,
}

impl Amended {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Amended::Edited => "edited",
            Amended::Revoked => "revoked",
            Amended::Emptied => "emptied",
            Amended::Forwarded => "forwarded",
            Amended::Early => "early",
            Amended::LateEdited => "late_edited",
            Amended::Dropped => "dropped",
        }
    }
}

/// `msg`'s target when it is an edit or unsend.
fn target_of(msg: &Message) -> Option<&str> {
    match msg.kind {
        MessageKind::Edit | MessageKind::Revoke => {
            msg.target.as_ref().map(|t| t.message_id.as_str())
        }
        _ => None,
    }
}

/// An edited message too large to keep: kind `other`, `provider_type` `too_large`, with its
/// id, sender, times and edit time only (the rule the routes apply to an oversized message).
fn too_large(m: Message) -> Message {
    Message {
        provider_type: Some("too_large".into()),
        edited_at: m.edited_at,
        sent_at: m.sent_at,
        received_at: m.received_at,
        ..Message::of_kind(m.id, MessageKind::Other, m.sender)
    }
}

/// `original` with the content of `edit`: text and caption as the edit has them, media,
/// location, contacts and a reply when the edit carries them.
fn with_content(mut original: Message, edit: &Message) -> Message {
    if edit.text.is_some() || edit.caption.is_some() {
        original.text.clone_from(&edit.text);
        original.caption.clone_from(&edit.caption);
    }
    if edit.media.is_some() {
        original.media.clone_from(&edit.media);
    }
    if edit.location.is_some() {
        original.location.clone_from(&edit.location);
    }
    if !edit.contacts.is_empty() {
        original.contacts.clone_from(&edit.contacts);
    }
    if edit.reply.is_some() {
        original.reply.clone_from(&edit.reply);
    }
    original
}

impl Conversation {
    /// The bytes the remembered amends count for.
    pub fn amends_bytes(&self) -> u64 {
        self.amends.iter().map(Amend::bytes).sum()
    }

    /// True when an unsend of `message_id` is remembered: the message (or a resend of it) is
    /// suppressed.
    pub fn is_revoked(&self, message_id: &str) -> bool {
        self.amends
            .iter()
            .any(|a| a.revoke && a.target == message_id)
    }

    /// True when `message_id` is a remembered amend's own id, or an unsent original's.
    pub(super) fn holds_amend(&self, message_id: &str) -> bool {
        self.amends
            .iter()
            .any(|a| a.id == message_id || (a.revoke && a.target == message_id))
    }

    /// Remembers `amend`, forgetting the oldest while over [`MAX_AMENDS`] or [`AMENDS_BYTES`].
    fn remember(&mut self, amend: Amend) {
        self.amends.push(amend);
        let mut bytes = self.amends_bytes();
        while self.amends.len() > MAX_AMENDS || bytes > AMENDS_BYTES {
            let gone = self.amends.remove(0);
            bytes -= gone.bytes();
        }
    }

    /// An unsend of `target` erases what the record holds of its content beside the original
    /// itself: the content an early edit kept for it, and `edit` messages of it still in the
    /// open window (their text is the unsent message's). A window left empty by it is dropped
    /// (the unsend itself then opens one, as its message).
    /// The erased edits' ids are remembered, so a gateway's retry of one is a duplicate.
    fn erase_edits_of(&mut self, target: &str, now: Millis, until: u64) {
        for a in self.amends.iter_mut().filter(|a| a.target == target) {
            a.content = None;
        }
        let Some(w) = self.window.as_mut() else {
            return;
        };
        let (erased, kept): (Vec<Message>, Vec<Message>) =
            std::mem::take(&mut w.messages).into_iter().partition(|m| {
                m.kind == MessageKind::Edit && target_of(m).is_some_and(|t| t == target)
            });
        w.messages = kept;
        if erased.is_empty() {
            return;
        }
        for e in erased {
            self.remember(Amend {
                id: e.id,
                target: target.to_string(),
                revoke: false,
                content: None,
                at: now,
                until,
            });
        }
        let Some(w) = self.window.as_mut() else {
            return;
        };
        w.bytes = w.messages.iter().map(Message::stored_size).sum();
        match w.messages.first() {
            // As for an unsend: the window's max wait runs from its first message.
            Some(first) => w.opened_at = first.received_at,
            // A window holding a superseded batch's context stays (empty, the unsend's message
            // goes into it next): dropping it would drop the context.
            None if w.carried.is_some() => {}
            None => {
                self.window = None;
                if self.is_idle() {
                    self.chain = None;
                }
            }
        }
    }

    /// The id of the closed batch (pending, or acknowledged and still listed) holding
    /// `message_id`.
    fn batch_of(&self, message_id: &str, now: Millis) -> Option<String> {
        if let Some(b) = self
            .pending
            .iter()
            .find(|b| b.messages.iter().any(|m| m.id == message_id))
        {
            return Some(b.batch_id.to_string());
        }
        self.acked
            .iter()
            .filter(|g| g.until >= now.0)
            .find(|g| g.ids.iter().any(|id| id == message_id))
            .and_then(|g| g.batch_id)
            .map(|id| id.to_string())
    }

    /// Plans one item of a conversation: a message, or an edit or unsend (see the module
    /// documentation). `horizon` is the dedupe horizon: how long an amend is remembered. The
    /// caller has already recognised duplicates ([`Self::holds_message`], which knows amends).
    pub fn plan_item(
        mut self,
        msg: Message,
        policy: &Policy,
        now: Millis,
        horizon: Duration,
        random: &mut dyn FnMut() -> u64,
    ) -> Result<AppendPlan, AppendRefused> {
        self.amends.retain(|a| a.until >= now.0);
        let until = now.plus(horizon).0;
        let Some(target) = target_of(&msg).map(str::to_string) else {
            return self.plan_original(msg, policy, now, random);
        };
        let revoke = msg.kind == MessageKind::Revoke;
        if revoke {
            self.erase_edits_of(&target, now, until);
        }
        if self.is_revoked(&target) {
            return self.absorb(msg.id, target, revoke, until, now, random, Amended::Dropped);
        }
        let in_window = self.window.as_ref().and_then(|w| {
            w.messages
                .iter()
                .position(|m| m.id == target && target_of(m).is_none())
        });
        if let Some(pos) = in_window {
            return self.amend_in_window(pos, msg, target, revoke, until, policy, now, random);
        }
        let mut msg = msg;
        let batch_id = self.batch_of(&target, now);
        let effect = match batch_id {
            Some(_) => {
                // Remembered too: an edit of it arriving after this unsend (reordered, or
                // retried) must not go out with the unsent message's content.
                if revoke {
                    self.remember(Amend {
                        id: msg.id.clone(),
                        target: target.clone(),
                        revoke,
                        content: None,
                        at: now,
                        until,
                    });
                }
                Amended::Forwarded
            }
            None => {
                let content = (!revoke)
                    .then(|| Box::new(msg.clone()))
                    .filter(|m| m.stored_size() <= AMEND_CONTENT_BYTES);
                self.remember(Amend {
                    id: msg.id.clone(),
                    target,
                    revoke,
                    content,
                    at: now,
                    until,
                });
                Amended::Early
            }
        };
        if let Some(t) = msg.target.as_mut() {
            t.batch_id = batch_id;
        }
        let mut plan = self.plan_append(msg, policy, now, random)?;
        plan.amend = Some(effect);
        Ok(plan)
    }

    /// A plain message: when an edit of it came first (remembered), it takes the edit's content,
    /// and the edit's own message leaves the open window if it is still there (the original now
    /// says it).
    fn plan_original(
        mut self,
        msg: Message,
        policy: &Policy,
        now: Millis,
        random: &mut dyn FnMut() -> u64,
    ) -> Result<AppendPlan, AppendRefused> {
        let early = self
            .amends
            .iter()
            .rev()
            .find(|a| a.target == msg.id && !a.revoke)
            .map(|a| (a.id.clone(), a.at, a.content.clone()));
        let Some((edit_id, at, content)) = early else {
            return self.plan_append(msg, policy, now, random);
        };
        // An edit too large to keep stays the message that says it.
        let Some(edit) = content else {
            return self.plan_append(msg, policy, now, random);
        };
        let msg = Message {
            edited_at: Some(at),
            ..with_content(msg, &edit)
        };
        // Every earlier edit of it kept its content too: their messages say nothing new either.
        let said: Vec<String> = self
            .amends
            .iter()
            .filter(|a| a.target == msg.id && a.content.is_some())
            .map(|a| a.id.clone())
            .chain([edit_id])
            .collect();
        if let Some(w) = self.window.as_mut() {
            let before = w.messages.len();
            w.messages.retain(|m| !said.contains(&m.id));
            if w.messages.len() != before {
                w.bytes = w.messages.iter().map(Message::stored_size).sum();
                // As for an unsend: the window opens at the message now first.
                if let Some(first) = w.messages.first() {
                    w.opened_at = first.received_at;
                }
            }
        }
        if self
            .window
            .as_ref()
            .is_some_and(|w| w.messages.is_empty() && w.carried.is_none())
        {
            // Only the edit's message was there: the original opens the window anew (one that
            // holds a superseded batch's context stays, and the original is its first message).
            self.window = None;
        }
        let mut plan = self.plan_append(msg, policy, now, random)?;
        plan.amend = Some(Amended::LateEdited);
        Ok(plan)
    }

    /// An edit or unsend of the open window's message at `pos`.
    #[allow(clippy::too_many_arguments)]
    fn amend_in_window(
        mut self,
        pos: usize,
        msg: Message,
        target: String,
        revoke: bool,
        until: u64,
        policy: &Policy,
        now: Millis,
        random: &mut dyn FnMut() -> u64,
    ) -> Result<AppendPlan, AppendRefused> {
        let covered_until = self.hand_off_due();
        let overdue = self.due_at().is_some_and(|d| d.plus(OVERDUE_SLACK) < now);
        let at = now.max(self.last_received());
        let gen = self.gen;
        let mut effect = Amended::Edited;
        let holds_context = self.window_holds_context();
        if let Some(w) = self.window.as_mut() {
            let old = w.messages.remove(pos);
            w.bytes = w.bytes.saturating_sub(old.stored_size());
            if revoke {
                effect = Amended::Revoked;
                // The window's max wait runs from its first message (`opened_at` is that
                // message's receive time, `docs/batch.md`): the unsent one no longer is.
                if let Some(first) = w.messages.first() {
                    w.opened_at = first.received_at;
                }
            } else {
                let edited = Message {
                    edited_at: Some(at),
                    ..with_content(old, &msg)
                };
                // The edit fit, but the original's other parts with the edit's content may
                // not: kept at its place without content, as a route keeps an oversized
                // message, so the AI never reads the content the edit replaced.
                let edited = if edited.stored_size() > MAX_MESSAGE_BYTES {
                    too_large(edited)
                } else {
                    edited
                };
                w.bytes += edited.stored_size();
                w.messages.insert(pos, edited);
                // The user is still writing: the quiet period restarts as for a new message.
                w.last_at = at;
            }
            if w.messages.is_empty() && holds_context {
                // The window holds (or will hold) a superseded batch's context: it is not
                // dropped, so its batch still comes and repeats that context. The unsend stays
                // in it as its `revoke` message (no content), so the batch has a message and the
                // bot learns what the user took back.
                let mut revoke_msg = msg.clone();
                revoke_msg.received_at = at;
                w.bytes += revoke_msg.stored_size();
                w.messages.push(revoke_msg);
                w.opened_at = at;
                w.last_at = at;
                self.accepted += 1;
            } else if w.messages.is_empty() {
                effect = Amended::Emptied;
            }
        }
        if effect == Amended::Emptied {
            self.window = None;
            if self.is_idle() {
                self.chain = None;
            }
        } else if self
            .window
            .as_ref()
            .is_some_and(|w| w.bytes >= policy.max_bytes)
        {
            self.close(CloseReason::Size, at);
        }
        self.remember(Amend {
            id: msg.id,
            target,
            revoke,
            content: None,
            at,
            until,
        });
        let arm = self.seal(now, covered_until, overdue, random)?;
        Ok(AppendPlan {
            next: self,
            gen,
            arm,
            amend: Some(effect),
        })
    }

    /// An amend with nothing to show (an edit of an unsent message): only its id is remembered.
    #[allow(clippy::too_many_arguments)]
    fn absorb(
        mut self,
        id: String,
        target: String,
        revoke: bool,
        until: u64,
        now: Millis,
        random: &mut dyn FnMut() -> u64,
        effect: Amended,
    ) -> Result<AppendPlan, AppendRefused> {
        let covered_until = self.hand_off_due();
        let overdue = self.due_at().is_some_and(|d| d.plus(OVERDUE_SLACK) < now);
        self.remember(Amend {
            id,
            target,
            revoke,
            content: None,
            at: now,
            until,
        });
        let arm = self.seal(now, covered_until, overdue, random)?;
        Ok(AppendPlan {
            gen: self.gen,
            next: self,
            arm,
            amend: Some(effect),
        })
    }
}

#[cfg(test)]
#[path = "amend_test.rs"]
mod amend_test;
