//! End to end on moto: appends -> DynamoDB + SQS triggers (real delays) -> a poller feeding the
//! flush handler -> an HTTP capture sink on loopback.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{check_batches, roomy_policy, Harness};
use lull_aws::redrive::{redrive, RedriveOptions};
use lull_core::ports::WindowStore;
use lull_core::protocol::AppendOutcome;
use lull_core::{ConversationKey, Message, Millis, Provider};
use lull_testkit::{wait_for, PATIENCE};

fn key(user: &str) -> ConversationKey {
    ConversationKey::new(Provider::Meta, "106540352242922", user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bursts_are_handed_off_once_in_order_never_early() {
    let mut h = Harness::new(5, 5).await;
    h.policy = roomy_policy();
    let poller = h.start_poller();
    // The four conversations run concurrently on this task: a spawned task would need its wait
    // (an async closure borrowing the sink) to be provably `Send`, which the compiler cannot show.
    let conversations = (0..4).map(|c| {
        let (buffer, policy, sink) = (&h.webhook, h.policy, &h.sink);
        async move {
            let k = key(&format!("55119000000{c}"));
            let mut ids = Vec::new();
            // Two bursts, the second sent once the first is handed off (so more than the quiet
            // period after it): two batches.
            for burst in 0..2 {
                for i in 0..(2 + c) {
                    if i > 0 {
                        // The burst's shape, part of the scenario: someone typing a message every
                        // 150 ms, against a quiet period twenty times as long.
                        tokio::time::sleep(Duration::from_millis(150)).await;
                    }
                    let id = format!("wamid.{c}.{burst}.{i}");
                    let out = buffer
                        .append(&k, &policy, Message::text(&id, "u", format!("part {i}")))
                        .await
                        .expect("append");
                    assert!(matches!(out, AppendOutcome::Accepted { .. }));
                    ids.push(id);
                }
                let last = ids.last().cloned().unwrap_or_default();
                wait_for(
                    format!("conversation {c}'s burst {burst} handed off"),
                    PATIENCE,
                    async || {
                        sink.batches()
                            .iter()
                            .any(|b| b.messages.iter().any(|m| m.id == last))
                    },
                )
                .await;
            }
            // A gateway retry of an accepted message is a duplicate, not a second message.
            let again = buffer
                .append(&k, &policy, Message::text(&ids[0], "u", "part 0"))
                .await
                .expect("append");
            assert!(
                matches!(again, AppendOutcome::Duplicate { .. }),
                "{again:?}"
            );
            ids
        }
    });
    let expected: HashSet<String> = futures_util::future::join_all(conversations)
        .await
        .into_iter()
        .flatten()
        .collect();
    let total = expected.len();
    wait_for("every message handed off", PATIENCE, async || {
        h.sink.message_count() >= total
    })
    .await;
    // Anything more would show up as a second copy: give stragglers a moment by draining the
    // trigger queue (the poller stops only after a receive).
    poller.stop().await;
    let batches = check_batches(&h.sink.batches(), &h.policy);
    let got: HashSet<String> = batches
        .iter()
        .flat_map(|b| b.messages.iter().map(|m| m.id.clone()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        batches.len(),
        8,
        "two bursts per conversation: two batches each"
    );
    for c in 0..4 {
        let rec = h
            .store
            .load(&key(&format!("55119000000{c}")))
            .await
            .expect("load")
            .expect("record");
        assert!(rec.is_idle(), "conversation {c} left work behind: {rec:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_appends_to_one_conversation_are_handed_off_once() {
    let h = Harness::new(5, 5).await;
    let poller = h.start_poller();
    let k = key("5511988887777");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (buffer, policy, k) = (h.webhook.clone(), h.policy, k.clone());
        tasks.spawn(async move {
            buffer
                .append(&k, &policy, Message::text(format!("c{i}"), "u", "x"))
                .await
                .expect("append")
        });
    }
    while let Some(r) = tasks.join_next().await {
        assert!(matches!(r.expect("task"), AppendOutcome::Accepted { .. }));
    }
    wait_for("all 50 handed off", PATIENCE, async || {
        h.sink.message_count() >= 50
    })
    .await;
    poller.stop().await;
    let batches = check_batches(&h.sink.batches(), &h.policy);
    let ids: HashSet<String> = batches
        .iter()
        .flat_map(|b| b.messages.iter().map(|m| m.id.clone()))
        .collect();
    assert_eq!(ids.len(), 50);
    assert_eq!(
        batches.iter().map(|b| b.messages.len()).sum::<usize>(),
        50,
        "no message handed off twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_trigger_is_covered_by_the_sweep() {
    let h = Harness::new(5, 5).await;
    let k = key("5511977776666");
    h.webhook
        .append(&k, &h.policy, Message::text("lost.1", "u", "hello?"))
        .await
        .expect("append");
    // The trigger is lost: take it off the queue once it is visible, without flushing.
    wait_for("the trigger", PATIENCE, async || {
        let msgs = common::receive(&h.clients, &h.queue, 1, &h.esm_acct).await;
        if msgs.is_empty() {
            return false;
        }
        common::delete_succeeded(&h.clients, &h.queue, &msgs, &[], &h.esm_acct).await;
        true
    })
    .await;
    assert_eq!(h.sink.message_count(), 0);
    // The due index holds the latest the window can be due (its first message + max wait), so
    // the sweep, the safety net for lost triggers, finds it once that has passed: sweep on a
    // schedule until it does.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let report = loop {
        let report = h.flusher.sweep(100, 16).await.expect("sweep");
        if report.due > 0 {
            break report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep never found the window"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(report.due, 1);
    assert_eq!(report.handed_off, 1);
    let batches = check_batches(&h.sink.batches(), &h.policy);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].messages[0].id, "lost.1");
    // Nothing is due any more.
    assert_eq!(h.flusher.sweep(100, 16).await.expect("sweep").due, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_sink_parks_the_trigger_in_the_dlq_and_redrive_delivers_in_order() {
    let mut h = Harness::new(1, 2).await;
    // d.2 and d.3, appended one after the other, share a window.
    h.policy = roomy_policy();
    h.sink.set_failing(true);
    let poller = h.start_poller();
    let k = key("5511966665555");
    h.webhook
        .append(&k, &h.policy, Message::text("d.1", "u", "first"))
        .await
        .expect("append");
    // The first hand-off fails: batch g is closed and pending.
    wait_for("a failed hand-off", PATIENCE, async || {
        h.sink.attempts() >= 1
    })
    .await;
    let rec = h.store.load(&k).await.expect("load").expect("rec");
    assert_eq!(rec.pending.len(), 1);
    let first_batch = rec.pending[0].batch_id;
    // Later messages go to the next window, which waits behind the pending batch.
    for id in ["d.2", "d.3"] {
        h.webhook
            .append(&k, &h.policy, Message::text(id, "u", id))
            .await
            .expect("append");
    }
    // After maxReceiveCount receives the trigger moves to the DLQ.
    wait_for("the trigger in the DLQ", PATIENCE, async || {
        common::queue_depth(&h.clients, &h.dlq).await.0 >= 1
    })
    .await;
    assert!(h.sink.attempts() >= 2, "SQS retried the hand-off");
    assert!(h.sink.batches().is_empty(), "nothing was acknowledged");
    let rec = h.store.load(&k).await.expect("load").expect("rec");
    assert_eq!(
        rec.pending[0].batch_id, first_batch,
        "the batch stays pending"
    );
    // The next window keeps filling and closing by its own rules (it may already be a closed
    // batch behind the first), but nothing of it is handed off before the first is acknowledged.
    let waiting: Vec<&str> = rec.pending[1..]
        .iter()
        .flat_map(|b| b.messages.iter())
        .chain(rec.window.iter().flat_map(|w| w.messages.iter()))
        .map(|m| m.id.as_str())
        .collect();
    assert_eq!(
        waiting,
        ["d.2", "d.3"],
        "later messages wait behind the first batch"
    );

    // Redrive hands off what is due: wait until the later window is (no trigger is left to
    // act on it meanwhile, the conversation's only one is in the DLQ).
    wait_for("the later window due", PATIENCE, async || {
        let rec = h.store.load(&k).await.expect("load").expect("rec");
        rec.window_due()
            .is_none_or(|due| due.at <= Millis::now_wall())
    })
    .await;
    // The sink recovers; redrive delivers both batches, oldest first, with the original id.
    h.sink.set_failing(false);
    let report = redrive(
        &h.clients.sqs,
        &h.dlq,
        &h.flusher,
        &h.flush_acct,
        RedriveOptions::default(),
    )
    .await
    .expect("redrive");
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.conversations, 1);
    assert_eq!(report.handed_off, 2, "{report:?}");
    poller.stop().await;
    let batches = check_batches(&h.sink.batches(), &h.policy);
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].batch_id, first_batch);
    let ids: Vec<Vec<&str>> = batches
        .iter()
        .map(|b| b.messages.iter().map(|m| m.id.as_str()).collect())
        .collect();
    assert_eq!(ids, vec![vec!["d.1"], vec!["d.2", "d.3"]]);
    assert_eq!(common::queue_depth(&h.clients, &h.dlq).await.0, 0);
    let rec = h.store.load(&k).await.expect("load").expect("rec");
    assert!(rec.is_idle(), "{rec:?}");
}
