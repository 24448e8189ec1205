//! Invariant 4 (One at a time): no two sink calls of one conversation overlap (by the world's
//! clock: when each call started and when its answer came back).

use super::Ctx;
use crate::invariant::{Invariant, Violation};
use crate::time::Millis;

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    let mut calls: Vec<Vec<(Millis, Millis)>> = vec![Vec::new(); ctx.per_conv.len()];
    for d in &ctx.input.rec.deliveries {
        calls[d.conv].push((d.start, d.end));
    }
    for (c, mut list) in calls.into_iter().enumerate() {
        list.sort();
        // The call running longest so far: (start, end).
        let mut busy = (Millis(0), Millis(0));
        for (s, e) in list {
            if s < busy.1 {
                out.push(
                    Violation::new(
                        Invariant::OneAtATime,
                        Some(c),
                        format!(
                            "sink call at {s} overlaps one running from {} until {}",
                            busy.0, busy.1
                        ),
                    )
                    .around(busy.0, busy.1),
                );
            }
            if e > busy.1 {
                busy = (s, e);
            }
        }
    }
}
