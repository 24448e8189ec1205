//! A corpus of hostile and broken requests: each gets its status code and stores nothing, with a
//! valid signature wherever one can be made (so the parser, not the signature check, refuses it).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::json;

fn meta_msgs(n: usize, text_len: usize) -> Vec<u8> {
    let text = "a".repeat(text_len);
    let msgs: Vec<_> = (0..n)
        .map(|i| json!({"from": "1555", "id": format!("w.{i}"), "timestamp": "1", "type": "text", "text": {"body": text}}))
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"metadata": {"phone_number_id": "111"}, "messages": msgs}}]}]})
    .to_string()
    .into_bytes()
}

/// (name, request, expected status)
fn corpus() -> Vec<(&'static str, Request<Body>, StatusCode)> {
    let signed = |body: Vec<u8>| meta_post(&body, Some(META_SECRET));
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let nested_in_field = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"1"}},"messages":[{{"id":"x","from":"1","type":"order","order":{}1{}}}]}}}}]}}]}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let mut wrong_sig = meta_post(&meta_msgs(1, 5), None);
    wrong_sig.headers_mut().insert(
        "x-hub-signature-256",
        lull_ingest::auth::sign_sha256(META_SECRET, &meta_msgs(1, 6))
            .parse()
            .unwrap(),
    );
    let mut invalid_utf8 = meta_msgs(1, 5);
    let pos = invalid_utf8.windows(3).position(|w| w == b"aaa").unwrap();
    invalid_utf8[pos] = 0xff;
    let mut second_bad = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"metadata": {"phone_number_id": "111"}, "messages": [
            {"from": "1555", "id": "good", "timestamp": "1", "type": "text", "text": {"body": "ok"}},
            {"from": "1555", "id": "bad", "timestamp": "1", "type": "text"}]}}]}]});
    let second_bad_bytes = second_bad.to_string().into_bytes();
    second_bad["entry"][0]["changes"][0]["value"]["messages"][1]["type"] = json!(7);
    let wrong_type_bytes = second_bad.to_string().into_bytes();

    let evo = |body: &[u8]| evolution_post("/webhook/evolution", body, Some(EVO_TOKEN));
    let no_ct = Request::post("/webhook/meta")
        .body(Body::from(meta_msgs(1, 1)))
        .unwrap();
    let form_to_meta = Request::post("/webhook/meta")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("a=b"))
        .unwrap();
    let json_to_twilio = Request::post("/webhook/twilio")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let mut twilio_bad_utf8 = twilio_post(
        "MessageSid=SM1&From=whatsapp%3A%2B1&To=whatsapp%3A%2B2&Body=x",
        Some(TWILIO_TOKEN),
    );
    *twilio_bad_utf8.body_mut() =
        Body::from(&b"MessageSid=SM1&From=whatsapp%3A%2B1&To=whatsapp%3A%2B2&Body=\xff\xfe"[..]);
    let twilio_missing = twilio_post(
        &form(&[
            ("From", "whatsapp:+1"),
            ("To", "whatsapp:+2"),
            ("Body", "x"),
        ]),
        Some(TWILIO_TOKEN),
    );
    let twilio_bad_lat = twilio_post(
        &form(&[
            ("MessageSid", "SM1"),
            ("From", "whatsapp:+1"),
            ("To", "whatsapp:+2"),
            ("Latitude", "NaN"),
            ("Longitude", "1"),
        ]),
        Some(TWILIO_TOKEN),
    );
    let twilio_huge_media_count = twilio_post(
        &form(&[
            ("MessageSid", "SM1"),
            ("From", "whatsapp:+1"),
            ("To", "whatsapp:+2"),
            ("NumMedia", "99999999999"),
        ]),
        Some(TWILIO_TOKEN),
    );

    vec![
        ("empty body", signed(Vec::new()), StatusCode::BAD_REQUEST),
        ("json null", signed(b"null".to_vec()), StatusCode::BAD_REQUEST),
        ("not json", signed(b"hello".to_vec()), StatusCode::BAD_REQUEST),
        ("truncated json", signed(meta_msgs(1, 5)[..40].to_vec()), StatusCode::BAD_REQUEST),
        ("deeply nested array", signed(nested.into_bytes()), StatusCode::BAD_REQUEST),
        ("deeply nested unknown field", signed(nested_in_field.into_bytes()), StatusCode::BAD_REQUEST),
        ("entry is a string", signed(br#"{"object":"whatsapp_business_account","entry":"x"}"#.to_vec()), StatusCode::BAD_REQUEST),
        ("id is a number", signed(String::from_utf8(meta_msgs(1, 1)).unwrap().replace(r#""w.0""#, "17").into_bytes()), StatusCode::BAD_REQUEST),
        ("missing metadata", signed(br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[]}}]}]}"#.to_vec()), StatusCode::BAD_REQUEST),
        ("second message malformed", signed(second_bad_bytes), StatusCode::BAD_REQUEST),
        ("message type of wrong type", signed(wrong_type_bytes), StatusCode::BAD_REQUEST),
        ("invalid utf-8", signed(invalid_utf8), StatusCode::BAD_REQUEST),
        ("huge string in one message", signed(meta_msgs(1, 3 * 1024 * 1024)), StatusCode::PAYLOAD_TOO_LARGE),
        ("body over the limit", signed(meta_msgs(1, 5 * 1024 * 1024)), StatusCode::PAYLOAD_TOO_LARGE),
        ("10,000 messages in one POST", signed(meta_msgs(10_000, 10)), StatusCode::PAYLOAD_TOO_LARGE),
        ("signature for a different body", wrong_sig, StatusCode::UNAUTHORIZED),
        ("no content type", no_ct, StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("form body to meta", form_to_meta, StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("json body to twilio", json_to_twilio, StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("twilio invalid utf-8", twilio_bad_utf8, StatusCode::BAD_REQUEST),
        ("twilio without MessageSid", twilio_missing, StatusCode::BAD_REQUEST),
        ("twilio NaN latitude", twilio_bad_lat, StatusCode::BAD_REQUEST),
        ("twilio absurd NumMedia", twilio_huge_media_count, StatusCode::BAD_REQUEST),
        ("evolution without instance", evo(br#"{"event":"messages.upsert","data":{}}"#), StatusCode::BAD_REQUEST),
        ("evolution data is a string", evo(br#"{"event":"messages.upsert","instance":"i","data":"x"}"#), StatusCode::BAD_REQUEST),
        ("evolution key without id", evo(br#"{"event":"messages.upsert","instance":"i","data":{"key":{"remoteJid":"1@s.whatsapp.net"}}}"#), StatusCode::BAD_REQUEST),
        ("evolution empty remoteJid", evo(br#"{"event":"messages.upsert","instance":"i","data":{"key":{"remoteJid":"","id":"x"}}}"#), StatusCode::BAD_REQUEST),
        ("generic messages not a list", generic_post(br#"{"account":"a","messages":{}}"#, Some(GENERIC_SECRET)), StatusCode::BAD_REQUEST),
        ("generic unknown kind", generic_post(br#"{"account":"a","messages":[{"id":"1","user":"u","kind":"hologram"}]}"#, Some(GENERIC_SECRET)), StatusCode::BAD_REQUEST),
        ("generic empty id", generic_post(br#"{"account":"a","messages":[{"id":" ","user":"u"}]}"#, Some(GENERIC_SECRET)), StatusCode::BAD_REQUEST),
    ]
}

#[tokio::test]
async fn hostile_inputs_get_their_status_and_store_nothing() {
    for (name, req, expected) in corpus() {
        let h = Harness::solo();
        let (status, reason) = h.send(req).await;
        assert_eq!(status, expected, "{name}: {reason}");
        assert!(reason.len() < 300, "{name}: the reason is short: {reason}");
        assert!(
            !reason.contains("aaaaaaaa"),
            "{name}: the reason does not echo content"
        );
        h.assert_empty();
    }
}

#[tokio::test]
async fn unknown_types_are_stored_as_other_never_dropped() {
    let h = Harness::solo();
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"metadata": {"phone_number_id": "111"}, "messages": [
            {"from": "1555", "id": "w.new", "timestamp": "1", "type": "hologram", "hologram": {"x": 1}}]}}]}]});
    let (status, _) = h
        .send(meta_post(body.to_string().as_bytes(), Some(META_SECRET)))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, m) = h.message("w.new");
    assert_eq!(
        (m.kind, m.provider_type.as_deref()),
        (lull_core::MessageKind::Other, Some("hologram"))
    );
}

#[tokio::test]
async fn non_message_fields_and_objects_are_acknowledged_and_counted() {
    let h = Harness::solo();
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"account_update","value":{"event":"VERIFIED_ACCOUNT"}}]}]}"#;
    let (status, resp) = h.send(meta_post(body, Some(META_SECRET))).await;
    assert_eq!(
        (status, resp.as_str()),
        (
            StatusCode::OK,
            r#"{"accepted":0,"duplicates":0,"ignored":1}"#
        )
    );
    assert_eq!(
        h.send(meta_post(body, None)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let other = br#"{"object":"page","entry":[]}"#;
    assert_eq!(
        h.send(meta_post(other, Some(META_SECRET))).await.0,
        StatusCode::OK
    );
    h.assert_empty();
}
