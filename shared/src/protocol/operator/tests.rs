//! Operator messages and stale messages through the protocol, on the in-memory adapters with a
//! manual clock: a replayed operator message neither pauses again nor extends a pause, however
//! the id is remembered; a message older than the horizon is skipped.

use std::time::Duration;

use super::OperatorOutcome;
use crate::key::{ConversationKey, Provider};
use crate::memory::{ManualClock, MemorySink, MemoryStore, MemoryTrigger};
use crate::message::Message;
use crate::policy::Policy;
use crate::protocol::{AppendOutcome, Buffer, BufferConfig, Claim};
use crate::time::Millis;

const T0: Millis = Millis(1_767_225_600_000);
const PAUSE: Duration = Duration::from_secs(30 * 60);
const DAY: Duration = Duration::from_secs(24 * 3600);

struct Rig {
    store: MemoryStore,
    trigger: MemoryTrigger,
    sink: MemorySink,
    clock: ManualClock,
    buffer: Buffer<MemoryStore, MemoryTrigger, MemorySink, ManualClock>,
}

fn key() -> ConversationKey {
    ConversationKey::new(Provider::Waha, "default", "5511999990000")
}

impl Rig {
    fn new(config: BufferConfig) -> Rig {
        let (store, trigger, sink) = (MemoryStore::new(), MemoryTrigger::new(), MemorySink::new());
        let clock = ManualClock::new(T0, 5);
        let buffer = Buffer::new(
            store.clone(),
            trigger.clone(),
            sink.clone(),
            clock.clone(),
            config,
        );
        Rig {
            store,
            trigger,
            sink,
            clock,
            buffer,
        }
    }

    /// Moves the clock to `t_ms` after T0, flushing every trigger due on the way.
    async fn run_to(&self, t_ms: u64) {
        let end = Millis(T0.0 + t_ms);
        while let Some(at) = self.trigger.next_at().filter(|&at| at <= end) {
            self.clock
                .set(at.max(crate::ports::Clock::now(&self.clock)));
            for (_, trig) in self.trigger.take_due(at) {
                let claim = Claim::Trigger { chain: trig.chain };
                self.buffer.flush(&trig.key, claim).await.expect("flush");
            }
        }
        self.clock.set(end);
    }

    async fn user(&self, t_ms: u64, id: &str) -> AppendOutcome {
        self.run_to(t_ms).await;
        self.buffer
            .append(
                &key(),
                &Policy::default(),
                Message::text(id, "5511999990000", id),
            )
            .await
            .expect("append")
    }

    async fn operator(&self, t_ms: u64, id: &str, buffer: bool) -> OperatorOutcome {
        self.run_to(t_ms).await;
        self.buffer
            .intake()
            .operator_message(
                &key(),
                &Policy::default(),
                Message::text(id, "operator", id),
                PAUSE,
                buffer,
            )
            .await
            .expect("operator")
    }

    fn paused_until(&self) -> Option<Millis> {
        let now = crate::ports::Clock::now(&self.clock);
        self.store
            .load_now(&key())
            .and_then(|c| c.paused_until(now))
    }

    fn handed_off(&self) -> Vec<String> {
        self.sink
            .delivered()
            .iter()
            .flat_map(|b| b.messages.iter().map(|m| m.id.clone()))
            .collect()
    }
}

const MIN: u64 = 60_000;

/// The attack of issue 23: one captured operator message sent again every pause period.
async fn replay_every_pause_period(r: &Rig, buffer: bool) {
    assert_eq!(
        r.user(0, "u1").await,
        AppendOutcome::Accepted {
            gen: T0.0,
            armed: true
        }
    );
    assert_eq!(
        r.operator(1_000, "op-1", buffer).await,
        OperatorOutcome::Paused { buffered: buffer }
    );
    assert_eq!(r.paused_until(), Some(Millis(T0.0 + 1_000 + 30 * MIN)));
    // The user writes while the operator talks: held by the pause.
    r.user(2_000, "u2").await;
    // The replay, just before the pause ends: neither extended nor re-paused.
    assert_eq!(
        r.operator(30 * MIN, "op-1", buffer).await,
        OperatorOutcome::Duplicate
    );
    r.run_to(30 * MIN + 2_000).await;
    assert_eq!(r.paused_until(), None, "the replay extended the pause");
    let mut ids = r.handed_off();
    ids.retain(|id| id != "op-1");
    assert_eq!(
        ids,
        ["u1", "u2"],
        "the pause ended, the held batch went out"
    );
    // A day later (within the horizon), the same capture again: nothing paused.
    r.user(DAY.as_millis() as u64, "u3").await;
    assert_eq!(
        r.operator(DAY.as_millis() as u64 + 1_000, "op-1", buffer)
            .await,
        OperatorOutcome::Duplicate
    );
    assert_eq!(r.paused_until(), None);
    r.run_to(DAY.as_millis() as u64 + 20_000).await;
    assert!(r.handed_off().contains(&"u3".to_string()));
}

#[tokio::test(flavor = "current_thread")]
async fn a_replayed_operator_message_neither_pauses_again_nor_extends() {
    replay_every_pause_period(&Rig::new(BufferConfig::default()), false).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_replayed_buffered_operator_message_neither_pauses_again_nor_extends() {
    replay_every_pause_period(&Rig::new(BufferConfig::default()), true).await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_operator_id_pushed_out_of_the_record_is_still_remembered() {
    // A budget so small every id leaves the record for a dedupe record at once.
    let r = Rig::new(BufferConfig {
        acked_ids_bytes: 0,
        ..BufferConfig::default()
    });
    replay_every_pause_period(&r, false).await;
    assert!(r.store.dedupe_len() > 0, "the ids went to dedupe records");
}

#[tokio::test(flavor = "current_thread")]
async fn a_new_operator_message_still_pauses_and_extends() {
    let r = Rig::new(BufferConfig::default());
    r.user(0, "u1").await;
    assert_eq!(
        r.operator(1_000, "op-1", false).await,
        OperatorOutcome::Paused { buffered: false }
    );
    assert_eq!(
        r.operator(20 * MIN, "op-2", false).await,
        OperatorOutcome::Paused { buffered: false }
    );
    assert_eq!(r.paused_until(), Some(Millis(T0.0 + 50 * MIN)));
}

#[tokio::test(flavor = "current_thread")]
async fn an_operator_message_in_an_unknown_conversation_pauses_nothing() {
    let r = Rig::new(BufferConfig::default());
    assert_eq!(
        r.operator(0, "op-1", false).await,
        OperatorOutcome::NoConversation
    );
    assert!(r.store.load_now(&key()).is_none(), "nothing written");
}

#[tokio::test(flavor = "current_thread")]
async fn messages_older_than_the_horizon_are_skipped_not_handed_off_again() {
    let r = Rig::new(BufferConfig::default());
    let mut m = Message::text("old-1", "5511999990000", "hi");
    m.sent_at = Some(T0);
    let out = r.buffer.append(&key(), &Policy::default(), m.clone()).await;
    assert!(matches!(out, Ok(AppendOutcome::Accepted { .. })));
    r.run_to(60_000).await;
    assert_eq!(r.handed_off(), ["old-1"]);
    // Eight days later its dedupe horizon has ended: the replay is refused by its age.
    r.run_to(8 * DAY.as_millis() as u64).await;
    let out = r.buffer.append(&key(), &Policy::default(), m.clone()).await;
    assert_eq!(out.expect("append"), AppendOutcome::Stale);
    // So is a replayed operator message of that age, buffered or not.
    let mut op = Message::text("op-old", "operator", "hello");
    op.sent_at = Some(T0);
    for buffer in [false, true] {
        let out = r
            .buffer
            .intake()
            .operator_message(&key(), &Policy::default(), op.clone(), PAUSE, buffer)
            .await;
        assert_eq!(out.expect("operator"), OperatorOutcome::Stale);
    }
    assert_eq!(r.paused_until(), None);
    r.run_to(8 * DAY.as_millis() as u64 + 60_000).await;
    assert_eq!(r.handed_off(), ["old-1"], "nothing handed off again");
}
