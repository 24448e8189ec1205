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

/// (name, request, expected status): requests that cannot be trusted as a whole (signature,
/// envelope, size). Odd items inside a valid envelope are kept or skipped instead
/// (`tests/lenient.rs`).
fn corpus() -> Vec<(&'static str, Request<Body>, StatusCode)> {
    let signed = |body: Vec<u8>| meta_post(&body, Some(META_SECRET));
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
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
        ("entry is a string", signed(br#"{"object":"whatsapp_business_account","entry":"x"}"#.to_vec()), StatusCode::BAD_REQUEST),
        ("missing metadata", signed(br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[]}}]}]}"#.to_vec()), StatusCode::BAD_REQUEST),
        ("invalid utf-8", signed(invalid_utf8), StatusCode::BAD_REQUEST),
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
        ("generic messages not a list", generic_post(br#"{"account":"a","messages":{}}"#, Some(GENERIC_SECRET)), StatusCode::BAD_REQUEST),
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

/// A Meta body with an unknown field nested `depth` deep inside a message.
fn meta_with_nested_unknown_field(depth: usize) -> Vec<u8> {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"1"}},"messages":[{{"id":"x","from":"1","type":"order","order":{}1{}}}]}}}}]}}]}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
    .into_bytes()
}

#[tokio::test]
async fn deep_nesting_in_an_unknown_field_is_skipped_without_recursion() {
    // Typed parsing skips unknown fields with serde's iterative skipper: no stack, no tree.
    let h = Harness::solo();
    let body = meta_with_nested_unknown_field(100_000);
    let (status, reason) = h.send(meta_post(&body, Some(META_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{reason}");
    let (_, m) = h.message("x");
    assert_eq!(m.provider_type.as_deref(), Some("order"));
}

/// Issue 11 §1: `NumMedia=4294967295` once sized an allocation of 68 GB and aborted the process.
#[tokio::test]
async fn twilio_num_media_never_sizes_an_allocation() {
    for num_media in ["4294967295", "4294967294", "2"] {
        let h = Harness::solo();
        let body = form(&[
            ("MessageSid", "SM1"),
            ("From", "whatsapp:+1"),
            ("To", "whatsapp:+2"),
            ("NumMedia", num_media),
            ("MediaUrl0", "u"),
            ("MediaUrl1", "v"),
        ]);
        let (status, resp) = h.send(twilio_post(&body, Some(TWILIO_TOKEN))).await;
        // One message; the one extra MediaUrl the body really holds is counted as ignored.
        assert_eq!(
            (status, resp.as_str()),
            (
                StatusCode::OK,
                r#"{"accepted":1,"duplicates":0,"ignored":1}"#
            ),
            "NumMedia={num_media}"
        );
    }
    // The exact request from the issue, unsigned: refused before the body is parsed.
    let h = Harness::solo();
    let req = Request::post("/webhook/twilio")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("NumMedia=4294967295&MediaUrl0=u"))
        .unwrap();
    assert_eq!(h.send(req).await.0, StatusCode::UNAUTHORIZED);
    h.assert_empty();
}

#[tokio::test]
async fn too_many_twilio_parameters_are_refused() {
    let h = Harness::solo();
    let mut pairs = vec![
        ("MessageSid".to_string(), "SM1".to_string()),
        ("From".into(), "whatsapp:+1".into()),
        ("To".into(), "whatsapp:+2".into()),
    ];
    pairs
        .extend((0..lull_ingest::parse::twilio::MAX_PARAMS).map(|i| (format!("X{i}"), "v".into())));
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, reason) = h.send(twilio_post(&form(&refs), Some(TWILIO_TOKEN))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}");
    assert!(reason.contains("parameters"), "{reason}");
    h.assert_empty();
}

/// Without a credential header no body is read: a body over the limit gets 401, not 413.
#[tokio::test]
async fn a_request_without_credentials_is_refused_before_its_body_is_read() {
    let huge = meta_msgs(1, 5 * 1024 * 1024);
    let cases = [
        meta_post(&huge, None),
        generic_post(&huge, None),
        evolution_post("/webhook/evolution", &huge, None),
        Request::post("/webhook/twilio")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(huge.clone()))
            .unwrap(),
    ];
    for req in cases {
        let path = req.uri().path().to_string();
        let h = Harness::solo();
        let (status, reason) = h.send(req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {reason}");
        assert!(reason.contains("missing"), "{path}: {reason}");
        h.assert_empty();
    }
}

/// With one tenant the signature is checked over the raw body before it is parsed: a wrongly
/// signed malformed body is a 401, never a parse error (which would tell an attacker what the
/// parser makes of their input).
#[tokio::test]
async fn with_one_tenant_the_signature_is_checked_before_parsing() {
    let junk = b"{not json at all".to_vec();
    let mut meta = meta_post(&junk, None);
    meta.headers_mut()
        .insert("x-hub-signature-256", "sha256=00".parse().unwrap());
    let mut generic = generic_post(&junk, None);
    generic
        .headers_mut()
        .insert("x-lull-signature", "sha256=00".parse().unwrap());
    let evo = evolution_post("/webhook/evolution", &junk, Some("wrong-token"));
    let mut twilio = twilio_post("From=%ZZ&&&To", None);
    twilio
        .headers_mut()
        .insert("x-twilio-signature", "AAAA".parse().unwrap());
    for req in [meta, generic, evo, twilio] {
        let path = req.uri().path().to_string();
        let h = Harness::solo();
        let (status, reason) = h.send(req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {reason}");
        h.assert_empty();
    }
}

/// Issue 11 §4: ids and key parts are capped so no store key exceeds DynamoDB's key limits: an
/// item over them is skipped (counted), an account over them refuses the request (its envelope).
#[tokio::test]
async fn overlong_ids_and_key_parts_are_skipped_or_refused_with_a_reason() {
    use lull_core::key::{MAX_KEY_PART_BYTES, MAX_MESSAGE_ID_BYTES};
    let long_id = "i".repeat(MAX_MESSAGE_ID_BYTES + 1);
    let long_part = "7".repeat(MAX_KEY_PART_BYTES + 1);
    let generic = |account: &str, id: &str, user: &str, group: Option<&str>| {
        let mut m = json!({"id": id, "user": user, "text": "hi"});
        if let Some(g) = group {
            m["group"] = json!(g);
        }
        json!({"account": account, "messages": [{"id": "ok-1", "user": "u", "text": "first"}, m]})
            .to_string()
            .into_bytes()
    };
    let cases: Vec<(&str, Request<Body>)> = vec![
        (
            "message id",
            generic_post(&generic("a", &long_id, "u", None), Some(GENERIC_SECRET)),
        ),
        (
            "account",
            generic_post(&generic(&long_part, "m", "u", None), Some(GENERIC_SECRET)),
        ),
        (
            "user",
            generic_post(&generic("a", "m", &long_part, None), Some(GENERIC_SECRET)),
        ),
        (
            "user",
            generic_post(
                &generic("a", "m", "u", Some(&long_part)),
                Some(GENERIC_SECRET),
            ),
        ),
        (
            "conversation key",
            generic_post(
                &generic("a", "m", &"|".repeat(200), Some(&"%".repeat(200))),
                Some(GENERIC_SECRET),
            ),
        ),
        (
            "message id",
            meta_post(
                &String::from_utf8(meta_msgs(1, 1))
                    .unwrap()
                    .replace("w.0", &long_id)
                    .into_bytes(),
                Some(META_SECRET),
            ),
        ),
        (
            "account",
            twilio_post(
                &form(&[
                    ("MessageSid", "SM1"),
                    ("From", "whatsapp:+1"),
                    ("To", &long_part),
                    ("Body", "x"),
                ]),
                Some(TWILIO_TOKEN),
            ),
        ),
    ];
    for (part, req) in cases {
        let h = Harness::solo();
        let (status, reason) = h.send(req).await;
        if part == "account" {
            // The account is the envelope's: the whole request is refused.
            assert_eq!(status, StatusCode::BAD_REQUEST, "{part}: {reason}");
            assert!(
                reason.contains(part) && reason.contains("at most"),
                "{part}: {reason}"
            );
            h.assert_empty();
        } else {
            // One item's key: that item is skipped and counted, the others stored.
            assert_eq!(status, StatusCode::OK, "{part}: {reason}");
            assert!(reason.ends_with(r#""ignored":1}"#), "{part}: {reason}");
            assert!(
                h.messages()
                    .iter()
                    .all(|(k, m)| m.id.len() <= MAX_MESSAGE_ID_BYTES
                        && k.check_lengths(&m.id).is_ok()),
                "{part}: nothing over the limits is stored"
            );
        }
    }
    // At the caps exactly, accepted.
    let h = Harness::solo();
    let at_cap = generic(
        &"a".repeat(MAX_KEY_PART_BYTES),
        &"i".repeat(MAX_MESSAGE_ID_BYTES),
        &"u".repeat(MAX_KEY_PART_BYTES),
        None,
    );
    let (status, reason) = h.send(generic_post(&at_cap, Some(GENERIC_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{reason}");
}
