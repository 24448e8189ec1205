//! API Gateway HTTP API (payload v2) events as API Gateway sends them to the webhook Lambda,
//! decoded by `lambda_http` as the Lambda runtime decodes them, and served by a `Router`.

use base64::Engine;
use tower::ServiceExt;

pub const DOMAIN: &str = "abc123.execute-api.us-east-1.amazonaws.com";

/// An API Gateway HTTP API v2 event, the way API Gateway sends it to the function.
pub fn event(path: &str, headers: &[(&str, String)], body: &[u8], base64: bool) -> String {
    let mut h = serde_json::Map::new();
    h.insert("host".into(), DOMAIN.into());
    h.insert("x-forwarded-proto".into(), "https".into());
    h.insert("x-forwarded-port".into(), "443".into());
    for (k, v) in headers {
        h.insert((*k).into(), v.clone().into());
    }
    let body = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        String::from_utf8(body.to_vec()).expect("utf-8 body")
    };
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": h,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": DOMAIN,
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "facebookexternalua"
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "28/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_867_200_000u64
        },
        "body": body,
        "isBase64Encoded": base64
    })
    .to_string()
}

/// Serves one API Gateway event through `router` as the webhook Lambda does: status and body.
pub async fn send(router: &axum::Router, event_json: &str) -> (u16, String) {
    let req = lambda_http::request::from_str(event_json).expect("API Gateway v2 event");
    let resp = router.clone().oneshot(req).await.expect("router");
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}
