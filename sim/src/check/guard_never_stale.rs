//! The reply guard is linearizable against the record: a guard never answers `current` when a
//! message of its conversation was accepted after its batch closed and before the guard's read
//! (nor `typing`: a newer message always wins over typing, `docs/batch.md`).
//!
//! Both ends are the world's observations (`record::GuardRecord`): the batch closed at the
//! first write that landed with it among the record's pending batches (from then on nothing
//! joins its `messages`); a message came after it when its write landed after that one; it was
//! accepted when its 2xx was answered, and the guard's answer is made from its last store read
//! (its load, or the conditional write whose answer carried the record): a message answered
//! 2xx before that read landed before it, so the read counted it. Only new messages count here
//! (lull counts edits and unsends too, but an edit of an unsent message adds nothing to count).

use super::Ctx;
use crate::guard::GuardAnswer;
use crate::invariant::{Invariant, Violation};
use crate::time::Millis;

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    let (rec, work) = (ctx.input.rec, ctx.input.work);
    // Per conversation: (landed, 2xx, message) of its new messages.
    let mut newer: Vec<Vec<(Millis, Millis, usize)>> = vec![Vec::new(); work.conversations.len()];
    for (i, m) in work.messages.iter().enumerate() {
        if let (None, Some(s), Some(a)) = (&m.amend, rec.stored[i], rec.accepted[i]) {
            newer[m.conv].push((s.landed, a, i));
        }
    }
    for a in &rec.guard.answers {
        if let GuardAnswer::Superseded { .. } = a.answer {
            continue;
        }
        let Some(&closed) = rec.guard.closed_at.get(&a.batch_id) else {
            continue;
        };
        let stale = (newer[a.conv].iter())
            .filter(|(landed, accepted, _)| *landed > closed && *accepted < a.read_at)
            .min_by_key(|(_, accepted, _)| *accepted);
        if let Some(&(landed, accepted, i)) = stale {
            out.push(
                Violation::new(
                    Invariant::GuardNeverStale,
                    Some(a.conv),
                    format!(
                        "the guard of batch {} said {:?} from a read at {} ms, though {} landed \
                         at {} ms (after the batch closed at {} ms) and was accepted at {} ms",
                        a.batch_id,
                        a.answer,
                        a.read_at.0,
                        work.messages[i].id,
                        landed.0,
                        closed.0,
                        accepted.0
                    ),
                )
                .around(closed, a.read_at),
            );
        }
    }
}
