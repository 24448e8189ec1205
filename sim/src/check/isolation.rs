//! Invariant 5 (Isolation): a batch holds only its own conversation's messages.

use super::Ctx;
use crate::invariant::{Invariant, Violation};

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    let work = ctx.input.work;
    for b in &ctx.batches {
        if work.conversations.get(b.conv).map(|c| &c.key) != Some(&b.batch.conversation) {
            out.push(Violation::new(
                Invariant::Isolation,
                None,
                format!("batch {} for an unknown conversation", b.batch.batch_id),
            ));
            continue;
        }
        for m in &b.batch.messages {
            match ctx.msg_index.get(m.id.as_str()) {
                Some(&i) if work.messages[i].conv == b.conv => {}
                _ => out.push(Violation::new(
                    Invariant::Isolation,
                    Some(b.conv),
                    format!("message {} in another conversation's batch", m.id),
                )),
            }
        }
    }
}
