//! The simulated ports: the core's four traits (`WindowStore`, `Trigger`, `Sink`, `Clock`) over
//! one shared world; every call becomes an operation the executor runs later.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::batch::Batch;
use crate::key::ConversationKey;
use crate::ports::{
    Acknowledged, Clock, DedupeRecord, Sink, SinkError, StoreError, Trigger, TriggerError,
    TriggerMsg, WindowStore, Written,
};
use crate::record::TraceEvent;
use crate::time::Millis;
use crate::window::Conversation;

use super::{lock, Op, OpId, OpResult, World};

/// The simulated ports: all four traits over one shared world.
#[derive(Clone)]
pub(crate) struct SimPorts {
    pub world: Arc<Mutex<World>>,
}

impl SimPorts {
    /// Submits `op` for the current task and waits for the executor to run it.
    pub(crate) fn call(&self, op: Op) -> OpCall {
        OpCall {
            world: self.world.clone(),
            op: Some(op),
            id: None,
        }
    }
}

/// The future of one port call.
pub(crate) struct OpCall {
    world: Arc<Mutex<World>>,
    op: Option<Op>,
    /// Set once submitted; cleared once its result was taken.
    id: Option<OpId>,
}

impl Future for OpCall {
    type Output = OpResult;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<OpResult> {
        let this = self.get_mut();
        let mut w = lock(&this.world);
        if let Some(op) = this.op.take() {
            this.id = w.submit(op);
            return Poll::Pending;
        }
        match this.id.and_then(|id| w.results.remove(&id)) {
            Some((_, r)) => {
                this.id = None;
                Poll::Ready(r)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for OpCall {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            lock(&self.world).cancel(id);
        }
    }
}

fn mismatch<T>(what: &str, r: OpResult) -> T {
    // The executor answers each operation with its own result kind; anything else is a bug in
    // the simulator itself, not in the protocol under test.
    panic!("simulator bug: {what} answered with {r:?}")
}

impl WindowStore for SimPorts {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        match self.call(Op::Load(key.clone())).await {
            OpResult::Load(r) => r.map(|c| c.map(|b| *b)),
            r => mismatch("load", r),
        }
    }

    async fn append(
        &self,
        expected: Option<u64>,
        next: &Conversation,
    ) -> Result<Written, StoreError> {
        let op = Op::Append {
            expected,
            next: Box::new(next.clone()),
        };
        match self.call(op).await {
            OpResult::Written(r) => r,
            r => mismatch("append", r),
        }
    }

    async fn seen(
        &self,
        key: &ConversationKey,
        message_id: &str,
        now: Millis,
    ) -> Result<Option<DedupeRecord>, StoreError> {
        let op = Op::Seen {
            key: key.clone(),
            message_id: message_id.to_string(),
            now,
        };
        match self.call(op).await {
            OpResult::Seen(r) => r,
            r => mismatch("seen", r),
        }
    }

    async fn remember(&self, records: &[DedupeRecord]) -> Result<(), StoreError> {
        match self.call(Op::Remember(records.to_vec())).await {
            OpResult::Remembered(r) => r,
            r => mismatch("remember", r),
        }
    }

    async fn replace(&self, expected: u64, next: &Conversation) -> Result<Written, StoreError> {
        let op = Op::Replace {
            expected,
            next: Box::new(next.clone()),
        };
        match self.call(op).await {
            OpResult::Written(r) => r,
            r => mismatch("replace", r),
        }
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<ConversationKey>, StoreError> {
        match self.call(Op::Due { now, limit }).await {
            OpResult::Due(r) => r,
            r => mismatch("due", r),
        }
    }
}

impl Trigger for SimPorts {
    async fn arm(&self, msg: &TriggerMsg, at: Millis) -> Result<(), TriggerError> {
        let sent_at = lock(&self.world).host_now();
        match self
            .call(Op::Arm {
                msg: msg.clone(),
                at,
                sent_at,
            })
            .await
        {
            OpResult::Armed(r) => r,
            r => mismatch("arm", r),
        }
    }
}

impl Sink for SimPorts {
    async fn deliver(&self, batch: &Batch, within: Duration) -> Result<Acknowledged, SinkError> {
        let (started, outcome) = {
            let mut w = lock(&self.world);
            let o = w.sink_outcome();
            let now = w.now;
            let ev = TraceEvent::SinkCall {
                gen: batch.generation,
                messages: batch.messages.len(),
            };
            w.rec.trace(&batch.conversation, now, ev);
            (now, o)
        };
        let op = Op::Deliver {
            batch: Box::new(batch.clone()),
            started,
            outcome,
            within,
        };
        match self.call(op).await {
            OpResult::Delivered(r) => r,
            r => mismatch("deliver", r),
        }
    }
}

impl Clock for SimPorts {
    fn now(&self) -> Millis {
        lock(&self.world).host_now()
    }

    async fn sleep(&self, d: Duration) {
        let _ = self.call(Op::Sleep(d)).await;
    }

    fn random(&self) -> u64 {
        lock(&self.world).rng.u64(..)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Event;
    use super::*;
    use crate::faults::Faults;
    use crate::record::Recorder;
    use std::task::Waker;

    /// Runs the world's events for task 1 until `fut` is ready (what the driver does).
    fn drive<F: Future>(world: &Arc<Mutex<World>>, fut: Pin<&mut F>) -> F::Output {
        let mut fut = fut;
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            lock(world).set_current(Some(1));
            let r = fut.as_mut().poll(&mut cx);
            lock(world).set_current(None);
            if let Poll::Ready(out) = r {
                return out;
            }
            let mut w = lock(world);
            let Some((_, Event::OpReady { op })) = w.pop() else {
                panic!("nothing left to run");
            };
            if let Some((task, call, started)) = w.take_op(op) {
                let r = w.execute(task, call, started);
                w.put_result(op, task, r);
            }
        }
    }

    #[test]
    fn a_task_may_have_calls_in_flight_together_and_a_dropped_call_is_cancelled() {
        let rec = Recorder::default();
        let world = Arc::new(Mutex::new(World::new(1, Millis(0), Faults::none(), rec)));
        let ports = SimPorts {
            world: world.clone(),
        };
        lock(&world).begin_task(1, None);
        let both = async {
            tokio::join!(
                ports.sleep(Duration::from_millis(10)),
                ports.sleep(Duration::from_millis(20))
            )
        };
        drive(&world, std::pin::pin!(both));
        assert_eq!(lock(&world).now, Millis(20), "both ran, concurrently");

        let mut call = Box::pin(ports.call(Op::Sleep(Duration::from_millis(5))));
        lock(&world).set_current(Some(1));
        let first = call.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        lock(&world).set_current(None);
        assert!(first.is_pending());
        assert_eq!(lock(&world).ops.len(), 1);
        drop(call);
        assert!(lock(&world).ops.is_empty(), "the dropped call is cancelled");
    }
}
