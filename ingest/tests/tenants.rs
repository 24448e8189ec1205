//! Tenant isolation, unknown tenants, missing secrets, the loopback exception and live reloads.

mod common;

use axum::http::StatusCode;
use common::*;
use lull_core::Provider;
use lull_ingest::{IngestConfig, MemoryDirectory, MetaSettings, Secrets, Tenant, TwilioSettings};
use serde_json::json;

fn tenant(id: &str, phone_id: &str, secret: &str, twilio_number: &str) -> Tenant {
    Tenant {
        id: id.into(),
        meta: MetaSettings {
            phone_number_ids: vec![phone_id.into()],
            app_secrets: Secrets::new([secret]),
            verify_tokens: Secrets::new([format!("{id}-verify")]),
        },
        twilio: TwilioSettings {
            numbers: vec![twilio_number.into()],
            auth_tokens: Secrets::new([format!("{secret}-twilio")]),
            public_url: None,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn two_tenants() -> Harness {
    let dir = MemoryDirectory::new(vec![
        tenant("a", "111", "secret-a", "whatsapp:+1000"),
        tenant("b", "222", "secret-b", "+2000"),
    ])
    .unwrap();
    Harness::with(dir, IngestConfig::default())
}

fn meta_text(phone_ids: &[&str]) -> Vec<u8> {
    let changes: Vec<_> = phone_ids
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"field": "messages", "value": {"metadata": {"phone_number_id": p},
            "messages": [{"from": "1555", "id": format!("w.{i}"), "timestamp": "1", "type": "text", "text": {"body": "x"}}]}}))
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "waba", "changes": changes}]})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn each_tenant_writes_only_its_own_conversations() {
    let h = two_tenants();
    assert_eq!(
        h.send(meta_post(&meta_text(&["111"]), Some("secret-a")))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        h.send(meta_post(&meta_text(&["222"]), Some("secret-b")))
            .await
            .0,
        StatusCode::OK
    );
    let accounts: Vec<_> = h.messages().into_iter().map(|(k, _)| k.account).collect();
    assert_eq!(accounts, ["111", "222"]);
}

#[tokio::test]
async fn a_request_naming_another_tenants_number_is_refused_and_stores_nothing() {
    let h = two_tenants();
    // Signed by A, but B's number comes second: 403 before anything is appended.
    let (status, reason) = h
        .send(meta_post(&meta_text(&["111", "222"]), Some("secret-a")))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reason}");
    // Signed by A for B's number alone: B's secret does not match.
    assert_eq!(
        h.send(meta_post(&meta_text(&["222"]), Some("secret-a")))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // A number nobody owns: refused like a wrong signature.
    assert_eq!(
        h.send(meta_post(&meta_text(&["333"]), Some("secret-a")))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // Twilio: A's token for B's number.
    let body = form(&[
        ("MessageSid", "SM1"),
        ("From", "whatsapp:+1555"),
        ("To", "whatsapp:+2000"),
        ("Body", "x"),
    ]);
    assert_eq!(
        h.send(twilio_post(&body, Some("secret-a-twilio"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.send(twilio_post(&body, Some("secret-b-twilio"))).await.0,
        StatusCode::OK
    );
    assert_eq!(h.messages()[0].0, key(Provider::Twilio, "+2000", "+1555"));
    // Gateways a tenant does not use: refused like a wrong signature.
    let evo = json!({"event": "messages.upsert", "instance": "x", "data": {"key": {"remoteJid": "1@s.whatsapp.net", "id": "e1"}, "message": {"conversation": "x"}}}).to_string();
    assert_eq!(
        h.send(evolution_post(
            "/webhook/evolution",
            evo.as_bytes(),
            Some("secret-a")
        ))
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.messages().len(), 1);
}

#[tokio::test]
async fn tenants_can_change_without_a_restart() {
    let h = two_tenants();
    assert_eq!(
        h.send(meta_post(&meta_text(&["333"]), Some("secret-c")))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    h.directory
        .replace(vec![
            tenant("a", "111", "secret-a", "+1000"),
            tenant("c", "333", "secret-c", "+3000"),
        ])
        .unwrap();
    assert_eq!(
        h.send(meta_post(&meta_text(&["333"]), Some("secret-c")))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        h.send(meta_post(&meta_text(&["222"]), Some("secret-b")))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_gateway_without_a_secret_names_the_missing_setting() {
    let t = Tenant::from_env(|_| None).unwrap();
    let h = Harness::with(MemoryDirectory::single(t), IngestConfig::default());
    let cases = [
        (
            meta_post(&fixture("meta_cloud_text.json"), None),
            "LULL_META_APP_SECRET",
        ),
        (
            evolution_post(
                "/webhook/evolution",
                &fixture("evolution_v2_3_messages_upsert_text_n8n_fixture.json"),
                None,
            ),
            "LULL_EVOLUTION_TOKEN",
        ),
        (
            twilio_post(
                "MessageSid=SM1&From=whatsapp%3A%2B1&To=whatsapp%3A%2B2&Body=x",
                None,
            ),
            "LULL_TWILIO_AUTH_TOKEN",
        ),
        (
            generic_post(
                br#"{"account":"a","messages":[{"id":"1","user":"u"}]}"#,
                None,
            ),
            "LULL_GENERIC_SECRET",
        ),
    ];
    for (req, setting) in cases {
        let (status, body) = h.send(req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{setting}");
        assert!(body.contains(setting), "{body}");
    }
    h.assert_empty();
}

#[tokio::test]
async fn loopback_without_secrets_accepts_unsigned_requests() {
    let t = Tenant::from_env(|_| None).unwrap();
    assert!(!t.has_any_secret());
    let config = IngestConfig {
        allow_unsigned: true,
        ..Default::default()
    };
    let h = Harness::with(MemoryDirectory::single(t), config);
    assert_eq!(
        h.send(meta_post(&fixture("meta_cloud_text.json"), None))
            .await
            .0,
        StatusCode::OK
    );
    let body = br#"{"account":"local","messages":[{"id":"1","user":"me","text":"hello"}]}"#;
    assert_eq!(h.send(generic_post(body, None)).await.0, StatusCode::OK);
    assert_eq!(h.messages().len(), 2);
}

#[tokio::test]
async fn the_tenant_policy_goes_with_each_append() {
    let mut t = solo_tenant();
    t.policy.buffering = false;
    let h = Harness::with(MemoryDirectory::single(t), IngestConfig::default());
    assert_eq!(
        h.send(meta_post(
            &fixture("meta_cloud_text.json"),
            Some(META_SECRET)
        ))
        .await
        .0,
        StatusCode::OK
    );
    let conv = &h.store.conversations()[0];
    assert!(
        conv.window.is_none(),
        "passthrough closes the window at once"
    );
    assert_eq!(conv.pending.len(), 1);
}
