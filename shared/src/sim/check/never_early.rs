//! Invariant 3 (Never early): a batch's close reason holds for its content and the tenant's
//! policy, and its first hand-off starts no earlier than it was due by the world's clock, less the
//! clock skew between hosts. Quiet is measured from when the world delivered the last message's
//! request, max wait from the first's: lull's own `received_at`/`closed_at` are not trusted.

use super::Ctx;
use crate::sim::invariant::{Invariant, Violation};
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
                    // An operator pause lull stored before the batch's last message landed holds
                    // it until the pause ends (by lull's clock: at most the skew off).
                    let pause = b
                        .batch
                        .messages
                        .last()
                        .and_then(|m| ctx.stored(m))
                        .map(|last| {
                            ctx.input.rec.pauses[c]
                                .iter()
                                .filter(|&&(_, answered)| answered <= last.landed)
                                .map(|&(started, _)| started.plus(last.policy.pause))
                                .max()
                        });
                    let due = match pause.flatten() {
                        Some(until) if until > due => until,
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
