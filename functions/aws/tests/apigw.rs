//! The webhook Lambda's path end to end: API Gateway HTTP API (payload v2) events, as
//! lambda_http decodes them, through the ingestion Router onto DynamoDB + SQS (moto), then the
//! flush handler fed by an SQS poller, to an HTTP capture sink on loopback. The router's one
//! tenant is the webhook Lambda's bootstrap tenant, built by `Tenant::from_env` from the
//! variables the template sets (`LULL_ADMIN_TOKEN` among them).

mod common;
#[path = "common/router.rs"]
mod router;

use std::time::Instant;

use base64::Engine;
use common::apigw::{event, send, DOMAIN};
use hmac::{Hmac, Mac};
use lull_core::ports::WindowStore;
use lull_core::{ConversationKey, Provider};

use common::{check_batches, roomy_policy, Harness};
use lull_testkit::{wait_for, PATIENCE};

const APP_SECRET: &str = "meta-app-secret";
const TWILIO_TOKEN: &str = "twilio-auth-token";
/// `LULL_ADMIN_TOKEN` (the `AdminToken` parameter): two values while rotating.
const ADMIN_TOKENS: &str = "admin-old,admin-new";

fn router(h: &Harness) -> axum::Router {
    let env = |k: &str| match k {
        "LULL_META_APP_SECRET" => Some(APP_SECRET.to_string()),
        "LULL_META_VERIFY_TOKEN" => Some("verify".to_string()),
        "LULL_TWILIO_AUTH_TOKEN" => Some(TWILIO_TOKEN.to_string()),
        "LULL_ADMIN_TOKEN" => Some(ADMIN_TOKENS.to_string()),
        _ => None,
    };
    router::router(h, env)
}

/// Now, in unix seconds: a provider timestamp lull does not refuse as older than its dedupe
/// horizon (`lull_core::protocol::stale`).
fn now_secs() -> String {
    (lull_core::Millis::now_wall().0 / 1000).to_string()
}

fn meta_body(user: &str, ids: &[&str]) -> Vec<u8> {
    let messages: Vec<_> = ids
        .iter()
        .map(|id| {
            serde_json::json!({
                "from": user, "id": id, "timestamp": now_secs(), "type": "text",
                "text": {"body": format!("text of {id}")}
            })
        })
        .collect();
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Sheena"}, "wa_id": user}],
            "messages": messages
        }}]}]
    })
    .to_string()
    .into_bytes()
}

fn meta_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn post(h: &Harness, event_json: &str) -> (u16, String) {
    send(&router(h), event_json).await
}

/// POSTs a signed Meta text payload for `user` carrying `ids`, as API Gateway delivers it.
async fn post_meta(h: &Harness, user: &str, ids: &[&str]) -> (u16, String) {
    let body = meta_body(user, ids);
    let headers = [
        ("content-type", "application/json".to_string()),
        ("x-hub-signature-256", meta_signature(&body)),
    ];
    post(h, &event("/webhook/meta", &headers, &body, false)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_gateway_events_reach_the_sink_as_one_batch() {
    let mut h = Harness::new(5, 5).await;
    // The two POSTs, one after the other, share a window.
    h.policy = roomy_policy();
    let poller = h.start_poller();
    let user = "16505550001";
    let started = Instant::now();
    let (status, text) = post_meta(&h, user, &["wamid.apigw.1", "wamid.apigw.2"]).await;
    assert_eq!(status, 200, "{text}");
    // A second POST a moment later, in the same window.
    let (status, text) = post_meta(&h, user, &["wamid.apigw.3"]).await;
    assert_eq!(status, 200, "{text}");
    wait_for("the batch", PATIENCE, async || h.sink.message_count() >= 3).await;
    assert!(
        started.elapsed() >= h.policy.quiet,
        "never before the quiet period"
    );
    let batches = check_batches(&h.sink.batches(), &h.policy);
    assert_eq!(batches.len(), 1);
    let ids: Vec<&str> = batches[0].messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["wamid.apigw.1", "wamid.apigw.2", "wamid.apigw.3"]);
    assert_eq!(batches[0].conversation.account, "106540352242922");
    poller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_signature_through_api_gateway_is_refused_and_stores_nothing() {
    let h = Harness::new(5, 5).await;
    let user = "16505550002";
    let body = meta_body(user, &["wamid.bad.1"]);
    let forged = meta_signature(b"some other body");
    let (status, text) = post(
        &h,
        &event(
            "/webhook/meta",
            &[
                ("content-type", "application/json".into()),
                ("x-hub-signature-256", forged),
            ],
            &body,
            false,
        ),
    )
    .await;
    assert_eq!(status, 401, "{text}");
    let key = ConversationKey::new(Provider::Meta, "106540352242922", user);
    assert_eq!(h.store.load(&key).await.expect("load"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bootstrap_tenants_admin_token_opens_the_admin_routes() {
    let h = Harness::new(5, 5).await;
    let user = "16505550004";
    let (status, text) = post_meta(&h, user, &["wamid.adm.1"]).await;
    assert_eq!(status, 200, "{text}");
    let key = ConversationKey::new(Provider::Meta, "106540352242922", user);
    let admin = |action: &str, token: &str| {
        let headers = [
            ("content-type", "application/json".to_string()),
            ("authorization", format!("Bearer {token}")),
        ];
        let body = serde_json::json!({"key": key.storage_key()}).to_string();
        event(
            &format!("/admin/conversations/{action}"),
            &headers,
            body.as_bytes(),
            false,
        )
    };
    let paused = async || {
        let c = h.store.load(&key).await.expect("load").expect("stored");
        c.turn.pause.is_some()
    };
    let (status, text) = post(&h, &admin("pause", "not-the-token")).await;
    assert_eq!(status, 401, "{text}");
    assert!(!paused().await, "a refused pause changes nothing");
    let (status, text) = post(&h, &admin("pause", "admin-new")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.starts_with("paused until"), "{text}");
    assert!(paused().await);
    let (status, text) = post(&h, &admin("resume", "admin-old")).await;
    assert_eq!(status, 200, "either value while rotating: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_base64_encoded_twilio_form_is_verified_against_the_api_gateway_url() {
    let h = Harness::new(5, 5).await;
    let poller = h.start_poller();
    let params = [
        ("AccountSid", "ACccec30b8f64bfa44a6dc60d2a447f5c5"),
        ("ApiVersion", "2010-04-01"),
        ("Body", "Olá, quero pedir"),
        ("From", "whatsapp:+558282136275"),
        ("MessageSid", "SM01cd3925943ee3504f8a5c42d88efdf6"),
        ("NumMedia", "0"),
        ("ProfileName", "Jhonata"),
        ("To", "whatsapp:+14155238886"),
        ("WaId", "558282136275"),
    ];
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    // Twilio signs the full public URL followed by each parameter name and value, sorted.
    let mut signed = format!("https://{DOMAIN}/webhook/twilio");
    let mut sorted = params.to_vec();
    sorted.sort();
    for (k, v) in sorted {
        signed.push_str(k);
        signed.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(TWILIO_TOKEN.as_bytes()).expect("key");
    mac.update(signed.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let (status, text) = post(
        &h,
        &event(
            "/webhook/twilio",
            &[
                ("content-type", "application/x-www-form-urlencoded".into()),
                ("x-twilio-signature", signature),
            ],
            body.as_bytes(),
            true,
        ),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    wait_for("the batch", PATIENCE, async || h.sink.message_count() >= 1).await;
    let batches = check_batches(&h.sink.batches(), &h.policy);
    assert_eq!(
        batches[0].messages[0].id,
        "SM01cd3925943ee3504f8a5c42d88efdf6"
    );
    assert_eq!(batches[0].text, "Olá, quero pedir");
    poller.stop().await;
}
