//! Meta Cloud API through the router: every message type, statuses, identity, handshake, auth.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use lull_core::message::{Contact, Location, Media, Reaction, Reply};
use lull_core::{MessageKind, Millis, Provider};
use serde_json::{json, Value};

const PHONE_ID: &str = "106540352242922";

fn envelope(changes: Vec<Value>) -> Vec<u8> {
    json!({"object": "whatsapp_business_account",
           "entry": [{"id": "102290129340398", "changes": changes}]})
    .to_string()
    .into_bytes()
}

fn change(phone_id: &str, contacts: Value, messages: Value) -> Value {
    json!({"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_id},
        "contacts": contacts, "messages": messages}})
}

fn contact(wa_id: &str, name: &str) -> Value {
    json!([{"profile": {"name": name}, "wa_id": wa_id}])
}

fn msg(id: &str, kind: &str, body: Value) -> Value {
    let mut m = json!({"from": "16505551234", "id": id, "timestamp": "1749416383", "type": kind});
    if let (Some(obj), Some(b)) = (m.as_object_mut(), body.as_object()) {
        obj.extend(b.clone());
    }
    m
}

#[tokio::test]
async fn text_fixture_is_stored_with_key_sender_and_provider_time() {
    let h = Harness::solo();
    let (status, body) = h
        .send(meta_post(
            &fixture("meta_cloud_text.json"),
            Some(META_SECRET),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"accepted":1,"duplicates":0,"ignored":0}"#);
    let (k, m) = h.message("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=");
    assert_eq!(k, key(Provider::Meta, PHONE_ID, "16505551234"));
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(m.text.as_deref(), Some("Does it come in another color?"));
    assert_eq!(m.sender.id, "16505551234");
    assert_eq!(m.sender.name.as_deref(), Some("Sheena Nelson"));
    assert_eq!(m.sender.phone.as_deref(), Some("16505551234"));
    assert_eq!(m.sent_at, Some(Millis(1_749_416_383_000)));
    assert_eq!(m.received_at, NOW, "the core sets lull's receive time");
    assert!(!h.trigger.is_empty(), "the window's trigger is armed");
}

#[tokio::test]
async fn image_fixture_keeps_caption_and_media() {
    let h = Harness::solo();
    let (status, _) = h
        .send(meta_post(
            &fixture("meta_cloud_image.json"),
            Some(META_SECRET),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, m) = h.message("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=");
    assert_eq!(m.kind, MessageKind::Image);
    assert_eq!(m.caption.as_deref(), Some("Taj Mahal"));
    let media = m.media.unwrap();
    assert_eq!(media.id.as_deref(), Some("1003383421387256"));
    assert_eq!(media.mime_type.as_deref(), Some("image/jpeg"));
    assert!(media
        .url
        .unwrap()
        .starts_with("https://lookaside.fbsbx.com/"));
}

#[tokio::test]
async fn statuses_are_acknowledged_not_buffered() {
    let h = Harness::solo();
    let (status, body) = h
        .send(meta_post(
            &fixture("meta_cloud_status_sent.json"),
            Some(META_SECRET),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"accepted":0,"duplicates":0,"ignored":1}"#);
    h.assert_empty();
}

#[tokio::test]
async fn every_message_type_across_entries_and_changes() {
    let h = Harness::solo();
    let first = change(
        PHONE_ID,
        contact("16505551234", "Sheena"),
        json!([
            msg(
                "w.audio",
                "audio",
                json!({"audio": {"id": "a1", "mime_type": "audio/ogg; codecs=opus", "voice": true}})
            ),
            msg(
                "w.video",
                "video",
                json!({"video": {"id": "v1", "mime_type": "video/mp4", "caption": "look"}})
            ),
            msg(
                "w.doc",
                "document",
                json!({"document": {"id": "d1", "mime_type": "application/pdf", "filename": "menu.pdf", "caption": "menu"}})
            ),
            msg(
                "w.sticker",
                "sticker",
                json!({"sticker": {"id": "s1", "mime_type": "image/webp", "animated": false}})
            ),
            msg(
                "w.loc",
                "location",
                json!({"location": {"latitude": 38.9, "longitude": -77.03, "name": "Home", "address": "1 Main St"}})
            ),
            msg(
                "w.contacts",
                "contacts",
                json!({"contacts": [{"name": {"formatted_name": "Ann Lee", "first_name": "Ann"}, "phones": [{"phone": "+1 555 0100", "wa_id": "15550100", "type": "CELL"}]}]})
            ),
        ]),
    );
    let second = change(
        PHONE_ID,
        contact("16505551234", "Sheena"),
        json!([
            msg(
                "w.btnreply",
                "interactive",
                json!({"interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}})
            ),
            msg(
                "w.listreply",
                "interactive",
                json!({"interactive": {"type": "list_reply", "list_reply": {"id": "row-2", "title": "Large", "description": "16 inch"}}})
            ),
            msg(
                "w.button",
                "button",
                json!({"button": {"payload": "STOP", "text": "Stop promotions"}})
            ),
            msg(
                "w.reaction",
                "reaction",
                json!({"reaction": {"message_id": "w.audio", "emoji": "\u{1F44D}"}})
            ),
            msg(
                "w.unsupported",
                "unsupported",
                json!({"errors": [{"code": 131051, "title": "Message type unknown"}]})
            ),
            msg(
                "w.system",
                "system",
                json!({"system": {"body": "User changed number", "type": "user_changed_number"}})
            ),
            msg("w.order", "order", json!({"order": {"catalog_id": "c"}})),
            msg(
                "w.reply",
                "text",
                json!({"text": {"body": "this one"}, "context": {"from": "15550783881", "id": "wamid.earlier"}})
            ),
        ]),
    );
    let body = json!({"object": "whatsapp_business_account", "entry": [
        {"id": "1", "changes": [first]},
        {"id": "2", "changes": [second]},
    ]});
    let (status, resp) = h
        .send(meta_post(body.to_string().as_bytes(), Some(META_SECRET)))
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp, r#"{"accepted":14,"duplicates":0,"ignored":0}"#);

    let all = h.messages();
    assert_eq!(all.len(), 14);
    assert!(all
        .iter()
        .all(|(k, _)| *k == key(Provider::Meta, PHONE_ID, "16505551234")));
    let ids: Vec<_> = all.iter().map(|(_, m)| m.id.as_str()).collect();
    assert_eq!(ids[0], "w.audio", "receive order is body order");
    assert_eq!(ids[13], "w.reply");

    let (_, m) = h.message("w.audio");
    assert_eq!(m.kind, MessageKind::Audio);
    assert_eq!(
        m.media,
        Some(Media {
            id: Some("a1".into()),
            mime_type: Some("audio/ogg; codecs=opus".into()),
            voice: true,
            ..Default::default()
        })
    );
    let (_, m) = h.message("w.video");
    assert_eq!(
        (m.kind, m.caption.as_deref()),
        (MessageKind::Video, Some("look"))
    );
    let (_, m) = h.message("w.doc");
    assert_eq!(m.kind, MessageKind::Document);
    assert_eq!(m.media.unwrap().filename.as_deref(), Some("menu.pdf"));
    assert_eq!(m.caption.as_deref(), Some("menu"));
    let (_, m) = h.message("w.sticker");
    assert_eq!(m.kind, MessageKind::Sticker);
    assert_eq!(m.media.unwrap().id.as_deref(), Some("s1"));
    let (_, m) = h.message("w.loc");
    assert_eq!(m.kind, MessageKind::Location);
    assert_eq!(
        m.location,
        Some(Location {
            latitude: 38.9,
            longitude: -77.03,
            name: Some("Home".into()),
            address: Some("1 Main St".into())
        })
    );
    let (_, m) = h.message("w.contacts");
    assert_eq!(m.kind, MessageKind::Contacts);
    assert_eq!(
        m.contacts,
        vec![Contact {
            name: Some("Ann Lee".into()),
            phones: vec!["+1 555 0100".into()]
        }]
    );
    let (_, m) = h.message("w.btnreply");
    assert_eq!(m.kind, MessageKind::Interactive);
    assert_eq!(
        m.reply,
        Some(Reply {
            id: "yes".into(),
            title: "Yes".into()
        })
    );
    let (_, m) = h.message("w.listreply");
    assert_eq!(
        m.reply,
        Some(Reply {
            id: "row-2".into(),
            title: "Large".into()
        })
    );
    let (_, m) = h.message("w.button");
    assert_eq!(m.kind, MessageKind::Button);
    assert_eq!(
        m.reply,
        Some(Reply {
            id: "STOP".into(),
            title: "Stop promotions".into()
        })
    );
    let (_, m) = h.message("w.reaction");
    assert_eq!(m.kind, MessageKind::Reaction);
    assert_eq!(
        m.reaction,
        Some(Reaction {
            message_id: "w.audio".into(),
            emoji: Some("\u{1F44D}".into())
        })
    );
    let (_, m) = h.message("w.unsupported");
    assert_eq!(
        (m.kind, m.provider_type.as_deref()),
        (MessageKind::Other, Some("unsupported"))
    );
    let (_, m) = h.message("w.system");
    assert_eq!(
        (m.kind, m.provider_type.as_deref()),
        (MessageKind::Other, Some("system"))
    );
    assert_eq!(m.text.as_deref(), Some("User changed number"));
    let (_, m) = h.message("w.order");
    assert_eq!(
        (m.kind, m.provider_type.as_deref()),
        (MessageKind::Other, Some("order"))
    );
    let (_, m) = h.message("w.reply");
    assert_eq!(m.reply_to.as_deref(), Some("wamid.earlier"));
    assert_eq!(m.text.as_deref(), Some("this one"));
}

#[tokio::test]
async fn two_business_numbers_are_two_conversations_and_groups_are_one() {
    let h = Harness::solo();
    let body = envelope(vec![
        change(
            "111",
            contact("16505551234", "S"),
            json!([msg("w.1", "text", json!({"text": {"body": "a"}}))]),
        ),
        change(
            "222",
            contact("16505551234", "S"),
            json!([msg("w.2", "text", json!({"text": {"body": "b"}}))]),
        ),
        change(
            "111",
            json!([]),
            json!([
                {"from": "1555000001", "id": "w.g1", "timestamp": "1", "type": "text", "group_id": "G1", "text": {"body": "x"}},
                {"from": "1555000002", "id": "w.g2", "timestamp": "1", "type": "text", "group_id": "G1", "text": {"body": "y"}},
            ]),
        ),
    ]);
    let (status, _) = h.send(meta_post(&body, Some(META_SECRET))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        h.message("w.1").0,
        key(Provider::Meta, "111", "16505551234")
    );
    assert_eq!(
        h.message("w.2").0,
        key(Provider::Meta, "222", "16505551234")
    );
    let group = key(Provider::Meta, "111", "G1").in_group("G1");
    let (k1, m1) = h.message("w.g1");
    let (k2, m2) = h.message("w.g2");
    assert_eq!((k1, k2), (group.clone(), group));
    assert_eq!(
        (m1.sender.id.as_str(), m2.sender.id.as_str()),
        ("1555000001", "1555000002")
    );
}

#[tokio::test]
async fn business_scoped_user_id_keys_the_conversation_whether_or_not_the_phone_is_sent() {
    let h = Harness::solo();
    let with_phone = envelope(vec![change(
        PHONE_ID,
        json!([{"profile": {"name": "Maria", "username": "@maria"}, "wa_id": "5511999990000", "user_id": "BR.1502576394655843"}]),
        json!([{"from": "5511999990000", "from_user_id": "BR.1502576394655843", "id": "w.b1", "timestamp": "1", "type": "text", "text": {"body": "one"}}]),
    )]);
    let without_phone = envelope(vec![change(
        PHONE_ID,
        json!([{"profile": {"name": "Maria", "username": "@maria"}, "user_id": "BR.1502576394655843"}]),
        json!([{"from_user_id": "BR.1502576394655843", "id": "w.b2", "timestamp": "2", "type": "text", "text": {"body": "two"}}]),
    )]);
    for body in [with_phone, without_phone] {
        let (status, resp) = h.send(meta_post(&body, Some(META_SECRET))).await;
        assert_eq!(status, StatusCode::OK, "{resp}");
    }
    let conv = key(Provider::Meta, PHONE_ID, "BR.1502576394655843");
    let (k1, m1) = h.message("w.b1");
    let (k2, m2) = h.message("w.b2");
    assert_eq!((&k1, &k2), (&conv, &conv), "one user, one conversation");
    assert_eq!(m1.sender.phone.as_deref(), Some("5511999990000"));
    assert_eq!(m1.sender.alt_id.as_deref(), Some("BR.1502576394655843"));
    assert_eq!(m2.sender.phone, None);
    assert_eq!(m2.sender.name.as_deref(), Some("Maria"));
}

#[tokio::test]
async fn a_retried_post_is_a_duplicate_and_a_failed_trigger_is_503_then_rearmed() {
    let h = Harness::solo();
    let body = fixture("meta_cloud_text.json");
    h.trigger.set_failing(true);
    let (status, reason) = h.send(meta_post(&body, Some(META_SECRET))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reason}");
    // The cause (here the trigger's error; a store's or SDK's names tables and queues) goes to
    // the log, never to a caller who may not be authenticated.
    assert_eq!(reason, "unavailable, retry later");
    assert!(h.trigger.is_empty());
    h.trigger.set_failing(false);
    let (status, resp) = h.send(meta_post(&body, Some(META_SECRET))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp, r#"{"accepted":0,"duplicates":1,"ignored":0}"#);
    assert_eq!(h.messages().len(), 1);
    assert!(
        !h.trigger.is_empty(),
        "the duplicate re-armed the window's trigger"
    );
}

#[tokio::test]
async fn signature_is_required_and_any_rotated_secret_works() {
    let mut t = solo_tenant();
    t.meta.app_secrets = lull_ingest::Secrets::new(["old-secret", META_SECRET]);
    let h = Harness::with(lull_ingest::MemoryDirectory::single(t), Default::default());
    let body = fixture("meta_cloud_text.json");
    let (status, reason) = h.send(meta_post(&body, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(reason.contains("X-Hub-Signature-256"), "{reason}");
    let (status, _) = h.send(meta_post(&body, Some("wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    h.assert_empty();
    let (status, _) = h.send(meta_post(&body, Some("old-secret"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h.send(meta_post(&body, Some(META_SECRET))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.messages().len(), 1);
}

fn handshake(token: &str) -> Request<Body> {
    Request::get(format!(
        "/webhook/meta?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
    ))
    .body(Body::empty())
    .unwrap()
}

#[tokio::test]
async fn subscription_handshake_echoes_the_challenge_only_for_the_right_token() {
    let h = Harness::solo();
    let (status, body) = h.send(handshake(VERIFY_TOKEN)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1158201444"));
    let (status, _) = h.send(handshake("nope")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let bad_mode = Request::get(
        "/webhook/meta?hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1",
    )
    .body(Body::empty())
    .unwrap();
    assert_eq!(h.send(bad_mode).await.0, StatusCode::BAD_REQUEST);

    let mut t = solo_tenant();
    t.meta.verify_tokens = Default::default();
    let h = Harness::with(lull_ingest::MemoryDirectory::single(t), Default::default());
    let (status, body) = h.send(handshake("anything")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("LULL_META_VERIFY_TOKEN"), "{body}");
}

/// Under the default 7-day dedupe horizon, a message whose provider timestamp is older than
/// the horizon (less its 5-minute clock slack) could be a replay of one handed off long ago:
/// skipped (answered 200, counted as ignored and in `lull_stale_messages_total`), never stored.
/// A message within the horizon in the same body is stored.
#[tokio::test]
async fn a_message_older_than_the_dedupe_horizon_is_skipped_not_stored() {
    let h = Harness::with_buffer(
        lull_ingest::MemoryDirectory::single(solo_tenant()),
        lull_ingest::IngestConfig::default(),
        lull_core::BufferConfig::default(),
    );
    let secs = |ms: u64| (ms / 1000).to_string();
    let week = 7 * 24 * 3600 * 1000;
    let mut old = msg("wamid.old", "text", json!({"text": {"body": "replayed"}}));
    old["timestamp"] = secs(NOW.0 - week).into();
    let mut edge = msg(
        "wamid.edge",
        "text",
        json!({"text": {"body": "at the slack"}}),
    );
    edge["timestamp"] = secs(NOW.0 - week + 5 * 60 * 1000).into();
    let mut fresh = msg("wamid.fresh", "text", json!({"text": {"body": "new"}}));
    fresh["timestamp"] = secs(NOW.0 - week + 6 * 60 * 1000).into();
    let body = envelope(vec![change(
        PHONE_ID,
        contact("16505551234", "Sheena"),
        json!([old, edge, fresh]),
    )]);
    let (status, resp) = h.send(meta_post(&body, Some(META_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp, r#"{"accepted":1,"duplicates":0,"ignored":2}"#);
    let ids: Vec<String> = h.messages().into_iter().map(|(_, m)| m.id).collect();
    assert_eq!(ids, ["wamid.fresh"]);
    // The captured fixture (June 2025) is such a message at NOW (2026).
    let (status, resp) = h
        .send(meta_post(
            &fixture("meta_cloud_text.json"),
            Some(META_SECRET),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp, r#"{"accepted":0,"duplicates":0,"ignored":1}"#);
    assert_eq!(h.messages().len(), 1);
}
