//! The generic route accepts Standard Webhooks signatures, with the scheme's timestamp tolerance
//! (a captured request replayed later is refused).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use lull_ingest::standard_webhooks::sign;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn signed(body: &[u8], secret: &str, t: i64) -> Request<Body> {
    let mut b = Request::post("/webhook/generic").header("content-type", "application/json");
    for (k, v) in sign(secret, "msg_2Xyz", t, body).unwrap() {
        b = b.header(k, v);
    }
    b.body(Body::from(body.to_vec())).unwrap()
}

#[tokio::test]
async fn standard_webhooks_signatures_are_accepted_and_replays_refused() {
    let h = Harness::solo();
    let body = br#"{"account":"a","messages":[{"id":"sw-1","user":"u","text":"x"}]}"#;

    // Outside the 5-minute tolerance: refused, nothing stored.
    let (status, reason) = h.send(signed(body, GENERIC_SECRET, now() - 600)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reason}");
    assert!(reason.contains("5 minutes"), "{reason}");
    // Another secret, or a tampered body: refused.
    assert_eq!(
        h.send(signed(body, "nope", now())).await.0,
        StatusCode::UNAUTHORIZED
    );
    let mut req = signed(body, GENERIC_SECRET, now());
    let tampered = String::from_utf8_lossy(body).replace("\"x\"", "\"y\"");
    *req.body_mut() = Body::from(tampered);
    assert_eq!(h.send(req).await.0, StatusCode::UNAUTHORIZED);
    h.assert_empty();

    // Fresh and signed with the tenant's generic secret: stored.
    let (status, reason) = h.send(signed(body, GENERIC_SECRET, now())).await;
    assert_eq!(status, StatusCode::OK, "{reason}");
    h.message("sw-1");
}
