//! Inside a valid envelope every item is kept or skipped by a rule, never the reason the rest
//! are refused; edits, unsends and Business-app echoes of every gateway, from the providers'
//! payload shapes (fixtures/README.md names where each one comes from).

mod common;

use axum::http::StatusCode;
use common::*;
use lull_core::message::{Reply, Target};
use lull_core::turn::PauseReason;
use lull_core::{MessageKind, Millis, Provider};
use lull_ingest::parse::{self, OptIn, MAX_ITEMS};
use serde_json::json;

const PHONE_ID: &str = "106540352242922";
const TEXT_ID: &str = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=";

fn target(id: &str) -> Option<Target> {
    Some(Target {
        message_id: id.into(),
        batch_id: None,
    })
}

/// Issue 25: two good messages and an `interactive` one without its object (Meta sends such
/// with an `errors` array) used to be a 400, and Meta's retries of the whole POST then lost all
/// three. Now: 200, all three stored, the odd one as `other`.
#[tokio::test]
async fn one_odd_meta_message_is_kept_as_other_and_the_post_is_accepted() {
    let h = Harness::solo();
    let (status, resp) = h
        .send(meta_post(
            &fixture("meta_cloud_interactive_without_object.json"),
            Some(META_SECRET),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp, r#"{"accepted":3,"duplicates":0,"ignored":0}"#);
    let texts: Vec<_> = h
        .messages()
        .into_iter()
        .map(|(_, m)| (m.kind, m.text, m.provider_type))
        .collect();
    assert_eq!(
        texts,
        vec![
            (MessageKind::Text, Some("2 pizzas".into()), None),
            (MessageKind::Other, None, Some("interactive".into())),
            (MessageKind::Text, Some("one vegan".into()), None),
        ],
        "body order, the odd one kept with what could be read"
    );
    let (k, m) = h.message("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQ2");
    assert_eq!(k, key(Provider::Meta, PHONE_ID, "16505551234"));
    assert_eq!(m.sender.name.as_deref(), Some("Sheena Nelson"));
    assert_eq!(m.sent_at, Some(Millis(1_749_416_384_000)));
    let parsed =
        parse::meta::parse(&fixture("meta_cloud_interactive_without_object.json")).unwrap();
    assert_eq!(parsed.partial, ["missing_object"], "counted as partial");
}

/// Every odd item of a valid envelope, on every gateway carrying several: kept (as `other`) or
/// skipped by its rule, counted, and the rest stored.
#[tokio::test]
async fn odd_items_are_kept_or_skipped_on_every_route_and_the_rest_stored() {
    let meta = |msgs: serde_json::Value| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
            {"field": "messages", "value": {"metadata": {"phone_number_id": "111"},
             "messages": msgs}}]}]})
        .to_string()
        .into_bytes()
    };
    let good = json!({"from": "1555", "id": "good", "timestamp": "1", "type": "text", "text": {"body": "ok"}});
    let cases: Vec<(&str, axum::http::Request<axum::body::Body>, &str, usize)> = vec![
        (
            "text without its text object",
            meta_post(&meta(json!([good, {"from": "1555", "id": "odd", "timestamp": "1", "type": "text"}])), Some(META_SECRET)),
            r#"{"accepted":2,"duplicates":0,"ignored":0}"#,
            2,
        ),
        (
            "type of the wrong JSON type",
            meta_post(&meta(json!([good, {"from": "1555", "id": "odd", "type": 7}])), Some(META_SECRET)),
            r#"{"accepted":2,"duplicates":0,"ignored":0}"#,
            2,
        ),
        (
            "a numeric id is no id: skipped",
            meta_post(&meta(json!([good, {"from": "1555", "id": 17, "type": "text", "text": {"body": "x"}}])), Some(META_SECRET)),
            r#"{"accepted":1,"duplicates":0,"ignored":1}"#,
            1,
        ),
        (
            "no sender: skipped",
            meta_post(&meta(json!([good, {"id": "odd", "type": "text", "text": {"body": "x"}}])), Some(META_SECRET)),
            r#"{"accepted":1,"duplicates":0,"ignored":1}"#,
            1,
        ),
        (
            "a message that is not an object: skipped",
            meta_post(&meta(json!([good, "hello"])), Some(META_SECRET)),
            r#"{"accepted":1,"duplicates":0,"ignored":1}"#,
            1,
        ),
        (
            "a location at NaN-free garbage",
            meta_post(&meta(json!([good, {"from": "1555", "id": "odd", "type": "location", "location": {"latitude": "north"}}])), Some(META_SECRET)),
            r#"{"accepted":2,"duplicates":0,"ignored":0}"#,
            2,
        ),
        (
            "generic: unknown kind kept as other",
            generic_post(br#"{"account":"a","messages":[{"id":"1","user":"u","text":"hi"},{"id":"2","user":"u","kind":"hologram","text":"x"}]}"#, Some(GENERIC_SECRET)),
            r#"{"accepted":2,"duplicates":0,"ignored":0}"#,
            2,
        ),
        (
            "generic: empty id skipped",
            generic_post(br#"{"account":"a","messages":[{"id":"1","user":"u","text":"hi"},{"id":" ","user":"u"}]}"#, Some(GENERIC_SECRET)),
            r#"{"accepted":1,"duplicates":0,"ignored":1}"#,
            1,
        ),
        (
            "evolution: key without id skipped",
            evolution_post("/webhook/evolution", br#"{"event":"messages.upsert","instance":"i","data":[{"key":{"remoteJid":"1@s.whatsapp.net","id":"a"},"message":{"conversation":"hi"}},{"key":{"remoteJid":"1@s.whatsapp.net"}}]}"#, Some(EVO_TOKEN)),
            r#"{"accepted":1,"duplicates":0,"ignored":1}"#,
            1,
        ),
        (
            "evolution: content not readable kept as other",
            evolution_post("/webhook/evolution", br#"{"event":"messages.upsert","instance":"i","data":[{"key":{"remoteJid":"1@s.whatsapp.net","id":"a"},"message":{"conversation":"hi"}},{"key":{"remoteJid":"1@s.whatsapp.net","id":"b"},"pushName":7,"message":{"imageMessage":{"caption":7}}}]}"#, Some(EVO_TOKEN)),
            r#"{"accepted":2,"duplicates":0,"ignored":0}"#,
            2,
        ),
    ];
    for (name, req, expected, stored) in cases {
        let h = Harness::solo();
        let (status, resp) = h.send(req).await;
        assert_eq!(
            (status, resp.as_str()),
            (StatusCode::OK, expected),
            "{name}"
        );
        assert_eq!(h.messages().len(), stored, "{name}");
    }
}

/// A message too large for a window is kept without its content (`other`, `too_large`): the
/// others of its POST are stored.
#[tokio::test]
async fn a_message_too_large_for_a_window_is_kept_without_its_content() {
    let h = Harness::solo();
    let big = "a".repeat(3 * 1024 * 1024);
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"metadata": {"phone_number_id": "111"}, "messages": [
            {"from": "1555", "id": "big", "timestamp": "1", "type": "text", "text": {"body": big}},
            {"from": "1555", "id": "small", "timestamp": "1", "type": "text", "text": {"body": "hi"}}]}}]}]});
    let (status, resp) = h
        .send(meta_post(body.to_string().as_bytes(), Some(META_SECRET)))
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let (_, m) = h.message("big");
    assert_eq!(
        (m.kind, m.text, m.provider_type.as_deref()),
        (MessageKind::Other, None, Some("too_large"))
    );
    assert_eq!(h.message("small").1.text.as_deref(), Some("hi"));
}

/// Caps apply while reading: a body with more messages than the limit is refused (413) and
/// what is beyond the cap is counted, not built; contact cards beyond 64 are skipped.
#[test]
fn parsers_stop_at_their_caps_while_reading() {
    let msgs: Vec<_> = (0..MAX_ITEMS + 500)
        .map(
            |i| json!({"from": "1", "id": format!("w.{i}"), "type": "text", "text": {"body": "x"}}),
        )
        .collect();
    let body = json!({"object": "whatsapp_business_account", "entry": [{"changes": [
        {"field": "messages", "value": {"metadata": {"phone_number_id": "1"}, "messages": msgs}}]}]});
    let p = parse::meta::parse(body.to_string().as_bytes()).unwrap();
    assert_eq!((p.items.len(), p.beyond_cap), (MAX_ITEMS, 500));

    let records: Vec<_> = (0..MAX_ITEMS + 1)
        .map(|i| json!({"key": {"remoteJid": "1@s.whatsapp.net", "id": format!("e{i}")}, "message": {"conversation": "x"}}))
        .collect();
    let body = json!({"event": "messages.upsert", "instance": "i", "data": records});
    let p = parse::evolution::parse(body.to_string().as_bytes(), None).unwrap();
    assert_eq!((p.items.len(), p.beyond_cap), (MAX_ITEMS, 1));

    let cards: Vec<_> = (0..100)
        .map(|i| json!({"displayName": format!("c{i}"), "vcard": "BEGIN:VCARD\nTEL:+1\nEND:VCARD"}))
        .collect();
    let body = json!({"event": "messages.upsert", "instance": "i", "data": {
        "key": {"remoteJid": "1@s.whatsapp.net", "id": "c"},
        "message": {"contactsArrayMessage": {"contacts": cards}}}});
    let p = parse::evolution::parse(body.to_string().as_bytes(), None).unwrap();
    assert_eq!(p.items[0].message.contacts.len(), parse::MAX_CONTACTS);
    assert_eq!(p.partial, ["too_many_contacts"]);

    let vcards = vec!["BEGIN:VCARD\nFN:A\nEND:VCARD"; 100];
    let body = json!({"event": "message", "session": "s", "payload": {"id": "false_1@c.us_X",
        "from": "1@c.us", "vCards": vcards}});
    let p = parse::waha::parse(body.to_string().as_bytes()).unwrap();
    assert_eq!(p.items[0].message.contacts.len(), parse::MAX_CONTACTS);
    assert_eq!(p.partial, ["too_many_contacts"]);
}

/// Statuses are counted, never read: a POST of thousands (Meta batches up to 1,000 updates,
/// and a body may hold more of them than messages) is one count per reason, not an entry per
/// status, and the answer and the metric count every one.
#[tokio::test]
async fn thousands_of_statuses_are_one_count_per_reason() {
    let status: serde_json::Value =
        serde_json::from_slice(&fixture("meta_cloud_status_sent.json")).unwrap();
    let one = status["entry"][0]["changes"][0]["value"]["statuses"][0].clone();
    let mut body = status.clone();
    body["entry"][0]["changes"][0]["value"]["statuses"] = serde_json::Value::Array(vec![one; 5000]);
    let body = body.to_string().into_bytes();
    let p = parse::meta::parse(&body).unwrap();
    assert_eq!(p.ignored.iter().collect::<Vec<_>>(), [("status", 5000)]);
    let h = Harness::solo();
    let (status, resp) = h.send(meta_post(&body, Some(META_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp, r#"{"accepted":0,"duplicates":0,"ignored":5000}"#);
    h.assert_empty();
}

#[tokio::test]
async fn over_the_message_limit_is_413_and_stores_nothing() {
    let h = Harness::solo();
    let msgs: Vec<_> = (0..MAX_ITEMS + 1)
        .map(|i| json!({"id": format!("g{i}"), "user": "u", "text": "x"}))
        .collect();
    let body = json!({"account": "a", "messages": msgs}).to_string();
    let (status, resp) = h
        .send(generic_post(body.as_bytes(), Some(GENERIC_SECRET)))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{resp}");
    assert!(resp.contains("1001"), "{resp}");
    h.assert_empty();
}

/// Meta `type: "edit"` / `"revoke"` (coexistence): kinds `edit` / `revoke` naming the original,
/// with the event's own id and (for an edit) the new content; accepted through the route.
#[tokio::test]
async fn meta_edits_and_revokes_name_their_original() {
    let p = parse::meta::parse(&fixture("meta_cloud_edit.json")).unwrap();
    let m = &p.items[0].message;
    assert_eq!(m.id, "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQEDIT");
    assert_eq!(m.kind, MessageKind::Edit);
    assert_eq!(m.target, target(TEXT_ID));
    assert_eq!(m.text.as_deref(), Some("Does it come in another size?"));
    assert_eq!(m.provider_type.as_deref(), Some("edit"));
    assert_eq!(m.sender.id, "16505551234");
    assert_eq!(p.items[0].user, "16505551234");
    let p = parse::meta::parse(&fixture("meta_cloud_revoke.json")).unwrap();
    let m = &p.items[0].message;
    assert_eq!(
        (m.id.as_str(), m.kind, m.text.as_deref()),
        (
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQREVOKE",
            MessageKind::Revoke,
            None
        )
    );
    assert_eq!(m.target, target(TEXT_ID));

    let h = Harness::solo();
    for name in [
        "meta_cloud_text.json",
        "meta_cloud_edit.json",
        "meta_cloud_revoke.json",
    ] {
        let (status, resp) = h.send(meta_post(&fixture(name), Some(META_SECRET))).await;
        assert_eq!(
            (status, resp.as_str()),
            (
                StatusCode::OK,
                r#"{"accepted":1,"duplicates":0,"ignored":0}"#
            ),
            "{name}"
        );
    }
    // An edit without its original's id is kept as `other` (`provider_type: edit`), counted.
    let odd = String::from_utf8(fixture("meta_cloud_edit.json"))
        .unwrap()
        .replace("original_message_id", "original");
    let p = parse::meta::parse(odd.as_bytes()).unwrap();
    let m = &p.items[0].message;
    assert_eq!(
        (m.kind, m.provider_type.as_deref(), &m.target),
        (MessageKind::Other, Some("edit"), &None)
    );
    assert_eq!(p.partial, ["no_target"]);
}

/// WhatsApp Business app coexistence: what a person sends from the app comes back as an
/// `smb_message_echoes` update; it pauses the user's conversation like an operator's `fromMe`
/// message, and is not buffered.
#[tokio::test]
async fn a_business_app_echo_pauses_the_conversation() {
    let p = parse::meta::parse(&fixture("meta_smb_message_echoes_text.json")).unwrap();
    let item = &p.items[0];
    assert_eq!(
        (item.user.as_str(), item.opt_in),
        ("16505551234", Some(OptIn::Operator))
    );
    assert_eq!(
        item.message.sender.id, "15550783881",
        "the business wrote it"
    );

    let h = Harness::solo();
    let (status, _) = h
        .send(meta_post(
            &fixture("meta_cloud_text.json"),
            Some(META_SECRET),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let conv = || h.store.conversations().into_iter().next().expect("conv");
    assert_eq!(conv().turn.pause, None);
    let (status, resp) = h
        .send(meta_post(
            &fixture("meta_smb_message_echoes_text.json"),
            Some(META_SECRET),
        ))
        .await;
    assert_eq!(
        (status, resp.as_str()),
        (
            StatusCode::OK,
            r#"{"accepted":0,"duplicates":0,"ignored":1}"#
        )
    );
    let pause = conv().turn.pause.expect("the echo paused the conversation");
    assert_eq!(pause.reason, PauseReason::Operator);
    assert_eq!(pause.until, Millis(NOW.0 + 30 * 60 * 1000));
    assert_eq!(h.messages().len(), 1, "only the user's message is buffered");
    assert_eq!(conv().key, key(Provider::Meta, PHONE_ID, "16505551234"));

    // An echoed revoke pauses as well (and is the business's, never the user's unsend).
    let revoke = String::from_utf8(fixture("meta_smb_message_echoes_text.json"))
        .unwrap()
        .replace(
            r#""type": "text""#,
            r#""type": "revoke", "revoke": {"original_message_id": "wamid.X"}"#,
        );
    let p = parse::meta::parse(revoke.as_bytes()).unwrap();
    assert_eq!(p.items[0].message.kind, MessageKind::Revoke);
    assert_eq!(p.items[0].opt_in, Some(OptIn::Operator));
}

/// Newer interactive replies carry what the user chose.
#[tokio::test]
async fn a_call_permission_reply_carries_the_answer_and_its_expiry() {
    let h = Harness::solo();
    let (status, _) = h
        .send(meta_post(
            &fixture("meta_cloud_call_permission_reply.json"),
            Some(META_SECRET),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, m) = h.message("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQCALL");
    assert_eq!(m.kind, MessageKind::Interactive);
    assert_eq!(m.provider_type.as_deref(), Some("call_permission_reply"));
    assert_eq!(
        m.reply,
        Some(Reply {
            id: "accept".into(),
            title: "accept (until 2025-05-26T12:57:23.000Z)".into()
        })
    );
    assert_eq!(
        m.reply_to.as_deref(),
        Some("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQCPR")
    );
    // A Flow's answer keeps its JSON as text and its name as the reply.
    let flow = json!({"object": "whatsapp_business_account", "entry": [{"changes": [
        {"field": "messages", "value": {"metadata": {"phone_number_id": "1"}, "messages": [
            {"from": "1", "id": "f", "type": "interactive", "interactive": {"type": "nfm_reply",
             "nfm_reply": {"name": "flow", "body": "Sent", "response_json": "{\"size\":\"L\"}"}}}]}}]}]});
    let p = parse::meta::parse(flow.to_string().as_bytes()).unwrap();
    let m = &p.items[0].message;
    assert_eq!(m.text.as_deref(), Some("{\"size\":\"L\"}"));
    assert_eq!(m.reply.as_ref().map(|r| r.id.as_str()), Some("flow"));
}

/// Evolution API: `messages.delete` (the original's key, from lull's side) and, since 2.3.7,
/// `messages.update` with `message.editedMessage` name the chat and the original; a contact's
/// `messages.edited` (its key in the sender's perspective) does not name the chat: skipped.
#[tokio::test]
async fn evolution_edits_and_deletes_name_their_original() {
    let p = parse::evolution::parse(&fixture("evolution_v2_messages_delete.json"), None).unwrap();
    let item = &p.items[0];
    assert_eq!(item.user, "5219991234567@s.whatsapp.net");
    assert_eq!(item.opt_in, None);
    let m = &item.message;
    assert_eq!(
        (m.id.as_str(), m.kind),
        ("TEST_CRITICAL_001#revoke", MessageKind::Revoke)
    );
    assert_eq!(m.target, target("TEST_CRITICAL_001"));

    let p =
        parse::evolution::parse(&fixture("evolution_v2_messages_update_edit.json"), None).unwrap();
    let item = &p.items[0];
    assert_eq!(item.user, "5219991234567@s.whatsapp.net");
    let m = &item.message;
    assert_eq!(m.kind, MessageKind::Edit);
    assert_eq!(m.target, target("TEST_CRITICAL_001"));
    assert_eq!(m.text.as_deref(), Some("Quiero tres pizzas, por favor."));
    assert!(m.id.starts_with("TEST_CRITICAL_001#edit:"), "{}", m.id);

    let p = parse::evolution::parse(&fixture("evolution_v2_messages_edited_contact.json"), None)
        .unwrap();
    assert!(p.items.is_empty());
    assert_eq!(p.ignored, ["edit_no_chat"]);
    // The same edit seen as an upsert (Evolution before 2.3, Baileys' FutureProofMessage): the
    // outer key names the chat; same id as the `messages.update` form, so one dedupes the other.
    let upsert = json!({"event": "messages.upsert", "instance": "ElinaIA", "data": {
        "key": {"remoteJid": "5219991234567@s.whatsapp.net", "fromMe": false, "id": "3A50EE8D"},
        "message": {"editedMessage": {"message": {"protocolMessage": {
            "key": {"remoteJid": "5215550000000@s.whatsapp.net", "fromMe": true, "id": "TEST_CRITICAL_001"},
            "type": "MESSAGE_EDIT", "editedMessage": {"conversation": "Quiero tres pizzas, por favor."},
            "timestampMs": "1733068805000"}}}},
        "messageType": "editedMessage", "messageTimestamp": 1733068805}});
    let q = parse::evolution::parse(upsert.to_string().as_bytes(), None).unwrap();
    assert_eq!(q.items[0].message.kind, MessageKind::Edit);
    assert_eq!(q.items[0].message.id, m.id);
    assert_eq!(q.items[0].user, "5219991234567@s.whatsapp.net");

    let h = Harness::solo();
    for (name, expected) in [
        (
            "evolution_v2_3_messages_upsert_text_n8n_fixture.json",
            r#"{"accepted":1,"duplicates":0,"ignored":0}"#,
        ),
        (
            "evolution_v2_messages_update_edit.json",
            r#"{"accepted":1,"duplicates":0,"ignored":0}"#,
        ),
        (
            "evolution_v2_messages_edited_contact.json",
            r#"{"accepted":0,"duplicates":0,"ignored":1}"#,
        ),
        (
            "evolution_v2_messages_delete.json",
            r#"{"accepted":1,"duplicates":0,"ignored":0}"#,
        ),
    ] {
        let (status, resp) = h
            .send(evolution_post(
                "/webhook/evolution",
                &fixture(name),
                Some(EVO_TOKEN),
            ))
            .await;
        assert_eq!(
            (status, resp.as_str()),
            (StatusCode::OK, expected),
            "{name}"
        );
    }
}

/// WAHA `message.edited` / `message.revoked`: the original's id comes without the chat and is
/// rebuilt from the action's own id.
#[tokio::test]
async fn waha_edits_and_revokes_name_their_original() {
    let original = "false_5219991234567@c.us_3EB0C767D26A1D2E5F4A";
    let p = parse::waha::parse(&fixture("waha_message_edited.json")).unwrap();
    let m = &p.items[0].message;
    assert_eq!(m.kind, MessageKind::Edit);
    assert_eq!(m.id, "false_5219991234567@c.us_3EB0A1B2C3D4E5F6A7B8");
    assert_eq!(m.target, target(original));
    assert_eq!(m.text.as_deref(), Some("Hola, quiero tres pizzas"));
    assert_eq!(p.items[0].user, "5219991234567@c.us");
    let p = parse::waha::parse(&fixture("waha_message_revoked.json")).unwrap();
    let m = &p.items[0].message;
    assert_eq!(
        (m.id.as_str(), m.kind, m.text.as_deref()),
        (
            "false_5219991234567@c.us_3EB0F9E8D7C6B5A4B3C2",
            MessageKind::Revoke,
            None
        )
    );
    assert_eq!(m.target, target(original));

    let h = Harness::solo();
    for name in [
        "waha_message_text.json",
        "waha_message_edited.json",
        "waha_message_revoked.json",
    ] {
        let (status, resp) = h.send(waha_post(&fixture(name), Some(WAHA_KEY))).await;
        assert_eq!(
            (status, resp.as_str()),
            (
                StatusCode::OK,
                r#"{"accepted":1,"duplicates":0,"ignored":0}"#
            ),
            "{name}"
        );
    }
    // A group message's id ends in its participant, and so does the rebuilt original's.
    let group = json!({"event": "message.edited", "session": "s", "payload": {
        "id": "false_120@g.us_EDIT1_5@c.us", "from": "120@g.us", "participant": "5@c.us",
        "body": "new", "editedMessageId": "ORIG1"}});
    let p = parse::waha::parse(group.to_string().as_bytes()).unwrap();
    assert_eq!(
        p.items[0].message.target,
        target("false_120@g.us_ORIG1_5@c.us")
    );
}

/// lull's own format carries edits and unsends as kinds with a `target`.
#[tokio::test]
async fn generic_edits_and_revokes_carry_their_target() {
    let body = br#"{"account":"a","messages":[
        {"id":"1","user":"u","text":"2 pizzas"},
        {"id":"2","user":"u","kind":"edit","text":"3 pizzas","target":{"message_id":"1"}},
        {"id":"3","user":"u","kind":"revoke","target":{"message_id":"1"}},
        {"id":"4","user":"u","kind":"revoke"}]}"#;
    let p = parse::generic::parse(body).unwrap();
    let kinds: Vec<_> = p
        .items
        .iter()
        .map(|i| (i.message.kind, i.message.target.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (MessageKind::Text, None),
            (MessageKind::Edit, target("1")),
            (MessageKind::Revoke, target("1")),
            (MessageKind::Other, None),
        ]
    );
    assert_eq!(p.partial, ["no_target"]);
    let h = Harness::solo();
    let (status, _) = h.send(generic_post(body, Some(GENERIC_SECRET))).await;
    assert_eq!(status, StatusCode::OK);
}
