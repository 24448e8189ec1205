//! Invariant 8 (Latest content): the AI reads the latest accepted content of every message it
//! reads, and an edit once. For a message handed off after edits of it were stored (each edit's
//! write, by the world's clock), every edit stored before the message's batch could have closed
//! ([`Ctx::earliest_close`]) was applied: its content is the latest of those edits' (by the order
//! the writes landed) or a later one's, never older. An edit whose content a message was handed
//! off with is never handed off again, later, as an `edit` message. The edits' texts are the
//! workload's own (unique per edit); nothing lull stamps is trusted.

use std::collections::HashMap;

use super::Ctx;
use crate::invariant::{Invariant, Violation};
use crate::message::MessageKind;

/// One stored edit: its id, text, and when and in which order its write landed.
struct Edit<'a> {
    id: &'a str,
    text: &'a str,
    landed: crate::time::Millis,
    seq: u64,
}

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    let rec = ctx.input.rec;
    let mut edits: HashMap<&str, Vec<Edit<'_>>> = HashMap::new();
    for (i, m) in ctx.input.work.messages.iter().enumerate() {
        let (Some(a), Some(s)) = (m.amend.as_ref().filter(|a| !a.revoke), rec.stored[i]) else {
            continue;
        };
        edits.entry(a.target.as_str()).or_default().push(Edit {
            id: &m.id,
            text: &m.text,
            landed: s.landed,
            seq: s.seq,
        });
    }
    // Edit id -> the generation a message was handed off in with its content.
    let mut applied: HashMap<&str, u64> = HashMap::new();
    for (conv, list) in ctx.per_conv.iter().enumerate() {
        for (pos, &b) in list.iter().enumerate() {
            let seen = &ctx.batches[b];
            let close = ctx.earliest_close(conv, pos);
            for m in seen.batch.messages.iter().filter(|m| m.target.is_none()) {
                let Some(list) = edits.get(m.id.as_str()) else {
                    continue;
                };
                let text = m.text.as_deref().unwrap_or("");
                if let Some(e) = list.iter().find(|e| e.text == text) {
                    applied.insert(e.id, seen.batch.generation);
                }
                let Some(close) = close else { continue };
                let Some(latest) = list
                    .iter()
                    .filter(|e| e.landed < close)
                    .max_by_key(|e| e.seq)
                else {
                    continue;
                };
                if list.iter().any(|e| e.seq >= latest.seq && e.text == text) {
                    continue;
                }
                out.push(
                    Violation::new(
                        Invariant::LatestContent,
                        Some(conv),
                        format!(
                            "message {} handed off in gen {} with stale content {text:?}: edit {} \
                             was stored at {}, before its window could close",
                            m.id, seen.batch.generation, latest.id, latest.landed
                        ),
                    )
                    .around(latest.landed, seen.first_start),
                );
            }
        }
    }
    for seen in &ctx.batches {
        for m in seen
            .batch
            .messages
            .iter()
            .filter(|m| m.kind == MessageKind::Edit)
        {
            match applied.get(m.id.as_str()) {
                Some(&gen) if gen < seen.batch.generation => out.push(
                    Violation::new(
                        Invariant::LatestContent,
                        Some(seen.conv),
                        format!(
                            "edit {} applied twice: in place (gen {gen}), then handed off again \
                             in gen {}",
                            m.id, seen.batch.generation
                        ),
                    )
                    .around(seen.first_start, seen.first_start),
                ),
                _ => {}
            }
        }
    }
}
