//! The webhook Lambda binary started as Lambda starts it, against a Lambda Runtime API stub on
//! loopback, with no reachable DynamoDB (issue 23 §10): it must reach its first poll (no store
//! read at init, no init error) and its bootstrap tenant (the template's `LULL_META_*`
//! variables) must answer without the store, here Meta's subscription handshake.
//!
//! The event is an API Gateway HTTP API payload v2 (the shape of AWS's "Working with AWS Lambda
//! proxy integrations for HTTP APIs", payload format 2.0, as `functions/aws/tests/common/
//! apigw.rs` builds it), for `GET /webhook/meta` with Meta's `hub.*` query parameters (Meta's
//! "Webhooks: verification requests").

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use lull_testkit::wait_for;

#[derive(Default)]
struct Runtime {
    polls: usize,
    responses: Vec<String>,
    init_errors: Vec<String>,
}

type Shared = Arc<Mutex<Runtime>>;

fn handshake_event() -> String {
    let query = "hub.mode=subscribe&hub.verify_token=boot-verify&hub.challenge=1158201444";
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/webhook/meta",
        "rawQueryString": query,
        "queryStringParameters": {
            "hub.mode": "subscribe",
            "hub.verify_token": "boot-verify",
            "hub.challenge": "1158201444"
        },
        "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com",
                    "x-forwarded-proto": "https", "user-agent": "facebookplatform/1.0"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": "GET", "path": "/webhook/meta", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "facebookplatform/1.0"},
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "28/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_867_200_000u64
        },
        "isBase64Encoded": false
    })
    .to_string()
}

async fn next(State(rt): State<Shared>) -> axum::response::Response {
    let first = {
        let mut r = rt.lock().unwrap();
        r.polls += 1;
        r.polls == 1
    };
    if !first {
        // Hold the long poll, as the Runtime API does while no event waits; the test kills the
        // process.
        return std::future::pending().await;
    }
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", "req-1".parse().unwrap());
    headers.insert(
        "lambda-runtime-deadline-ms",
        "4102444800000".parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:lull-webhook"
            .parse()
            .unwrap(),
    );
    (headers, handshake_event()).into_response()
}

async fn response(State(rt): State<Shared>, Path(_id): Path<String>, body: String) -> StatusCode {
    rt.lock().unwrap().responses.push(body);
    StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<Shared>, body: String) -> StatusCode {
    rt.lock().unwrap().init_errors.push(body);
    StatusCode::ACCEPTED
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_webhook_polls_without_the_store_and_its_bootstrap_tenant_answers() {
    let rt: Shared = Arc::default();
    let app = axum::Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            axum::routing::get(next),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            axum::routing::post(response),
        )
        .route(
            "/2018-06-01/runtime/init/error",
            axum::routing::post(init_error),
        )
        .with_state(rt.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_webhook"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "lull-webhook")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // Nothing listens there: DynamoDB and Secrets Manager are unreachable.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("LULL_TABLE", "lull-cold")
        .env(
            "LULL_TRIGGER_QUEUE_URL",
            "http://127.0.0.1:9/000000000000/lull-triggers",
        )
        .env("LULL_META_APP_SECRET", "boot-secret")
        .env("LULL_META_VERIFY_TOKEN", "boot-verify")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the webhook binary");
    let outcome = {
        let seen = rt.clone();
        wait_for(
            "the handshake's answer",
            Duration::from_secs(60),
            async move || {
                let r = seen.lock().unwrap();
                !r.responses.is_empty() || !r.init_errors.is_empty()
            },
        )
        .await;
        let r = rt.lock().unwrap();
        (r.init_errors.clone(), r.responses.clone())
    };
    let _ = child.kill();
    let _ = child.wait();
    let (init_errors, responses) = outcome;
    assert!(init_errors.is_empty(), "init failed: {init_errors:?}");
    let answer: serde_json::Value = serde_json::from_str(&responses[0]).expect("json response");
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(answer["body"], "1158201444", "{answer}");
}
