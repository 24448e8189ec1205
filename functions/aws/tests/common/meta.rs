//! Meta Cloud API messages as the webhook Lambda receives them: a text message in the shape of
//! `ingest/tests/fixtures/meta_cloud_text.json` (Meta's webhook reference), sent now (an older
//! provider timestamp is skipped as stale), signed with the app secret (`X-Hub-Signature-256`)
//! and delivered as an API Gateway HTTP API event (its own file: the benchmarks include `common`
//! without it).
#![allow(dead_code)]

use hmac::{Hmac, Mac};

use crate::common::apigw::{event, send};

/// The business number's display phone number in these messages.
pub const DISPLAY_PHONE: &str = "15550783881";

/// POSTs text message `id` of `user` to business number `phone_number_id`, signed with
/// `app_secret`, through `router` as API Gateway delivers it, and checks it got its 200.
pub async fn post_text(
    router: &axum::Router,
    app_secret: &str,
    phone_number_id: &str,
    user: &str,
    id: &str,
    text: &str,
) {
    let now = (lull_core::Millis::now_wall().0 / 1000).to_string();
    let body = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": DISPLAY_PHONE, "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": "Sheena"}, "wa_id": user}],
            "messages": [{"from": user, "id": id, "timestamp": now, "type": "text",
                          "text": {"body": text}}]
        }}]}]
    })
    .to_string()
    .into_bytes();
    let (status, answer) = post_signed(router, app_secret, &body).await;
    assert_eq!(status, 200, "{answer}");
}

/// POSTs a Meta webhook `body` signed with `app_secret` (`X-Hub-Signature-256`) through
/// `router` as API Gateway delivers it: the answer's status and body.
pub async fn post_signed(router: &axum::Router, app_secret: &str, body: &[u8]) -> (u16, String) {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes()).expect("key");
    mac.update(body);
    let headers = [
        ("content-type", "application/json".to_string()),
        (
            "x-hub-signature-256",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        ),
    ];
    send(router, &event("/webhook/meta", &headers, body, false)).await
}
