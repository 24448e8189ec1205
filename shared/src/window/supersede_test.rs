//! The edges of `supersede.rs`: a superseded batch whose successor is emptied by unsends, the
//! thought bound, context against the record's size limits, a newer batch already closed when
//! the superseded one is acknowledged, and records from before the fields existed.

use std::time::Duration;

use crate::guard::{answer, claim_for, GuardAnswer, GuardClaim, MAX_THOUGHT_BATCHES};
use crate::message::{Message, MessageKind};
use crate::policy::{OnNewer, Policy};
use crate::time::Millis;
use crate::window::test_support::*;
use crate::window::*;

const HORIZON: Duration = Duration::from_secs(3600);
const TOKEN: u64 = 9;

fn supersede() -> Policy {
    Policy {
        on_newer: OnNewer::Supersede,
        ..Policy::default()
    }
}

/// `c` after the item `msg` (a message, edit or unsend) at `at` under `p`.
fn item(c: Conversation, msg: Message, p: &Policy, at: u64) -> AppendPlan {
    c.plan_item(msg, p, Millis(at), HORIZON, &mut counter())
        .unwrap()
}

fn send(c: Conversation, id: &str, p: &Policy, at: u64) -> Conversation {
    item(c, Message::text(id, "user", id), p, at).next
}

/// Closes the open window and leases the head, as a flush does.
fn close_and_lease(c: &mut Conversation, at: u64) {
    assert!(c.close_if_due(Millis(at)).is_some());
    assert!(c.lease_head(Millis(at), Duration::from_secs(75), TOKEN));
}

/// A record whose batch ["a"] is closed and being handed off, under `p`; and its guard.
fn handed_off(p: &Policy) -> (Conversation, GuardClaim) {
    let mut c = send(Conversation::fresh(key(), Millis(1_000)), "a", p, 1_000);
    close_and_lease(&mut c, 10_000);
    let claim = claim_for(&key(), &c.pending[0], HORIZON);
    (c, claim)
}

fn ids(msgs: &[Message]) -> Vec<&str> {
    msgs.iter().map(|m| m.id.as_str()).collect()
}

#[test]
fn a_successor_unsent_before_the_guard_asks_leaves_the_batch_unsuperseded() {
    // "and one coke", then deleted for everyone: the window is gone, nothing would repeat "a".
    let p = supersede();
    let (c, claim) = handed_off(&p);
    let c = send(c, "b", &p, 11_000);
    let plan = item(c, revoke("u", "b"), &p, 12_000);
    assert_eq!(plan.amend, Some(Amended::Emptied));
    let mut c = plan.next;
    assert!(c.window.is_none());
    assert!(!c.mark_superseded(claim.gen, Millis(13_000)));
    // The guard still says a message came, but that no batch repeats this one: send the reply.
    assert_eq!(
        answer(Some(&c), &claim, Millis(13_000)),
        Ok(GuardAnswer::Superseded {
            newer_messages: 1,
            supersede: false
        })
    );
    assert!(c.ack(claim.gen, TOKEN, Millis(14_000)));
    assert!(c.is_idle());
}

#[test]
fn a_successor_unsent_after_the_guard_superseded_still_comes_and_repeats_the_context() {
    // The guard told the bot to discard its reply: the next batch must come, whatever the user
    // takes back afterwards.
    let p = supersede();
    let (c, claim) = handed_off(&p);
    let mut c = send(c, "b", &p, 11_000);
    assert!(c.mark_superseded(claim.gen, Millis(12_000)));
    let plan = item(c, revoke("u", "b"), &p, 13_000);
    assert_eq!(plan.amend, Some(Amended::Revoked));
    let mut c = plan.next;
    let w = c.window.as_ref().expect("the window stays");
    assert_eq!(ids(&w.messages), ["u"], "the unsend is its message");
    assert_eq!(w.messages[0].kind, MessageKind::Revoke);
    assert_eq!(w.messages[0].text, None, "no content");
    assert_eq!(w.opened_at, Millis(13_000));
    assert!(c.ack(claim.gen, TOKEN, Millis(14_000)));
    close_and_lease(&mut c, 30_000);
    let b = c.pending[0].to_batch(&key());
    assert_eq!(b.supersedes, Some(claim.batch_id));
    assert_eq!(ids(&b.context), ["a"]);
    assert_eq!(ids(&b.messages), ["u"]);
    assert_eq!(b.text, "");
    assert!(c.encoded_len_bound() >= c.encoded_len());
}

#[test]
fn a_window_holding_context_is_not_dropped_when_unsends_or_a_late_original_empty_it() {
    let p = supersede();
    let (c, claim) = handed_off(&p);
    let mut c = send(c, "b", &p, 11_000);
    assert!(c.mark_superseded(claim.gen, Millis(12_000)));
    assert!(c.ack(claim.gen, TOKEN, Millis(13_000)));
    assert!(c.window.as_ref().unwrap().carried.is_some());

    // The user unsends the window's only message: it stays, with the unsend as its message.
    let plan = item(c.clone(), revoke("u", "b"), &p, 14_000);
    assert_eq!(plan.amend, Some(Amended::Revoked));
    let w = plan.next.window.as_ref().expect("kept");
    assert_eq!(ids(&w.messages), ["u"]);
    assert_eq!(
        w.carried.as_ref().map(|k| ids(&k.messages)),
        Some(vec!["a"])
    );

    // An edit of "x" came before "x" (reordered) and "b" is unsent: the window holds only the
    // edit's message. Then "x": the edit's message leaves the window, "x" takes its content and
    // is the window's first message; the context stays.
    let c = item(c, edit("e", "x", "3 pizzas"), &p, 14_000).next;
    let c = item(c, revoke("u", "b"), &p, 14_500).next;
    assert_eq!(ids(&c.window.as_ref().unwrap().messages), ["e"]);
    let plan = item(c, Message::text("x", "user", "2 pizzas"), &p, 16_000);
    assert_eq!(plan.amend, Some(Amended::LateEdited));
    let mut c = plan.next;
    let w = c.window.as_ref().expect("kept");
    assert!(w.carried.is_some(), "the context survived");
    assert_eq!(ids(&w.messages), ["x"]);
    assert_eq!(w.opened_at, Millis(16_000), "opens at its first message");
    assert_eq!(w.messages[0].text.as_deref(), Some("3 pizzas"));
    close_and_lease(&mut c, 60_000);
    let b = c.pending[0].to_batch(&key());
    assert_eq!(ids(&b.context), ["a"]);
    assert_eq!(ids(&b.messages), ["x"]);
}

#[test]
fn a_thought_at_the_bound_is_answered_with_all_its_batches_as_context() {
    let p = supersede();
    let (mut c, claim) = handed_off(&p);
    let mut claims = vec![claim];
    for (i, id) in ["b", "c"].into_iter().enumerate() {
        let at = 20_000 * (i as u64 + 1);
        c = send(c, id, &p, at);
        let prev = claims.last().unwrap().clone();
        assert!(c.mark_superseded(prev.gen, Millis(at + 1)), "{id}");
        assert!(c.ack(prev.gen, TOKEN, Millis(at + 2)));
        close_and_lease(&mut c, at + 10_000);
        claims.push(claim_for(&key(), &c.pending[0], HORIZON));
    }
    // The third batch of the thought: "c", with "a" and "b" as context.
    let third = c.pending[0].to_batch(&key());
    assert_eq!(ids(&third.context), ["a", "b"]);
    assert_eq!(ids(&third.messages), ["c"]);
    assert_eq!(
        c.pending[0].carried.as_ref().map(|k| k.batches),
        Some(MAX_THOUGHT_BATCHES - 1)
    );
    // The user writes again: the third is not superseded, its guard says send.
    let claim = claims.last().unwrap().clone();
    c = send(c, "d", &p, 70_000);
    assert!(!c.mark_superseded(claim.gen, Millis(70_001)));
    assert_eq!(
        answer(Some(&c), &claim, Millis(70_001)),
        Ok(GuardAnswer::Superseded {
            newer_messages: 1,
            supersede: false
        })
    );
    assert!(c.ack(claim.gen, TOKEN, Millis(70_002)));
    // "d" starts a new thought: no context.
    close_and_lease(&mut c, 90_000);
    let fourth = c.pending[0].to_batch(&key());
    assert_eq!(ids(&fourth.messages), ["d"]);
    assert!(fourth.context.is_empty() && fourth.supersedes.is_none());
}

#[test]
fn context_counts_against_the_record_budget_and_the_size_bound_holds_with_it() {
    // Large messages: a superseded batch of two 150 KB messages moves into the window, and the
    // record then has no room for a third.
    let p = Policy {
        max_bytes: 2 * MAX_MESSAGE_BYTES,
        ..supersede()
    };
    let big = |id: &str| Message::text(id, "user", "x".repeat(150 * 1024));
    let mut c = Conversation::fresh(key(), Millis(1_000));
    for (i, id) in ["a1", "a2"].into_iter().enumerate() {
        c = item(c, big(id), &p, 1_000 + i as u64).next;
    }
    close_and_lease(&mut c, 10_000);
    let gen = c.pending[0].gen;
    c = send(c, "b", &p, 11_000);
    assert!(c.mark_superseded(gen, Millis(12_000)));
    let before = c.stored_bytes();
    assert!(c.ack(gen, TOKEN, Millis(13_000)));
    assert_eq!(c.stored_bytes(), before, "moved, not copied");
    let refused = c
        .clone()
        .plan_item(big("b2"), &p, Millis(14_000), HORIZON, &mut counter());
    assert!(
        matches!(refused, Err(AppendRefused::Backlogged { .. })),
        "{refused:?}"
    );
    // The batch with its context fits what a sink takes.
    close_and_lease(&mut c, 30_000);
    let json = c.pending[0].to_batch(&key()).to_json();
    assert!(json.len() as u64 <= crate::batch::MAX_BATCH_BYTES);

    // The smallest messages: the most a context can hold. The record's cheap size bound (what
    // decides most appends) never falls below its encoding with a large context in it.
    let p = Policy {
        max_messages: u32::MAX,
        max_bytes: crate::policy::MAX_WINDOW_BYTES,
        ..supersede()
    };
    let mut r = counter();
    let mut c = Conversation::fresh(key(), Millis(1_000));
    // One window of them (until its byte cap closes it, or the record is nearly full).
    while c.pending.is_empty() && c.encoded_len_bound() < MAX_CONVERSATION_BYTES - 20_000 {
        c = c
            .plan_append(Message::text("", "", ""), &p, Millis(1_000), &mut r)
            .unwrap()
            .next;
    }
    if c.window.is_some() {
        assert!(c.close_if_due(Millis(10_000)).is_some());
    }
    assert!(c.lease_head(Millis(10_000), Duration::from_secs(75), TOKEN));
    let gen = c.pending[0].gen;
    c = send(c, "b", &p, 11_000);
    assert!(c.mark_superseded(gen, Millis(12_000)));
    assert!(c.ack(gen, TOKEN, Millis(13_000)));
    // In the batch behind it (the byte cap closed one more window) or in the open window.
    let carried = c
        .pending
        .first()
        .and_then(|b| b.carried.as_ref())
        .or(c.window.as_ref().and_then(|w| w.carried.as_ref()))
        .expect("carried");
    assert!(carried.messages.len() > 1_000, "{}", carried.messages.len());
    assert!(c.encoded_len_bound() >= c.encoded_len(), "the bound holds");
    let mut near = 0;
    loop {
        match c.plan_append(Message::text("", "", ""), &p, Millis(14_000), &mut r) {
            Ok(plan) => c = plan.next,
            Err(AppendRefused::Backlogged { .. }) => break,
            Err(e) => panic!("{e}"),
        }
        // Near the limit, where the append decision rests on it.
        if c.encoded_len_bound() + 10_000 >= MAX_CONVERSATION_BYTES {
            near += 1;
            assert!(c.encoded_len_bound() >= c.encoded_len(), "the bound holds");
            assert!(c.encoded_len() <= MAX_CONVERSATION_BYTES);
        }
    }
    assert!(near > 10, "the record came near the limit");
}

#[test]
fn a_superseded_batch_acknowledged_behind_a_closed_batch_and_a_window_goes_to_the_closed_one() {
    let p = supersede();
    let (c, claim) = handed_off(&p);
    let mut c = send(c, "b", &p, 11_000);
    assert!(c.close_if_due(Millis(25_000)).is_some());
    c = send(c, "c", &p, 26_000);
    assert!(c.mark_superseded(claim.gen, Millis(27_000)));
    assert!(c.ack(claim.gen, TOKEN, Millis(28_000)));
    assert_eq!(
        c.pending[0].carried.as_ref().map(|k| ids(&k.messages)),
        Some(vec!["a"])
    );
    assert!(c.window.as_ref().unwrap().carried.is_none(), "only once");
    // The closed batch's own guard: "c" came after it.
    let next = claim_for(&key(), &c.pending[0], HORIZON);
    assert!(matches!(
        answer(Some(&c), &next, Millis(29_000)),
        Ok(GuardAnswer::Superseded {
            newer_messages: 1,
            ..
        })
    ));
    // A batch not marked is acknowledged as before: nothing moves.
    assert!(c.lease_head(Millis(30_000), Duration::from_secs(75), TOKEN));
    assert!(c.ack(next.gen, TOKEN, Millis(31_000)));
    assert!(c.window.as_ref().unwrap().carried.is_none());
}

#[test]
fn a_record_from_before_the_fields_loads_and_its_batches_are_never_superseded() {
    let p = supersede();
    let (c, _) = handed_off(&p);
    let mut v = serde_json::to_value(&c).unwrap();
    v.as_object_mut().unwrap().remove("accepted");
    for b in v["pending"].as_array_mut().unwrap() {
        let b = b.as_object_mut().unwrap();
        for f in ["accepted", "supersede", "superseded", "carried"] {
            b.remove(f);
        }
    }
    let old: Conversation = serde_json::from_value(v).unwrap();
    assert_eq!((old.accepted, old.pending[0].accepted), (0, 0));
    // A guard sealed for it now (a retried hand-off): current until a message comes.
    let claim = claim_for(&key(), &old.pending[0], HORIZON);
    assert_eq!(
        answer(Some(&old), &claim, Millis(11_000)),
        Ok(GuardAnswer::Current)
    );
    let mut c = send(old, "b", &p, 12_000);
    assert_eq!(
        answer(Some(&c), &claim, Millis(12_001)),
        Ok(GuardAnswer::Superseded {
            newer_messages: 1,
            supersede: false
        })
    );
    assert!(
        !c.mark_superseded(claim.gen, Millis(12_002)),
        "opened before supersede"
    );
    assert!(c.ack(claim.gen, TOKEN, Millis(13_000)));
    assert!(c.window.as_ref().unwrap().carried.is_none());
    // The window that opened after: under the policy, supersedable.
    assert!(c.window.as_ref().unwrap().supersede);
}
