//! Authentication before parsing, with several tenants (the store-backed directory of `lull
//! serve` and the Lambdas never has a "sole" one): every route checks the signature, or
//! Evolution's header credential, with the secrets of the tenant owning the account the raw body
//! names, before it parses the body. So a wrongly-signed body is a 401 whatever it holds: one
//! that would not even parse is never parsed (it would be a 400 otherwise), and nothing is
//! stored.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use lull_ingest::{
    EvolutionSettings, GenericSettings, IngestConfig, MemoryDirectory, MetaSettings, Secrets,
    Tenant, TwilioSettings, WahaSettings,
};

/// Tenant `id` with every gateway, its accounts suffixed by `n`.
fn tenant(id: &str, n: &str) -> Tenant {
    let secret = |g: &str| Secrets::new([format!("{g}-secret-{id}")]);
    Tenant {
        id: id.into(),
        meta: MetaSettings {
            phone_number_ids: vec![format!("10000000000000{n}")],
            app_secrets: secret("meta"),
            ..Default::default()
        },
        evolution: EvolutionSettings {
            instances: vec![format!("inst-{n}")],
            tokens: secret("evo"),
            ..Default::default()
        },
        twilio: TwilioSettings {
            numbers: vec![format!("whatsapp:+1555000000{n}")],
            auth_tokens: secret("twilio"),
            public_url: Some(TWILIO_URL.into()),
            ..Default::default()
        },
        generic: GenericSettings {
            accounts: vec![format!("acct-{n}")],
            secrets: secret("generic"),
        },
        waha: WahaSettings {
            sessions: vec![format!("sess-{n}")],
            hmac_keys: secret("waha"),
        },
        ..Default::default()
    }
}

fn two_tenants() -> Harness {
    let dir = MemoryDirectory::new(vec![tenant("a", "1"), tenant("b", "2")]).unwrap();
    Harness::with(dir, IngestConfig::default())
}

/// Bodies that name tenant a's account where each gateway names it, then stop being valid JSON.
const META_BROKEN: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"100000000000001"},"messages":[{"id":"#;
const EVO_BROKEN: &str = r#"{"event":"messages.upsert","instance":"inst-1","data":{"key":"#;
const WAHA_BROKEN: &str = r#"{"event":"message","session":"sess-1","payload":{"id":"#;
const GENERIC_BROKEN: &str = r#"{"account":"acct-1","messages":[{"id":"#;

#[tokio::test]
async fn a_wrongly_signed_body_is_refused_unparsed_on_every_route() {
    let h = two_tenants();
    // Signed with tenant b's secrets (a real secret, of the wrong tenant).
    let meta = h
        .send(meta_post(META_BROKEN.as_bytes(), Some("meta-secret-b")))
        .await;
    let evo = h
        .send(evolution_post(
            "/webhook/evolution",
            EVO_BROKEN.as_bytes(),
            Some("evo-secret-b"),
        ))
        .await;
    let waha = h
        .send(waha_post(WAHA_BROKEN.as_bytes(), Some("waha-secret-b")))
        .await;
    let generic = h
        .send(generic_post(
            GENERIC_BROKEN.as_bytes(),
            Some("generic-secret-b"),
        ))
        .await;
    // A Twilio form naming a's number, missing the MessageSid the parser requires.
    let twilio = h
        .send(twilio_post(
            &form(&[
                ("From", "whatsapp:+5511900000001"),
                ("To", "whatsapp:+15550000001"),
            ]),
            Some("twilio-secret-b"),
        ))
        .await;
    for (route, (status, reason)) in [
        ("meta", meta),
        ("evolution", evo),
        ("waha", waha),
        ("generic", generic),
        ("twilio", twilio),
    ] {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{route}: {reason}");
    }
    h.assert_empty();
}

#[tokio::test]
async fn the_right_tenants_signature_reaches_the_parser() {
    // The same broken bodies signed with tenant a's own secrets pass authentication, so the
    // parser's 400 is what refuses them: the 401 above was the signature, not the shape.
    let h = two_tenants();
    let (status, reason) = h
        .send(meta_post(META_BROKEN.as_bytes(), Some("meta-secret-a")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}");
    let (status, reason) = h
        .send(evolution_post(
            "/webhook/evolution",
            EVO_BROKEN.as_bytes(),
            Some("evo-secret-a"),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}");
    let (status, reason) = h
        .send(twilio_post(
            &form(&[
                ("From", "whatsapp:+5511900000001"),
                ("To", "whatsapp:+15550000001"),
            ]),
            Some("twilio-secret-a"),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}");
    h.assert_empty();
}

#[tokio::test]
async fn a_body_naming_one_tenant_first_and_another_later_stores_nothing() {
    let h = two_tenants();
    // Signed by a, whose number the raw body names first; the second change names b's number.
    let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "w",
        "changes": [
            {"field": "messages", "value": {"metadata": {"phone_number_id": "100000000000001"},
             "messages": [{"from": "1555", "id": "w.a", "timestamp": "1", "type": "text", "text": {"body": "x"}}]}},
            {"field": "messages", "value": {"metadata": {"phone_number_id": "100000000000002"},
             "messages": [{"from": "1555", "id": "w.b", "timestamp": "1", "type": "text", "text": {"body": "y"}}]}}]}]})
    .to_string();
    let (status, reason) = h
        .send(meta_post(body.as_bytes(), Some("meta-secret-a")))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reason}");
    // A message text spelling another account's key is text, not the account.
    let body = serde_json::json!({"account": "acct-1", "messages": [
        {"id": "m1", "user": "u", "text": "{\"account\":\"acct-2\"}"}]})
    .to_string();
    let (status, reason) = h
        .send(generic_post(body.as_bytes(), Some("generic-secret-a")))
        .await;
    assert_eq!(status, StatusCode::OK, "{reason}");
    assert_eq!(h.messages().len(), 1);
}

#[tokio::test]
async fn an_unknown_or_absent_account_is_refused_before_parsing() {
    let h = two_tenants();
    for body in [
        META_BROKEN.replace("100000000000001", "100000000000009"),
        // No phone_number_id where Meta puts it.
        r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":["#.to_string(),
    ] {
        let (status, reason) = h
            .send(meta_post(body.as_bytes(), Some("meta-secret-a")))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reason}");
    }
    // A Twilio form of more than 256 parameters is refused before any signature is computed.
    let many = vec![("X", "1"); 300];
    let req = Request::post("/webhook/twilio")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", "AAAA")
        .body(Body::from(form(&many)))
        .unwrap();
    let (status, reason) = h.send(req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}");
    assert!(reason.contains("256"), "{reason}");
    h.assert_empty();
}

/// An account no tenant serves is refused exactly like a served account's wrong signature (the
/// same status and body), on every webhook route: a caller without secrets cannot tell which
/// accounts exist. Before, an unknown account was answered 403 "unknown account" before any
/// check, a served one 401.
#[tokio::test]
async fn an_unknown_account_is_answered_like_a_wrong_signature_on_every_route() {
    let h = two_tenants();
    // (route, request for a's account signed with b's secret, the same for an account nobody
    // serves signed with a's).
    let meta = |n: &str, s: &str| meta_post(META_BROKEN.replace("01\"", n).as_bytes(), Some(s));
    let evo = |path: &str, n: &str, s: &str| {
        evolution_post(path, EVO_BROKEN.replace("inst-1", n).as_bytes(), Some(s))
    };
    let evo_keyed = |n: &str, s: &str| {
        let body = EVO_BROKEN.replace("inst-1", n);
        Request::post(format!("/webhook/evolution/k/{s}/messages-upsert"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let waha = |n: &str, s: &str| waha_post(WAHA_BROKEN.replace("sess-1", n).as_bytes(), Some(s));
    let generic =
        |n: &str, s: &str| generic_post(GENERIC_BROKEN.replace("acct-1", n).as_bytes(), Some(s));
    let twilio = |n: &str, s: &str| {
        twilio_post(
            &form(&[("From", "whatsapp:+5511900000001"), ("To", n)]),
            Some(s),
        )
    };
    let cases = [
        (
            "meta",
            meta("01\"", "meta-secret-b"),
            meta("09\"", "meta-secret-a"),
        ),
        (
            "evolution",
            evo("/webhook/evolution", "inst-1", "evo-secret-b"),
            evo("/webhook/evolution", "inst-9", "evo-secret-a"),
        ),
        (
            "evolution/{event}",
            evo(
                "/webhook/evolution/messages-upsert",
                "inst-1",
                "evo-secret-b",
            ),
            evo(
                "/webhook/evolution/messages-upsert",
                "inst-9",
                "evo-secret-a",
            ),
        ),
        (
            "evolution/k/{secret}/{event}",
            evo_keyed("inst-1", "evo-secret-b"),
            evo_keyed("inst-9", "evo-secret-a"),
        ),
        (
            "waha",
            waha("sess-1", "waha-secret-b"),
            waha("sess-9", "waha-secret-a"),
        ),
        (
            "generic",
            generic("acct-1", "generic-secret-b"),
            generic("acct-9", "generic-secret-a"),
        ),
        (
            "twilio",
            twilio("whatsapp:+15550000001", "twilio-secret-b"),
            twilio("whatsapp:+15550000009", "twilio-secret-a"),
        ),
    ];
    let mut told_apart = Vec::new();
    for (route, wrong_signature, unknown_account) in cases {
        let wrong = h.send(wrong_signature).await;
        let unknown = h.send(unknown_account).await;
        assert_eq!(wrong.0, StatusCode::UNAUTHORIZED, "{route}: {}", wrong.1);
        if unknown != wrong {
            told_apart.push(format!("{route}: {unknown:?} vs {wrong:?}"));
        }
    }
    assert!(
        told_apart.is_empty(),
        "unknown accounts told apart:\n{}",
        told_apart.join("\n")
    );
    h.assert_empty();
}
