//! The reply guard and `on_newer = "supersede"` through a real `lull serve`: every batch carries
//! a guard URL on the webhook listener; it answers `current` until the user writes again, then
//! `superseded`; while the hand-off is open that marks the batch, and the next batch repeats it
//! as `context` (docs/batch.md, "The reply guard"). A forged or tampered token is a 404 that
//! reveals nothing.

use std::time::Duration;

use lull_testkit::{wait_for, PATIENCE};
use lull_tests::{ids, meta_text, Capture, Flags, Server};
use serde_json::Value;

const PNID: &str = "106540352242922";

/// GETs a guard; every answer, refusals too, must forbid caching (the answer changes).
async fn guard(url: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("guard GET");
    let status = resp.status().as_u16();
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "{url}: {status}"
    );
    (status, resp.text().await.expect("guard body"))
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).expect("guard answer is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_says_current_then_superseded_and_the_next_batch_carries_the_context() {
    let tmp = tempfile::tempdir().expect("tmp");
    let capture = Capture::start().await;
    let server = Server::start(
        &tmp.path().join("data"),
        &Flags::new()
            .set("--sink", capture.url.clone())
            .set("--quiet", "1s")
            .set("--on-newer", "supersede"),
    )
    .await;
    // The bot answers the hand-off after its AI step: held open until released.
    capture.hold();
    assert_eq!(
        server
            .post_meta(&meta_text(PNID, "16505551234", "wamid.g1", "2 pizzas"))
            .await,
        200
    );
    wait_for("the first hand-off", PATIENCE, async || {
        !capture.requests().is_empty()
    })
    .await;
    let first = capture.requests()[0].clone();
    let url = first["reply_guard"]["url"]
        .as_str()
        .expect("every batch carries a reply guard")
        .to_string();
    assert!(
        url.starts_with(&format!("http://{}/guard/", server.addr)),
        "{url}"
    );
    assert!(!url.contains("16505551234"), "no phone number in the URL");
    let (status, body) = guard(&url).await;
    assert_eq!(
        (status, json(&body)),
        (200, serde_json::json!({"state": "current"}))
    );

    // "and one coke" while the bot generates.
    assert_eq!(
        server
            .post_meta(&meta_text(PNID, "16505551234", "wamid.g2", "and one coke"))
            .await,
        200
    );
    let (status, body) = guard(&url).await;
    assert_eq!(
        (status, json(&body)),
        (
            200,
            serde_json::json!({"state": "superseded", "newer_messages": 1, "supersede": true})
        )
    );
    capture.release();
    let second = capture.next_batch(&first).await;
    assert_eq!(ids(&second), ["wamid.g2"], "messages stay exactly-once");
    assert_eq!(second["supersedes"], first["batch_id"]);
    let context: Vec<&str> = second["context"]
        .as_array()
        .expect("context")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(context, ["wamid.g1"]);
    assert_eq!(second["text"], "and one coke", "context is never in text");
    // The second batch's own guard: nothing came after it.
    let (status, body) = guard(second["reply_guard"]["url"].as_str().expect("url")).await;
    assert_eq!(
        (status, json(&body)),
        (200, serde_json::json!({"state": "current"}))
    );

    // Tampered and forged tokens: 404, the same reason, nothing else.
    let mut tampered = url.clone().into_bytes();
    let i = tampered.len() - 5;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    for bad in [
        tampered,
        format!("http://{}/guard/not-a-token", server.addr),
        format!("http://{}/guard/{}", server.addr, "A".repeat(5000)),
        // Past the longest token the route reads.
        format!("http://{}/guard/{}", server.addr, "A".repeat(9000)),
    ] {
        let (status, body) = guard(&bad).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body, "not found: no such reply guard");
    }
}

/// The declared way (docs/batch.md, "The reply guard"): the bot never asks the guard; the user
/// wrote again while it generated, so it discards its reply and answers the hand-off's POST
/// with `Lull-Reply: superseded`. The next batch carries the first as `context`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_off_answered_lull_reply_superseded_makes_the_next_batch_carry_the_context() {
    let tmp = tempfile::tempdir().expect("tmp");
    let capture = Capture::start().await;
    let server = Server::start(
        &tmp.path().join("data"),
        &Flags::new()
            .set("--sink", capture.url.clone())
            .set("--quiet", "1s")
            .set("--on-newer", "supersede"),
    )
    .await;
    capture.hold();
    let user = "16505551235";
    assert_eq!(
        server
            .post_meta(&meta_text(PNID, user, "wamid.d1", "a table for two"))
            .await,
        200
    );
    wait_for("the first hand-off", PATIENCE, async || {
        !capture.requests().is_empty()
    })
    .await;
    let first = capture.requests()[0].clone();
    assert_eq!(
        server
            .post_meta(&meta_text(PNID, user, "wamid.d2", "make it three"))
            .await,
        200
    );
    capture
        .state
        .declare_superseded
        .store(true, std::sync::atomic::Ordering::SeqCst);
    capture.release();
    let second = capture.next_batch(&first).await;
    assert_eq!(second["supersedes"], first["batch_id"]);
    let context: Vec<&str> = second["context"]
        .as_array()
        .expect("context")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(context, ["wamid.d1"]);
    assert_eq!(ids(&second), ["wamid.d2"], "messages stay exactly-once");
    assert_eq!(second["text"], "make it three");
}
