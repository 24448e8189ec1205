//! Edits and unsends (`amend.rs`): in place while the original is in the open window, as
//! messages of the next batch once it closed, remembered when they come before it.

use std::time::Duration;

use crate::batch::CloseReason;
use crate::message::{Message, MessageKind};
use crate::policy::Policy;
use crate::time::Millis;
use crate::window::test_support::*;
use crate::window::*;

const HORIZON: Duration = Duration::from_secs(3600);

/// `c` after the item `msg` at `at` ms under the default policy.
fn item(c: Conversation, msg: Message, at: u64) -> AppendPlan {
    c.plan_item(msg, &Policy::default(), Millis(at), HORIZON, &mut counter())
        .unwrap()
}

fn texts(msgs: &[Message]) -> Vec<(&str, Option<&str>)> {
    msgs.iter()
        .map(|m| (m.id.as_str(), m.text.as_deref()))
        .collect()
}

#[test]
fn an_edit_in_the_open_window_replaces_the_content_in_place_and_restarts_the_quiet_period() {
    let c = item(
        Conversation::fresh(key(), Millis(0)),
        Message::text("a", "u", "2 pizzas"),
        0,
    )
    .next;
    let c = item(c, Message::text("b", "u", "and a coke"), 1000).next;
    let due_before = c.due_at().unwrap();
    let plan = item(c, edit("e1", "a", "3 pizzas"), 3000);
    assert_eq!(plan.amend, Some(Amended::Edited));
    let w = plan.next.window.as_ref().unwrap();
    assert_eq!(
        texts(&w.messages),
        [("a", Some("3 pizzas")), ("b", Some("and a coke"))]
    );
    assert_eq!(w.messages[0].edited_at, Some(Millis(3000)));
    assert_eq!(w.messages[0].kind, MessageKind::Text);
    assert_eq!(
        w.messages[0].received_at,
        Millis(0),
        "same position, same receive time"
    );
    assert_eq!(
        w.bytes,
        w.messages.iter().map(Message::stored_size).sum::<u64>()
    );
    assert_eq!(plan.next.due_at(), Some(Millis(11_000)));
    assert!(plan.next.due_at().unwrap() > due_before);
    // A retry of the edit is held: the caller answers it as a duplicate.
    assert_eq!(plan.next.holds_message("e1"), Some(plan.next.gen));
}

#[test]
fn an_unsend_in_the_open_window_erases_the_original_from_the_record() {
    let secret = "4111 1111 1111 1111";
    let c = item(
        Conversation::fresh(key(), Millis(0)),
        Message::text("a", "u", "hi"),
        0,
    )
    .next;
    let c = item(c, Message::text("b", "u", secret), 1000).next;
    let plan = item(c, revoke("r1", "b"), 2000);
    assert_eq!(plan.amend, Some(Amended::Revoked));
    let json = serde_json::to_string(&plan.next).unwrap();
    assert!(!json.contains(secret), "{json}");
    let w = plan.next.window.as_ref().unwrap();
    assert_eq!(texts(&w.messages), [("a", Some("hi"))]);
    assert_eq!(w.opened_at, Millis(0));
    // Unsending the first message: the window opens at the message now first (max wait).
    let c = item(plan.next.clone(), Message::text("c", "u", "more"), 3000).next;
    let c = item(c, revoke("r2", "a"), 4000).next;
    let w = c.window.as_ref().unwrap();
    assert_eq!(
        (w.opened_at, w.messages[0].id.as_str()),
        (Millis(3000), "c")
    );
    assert_eq!(w.bytes, w.messages[0].stored_size());
    // A resend of the unsent original is suppressed, as is a retry of the unsend.
    assert!(plan.next.is_revoked("b"));
    assert!(plan.next.holds_message("b").is_some());
    assert!(plan.next.holds_message("r1").is_some());
}

#[test]
fn a_window_left_empty_by_an_unsend_closes_without_a_batch() {
    let c = item(
        Conversation::fresh(key(), Millis(0)),
        Message::text("a", "u", "oops"),
        0,
    )
    .next;
    let gen = c.gen;
    let plan = item(c, revoke("r1", "a"), 500);
    assert_eq!(plan.amend, Some(Amended::Emptied));
    assert!(plan.next.window.is_none() && plan.next.pending.is_empty());
    assert!(plan.next.is_idle());
    assert_eq!(plan.next.chain, None, "nothing left to hand off");
    assert_eq!(plan.next.gen, gen, "no generation used");
    assert_eq!(plan.arm, None);
    assert_eq!(plan.next.index_due(), None);
}

#[test]
fn after_the_close_an_edit_and_an_unsend_are_messages_of_the_next_batch_naming_the_batch() {
    let mut c = item(
        Conversation::fresh(key(), Millis(0)),
        Message::text("a", "u", "x"),
        0,
    )
    .next;
    assert_eq!(c.close_if_due(Millis(8000)), Some(CloseReason::Quiet));
    let closed = c.pending[0].batch_id.to_string();
    let plan = item(c, edit("e1", "a", "y"), 8100);
    assert_eq!(plan.amend, Some(Amended::Forwarded));
    assert_eq!(
        plan.next.pending[0].messages[0].text.as_deref(),
        Some("x"),
        "immutable"
    );
    let w = plan.next.window.as_ref().unwrap();
    assert_eq!(w.messages[0].kind, MessageKind::Edit);
    let t = w.messages[0].target.as_ref().unwrap();
    assert_eq!(
        (t.message_id.as_str(), t.batch_id.as_deref()),
        ("a", Some(closed.as_str()))
    );
    // Acknowledged: the batch id still names it, from the list of acknowledged ids.
    let mut c = plan.next;
    let gen = c.pending[0].gen;
    assert!(c.lease_head(Millis(8200), Duration::from_secs(30), 9));
    c.retire_head_ids(Millis(8300), HORIZON, ACKED_IDS_BYTES);
    assert!(c.ack(gen, 9, Millis(8300)));
    let plan = item(c, revoke("r1", "a"), 8400);
    assert_eq!(plan.amend, Some(Amended::Forwarded));
    let w = plan.next.window.as_ref().unwrap();
    let r = w.messages.last().unwrap();
    assert_eq!(r.kind, MessageKind::Revoke);
    assert_eq!(
        r.target.as_ref().unwrap().batch_id.as_deref(),
        Some(closed.as_str())
    );
}

#[test]
fn an_unsend_before_its_original_suppresses_the_late_original() {
    let plan = item(Conversation::fresh(key(), Millis(0)), revoke("r1", "a"), 0);
    assert_eq!(plan.amend, Some(Amended::Early));
    let c = plan.next;
    // It goes out (the original may have been handed off long ago) and is remembered.
    let w = c.window.as_ref().unwrap();
    assert_eq!(w.messages[0].kind, MessageKind::Revoke);
    assert!(c.is_revoked("a"));
    assert!(
        c.holds_message("a").is_some(),
        "the late original is answered as held"
    );
}

#[test]
fn an_edit_before_its_original_is_applied_to_it_and_leaves_the_window() {
    let c = item(
        Conversation::fresh(key(), Millis(0)),
        edit("e1", "a", "3 pizzas"),
        100,
    )
    .next;
    let plan = item(c, Message::text("a", "u", "2 pizzas"), 200);
    assert_eq!(plan.amend, Some(Amended::LateEdited));
    let w = plan.next.window.as_ref().unwrap();
    assert_eq!(texts(&w.messages), [("a", Some("3 pizzas"))]);
    assert_eq!(w.messages[0].edited_at, Some(Millis(100)));
    assert_eq!(w.bytes, w.messages[0].stored_size());
    // The edit's id stays held: its retry is a duplicate, never applied twice.
    assert!(plan.next.holds_message("e1").is_some());
}

/// The record as the store writes it.
fn stored(c: &Conversation) -> String {
    serde_json::to_string(c).unwrap()
}

#[test]
fn an_unsend_after_an_early_edit_erases_the_edits_content_from_the_record() {
    // The edit comes first (its original not seen), then the unsend: the edit's text is the
    // unsent message's, so neither its message in the window nor the content remembered for
    // the late original may stay.
    let c = item(
        Conversation::fresh(key(), Millis(0)),
        edit("e1", "a", "4111 1111 1111 1111"),
        100,
    )
    .next;
    assert!(stored(&c).contains("4111"));
    let plan = item(c, revoke("r1", "a"), 200);
    assert_eq!(plan.amend, Some(Amended::Early));
    let c = plan.next;
    assert!(!stored(&c).contains("4111"), "{}", stored(&c));
    let w = c.window.as_ref().unwrap();
    assert_eq!(texts(&w.messages), [("r1", None)]);
    assert_eq!(w.bytes, w.messages[0].stored_size());
    // The edit's id is still held (a retry is a duplicate), the late original suppressed.
    assert!(c.holds_message("e1").is_some());
    assert!(c.holds_message("a").is_some());
}

#[test]
fn an_unsend_of_a_closed_message_erases_its_edit_still_in_the_open_window() {
    let mut c = item(
        Conversation::fresh(key(), Millis(0)),
        Message::text("a", "u", "x"),
        0,
    )
    .next;
    assert_eq!(c.close_if_due(Millis(8000)), Some(CloseReason::Quiet));
    let c = item(c, Message::text("b", "u", "keep"), 8050).next;
    let c = item(c, edit("e1", "a", "4111 1111 1111 1111"), 8100).next;
    let plan = item(c, revoke("r1", "a"), 8200);
    assert_eq!(plan.amend, Some(Amended::Forwarded));
    let c = plan.next;
    assert!(!stored(&c).contains("4111"), "{}", stored(&c));
    assert_eq!(
        texts(&c.window.as_ref().unwrap().messages),
        [("b", Some("keep")), ("r1", None)]
    );
    assert_eq!(
        c.pending[0].messages[0].text.as_deref(),
        Some("x"),
        "immutable"
    );
    // A retry of the erased edit is held (a duplicate), and a later edit of the unsent message
    // (reordered) shows nothing.
    assert!(c.holds_message("e1").is_some());
    let plan = item(c, edit("e2", "a", "5111"), 8300);
    assert_eq!(plan.amend, Some(Amended::Dropped));
    assert!(!stored(&plan.next).contains("5111"));
}

#[test]
fn the_latest_edit_wins_and_an_edit_of_an_unsent_message_shows_nothing() {
    let c = item(
        Conversation::fresh(key(), Millis(0)),
        Message::text("a", "u", "1"),
        0,
    )
    .next;
    let c = item(c, edit("e1", "a", "2"), 10).next;
    let c = item(c, edit("e2", "a", "3"), 20).next;
    assert_eq!(
        texts(&c.window.as_ref().unwrap().messages),
        [("a", Some("3"))]
    );
    let c = item(c, Message::text("b", "u", "keep"), 30).next;
    let c = item(c, revoke("r1", "a"), 40).next;
    let plan = item(c, edit("e3", "a", "4"), 50);
    assert_eq!(plan.amend, Some(Amended::Dropped));
    assert_eq!(
        texts(&plan.next.window.as_ref().unwrap().messages),
        [("b", Some("keep"))]
    );
    assert!(plan.next.holds_message("e3").is_some());
}

#[test]
fn remembered_amends_are_bounded_in_count_and_bytes_and_end_with_the_horizon() {
    let mut c = Conversation::fresh(key(), Millis(0));
    for i in 0..(MAX_AMENDS + 5) {
        c = item(c, revoke(&format!("r{i}"), &format!("m{i}")), i as u64).next;
        assert!(c.amends.len() <= MAX_AMENDS);
        assert!(c.amends_bytes() <= AMENDS_BYTES);
    }
    assert_eq!(c.amends.len(), MAX_AMENDS);
    assert!(!c.is_revoked("m0"), "the oldest is forgotten first");
    assert!(c.is_revoked(&format!("m{}", MAX_AMENDS + 4)));
    // Early edits keep their content only up to a size; the bytes budget holds with them.
    let mut c = Conversation::fresh(key(), Millis(0));
    for i in 0..20 {
        let text = "x".repeat(1500);
        c = item(c, edit(&format!("e{i}"), &format!("m{i}"), &text), i).next;
        assert!(c.amends_bytes() <= AMENDS_BYTES);
    }
    let big = "y".repeat(AMEND_CONTENT_BYTES as usize);
    let c = item(c, edit("big", "late", &big), 100).next;
    let kept = c.amends.iter().find(|a| a.id == "big").unwrap();
    assert!(
        kept.content.is_none(),
        "too large to keep: the edit message says it"
    );
    // Past the horizon, every amend drops with the next write.
    let horizon_ms = HORIZON.as_millis() as u64;
    let c = item(c, Message::text("n", "u", "later"), 101 + horizon_ms).next;
    assert!(c.amends.is_empty());
}

#[test]
fn an_edit_that_grows_a_message_past_the_largest_size_keeps_it_without_content() {
    let c = item(
        Conversation::fresh(key(), Millis(0)),
        Message::text("a", "u", "x"),
        0,
    )
    .next;
    let huge = "z".repeat(MAX_MESSAGE_BYTES as usize);
    let plan = c
        .plan_item(
            edit("e1", "a", &huge),
            &Policy::default(),
            Millis(1),
            HORIZON,
            &mut counter(),
        )
        .expect("an edit is never refused for its size");
    let w = plan.next.window.as_ref().unwrap();
    assert_eq!(w.messages.len(), 1);
    assert_eq!(w.messages[0].provider_type.as_deref(), Some("too_large"));
    assert_eq!(w.messages[0].text, None);
}

#[test]
fn records_without_amends_load_and_amends_round_trip() {
    let c = item(Conversation::fresh(key(), Millis(0)), revoke("r1", "a"), 0).next;
    let json = serde_json::to_string(&c).unwrap();
    let back: Conversation = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v.as_object_mut().unwrap().remove("amends");
    let old: Conversation = serde_json::from_value(v).unwrap();
    assert!(old.amends.is_empty());
    assert!(c.encoded_len_bound() >= c.encoded_len());
}

#[test]
fn an_edit_that_would_make_its_message_too_large_keeps_it_without_content_not_refused() {
    // The original quotes a long id; the edit's text fits alone, but not beside the quote.
    let half = (MAX_MESSAGE_BYTES / 2 + 1024) as usize;
    let original = Message {
        reply_to: Some("q".repeat(half)),
        ..Message::text("a", "u", "2 pizzas")
    };
    // A tenant whose windows hold that much (the default closes at 64 KiB).
    let policy = Policy {
        max_bytes: 2 * MAX_MESSAGE_BYTES,
        ..Policy::default()
    };
    let at = |c: Conversation, m: Message, ms: u64| {
        c.plan_item(m, &policy, Millis(ms), HORIZON, &mut counter())
            .unwrap()
    };
    let c = at(Conversation::fresh(key(), Millis(0)), original, 0).next;
    let big = edit("e1", "a", &"3".repeat(half));
    assert!(big.stored_size() <= MAX_MESSAGE_BYTES);
    let plan = at(c, big, 2000);
    let w = plan.next.window.as_ref().unwrap();
    assert_eq!(w.messages.len(), 1);
    let kept = &w.messages[0];
    assert_eq!(kept.id, "a");
    assert_eq!(kept.kind, MessageKind::Other);
    assert_eq!(kept.provider_type.as_deref(), Some("too_large"));
    assert_eq!(kept.text, None, "the replaced content is gone");
    assert_eq!(kept.edited_at, Some(Millis(2000)));
    assert!(kept.stored_size() <= MAX_MESSAGE_BYTES);
    assert_eq!(w.bytes, kept.stored_size());
    let stored = stored(&plan.next);
    assert!(
        !stored.contains("2 pizzas") && !stored.contains("333"),
        "{stored}"
    );
}
