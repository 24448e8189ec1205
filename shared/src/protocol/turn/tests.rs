//! Presence, pauses and adaptive quiet through the protocol, on the in-memory adapters with a
//! manual clock: every trigger that comes due is flushed, as a shell would.

use std::time::Duration;

use super::{PauseOutcome, PresenceOutcome};
use crate::batch::CloseReason;
use crate::key::{ConversationKey, Provider};
use crate::memory::{ManualClock, MemorySink, MemoryStore, MemoryTrigger};
use crate::message::Message;
use crate::policy::{AdaptiveQuiet, Policy, Typing};
use crate::protocol::{Buffer, BufferConfig, Claim};
use crate::time::Millis;
use crate::turn::{PauseReason, PresenceKind, TurnReason};

const T0: Millis = Millis(1_767_225_600_000);

struct Rig {
    store: MemoryStore,
    trigger: MemoryTrigger,
    sink: MemorySink,
    clock: ManualClock,
    buffer: Buffer<MemoryStore, MemoryTrigger, MemorySink, ManualClock>,
}

fn key() -> ConversationKey {
    ConversationKey::new(Provider::Evolution, "shop", "5511999990000")
}

impl Rig {
    fn new() -> Rig {
        let (store, trigger, sink) = (MemoryStore::new(), MemoryTrigger::new(), MemorySink::new());
        let clock = ManualClock::new(T0, 3);
        let buffer = Buffer::new(
            store.clone(),
            trigger.clone(),
            sink.clone(),
            clock.clone(),
            BufferConfig::default(),
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

    async fn message(&self, t_ms: u64, id: &str, policy: &Policy) {
        self.run_to(t_ms).await;
        self.buffer
            .append(&key(), policy, Message::text(id, "5511999990000", id))
            .await
            .expect("append");
    }

    async fn presence(&self, t_ms: u64, kind: PresenceKind, policy: &Policy) -> PresenceOutcome {
        self.run_to(t_ms).await;
        self.buffer
            .intake()
            .presence(&key(), policy, kind, None)
            .await
            .expect("presence")
    }

    /// (ms after T0 each batch was handed off, its messages, why it waited).
    fn handed_off(&self) -> Vec<(Vec<String>, Option<TurnReason>)> {
        self.sink
            .delivered()
            .iter()
            .map(|b| {
                let ids = b.messages.iter().map(|m| m.id.clone()).collect();
                (ids, b.waited)
            })
            .collect()
    }
}

fn typing() -> Policy {
    Policy {
        quiet: Duration::from_secs(8),
        typing: Some(Typing {
            grace: Duration::from_millis(1_500),
            hold: Duration::from_secs(20),
        }),
        ..Policy::default()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn composing_holds_the_window_and_paused_available_lets_it_close_after_the_grace() {
    let r = Rig::new();
    let p = typing();
    // No window yet: presence is dropped without a write.
    assert_eq!(
        r.presence(0, PresenceKind::Composing, &p).await,
        PresenceOutcome::NoWindow
    );
    r.message(1_000, "a", &p).await;
    // Presence flows: the fixed 8 s quiet becomes the 1.5 s grace, but the user is typing.
    assert_eq!(
        r.presence(1_200, PresenceKind::Composing, &p).await,
        PresenceOutcome::Applied
    );
    r.run_to(15_000).await;
    assert!(r.handed_off().is_empty(), "composing holds the window");
    r.message(15_000, "b", &p).await;
    assert_eq!(
        r.presence(15_100, PresenceKind::Composing, &p).await,
        PresenceOutcome::Applied
    );
    r.run_to(20_000).await;
    assert!(r.handed_off().is_empty(), "composing holds the window");
    // The user stops typing (Evolution reports it as `available`): released a grace later, not
    // at the 20 s typing hold (35.1 s) nor max wait (31 s).
    assert_eq!(
        r.presence(20_000, PresenceKind::Available, &p).await,
        PresenceOutcome::Applied
    );
    r.run_to(21_499).await;
    assert!(r.handed_off().is_empty(), "not before the grace");
    r.run_to(21_500).await;
    assert_eq!(
        r.handed_off(),
        vec![(vec!["a".into(), "b".into()], Some(TurnReason::TypingGrace))]
    );
    // The window is gone: presence is ignored again.
    assert_eq!(
        r.presence(17_000, PresenceKind::Composing, &p).await,
        PresenceOutcome::NoWindow
    );
}

#[tokio::test(flavor = "current_thread")]
async fn typing_never_holds_past_max_wait_and_late_events_are_dropped() {
    let r = Rig::new();
    let p = typing();
    r.message(0, "a", &p).await;
    for t in (1_000..40_000).step_by(5_000) {
        r.presence(t, PresenceKind::Composing, &p).await;
    }
    r.run_to(40_000).await;
    let out = r.handed_off();
    assert_eq!(out, vec![(vec!["a".into()], Some(TurnReason::MaxWait))]);
    assert_eq!(r.sink.delivered()[0].reason, CloseReason::MaxWait);
    // Out of order by the gateway's clock: dropped, nothing written.
    r.message(50_000, "b", &p).await;
    let i = r.buffer.intake();
    let at = |ms| Some(Millis(T0.0 + ms));
    assert_eq!(
        i.presence(&key(), &p, PresenceKind::Paused, at(50_500))
            .await
            .unwrap(),
        PresenceOutcome::Applied
    );
    let ver = r.store.load_now(&key()).unwrap().ver;
    assert_eq!(
        i.presence(&key(), &p, PresenceKind::Composing, at(50_100))
            .await
            .unwrap(),
        PresenceOutcome::OutOfOrder
    );
    assert_eq!(r.store.load_now(&key()).unwrap().ver, ver);
    // A tenant without typing never reads the store for presence.
    assert_eq!(
        i.presence(&key(), &Policy::default(), PresenceKind::Composing, None)
            .await
            .unwrap(),
        PresenceOutcome::TypingOff
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_pause_holds_hand_offs_collects_messages_and_resume_hands_them_off() {
    let r = Rig::new();
    let p = Policy::default();
    let i = r.buffer.intake();
    let min = Duration::from_secs(60);
    assert_eq!(
        i.pause(&key(), Some(min), PauseReason::Admin)
            .await
            .unwrap(),
        PauseOutcome::NoConversation
    );
    r.message(0, "a", &p).await;
    assert_eq!(
        i.pause(&key(), Some(30 * min), PauseReason::Operator)
            .await
            .unwrap(),
        PauseOutcome::Set(Some(Millis(T0.0 + 30 * 60_000)))
    );
    r.message(20_000, "b", &p).await;
    r.run_to(10 * 60_000).await;
    assert!(r.handed_off().is_empty(), "paused");
    assert_eq!(
        i.pause(&key(), None, PauseReason::Admin).await.unwrap(),
        PauseOutcome::Set(None)
    );
    r.run_to(10 * 60_000 + 1).await;
    assert_eq!(
        r.handed_off(),
        vec![(vec!["a".into(), "b".into()], Some(TurnReason::Quiet))]
    );
    // A pause that runs out by itself: handed off when it ends, saying so.
    r.message(11 * 60_000, "c", &p).await;
    i.pause(&key(), Some(min), PauseReason::Admin)
        .await
        .unwrap();
    r.run_to(12 * 60_000 - 1).await;
    assert_eq!(r.handed_off().len(), 1);
    r.run_to(12 * 60_000).await;
    assert_eq!(
        r.handed_off()[1],
        (vec!["c".to_string()], Some(TurnReason::Paused))
    );
}

#[tokio::test(flavor = "current_thread")]
async fn adaptive_quiet_answers_whole_thought_writers_fast_and_waits_for_fragmenters() {
    let p = Policy {
        adaptive: Some(AdaptiveQuiet {
            min: Duration::from_secs(1),
            max: Duration::from_secs(10),
        }),
        quiet: Duration::from_secs(4),
        ..Policy::default()
    };
    // One message per turn, turns a minute apart: after a few turns, the minimum.
    let r = Rig::new();
    for n in 0..6u64 {
        r.message(n * 90_000, &format!("w{n}"), &p).await;
    }
    let w = r.store.load_now(&key()).unwrap().window.unwrap();
    assert_eq!((w.quiet_ms, w.adaptive), (1_000, true));
    r.run_to(6 * 90_000).await;
    assert_eq!(
        r.sink.delivered().last().unwrap().waited,
        Some(TurnReason::AdaptiveQuiet)
    );
    // Fragments 3 s apart: the quiet period grows past them.
    let r = Rig::new();
    for n in 0..8u64 {
        let turn = n * 90_000;
        for f in 0..3u64 {
            r.message(turn + f * 3_000, &format!("t{n}f{f}"), &p).await;
        }
    }
    let w = r.store.load_now(&key()).unwrap().window.unwrap();
    assert!(w.quiet_ms > 3_000 && w.quiet_ms <= 10_000, "{}", w.quiet_ms);
    r.run_to(9 * 90_000).await;
    let last = r.sink.delivered();
    assert_eq!(
        last.last().unwrap().messages.len(),
        3,
        "the turn stays whole"
    );
}
