//! Invariant 3 (Never early): a batch's close reason holds for its content and the tenant's
//! policy, and its first hand-off starts no earlier than it was due by the world's clock, less the
//! clock skew between hosts. An operator pause holds it until the pause ended: its full length,
//! or an operator resume (`Ctx::pause_hold`). Quiet is measured from when the world delivered the
//! last message's request, max wait from the first's: lull's own `received_at`/`closed_at` are
//! not trusted.

use super::Ctx;
use crate::invariant::{Invariant, Violation};
use crate::time::Millis;

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    let skew = ctx.input.bounds.skew;
    for (c, list) in ctx.per_conv.iter().enumerate() {
        for (pos, &i) in list.iter().enumerate() {
            let b = &ctx.batches[i];
            let gen = b.batch.generation;
            if b.batch.messages.is_empty() {
                out.push(Violation::new(
                    Invariant::NeverEarly,
                    Some(c),
                    format!("empty batch gen {gen}"),
                ));
                continue;
            }
            match ctx.world_due(c, pos) {
                None => {}
                Some(Err(why)) => out.push(Violation::new(Invariant::NeverEarly, Some(c), why)),
                Some(Ok(due)) => {
                    let due = match ctx.pause_hold(c, pos) {
                        Some(hold) if hold.until > due => hold.until,
                        _ => due,
                    };
                    let allowed = Millis(due.0.saturating_sub(skew.as_millis() as u64));
                    if b.first_start < allowed {
                        out.push(
                            Violation::new(
                                Invariant::NeverEarly,
                                Some(c),
                                format!(
                                    "gen {gen} ({:?}) handed off at {} before due {due} \
                                     (skew allowed {skew:?})",
                                    b.batch.reason, b.first_start
                                ),
                            )
                            .around(b.first_start, due),
                        );
                    }
                }
            }
        }
    }
}

/// How many batches an operator resume released: handed off before the pause that held them
/// would have ended (so the checker verified them against the rule after the resume).
pub(super) fn released_by_resume(ctx: &Ctx<'_>) -> usize {
    let skew = ctx.input.bounds.skew.as_millis() as u64;
    let mut n = 0;
    for (c, list) in ctx.per_conv.iter().enumerate() {
        for (pos, &i) in list.iter().enumerate() {
            if let Some(hold) = ctx.pause_hold(c, pos) {
                if hold.until < hold.full && ctx.batches[i].first_start.0 + skew < hold.full.0 {
                    n += 1;
                }
            }
        }
    }
    n
}
