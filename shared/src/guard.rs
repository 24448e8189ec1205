//! The reply guard: what a batch carries so the bot can ask, just before it sends its answer,
//! whether the user wrote again since the batch closed (`docs/batch.md`, "The reply guard").
//!
//! The core decides what a guard is bound to ([`GuardClaim`]: the conversation, the batch, the
//! count of messages the conversation had accepted when the batch closed, an expiry) and what it
//! answers ([`answer`], from one consistent read of the conversation record); a shell seals the
//! claim into an unguessable URL ([`GuardSeal`]; `lull-sink`'s `guard` module) and opens it again
//! on the guard route. Nothing here does I/O.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::key::ConversationKey;
use crate::time::Millis;
use crate::turn::PresenceKind;
use crate::window::Conversation;

/// The most batches one thought spans under `on_newer = "supersede"`: a batch that already
/// carries this many minus one superseded batches as `context` is never superseded itself, so a
/// user who types without pause still gets an answer (at the latest to the third batch).
pub const MAX_THOUGHT_BATCHES: u32 = 3;

/// The longest after a batch's close that its guard answers `typing` (the user is composing the
/// next message): the bot holds a finished reply at most this long in all, so typing delays an
/// answer by at most this, and the hand-off (answered after the reply, under `supersede`) stays
/// well inside the sink timeout (60 s).
pub const MAX_TYPING_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How soon a bot told `typing` asks again (the answer's `retry_after_ms`, at most).
pub const TYPING_RETRY_MS: u64 = 1_000;

/// What a batch carries: the URL the bot GETs (no other credentials).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyGuard {
    pub url: String,
}

/// What a reply guard is bound to; sealed into its URL, so the guard route trusts it only after
/// the seal verified. Deterministic for a batch (a retried hand-off carries the same bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardClaim {
    /// The batch's conversation (whose record the guard reads).
    #[serde(rename = "c")]
    pub key: ConversationKey,
    /// The batch's generation.
    #[serde(rename = "g")]
    pub gen: u64,
    /// The batch's id (kept outside the sealed part, as the per-batch key's input).
    #[serde(skip)]
    pub batch_id: Uuid,
    /// Messages the conversation had accepted when the batch closed (`Conversation::accepted`).
    #[serde(rename = "n")]
    pub accepted: u64,
    /// The end of the guard's validity, ms: the batch's close + the dedupe horizon.
    #[serde(rename = "e")]
    pub expires_at: u64,
    /// When the batch closed, ms: a presence received after it is the user typing again. 0 in
    /// guards sealed before it existed (they never answer `typing`).
    #[serde(rename = "t", default)]
    pub closed_at: u64,
}

/// Seals a claim into the reply guard a batch carries (the shell's key and public URL).
pub trait GuardSeal: Send + Sync + std::fmt::Debug {
    fn reply_guard(&self, claim: &GuardClaim) -> ReplyGuard;
}

/// The guard's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GuardAnswer {
    /// No message was accepted for the conversation after the batch closed: send the reply.
    Current,
    /// `newer_messages` were accepted after the batch closed. `supersede`: the conversation's
    /// next batch repeats this one as `context` (discard the reply, answer that batch as one
    /// thought); false: it will not (policy `append`, the batch's hand-off was already
    /// acknowledged, the thought reached [`MAX_THOUGHT_BATCHES`], or no next batch is there to
    /// carry it: the user unsent all they wrote after it).
    Superseded {
        newer_messages: u64,
        supersede: bool,
    },
    /// No newer message yet, but the user is typing one: the record's latest presence came
    /// after the batch closed and would still hold a window by the tenant's typing rule (a
    /// `composing`/`recording` for the typing hold, a `paused`/`available` for the stop grace).
    /// Hold the reply and ask again after `retry_after_ms`. Said at most [`MAX_TYPING_WAIT`] after the close; a bot
    /// that does not know this state may treat it as `current`.
    Typing { retry_after_ms: u64 },
}

/// A guard that cannot be answered: the route's 4xx.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GuardRefused {
    #[error("reply guard expired")]
    Expired,
    #[error("the conversation of this reply guard is no longer stored")]
    Gone,
}

/// The answer to `claim` at `now` from one consistent read of its conversation's record (`None`:
/// no record). Linearizable: `Current` only when the record read counts no message accepted
/// after the batch closed. A record whose count is below the claim's was created again after the
/// batch's one expired (it cannot while the guard is valid: records outlive the dedupe horizon
/// after their last write): everything it counts is newer, and at least one message was.
pub fn answer(
    conv: Option<&Conversation>,
    claim: &GuardClaim,
    now: Millis,
) -> Result<GuardAnswer, GuardRefused> {
    answer_typing(conv, claim, now, None)
}

/// [`answer`], and `Typing` when `typing` (the tenant's typing rule) is set and the record's
/// latest presence says the user is composing since the batch closed (see
/// [`GuardAnswer::Typing`]). A newer message always wins: `superseded` is never held back.
pub fn answer_typing(
    conv: Option<&Conversation>,
    claim: &GuardClaim,
    now: Millis,
    typing: Option<crate::turn::TypingRule>,
) -> Result<GuardAnswer, GuardRefused> {
    if claim.expires_at < now.0 {
        return Err(GuardRefused::Expired);
    }
    let conv = conv.ok_or(GuardRefused::Gone)?;
    let newer = match conv.accepted.checked_sub(claim.accepted) {
        Some(0) => return Ok(typing_wait(conv, claim, now, typing)),
        Some(n) => n,
        None => conv.accepted.max(1),
    };
    Ok(GuardAnswer::Superseded {
        newer_messages: newer,
        supersede: conv.is_superseded(claim.gen),
    })
}

/// `Typing` or `Current` for a batch with nothing newer.
fn typing_wait(
    conv: &Conversation,
    claim: &GuardClaim,
    now: Millis,
    typing: Option<crate::turn::TypingRule>,
) -> GuardAnswer {
    let limit = Millis(claim.closed_at).plus(MAX_TYPING_WAIT);
    let (Some(rule), Some(p)) = (typing, conv.turn.presence) else {
        return GuardAnswer::Current;
    };
    // As the end-of-turn rule holds a window: a `composing`/`recording` for the typing hold, a
    // `paused`/`available` (stopped for now: a mid-message pause) for the stop grace.
    let hold = match p.kind {
        PresenceKind::Composing | PresenceKind::Recording => rule.hold_ms,
        PresenceKind::Paused | PresenceKind::Available => rule.stop_grace(),
        PresenceKind::Unavailable => return GuardAnswer::Current,
    };
    let held_until = p.at.0.saturating_add(u64::from(hold)).min(limit.0);
    if claim.closed_at == 0 || p.at.0 <= claim.closed_at {
        return GuardAnswer::Current;
    }
    match held_until.checked_sub(now.0) {
        Some(left) if left > 0 => GuardAnswer::Typing {
            retry_after_ms: left.min(TYPING_RETRY_MS),
        },
        _ => GuardAnswer::Current,
    }
}

/// The claim a batch of `conv` (pending, generation `gen`) is guarded by, valid for `horizon`.
pub fn claim_for(
    key: &ConversationKey,
    batch: &crate::window::ClosedBatch,
    horizon: std::time::Duration,
) -> GuardClaim {
    GuardClaim {
        key: key.clone(),
        gen: batch.gen,
        batch_id: batch.batch_id,
        accepted: batch.accepted,
        expires_at: batch.closed_at.plus(horizon).0,
        closed_at: batch.closed_at.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Provider;
    use crate::message::Message;
    use crate::policy::Policy;

    fn key() -> ConversationKey {
        ConversationKey::new(Provider::Meta, "pn", "user")
    }

    fn counter() -> impl FnMut() -> u64 {
        let mut n = 0;
        move || {
            n += 1;
            n
        }
    }

    /// A record with one closed batch (two messages) and what came after it.
    fn closed_then(after: usize) -> (Conversation, GuardClaim) {
        let mut r = counter();
        let p = Policy::default();
        let mut c = Conversation::fresh(key(), Millis(1_000));
        for i in 0..2 {
            let m = Message::text(format!("m{i}"), "user", "hi");
            c = c
                .plan_append(m, &p, Millis(1_000 + i), &mut r)
                .unwrap()
                .next;
        }
        assert!(c.close_if_due(Millis(20_000)).is_some());
        let claim = claim_for(&key(), &c.pending[0], std::time::Duration::from_secs(3600));
        for i in 0..after {
            let m = Message::text(format!("n{i}"), "user", "and");
            c = c.plan_append(m, &p, Millis(21_000), &mut r).unwrap().next;
        }
        (c, claim)
    }

    #[test]
    fn current_until_a_message_is_accepted_after_the_close() {
        let (c, claim) = closed_then(0);
        assert_eq!(claim.accepted, 2);
        assert_eq!(
            answer(Some(&c), &claim, Millis(30_000)),
            Ok(GuardAnswer::Current)
        );
        let (c, claim) = closed_then(3);
        assert_eq!(
            answer(Some(&c), &claim, Millis(30_000)),
            Ok(GuardAnswer::Superseded {
                newer_messages: 3,
                supersede: false
            })
        );
    }

    #[test]
    fn expired_and_missing_records_are_refused_and_a_recreated_record_is_never_current() {
        let (c, claim) = closed_then(0);
        let late = Millis(claim.expires_at + 1);
        assert_eq!(answer(Some(&c), &claim, late), Err(GuardRefused::Expired));
        assert_eq!(
            answer(None, &claim, Millis(30_000)),
            Err(GuardRefused::Gone)
        );
        let fresh = Conversation::fresh(key(), Millis(40_000));
        let mut r = counter();
        let again = fresh
            .plan_append(
                Message::text("x", "user", "hi"),
                &Policy::default(),
                Millis(40_000),
                &mut r,
            )
            .unwrap()
            .next;
        assert_eq!(
            answer(Some(&again), &claim, Millis(41_000)),
            Ok(GuardAnswer::Superseded {
                newer_messages: 1,
                supersede: false
            })
        );
    }

    #[test]
    fn the_answer_is_the_documented_json() {
        let v = serde_json::to_value(GuardAnswer::Current).unwrap();
        assert_eq!(v, serde_json::json!({"state": "current"}));
        let v = serde_json::to_value(GuardAnswer::Superseded {
            newer_messages: 2,
            supersede: true,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"state": "superseded", "newer_messages": 2, "supersede": true})
        );
    }

    fn amend(id: &str, target: &str, kind: crate::message::MessageKind) -> Message {
        Message {
            kind,
            text: (kind == crate::message::MessageKind::Edit).then(|| "3 pizzas".to_string()),
            target: Some(crate::message::Target {
                message_id: target.into(),
                batch_id: None,
            }),
            ..Message::text(id, "user", "")
        }
    }

    #[test]
    fn an_edit_or_unsend_after_the_close_is_a_newer_message() {
        use crate::message::MessageKind;
        for kind in [MessageKind::Edit, MessageKind::Revoke] {
            let (c, claim) = closed_then(0);
            let mut r = counter();
            let p = Policy::default();
            let horizon = std::time::Duration::from_secs(3600);
            // The user edits (or unsends) "m0", which is in the closed batch.
            let c = c
                .plan_item(amend("e0", "m0", kind), &p, Millis(22_000), horizon, &mut r)
                .unwrap()
                .next;
            assert_eq!(
                answer(Some(&c), &claim, Millis(23_000)),
                Ok(GuardAnswer::Superseded {
                    newer_messages: 1,
                    supersede: false
                }),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn typing_after_the_close_holds_the_reply_within_its_bounds() {
        use crate::turn::{Presence, PresenceKind, TypingRule};
        let rule = TypingRule {
            grace_ms: 1_500,
            hold_ms: 12_000,
            stop_grace_ms: None,
        };
        let (mut c, claim) = closed_then(0);
        let typing =
            |c: &Conversation, at: u64| answer_typing(Some(c), &claim, Millis(at), Some(rule));
        // No presence since the close: current.
        assert_eq!(typing(&c, 21_000), Ok(GuardAnswer::Current));
        // A `composing` before the close says nothing of the batch.
        c.turn.presence = Some(Presence {
            kind: PresenceKind::Composing,
            at: Millis(claim.closed_at),
            sent_at: None,
        });
        assert_eq!(typing(&c, 21_000), Ok(GuardAnswer::Current));
        // One after it: typing, until the hold ends.
        c.turn.presence = Some(Presence {
            kind: PresenceKind::Composing,
            at: Millis(25_000),
            sent_at: None,
        });
        assert_eq!(
            typing(&c, 26_000),
            Ok(GuardAnswer::Typing {
                retry_after_ms: TYPING_RETRY_MS
            })
        );
        assert_eq!(
            typing(&c, 36_500),
            Ok(GuardAnswer::Typing {
                retry_after_ms: 500
            })
        );
        assert_eq!(typing(&c, 37_000), Ok(GuardAnswer::Current));
        // Never past MAX_TYPING_WAIT after the close, however often `composing` repeats.
        let limit = claim.closed_at + MAX_TYPING_WAIT.as_millis() as u64;
        c.turn.presence = Some(Presence {
            kind: PresenceKind::Composing,
            at: Millis(limit - 1_000),
            sent_at: None,
        });
        assert!(matches!(
            typing(&c, limit - 500),
            Ok(GuardAnswer::Typing { .. })
        ));
        assert_eq!(typing(&c, limit), Ok(GuardAnswer::Current));
        // `paused` (a mid-message pause): the stop grace; `unavailable`: current.
        c.turn.presence = Some(Presence {
            kind: PresenceKind::Paused,
            at: Millis(25_000),
            sent_at: None,
        });
        assert!(matches!(typing(&c, 26_000), Ok(GuardAnswer::Typing { .. })));
        let after_grace = 25_000 + u64::from(rule.stop_grace());
        assert_eq!(typing(&c, after_grace), Ok(GuardAnswer::Current));
        c.turn.presence = Some(Presence {
            kind: PresenceKind::Unavailable,
            at: Millis(25_000),
            sent_at: None,
        });
        assert_eq!(typing(&c, 26_000), Ok(GuardAnswer::Current));
        // Without the tenant's typing rule: current.
        c.turn.presence = Some(Presence {
            kind: PresenceKind::Composing,
            at: Millis(25_000),
            sent_at: None,
        });
        assert_eq!(
            answer(Some(&c), &claim, Millis(26_000)),
            Ok(GuardAnswer::Current)
        );
        // A newer message wins over typing.
        let c = c
            .plan_append(
                Message::text("n", "user", "and"),
                &Policy::default(),
                Millis(26_000),
                &mut counter(),
            )
            .unwrap()
            .next;
        assert!(matches!(
            typing(&c, 26_500),
            Ok(GuardAnswer::Superseded { .. })
        ));
        let v = serde_json::to_value(GuardAnswer::Typing {
            retry_after_ms: 1_000,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"state": "typing", "retry_after_ms": 1000})
        );
    }
}
