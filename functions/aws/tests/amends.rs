//! Edits, unsends and a Business-app echo on the webhook and flush Lambdas' path (moto): API
//! Gateway events through the webhook Lambda's Router on the Meta route, in Meta's payload shapes
//! (`type: "edit"` with `edit.original_message_id` and `edit.message`, `type: "revoke"` with
//! `revoke.original_message_id`, `smb_message_echoes`: the fixtures
//! `ingest/tests/fixtures/meta_cloud_edit.json`, `meta_cloud_revoke.json` and
//! `meta_smb_message_echoes_text.json`, from Meta's webhook reference), onto DynamoDB + SQS,
//! then the flush Lambda's handler fed by an SQS poller, to a capture sink. Inside the open window
//! an edit and an unsend change what the sink receives, and the unsent text is gone from the
//! DynamoDB item (read raw with `GetItem`, its `rec` inflated here); after the hand-off they
//! arrive as `edit` and `revoke` messages naming the original and its batch; an echo pauses the
//! conversation.

mod common;
#[path = "common/meta.rs"]
mod meta;
#[path = "common/raw.rs"]
mod raw;
#[path = "common/router.rs"]
mod router;

use common::{roomy_policy, Harness};
use lull_core::ports::WindowStore;
use lull_core::{ConversationKey, MessageKind, Millis, Provider};
use lull_testkit::{wait_for, PATIENCE};
use serde_json::{json, Value};

const APP_SECRET: &str = "meta-app-secret";
const PHONE_ID: &str = "106540352242922";
const BUSINESS: &str = "15550783881";
const USER: &str = "16505551234";
/// A card number sent to the wrong chat: what an unsend must erase.
const SECRET: &str = "4111 1111 1111 1111";

fn router(h: &Harness) -> axum::Router {
    let env = |k: &str| match k {
        "LULL_META_APP_SECRET" => Some(APP_SECRET.to_string()),
        "LULL_META_VERIFY_TOKEN" => Some("verify".to_string()),
        _ => None,
    };
    router::router(h, env)
}

/// Now, in unix seconds (a provider timestamp within the dedupe horizon).
fn now_secs() -> String {
    (Millis::now_wall().0 / 1000).to_string()
}

fn text(id: &str, body: &str) -> Value {
    json!({"from": USER, "id": id, "timestamp": now_secs(), "type": "text", "text": {"body": body}})
}

fn edit(id: &str, original: &str, body: &str) -> Value {
    json!({"from": USER, "id": id, "timestamp": now_secs(), "type": "edit", "edit": {
        "original_message_id": original,
        "message": {"type": "text", "text": {"body": body}}
    }})
}

fn revoke(id: &str, original: &str) -> Value {
    json!({"from": USER, "id": id, "timestamp": now_secs(), "type": "revoke",
           "revoke": {"original_message_id": original}})
}

/// POSTs one Meta change (`field`, its list under `list`), signed, as API Gateway delivers it.
async fn post(h: &Harness, field: &str, list: &str, items: Vec<Value>) {
    let mut value = json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS, "phone_number_id": PHONE_ID},
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": USER}],
    });
    value[list] = Value::Array(items);
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": field, "value": value}]}]})
    .to_string()
    .into_bytes();
    let (status, answer) = meta::post_signed(&router(h), APP_SECRET, &body).await;
    assert_eq!(status, 200, "{answer}");
}

async fn messages(h: &Harness, items: Vec<Value>) {
    post(h, "messages", "messages", items).await;
}

/// The conversation's DynamoDB item, raw: every attribute's bytes, `rec` inflated.
async fn raw_item(h: &Harness, key: &ConversationKey) -> String {
    let (attrs, rec) = raw::record(h, key).await;
    format!("{attrs:?}{rec}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_and_unsends_change_the_batch_and_erase_the_unsent_text_from_dynamodb() {
    let mut h = Harness::new(5, 5).await;
    h.policy = roomy_policy();
    let key = ConversationKey::new(Provider::Meta, PHONE_ID, USER);
    // One POST: three messages, the first corrected, the second (a card number) unsent; the
    // edit comes twice (a retry), applied once.
    messages(
        &h,
        vec![
            text("wamid.m1", "2 pizzas"),
            text("wamid.m2", SECRET),
            text("wamid.m3", "and a coke"),
            edit("wamid.e1", "wamid.m1", "3 pizzas"),
            revoke("wamid.r1", "wamid.m2"),
            edit("wamid.e1", "wamid.m1", "3 pizzas"),
        ],
    )
    .await;
    // Read before any flush runs (the poller starts after): the window is open.
    let raw = raw_item(&h, &key).await;
    assert!(raw.contains("3 pizzas"), "{raw}");
    assert!(!raw.contains(SECRET), "the unsent text is erased: {raw}");
    assert!(!raw.contains("2 pizzas"), "{raw}");

    let poller = h.start_poller();
    wait_for("the first batch", PATIENCE, async || {
        h.sink.message_count() >= 2
    })
    .await;
    let first = h.sink.batches().remove(0);
    let texts: Vec<_> = first
        .messages
        .iter()
        .map(|m| (m.id.as_str(), m.text.as_deref()))
        .collect();
    assert_eq!(
        texts,
        [
            ("wamid.m1", Some("3 pizzas")),
            ("wamid.m3", Some("and a coke"))
        ]
    );
    assert!(first.messages[0].edited_at.is_some());

    // After the hand-off: messages of the next batch, naming the original and its batch.
    messages(
        &h,
        vec![
            edit("wamid.e2", "wamid.m1", "4 pizzas"),
            revoke("wamid.r2", "wamid.m3"),
        ],
    )
    .await;
    wait_for("the second batch", PATIENCE, async || {
        h.sink.message_count() >= 4
    })
    .await;
    let batches = h.sink.batches();
    let second = batches
        .iter()
        .find(|b| b.batch_id != first.batch_id)
        .expect("a second batch");
    let kinds: Vec<_> = second.messages.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MessageKind::Edit, MessageKind::Revoke]);
    assert_eq!(second.messages[0].text.as_deref(), Some("4 pizzas"));
    let targets: Vec<_> = second
        .messages
        .iter()
        .map(|m| m.target.clone().expect("target"))
        .map(|t| (t.message_id, t.batch_id))
        .collect();
    let named = Some(first.batch_id.to_string());
    assert_eq!(
        targets,
        [
            ("wamid.m1".to_string(), named.clone()),
            ("wamid.m3".to_string(), named)
        ]
    );

    // A person answers from the WhatsApp Business app: the echo pauses the conversation.
    let echo = json!({"from": BUSINESS, "to": USER, "id": "wamid.echo1", "timestamp": now_secs(),
                      "type": "text", "text": {"body": "I'll take it from here"}});
    post(&h, "smb_message_echoes", "message_echoes", vec![echo]).await;
    let conv = h.store.load(&key).await.expect("load").expect("record");
    assert!(
        conv.paused_until(Millis::now_wall()).is_some(),
        "paused: {conv:?}"
    );
    poller.stop().await;
}
