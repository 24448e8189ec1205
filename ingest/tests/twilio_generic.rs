//! Twilio WhatsApp and the generic format through the router.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use lull_core::message::{Location, Reply};
use lull_core::{MessageKind, Millis, Provider};
use serde_json::json;

fn sandbox_body() -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&fixture("twilio_whatsapp_sandbox_text_captured.json")).unwrap();
    v["raw_body"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn twilio_fixture_text_is_stored() {
    let h = Harness::solo();
    let (status, resp) = h
        .send(twilio_post(&sandbox_body(), Some(TWILIO_TOKEN)))
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let (k, m) = h.message("SM01cd3925943ee3504f8a5c42d88efdf6");
    assert_eq!(k, key(Provider::Twilio, "+14155238886", "+558282136275"));
    assert_eq!(
        (m.kind, m.text.as_deref()),
        (MessageKind::Text, Some("Olá"))
    );
    assert_eq!(m.sender.name.as_deref(), Some("Jhonata"));
    assert_eq!(m.sender.phone.as_deref(), Some("558282136275"));
    assert_eq!(m.sent_at, None, "Twilio sends no timestamp");
}

#[tokio::test]
async fn twilio_media_location_buttons_replies_and_unknown_types() {
    let h = Harness::solo();
    let base = [
        ("From", "whatsapp:+15550001111"),
        ("To", "whatsapp:+14155238886"),
        ("WaId", "15550001111"),
        ("AccountSid", "AC1"),
        ("SomethingNew", "x"),
    ];
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "MM-img",
            vec![
                ("NumMedia", "1"),
                ("MediaUrl0", "https://api.twilio.com/m/1"),
                ("MediaContentType0", "image/jpeg"),
                ("Body", "the receipt"),
                ("MessageType", "image"),
            ],
        ),
        (
            "MM-aud",
            vec![
                ("NumMedia", "1"),
                ("MediaUrl0", "https://api.twilio.com/m/2"),
                ("MediaContentType0", "audio/ogg"),
                ("Body", ""),
            ],
        ),
        (
            "MM-doc",
            vec![
                ("NumMedia", "1"),
                ("MediaUrl0", "https://api.twilio.com/m/3"),
                ("MediaContentType0", "application/pdf"),
            ],
        ),
        (
            "SM-loc",
            vec![
                ("Latitude", "-23.55"),
                ("Longitude", "-46.63"),
                ("Label", "Office"),
                ("Address", "Rua X"),
                ("Body", ""),
                ("MessageType", "location"),
            ],
        ),
        (
            "SM-btn",
            vec![
                ("ButtonText", "Yes please"),
                ("ButtonPayload", "CONFIRM"),
                ("Body", "Yes please"),
                ("MessageType", "button"),
            ],
        ),
        (
            "SM-rep",
            vec![
                ("Body", "about that"),
                ("OriginalRepliedMessageSid", "SM-earlier"),
            ],
        ),
        (
            "SM-int",
            vec![("Body", "Large"), ("MessageType", "interactive")],
        ),
    ];
    for (sid, extra) in &cases {
        let mut pairs: Vec<(&str, &str)> = base.to_vec();
        pairs.push(("MessageSid", sid));
        pairs.extend(extra.iter().copied());
        let (status, resp) = h.send(twilio_post(&form(&pairs), Some(TWILIO_TOKEN))).await;
        assert_eq!(status, StatusCode::OK, "{sid}: {resp}");
    }
    let conv = key(Provider::Twilio, "+14155238886", "+15550001111");
    assert!(h.messages().iter().all(|(k, _)| *k == conv));
    let (_, m) = h.message("MM-img");
    assert_eq!(
        (m.kind, m.caption.as_deref()),
        (MessageKind::Image, Some("the receipt"))
    );
    let media = m.media.unwrap();
    assert_eq!(
        (media.url.as_deref(), media.mime_type.as_deref()),
        (Some("https://api.twilio.com/m/1"), Some("image/jpeg"))
    );
    let (_, m) = h.message("MM-aud");
    assert_eq!((m.kind, m.caption), (MessageKind::Audio, None));
    assert_eq!(h.message("MM-doc").1.kind, MessageKind::Document);
    let (_, m) = h.message("SM-loc");
    assert_eq!(
        m.location,
        Some(Location {
            latitude: -23.55,
            longitude: -46.63,
            name: Some("Office".into()),
            address: Some("Rua X".into())
        })
    );
    let (_, m) = h.message("SM-btn");
    assert_eq!(
        (m.kind, m.reply),
        (
            MessageKind::Button,
            Some(Reply {
                id: "CONFIRM".into(),
                title: "Yes please".into()
            })
        )
    );
    let (_, m) = h.message("SM-rep");
    assert_eq!(
        (m.text.as_deref(), m.reply_to.as_deref()),
        (Some("about that"), Some("SM-earlier"))
    );
    let (_, m) = h.message("SM-int");
    assert_eq!(
        (m.kind, m.provider_type.as_deref(), m.text.as_deref()),
        (MessageKind::Other, Some("interactive"), Some("Large"))
    );
}

#[tokio::test]
async fn twilio_signature_uses_the_public_url_and_refuses_mismatches() {
    let body = sandbox_body();
    let h = Harness::solo();
    let (status, _) = h.send(twilio_post(&body, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h.send(twilio_post(&body, Some("wrong-token"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Signed for a different parameter set.
    let mut req = twilio_post(
        &body.replace("Body=Ol%C3%A1", "Body=Hello"),
        Some(TWILIO_TOKEN),
    );
    *req.body_mut() = Body::from(body.clone());
    assert_eq!(h.send(req).await.0, StatusCode::UNAUTHORIZED);
    h.assert_empty();

    // Behind a proxy that rewrites the host, the configured public URL is what Twilio signed.
    let mut t = solo_tenant();
    t.twilio.public_url = Some(TWILIO_URL.into());
    let h = Harness::with(lull_ingest::MemoryDirectory::single(t), Default::default());
    let mut req = twilio_post(&body, Some(TWILIO_TOKEN));
    req.headers_mut()
        .insert("host", "internal:8080".parse().unwrap());
    req.headers_mut()
        .insert("x-forwarded-proto", "http".parse().unwrap());
    assert_eq!(h.send(req).await.0, StatusCode::OK);
}

#[tokio::test]
async fn twilio_status_callbacks_are_acknowledged_not_buffered() {
    let h = Harness::solo();
    let body = form(&[
        ("MessageSid", "SM9"),
        ("MessageStatus", "delivered"),
        ("From", "whatsapp:+14155238886"),
        ("To", "whatsapp:+15550001111"),
    ]);
    let (status, resp) = h.send(twilio_post(&body, Some(TWILIO_TOKEN))).await;
    assert_eq!(
        (status, resp.as_str()),
        (
            StatusCode::OK,
            r#"{"accepted":0,"duplicates":0,"ignored":1}"#
        )
    );
    h.assert_empty();
}

#[tokio::test]
async fn generic_format_round_trips_every_field() {
    let h = Harness::solo();
    let body = json!({"account": "tg-bot", "messages": [
        {"id": "g1", "user": "tg:42", "text": "hi", "sender_name": "Ann", "sent_at": "2026-01-01T12:00:00Z"},
        {"id": "g2", "user": "tg:42", "kind": "image", "caption": "look", "media": {"url": "https://cdn/x.jpg", "mime_type": "image/jpeg"}, "reply_to": "g1"},
        {"id": "g3", "user": "tg:43", "group": "tg-group-7", "kind": "location", "location": {"latitude": 1.5, "longitude": 2.5}},
        {"id": "g4", "user": "tg:42", "kind": "other", "provider_type": "poll"}
    ]})
    .to_string();
    let (status, resp) = h
        .send(generic_post(body.as_bytes(), Some(GENERIC_SECRET)))
        .await;
    assert_eq!(
        (status, resp.as_str()),
        (
            StatusCode::OK,
            r#"{"accepted":4,"duplicates":0,"ignored":0}"#
        )
    );
    let (k, m) = h.message("g1");
    assert_eq!(k, key(Provider::Generic, "tg-bot", "tg:42"));
    assert_eq!(
        (m.kind, m.text.as_deref(), m.sender.name.as_deref()),
        (MessageKind::Text, Some("hi"), Some("Ann"))
    );
    assert_eq!(
        m.sent_at,
        Some(Millis::parse_rfc3339("2026-01-01T12:00:00Z").unwrap())
    );
    let (_, m) = h.message("g2");
    assert_eq!(
        (m.kind, m.caption.as_deref(), m.reply_to.as_deref()),
        (MessageKind::Image, Some("look"), Some("g1"))
    );
    let (k, m) = h.message("g3");
    assert_eq!(
        k,
        key(Provider::Generic, "tg-bot", "tg-group-7").in_group("tg-group-7")
    );
    assert_eq!(
        (m.sender.id.as_str(), m.kind),
        ("tg:43", MessageKind::Location)
    );
    assert_eq!(h.message("g4").1.provider_type.as_deref(), Some("poll"));
}

#[tokio::test]
async fn generic_requires_its_signature() {
    let h = Harness::solo();
    let body = br#"{"account":"a","messages":[{"id":"1","user":"u","text":"x"}]}"#;
    assert_eq!(
        h.send(generic_post(body, None)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.send(generic_post(body, Some("nope"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A message without `user` is skipped and counted; the envelope without `account` is
    // refused whole.
    let missing_user = br#"{"account":"a","messages":[{"id":"1","text":"x"}]}"#;
    let (status, resp) = h
        .send(generic_post(missing_user, Some(GENERIC_SECRET)))
        .await;
    assert_eq!(
        (status, resp.as_str()),
        (
            StatusCode::OK,
            r#"{"accepted":0,"duplicates":0,"ignored":1}"#
        )
    );
    let missing_account = br#"{"messages":[{"id":"1","user":"u","text":"x"}]}"#;
    let (status, reason) = h
        .send(generic_post(missing_account, Some(GENERIC_SECRET)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.contains("missing field `account`"), "{reason}");
    h.assert_empty();
    let req = Request::post("/webhook/generic")
        .header("content-type", "text/plain")
        .body(Body::from(&body[..]))
        .unwrap();
    assert_eq!(h.send(req).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
