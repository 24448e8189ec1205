//! Invariant 8 (Unsent): the AI never reads a message after its unsend was accepted (the
//! unsend's 2xx), unless the message's batch could have closed before that, by the world's clock
//! ([`Ctx::earliest_close`]): a closed batch never changes, so the unsend then goes out as a
//! `revoke` message of the next batch instead. An `edit` message of the unsent message carries
//! its content, so the same holds for it. What lull stamps (close times) is not trusted.

use std::collections::HashMap;

use super::Ctx;
use crate::message::MessageKind;
use crate::sim::invariant::{Invariant, Violation};
use crate::time::Millis;

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    let rec = ctx.input.rec;
    // The first 2xx of an unsend of each message.
    let mut unsent: HashMap<&str, Millis> = HashMap::new();
    for (i, m) in ctx.input.work.messages.iter().enumerate() {
        let (Some(a), Some(at)) = (m.amend.as_ref().filter(|a| a.revoke), rec.accepted[i]) else {
            continue;
        };
        let first = unsent.entry(a.target.as_str()).or_insert(at);
        *first = (*first).min(at);
    }
    for (conv, list) in ctx.per_conv.iter().enumerate() {
        for (pos, &b) in list.iter().enumerate() {
            let seen = &ctx.batches[b];
            for m in &seen.batch.messages {
                // An `edit` message's content is its original's: an unsend erases it too.
                let original = match (&m.target, m.kind) {
                    (None, _) => m.id.as_str(),
                    (Some(t), MessageKind::Edit) => t.message_id.as_str(),
                    _ => continue,
                };
                let Some(&at) = unsent.get(original) else {
                    continue;
                };
                match ctx.earliest_close(conv, pos) {
                    Some(close) if close > at => {}
                    _ => continue,
                }
                out.push(
                    Violation::new(
                        Invariant::Unsent,
                        Some(conv),
                        format!(
                            "message {} (of {original}) handed off in gen {} (first at {}) though \
                             the unsend was accepted at {at}, before its window could close",
                            m.id, seen.batch.generation, seen.first_start
                        ),
                    )
                    .around(at, seen.first_start),
                );
            }
        }
    }
}
