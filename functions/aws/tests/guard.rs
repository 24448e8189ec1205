//! The reply guard on AWS (moto): the flush Lambda seals a guard into each batch under the HTTP
//! API's URL, and the webhook Lambda's Router (the same one the generic route goes through)
//! (the Meta route of `apigw.rs`, same payload shape) answers `GET /guard/{token}` as API
//! Gateway delivers it, from one consistent read of the
//! conversation's DynamoDB record: `current`, then `superseded` once the user wrote again; a
//! token that does not open answers 404 and reveals nothing.

mod common;
#[path = "common/guarded.rs"]
mod guarded;
#[path = "common/meta.rs"]
mod meta;

use common::apigw::{event, send, DOMAIN};
use common::{roomy_policy, Harness};
use lull_testkit::{wait_for, PATIENCE};
use serde_json::{json, Value};

const APP_SECRET: &str = "meta-app-secret";
const USER: &str = "16505550042";
const LOG_SECRET: &[u8] = b"the deployment's log secret";

/// The webhook Lambda's Router over `h`, with the guard key `main.rs` derives.
fn router(h: &Harness) -> axum::Router {
    let env = |k: &str| match k {
        "LULL_META_APP_SECRET" => Some(APP_SECRET.to_string()),
        "LULL_META_VERIFY_TOKEN" => Some("verify".to_string()),
        _ => None,
    };
    let mut tenant = lull_ingest::Tenant::from_env(env).expect("tenant");
    tenant.policy = h.policy;
    let state = lull_ingest::IngestState::new(
        h.webhook.clone(),
        std::sync::Arc::new(lull_ingest::MemoryDirectory::single(tenant)),
        lull_ingest::IngestConfig::default(),
    )
    .with_guard(lull_sink::GuardKey::derive(LOG_SECRET));
    lull_ingest::router(state)
}

/// POSTs a signed Meta text message `id` of [`USER`].
async fn post(r: &axum::Router, id: &str, text: &str) {
    meta::post_text(r, APP_SECRET, "106540352242922", USER, id, text).await;
}

/// `GET path` as API Gateway delivers it (payload v2, no body).
async fn get(r: &axum::Router, path: &str) -> (u16, String) {
    let mut ev: Value = serde_json::from_str(&event(path, &[], b"", false)).expect("event");
    ev["requestContext"]["http"]["method"] = json!("GET");
    send(r, &ev.to_string()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_webhook_lambda_answers_the_guard_the_flush_lambda_sealed() {
    let mut h = Harness::new(5, 5).await;
    h.policy = roomy_policy();
    let base = format!("https://{DOMAIN}");
    h.flusher = guarded::flusher(&h, &base, lull_sink::GuardKey::derive(LOG_SECRET));
    let r = router(&h);
    post(&r, "wamid.guard.1", "2 pizzas").await;
    let poller = h.start_poller();
    wait_for("the batch", PATIENCE, async || h.sink.message_count() >= 1).await;
    let batch = h.sink.batches().remove(0);
    let url = batch
        .reply_guard
        .expect("the batch carries a reply guard")
        .url;
    let path = url
        .strip_prefix(&base)
        .expect("under the HTTP API's URL")
        .to_string();
    assert!(path.starts_with("/guard/"), "{url}");
    assert!(!url.contains(USER), "no phone number in the URL: {url}");

    let (status, text) = get(&r, &path).await;
    assert_eq!((status, text.as_str()), (200, r#"{"state":"current"}"#));

    // "and one coke" after the batch closed: the guard sees it in the record.
    post(&r, "wamid.guard.2", "and one coke").await;
    let (status, text) = get(&r, &path).await;
    assert_eq!(status, 200, "{text}");
    let said: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(said["state"], "superseded", "{text}");
    assert_eq!(said["newer_messages"], 1, "{text}");

    // A token that does not open: 404, nothing about why.
    let mut forged = path.clone();
    forged.pop();
    forged.push(if path.ends_with('A') { 'B' } else { 'A' });
    for bad in [forged.as_str(), "/guard/not-a-token"] {
        let (status, text) = get(&r, bad).await;
        assert_eq!(status, 404, "{bad}: {text}");
        assert!(text.contains("no such reply guard"), "{text}");
    }
    poller.stop().await;
}
