//! Edits and unsends on the webhook and flush Lambdas' path (moto): API Gateway events through
//! the ingestion Router's generic route (lull's own format, `kind` `edit`/`revoke` with a
//! `target`) onto DynamoDB + SQS, then the flush handler fed by an SQS poller, to a capture sink.
//! Inside the open window an edit and an unsend change what the sink receives, and the unsent
//! text is gone from the DynamoDB item (read raw with `GetItem`, its `rec` inflated here); after
//! the hand-off they arrive as `edit` and `revoke` messages naming the original's batch.

mod common;
#[path = "common/router.rs"]
mod router;

use aws_sdk_dynamodb::types::AttributeValue;
use common::apigw::{event, send};
use common::{roomy_policy, Harness};
use hmac::{Hmac, Mac};
use lull_core::{ConversationKey, MessageKind, Provider};
use lull_testkit::{wait_for, PATIENCE};
use serde_json::json;

const GENERIC_SECRET: &str = "generic-secret";
/// A card number sent to the wrong chat: what an unsend must erase.
const SECRET: &str = "4111 1111 1111 1111";

fn router(h: &Harness) -> axum::Router {
    let env = |k: &str| match k {
        "LULL_GENERIC_SECRET" => Some(GENERIC_SECRET.to_string()),
        _ => None,
    };
    router::router(h, env)
}

/// POSTs generic `messages` of account `bot`, signed, as API Gateway delivers it.
async fn post(h: &Harness, messages: serde_json::Value) {
    let body = json!({"account": "bot", "messages": messages})
        .to_string()
        .into_bytes();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(GENERIC_SECRET.as_bytes()).expect("key");
    mac.update(&body);
    let headers = [
        ("content-type", "application/json".to_string()),
        (
            "x-lull-signature",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        ),
    ];
    let (status, text) = send(
        &router(h),
        &event("/webhook/generic", &headers, &body, false),
    )
    .await;
    assert_eq!(status, 200, "{text}");
}

/// The conversation's DynamoDB item, raw: every attribute's bytes, `rec` inflated.
async fn raw_item(h: &Harness, key: &ConversationKey) -> String {
    let out = h
        .clients
        .dynamodb
        .get_item()
        .table_name(&h.table)
        .key("pk", AttributeValue::S(format!("c#{}", key.storage_key())))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    let item = out.item.expect("the conversation's item");
    let mut raw = format!("{item:?}");
    if let Some(AttributeValue::B(blob)) = item.get("rec") {
        let json = miniz_oxide::inflate::decompress_to_vec(blob.as_ref()).expect("inflate rec");
        raw.push_str(&String::from_utf8_lossy(&json));
    }
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_and_unsends_change_the_batch_and_erase_the_unsent_text_from_dynamodb() {
    let mut h = Harness::new(5, 5).await;
    h.policy = roomy_policy();
    let key = ConversationKey::new(Provider::Generic, "bot", "u1");
    post(
        &h,
        json!([
            {"id": "m1", "user": "u1", "text": "2 pizzas"},
            {"id": "m2", "user": "u1", "text": SECRET},
            {"id": "e1", "user": "u1", "kind": "edit", "text": "3 pizzas", "target": {"message_id": "m1"}},
            {"id": "r1", "user": "u1", "kind": "revoke", "target": {"message_id": "m2"}}
        ]),
    )
    .await;
    // Read before any flush runs (the poller starts after): the window is open.
    let raw = raw_item(&h, &key).await;
    assert!(raw.contains("3 pizzas"), "{raw}");
    assert!(!raw.contains(SECRET), "the unsent text is erased: {raw}");
    assert!(!raw.contains("2 pizzas"), "{raw}");

    let poller = h.start_poller();
    wait_for("the first batch", PATIENCE, async || {
        h.sink.message_count() >= 1
    })
    .await;
    let first = h.sink.batches().remove(0);
    let texts: Vec<_> = first
        .messages
        .iter()
        .map(|m| (m.id.as_str(), m.text.as_deref()))
        .collect();
    assert_eq!(texts, [("m1", Some("3 pizzas"))]);
    assert!(first.messages[0].edited_at.is_some());

    // After the hand-off: messages of the next batch, naming the first.
    post(
        &h,
        json!([
            {"id": "e2", "user": "u1", "kind": "edit", "text": "4 pizzas", "target": {"message_id": "m1"}},
            {"id": "r2", "user": "u1", "kind": "revoke", "target": {"message_id": "m1"}}
        ]),
    )
    .await;
    wait_for("the second batch", PATIENCE, async || {
        h.sink.message_count() >= 3
    })
    .await;
    let batches = h.sink.batches();
    let second = batches
        .iter()
        .find(|b| b.batch_id != first.batch_id)
        .expect("a second batch");
    let kinds: Vec<_> = second.messages.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MessageKind::Edit, MessageKind::Revoke]);
    for m in &second.messages {
        let t = m.target.as_ref().expect("target");
        assert_eq!(t.message_id, "m1");
        assert_eq!(t.batch_id, Some(first.batch_id.to_string()));
    }
    poller.stop().await;
}
