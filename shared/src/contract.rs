//! The store contract: the conditional semantics every `WindowStore` must have, written once
//! and run against each adapter (in memory, SQLite, DynamoDB), so they are proven identical.
//!
//! Each check uses conversation keys of its own (a random account), so one store can serve the
//! whole suite and suites of different tests can share a table. Checks panic with a message on a
//! broken contract: they are test code.

use std::time::Duration;

use crate::key::{ConversationKey, Provider};
use crate::message::{Contact, Location, Media, Message, MessageKind, Reaction, Reply, Sender};
use crate::policy::Policy;
use crate::ports::{DedupeRecord, WindowStore, Written};
use crate::time::Millis;
use crate::window::Conversation;

fn key(tag: &str) -> ConversationKey {
    ConversationKey::new(
        Provider::Meta,
        format!("acct-{tag}-{:016x}", fastrand::u64(..)),
        "5511999990000",
    )
}

fn dedupe(conv: &Conversation, id: &str, now: Millis) -> DedupeRecord {
    DedupeRecord {
        key: conv.key.clone(),
        message_id: id.to_string(),
        gen: conv.gen,
        expires_at: now.plus(Duration::from_secs(3600)),
    }
}

fn appended(conv: Conversation, msg: Message, now: Millis) -> Conversation {
    let mut n = 1;
    conv.plan_append(msg, &Policy::default(), now, &mut || {
        n += 1;
        n
    })
    .expect("plan_append")
    .next
}

/// A message using every optional field, with text that stresses encodings.
pub fn rich_message(id: &str) -> Message {
    let mut m = Message::of_kind(
        id,
        MessageKind::Image,
        Sender {
            id: "5511999990000".into(),
            name: Some("Zoë \"Z\" O'Brien 🍕".into()),
            phone: Some("5511999990000".into()),
            alt_id: Some("BR.1234567890".into()),
        },
    );
    m.text = Some("línea 1\nline 2 \u{0}\u{1F600} <&>".into());
    m.caption = Some("caption | with % signs".into());
    m.media = Some(Media {
        id: Some("1003383421387256".into()),
        url: Some("https://example.com/m?a=1&b=2".into()),
        mime_type: Some("image/jpeg".into()),
        filename: Some("photo.jpg".into()),
        voice: true,
    });
    m.location = Some(Location {
        latitude: -23.5505,
        longitude: -46.6333,
        name: Some("São Paulo".into()),
        address: None,
    });
    m.contacts = vec![Contact {
        name: Some("Ana".into()),
        phones: vec!["+55 11 9999".into()],
    }];
    m.reply = Some(Reply {
        id: "opt-1".into(),
        title: "Vegan".into(),
    });
    m.reaction = Some(Reaction {
        message_id: "wamid.X".into(),
        emoji: None,
    });
    m.reply_to = Some("wamid.prev".into());
    m.provider_type = Some("image".into());
    m.sent_at = Some(Millis(1_749_416_383_000));
    m
}

/// Runs every check of the contract against `store`.
pub async fn check_all<S: WindowStore + Clone + 'static>(store: &S) {
    missing_record_loads_as_none(store).await;
    create_requires_absence(store).await;
    version_conflict_returns_current_and_writes_nothing(store).await;
    remembered_ids_are_seen_with_their_record(store).await;
    expired_dedupe_record_is_not_seen(store).await;
    dedupe_is_per_conversation(store).await;
    replace_is_conditional(store).await;
    records_round_trip_exactly(store).await;
    acknowledged_ids_round_trip_in_the_record(store).await;
    due_index_lists_past_due_oldest_first(store).await;
    concurrent_appends_all_land_once(store).await;
}

pub async fn missing_record_loads_as_none<S: WindowStore>(store: &S) {
    assert_eq!(store.load(&key("missing")).await.expect("load"), None);
}

pub async fn create_requires_absence<S: WindowStore>(store: &S) {
    let now = Millis(1_000_000);
    let c = appended(
        Conversation::fresh(key("create"), now),
        Message::text("m1", "u", "a"),
        now,
    );
    let r = store.append(None, &c).await.expect("append");
    assert_eq!(r, Written::Ok);
    let c2 = appended(
        Conversation::fresh(c.key.clone(), now),
        Message::text("m2", "u", "b"),
        now,
    );
    match store.append(None, &c2).await.expect("append") {
        Written::Conflict(Some(current)) => assert_eq!(*current, c),
        other => panic!("creating an existing record must conflict with it, got {other:?}"),
    }
}

pub async fn version_conflict_returns_current_and_writes_nothing<S: WindowStore>(store: &S) {
    let now = Millis(2_000_000);
    let c1 = appended(
        Conversation::fresh(key("conflict"), now),
        Message::text("m1", "u", "a"),
        now,
    );
    assert_eq!(store.append(None, &c1).await.expect("append"), Written::Ok);
    // A writer that read version 0 (nothing) loses and changes nothing.
    let stale = appended(
        Conversation::fresh(c1.key.clone(), now),
        Message::text("m2", "u", "b"),
        now,
    );
    let r = store.append(Some(7), &stale).await.expect("append");
    assert_eq!(r, Written::Conflict(Some(Box::new(c1.clone()))));
    let c2 = appended(c1.clone(), Message::text("m2", "u", "b"), now);
    let r = store.append(Some(c1.ver), &c2).await.expect("append");
    assert_eq!(r, Written::Ok, "the current version's writer lands");
    assert_eq!(store.load(&c1.key).await.expect("load"), Some(c2));
}

pub async fn remembered_ids_are_seen_with_their_record<S: WindowStore>(store: &S) {
    let now = Millis(3_000_000);
    let c1 = appended(
        Conversation::fresh(key("dup"), now),
        Message::text("m1", "u", "a"),
        now,
    );
    assert_eq!(store.append(None, &c1).await.expect("append"), Written::Ok);
    assert_eq!(
        store.seen(&c1.key, "m1", now).await.expect("seen"),
        None,
        "an append writes no dedupe record: the record holds the id"
    );
    let d1 = dedupe(&c1, "m1", now);
    let d2 = dedupe(&c1, "m2", now);
    store
        .remember(&[d1.clone(), d2.clone()])
        .await
        .expect("remember");
    assert_eq!(
        store.seen(&c1.key, "m1", now).await.expect("seen"),
        Some(d1.clone())
    );
    assert_eq!(
        store.seen(&c1.key, "m2", now).await.expect("seen"),
        Some(d2)
    );
    assert_eq!(store.seen(&c1.key, "m3", now).await.expect("seen"), None);
    // A flush retried after a crash writes the same records again.
    store
        .remember(std::slice::from_ref(&d1))
        .await
        .expect("remember again");
    assert_eq!(
        store.seen(&c1.key, "m1", now).await.expect("seen"),
        Some(d1)
    );
    store.remember(&[]).await.expect("nothing to remember");
    assert_eq!(
        store.load(&c1.key).await.expect("load"),
        Some(c1),
        "dedupe records leave the conversation record alone"
    );
}

pub async fn expired_dedupe_record_is_not_seen<S: WindowStore>(store: &S) {
    let t0 = Millis(4_000_000);
    let c1 = appended(
        Conversation::fresh(key("expiry"), t0),
        Message::text("m1", "u", "a"),
        t0,
    );
    let mut d1 = dedupe(&c1, "m1", t0);
    d1.expires_at = Millis(t0.0 + 10);
    store.remember(&[d1.clone()]).await.expect("remember");
    // Still inside the horizon (expiry compared by stored timestamp, inclusive).
    let at_expiry = Millis(t0.0 + 10);
    assert_eq!(
        store.seen(&c1.key, "m1", at_expiry).await.expect("seen"),
        Some(d1.clone())
    );
    // Past the horizon: the id is new again, whatever TTL has or has not deleted.
    let later = Millis(t0.0 + 11);
    assert_eq!(store.seen(&c1.key, "m1", later).await.expect("seen"), None);
    // Written again with a later expiry (acknowledged again): seen again.
    d1.expires_at = Millis(t0.0 + 100);
    store.remember(&[d1.clone()]).await.expect("remember");
    assert_eq!(
        store.seen(&c1.key, "m1", later).await.expect("seen"),
        Some(d1)
    );
}

pub async fn dedupe_is_per_conversation<S: WindowStore>(store: &S) {
    let now = Millis(5_000_000);
    let a = Conversation::fresh(key("iso-a"), now);
    let b = Conversation::fresh(key("iso-b"), now);
    store
        .remember(&[dedupe(&a, "same-id", now)])
        .await
        .expect("remember");
    assert!(store
        .seen(&a.key, "same-id", now)
        .await
        .expect("seen")
        .is_some());
    assert_eq!(
        store.seen(&b.key, "same-id", now).await.expect("seen"),
        None,
        "one tenant's message id must not block another's"
    );
}

pub async fn replace_is_conditional<S: WindowStore>(store: &S) {
    let now = Millis(6_000_000);
    let c1 = appended(
        Conversation::fresh(key("replace"), now),
        Message::text("m1", "u", "a"),
        now,
    );
    assert_eq!(store.append(None, &c1).await.expect("append"), Written::Ok);
    let mut closed = c1.clone();
    assert!(closed.close_if_due(Millis(now.0 + 8_000)).is_some());
    closed.ver += 1;
    assert_eq!(
        store.replace(c1.ver + 5, &closed).await.expect("replace"),
        Written::Conflict(Some(Box::new(c1.clone())))
    );
    assert_eq!(
        store.replace(c1.ver, &closed).await.expect("replace"),
        Written::Ok
    );
    assert_eq!(store.load(&c1.key).await.expect("load"), Some(closed));
    let ghost = Conversation::fresh(key("ghost"), now);
    assert_eq!(
        store.replace(0, &ghost).await.expect("replace"),
        Written::Conflict(None)
    );
}

pub async fn records_round_trip_exactly<S: WindowStore>(store: &S) {
    let now = Millis(7_000_000);
    let mut k = key("roundtrip");
    k.account.push_str("|with%odd|chars");
    let k = k.in_group("120363042@g.us");
    let mut c = appended(Conversation::fresh(k, now), rich_message("r1"), now);
    c = appended(c, Message::text("r2", "u", "second"), Millis(now.0 + 1));
    let mut closed = c.clone();
    closed.close_if_due(Millis(now.0 + 9_000));
    closed.lease_head(Millis(now.0 + 9_000), Duration::from_secs(30), 42);
    closed = appended(
        closed,
        Message::text("r3", "u", "third"),
        Millis(now.0 + 9_001),
    );
    assert_eq!(
        store.append(None, &closed).await.expect("append"),
        Written::Ok
    );
    assert_eq!(store.load(&closed.key).await.expect("load"), Some(closed));
}

/// The ids an acknowledgement keeps in the record (`Conversation::acked`) come back with it:
/// the append's dedupe rests on them.
pub async fn acknowledged_ids_round_trip_in_the_record<S: WindowStore>(store: &S) {
    let now = Millis(8_000_000);
    let mut c = appended(
        Conversation::fresh(key("acked"), now),
        rich_message("a1"),
        now,
    );
    c = appended(c, Message::text("a2", "u", "x"), Millis(now.0 + 1));
    c.close_if_due(Millis(now.0 + 9_000));
    let gen = c.pending[0].gen;
    assert!(c.lease_head(Millis(now.0 + 9_000), Duration::from_secs(30), 7));
    assert_eq!(store.append(None, &c).await.expect("append"), Written::Ok);
    let mut next = c.clone();
    let at = Millis(now.0 + 9_500);
    let pushed_out = next.retire_head_ids(at, Duration::from_secs(3600), 10_000);
    assert!(pushed_out.is_empty(), "both ids fit");
    assert!(next.ack(gen, 7, at));
    assert_eq!(
        store.replace(c.ver, &next).await.expect("replace"),
        Written::Ok
    );
    let back = store.load(&next.key).await.expect("load").expect("stored");
    assert_eq!(back.acked_message("a1", at), Some(gen));
    assert_eq!(back.acked_message("a2", at), Some(gen));
    assert_eq!(back, next);
}

pub async fn due_index_lists_past_due_oldest_first<S: WindowStore>(store: &S) {
    // Far-future times so other checks' records (due in the past) sort first and are skipped.
    let base = Millis(9_000_000_000_000);
    let mut keys = Vec::new();
    for (i, offset) in [300u64, 100, 200].into_iter().enumerate() {
        let t = Millis(base.0 + offset);
        let c = appended(
            Conversation::fresh(key(&format!("due{i}")), t),
            Message::text("m", "u", "a"),
            t,
        );
        assert_eq!(store.append(None, &c).await.expect("append"), Written::Ok);
        keys.push((c.index_due().expect("in the index"), c.key.clone()));
    }
    keys.sort();
    let ours = |found: Vec<ConversationKey>| -> Vec<ConversationKey> {
        found
            .into_iter()
            .filter(|k| keys.iter().any(|(_, ok)| ok == k))
            .collect()
    };
    let before_any = store
        .due(Millis(keys[0].0 .0 - 1), 10_000)
        .await
        .expect("due");
    assert!(ours(before_any).is_empty());
    let two = store.due(keys[1].0, 10_000).await.expect("due");
    assert_eq!(ours(two), vec![keys[0].1.clone(), keys[1].1.clone()]);
    let all = store.due(Millis(u64::MAX / 2), 10_000).await.expect("due");
    assert_eq!(
        ours(all),
        keys.iter().map(|(_, k)| k.clone()).collect::<Vec<_>>()
    );
    // An idle conversation leaves the index.
    let mut idle = store.load(&keys[0].1).await.expect("load").expect("record");
    let expected = idle.ver;
    idle.window = None;
    idle.ver += 1;
    assert_eq!(
        store.replace(expected, &idle).await.expect("replace"),
        Written::Ok
    );
    let all = store.due(Millis(u64::MAX / 2), 10_000).await.expect("due");
    assert!(!all.contains(&keys[0].1));
}

pub async fn concurrent_appends_all_land_once<S: WindowStore + Clone + 'static>(store: &S) {
    let k = key("concurrent");
    let writers = 20;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..writers {
        let store = store.clone();
        let k = k.clone();
        tasks.spawn(async move {
            let now = Millis(8_000_000 + i);
            let mut current = store.load(&k).await.expect("load");
            for _ in 0..1000 {
                let conv = current
                    .clone()
                    .unwrap_or_else(|| Conversation::fresh(k.clone(), now));
                let next = appended(conv, Message::text(format!("c{i}"), "u", "x"), now);
                match store
                    .append(current.as_ref().map(|c| c.ver), &next)
                    .await
                    .expect("append")
                {
                    Written::Ok => return,
                    Written::Conflict(latest) => current = latest.map(|b| *b),
                }
            }
            panic!("writer {i} never landed");
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("writer task");
    }
    let c = store.load(&k).await.expect("load").expect("record");
    assert_eq!(c.ver, writers);
    let mut ids: Vec<_> = c
        .window
        .expect("window")
        .messages
        .iter()
        .map(|m| m.id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, writers);
}
