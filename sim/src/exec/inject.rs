//! The faults the world injects: a store that throttles and refuses items over the size limit,
//! triggers that fail, get lost, duplicated, late or early, and sink calls that fail, time out,
//! lose their acknowledgement or run slow. Every decision draws from the seeded generator.

use std::time::Duration;

use crate::key::ConversationKey;
use crate::ports::{StoreError, TriggerError, TriggerMsg};
use crate::record::TraceEvent;
use crate::time::Millis;
use crate::window::Conversation;

use super::{Event, QueuedTrigger, SinkFault, World};

/// DynamoDB's item size limit: a conversation record larger than this cannot be written.
pub(crate) const ITEM_LIMIT: usize = crate::window::STORE_ITEM_LIMIT as usize;

impl World {
    /// True with probability `p` while faults are on.
    pub fn fault(&mut self, p: f64) -> bool {
        !self.draining && p > 0.0 && self.rng.f64() < p
    }

    /// A store call refused before it lands: throttled, or an item over the size limit.
    pub(super) fn store_refuses(
        &mut self,
        key: Option<&ConversationKey>,
        next: Option<&Conversation>,
    ) -> Option<StoreError> {
        if self.now < self.throttled_until && !self.draining && self.rng.bool() {
            let now = self.now;
            self.rec
                .fault(key, now, TraceEvent::Fault("store throttled"));
            return Some(StoreError::Throttled(
                "injected ProvisionedThroughputExceeded".into(),
            ));
        }
        let size = next.map_or(0, item_size);
        if size > ITEM_LIMIT {
            self.rec.item_limit_hits += 1;
            if let Some(c) = next {
                let now = self.now;
                self.rec
                    .trace(&c.key, now, TraceEvent::Fault("item over 400 KB refused"));
            }
            return Some(StoreError::TooLarge(format!(
                "item of {size} bytes over the {ITEM_LIMIT}-byte limit (ValidationException)"
            )));
        }
        None
    }

    /// SQS SendMessage with DelaySeconds (computed on the sender's clock, `sent_at`) rounded up
    /// to whole seconds (never early), clamped to SQS's 900 s maximum, plus polling slack; and
    /// the faults: error, lost, duplicated, late, early.
    pub(super) fn arm(
        &mut self,
        msg: TriggerMsg,
        at: Millis,
        sent_at: Millis,
    ) -> Result<(), TriggerError> {
        let f = self.faults;
        let now = self.now;
        if self.fault(f.trigger_error) {
            self.rec.fault(
                Some(&msg.key),
                now,
                TraceEvent::Fault("trigger send failed"),
            );
            return Err(TriggerError("injected send failure".into()));
        }
        if self.fault(f.trigger_lost) {
            self.rec
                .fault(Some(&msg.key), now, TraceEvent::Fault("trigger lost"));
            return Ok(());
        }
        let delay_s = at.0.saturating_sub(sent_at.0).div_ceil(1000).min(900);
        let mut fire = self
            .now
            .plus(Duration::from_secs(delay_s) + self.between(0, 200));
        if self.fault(f.trigger_late) {
            self.rec
                .fault(Some(&msg.key), now, TraceEvent::Fault("trigger late"));
            fire = fire.plus(self.between(1_000, 60_000));
        } else if self.fault(f.trigger_early) {
            self.rec
                .fault(Some(&msg.key), now, TraceEvent::Fault("trigger early"));
            fire = Millis(fire.0.saturating_sub(self.rng.u64(100..=3_000)));
        }
        let copies = if self.fault(f.trigger_duplicated) {
            self.rec
                .fault(Some(&msg.key), now, TraceEvent::Fault("trigger duplicated"));
            2
        } else {
            1
        };
        for i in 0..copies {
            self.seq += 1;
            let id = self.seq;
            self.queue.insert(
                id,
                QueuedTrigger {
                    msg: msg.clone(),
                    receives: 0,
                },
            );
            let when = if i == 0 {
                fire
            } else {
                fire.plus(self.between(0, 5_000))
            };
            self.schedule(when, Event::TriggerDeliver { sqs: id });
        }
        Ok(())
    }

    /// Decides how a sink call starting now will go.
    pub(super) fn sink_outcome(&mut self) -> SinkFault {
        let f = self.faults;
        if self.fault(f.sink_error) {
            self.rec.faults += 1;
            SinkFault::Error
        } else if self.fault(f.sink_timeout_rate) {
            self.rec.faults += 1;
            SinkFault::Timeout {
                received: self.rng.bool(),
            }
        } else if self.fault(f.sink_lost_ack) {
            self.rec.faults += 1;
            SinkFault::LostAck
        } else if self.fault(f.sink_slow) {
            self.rec.faults += 1;
            SinkFault::Slow
        } else {
            SinkFault::None
        }
    }
}

/// The stored size of a conversation item, as DynamoDB counts it (the record's JSON plus its key
/// and index attributes), serialised only when it could be near the limit: a pending batch's
/// own fields take far less than 1 KB beside its messages' stored bytes.
pub(crate) fn item_size(c: &Conversation) -> usize {
    let bound = c.stored_bytes() as usize + 1024 * (c.pending.len() + 4);
    if bound < ITEM_LIMIT {
        return bound;
    }
    /// Counts what is written, keeping nothing.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    match serde_json::to_writer(&mut n, c) {
        Ok(()) => n.0 + c.key.storage_key().len() + 64,
        Err(_) => usize::MAX,
    }
}
