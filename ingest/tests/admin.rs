//! The admin routes (`POST /admin/conversations/pause|resume`): a tenant's bearer `admin_token`
//! pauses and resumes its own conversations, never another tenant's; every bad request is a 4xx
//! naming its reason and changes nothing.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use lull_core::turn::PauseReason;
use lull_core::{ConversationKey, Provider};
use lull_ingest::{EvolutionSettings, MemoryDirectory, Secrets, Tenant};
use serde_json::json;

fn tenant(id: &str, instance: &str, admin: Option<&str>) -> Tenant {
    Tenant {
        id: id.into(),
        admin_tokens: Secrets::new(admin),
        evolution: EvolutionSettings {
            instances: vec![instance.into()],
            tokens: Secrets::new([format!("{id}-evo")]),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Tenants `a` (instance `shop-a`, admin tokens `adm-a-old`, `adm-a`), `b` (`shop-b`, `adm-b`)
/// and `c` (`shop-c`, no admin token), with one message from the same user in each instance.
async fn three_tenants() -> Harness {
    let mut a = tenant("a", "shop-a", None);
    a.admin_tokens = Secrets::new(["adm-a-old", "adm-a"]);
    let dir = MemoryDirectory::new(vec![
        a,
        tenant("b", "shop-b", Some("adm-b")),
        tenant("c", "shop-c", None),
    ])
    .expect("directory");
    let h = Harness::with(dir, Default::default());
    for (id, instance) in [("a", "shop-a"), ("b", "shop-b"), ("c", "shop-c")] {
        let body = json!({
            "event": "messages.upsert", "instance": instance,
            "data": {"key": {"remoteJid": USER, "fromMe": false, "id": format!("m-{id}")},
                     "message": {"conversation": "hola"}, "messageType": "conversation"}
        })
        .to_string();
        let (status, text) = h
            .send(evolution_post(
                "/webhook/evolution",
                body.as_bytes(),
                Some(&format!("{id}-evo")),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
    }
    h
}

const USER: &str = "5511987650001@s.whatsapp.net";

fn key(instance: &str) -> String {
    ConversationKey::new(Provider::Evolution, instance, USER).storage_key()
}

fn admin(action: &str, token: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::post(format!("/admin/conversations/{action}"))
        .header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn a_tenants_token_pauses_and_resumes_its_own_conversation() {
    let h = three_tenants().await;
    let a = ConversationKey::from_storage_key(&key("shop-a")).unwrap();
    let body = json!({"key": key("shop-a"), "for": "2h"}).to_string();
    // Either value of a rotated token works.
    let (status, text) = h.send(admin("pause", Some("adm-a-old"), &body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.starts_with("paused until "), "{text}");
    let pause = h.store.load_now(&a).unwrap().turn.pause.expect("paused");
    assert_eq!(pause.reason, PauseReason::Admin);
    assert_eq!(pause.until, NOW.plus(std::time::Duration::from_secs(7200)));

    let (status, text) = h.send(admin("pause", Some("adm-a"), &body)).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "unchanged\n"));
    let resume = json!({"key": key("shop-a")}).to_string();
    let (status, text) = h.send(admin("resume", Some("adm-a"), &resume)).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "resumed\n"));
    // The pause ends now (kept with its reason, so what it held says it waited for it).
    let ended = h
        .store
        .load_now(&a)
        .unwrap()
        .turn
        .pause
        .expect("ended pause");
    assert_eq!((ended.until, ended.reason), (NOW, PauseReason::Admin));
    let (status, text) = h.send(admin("resume", Some("adm-a"), &resume)).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "unchanged\n"));

    // Without "for": the default 30 minutes.
    let (status, text) = h.send(admin("pause", Some("adm-a"), &resume)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let pause = h.store.load_now(&a).unwrap().turn.pause.expect("paused");
    assert_eq!(pause.until, NOW.plus(std::time::Duration::from_secs(1800)));
}

#[tokio::test]
async fn every_bad_request_is_refused_with_its_reason_and_changes_nothing() {
    let h = three_tenants().await;
    let before = h.store.conversations();
    let armed = h.trigger.len();
    let pause_a = json!({"key": key("shop-a")}).to_string();
    let long_user = format!("evolution|shop-a|{}", "9".repeat(2000));
    let too_big = json!({"key": key("shop-a"), "for": "1h", "x": "y".repeat(5000)}).to_string();
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (admin("pause", None, &pause_a), StatusCode::UNAUTHORIZED, "missing Authorization"),
        (admin("pause", Some("nope"), &pause_a), StatusCode::UNAUTHORIZED, "wrong admin token"),
        // Tenant b's token opens b's conversations only.
        (admin("pause", Some("adm-b"), &pause_a), StatusCode::UNAUTHORIZED, "wrong admin token"),
        (
            admin("resume", Some("adm-b"), &json!({"key": key("shop-a")}).to_string()),
            StatusCode::UNAUTHORIZED,
            "wrong admin token",
        ),
        // A tenant without an admin token, and an account no tenant owns, answer exactly as a
        // wrong token does: no enumeration of accounts or tenants.
        (
            admin("pause", Some("adm-c"), &json!({"key": key("shop-c")}).to_string()),
            StatusCode::UNAUTHORIZED,
            "wrong admin token",
        ),
        (
            admin("pause", Some("adm-a"), &json!({"key": key("shop-z")}).to_string()),
            StatusCode::UNAUTHORIZED,
            "wrong admin token",
        ),
        (
            admin("pause", Some("adm-a"), &json!({"key": "shop-a|someone"}).to_string()),
            StatusCode::BAD_REQUEST,
            "not a conversation key",
        ),
        (
            admin("pause", Some("adm-a"), &json!({"key": "evolution||x"}).to_string()),
            StatusCode::BAD_REQUEST,
            "not a conversation key",
        ),
        (
            admin("pause", Some("adm-a"), &json!({"key": long_user}).to_string()),
            StatusCode::BAD_REQUEST,
            "\"key\"",
        ),
        (
            admin("pause", Some("adm-a"), &json!({"key": key("shop-a"), "for": "soon"}).to_string()),
            StatusCode::BAD_REQUEST,
            "\"for\" must be a duration",
        ),
        (
            admin("pause", Some("adm-a"), &json!({"key": key("shop-a"), "for": "8d"}).to_string()),
            StatusCode::BAD_REQUEST,
            "7 days",
        ),
        (
            admin("resume", Some("adm-a"), &json!({"key": key("shop-a"), "for": "1h"}).to_string()),
            StatusCode::BAD_REQUEST,
            "a resume takes only",
        ),
        (
            admin("pause", Some("adm-a"), &json!({"key": key("shop-a"), "until": "1h"}).to_string()),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (admin("pause", Some("adm-a"), "{\"key\":"), StatusCode::BAD_REQUEST, "admin body"),
        (admin("pause", Some("adm-a"), &too_big), StatusCode::PAYLOAD_TOO_LARGE, "4096"),
        (
            Request::post("/admin/conversations/pause")
                .header("content-type", "text/plain")
                .header("authorization", "Bearer adm-a")
                .body(Body::from(pause_a.clone()))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
        // A conversation lull never saw: nothing to pause.
        (
            admin(
                "pause",
                Some("adm-a"),
                &json!({"key": ConversationKey::new(Provider::Evolution, "shop-a", "other").storage_key()})
                    .to_string(),
            ),
            StatusCode::NOT_FOUND,
            "no such conversation",
        ),
    ];
    for (req, want, reason) in cases {
        let what = format!("{} {:?}", req.uri(), req.headers().get("authorization"));
        let (status, text) = h.send(req).await;
        assert_eq!(status, want, "{what}: {text}");
        assert!(
            text.contains(reason),
            "{what}: {text:?} should say {reason:?}"
        );
        assert_eq!(h.store.conversations(), before, "{what} changed a record");
        assert_eq!(h.trigger.len(), armed, "{what} armed a trigger");
    }
}

#[tokio::test]
async fn a_twilio_key_names_its_number_with_or_without_the_whatsapp_prefix() {
    let t = Tenant {
        id: "tw".into(),
        admin_tokens: Secrets::new(["adm-tw"]),
        twilio: lull_ingest::TwilioSettings {
            numbers: vec!["whatsapp:+14155238886".into()],
            auth_tokens: Secrets::new([TWILIO_TOKEN]),
            ..Default::default()
        },
        ..Default::default()
    };
    let h = Harness::with(MemoryDirectory::single(t), Default::default());
    let body = form(&[
        ("From", "whatsapp:+5511987650001"),
        ("To", "whatsapp:+14155238886"),
        ("Body", "hola"),
        ("MessageSid", "SM1"),
        ("NumMedia", "0"),
    ]);
    let (status, text) = h.send(twilio_post(&body, Some(TWILIO_TOKEN))).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    for account in ["whatsapp:+14155238886", "+14155238886"] {
        let k = ConversationKey::new(Provider::Twilio, account, "+5511987650001").storage_key();
        let (status, text) = h
            .send(admin(
                "pause",
                Some("adm-tw"),
                &json!({"key": k}).to_string(),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{account}: {text}");
    }
}
