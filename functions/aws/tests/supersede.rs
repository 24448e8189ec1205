//! `on_newer = "supersede"` on AWS, end to end against moto (docs/batch.md, "The reply guard"):
//! the webhook Lambda's Router and the flush Lambda's hand-off, both wired from their settings as
//! their `main.rs` wire them (`LULL_ON_NEWER=supersede`, the guard key derived from
//! `LULL_LOG_SECRET`, the flush's `LULL_PUBLIC_URL`), signed Meta messages as API Gateway
//! delivers them, DynamoDB conditional writes, SQS triggers fed to the flush handler by a poller
//! as the event source mapping does, and a capture sink that holds the hand-off open while the
//! test plays the bot (it answers after its AI step, as supersede needs).
//!
//! - The guard's way: the bot GETs the guard (`current`), the user writes again, the guard
//!   answers `superseded` with `supersede: true` and marks the pending batch in the record (one
//!   conditional write, nothing else of the record changed); the next batch carries the first
//!   as `context` and names it in `supersedes`, its own `messages` exactly-once; once that batch
//!   is acknowledged nothing of the superseded one is left in the item.
//! - The answer's way: the bot never asks the guard and answers the hand-off `Lull-Reply:
//!   superseded` once the user wrote again: the next batch carries the context all the same.
//! - The bound: the third batch of a thought is never superseded (`supersede: false`), and the
//!   batch after it carries no context.

mod common;
#[path = "common/meta.rs"]
mod meta;
#[path = "common/raw.rs"]
mod raw;

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use common::apigw::{event, send, DOMAIN};
use common::{check_batches, unique, Harness, Poller};
use lull_aws::{Accounting, Role};
use lull_core::{Batch, ConversationKey, Provider};
use lull_ingest::{IngestConfig, IngestState, Tenant};
use lull_testkit::{wait_for, PATIENCE};
use serde_json::{json, Value};

const APP_SECRET: &str = "meta-app-secret";
const PHONE_ID: &str = "106540352242922";
const USER: &str = "16505550026";
const LOG_SECRET: &str = "the deployment's log secret";

/// The two Lambdas of one deployment over `h`'s table, queue and capture sink.
struct Lambdas {
    router: axum::Router,
    flush: Poller,
    base: String,
}

/// The webhook Lambda's Router as `functions/webhook/src/main.rs` builds it from its settings
/// (the bootstrap tenant of `LULL_META_APP_SECRET` under the settings' policy, the guard route
/// keyed from the log secret), and one flush Lambda from `Settings::handoff` through
/// `flush::handle_invocation`, as `functions/flush/src/main.rs` runs it.
fn lambdas(h: &Harness) -> Lambdas {
    let base = format!("https://{DOMAIN}");
    let prefix = format!("{}/", unique("lull/supersede"));
    let vars = [
        ("LULL_ON_NEWER", "supersede"),
        ("LULL_LOG_SECRET", LOG_SECRET),
        ("LULL_PUBLIC_URL", base.as_str()),
    ];
    let acct = Accounting::new();
    let webhook = h.lambda_settings_with(Role::Webhook, &prefix, &vars);
    let env = |k: &str| match k {
        "LULL_META_APP_SECRET" => Some(APP_SECRET.to_string()),
        "LULL_META_VERIFY_TOKEN" => Some("verify".to_string()),
        _ => None,
    };
    let bootstrap = Tenant::from_env(env).expect("tenant");
    let fallback = bootstrap.has_any_secret().then_some(Tenant {
        policy: webhook.policy,
        ..bootstrap
    });
    let intake = Arc::new(webhook.intake(&h.clients, &acct).expect("intake"));
    let mut state = IngestState::new(
        intake,
        webhook.tenants(&h.clients, &acct, fallback),
        IngestConfig::default(),
    );
    let key = webhook.guard_key().expect("a log secret gives a guard key");
    state = state.with_guard(key);
    let flush = h.lambda_settings_with(Role::Flush, &prefix, &vars);
    let handoff = Arc::new(flush.handoff(&h.clients, &acct).expect("handoff"));
    Lambdas {
        router: lull_ingest::router(state),
        flush: h.start_flush_lambda(handoff, flush.listen_settle()),
        base,
    }
}

/// POSTs a signed Meta text message `id` of [`USER`].
async fn post(r: &axum::Router, id: &str, text: &str) {
    meta::post_text(r, APP_SECRET, PHONE_ID, USER, id, text).await;
}

/// The bot's GET of `batch`'s reply guard, as API Gateway delivers it: the answer's JSON.
async fn guard(l: &Lambdas, batch: &Batch) -> Value {
    let url = &batch.reply_guard.as_ref().expect("a reply guard").url;
    let path = url.strip_prefix(&l.base).expect("under the HTTP API's URL");
    let mut ev: Value = serde_json::from_str(&event(path, &[], b"", false)).expect("event");
    ev["requestContext"]["http"]["method"] = json!("GET");
    let (status, text) = send(&l.router, &ev.to_string()).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).expect("the guard answers JSON")
}

/// The conversation's DynamoDB item read raw: its attributes but `rec`, and `rec`'s JSON.
async fn raw(h: &Harness) -> (Vec<(String, AttributeValue)>, Value) {
    raw::record(h, &ConversationKey::new(Provider::Meta, PHONE_ID, USER)).await
}

/// The paths (`a.b.0.c`) at which two JSON values differ.
fn changed(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    let child = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                changed(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &child(k),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                changed(v, w, &child(&i.to_string()), out);
            }
        }
        _ if a != b => out.push(at.to_string()),
        _ => {}
    }
}

fn ids(ms: &[lull_core::Message]) -> Vec<&str> {
    ms.iter().map(|m| m.id.as_str()).collect()
}

/// The first request the sink got for a batch other than `seen`, once there is one.
async fn next_request(h: &Harness, seen: &[&Batch]) -> Batch {
    let find = || {
        h.sink
            .requests()
            .into_iter()
            .find(|b| seen.iter().all(|s| s.batch_id != b.batch_id))
    };
    wait_for("the next hand-off", PATIENCE, async || find().is_some()).await;
    find().expect("the next hand-off")
}

/// Waits until the sink acknowledged `batch`.
async fn acked(h: &Harness, batch: &Batch) {
    wait_for("the acknowledgement", PATIENCE, async || {
        h.sink
            .batches()
            .iter()
            .any(|b| b.batch_id == batch.batch_id)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guard_told_superseded_marks_the_record_and_the_next_batch_carries_the_context() {
    let h = Harness::new(30, 50).await;
    let l = lambdas(&h);
    // The bot answers each hand-off after its AI step: held open until released.
    h.sink.hold();
    post(&l.router, "wamid.s1", "2 pizzas").await;
    let first = next_request(&h, &[]).await;
    assert_eq!(ids(&first.messages), ["wamid.s1"]);
    assert_eq!(guard(&l, &first).await, json!({"state": "current"}));

    // "and one coke" while the bot generates: the guard sees it and marks the batch.
    post(&l.router, "wamid.s2", "and one coke").await;
    let (attrs_before, before) = raw(&h).await;
    assert_eq!(
        guard(&l, &first).await,
        json!({"state": "superseded", "newer_messages": 1, "supersede": true})
    );
    let (attrs_after, after) = raw(&h).await;
    // Stored as docs/architecture.md says: the pending batch marked (`superseded`), beside its
    // own `supersede` and its count at close; the record counts both messages. Nothing else of
    // the record changed but its version and write time; every other attribute is kept.
    let head = &after["pending"][0];
    assert_eq!(head["batch_id"], json!(first.batch_id.to_string()));
    assert_eq!(
        (&head["supersede"], &head["superseded"], &head["accepted"]),
        (&json!(true), &json!(true), &json!(1))
    );
    assert_eq!(after["accepted"], json!(2));
    let mut diff = Vec::new();
    changed(&before, &after, "", &mut diff);
    assert_eq!(
        diff,
        ["pending.0.superseded", "updated_at", "ver"],
        "{after}"
    );
    let ver = |a: &[(String, AttributeValue)]| {
        a.iter()
            .find(|(k, _)| k == "ver")
            .and_then(|(_, v)| v.as_n().ok()?.parse::<u64>().ok())
            .expect("ver")
    };
    assert_eq!(ver(&attrs_after), ver(&attrs_before) + 1);
    let others = |a: &[(String, AttributeValue)]| -> Vec<(String, AttributeValue)> {
        a.iter().filter(|(k, _)| k != "ver").cloned().collect()
    };
    assert_eq!(others(&attrs_after), others(&attrs_before));
    // Asked again: the same answer, and no second write.
    assert_eq!(
        guard(&l, &first).await,
        json!({"state": "superseded", "newer_messages": 1, "supersede": true})
    );
    assert_eq!(raw(&h).await.1, after);

    // The bot discards its reply and answers the hand-off: the acknowledgement moves the first
    // batch into the next one, whose hand-off is held in turn.
    h.sink.release_held();
    let second = next_request(&h, &[&first]).await;
    let (_, rec) = raw(&h).await;
    let pending: Vec<&str> = rec["pending"]
        .as_array()
        .expect("pending")
        .iter()
        .filter_map(|b| b["batch_id"].as_str())
        .collect();
    assert_eq!(pending, [second.batch_id.to_string()], "{rec}");
    let carried = &rec["pending"][0]["carried"];
    assert_eq!(carried["batch_id"], json!(first.batch_id.to_string()));
    assert_eq!(carried["batches"], json!(1));
    assert_eq!(carried["messages"][0]["id"], json!("wamid.s1"));
    assert_eq!(carried["messages"].as_array().map(Vec::len), Some(1));

    assert_eq!(second.supersedes, Some(first.batch_id));
    assert_eq!(ids(&second.context), ["wamid.s1"]);
    assert_eq!(second.context[0].text.as_deref(), Some("2 pizzas"));
    assert_eq!(
        ids(&second.messages),
        ["wamid.s2"],
        "messages stay exactly-once"
    );
    assert_eq!(second.text, "and one coke", "context is never in text");
    assert_eq!(guard(&l, &second).await, json!({"state": "current"}));

    h.sink.release();
    acked(&h, &second).await;
    let batches = check_batches(&h.sink.batches(), &h.policy);
    assert_eq!(batches.len(), 2, "{batches:?}");
    // Moved, not copied: once the second batch's acknowledgement is written (after the sink's
    // answer), nothing of the first is left.
    wait_for("the acknowledgement written", PATIENCE, async || {
        raw(&h).await.1.get("pending").is_none()
    })
    .await;
    let text = raw(&h).await.1.to_string();
    assert!(
        !text.contains("carried") && !text.contains("2 pizzas"),
        "{text}"
    );
    l.flush.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hand_off_answered_lull_reply_superseded_makes_the_next_batch_carry_the_context() {
    let h = Harness::new(30, 50).await;
    let l = lambdas(&h);
    h.sink.hold();
    post(&l.router, "wamid.d1", "a table for two").await;
    let first = next_request(&h, &[]).await;
    // The user writes again; the bot, without asking the guard, discards its reply and says so.
    post(&l.router, "wamid.d2", "make it three").await;
    h.sink.answer_with_header("Lull-Reply", "superseded");
    h.sink.release_held();
    let second = next_request(&h, &[&first]).await;
    assert_eq!(second.supersedes, Some(first.batch_id));
    assert_eq!(ids(&second.context), ["wamid.d1"]);
    assert_eq!(ids(&second.messages), ["wamid.d2"]);
    assert_eq!(second.text, "make it three");
    h.sink.release();
    acked(&h, &second).await;
    check_batches(&h.sink.batches(), &h.policy);
    l.flush.stop().await;
}

/// The bound (`MAX_THOUGHT_BATCHES`, 3): a user who keeps writing while the bot generates gets
/// two supersedes, then an answer. The decision is the core's (`window/supersede.rs`, unit
/// test `append_tenants_and_thoughts_at_the_bound_are_never_superseded`); here the count of
/// batches a context spans survives the DynamoDB record between the Lambdas.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_third_batch_of_a_thought_is_answered_not_superseded() {
    let h = Harness::new(30, 50).await;
    let l = lambdas(&h);
    h.sink.hold();
    post(&l.router, "wamid.b1", "one").await;
    let mut seen: Vec<Batch> = vec![next_request(&h, &[]).await];
    for (i, next) in ["wamid.b2", "wamid.b3"].into_iter().enumerate() {
        post(&l.router, next, "more").await;
        let last = seen.last().expect("a batch");
        assert_eq!(
            guard(&l, last).await,
            json!({"state": "superseded", "newer_messages": 1, "supersede": true})
        );
        h.sink.release_held();
        let refs: Vec<&Batch> = seen.iter().collect();
        let batch = next_request(&h, &refs).await;
        assert_eq!(batch.supersedes, Some(last.batch_id));
        assert_eq!(ids(&batch.messages), [next]);
        assert_eq!(batch.context.len(), i + 1, "{:?}", batch.context);
        seen.push(batch);
    }
    assert_eq!(ids(&seen[2].context), ["wamid.b1", "wamid.b2"]);
    // The third batch: the user wrote again, but it is answered.
    post(&l.router, "wamid.b4", "and more").await;
    assert_eq!(
        guard(&l, &seen[2]).await,
        json!({"state": "superseded", "newer_messages": 1, "supersede": false})
    );
    assert_eq!(raw(&h).await.1["pending"][0]["superseded"], Value::Null);
    h.sink.release();
    let refs: Vec<&Batch> = seen.iter().collect();
    let fourth = next_request(&h, &refs).await;
    assert_eq!(fourth.supersedes, None);
    assert!(fourth.context.is_empty());
    assert_eq!(ids(&fourth.messages), ["wamid.b4"]);
    acked(&h, &fourth).await;
    let batches = check_batches(&h.sink.batches(), &h.policy);
    assert_eq!(batches.len(), 4);
    l.flush.stop().await;
}
