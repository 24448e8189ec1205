//! The named regression scenarios (8 s quiet period, 30 s max wait, a sink that acknowledges at
//! once), each asserting what the seed failure got wrong.

use std::time::Duration;

use lull_core::scenarios;
use lull_core::CloseReason;

#[test]
fn messages_at_0_and_7_8s_give_one_batch_of_both() {
    let run = scenarios::two_messages_inside_the_quiet_period();
    assert_eq!(run.batches(), vec![vec!["m1", "m2"]]);
    let b = &run.received[0].batch;
    assert_eq!(b.reason, CloseReason::Quiet);
    // Never early: closed a full quiet period after the last message.
    assert!(run.received[0].at >= Duration::from_millis(7_800 + 8_000));
    assert_eq!(b.text, "hi\nI want to order");
}

#[test]
fn messages_at_0_7_8_and_8_1s_give_one_batch_of_three() {
    let run = scenarios::three_messages_across_the_quiet_edge();
    assert_eq!(run.batches(), vec![vec!["m1", "m2", "m3"]]);
    assert!(run.received[0].at >= Duration::from_millis(8_100 + 8_000));
}

#[test]
fn a_message_during_a_hand_off_goes_to_the_next_batch_after_the_first_is_acknowledged() {
    let run = scenarios::message_during_hand_off();
    assert_eq!(run.batches(), vec![vec!["m1", "m2"], vec!["m3"]]);
    let (first, second) = (&run.received[0].batch, &run.received[1].batch);
    assert!(second.generation > first.generation);
    assert_ne!(first.batch_id, second.batch_id);
    // The trigger that fired during the first hand-off handed nothing off: it waited.
    let waited = run
        .timeline
        .iter()
        .any(|e| e.what.contains("another hand-off is in flight"));
    assert!(waited, "{:#?}", run.timeline);
    // The second batch was only closed and handed off once the first was acknowledged.
    let ack_first = run
        .timeline
        .iter()
        .position(|e| e.what.contains("(the sink acknowledges the first batch)"))
        .expect("first acknowledged");
    let second_handed = run
        .timeline
        .iter()
        .rposition(|e| e.what.contains("(1 msgs, reason quiet) acknowledged"))
        .expect("second handed off");
    assert!(second_handed > ack_first);
}

#[test]
fn a_trigger_firing_during_an_append_never_loses_the_message() {
    let run = scenarios::trigger_during_append();
    assert_eq!(run.batches(), vec![vec!["m1"], vec!["m2"]]);
    let m2 = &run.received[1].batch.messages[0];
    // m2's retried write took the receive time of the retry, after the first batch closed.
    assert!(m2.received_at >= run.received[0].batch.closed_at);
}

#[test]
fn a_user_writing_every_5s_for_60s_gets_batches_at_most_30s_apart() {
    let run = scenarios::chatty_user_hits_max_wait();
    let all: Vec<String> = run.batches().concat();
    let expected: Vec<String> = (1..=13).map(|i| format!("m{i}")).collect();
    assert_eq!(all, expected, "every message once, in order");
    assert!(run.received.len() >= 3);
    let mut last = Duration::ZERO;
    for r in &run.received {
        assert!(
            r.at - last <= Duration::from_secs(30),
            "batch closed {:?} after the previous",
            r.at - last
        );
        last = r.at;
    }
    assert_eq!(run.received[0].batch.reason, CloseReason::MaxWait);
}
