//! WAHA through the router (`POST /webhook/waha`): messages, the session's own messages,
//! presence, HMAC-SHA512 signatures and tenants, from WAHA's payload shapes
//! (fixtures/README.md names where each one comes from).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use lull_core::turn::{PauseReason, PresenceKind};
use lull_core::{MessageKind, Millis, Provider};
use lull_ingest::{MemoryDirectory, Secrets, Tenant, WahaSettings};
use serde_json::{json, Value};

const SESSION: &str = "default";
const USER: &str = "5219991234567@c.us";

fn message(event: &str, id: &str, payload: Value) -> Vec<u8> {
    let mut p = json!({"id": id, "timestamp": 1764763202, "from": USER, "fromMe": false,
        "source": "app", "to": "5215550000000@c.us", "body": "hola", "hasMedia": false});
    for (k, v) in payload.as_object().cloned().unwrap_or_default() {
        p[k] = v;
    }
    json!({"id": "evt_1", "timestamp": 1764763202100u64, "event": event, "session": SESSION,
        "payload": p, "engine": "NOWEB"})
    .to_string()
    .into_bytes()
}

async fn post(h: &Harness, body: &[u8]) -> (StatusCode, String) {
    h.send(waha_post(body, Some(WAHA_KEY))).await
}

#[tokio::test]
async fn fixture_text_is_stored_under_the_session_and_chat() {
    let h = Harness::solo();
    let (code, resp) = post(&h, &fixture("waha_message_text.json")).await;
    assert_eq!(code, StatusCode::OK, "{resp}");
    assert_eq!(resp, r#"{"accepted":1,"duplicates":0,"ignored":0}"#);
    let (k, m) = h.message("false_5219991234567@c.us_3EB0C767D26A1D2E5F4A");
    assert_eq!(k, key(Provider::Waha, SESSION, USER));
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(m.text.as_deref(), Some("Hola, quiero dos pizzas"));
    assert_eq!(m.sender.id, USER);
    assert_eq!(m.sender.phone.as_deref(), Some("5219991234567"));
    assert_eq!(m.sent_at, Some(Millis(1_764_763_202_000)));
}

/// A tenant subscribed to both `message` and `message.any` gets each incoming message twice:
/// the second is a duplicate, not a second message.
#[tokio::test]
async fn message_and_message_any_of_one_message_are_one_message() {
    let h = Harness::solo();
    let (_, resp) = post(&h, &message("message", "false_x_1", json!({}))).await;
    assert_eq!(resp, r#"{"accepted":1,"duplicates":0,"ignored":0}"#);
    let (_, resp) = post(&h, &message("message.any", "false_x_1", json!({}))).await;
    assert_eq!(resp, r#"{"accepted":0,"duplicates":1,"ignored":0}"#);
    assert_eq!(h.messages().len(), 1);
}

#[tokio::test]
async fn media_groups_and_replies() {
    let h = Harness::solo();
    let group = "120363041967849074@g.us";
    let body = message(
        "message",
        "false_120363041967849074@g.us_AAA_5219997654321@c.us",
        json!({"from": group, "participant": "5219997654321@c.us", "body": "this one",
            "hasMedia": true, "replyTo": {"id": "false_x_0", "body": "menu"},
            "media": {"url": "http://waha:3000/api/files/default/AAA.oga",
                      "mimetype": "audio/ogg; codecs=opus", "filename": null, "error": null}}),
    );
    let (code, resp) = post(&h, &body).await;
    assert_eq!(code, StatusCode::OK, "{resp}");
    let (k, m) = h.message("false_120363041967849074@g.us_AAA_5219997654321@c.us");
    assert_eq!(k, key(Provider::Waha, SESSION, group).in_group(group));
    assert_eq!(m.sender.id, "5219997654321@c.us");
    assert_eq!(m.kind, MessageKind::Audio);
    assert_eq!(m.caption.as_deref(), Some("this one"));
    assert_eq!(m.reply_to.as_deref(), Some("false_x_0"));
    let media = m.media.expect("media");
    assert_eq!(
        media.url.as_deref(),
        Some("http://waha:3000/api/files/default/AAA.oga")
    );
}

/// A message typed in the WhatsApp app on the business side (`message.any`, `fromMe`,
/// `source: app`) pauses the conversation and is not buffered; the bot's reply through WAHA's
/// API (`source: api`) pauses nothing.
#[tokio::test]
async fn an_operator_message_pauses_the_conversation_and_the_bots_reply_does_not() {
    let h = Harness::solo();
    post(&h, &fixture("waha_message_text.json")).await;
    let own = |id: &str, source: &str| {
        message(
            "message.any",
            id,
            json!({"fromMe": true, "source": source, "from": "5215550000000@c.us", "to": USER}),
        )
    };
    let (_, resp) = post(&h, &own("true_x_api", "api")).await;
    assert_eq!(resp, r#"{"accepted":0,"duplicates":0,"ignored":1}"#);
    let conv = || h.store.conversations().into_iter().next().expect("conv");
    assert_eq!(conv().turn.pause, None, "the bot's reply pauses nothing");
    let (code, resp) = post(&h, &fixture("waha_message_any_from_me_app.json")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(resp, r#"{"accepted":0,"duplicates":0,"ignored":1}"#);
    let pause = conv().turn.pause.expect("paused");
    assert_eq!(pause.reason, PauseReason::Operator);
    assert_eq!(pause.until, Millis(NOW.0 + 30 * 60 * 1000));
    assert_eq!(h.messages().len(), 1, "only the user's message is buffered");
}

/// WAHA's HMAC signs no timestamp: one captured operator message, sent again every pause
/// period, would hold the conversation forever. Its id is deduped like a message's: a replay
/// neither pauses again nor extends the pause, within the dedupe horizon.
#[tokio::test]
async fn a_replayed_operator_message_neither_pauses_again_nor_extends() {
    let h = Harness::solo();
    post(&h, &fixture("waha_message_text.json")).await;
    let operator = fixture("waha_message_any_from_me_app.json");
    let (code, _) = post(&h, &operator).await;
    assert_eq!(code, StatusCode::OK);
    let conv = || h.store.conversations().into_iter().next().expect("conv");
    let first = conv().turn.pause.expect("paused");
    assert_eq!(first.until, Millis(NOW.0 + 30 * 60 * 1000));
    // The same signed request, 29 minutes later: answered 200 (a valid request), no effect.
    h.clock.set(Millis(NOW.0 + 29 * 60 * 1000));
    let (code, resp) = post(&h, &operator).await;
    assert_eq!(code, StatusCode::OK, "{resp}");
    assert_eq!(
        conv().turn.pause,
        Some(first),
        "the replay extended the pause"
    );
    // After the pause ran out, and a day later: it does not pause again.
    for later in [31 * 60 * 1000, 24 * 3600 * 1000] {
        h.clock.set(Millis(NOW.0 + later));
        post(&h, &operator).await;
        assert_eq!(conv().turn.pause, Some(first), "the replay paused again");
    }
    // A new operator message still pauses.
    let other = String::from_utf8(operator.clone()).expect("utf-8").replace(
        "true_5219991234567@c.us_3EB0",
        "true_5219991234567@c.us_4FC1",
    );
    assert_ne!(other.as_bytes(), &operator[..], "a new id");
    post(&h, other.as_bytes()).await;
    assert_eq!(
        conv().turn.pause.expect("paused").until,
        Millis(NOW.0 + 24 * 3600 * 1000 + 30 * 60 * 1000)
    );
}

/// `presence.update` (WAHA's `typing`) reaches the conversation its messages go to, for a
/// typing tenant with an open window; it is never a message.
#[tokio::test]
async fn presence_shapes_the_open_window_of_a_typing_tenant() {
    let mut t = solo_tenant();
    t.policy.typing = Some(lull_core::policy::Typing::default());
    let h = Harness::with(MemoryDirectory::single(t), Default::default());
    let presence = fixture("waha_presence_update_typing.json");
    let (code, resp) = post(&h, &presence).await;
    assert_eq!(
        (code, resp.as_str()),
        (StatusCode::OK, r#"{"presence":0,"ignored":0}"#)
    );
    h.assert_empty();
    post(&h, &fixture("waha_message_text.json")).await;
    let (_, resp) = post(&h, &presence).await;
    assert_eq!(resp, r#"{"presence":1,"ignored":0}"#);
    let c = &h.store.conversations()[0];
    assert_eq!(c.key, key(Provider::Waha, SESSION, USER));
    assert_eq!(
        c.turn.presence.map(|p| p.kind),
        Some(PresenceKind::Composing)
    );
    assert_eq!(h.messages().len(), 1);
    // An unknown presence value is skipped and counted, not an error.
    let odd = String::from_utf8(presence)
        .unwrap()
        .replace("\"typing\"", "\"dancing\"");
    let (code, resp) = post(&h, odd.as_bytes()).await;
    assert_eq!(
        (code, resp.as_str()),
        (StatusCode::OK, r#"{"presence":0,"ignored":1}"#)
    );
}

#[tokio::test]
async fn other_events_are_acknowledged() {
    let h = Harness::solo();
    let ack = json!({"event": "message.ack", "session": SESSION, "payload": {
        "id": "true_x_1", "from": USER, "fromMe": true, "ack": 3, "ackName": "READ"}});
    let (code, resp) = post(&h, ack.to_string().as_bytes()).await;
    assert_eq!(
        (code, resp.as_str()),
        (
            StatusCode::OK,
            r#"{"accepted":0,"duplicates":0,"ignored":1}"#
        )
    );
    h.assert_empty();
}

/// HMAC-SHA512 with the tenant's key: absent (refused before the body is read), wrong, another
/// algorithm, or no key configured are all 401 and store nothing.
#[tokio::test]
async fn signatures_are_checked_and_refusals_store_nothing() {
    let h = Harness::solo();
    let body = fixture("waha_message_text.json");
    let (code, resp) = h.send(waha_post(&body, None)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(resp.contains("X-Webhook-Hmac"), "{resp}");
    let (code, resp) = h.send(waha_post(&body, Some("not-the-key"))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(resp.contains("does not match"), "{resp}");
    let sha256 = Request::post("/webhook/waha")
        .header("content-type", "application/json")
        .header(
            "x-webhook-hmac",
            lull_ingest::auth::sign_sha512_hex(WAHA_KEY, &body),
        )
        .header("x-webhook-hmac-algorithm", "sha256")
        .body(Body::from(body.clone()))
        .unwrap();
    let (code, resp) = h.send(sha256).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(resp.contains("sha512"), "{resp}");
    // A body altered after signing.
    let mut req = waha_post(&body, Some(WAHA_KEY));
    *req.body_mut() = Body::from(
        String::from_utf8(body.clone())
            .unwrap()
            .replace("dos", "tres"),
    );
    assert_eq!(h.send(req).await.0, StatusCode::UNAUTHORIZED);
    h.assert_empty();
    // A tenant with no WAHA key: 401 naming the setting.
    let mut t = solo_tenant();
    t.waha = WahaSettings::default();
    let h = Harness::with(MemoryDirectory::single(t), Default::default());
    let (code, resp) = h.send(waha_post(&body, None)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(resp.contains("LULL_WAHA_HMAC_KEY"), "{resp}");
    h.assert_empty();
}

/// A chat whose messages come with the phone JID but whose presence names its LID: WAHA's
/// NOWEB engine forwards Baileys' key in `payload._data.key`, whose `remoteJidAlt` names the
/// LID, and the accepted message teaches the pair, so the LID presence reaches the phone-keyed
/// conversation. Before that message (or from an engine without the key) it stays unmapped.
#[tokio::test]
async fn a_noweb_message_teaches_the_lid_its_presence_names() {
    let mut t = solo_tenant();
    t.policy.typing = Some(lull_core::policy::Typing::default());
    let h = Harness::with(MemoryDirectory::single(t), Default::default());
    let lid = "140913951141911@lid";
    let presence = String::from_utf8(fixture("waha_presence_update_typing.json"))
        .unwrap()
        .replace(USER, lid);
    // A WEBJS message (no key in `_data`) teaches nothing: the LID presence finds no window.
    post(&h, &fixture("waha_message_text.json")).await;
    let (_, resp) = post(&h, presence.as_bytes()).await;
    assert_eq!(resp, r#"{"presence":0,"ignored":0}"#, "LID not mapped yet");
    // The NOWEB message of the same chat names the LID beside the phone JID.
    let (code, resp) = post(&h, &fixture("waha_message_noweb_lid_alt.json")).await;
    assert_eq!(code, StatusCode::OK, "{resp}");
    let (_, resp) = post(&h, presence.as_bytes()).await;
    assert_eq!(resp, r#"{"presence":1,"ignored":0}"#);
    let convs = h.store.conversations();
    assert_eq!(convs.len(), 1, "no LID conversation");
    assert_eq!(convs[0].key, key(Provider::Waha, SESSION, USER));
    assert_eq!(
        convs[0].turn.presence.map(|p| p.kind),
        Some(PresenceKind::Composing)
    );
}

#[tokio::test]
async fn bad_requests_get_a_reason() {
    let h = Harness::solo();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"[".to_vec(), "JSON"),
        (br#"{"event":"message","payload":{}}"#.to_vec(), "session"),
        (
            br#"{"event":"message","session":"default","payload":"x"}"#.to_vec(),
            "not an object",
        ),
    ];
    for (body, reason) in cases {
        let (code, resp) = post(&h, &body).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{reason}: {resp}");
        assert!(resp.contains(reason), "{reason}: {resp}");
    }
    // Inside a valid envelope the message is skipped (counted), never a 400: no chat, an id
    // over the store's limit.
    for body in [
        message("message", "false_x_1", json!({"from": null})),
        message("message", &"i".repeat(300), json!({})),
    ] {
        let (code, resp) = post(&h, &body).await;
        assert_eq!(
            (code, resp.as_str()),
            (
                StatusCode::OK,
                r#"{"accepted":0,"duplicates":0,"ignored":1}"#
            )
        );
    }
    let wrong_type = Request::post("/webhook/waha")
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(
        h.send(wrong_type).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    h.assert_empty();
}

/// Several tenants: the session names the tenant and its key; another tenant's key or an unknown
/// session is refused.
#[tokio::test]
async fn the_session_names_the_tenant_and_its_key() {
    let tenant = |id: &str, session: &str, k: &str| Tenant {
        id: id.into(),
        waha: WahaSettings {
            sessions: vec![session.into()],
            hmac_keys: Secrets::new([k]),
        },
        ..Default::default()
    };
    let dir = MemoryDirectory::new(vec![
        tenant("pizzeria", "default", "key-a"),
        tenant("barber", "barber", "key-b"),
    ])
    .unwrap();
    let h = Harness::with(dir, Default::default());
    let body = fixture("waha_message_text.json");
    assert_eq!(
        h.send(waha_post(&body, Some("key-b"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    h.assert_empty();
    let unknown = String::from_utf8(body.clone())
        .unwrap()
        .replace("\"session\": \"default\"", "\"session\": \"other\"");
    assert_eq!(
        h.send(waha_post(unknown.as_bytes(), Some("key-a"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    h.assert_empty();
    let (code, resp) = h.send(waha_post(&body, Some("key-a"))).await;
    assert_eq!(code, StatusCode::OK, "{resp}");
    assert_eq!(h.messages()[0].0.account, "default");
}

/// One presence body with 64 entries for one conversation (WAHA keeps the array's order;
/// `typing` and `paused` alternating, the last one `typing`): only the last is applied, so the
/// record is written once, not 64 times (every conditional write bumps its version by one), and
/// the 63 superseded entries are counted as ignored.
#[tokio::test]
async fn a_presence_body_writes_each_conversation_once_with_its_last_entry() {
    let mut t = solo_tenant();
    t.policy.typing = Some(lull_core::policy::Typing::default());
    let h = Harness::with(MemoryDirectory::single(t), Default::default());
    post(&h, &fixture("waha_message_text.json")).await;
    let writes_before = h.store.conversations()[0].ver;
    let mut body: Value =
        serde_json::from_slice(&fixture("waha_presence_update_typing.json")).unwrap();
    let entries: Vec<Value> = (0..lull_ingest::parse::presence::MAX_PRESENCES)
        .map(|i| {
            let kind = if i % 2 == 0 { "paused" } else { "typing" };
            json!({"participant": USER, "lastKnownPresence": kind, "lastSeen": null})
        })
        .collect();
    body["payload"]["presences"] = Value::Array(entries);
    let (code, resp) = post(&h, body.to_string().as_bytes()).await;
    assert_eq!(
        (code, resp.as_str()),
        (StatusCode::OK, r#"{"presence":1,"ignored":63}"#)
    );
    let c = &h.store.conversations()[0];
    assert_eq!(c.ver - writes_before, 1, "one store write for 64 entries");
    assert_eq!(
        c.turn.presence.map(|p| p.kind),
        Some(PresenceKind::Composing),
        "the last entry's state"
    );
}
