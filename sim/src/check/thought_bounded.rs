//! Supersede is bounded: a thought spans at most `MAX_THOUGHT_BATCHES` batches (a batch whose
//! `context` already repeats that many minus one is never superseded itself), so a user who
//! types without pause still gets an answer. Followed through the `supersedes` links of the
//! batches handed off; `liveness.rs` checks every batch is acknowledged in time.

use std::collections::HashMap;

use uuid::Uuid;

use super::Ctx;
use crate::guard::MAX_THOUGHT_BATCHES;
use crate::invariant::{Invariant, Violation};

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    let supersedes: HashMap<Uuid, Option<Uuid>> = (ctx.batches.iter())
        .map(|b| (b.batch.batch_id, b.batch.supersedes))
        .collect();
    for b in &ctx.batches {
        // Batches in this thought: this one and each it supersedes, transitively (a cycle
        // would be cut at the bound).
        let mut span = 1;
        let mut at = b.batch.supersedes;
        while let Some(x) = at {
            span += 1;
            if span > MAX_THOUGHT_BATCHES {
                out.push(
                    Violation::new(
                        Invariant::SupersedeBounded,
                        Some(b.conv),
                        format!(
                            "gen {} ends a thought of more than {MAX_THOUGHT_BATCHES} batches",
                            b.batch.generation
                        ),
                    )
                    .around(b.first_start, b.first_start),
                );
                break;
            }
            at = supersedes.get(&x).copied().flatten();
        }
    }
}
