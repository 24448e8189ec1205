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
//! Evolution API and WAHA get the same through the webhook and flush Lambdas wired from their
//! settings, each request checked in its exact shape (the last test).

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
use lull_core::{Batch, ConversationKey, Message, Millis, Provider};
use lull_ingest::{CachedDirectory, TenantSpec};
use lull_sink::ListenRoutes;
use lull_testkit::fake_api::{Answer, FakeApi};
use lull_testkit::listen_calls::{assert_evolution, assert_waha};
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

const INSTANCE: &str = "inst-e";
const EVO_USER: &str = "5511900000001@s.whatsapp.net";
const SESSION: &str = "sess-w";
const WAHA_USER: &str = "5511900000002@c.us";

/// Evolution API and WAHA on the Lambdas' path: two tenants applied to the tenant store (their
/// webhook secrets and API keys in Secrets Manager), the webhook Lambda's Router and the flush
/// Lambda's hand-off wired from their settings (`Settings::intake`, `tenants`, `handoff`), the
/// flush handler through `flush::handle_invocation`. A burst of each gives one batch and, for
/// it, exactly the requests of the local test (`tests/listening.rs`), checked byte for byte:
/// Evolution API v2.3 (its Postman collection, `Chat` folder) `POST
/// /chat/markMessageAsRead/{instance}` with every id and `POST /chat/sendPresence/{instance}`,
/// header `apikey`; WAHA (waha.devlike.pro, "Send messages") `POST /api/sendSeen` with every id
/// and `POST /api/startTyping`, header `X-Api-Key`. Webhook bodies: Evolution `messages.upsert`
/// as `ingest/tests/fixtures/evolution_v2_3_messages_upsert_text_n8n_fixture.json`, WAHA
/// `message` as `waha_message_text.json`, each signed as its gateway signs (`apikey` header;
/// `X-Webhook-Hmac`, HMAC-SHA512).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_flush_lambda_marks_evolution_and_waha_bursts_read_with_typing() {
    use hmac::{Hmac, Mac};
    use lull_aws::Role;
    use lull_ingest::{IngestConfig, IngestState};

    let h = Harness::new(3, 50).await;
    let evo_api = FakeApi::start(Answer::Ok).await;
    let waha_api = FakeApi::start(Answer::Ok).await;
    let prefix = format!("{}/", unique("lull/listen"));
    let specs: Vec<TenantSpec> = serde_json::from_value(json!([
        {"id": "shop-evo", "quiet": "3s", "on_close": ["read", "typing"],
         "evolution": {"instances": [INSTANCE], "token": "evo-hook",
                       "api_url": evo_api.url, "api_key": "evo-key"}},
        {"id": "shop-waha", "quiet": "3s", "on_close": ["read", "typing"],
         "waha": {"sessions": [SESSION], "hmac_key": "waha-hook",
                  "api_url": waha_api.url, "api_key": "waha-key"}},
    ]))
    .expect("tenant specs");
    DynamoTenants::new(
        h.clients.dynamodb.clone(),
        h.clients.secrets.clone(),
        &h.table,
        &prefix,
        Accounting::new(),
    )
    .apply(specs, &h.policy, Millis::now_wall(), REFRESH)
    .await
    .expect("apply");
    let item = format!("{:?}", h.directory_item().await);
    for key in ["evo-key", "waha-key", "evo-hook", "waha-hook"] {
        assert!(!item.contains(key), "{key} in the directory item");
    }

    let acct = Accounting::new();
    let webhook = h.lambda_settings(Role::Webhook, &prefix);
    let router = lull_ingest::router(IngestState::new(
        Arc::new(webhook.intake(&h.clients, &acct).expect("intake")),
        webhook.tenants(&h.clients, &acct, None),
        IngestConfig::default(),
    ));
    let flush = h.lambda_settings(Role::Flush, &prefix);
    let handoff = Arc::new(flush.handoff(&h.clients, &acct).expect("handoff"));
    let poller = h.start_flush_lambda(handoff, flush.listen_settle());

    let now = Millis::now_wall().0 / 1000;
    let post = async |path: &str, body: Value, header: (&str, String)| {
        let body = body.to_string().into_bytes();
        let headers = [("content-type", "application/json".to_string()), header];
        let ev = common::apigw::event(path, &headers, &body, false);
        let (status, answer) = common::apigw::send(&router, &ev).await;
        assert_eq!(status, 200, "{path}: {answer}");
        assert!(answer.contains("\"accepted\":1"), "{path}: {answer}");
    };
    for id in ["EVO1", "EVO2"] {
        let body = json!({
            "event": "messages.upsert",
            "instance": INSTANCE,
            "data": {
                "key": {"remoteJid": EVO_USER, "fromMe": false, "id": id},
                "pushName": "Ana",
                "message": {"conversation": format!("text of {id}")},
                "messageType": "conversation",
                "messageTimestamp": now,
            },
            "date_time": "2026-12-06T12:00:00.000Z",
        });
        post("/webhook/evolution", body, ("apikey", "evo-hook".into())).await;
    }
    let waha_ids = [
        format!("false_{WAHA_USER}_AAA1"),
        format!("false_{WAHA_USER}_AAA2"),
    ];
    for id in &waha_ids {
        let body = json!({
            "id": format!("evt_{id}"),
            "timestamp": Millis::now_wall().0,
            "event": "message",
            "session": SESSION,
            "me": {"id": "15550000001@c.us", "pushName": "Shop"},
            "engine": "WEBJS",
            "payload": {
                "id": id, "timestamp": now, "from": WAHA_USER, "fromMe": false,
                "source": "app", "body": format!("text of {id}"), "hasMedia": false,
            },
        });
        let mut mac = Hmac::<sha2::Sha512>::new_from_slice(b"waha-hook").expect("key");
        mac.update(body.to_string().as_bytes());
        let hmac = hex::encode(mac.finalize().into_bytes());
        post("/webhook/waha", body, ("x-webhook-hmac", hmac)).await;
    }

    wait_for("both batches and their four calls", PATIENCE, async || {
        h.sink.message_count() >= 4
            && evo_api.requests().len() >= 2
            && waha_api.requests().len() >= 2
    })
    .await;
    let batch_of = |user: &str| -> Vec<String> {
        let batches: Vec<Batch> = h
            .sink
            .batches()
            .into_iter()
            .filter(|b| b.conversation.user == user)
            .collect();
        assert_eq!(batches.len(), 1, "one batch per burst: {batches:?}");
        batches[0].messages.iter().map(|m| m.id.clone()).collect()
    };
    assert_eq!(batch_of(EVO_USER), ["EVO1", "EVO2"]);
    assert_eq!(batch_of(WAHA_USER), waha_ids);

    let evo_ids = ["EVO1", "EVO2"];
    let delay = lull_core::listen::EVOLUTION_TYPING_MS;
    assert_evolution(&evo_api, INSTANCE, EVO_USER, &evo_ids, "evo-key", delay);
    let waha_ids: Vec<&str> = waha_ids.iter().map(String::as_str).collect();
    assert_waha(&waha_api, SESSION, WAHA_USER, &waha_ids, "waha-key");
    poller.stop().await;
}
