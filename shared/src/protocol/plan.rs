//! The flush as a pure planner: from the record a flush read and the time, the next step. The
//! executor (`flush.rs`) performs the step, reads the result and asks again, so every decision
//! of the trigger path lives here, with no I/O, and is unit-tested like the append planner.

use std::time::Duration;

use crate::time::Millis;
use crate::window::{Chain, Conversation};

use super::outcome::{Claim, FlushEnd};

/// What one flush knows about itself between steps.
#[derive(Clone, Debug)]
pub(crate) struct Cursor {
    pub claim: Claim,
    /// The chain token this flush arms with once it owns the chain: the trigger's own, or a fresh
    /// one for the sweep and a redrive.
    pub chain: u64,
    /// The token of the leases this flush takes.
    pub lease_token: u64,
    /// How long a lease lasts.
    pub lease: Duration,
    /// Batches handed off so far, and how many one flush may hand off before yielding.
    pub handed_off: u32,
    pub max_handoffs: u32,
    /// No lease may run past this (the shell's own deadline, e.g. a Lambda's remaining time).
    pub deadline: Option<Millis>,
    /// True until the first step was planned.
    pub first: bool,
}

/// The next thing a flush does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Stop here.
    End(FlushEnd),
    /// Write `next` (conditional on the version read), then end with `then`.
    Write { next: Conversation, then: FlushEnd },
    /// Write `next`, which holds this flush's lease on the oldest pending batch, then hand that
    /// batch off.
    HandOff(Conversation),
    /// Arm a trigger of the conversation's chain (`token`) for `at`, then end with `end`. When
    /// the conversation had no chain, `start` is the record with a new one, written first.
    Arm {
        start: Option<Conversation>,
        token: u64,
        at: Millis,
        end: FlushEnd,
        /// A trigger that fired before anything was due (counted).
        early: bool,
    },
}

/// Plans the next step of a flush of `conv` at `now`. `fresh_token` is a new chain token, used
/// only when the conversation has no chain to re-arm.
pub(crate) fn plan(conv: &Conversation, now: Millis, c: &Cursor, fresh_token: u64) -> Step {
    let owns_chain = conv.chain.is_some_and(|ch| ch.token == c.chain);
    let live = owns_chain || c.claim.adopts();
    if !live && !conv.is_past_due(now) {
        return Step::End(if c.first {
            FlushEnd::Stale
        } else {
            FlushEnd::Covered
        });
    }
    let rearm = |at: Millis, end: FlushEnd, early: bool| match conv.chain {
        Some(ch) => Step::Arm {
            start: None,
            token: ch.token,
            at,
            end,
            early,
        },
        None => {
            let mut start = conv.clone();
            start.restart_chain(fresh_token, at, now);
            Step::Arm {
                start: Some(start),
                token: fresh_token,
                at,
                end,
                early,
            }
        }
    };
    if c.handed_off >= c.max_handoffs && !conv.is_idle() {
        // Yield, so one chatty conversation cannot hold a flush forever; a trigger now resumes.
        return rearm(now, FlushEnd::Rearmed { at: now }, false);
    }
    let mut next = conv.clone();
    next.close_if_due(now);
    if next.pending.is_empty() {
        if next.window.is_none() {
            if live && next.end_chain(now) {
                return Step::Write {
                    next,
                    then: FlushEnd::Idle,
                };
            }
            return Step::End(FlushEnd::Idle);
        }
        if !live {
            return Step::End(FlushEnd::Covered);
        }
        // The window is not due yet: the trigger came early (or this is a sweep's stale view).
        let at = conv.due_at().unwrap_or(now);
        let early = c.handed_off == 0 && !c.claim.adopts();
        return rearm(at, FlushEnd::Rearmed { at }, early);
    }
    if c.claim == Claim::Redrive {
        next.lift_hold();
    }
    if next.is_parked() {
        let error = next.pending.first().and_then(|b| b.last_error.clone());
        return Step::End(FlushEnd::Parked { error });
    }
    if let Some(until) = next.held_until(now) {
        return Step::End(FlushEnd::BackingOff { until });
    }
    if let Some(until) = next.paused_until(now) {
        // An operator pause holds every hand-off of the conversation; wake up when it ends.
        return if live {
            rearm(until, FlushEnd::Rearmed { at: until }, false)
        } else {
            Step::End(FlushEnd::Covered)
        };
    }
    if c.deadline.is_some_and(|d| now.plus(c.lease) > d) {
        // Too little time left to finish a hand-off under a lease: leave it to a new trigger.
        return if live {
            rearm(now, FlushEnd::Rearmed { at: now }, false)
        } else {
            Step::End(FlushEnd::Covered)
        };
    }
    if !next.lease_head(now, c.lease, c.lease_token) {
        // Another flush is handing off; it continues with what follows. Cover the case where it
        // dies: wake up when its lease runs out.
        let until = next.due_at().unwrap_or(now);
        return if live {
            rearm(until, FlushEnd::Waiting { until }, false)
        } else {
            Step::End(FlushEnd::Covered)
        };
    }
    if !owns_chain {
        // Whoever hands off owns the chain from now on: the stored chain's trigger may never have
        // been sent (its append died before arming it), and this flush re-arms for what remains.
        // Free: it rides on the lease write.
        next.chain = Some(Chain {
            token: c.chain,
            armed_for: now,
        });
    }
    Step::HandOff(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::CloseReason;
    use crate::key::{ConversationKey, Provider};
    use crate::message::Message;
    use crate::policy::Policy;
    use crate::window::Hold;

    fn key() -> ConversationKey {
        ConversationKey::new(Provider::Meta, "pn", "user")
    }

    fn cursor(claim: Claim) -> Cursor {
        Cursor {
            claim,
            chain: match claim {
                Claim::Trigger { chain } => chain,
                _ => 7,
            },
            lease_token: 99,
            lease: Duration::from_secs(75),
            handed_off: 0,
            max_handoffs: 16,
            deadline: None,
            first: true,
        }
    }

    /// A conversation with one message appended at 0 (due at 8 s) whose chain is token 7.
    fn one_message() -> Conversation {
        let mut n = 6;
        let mut c = Conversation::fresh(key(), Millis(0))
            .plan_append(
                Message::text("m1", "u", "hi"),
                &Policy::default(),
                Millis(0),
                &mut || {
                    n += 1;
                    n
                },
            )
            .expect("append")
            .next;
        c.chain = Some(Chain {
            token: 7,
            armed_for: Millis(8000),
        });
        c
    }

    #[test]
    fn an_early_trigger_rearms_for_the_due_time() {
        let c = one_message();
        match plan(&c, Millis(7000), &cursor(Claim::Trigger { chain: 7 }), 1) {
            Step::Arm {
                start: None,
                token: 7,
                at,
                end,
                early: true,
            } => {
                assert_eq!(at, Millis(8000));
                assert_eq!(end, FlushEnd::Rearmed { at: Millis(8000) });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stale_trigger_is_dropped_unless_past_due() {
        let c = one_message();
        let stale = cursor(Claim::Trigger { chain: 3 });
        assert_eq!(
            plan(&c, Millis(7000), &stale, 1),
            Step::End(FlushEnd::Stale)
        );
        let later = Cursor {
            first: false,
            ..stale.clone()
        };
        assert_eq!(
            plan(&c, Millis(7000), &later, 1),
            Step::End(FlushEnd::Covered)
        );
        // Past due, a stale trigger does the work (and adopts the chain in its lease write).
        match plan(&c, Millis(8000), &stale, 1) {
            Step::HandOff(next) => {
                assert_eq!(next.pending[0].reason, CloseReason::Quiet);
                assert_eq!(next.chain.map(|ch| ch.token), Some(3));
                assert_eq!(next.pending[0].lease_token(), Some(99));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_due_window_closes_and_is_leased_in_one_write() {
        let c = one_message();
        match plan(&c, Millis(8000), &cursor(Claim::Trigger { chain: 7 }), 1) {
            Step::HandOff(next) => {
                assert!(next.window.is_none());
                assert_eq!(
                    next.ver,
                    c.ver + 1,
                    "close and lease: one version, one write"
                );
                assert_eq!(
                    next.pending[0].hold,
                    Some(Hold::Lease {
                        until: Millis(83_000),
                        token: 99
                    })
                );
            }
            other => panic!("{other:?}"),
        }
    }

    fn leased(by: u64, until: Millis) -> Conversation {
        let mut c = one_message();
        c.close_if_due(Millis(8000));
        c.pending[0].hold = Some(Hold::Lease { until, token: by });
        c
    }

    #[test]
    fn a_live_lease_makes_the_chain_wait_for_it() {
        let c = leased(5, Millis(20_000));
        match plan(&c, Millis(9000), &cursor(Claim::Trigger { chain: 7 }), 1) {
            Step::Arm { at, end, .. } => {
                assert_eq!(at, Millis(20_000));
                assert_eq!(
                    end,
                    FlushEnd::Waiting {
                        until: Millis(20_000)
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        // After it runs out, the batch is leased again (same batch, same id).
        assert!(matches!(
            plan(&c, Millis(20_000), &cursor(Claim::Trigger { chain: 7 }), 1),
            Step::HandOff(_)
        ));
    }

    #[test]
    fn backoff_and_park_hold_the_batch_until_a_redrive() {
        let mut c = leased(99, Millis(83_000));
        assert!(c.hold_after_failure(
            c.pending[0].gen,
            99,
            Millis(9000),
            Duration::from_secs(4),
            "503"
        ));
        let t = cursor(Claim::Trigger { chain: 7 });
        assert_eq!(
            plan(&c, Millis(10_000), &t, 1),
            Step::End(FlushEnd::BackingOff {
                until: Millis(13_000)
            })
        );
        assert!(matches!(plan(&c, Millis(13_000), &t, 1), Step::HandOff(_)));
        assert!(matches!(
            plan(&c, Millis(10_000), &cursor(Claim::Redrive), 1),
            Step::HandOff(_)
        ));
        let mut p = leased(99, Millis(83_000));
        assert!(p.park(p.pending[0].gen, 99, Millis(9000), "404 from bot.example"));
        assert_eq!(p.due_at(), None, "the sweep leaves a parked batch alone");
        assert_eq!(
            plan(&p, Millis(1_000_000), &cursor(Claim::Sweep), 1),
            Step::End(FlushEnd::Parked {
                error: Some("404 from bot.example".into())
            })
        );
        assert!(matches!(
            plan(&p, Millis(1_000_000), &cursor(Claim::Redrive), 1),
            Step::HandOff(_)
        ));
    }

    #[test]
    fn no_lease_is_taken_that_would_outlive_the_deadline() {
        let c = one_message();
        let t = Cursor {
            deadline: Some(Millis(8000 + 74_999)),
            ..cursor(Claim::Trigger { chain: 7 })
        };
        match plan(&c, Millis(8000), &t, 1) {
            Step::Arm { at, end, .. } => {
                assert_eq!(at, Millis(8000));
                assert_eq!(end, FlushEnd::Rearmed { at: Millis(8000) });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_lease_that_ends_exactly_at_the_deadline_is_taken() {
        let c = one_message();
        let t = Cursor {
            deadline: Some(Millis(8000 + 75_000)),
            ..cursor(Claim::Trigger { chain: 7 })
        };
        match plan(&c, Millis(8000), &t, 1) {
            Step::HandOff(next) => assert_eq!(
                next.pending[0].hold,
                Some(Hold::Lease {
                    until: Millis(83_000),
                    token: 99
                })
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_idle_conversation_ends_its_chain_and_a_lost_chain_is_restarted() {
        let mut c = one_message();
        c.close_if_due(Millis(8000));
        c.pending.clear();
        match plan(&c, Millis(9000), &cursor(Claim::Trigger { chain: 7 }), 1) {
            Step::Write { next, then } => {
                assert!(next.chain.is_none());
                assert_eq!(then, FlushEnd::Idle);
            }
            other => panic!("{other:?}"),
        }
        // The sweep finds a window with no chain that is not due after all (a lagging index):
        // it starts a chain for the due time.
        let mut lost = one_message();
        lost.chain = None;
        match plan(&lost, Millis(5000), &cursor(Claim::Sweep), 42) {
            Step::Arm {
                start: Some(start),
                token: 42,
                at,
                early: false,
                ..
            } => {
                assert_eq!(at, Millis(8000));
                assert_eq!(start.chain.map(|ch| ch.token), Some(42));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_flush_yields_after_its_hand_off_budget() {
        let c = leased(5, Millis(0));
        let t = Cursor {
            handed_off: 16,
            ..cursor(Claim::Trigger { chain: 7 })
        };
        assert!(matches!(
            plan(&c, Millis(9000), &t, 1),
            Step::Arm {
                end: FlushEnd::Rearmed { .. },
                ..
            }
        ));
    }
}
