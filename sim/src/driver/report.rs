//! The end of a run: what was left wedged, the checker's verdict, the report and the traces
//! around the first violations.

use std::time::Duration;

use lull_core::metrics as m;
use lull_core::time::Millis;

use super::{lock, Driver};
use crate::check::{self, Bounds, Counted, Wedged};
use crate::exec::{self, World};
use crate::invariant::Violation;
use crate::report::{GuardCounts, SimReport};

impl Driver {
    /// Conversations whose record still holds work: after a drain that ran to its end, they no
    /// longer progress.
    fn wedged(&self, w: &World) -> Vec<Wedged> {
        w.store
            .conversations()
            .into_iter()
            .filter(|c| !c.is_idle())
            .filter_map(|c| {
                let conv = *w.rec.conv_index.get(&c.key)?;
                let size = exec::item_size(&c);
                Some(Wedged {
                    conv,
                    what: format!(
                        "{} pending batches, {} open window, record of {size} bytes",
                        c.pending.len(),
                        if c.window.is_some() { "an" } else { "no" },
                    ),
                })
            })
            .collect()
    }

    pub(super) fn report(&mut self, start: Millis) -> SimReport {
        // Drop unfinished tasks before reading the world, so no future holds a borrow; their calls
        // are forgotten first, as a crash's would be.
        for id in self.tasks.keys() {
            lock(&self.world).end_task(*id);
        }
        self.tasks.clear();
        let w = lock(&self.world);
        // Liveness (`check/liveness.rs`). With no fault: a trigger fires at the due time plus
        // SQS's rounding and polling; one sweep pass and the index's lag are allowed on top. Each
        // fault adds at most the longest recovery from one (the hand-off timing rule,
        // `timing.rs`): a flush that died holds its lease, and the next one acts when SQS
        // redelivers its trigger (the visibility timeout, at least the function timeout, itself
        // lease + 15 s) or, on the sweep path, at the first sweep pass after the lease ended
        // (lease + one sweep interval, seen through the index's lag); a lost or failed trigger,
        // a store error or throttle costs one sweep interval or one visibility timeout; a late
        // trigger at most 60 s.
        let timing = self.cfg.buffer.timing;
        let slack = Duration::from_secs(5);
        let bounds = Bounds {
            max_lag: self.cfg.sweep_interval
                + self.cfg.index_lag
                + slack
                + if self.cfg.ai_step {
                    crate::ai_step::HOLDS_AT_MOST
                } else {
                    Duration::ZERO
                },
            per_fault: self
                .cfg
                .visibility_timeout
                .max(timing.lease() + self.cfg.sweep_interval)
                + self.cfg.index_lag
                + slack,
            lease: timing.lease(),
            skew: self.cfg.clock_skew,
        };
        let wedged = self.wedged(&w);
        let counted = Counted {
            duplicates: self.counts.get(m::DUPLICATES),
            appends_refused: self.counts.get(m::APPENDS_REFUSED),
            stale_triggers: self.counts.get(m::STALE_TRIGGERS),
            waiting_triggers: self.counts.get(m::WAITING_TRIGGERS),
        };
        let input = check::Input {
            rec: &w.rec,
            work: &self.work,
            bounds,
            counted,
            wedged: &wedged,
        };
        let violations = check::check(&input);
        let released_by_resume = check::released_by_resume(&input);
        let accepted_amends = (self.work.messages.iter())
            .zip(&w.rec.accepted)
            .filter(|(m, a)| m.amend.is_some() && a.is_some())
            .count();
        let mut batches: Vec<_> = w
            .rec
            .deliveries
            .iter()
            .filter(|d| d.acked)
            .map(|d| d.batch.batch_id)
            .collect();
        batches.sort();
        batches.dedup();
        let guards = self.guard_counts(&w);
        SimReport {
            guards,
            seed: self.cfg.seed,
            protocol: self.cfg.protocol,
            messages: w.rec.accepted_count - accepted_amends,
            amends: accepted_amends,
            batches: batches.len(),
            faults: w.rec.faults,
            traces: self.traces(&w, &violations, start),
            violations,
            dead_letters: w.dlq,
            simulated: w.now.since(start),
            wedged: wedged.len(),
            released_by_resume,
            item_limit_hits: w.rec.item_limit_hits,
            refused_appends: w.rec.drops.refused_answers,
            longest_sink_call: w
                .rec
                .deliveries
                .iter()
                .map(|d| d.end.since(d.start))
                .max()
                .unwrap_or_default(),
        }
    }

    /// What the bots asked and were told, and what supersede handed off.
    fn guard_counts(&self, w: &World) -> GuardCounts {
        let g = &w.rec.guard;
        let (current, superseded, newer, typing) = g.by_state();
        let mut seen = std::collections::HashSet::new();
        let (mut superseded_batches, mut context_messages) = (0, 0);
        for d in &w.rec.deliveries {
            if d.batch.supersedes.is_some() && seen.insert(d.batch.batch_id) {
                superseded_batches += 1;
                context_messages += d.batch.context.len();
            }
        }
        GuardCounts {
            asked: g.asked,
            failed: g.failed,
            current,
            superseded,
            newer,
            typing,
            discarded: g.discarded,
            declared: g.declared.values().map(Vec::len).sum(),
            superseded_batches,
            context_messages,
        }
    }

    /// The traces of the conversations this run traced, each around its first violation: every
    /// event from 30 s before the stretch the violation names to 1 s after it (the first and
    /// last [`TRACE_LINES`] of a longer one).
    fn traces(&self, w: &World, violations: &[Violation], start: Millis) -> Vec<String> {
        let mut traces = Vec::new();
        for (&c, events) in &w.rec.traces {
            let Some(v) = violations.iter().find(|v| v.conversation == Some(c)) else {
                continue;
            };
            let key = &self.work.conversations[c].key;
            let mut t = format!(
                "  trace of conversation #{c} ({}, hash {}) for [{}] {}:\n",
                key.provider,
                key.log_hash(b"sim"),
                v.invariant,
                v.detail
            );
            let (from, to) = v.around.map_or((Millis(0), Millis(u64::MAX)), |(a, b)| {
                (
                    Millis(a.0.saturating_sub(30_000)),
                    b.plus(Duration::from_secs(1)),
                )
            });
            let events: Vec<_> = events
                .iter()
                .filter(|(at, _)| *at >= from && *at <= to)
                .collect();
            let elided = events.len().saturating_sub(2 * TRACE_LINES);
            for (i, (at, ev)) in events.iter().enumerate() {
                if elided > 0 && i == TRACE_LINES {
                    t.push_str(&format!("    ... {elided} events ...\n"));
                }
                if elided > 0 && i >= TRACE_LINES && i < TRACE_LINES + elided {
                    continue;
                }
                t.push_str(&format!(
                    "    +{:>9.3}s {ev}\n",
                    at.since(start).as_secs_f64()
                ));
            }
            traces.push(t);
        }
        traces
    }
}

/// Events printed from each end of a long trace.
const TRACE_LINES: usize = 150;
