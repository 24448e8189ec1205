//! Human handover from Chatwoot on the webhook Lambda's path, against moto: the tenant (with
//! its `chatwoot` section) applied to the DynamoDB tenant store, its Chatwoot secret kept in
//! Secrets Manager; API Gateway HTTP API (payload v2) events through the ingestion Router onto
//! DynamoDB + SQS, the flush handler fed by an SQS poller, an HTTP capture sink on loopback.
//!
//! An agent's reply in Chatwoot pauses the conversation (the user's next message is held while
//! another conversation's batch goes out), a replay is refused by a second router (another
//! Lambda instance: no memory shared, only the table), a wrong signature is a 401, and
//! resolving the conversation resumes it. Payloads: `tests/fixtures/chatwoot/` (shapes from
//! Chatwoot's source, named in its README).

mod common;
#[path = "common/meta.rs"]
mod meta;

use std::sync::Arc;
use std::time::Duration;

use common::apigw::{event, send};
use lull_aws::tenants::DynamoTenants;
use lull_aws::Accounting;
use lull_core::{Millis, Policy};
use lull_ingest::chatwoot_signature::sign;
use lull_ingest::{CachedDirectory, IngestConfig, IngestState, TenantSpec};

use common::{unique, Harness};
use lull_testkit::{wait_for, PATIENCE};

const PHONE_ID: &str = "106540352242922";
const APP_SECRET: &str = "meta-app-secret-chatwoot";
const SECRET: &str = "chatwoot-secret-on-aws";

/// A webhook Lambda instance: its own router state over the shared table and tenant store.
fn instance(h: &Harness, prefix: &str) -> axum::Router {
    let store = DynamoTenants::new(
        h.clients.dynamodb.clone(),
        h.clients.secrets.clone(),
        &h.table,
        prefix,
        Accounting::new(),
    );
    let dir = CachedDirectory::new(Arc::new(store), Duration::from_secs(10), h.policy, None);
    lull_ingest::router(IngestState::new(
        h.webhook.clone(),
        Arc::new(dir),
        IngestConfig::default(),
    ))
}

fn now_secs() -> u64 {
    Millis::now_wall().0 / 1000
}

async fn user_says(router: &axum::Router, user: &str, id: &str) {
    meta::post_text(
        router,
        APP_SECRET,
        PHONE_ID,
        user,
        id,
        &format!("text of {id}"),
    )
    .await;
}

/// A fixture aimed at the contact `+<user>` in inbox 3.
fn fixture(name: &str, user: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/chatwoot")
        .join(name);
    std::fs::read_to_string(path)
        .expect("fixture")
        .replace("+5511987650001", &format!("+{user}"))
        .into_bytes()
}

/// A signed Chatwoot delivery: body, timestamp, signature, delivery id.
struct Delivery {
    body: Vec<u8>,
    timestamp: String,
    signature: String,
    id: String,
}

fn delivery(body: Vec<u8>, secret: &str) -> Delivery {
    let timestamp = now_secs().to_string();
    Delivery {
        signature: sign(secret, &timestamp, &body),
        timestamp,
        body,
        id: unique("delivery"),
    }
}

/// Posts `d` to `/webhook/chatwoot?tenant=shop` as API Gateway delivers it.
async fn post(router: &axum::Router, d: &Delivery) -> (u16, String) {
    let headers = [
        ("content-type", "application/json".to_string()),
        ("x-chatwoot-signature", d.signature.clone()),
        ("x-chatwoot-timestamp", d.timestamp.clone()),
        ("x-chatwoot-delivery", d.id.clone()),
    ];
    let mut ev: serde_json::Value =
        serde_json::from_str(&event("/webhook/chatwoot", &headers, &d.body, false)).expect("event");
    ev["rawQueryString"] = "tenant=shop".into();
    ev["queryStringParameters"] = serde_json::json!({"tenant": "shop"});
    send(router, &ev.to_string()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_reply_pauses_a_replay_on_another_instance_is_refused_and_resolve_resumes() {
    let mut h = Harness::new(5, 5).await;
    h.policy = Policy::with_times(Duration::from_secs(1), Duration::from_secs(30)).expect("p");
    let prefix = format!("{}/", unique("lull/chatwoot"));
    let spec: TenantSpec = serde_json::from_value(serde_json::json!({
        "id": "shop", "quiet": "1s", "max_wait": "30s", "pause": "30m",
        "meta": {"phone_number_ids": [PHONE_ID], "app_secret": APP_SECRET},
        "chatwoot": {"secret": SECRET,
                     "inboxes": [{"id": 3, "provider": "meta", "account": PHONE_ID}]}
    }))
    .expect("spec");
    DynamoTenants::new(
        h.clients.dynamodb.clone(),
        h.clients.secrets.clone(),
        &h.table,
        &prefix,
        Accounting::new(),
    )
    .apply(vec![spec], &h.policy, Millis::now_wall(), Duration::ZERO)
    .await
    .expect("apply");
    // The Chatwoot secret is in Secrets Manager, not in the table.
    let item = h.directory_item().await;
    assert!(
        !format!("{item:?}").contains(SECRET),
        "the secret left the table"
    );

    let poller = h.start_poller();
    let first = instance(&h, &prefix);
    let (user, other) = ("16505550001", "16505550002");
    user_says(&first, user, "wamid.cw.1").await;
    let reply = delivery(fixture("message_created_agent.json", user), SECRET);
    let (status, text) = post(&first, &reply).await;
    assert_eq!(
        (status, text.contains(r#""paused":1"#)),
        (200, true),
        "{text}"
    );
    user_says(&first, user, "wamid.cw.2").await;
    user_says(&first, other, "wamid.cw.other").await;
    let batches_of = |u: &str| {
        h.sink
            .batches()
            .into_iter()
            .filter(|b| b.conversation.user == u)
            .collect::<Vec<_>>()
    };
    wait_for("the other conversation's batch", PATIENCE, async || {
        !batches_of(other).is_empty()
    })
    .await;
    assert!(
        batches_of(user).is_empty(),
        "the paused conversation is held"
    );

    // Another instance, no memory shared: the same signed request under a new delivery id is
    // refused by the conversation's record (the ids went in with the pause).
    let second = instance(&h, &prefix);
    let replay = Delivery {
        id: unique("delivery"),
        body: reply.body.clone(),
        timestamp: reply.timestamp.clone(),
        signature: reply.signature.clone(),
    };
    let (status, text) = post(&second, &replay).await;
    assert_eq!(status, 409, "{text}");
    let resolve = fixture("conversation_status_changed_resolved.json", user);
    let (status, _) = post(&second, &delivery(resolve.clone(), "not-the-secret")).await;
    assert_eq!(status, 401);
    assert!(batches_of(user).is_empty(), "still paused");

    let (status, text) = post(&second, &delivery(resolve, SECRET)).await;
    assert_eq!(
        (status, text.contains(r#""resumed":1"#)),
        (200, true),
        "{text}"
    );
    wait_for("the resumed conversation's batch", PATIENCE, async || {
        !batches_of(user).is_empty()
    })
    .await;
    let ids: Vec<String> = batches_of(user)[0]
        .messages
        .iter()
        .map(|m| m.id.clone())
        .collect();
    assert_eq!(ids, ["wamid.cw.1", "wamid.cw.2"]);
    poller.stop().await;
}
