//! Invariant 6 (Nothing silent): every drop and refusal the world saw was counted in lull's
//! metrics, read through a counting recorder installed while the protocol ran.
//!
//! - duplicates: every request answered 2xx as a duplicate is counted, and nothing more than the
//!   evidence of duplicates that reached a live task (the store's "duplicate" answers, and reads
//!   of a record still holding the task's own message);
//! - refused appends: every webhook request the protocol refused (no room, too large, too busy);
//! - dropped triggers: every trigger the shell deleted after a flush that wrote nothing, armed
//!   nothing and called no sink is counted as stale or waiting.

use super::Ctx;
use crate::invariant::{Invariant, Violation};

/// What lull's counters said at the end of the run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counted {
    pub duplicates: u64,
    pub appends_refused: u64,
    pub stale_triggers: u64,
    pub waiting_triggers: u64,
}

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    let seen = ctx.input.rec.drops;
    let n = ctx.input.counted;
    let mut fail =
        |detail: String| out.push(Violation::new(Invariant::NothingSilent, None, detail));
    if n.duplicates < seen.duplicate_answers || n.duplicates > seen.duplicate_results {
        fail(format!(
            "{} duplicates counted; the world saw {} answered as duplicates out of {} \
             duplicate store answers",
            n.duplicates, seen.duplicate_answers, seen.duplicate_results
        ));
    }
    if n.appends_refused < seen.refused_answers {
        fail(format!(
            "{} refused appends counted; the world saw {}",
            n.appends_refused, seen.refused_answers
        ));
    }
    if n.stale_triggers < seen.stale_triggers {
        fail(format!(
            "{} stale triggers counted; the protocol reported {}",
            n.stale_triggers, seen.stale_triggers
        ));
    }
    let dropped_counted = n.stale_triggers + n.waiting_triggers;
    if dropped_counted < seen.dropped_triggers {
        fail(format!(
            "{dropped_counted} stale or waiting triggers counted; the world saw {} triggers \
             dropped without effect",
            seen.dropped_triggers
        ));
    }
}
