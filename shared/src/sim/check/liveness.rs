//! Invariant 1 (Liveness): each batch is acknowledged within the bound after it was due by the
//! world's clock (or after its predecessor was acknowledged), unless the sink was failing
//! meanwhile; and no conversation is wedged: left with pending work that no longer progresses once
//! faults stopped.

use super::Ctx;
use crate::sim::invariant::{Invariant, Violation};

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    let bounds = ctx.input.bounds;
    let bound = bounds.max_lag + bounds.skew;
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
                let troubled = ctx.input.rec.sink_trouble[c]
                    .iter()
                    .any(|t| *t >= eff_due && *t <= ack);
                let lag = ack.since(eff_due);
                if !troubled && lag > bound {
                    out.push(
                        Violation::new(
                            Invariant::Liveness,
                            Some(c),
                            format!(
                                "gen {} acknowledged {lag:?} after due (bound {bound:?})",
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
