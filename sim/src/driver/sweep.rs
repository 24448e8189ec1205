//! The periodic sweep, as the shells run it: a tick every sweep interval (which also draws the
//! sink outages and store throttling bursts), one query for the conversations past due, and a
//! pass that flushes them at most [`SWEEP_CONCURRENCY`] at a time.

use lull_core::protocol::SWEEP_CONCURRENCY;
use lull_core::ConversationKey;

use super::{lock, Driver, TaskFuture, TaskKind, TaskOutput};
use crate::exec::Event;

impl Driver {
    pub(super) fn sweep_tick(&mut self) {
        let mut w = lock(&self.world);
        let now = w.now;
        w.schedule(now.plus(self.cfg.sweep_interval), Event::SweepTick);
        let f = self.cfg.faults;
        if !w.sink_down && w.fault(f.sink_outage) {
            w.rec.faults += 1;
            w.sink_down = true;
            let max = f.sink_outage_max.as_millis() as u64;
            let back = now.plus(w.between(30_000.min(max), max));
            w.schedule(back, Event::SinkOutage { down: false });
        }
        if w.fault(f.store_throttle) {
            w.rec.faults += 1;
            w.throttled_until = now.plus(w.between(1_000, 10_000));
        }
        drop(w);
        if self.sweep_running {
            return;
        }
        self.sweep_running = true;
        let sut = self.sut.clone();
        let fut: TaskFuture = Box::pin(async move { TaskOutput::Sweep(sut.sweep_due(1000).await) });
        self.spawn(TaskKind::Sweep, None, fut);
    }

    /// The sweep flushes every conversation it found past due, at most [`SWEEP_CONCURRENCY`] at a
    /// time, as the shells' `Handoff::sweep` does: one slow sink holds back its own conversation
    /// and a share of the pass, and a pass ends only when its last flush did.
    pub(super) fn sweep_found(&mut self, keys: Vec<ConversationKey>) {
        self.sweep_queue.extend(keys);
        self.sweep_more();
    }

    /// Starts the pass's next flushes while fewer than [`SWEEP_CONCURRENCY`] run; ends the pass
    /// when none is left.
    pub(super) fn sweep_more(&mut self) {
        while self.sweeping.len() < SWEEP_CONCURRENCY {
            let Some(key) = self.sweep_queue.pop_front() else {
                break;
            };
            if !self.sweeping.insert(key.clone()) {
                continue;
            }
            let sut = self.sut.clone();
            let k = key.clone();
            let fut: TaskFuture =
                Box::pin(async move { TaskOutput::Flush(sut.sweep_one(k).await) });
            self.spawn(TaskKind::SweepOne { key }, None, fut);
        }
        if self.sweeping.is_empty() && self.sweep_queue.is_empty() {
            self.sweep_running = false;
        }
    }
}
