//! `WEBHOOK_ROUTES` lists exactly the routes the router serves (deployments expose that list).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use lull_ingest::WEBHOOK_ROUTES;

fn concrete(path: &str) -> String {
    path.replace("{event}", "messages-upsert")
        .replace("{secret}", "not-the-token")
}

#[tokio::test]
async fn every_listed_route_is_served() {
    let h = Harness::solo();
    for (method, path) in WEBHOOK_ROUTES {
        let req = Request::builder()
            .method(*method)
            .uri(concrete(path))
            .body(Body::empty())
            .unwrap();
        let (status, body) = h.send(req).await;
        if *path == "/guard/{token}" {
            // A token that does not open is answered 404 by design (a guard tells nothing about
            // other batches): served means the guard's own answer, not the router's empty 404.
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
            assert!(body.starts_with("not found: "), "{method} {path}: {body:?}");
            continue;
        }
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status} {body}"
        );
        // Unsigned, empty requests are refused and store nothing.
        assert!(status.is_client_error(), "{method} {path}: {status}");
    }
    h.assert_empty();
}

#[tokio::test]
async fn nothing_else_is_served() {
    let h = Harness::solo();
    for (method, path) in [
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/webhook/twilio"),
        ("POST", "/webhook/evolution/k/s/e/extra"),
        ("POST", "/webhook/other"),
        ("DELETE", "/webhook/meta"),
    ] {
        let listed = WEBHOOK_ROUTES.contains(&(method, path));
        assert!(!listed, "{method} {path} must not be listed");
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let (status, _) = h.send(req).await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status}"
        );
    }
}
