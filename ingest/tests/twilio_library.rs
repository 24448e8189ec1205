//! Twilio signatures checked against Twilio's own `RequestValidator` (the `twilio` Python
//! package, pinned in `scripts/requirements-test.txt`), not only against lull's signing helper:
//! Twilio's library signs real-shaped requests, lull's router must accept exactly what Twilio's
//! library accepts (auth token HMAC-SHA1, URL with and without its port, webhook shared keys
//! with HMAC-SHA256 and rotation), and Twilio's library must accept lull's own signatures.
//!
//! Python is `$LULL_TEST_PYTHON` (the test command's venv) or `python3`. A missing `twilio`
//! package fails the test: it is part of the test environment.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use lull_ingest::auth::{self, TwilioAlgorithm};
use lull_ingest::{IngestConfig, MemoryDirectory, Secrets, Tenant, TwilioSettings};
use serde_json::{json, Value};

const SHARED_OLD: &str = "shared-key-old";
const SHARED_NEW: &str = "shared-key-new";
const SETTINGS: &str = "key=webhooks_sharedkey_01jexample,algorithm=HMAC_SHA256";

/// Signs with `twilio.request_validator` and validates lull's signatures with it.
const SCRIPT: &str = r#"
import json, sys
from twilio.request_validator import RequestValidator, get_signature_algorithm
out = []
for case in json.load(sys.stdin):
    v = RequestValidator(case["key"])
    algorithm = get_signature_algorithm(case.get("settings"))
    if case["op"] == "sign":
        out.append(v.compute_signature(case["url"], dict(case["params"]), algorithm))
    else:
        out.append(v.validate(case["url"], dict(case["params"]), case["signature"], algorithm))
print(json.dumps(out))
"#;

fn python(cases: &Value) -> Vec<Value> {
    let python = std::env::var("LULL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(cases.to_string().as_bytes())
        .expect("write cases");
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "Twilio's Python library is required (pip install -r scripts/requirements-test.txt, or \
         set LULL_TEST_PYTHON to a python that has it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from python")
}

/// A real-shaped inbound WhatsApp message (unicode, `+&=` in values).
fn params() -> Vec<(String, String)> {
    [
        ("SmsMessageSid", "SM4f2f1a2b3c4d5e6f708192a3b4c5d6e7"),
        ("NumMedia", "0"),
        ("ProfileName", "Zoë Ñandú"),
        ("MessageType", "text"),
        ("SmsSid", "SM4f2f1a2b3c4d5e6f708192a3b4c5d6e7"),
        ("WaId", "5511999990000"),
        ("SmsStatus", "received"),
        ("Body", "2 pizzas + 1 coke & napkins = 🍕🍕 ok?"),
        ("To", "whatsapp:+14155238886"),
        ("NumSegments", "1"),
        ("ReferralNumMedia", "0"),
        ("MessageSid", "SM4f2f1a2b3c4d5e6f708192a3b4c5d6e7"),
        ("AccountSid", "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("From", "whatsapp:+5511999990000"),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn harness() -> Harness {
    let tenant = Tenant {
        id: "tw".into(),
        twilio: TwilioSettings {
            auth_tokens: Secrets::new([TWILIO_TOKEN]),
            shared_keys: Secrets::new([SHARED_OLD, SHARED_NEW]),
            ..Default::default()
        },
        ..Default::default()
    };
    Harness::with(MemoryDirectory::single(tenant), IngestConfig::default())
}

/// A request as Twilio sends it: `host` as the server sees it, the signature and, for a shared
/// key, the settings header.
fn request(host: &str, proto: &str, signature: &str, settings: Option<&str>) -> Request<Body> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params())
        .finish();
    let mut b = Request::post("/webhook/twilio")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("host", host)
        .header("x-forwarded-proto", proto)
        .header("x-twilio-signature", signature);
    if let Some(s) = settings {
        b = b.header("x-twilio-webhooks-signature-settings", s);
    }
    b.body(Body::from(body)).expect("request")
}

#[tokio::test]
async fn lull_accepts_what_twilios_request_validator_signs() {
    // (what, URL Twilio signed, key, settings header, host the request arrives with, expected)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static str,
        StatusCode,
    );
    let ok = StatusCode::OK;
    let refused = StatusCode::UNAUTHORIZED;
    let cases: Vec<Case> = vec![
        (
            "auth token",
            "https://lull.example.com/webhook/twilio",
            TWILIO_TOKEN,
            None,
            "lull.example.com",
            ok,
        ),
        (
            "signed without the port, request with :443",
            "https://lull.example.com/webhook/twilio",
            TWILIO_TOKEN,
            None,
            "lull.example.com:443",
            ok,
        ),
        (
            "signed without the port, request with :8443",
            "https://lull.example.com/webhook/twilio",
            TWILIO_TOKEN,
            None,
            "lull.example.com:8443",
            ok,
        ),
        (
            "signed with :443, request without a port",
            "https://lull.example.com:443/webhook/twilio",
            TWILIO_TOKEN,
            None,
            "lull.example.com",
            ok,
        ),
        (
            "shared key, HMAC-SHA256",
            "https://lull.example.com/webhook/twilio",
            SHARED_OLD,
            Some(SETTINGS),
            "lull.example.com",
            ok,
        ),
        (
            "rotated shared key",
            "https://lull.example.com/webhook/twilio",
            SHARED_NEW,
            Some(SETTINGS),
            "lull.example.com",
            ok,
        ),
        (
            "shared key, lowercase algorithm",
            "https://lull.example.com/webhook/twilio",
            SHARED_NEW,
            Some("algorithm=hmac_sha256,key=k"),
            "lull.example.com",
            ok,
        ),
        (
            "shared key with the port quirk",
            "https://lull.example.com/webhook/twilio",
            SHARED_NEW,
            Some(SETTINGS),
            "lull.example.com:443",
            ok,
        ),
        (
            "shared-key signature without the settings header",
            "https://lull.example.com/webhook/twilio",
            SHARED_OLD,
            None,
            "lull.example.com",
            refused,
        ),
        (
            "auth-token signature announced as a shared key",
            "https://lull.example.com/webhook/twilio",
            TWILIO_TOKEN,
            Some(SETTINGS),
            "lull.example.com",
            refused,
        ),
        (
            "a key lull does not have",
            "https://lull.example.com/webhook/twilio",
            "someone-elses-key",
            Some(SETTINGS),
            "lull.example.com",
            refused,
        ),
        (
            "another host",
            "https://evil.example/webhook/twilio",
            TWILIO_TOKEN,
            None,
            "lull.example.com",
            refused,
        ),
    ];
    let sign: Vec<Value> = cases
        .iter()
        .map(|(_, url, key, settings, _, _)| {
            json!({"op": "sign", "url": url, "key": key, "settings": settings, "params": params()})
        })
        .collect();
    let signatures = python(&Value::Array(sign));
    for ((what, _, _, settings, host, expected), sig) in cases.iter().zip(&signatures) {
        let h = harness();
        let sig = sig.as_str().expect("a signature");
        let (status, body) = h.send(request(host, "https", sig, *settings)).await;
        assert_eq!(status, *expected, "{what}: {body}");
        if *expected == ok {
            assert_eq!(h.messages().len(), 1, "{what}");
        } else {
            h.assert_empty();
        }
    }
    // An algorithm Twilio's library does not know is refused by both.
    let h = harness();
    let sig = auth::sign_twilio_with(
        TwilioAlgorithm::HmacSha256,
        SHARED_OLD,
        "https://lull.example.com/webhook/twilio",
        &params(),
    );
    let settings = Some("key=k,algorithm=HMAC_SHA512");
    let (status, _) = h
        .send(request("lull.example.com", "https", &sig, settings))
        .await;
    assert_eq!(status, refused);
    let verdict = python(
        &json!([{"op": "validate", "url": "https://lull.example.com/webhook/twilio",
        "key": SHARED_OLD, "settings": settings, "params": params(), "signature": sig}]),
    );
    assert_eq!(verdict, [json!(false)]);
}

#[test]
fn twilios_request_validator_accepts_lulls_signatures() {
    let url = "https://lull.example.com/webhook/twilio?tenant=a%20b&x=1";
    let cases = [
        (TwilioAlgorithm::HmacSha1, TWILIO_TOKEN, None),
        (TwilioAlgorithm::HmacSha256, SHARED_NEW, Some(SETTINGS)),
    ];
    let checks: Vec<Value> = cases
        .iter()
        .map(|(alg, key, settings)| {
            json!({"op": "validate", "url": url, "key": key, "settings": settings,
                   "params": params(), "signature": auth::sign_twilio_with(*alg, key, url, &params())})
        })
        .collect();
    assert_eq!(python(&Value::Array(checks)), [json!(true), json!(true)]);
}
