//! Acknowledged ids kept in the record (`Conversation::acked`): a batch's ids move there with
//! the write acknowledging it, a resend is recognised from the record alone, and only the ids a
//! later acknowledgement pushes out (while still inside the horizon) get dedupe records.

use std::time::Duration;

use crate::message::Message;
use crate::policy::Policy;
use crate::time::Millis;
use crate::window::test_support::*;
use crate::window::*;

const HOUR: Duration = Duration::from_secs(3600);

/// `c` with one batch of `ids` appended at `at` ms, closed and leased under token 1: the head.
fn leased(mut c: Conversation, ids: &[&str], at: u64) -> Conversation {
    let mut r = counter();
    for id in ids {
        c = c
            .plan_append(
                Message::text(*id, "u", "x"),
                &Policy::default(),
                Millis(at),
                &mut r,
            )
            .unwrap()
            .next;
    }
    c.close_if_due(Millis(at + 8_000));
    assert!(c.lease_head(Millis(at + 8_000), Duration::from_secs(75), 1));
    c
}

/// The head of `c` acknowledged at `at` ms under `budget`: the dedupe records to write first.
fn acked(c: &mut Conversation, at: u64, budget: u64) -> Vec<crate::ports::DedupeRecord> {
    let gen = c.pending[0].gen;
    let records = c.retire_head_ids(Millis(at), HOUR, budget);
    assert!(c.ack(gen, 1, Millis(at)));
    records
}

#[test]
fn an_acknowledged_batch_that_fits_writes_no_dedupe_record_and_its_ids_are_recognised() {
    let mut c = leased(Conversation::fresh(key(), Millis(0)), &["a", "b"], 0);
    let gen = c.pending[0].gen;
    assert!(acked(&mut c, 8_100, ACKED_IDS_BYTES).is_empty());
    assert_eq!(c.holds_message("a"), None, "the batch left the record");
    assert_eq!(c.acked_message("a", Millis(8_100)), Some(gen));
    assert_eq!(c.acked_message("b", Millis(8_100)), Some(gen));
    assert_eq!(c.acked_message("c", Millis(8_100)), None);
    assert_eq!(c.dedupe_until, None, "nothing to look up");
    assert!(!c.needs_dedupe_lookup(Millis(8_100), HOUR));
    // Recognised to the end of the horizon, not after.
    let until = 8_100 + 3_600_000;
    assert_eq!(c.acked_message("a", Millis(until)), Some(gen));
    assert_eq!(c.acked_message("a", Millis(until + 1)), None);
    assert_eq!(c.acked_bytes(), 56 + 2 * 4);
}

#[test]
fn ids_pushed_out_of_the_list_get_dedupe_records_until_their_own_horizon() {
    // A budget of two groups of one id each (56 + 4 bytes each).
    let budget = 2 * (56 + 4);
    let mut c = Conversation::fresh(key(), Millis(0));
    let mut gens = Vec::new();
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        let at = 100_000 * i as u64;
        c = leased(c, &[id], at);
        gens.push(c.pending[0].gen);
        let records = acked(&mut c, at + 8_100, budget);
        if i < 2 {
            assert!(records.is_empty(), "fits: {records:?}");
        } else {
            // The oldest id is pushed out: its record expires at its own horizon's end.
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].message_id, "a");
            assert_eq!(records[0].gen, gens[0]);
            assert_eq!(records[0].expires_at, Millis(8_100 + 3_600_000));
            assert_eq!(c.dedupe_until, Some(Millis(8_100 + 3_600_000)));
        }
    }
    assert!(c.acked_bytes() <= budget);
    assert_eq!(
        c.acked_message("a", Millis(300_000)),
        None,
        "left the record"
    );
    assert!(
        c.needs_dedupe_lookup(Millis(300_000), HOUR),
        "asks the store"
    );
    assert_eq!(c.acked_message("c", Millis(300_000)), Some(gens[2]));
}

#[test]
fn a_batch_larger_than_the_budget_keeps_its_newest_ids_and_remembers_the_rest() {
    let mut c = leased(Conversation::fresh(key(), Millis(0)), &["a", "b", "c"], 0);
    let records = acked(&mut c, 8_100, 56 + 4);
    let ids: Vec<_> = records.iter().map(|d| d.message_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"], "oldest first");
    assert_eq!(c.acked_message("c", Millis(8_100)), Some(c.gen - 1));
    // A budget below one group keeps nothing: every id gets its dedupe record.
    let mut c = leased(Conversation::fresh(key(), Millis(0)), &["a", "b"], 0);
    assert_eq!(acked(&mut c, 8_100, 0).len(), 2);
    assert!(c.acked.is_empty(), "no empty group is kept");
}

#[test]
fn ids_past_their_horizon_just_drop() {
    let budget = 56 + 4;
    let mut c = leased(Conversation::fresh(key(), Millis(0)), &["a"], 0);
    assert!(acked(&mut c, 8_100, budget).is_empty());
    // The next acknowledgement comes after "a"'s horizon: it drops with no record.
    let later = 8_100 + 3_600_000 + 1;
    c = leased(c, &["b"], later);
    assert!(acked(&mut c, later + 8_100, budget).is_empty());
    assert_eq!(c.dedupe_until, None);
    assert_eq!(c.acked.len(), 1);
    // An append drops expired ids too.
    let mut r = counter();
    let end = later + 8_100 + 3_600_000 + 1;
    let c = c
        .plan_append(
            Message::text("z", "u", "x"),
            &Policy::default(),
            Millis(end),
            &mut r,
        )
        .unwrap()
        .next;
    assert!(c.acked.is_empty());
}

#[test]
fn records_without_the_list_load_and_a_list_round_trips() {
    let c = leased(Conversation::fresh(key(), Millis(0)), &["a"], 0);
    let json = serde_json::to_value(&c).unwrap();
    assert!(json.get("acked").is_none(), "an empty list is not written");
    let mut c: Conversation = serde_json::from_value(json).unwrap();
    assert!(c.acked.is_empty());
    acked(&mut c, 8_100, ACKED_IDS_BYTES);
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(
        json["acked"],
        serde_json::json!([{"gen": c.gen - 1, "until": 3_608_100, "ids": ["a"]}]),
        "integer times"
    );
    let back: Conversation = serde_json::from_value(json).unwrap();
    assert_eq!(back, c);
}

#[test]
fn a_record_from_before_deferred_dedupe_asks_the_store_until_a_horizon_after_its_last_write() {
    let c = leased(Conversation::fresh(key(), Millis(0)), &["a"], 0);
    let mut json: serde_json::Value = serde_json::to_value(&c).unwrap();
    assert_eq!(
        json["dedupe_until"],
        serde_json::Value::Null,
        "written, as null"
    );
    json.as_object_mut().unwrap().remove("dedupe_until");
    let mut old: Conversation = serde_json::from_value(json).unwrap();
    assert_eq!(old.dedupe_until, Some(LEGACY_DEDUPE));
    let h = Duration::from_secs(100);
    // Last written at 8 s: its appends' dedupe records expire by 108 s at the latest.
    assert!(old.needs_dedupe_lookup(Millis(108_000), h));
    assert!(!old.needs_dedupe_lookup(Millis(108_001), h));
    // Its first acknowledgement replaces the marker with that bound, though it writes no
    // dedupe record itself.
    let gen = old.pending[0].gen;
    assert!(old
        .retire_head_ids(Millis(9_000), h, ACKED_IDS_BYTES)
        .is_empty());
    assert!(old.ack(gen, 1, Millis(9_000)));
    assert_eq!(old.dedupe_until, Some(Millis(108_000)));
    let again: Conversation = serde_json::from_value(serde_json::to_value(&old).unwrap()).unwrap();
    assert_eq!(again.dedupe_until, Some(Millis(108_000)));
}

#[test]
fn the_size_bound_covers_a_full_list_of_escaped_ids() {
    let id = "\u{1}".repeat(40);
    let mut c = leased(Conversation::fresh(key(), Millis(0)), &[id.as_str()], 0);
    acked(&mut c, 8_100, 10 * ACKED_IDS_BYTES);
    assert!(c.encoded_len_bound() >= c.encoded_len());
}
