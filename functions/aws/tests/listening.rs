//! "The user sees the bot listening" on AWS, against moto: a tenant applied to the tenant store
//! (directory item in DynamoDB, its Meta access token in Secrets Manager) asks for
//! `on_close = ["read", "typing"]`; the flush Lambda's code path (`flush::handle_invocation`
//! over SQS triggers, with the sink wired as `Settings::handoff` wires it: `Listening` around the
//! tenant-routed sink, both reading the store-backed directory) sends, for a burst, one call to a
//! loopback fake of the Meta Cloud API with the exact shape of Meta's "Typing indicators" page
//! (developers.facebook.com, WhatsApp Business Platform): `POST /{phone_number_id}/messages`,
//! `Authorization: Bearer <token>`, `{"messaging_product":"whatsapp","status":"read",
//! "message_id":<last>,"typing_indicator":{"type":"text"}}`. The token rotates like the other
//! tenant secrets (the first listed is used), and an API that never answers holds no hand-off.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{delete_succeeded, receive, test_config, to_event, unique, Harness};
use lull_aws::sink::BatchSink;
use lull_aws::store::{DynamoDbStore, StoreSettings};
use lull_aws::tenants::DynamoTenants;
use lull_aws::{Accounting, SqsTrigger};
use lull_core::ports::SystemClock;
use lull_core::protocol::{AppendOutcome, Handoff};
use lull_core::{ConversationKey, Message, Millis, Provider};
use lull_ingest::{CachedDirectory, TenantSpec};
use lull_sink::ListenRoutes;
use lull_testkit::fake_api::{Answer, FakeApi};
use lull_testkit::{wait_for, PATIENCE};
use serde_json::{json, Value};

const PN: &str = "106540352242922";
const USER: &str = "16505551234";
const REFRESH: Duration = Duration::from_millis(300);

fn spec(api: &FakeApi, tokens: Value) -> TenantSpec {
    serde_json::from_value(json!({
        "id": "shop",
        "on_close": ["read", "typing"],
        "meta": {
            "phone_number_ids": [PN],
            "access_token": tokens,
            "api_url": format!("{}/v26.0", api.url),
        },
    }))
    .expect("tenant spec")
}

/// The token the flush path's directory serves for the tenant now.
async fn token_in_force(dir: &CachedDirectory) -> Option<String> {
    let listen = dir.listen(Provider::Meta, PN).await.ok()??;
    Some(listen.meta?.token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_flush_lambda_marks_a_burst_read_with_typing_using_a_rotatable_secret() {
    let h = Harness::new(3, 50).await;
    let api = FakeApi::start(Answer::Ok).await;
    let hanging = FakeApi::start(Answer::Hang).await;
    let prefix = format!("{}/", unique("lull/listen"));
    let tenants = Arc::new(DynamoTenants::new(
        h.clients.dynamodb.clone(),
        h.clients.secrets.clone(),
        &h.table,
        &prefix,
        Accounting::new(),
    ));
    tenants
        .apply(
            vec![spec(&api, json!("tok-v1"))],
            &h.policy,
            Millis::now_wall(),
            REFRESH,
        )
        .await
        .expect("apply");

    // The token is a tenant secret: in Secrets Manager, not in the directory item.
    let item = h.directory_item().await;
    assert!(!format!("{item:?}").contains("tok-v1"));
    let secret = h
        .clients
        .secrets
        .get_secret_value()
        .secret_id(format!("{prefix}shop"))
        .send()
        .await
        .expect("the tenant's secret");
    assert!(secret
        .secret_string()
        .unwrap_or_default()
        .contains("\"meta.access_token\""));

    // The flush Lambda's hand-off, wired as `Settings::handoff` wires it.
    let dir = Arc::new(CachedDirectory::new(
        tenants.clone(),
        REFRESH,
        h.policy,
        None,
    ));
    let target = lull_sink::HttpTarget::new(&h.sink.url, Vec::new()).expect("target");
    let http = lull_sink::HttpSink::new(target, Duration::from_secs(2)).expect("sink");
    let routed = lull_tenants::RoutedSink::new(BatchSink::Any(lull_sink::AnySink::Http(http)))
        .with_routes(dir.clone(), Duration::from_secs(2));
    let timeout = Duration::from_secs(2);
    let sink = lull_sink::Listening::new(routed, dir.clone(), timeout).expect("listening");
    let flusher = Arc::new(Handoff::new(
        DynamoDbStore::new(
            h.clients.dynamodb.clone(),
            StoreSettings::new(&h.table),
            Accounting::new(),
        ),
        SqsTrigger::new(h.clients.sqs.clone(), &h.queue, Accounting::new()),
        sink,
        SystemClock,
        test_config(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (clients, queue, flusher, stop) = (
            h.clients.clone(),
            h.queue.clone(),
            flusher.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let acct = Accounting::new();
            while !stop.load(Ordering::SeqCst) {
                let msgs = receive(&clients, &queue, 1, &acct).await;
                if msgs.is_empty() {
                    continue;
                }
                let resp = lull_aws::flush::handle_invocation(
                    &flusher,
                    to_event(&msgs),
                    b"t",
                    None,
                    timeout,
                )
                .await;
                let failed: Vec<String> = resp
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect();
                delete_succeeded(&clients, &queue, &msgs, &failed, &acct).await;
            }
        })
    };

    let key = ConversationKey::new(Provider::Meta, PN, USER);
    let burst = async |ids: &[&str]| {
        for id in ids {
            let out = h
                .webhook
                .append(&key, &h.policy, Message::text(*id, USER, "hi"))
                .await
                .expect("append");
            assert!(matches!(out, AppendOutcome::Accepted { .. }), "{out:?}");
        }
    };

    // A burst: one batch, one call marking its last message read with the indicator.
    burst(&["wamid.A", "wamid.B", "wamid.C"]).await;
    wait_for("the first batch and its call", PATIENCE, async || {
        !h.sink.batches().is_empty() && !api.requests().is_empty()
    })
    .await;
    let first = h.sink.batches()[0].clone();
    let ids: Vec<&str> = first.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["wamid.A", "wamid.B", "wamid.C"]);
    let call = api.only(&format!("/v26.0/{PN}/messages"));
    assert_eq!(call.method, "POST");
    assert_eq!(call.header("authorization"), Some("Bearer tok-v1"));
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&call.body).expect("json"),
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.C",
               "typing_indicator": {"type": "text"}})
    );

    // Rotation: the new token listed first is used once the directory refreshes; the API now
    // never answers, and the next burst is handed off all the same.
    let rotated = spec(&hanging, json!(["tok-v2", "tok-v1"]));
    tenants
        .apply(vec![rotated], &h.policy, Millis::now_wall(), REFRESH)
        .await
        .expect("apply the rotation");
    wait_for("the rotated token in force", PATIENCE, async || {
        token_in_force(&dir).await.as_deref() == Some("tok-v2")
    })
    .await;
    burst(&["wamid.D", "wamid.E"]).await;
    wait_for("the second batch", PATIENCE, async || {
        h.sink
            .batches()
            .iter()
            .any(|b| b.messages[0].id == "wamid.D")
    })
    .await;
    wait_for("the call to the hanging API", PATIENCE, async || {
        !hanging.requests().is_empty()
    })
    .await;
    let call = hanging.only(&format!("/v26.0/{PN}/messages"));
    assert_eq!(call.header("authorization"), Some("Bearer tok-v2"));
    assert_eq!(
        serde_json::from_str::<Value>(&call.body).expect("json")["message_id"],
        "wamid.E"
    );
    // One call per batch: the first API saw nothing more.
    assert_eq!(api.requests().len(), 1);
    assert_eq!(h.sink.batches().len(), 2, "{:?}", h.sink.batches());

    stop.store(true, Ordering::SeqCst);
    poller.await.expect("poller");
}
