//! Invariant 1 (No loss): every message the world got a 2xx for is in a batch the sink
//! acknowledged; edits and unsends, and the messages the user unsent, excepted (they may be
//! applied in place: `unsent.rs` and `latest_content.rs` check them).

use super::Ctx;
use crate::invariant::{Invariant, Violation};

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    let rec = ctx.input.rec;
    for (i, m) in ctx.input.work.messages.iter().enumerate() {
        let detail = match rec.accepted[i] {
            None => format!("message {} never got a 2xx (gateway gave up)", m.id),
            Some(_) if !rec.exempt[i] && !rec.acked_ids.contains(&m.id) => {
                format!("accepted message {} was never handed off", m.id)
            }
            Some(_) => continue,
        };
        out.push(Violation::new(Invariant::NoLoss, Some(m.conv), detail));
    }
}
