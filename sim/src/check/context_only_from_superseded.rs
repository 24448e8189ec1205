//! Supersede (`docs/batch.md`, "`on_newer = \"supersede\"`"): a batch's `context` only repeats
//! the batch named by its `supersedes` (that batch's own `context`, then its `messages`, in
//! order: what it handed off), and only when that batch really was superseded, by something
//! the world saw happen while a message of the conversation had landed after it closed:
//!
//! - a guard request for it whose write landed (the guard marks the record), or whose answer
//!   the bot got as `superseded` with `supersede` (the mark is in the record it read), or
//! - a hand-off answer declaring it superseded that reached lull (`Lull-Reply: superseded`).
//!
//! "Closed" is the world's observation: the first write that landed with the batch among the
//! record's pending batches (`record::GuardRecord`). "Landed after it closed" counts every item
//! of the conversation, edits and unsends too (lull counts them as newer messages). `context`
//! never counts as a hand-off of its messages: `once.rs` and `no_loss.rs` read `messages` only.

use std::collections::HashMap;

use uuid::Uuid;

use super::{BatchSeen, Ctx};
use crate::guard::GuardAnswer;
use crate::invariant::{Invariant, Violation};
use crate::time::Millis;

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    let (rec, work) = (ctx.input.rec, ctx.input.work);
    let g = &rec.guard;
    let by_id: HashMap<Uuid, &BatchSeen<'_>> =
        ctx.batches.iter().map(|b| (b.batch.batch_id, b)).collect();
    // Per conversation: when each of its items landed, sorted.
    let mut landed: Vec<Vec<Millis>> = vec![Vec::new(); work.conversations.len()];
    for (m, s) in work.messages.iter().zip(&rec.stored) {
        if let Some(s) = s {
            landed[m.conv].push(s.landed);
        }
    }
    for l in &mut landed {
        l.sort_unstable();
    }
    // Per batch: when a guard answered it `superseded` with `supersede`, by its read.
    let mut said: HashMap<Uuid, Vec<Millis>> = HashMap::new();
    for a in &g.answers {
        if let GuardAnswer::Superseded {
            supersede: true, ..
        } = a.answer
        {
            said.entry(a.batch_id).or_default().push(a.read_at);
        }
    }
    for b in &ctx.batches {
        let batch = b.batch;
        let fail = |detail: String| {
            Violation::new(Invariant::ContextOnlyFromSuperseded, Some(b.conv), detail)
                .around(b.first_start, b.first_start)
        };
        let Some(x) = batch.supersedes else {
            if !batch.context.is_empty() {
                out.push(fail(format!(
                    "gen {} carries {} context messages and supersedes nothing",
                    batch.generation,
                    batch.context.len()
                )));
            }
            continue;
        };
        let Some(sup) = by_id.get(&x).filter(|s| s.conv == b.conv) else {
            out.push(fail(format!(
                "gen {} supersedes {x}, which this conversation never handed off",
                batch.generation
            )));
            continue;
        };
        let repeat: Vec<&str> = (sup.batch.context.iter())
            .chain(&sup.batch.messages)
            .map(|m| m.id.as_str())
            .collect();
        let context: Vec<&str> = batch.context.iter().map(|m| m.id.as_str()).collect();
        if context != repeat {
            out.push(fail(format!(
                "gen {} repeats {context:?} as context of gen {}, which handed off {repeat:?}",
                batch.generation, sup.batch.generation
            )));
        }
        let Some(&closed) = g.closed_at.get(&x) else {
            out.push(fail(format!(
                "gen {} supersedes gen {}, never seen closed",
                batch.generation, sup.batch.generation
            )));
            continue;
        };
        let l = &landed[b.conv];
        let newer = l.get(l.partition_point(|t| *t <= closed)).copied();
        let justified = (g.marks.get(&x).into_iter().flatten())
            .chain(said.get(&x).into_iter().flatten())
            .chain(g.declared.get(&x).into_iter().flatten())
            .any(|&at| newer.is_some_and(|n| n <= at));
        if !justified {
            out.push(fail(format!(
                "gen {} repeats gen {}, which no guard or hand-off answer superseded after a \
                 newer message (first newer message landed at {:?})",
                batch.generation,
                sup.batch.generation,
                newer.map(|n| n.0)
            )));
        }
    }
}
