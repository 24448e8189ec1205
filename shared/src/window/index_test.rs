//! The due index's bound (`Conversation::index_due`): written when a window opens and when its
//! batch is acknowledged, not on every append or lease; never before the window is due.

use std::time::Duration;

use crate::message::Message;
use crate::policy::Policy;
use crate::time::Millis;
use crate::window::test_support::*;
use crate::window::*;

/// `c` after appending message `id` at `at` ms under the default policy.
fn append(c: Conversation, id: &str, at: u64, r: &mut dyn FnMut() -> u64) -> Conversation {
    c.plan_append(
        Message::text(id, "u", "x"),
        &Policy::default(),
        Millis(at),
        r,
    )
    .unwrap()
    .next
}

#[test]
fn the_index_stays_put_from_opening_to_acknowledgement() {
    let mut r = counter();
    let p = Policy::default(); // quiet 8 s, max wait 30 s
    let mut c = Conversation::fresh(key(), Millis(0));
    let mut seen = Vec::new();
    for t in [0, 2_000, 5_000, 9_000] {
        c = c
            .plan_append(
                Message::text(format!("m{t}"), "u", "x"),
                &p,
                Millis(t),
                &mut r,
            )
            .unwrap()
            .next;
        let due = c.due_at().unwrap();
        let ix = c.index_due().unwrap();
        assert!(ix >= due, "the sweep never finds a window before it is due");
        assert_eq!(c.index_at, Some(ix), "stored with the write");
        seen.push(ix);
    }
    assert!(seen.iter().all(|&ix| ix == Millis(30_000)), "{seen:?}");
    // The flush closes and leases: the index does not move.
    c.close_if_due(Millis(17_000));
    let gen = c.pending[0].gen;
    assert!(c.lease_head(Millis(17_000), Duration::from_secs(75), 7));
    assert_eq!(c.index_due(), Some(Millis(30_000)));
    assert_eq!(c.index_at, Some(Millis(30_000)));
    // The acknowledgement takes it out of the index.
    assert!(c.ack(gen, 7, Millis(17_100)));
    assert_eq!(c.index_due(), None);
    assert_eq!(c.index_at, None);
}

/// One message at 0 under the default policy, closed for quiet at 8 s and leased (token 1).
fn leased_at_8s() -> (Conversation, u64, impl FnMut() -> u64) {
    let mut r = counter();
    let mut c = append(Conversation::fresh(key(), Millis(0)), "a", 0, &mut r);
    c.close_if_due(Millis(8_000));
    let gen = c.pending[0].gen;
    assert!(c.lease_head(Millis(8_000), Duration::from_secs(75), 1));
    (c, gen, r)
}

#[test]
fn backoffs_parks_and_redrives_file_the_real_next_step() {
    let (mut c, gen, _) = leased_at_8s();
    assert!(c.hold_after_failure(gen, 1, Millis(8_100), Duration::from_secs(4), "503"));
    assert_eq!(c.index_due(), Some(Millis(12_100)), "the backoff's end");
    assert!(c.lease_head(Millis(12_100), Duration::from_secs(75), 2));
    assert_eq!(
        c.index_due(),
        Some(Millis(12_100)),
        "kept through the lease"
    );
    assert!(c.park(gen, 2, Millis(12_200), "400"));
    assert_eq!(c.index_due(), Some(PARKED));
    // A redrive lifts the park and leases again: due at once, not parked any more.
    c.lift_hold();
    assert!(c.lease_head(Millis(20_000), Duration::from_secs(75), 3));
    assert_eq!(c.index_due(), Some(Millis(8_000)), "its close time");
}

#[test]
fn a_window_opened_behind_a_hand_off_is_filed_at_its_own_bound_after_the_ack() {
    let (mut c, gen, mut r) = leased_at_8s();
    c = append(c, "b", 8_500, &mut r);
    assert_eq!(
        c.index_due(),
        Some(Millis(30_000)),
        "the leased batch's bound"
    );
    assert!(c.ack(gen, 1, Millis(8_600)));
    assert_eq!(
        c.index_due(),
        Some(Millis(38_500)),
        "the new window's max wait"
    );
}

#[test]
fn records_written_before_the_bound_existed_still_load_and_settle() {
    let mut r = counter();
    let c = append(Conversation::fresh(key(), Millis(0)), "a", 0, &mut r);
    let mut json: serde_json::Value = serde_json::to_value(&c).unwrap();
    assert_eq!(json["index_at"], serde_json::json!(30_000), "integer ms");
    json.as_object_mut().unwrap().remove("index_at");
    let old: Conversation = serde_json::from_value(json).unwrap();
    assert_eq!(old.index_at, None);
    assert_eq!(old.index_due(), Some(Millis(30_000)), "derived again");
}
