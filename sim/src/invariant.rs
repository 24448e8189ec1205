//! The invariants the simulator checks, by name, and what a broken one reports.

use std::fmt;

use crate::time::Millis;

/// One invariant of `docs/architecture.md`'s table. `Display` prints its name there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// 1. Every message that got a 2xx is in an acknowledged batch.
    NoLoss,
    /// 1. Each batch is acknowledged within the bound after it was due (unless the sink was
    ///    failing), and no conversation is left with pending work once the run drained.
    Liveness,
    /// 2. A message id is in at most one batch; a retried hand-off carries the same content.
    Once,
    /// 3. No hand-off starts before its batch was due by the world's clock (minus the skew).
    NeverEarly,
    /// 4. Messages keep the order in which they were stored, inside and across batches;
    ///    generations increase; g+1 is handed off only after g was acknowledged.
    InOrder,
    /// 4. No two sink calls of one conversation overlap.
    OneAtATime,
    /// 5. A batch holds only its own conversation's messages.
    Isolation,
    /// 6. Every drop and refusal the world saw was counted in lull's metrics.
    NothingSilent,
    /// 8. The AI never reads a message after its unsend was accepted, unless its batch could
    ///    have closed before.
    Unsent,
    /// 8. The AI reads the latest accepted content of every message it reads; an edit is
    ///    applied once.
    LatestContent,
    /// 2. A batch's `context` only repeats the batch its `supersedes` names, and only when a
    ///    guard or a hand-off answer superseded that batch after a newer message landed.
    ContextOnlyFromSuperseded,
    /// 2. A thought spans at most `MAX_THOUGHT_BATCHES` batches.
    SupersedeBounded,
    /// 9. A reply guard never answers `current` when a message was accepted after its batch
    ///    closed and before the guard's read.
    GuardNeverStale,
}

impl Invariant {
    pub const ALL: [Invariant; 13] = [
        Invariant::NoLoss,
        Invariant::Liveness,
        Invariant::Once,
        Invariant::NeverEarly,
        Invariant::InOrder,
        Invariant::OneAtATime,
        Invariant::Isolation,
        Invariant::NothingSilent,
        Invariant::Unsent,
        Invariant::LatestContent,
        Invariant::ContextOnlyFromSuperseded,
        Invariant::SupersedeBounded,
        Invariant::GuardNeverStale,
    ];

    /// The name used in the docs' invariant table.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::NoLoss => "1 no loss",
            Invariant::Liveness => "1 liveness",
            Invariant::Once => "2 once",
            Invariant::NeverEarly => "3 never early",
            Invariant::InOrder => "4 in order",
            Invariant::OneAtATime => "4 one at a time",
            Invariant::Isolation => "5 isolation",
            Invariant::NothingSilent => "6 nothing silent",
            Invariant::Unsent => "8 unsent",
            Invariant::LatestContent => "8 latest content",
            Invariant::ContextOnlyFromSuperseded => "2 context only from superseded",
            Invariant::SupersedeBounded => "2 supersede bounded",
            Invariant::GuardNeverStale => "9 guard never stale",
        }
    }

    /// A short label for the summary line (`no_loss=3`).
    pub fn label(self) -> &'static str {
        match self {
            Invariant::NoLoss => "no_loss",
            Invariant::Liveness => "liveness",
            Invariant::Once => "once",
            Invariant::NeverEarly => "never_early",
            Invariant::InOrder => "in_order",
            Invariant::OneAtATime => "one_at_a_time",
            Invariant::Isolation => "isolation",
            Invariant::NothingSilent => "nothing_silent",
            Invariant::Unsent => "unsent",
            Invariant::LatestContent => "latest_content",
            Invariant::ContextOnlyFromSuperseded => "context_only_from_superseded",
            Invariant::SupersedeBounded => "supersede_bounded",
            Invariant::GuardNeverStale => "guard_never_stale",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A broken invariant, with the conversation whose trace explains it.
#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: Invariant,
    pub conversation: Option<usize>,
    pub detail: String,
    /// The stretch of virtual time the trace should show.
    pub around: Option<(Millis, Millis)>,
}

impl Violation {
    pub(crate) fn new(invariant: Invariant, conversation: Option<usize>, detail: String) -> Self {
        Violation {
            invariant,
            conversation,
            detail,
            around: None,
        }
    }

    pub(crate) fn around(mut self, from: Millis, to: Millis) -> Self {
        self.around = Some((from, to));
        self
    }
}
