//! The consumer examples of `examples/consumers/` against a real `lull serve`: a batch arrives
//! signed, the example verifies it with the Standard Webhooks library of its language (Python's
//! and Node's `standardwebhooks` packages; the n8n Code node by hand), answers 200 and works; the
//! same request again is a duplicate; a tampered body is refused with 401. The n8n workflow's
//! reply guard branch runs against a real `lull serve` too (`tests/n8n_flow.js`).
//!
//! Needs the test command's environment (`scripts/test`): `LULL_TEST_PYTHON` with the pinned
//! `standardwebhooks`, and `npm ci` done in `examples/consumers/node`.

use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use lull_testkit::{wait_for, PATIENCE};
use lull_tests::{meta_text, repo, Consumer, Flags, Server};

const PN: &str = "106540352242922";
/// The consumer knows only the new secret; lull signs with both while the rotation is staged.
const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// One request lull sent, as the proxy saw it, and the consumer's answer.
#[derive(Clone)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
    status: u16,
}

#[derive(Clone)]
struct Proxy {
    to: String,
    client: reqwest::Client,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Forwards lull's hand-offs to the consumer unchanged, keeping a copy to replay and tamper with.
async fn forward(State(p): State<Proxy>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let status = send(&p.client, &p.to, &headers, body.clone()).await;
    p.seen.lock().expect("lock").push(Seen {
        headers,
        body,
        status,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY)
}

async fn send(client: &reqwest::Client, url: &str, headers: &HeaderMap, body: Bytes) -> u16 {
    let mut req = client.post(url).body(body);
    for name in [
        "content-type",
        "idempotency-key",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.clone());
        }
    }
    req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

async fn proxy(to: &str) -> (String, Proxy) {
    let p = Proxy {
        to: to.to_string(),
        client: reqwest::Client::new(),
        seen: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let url = format!("http://{}/batches", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/batches", post(forward))
        .with_state(p.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, p)
}

/// lull -> proxy -> consumer: one batch verified and worked on, a replay deduped, a tampered
/// copy refused. Returns the request lull sent, for further checks.
async fn round_trip(consumer: &Consumer, what: &str) -> Seen {
    let (url, p) = proxy(&consumer.url).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let secrets = format!("{OLD},{NEW}");
    let flags = Flags::new()
        .set("--quiet", "300ms")
        .set("--sink", url)
        .set("--sink-secret", secrets);
    let server = Server::start(&tmp.path().join("data"), &flags).await;
    let id = format!("wamid.{what}-1");
    let status = server
        .post_meta(&meta_text(PN, "16505551234", &id, "2 pizzas, one vegan"))
        .await;
    assert_eq!(status, 200);
    wait_for(format!("{what}: a batch worked on"), PATIENCE, async || {
        consumer.line("processed ").is_some()
    })
    .await;
    let seen = p.seen.lock().expect("lock")[0].clone();
    assert_eq!(seen.status, 200, "{what} acknowledged the batch");
    let batch: serde_json::Value = serde_json::from_slice(&seen.body).expect("batch JSON");
    let batch_id = batch["batch_id"].as_str().expect("batch id").to_string();
    let processed = consumer.line("processed ").expect("processed");
    assert!(
        processed.starts_with(&batch_id) && processed.contains("2 pizzas, one vegan"),
        "{what}: {processed}"
    );
    assert_eq!(
        seen.headers["webhook-id"].to_str().ok(),
        Some(batch_id.as_str())
    );

    let client = reqwest::Client::new();
    // The same request again (a retried hand-off): acknowledged, not worked on twice.
    let again = send(&client, &consumer.url, &seen.headers, seen.body.clone()).await;
    assert_eq!(again, 200, "{what}: a repeat is acknowledged");
    wait_for(
        format!("{what}: the repeat deduped"),
        PATIENCE,
        async || consumer.line("duplicate ").as_deref() == Some(batch_id.as_str()),
    )
    .await;
    // A tampered body under the same signature: refused.
    let tampered = String::from_utf8_lossy(&seen.body).replace("one vegan", "all vegan");
    let status = send(&client, &consumer.url, &seen.headers, tampered.into()).await;
    assert_eq!(status, 401, "{what}: a tampered batch is refused");
    wait_for(format!("{what}: the refusal"), PATIENCE, async || {
        consumer.line("refused ").is_some()
    })
    .await;
    let worked = consumer
        .lines
        .lock()
        .expect("lock")
        .iter()
        .filter(|l| l.starts_with("processed "))
        .count();
    assert_eq!(worked, 1, "{what}: worked on exactly once");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_consumer_verifies_dedupes_and_refuses_tampering() {
    let consumer = Consumer::python(NEW).await;
    round_trip(&consumer, "python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_consumer_verifies_dedupes_and_refuses_tampering() {
    let consumer = Consumer::node(NEW).await;
    let seen = round_trip(&consumer, "node").await;

    // The n8n workflow's Code node, run by node on the same request lull sent (tests/n8n_code.js
    // plays n8n's $input, binary helper and static data).
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = |body: &[u8]| {
        let req = serde_json::json!({
            "headers": seen.headers.iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect::<std::collections::HashMap<_, _>>(),
            "body": String::from_utf8_lossy(body),
        });
        let file = tmp.path().join("request.json");
        std::fs::write(&file, req.to_string()).expect("write request");
        let out = node(&["tests/n8n_code.js"], &file, &[("LULL_SINK_SECRET", NEW)]);
        String::from_utf8_lossy(&out).to_string()
    };
    let out = run(&seen.body);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["status"], 200, "{out}");
    assert_eq!(lines[0]["verified"], true, "{out}");
    assert_eq!(lines[0]["process"], true, "{out}");
    assert_eq!(lines[1]["duplicate"], true, "{out}");
    assert_eq!(lines[1]["verified"], true, "{out}");
    // "Answer at once" answers with the status and echoes `verified` as JSON (docs/batch.md,
    // "Telling `lull check` the signature verified").
    for line in &lines {
        assert_eq!(line["answer_status"], 200, "{out}");
        let body = line["answer_body"].as_str().expect("a JSON answer body");
        let body: serde_json::Value = serde_json::from_str(body).expect("JSON answer");
        assert_eq!(body, serde_json::json!({ "verified": true }), "{out}");
    }
    assert_eq!(lines[1]["process"], false, "{out}");
    let tampered = String::from_utf8_lossy(&seen.body).replace("one vegan", "all vegan");
    let out = run(tampered.as_bytes());
    let first: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("a line")).expect("JSON");
    assert_eq!(first["status"], 401, "{out}");
    assert_eq!(first["verified"], false, "{out}");
    assert_eq!(first["answer_status"], 401, "{out}");
    assert_eq!(first["answer_body"], r#"{"verified":false}"#, "{out}");
    assert_eq!(first["process"], false, "{out}");
}

/// `node SCRIPT examples/consumers/n8n/lull-batches.json [ARGS..] FILE` with `env` (the script and
/// its arguments in `script`, repository paths first); its stdout, after it succeeded.
fn node(script: &[&str], file: &std::path::Path, env: &[(&str, &str)]) -> Vec<u8> {
    let mut cmd = Command::new("node");
    cmd.arg(repo().join(script[0]))
        .arg(repo().join("examples/consumers/n8n/lull-batches.json"))
        .args(&script[1..])
        .arg(file)
        .envs(env.iter().copied());
    let out = cmd.output().expect("run node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the n8n workflow from its AI step on `batch` (tests/n8n_flow.js plays n8n's Code, HTTP
/// Request, If, Wait and No Operation nodes), returning the nodes it ran, the last one and its
/// output.
fn n8n_flow(batch: &serde_json::Value) -> (Vec<String>, String, serde_json::Value) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("input.json");
    std::fs::write(&file, serde_json::json!({ "batch": batch }).to_string()).expect("write");
    let out = node(&["tests/n8n_flow.js", "AI step (replace me)"], &file, &[]);
    let run: serde_json::Value = serde_json::from_slice(&out).expect("one JSON line");
    let path = run["path"]
        .as_array()
        .expect("path")
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    let end = run["end"].as_str().expect("end").to_string();
    (path, end, run["json"].clone())
}

/// An Evolution `messages.upsert` or `presence.update` for the tenant of the n8n test.
async fn post_evolution(server: &Server, body: serde_json::Value) {
    let headers = [("apikey", "evo-token-n8n".to_string())];
    let status = server
        .post_json("/webhook/evolution", body.to_string().as_bytes(), &headers)
        .await;
    assert_eq!(status, 200, "{}", server.logs());
}

const EVO_USER: &str = "5511987650001@s.whatsapp.net";

fn evolution_text(id: &str, text: &str) -> serde_json::Value {
    serde_json::json!({
        "event": "messages.upsert",
        "instance": "shop",
        "data": {
            "key": {"remoteJid": EVO_USER, "fromMe": false, "id": id},
            "pushName": "Cliente",
            "message": {"conversation": text},
            "messageType": "conversation",
            "messageTimestamp": lull_core::Millis::now_wall().0 / 1000,
            "source": "android"
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_n8n_flow_asks_the_guard_waits_while_the_user_types_and_drops_a_superseded_reply() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let capture = lull_tests::Capture::start().await;
    let config = tmp.path().join("lull.toml");
    std::fs::write(
        &config,
        format!(
            r#"
sink = "{}"

[[tenants]]
id = "shop"
quiet = "1s"
on_newer = "supersede"
typing = true
typing_grace = "1s"
typing_hold = "3s"
typing_stop_grace = "2s"

[tenants.evolution]
instances = ["shop"]
token = "evo-token-n8n"
"#,
            capture.url
        ),
    )
    .expect("write lull.toml");
    let server = Server::start_with(
        &tmp.path().join("data"),
        &Flags::new().set("--config", config.to_str().expect("utf-8 path")),
    )
    .await;
    // The bot answers lull's POST after its AI step: the hand-off stays open meanwhile.
    capture.hold();
    post_evolution(&server, evolution_text("N8N1", "2 pizzas")).await;
    wait_for("the first hand-off", PATIENCE, async || {
        !capture.requests().is_empty()
    })
    .await;
    let first = capture.requests()[0].clone();

    // Nothing newer: the guard says current and the flow sends.
    let (path, end, out) = n8n_flow(&first);
    assert_eq!(end, "Send the reply (replace me)", "{path:?}");
    assert_eq!(out["guard"]["state"], "current", "{out}");
    assert_eq!(out["batch_id"], first["batch_id"]);
    assert!(!path.iter().any(|n| n.starts_with("Wait")), "{path:?}");

    // The user starts typing again: the flow holds the reply, asks again until the typing
    // hold (3 s) ran out, then sends.
    post_evolution(
        &server,
        serde_json::json!({
            "event": "presence.update",
            "instance": "shop",
            "data": {"id": EVO_USER, "presences": {EVO_USER: {"lastKnownPresence": "composing"}}}
        }),
    )
    .await;
    let (path, end, out) = n8n_flow(&first);
    let waits = path.iter().filter(|n| *n == "Wait, then ask again").count();
    assert!(waits >= 1, "the flow waited while the user typed: {path:?}");
    assert_eq!(end, "Send the reply (replace me)", "{path:?}");
    assert_eq!(out["guard"]["state"], "current", "{out}");

    // "and one coke" while the bot generates: superseded, the reply is dropped.
    post_evolution(&server, evolution_text("N8N2", "and one coke")).await;
    let (path, end, out) = n8n_flow(&first);
    assert_eq!(end, "Drop: the next batch repeats this one", "{path:?}");
    assert_eq!(out["state"], "superseded", "{out}");
    assert_eq!(out["supersede"], true, "{out}");

    // The next batch repeats the first as context: the flow answers the whole thought once.
    capture.release();
    let second = capture.next_batch(&first).await;
    assert_eq!(second["supersedes"], first["batch_id"]);
    let (path, end, out) = n8n_flow(&second);
    assert_eq!(end, "Send the reply (replace me)", "{path:?}");
    assert_eq!(out["guard"]["state"], "current", "{out}");
    let reply = out["reply"].as_str().expect("reply");
    assert!(reply.contains("2 pizzas\nand one coke"), "{reply}");
}
