//! Invariant 2 (Once): a retried hand-off carries the same content, and a message id is in at most
//! one batch's `messages` (and once in it). A batch's `context` (supersede's documented repeat of
//! the batch it supersedes) does not count: `context_only_from_superseded.rs` checks it. With
//! `no_loss.rs` (every accepted message in an acknowledged batch's `messages`), every message is
//! in exactly one batch's `messages`.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::Ctx;
use crate::invariant::{Invariant, Violation};

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    let mut first: HashMap<Uuid, &crate::batch::Batch> = HashMap::new();
    for d in &ctx.input.rec.deliveries {
        let b = *first.entry(d.batch.batch_id).or_insert(&d.batch);
        if b != &d.batch {
            out.push(Violation::new(
                Invariant::Once,
                Some(d.conv),
                format!(
                    "batch {} handed off with different content",
                    d.batch.batch_id
                ),
            ));
        }
    }
    let mut home: HashMap<&str, Uuid> = HashMap::new();
    for b in &ctx.batches {
        let mut seen = HashSet::new();
        for m in &b.batch.messages {
            if !seen.insert(m.id.as_str()) {
                out.push(Violation::new(
                    Invariant::Once,
                    Some(b.conv),
                    format!("message {} twice in batch {}", m.id, b.batch.batch_id),
                ));
            }
            if let Some(other) = home.insert(m.id.as_str(), b.batch.batch_id) {
                if other != b.batch.batch_id {
                    out.push(Violation::new(
                        Invariant::Once,
                        Some(b.conv),
                        format!(
                            "message {} in batches {other} and {}",
                            m.id, b.batch.batch_id
                        ),
                    ));
                }
            }
        }
    }
}
