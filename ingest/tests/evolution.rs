//! Evolution API v2 through the router: types, groups, LIDs, own messages, events and credentials.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use lull_core::message::{Contact, Reaction, Reply};
use lull_core::{MessageKind, Millis, Provider};
use lull_ingest::auth::make_jwt_hs256;
use serde_json::{json, Value};

const INSTANCE: &str = "ElinaIA";
const USER: &str = "5219991234567@s.whatsapp.net";

fn upsert(id: &str, message: Value) -> Vec<u8> {
    upsert_with_key(
        json!({"remoteJid": USER, "fromMe": false, "id": id}),
        message,
    )
}

fn upsert_with_key(key: Value, message: Value) -> Vec<u8> {
    json!({"event": "messages.upsert", "instance": INSTANCE, "data": {
        "key": key, "pushName": "Cliente", "message": message,
        "messageTimestamp": 1733068800, "source": "android"}})
    .to_string()
    .into_bytes()
}

async fn post_ok(h: &Harness, body: &[u8]) {
    let (status, resp) = h
        .send(evolution_post("/webhook/evolution", body, Some(EVO_TOKEN)))
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
}

#[tokio::test]
async fn fixture_text_is_stored_under_the_instance() {
    let h = Harness::solo();
    let body = fixture("evolution_v2_3_messages_upsert_text_n8n_fixture.json");
    post_ok(&h, &body).await;
    let (k, m) = h.message("TEST_CRITICAL_001");
    assert_eq!(k, key(Provider::Evolution, INSTANCE, USER));
    assert_eq!(m.kind, MessageKind::Text);
    assert!(m.text.unwrap().starts_with("Quiero hablar con un humano"));
    assert_eq!(m.sender.name.as_deref(), Some("Cliente Prueba Crítico"));
    assert_eq!(m.sender.phone.as_deref(), Some("5219991234567"));
    assert_eq!(m.sent_at, Some(Millis(1_733_068_800_000)));
}

#[tokio::test]
async fn every_message_type() {
    let h = Harness::solo();
    let cases = [
        (
            "e.ext",
            json!({"extendedTextMessage": {"text": "as I said", "contextInfo": {"stanzaId": "e.prev", "participant": USER}}}),
        ),
        (
            "e.img",
            json!({"imageMessage": {"url": "https://mmg.whatsapp.net/x.enc", "mimetype": "image/jpeg", "caption": "my pizza"}, "mediaUrl": "https://s3.example/img.jpg"}),
        ),
        (
            "e.vid",
            json!({"videoMessage": {"url": "https://mmg/v", "mimetype": "video/mp4", "caption": "clip"}}),
        ),
        (
            "e.doc",
            json!({"documentMessage": {"url": "https://mmg/d", "mimetype": "application/pdf", "fileName": "order.pdf", "caption": "doc"}}),
        ),
        (
            "e.doccap",
            json!({"documentWithCaptionMessage": {"message": {"documentMessage": {"url": "https://mmg/d2", "mimetype": "application/pdf", "fileName": "f.pdf", "caption": "see"}}}}),
        ),
        (
            "e.ptt",
            json!({"audioMessage": {"url": "https://mmg/a", "mimetype": "audio/ogg; codecs=opus", "ptt": true, "seconds": 4}}),
        ),
        (
            "e.stk",
            json!({"stickerMessage": {"url": "https://mmg/s", "mimetype": "image/webp"}}),
        ),
        (
            "e.loc",
            json!({"locationMessage": {"degreesLatitude": -23.5, "degreesLongitude": -46.6, "name": "Loja", "address": "Av. Paulista"}}),
        ),
        (
            "e.vcard",
            json!({"contactMessage": {"displayName": "Ana", "vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:Ana\nitem1.TEL;waid=5511988887777:+55 11 98888-7777\nEND:VCARD"}}),
        ),
        (
            "e.vcards",
            json!({"contactsArrayMessage": {"contacts": [{"displayName": "A", "vcard": "BEGIN:VCARD\nTEL:+1\nEND:VCARD"}, {"displayName": "B", "vcard": "BEGIN:VCARD\nTEL:+2\nEND:VCARD"}]}}),
        ),
        (
            "e.react",
            json!({"reactionMessage": {"key": {"remoteJid": USER, "fromMe": true, "id": "e.botmsg"}, "text": "\u{2764}"}}),
        ),
        (
            "e.btn",
            json!({"buttonsResponseMessage": {"selectedButtonId": "opt-1", "selectedDisplayText": "Option 1"}}),
        ),
        (
            "e.list",
            json!({"listResponseMessage": {"title": "Large", "singleSelectReply": {"selectedRowId": "row-L"}}}),
        ),
        (
            "e.tpl",
            json!({"templateButtonReplyMessage": {"selectedId": "t-1", "selectedDisplayText": "Yes"}}),
        ),
        (
            "e.poll",
            json!({"pollCreationMessage": {"name": "lunch?"}, "messageContextInfo": {}}),
        ),
    ];
    for (id, message) in &cases {
        post_ok(&h, &upsert(id, message.clone())).await;
    }
    assert_eq!(h.messages().len(), cases.len());
    assert!(h
        .messages()
        .iter()
        .all(|(k, _)| *k == key(Provider::Evolution, INSTANCE, USER)));

    let (_, m) = h.message("e.ext");
    assert_eq!(
        (m.kind, m.text.as_deref(), m.reply_to.as_deref()),
        (MessageKind::Text, Some("as I said"), Some("e.prev"))
    );
    let (_, m) = h.message("e.img");
    assert_eq!(
        (m.kind, m.caption.as_deref()),
        (MessageKind::Image, Some("my pizza"))
    );
    let media = m.media.unwrap();
    assert_eq!(
        media.url.as_deref(),
        Some("https://s3.example/img.jpg"),
        "the fetchable S3 URL wins"
    );
    assert_eq!(media.mime_type.as_deref(), Some("image/jpeg"));
    let (_, m) = h.message("e.vid");
    assert_eq!(
        (m.kind, m.caption.as_deref()),
        (MessageKind::Video, Some("clip"))
    );
    let (_, m) = h.message("e.doc");
    assert_eq!(
        (m.kind, m.caption.as_deref()),
        (MessageKind::Document, Some("doc"))
    );
    assert_eq!(m.media.unwrap().filename.as_deref(), Some("order.pdf"));
    let (_, m) = h.message("e.doccap");
    assert_eq!(
        (m.kind, m.caption.as_deref()),
        (MessageKind::Document, Some("see"))
    );
    assert_eq!(m.media.unwrap().filename.as_deref(), Some("f.pdf"));
    let (_, m) = h.message("e.ptt");
    assert_eq!(m.kind, MessageKind::Audio);
    assert!(m.media.unwrap().voice);
    let (_, m) = h.message("e.stk");
    assert_eq!(m.kind, MessageKind::Sticker);
    let (_, m) = h.message("e.loc");
    let loc = m.location.unwrap();
    assert_eq!(
        (m.kind, loc.latitude, loc.longitude),
        (MessageKind::Location, -23.5, -46.6)
    );
    assert_eq!(loc.name.as_deref(), Some("Loja"));
    let (_, m) = h.message("e.vcard");
    assert_eq!(m.kind, MessageKind::Contacts);
    assert_eq!(
        m.contacts,
        vec![Contact {
            name: Some("Ana".into()),
            phones: vec!["+55 11 98888-7777".into()]
        }]
    );
    let (_, m) = h.message("e.vcards");
    assert_eq!(m.contacts.len(), 2);
    let (_, m) = h.message("e.react");
    assert_eq!(m.kind, MessageKind::Reaction);
    assert_eq!(
        m.reaction,
        Some(Reaction {
            message_id: "e.botmsg".into(),
            emoji: Some("\u{2764}".into())
        })
    );
    let (_, m) = h.message("e.btn");
    assert_eq!(
        (m.kind, m.reply),
        (
            MessageKind::Button,
            Some(Reply {
                id: "opt-1".into(),
                title: "Option 1".into()
            })
        )
    );
    let (_, m) = h.message("e.list");
    assert_eq!(
        (m.kind, m.reply),
        (
            MessageKind::Interactive,
            Some(Reply {
                id: "row-L".into(),
                title: "Large".into()
            })
        )
    );
    let (_, m) = h.message("e.tpl");
    assert_eq!(
        m.reply,
        Some(Reply {
            id: "t-1".into(),
            title: "Yes".into()
        })
    );
    let (_, m) = h.message("e.poll");
    assert_eq!(
        (m.kind, m.provider_type.as_deref()),
        (MessageKind::Other, Some("pollCreationMessage"))
    );
}

#[tokio::test]
async fn a_group_is_one_conversation_with_the_author_on_each_message() {
    let h = Harness::solo();
    let group = "120363025246125888@g.us";
    for (id, author) in [
        ("g.1", "5511111111111@s.whatsapp.net"),
        ("g.2", "5522222222222@s.whatsapp.net"),
    ] {
        let body = upsert_with_key(
            json!({"remoteJid": group, "fromMe": false, "id": id, "participant": author}),
            json!({"conversation": "hi"}),
        );
        post_ok(&h, &body).await;
    }
    let conv = key(Provider::Evolution, INSTANCE, group).in_group(group);
    let (k1, m1) = h.message("g.1");
    let (k2, m2) = h.message("g.2");
    assert_eq!((&k1, &k2), (&conv, &conv));
    assert_eq!(m1.sender.id, "5511111111111@s.whatsapp.net");
    assert_eq!(m2.sender.phone.as_deref(), Some("5522222222222"));
}

#[tokio::test]
async fn lid_addressing_prefers_the_phone_jid_so_one_user_is_one_conversation() {
    let h = Harness::solo();
    let lid = "128939129381923@lid";
    post_ok(&h, &upsert_with_key(
        json!({"remoteJid": lid, "remoteJidAlt": USER, "addressingMode": "lid", "fromMe": false, "id": "l.1"}),
        json!({"conversation": "from lid"}),
    )).await;
    post_ok(&h, &upsert("l.2", json!({"conversation": "from pn"}))).await;
    let conv = key(Provider::Evolution, INSTANCE, USER);
    let (k1, m1) = h.message("l.1");
    assert_eq!(k1, conv);
    assert_eq!(h.message("l.2").0, conv);
    assert_eq!(m1.sender.alt_id.as_deref(), Some(lid));
}

#[tokio::test]
async fn own_messages_and_status_broadcasts_are_ignored_unless_the_tenant_opts_in() {
    let h = Harness::solo();
    let own = upsert_with_key(
        json!({"remoteJid": USER, "fromMe": true, "id": "o.1"}),
        json!({"conversation": "bot said"}),
    );
    let status = upsert_with_key(
        json!({"remoteJid": "status@broadcast", "fromMe": false, "id": "s.1", "participant": USER}),
        json!({"conversation": "my status"}),
    );
    for body in [&own, &status] {
        let (code, resp) = h
            .send(evolution_post("/webhook/evolution", body, Some(EVO_TOKEN)))
            .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(resp, r#"{"accepted":0,"duplicates":0,"ignored":1}"#);
    }
    h.assert_empty();

    let mut t = solo_tenant();
    t.evolution.accept_from_me = true;
    t.evolution.accept_status_broadcast = true;
    let h = Harness::with(lull_ingest::MemoryDirectory::single(t), Default::default());
    post_ok(&h, &own).await;
    post_ok(&h, &status).await;
    assert_eq!(h.messages().len(), 2);
}

#[tokio::test]
async fn other_events_are_acknowledged_without_buffering() {
    let h = Harness::solo();
    let body =
        json!({"event": "connection.update", "instance": INSTANCE, "data": {"state": "open"}});
    let (code, resp) = h
        .send(evolution_post(
            "/webhook/evolution/connection-update",
            body.to_string().as_bytes(),
            Some(EVO_TOKEN),
        ))
        .await;
    assert_eq!(
        (code, resp.as_str()),
        (
            StatusCode::OK,
            r#"{"accepted":0,"duplicates":0,"ignored":1}"#
        )
    );
    h.assert_empty();
}

#[tokio::test]
async fn dedupe_is_per_instance() {
    let h = Harness::solo();
    let a = upsert("same-id", json!({"conversation": "x"}));
    let b = String::from_utf8(a.clone())
        .unwrap()
        .replace(INSTANCE, "OtherInstance");
    post_ok(&h, &a).await;
    post_ok(&h, b.as_bytes()).await;
    let (code, resp) = h
        .send(evolution_post("/webhook/evolution", &a, Some(EVO_TOKEN)))
        .await;
    assert_eq!(
        (code, resp.as_str()),
        (
            StatusCode::OK,
            r#"{"accepted":0,"duplicates":1,"ignored":0}"#
        )
    );
    let keys: Vec<_> = h.messages().into_iter().map(|(k, _)| k.account).collect();
    assert_eq!(
        keys,
        vec!["ElinaIA".to_string(), "OtherInstance".to_string()]
    );
}

#[tokio::test]
async fn every_credential_form_is_accepted_and_wrong_ones_are_401() {
    let h = Harness::solo();
    let body = upsert("c.1", json!({"conversation": "x"}));
    let post = |path: &str, header: Option<(&str, String)>| {
        let mut b = Request::post(path).header("content-type", "application/json");
        if let Some((k, v)) = header {
            b = b.header(k, v);
        }
        b.body(Body::from(body.clone())).unwrap()
    };
    let jwt = |exp: u64| {
        make_jwt_hs256(
            EVO_JWT_KEY,
            &json!({"app": "evolution", "exp": exp, "iat": 1}),
        )
    };
    let future = 4_000_000_000u64;
    let ok = [
        post(
            "/webhook/evolution",
            Some(("apikey", EVO_TOKEN.to_string())),
        ),
        post(
            "/webhook/evolution/messages-upsert",
            Some(("apikey", EVO_TOKEN.to_string())),
        ),
        post(&format!("/webhook/evolution/k/{EVO_TOKEN}"), None),
        post(
            &format!("/webhook/evolution/k/{EVO_TOKEN}/messages-upsert"),
            None,
        ),
        post(
            "/webhook/evolution",
            Some(("authorization", format!("Bearer {EVO_TOKEN}"))),
        ),
        post(
            "/webhook/evolution",
            Some(("authorization", format!("Bearer {}", jwt(future)))),
        ),
    ];
    for req in ok {
        let path = req.uri().to_string();
        let (code, resp) = h.send(req).await;
        assert_eq!(code, StatusCode::OK, "{path}: {resp}");
    }
    let h = Harness::solo();
    let bad = [
        post("/webhook/evolution", None),
        post("/webhook/evolution", Some(("apikey", "wrong".to_string()))),
        post("/webhook/evolution/k/wrong", None),
        post("/webhook/evolution/k/wrong/messages-upsert", None),
        post(
            "/webhook/evolution",
            Some(("authorization", format!("Bearer {}", jwt(1000)))),
        ),
        post(
            "/webhook/evolution",
            Some((
                "authorization",
                format!(
                    "Bearer {}",
                    make_jwt_hs256("other", &json!({"exp": future}))
                ),
            )),
        ),
    ];
    for req in bad {
        let path = req.uri().to_string();
        let (code, _) = h.send(req).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{path}");
    }
    h.assert_empty();
}

/// A person's `fromMe` message (the captured shape, `source: ios`) pauses the conversation and
/// is not buffered; the bot's own reply through the API (`source: web`) pauses nothing.
#[tokio::test]
async fn an_operator_message_pauses_the_conversation_and_the_bots_reply_does_not() {
    let h = Harness::solo();
    post_ok(
        &h,
        &upsert("u.1", json!({"conversation": "quiero un humano"})),
    )
    .await;
    let bot = json!({"event": "messages.upsert", "instance": INSTANCE, "data": {
        "key": {"remoteJid": USER, "fromMe": true, "id": "3EB0AABBCCDDEEFF001122"},
        "message": {"conversation": "un momento"}, "source": "web"}});
    post_ok(&h, bot.to_string().as_bytes()).await;
    let conv = || {
        h.store
            .conversations()
            .into_iter()
            .next()
            .expect("conversation")
    };
    assert_eq!(conv().turn.pause, None, "the bot's reply pauses nothing");
    let (code, resp) = h
        .send(evolution_post(
            "/webhook/evolution",
            &fixture("evolution_v2_messages_upsert_from_me_operator.json"),
            Some(EVO_TOKEN),
        ))
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(resp, r#"{"accepted":0,"duplicates":0,"ignored":1}"#);
    let pause = conv().turn.pause.expect("paused");
    assert_eq!(pause.reason, lull_core::turn::PauseReason::Operator);
    assert_eq!(pause.until, Millis(NOW.0 + 30 * 60 * 1000));
    assert_eq!(h.messages().len(), 1, "only the user's message is buffered");
}

/// `presence.update` through the route: nothing for a conversation without a window or a tenant
/// without `typing`; with both, one write of the presence, never a message.
#[tokio::test]
async fn presence_is_applied_only_to_open_windows_of_typing_tenants() {
    async fn send(h: &Harness) -> (StatusCode, String) {
        let presence = fixture("evolution_v2_presence_update_composing.json");
        h.send(evolution_post(
            "/webhook/evolution",
            &presence,
            Some(EVO_TOKEN),
        ))
        .await
    }
    let h = Harness::solo();
    let (code, resp) = send(&h).await;
    assert_eq!(
        (code, resp.as_str()),
        (StatusCode::OK, r#"{"presence":0,"ignored":0}"#)
    );
    h.assert_empty();

    let mut t = solo_tenant();
    t.policy.typing = Some(lull_core::policy::Typing::default());
    let h = Harness::with(lull_ingest::MemoryDirectory::single(t), Default::default());
    let (_, resp) = send(&h).await;
    assert_eq!(resp, r#"{"presence":0,"ignored":0}"#, "no window yet");
    h.assert_empty();
    post_ok(&h, &upsert("u.1", json!({"conversation": "hola"}))).await;
    let ver = h.store.conversations()[0].ver;
    let (_, resp) = send(&h).await;
    assert_eq!(resp, r#"{"presence":1,"ignored":0}"#);
    let c = &h.store.conversations()[0];
    assert_eq!(c.ver, ver + 1, "one write");
    assert_eq!(
        c.turn.presence.map(|p| p.kind),
        Some(lull_core::turn::PresenceKind::Composing)
    );
    assert_eq!(h.messages().len(), 1, "presence is never a message");
    // The same event again (same gateway time): nothing to write.
    let (_, resp) = send(&h).await;
    assert_eq!(resp, r#"{"presence":0,"ignored":0}"#);
    assert_eq!(h.store.conversations()[0].ver, ver + 1);
}

/// A presence that names the chat by its LID (`@lid`, no phone JID in the event) reaches the
/// conversation its messages go to, keyed on the phone JID of `remoteJidAlt`: the LID-addressed
/// message taught the pair. Before any message of that user, it is not mapped and finds no
/// window (nothing written).
#[tokio::test]
async fn a_presence_by_lid_reaches_the_phone_keyed_conversation() {
    let mut t = solo_tenant();
    t.policy.typing = Some(lull_core::policy::Typing::default());
    let h = Harness::with(lull_ingest::MemoryDirectory::single(t), Default::default());
    let presence = fixture("evolution_v2_presence_update_lid_paused.json");
    let send_presence = || {
        h.send(evolution_post(
            "/webhook/evolution",
            &presence,
            Some(EVO_TOKEN),
        ))
    };
    // A message keyed on the phone JID without its LID: nothing learned, nothing applied.
    post_ok(&h, &upsert("p.1", json!({"conversation": "hola"}))).await;
    let (_, resp) = send_presence().await;
    assert_eq!(resp, r#"{"presence":0,"ignored":0}"#, "LID not mapped yet");
    assert_eq!(h.store.conversations().len(), 1, "no LID conversation");
    // The LID-addressed message of the same user: same conversation, and the pair is learned.
    let (code, resp) = h
        .send(evolution_post(
            "/webhook/evolution",
            &fixture("evolution_v2_messages_upsert_lid.json"),
            Some(EVO_TOKEN),
        ))
        .await;
    assert_eq!(code, StatusCode::OK, "{resp}");
    let (k, m) = h.message("3A5F0C1D2E3F40516273");
    assert_eq!(k, key(Provider::Evolution, INSTANCE, USER));
    assert_eq!(m.sender.alt_id.as_deref(), Some("140913951141911@lid"));
    let (code, resp) = send_presence().await;
    assert_eq!(
        (code, resp.as_str()),
        (StatusCode::OK, r#"{"presence":1,"ignored":0}"#)
    );
    let convs = h.store.conversations();
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].key, key(Provider::Evolution, INSTANCE, USER));
    assert_eq!(
        convs[0].turn.presence.map(|p| p.kind),
        Some(lull_core::turn::PresenceKind::Paused)
    );
    // Another instance's LID is not mapped by this one's messages.
    let other = String::from_utf8(presence.clone())
        .unwrap()
        .replace("\"ElinaIA\"", "\"OtraInstancia\"");
    let (_, resp) = h
        .send(evolution_post(
            "/webhook/evolution",
            other.as_bytes(),
            Some(EVO_TOKEN),
        ))
        .await;
    assert_eq!(resp, r#"{"presence":0,"ignored":0}"#);
}
