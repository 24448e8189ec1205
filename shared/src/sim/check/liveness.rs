//! Invariant 1 (Liveness): each batch is acknowledged within the bound after it was due by the
//! world's clock (or after its predecessor was acknowledged), unless the sink failed a hand-off
//! of the conversation from a lease before the batch's first message to its acknowledgement; and no conversation is wedged: left with pending work that no longer progresses once
//! faults stopped.
//!
//! The bound grows with the faults the world injected into the conversation's operations (and
//! into the sweep's query) from a lease before the batch's first message arrived or it was due
//! to its acknowledgement: [`Bounds::max_lag`] with none, plus [`Bounds::per_fault`] for each.
//! Faults are independent per operation, so a fixed bound is broken by enough faults in a row
//! (three crashes of one hand-off cost ~120 s each); a bound per fault holds for any number and
//! still catches a protocol that is late without a fault to explain it. The fault times are the
//! world's own record; nothing lull stamped is read.

use std::time::Duration;

use super::{Bounds, Ctx};
use crate::sim::invariant::{Invariant, Violation};
use crate::time::Millis;

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    let bounds = ctx.input.bounds;
    let rec = ctx.input.rec;
    for (c, list) in ctx.per_conv.iter().enumerate() {
        let mut prev_ack = None;
        for (pos, &i) in list.iter().enumerate() {
            let b = &ctx.batches[i];
            let Some(due) = ctx.world_due_latest(c, pos) else {
                prev_ack = b.first_ack;
                continue;
            };
            let eff_due = prev_ack.map_or(due, |a| due.max(a));
            if let Some(ack) = b.first_ack {
                let arrived = b
                    .batch
                    .messages
                    .first()
                    .and_then(|m| ctx.stored(m))
                    .map_or(eff_due, |s| s.arrived);
                let since = Millis(
                    arrived
                        .min(eff_due)
                        .0
                        .saturating_sub(bounds.lease.as_millis() as u64),
                );
                // A sink failure in that stretch holds the batch behind backoffs and outages
                // (its predecessor's too): excused, as the sink recovering is what it waits for.
                let troubled = count_in(&rec.sink_trouble[c], since, ack) > 0;
                let faults = count_in(&rec.faults_at[c], since, ack)
                    + count_in(&rec.global_faults_at, since, ack);
                let bound = bound(&bounds, faults);
                let lag = ack.since(eff_due);
                if !troubled && lag > bound {
                    out.push(
                        Violation::new(
                            Invariant::Liveness,
                            Some(c),
                            format!(
                                "gen {} acknowledged {lag:?} after due (bound {bound:?} with \
                                 {faults} faults)",
                                b.batch.generation
                            ),
                        )
                        .around(eff_due, ack),
                    );
                }
            }
            prev_ack = b.first_ack;
        }
    }
    for w in ctx.input.wedged {
        out.push(Violation::new(
            Invariant::Liveness,
            Some(w.conv),
            format!("wedged after the drain: {}", w.what),
        ));
    }
}

/// The longest lag allowed with `faults` faults.
fn bound(b: &Bounds, faults: usize) -> Duration {
    b.max_lag + b.per_fault * faults as u32 + b.skew
}

/// How many of the sorted times `at` fall in `[from, to]`.
fn count_in(at: &[Millis], from: Millis, to: Millis) -> usize {
    let lo = at.partition_point(|t| *t < from);
    let hi = at.partition_point(|t| *t <= to);
    hi.saturating_sub(lo)
}
