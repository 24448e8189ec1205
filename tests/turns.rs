//! End of turn through a real `lull serve` and its real routes: Evolution `presence.update`
//! holding and releasing a window, a human operator's `fromMe` message pausing a conversation
//! (the bot's own API replies do not), `lull conversations pause|resume`, the ops listener's
//! routes and the webhook listener's authenticated admin routes (a tenant's `admin_token` in
//! `lull.toml`, and `--admin-token` for the single tenant of flags). Batches say why they waited
//! (`waited`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lull_testkit::{wait_for, PATIENCE};
use lull_tests::{ids, lull_bin, Capture, Flags, Server};
use serde_json::{json, Value};

const TOKEN: &str = "evo-token-for-tests";
const ADMIN_TOKEN: &str = "admin-token-for-tests";

fn user(n: u32) -> String {
    format!("55119876500{n:02}@s.whatsapp.net")
}

fn key(n: u32) -> String {
    format!("evolution|shop|{}", user(n))
}

async fn start(tmp: &Path, capture: &Capture) -> Server {
    start_with_settings(tmp, capture, "").await
}

/// [`start`], with `settings` (top-level `lull.toml` lines) added.
async fn start_with_settings(tmp: &Path, capture: &Capture, settings: &str) -> Server {
    let config = tmp.join("lull.toml");
    std::fs::write(
        &config,
        format!(
            r#"
{settings}
sink = "{}"

[[tenants]]
id = "shop"
quiet = "2s"
max_wait = "60s"
typing = true
typing_grace = "1s"
typing_hold = "40s"
typing_stop_grace = "2s"
pause = "30m"
admin_token = "{ADMIN_TOKEN}"

[tenants.evolution]
instances = ["shop"]
token = "{TOKEN}"
"#,
            capture.url
        ),
    )
    .expect("write lull.toml");
    Server::start_with(
        &tmp.join("data"),
        &Flags::new().set("--config", config.to_str().expect("utf-8 path")),
    )
    .await
}

async fn post(server: &Server, body: &Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("http://{}/webhook/evolution", server.addr))
        .header("apikey", TOKEN)
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 200, "{}", server.logs());
    resp.json().await.expect("json answer")
}

fn message(n: u32, id: &str, from_me: bool, source: &str) -> Value {
    json!({
        "event": "messages.upsert",
        "instance": "shop",
        "data": {
            "key": {"remoteJid": user(n), "fromMe": from_me, "id": id},
            "pushName": "Cliente",
            "message": {"conversation": format!("text of {id}")},
            "messageType": "conversation",
            "messageTimestamp": lull_core::Millis::now_wall().0 / 1000,
            "source": source
        }
    })
}

fn presence(n: u32, kind: &str) -> Value {
    json!({
        "event": "presence.update",
        "instance": "shop",
        "data": {"id": user(n), "presences": {user(n): {"lastKnownPresence": kind}}}
    })
}

/// The open window of conversation `n` as `lull inspect --json` shows it.
fn conversation(server: &Server, n: u32) -> Option<Value> {
    server
        .inspect()
        .into_iter()
        .find(|c| c["conversation"] == key(n))
}

fn batches_of(capture: &Capture, n: u32) -> Vec<Value> {
    capture
        .unique_batches()
        .into_iter()
        .filter(|b| b["conversation"]["user"] == user(n))
        .collect()
}

/// `lull conversations ARGS` for `server`'s data directory (through its ops listener).
fn lull(args: &[&str], tmp: &Path, server: &Server) -> (bool, String) {
    let out = Command::new(lull_bin())
        .arg("conversations")
        .arg("--ops-listen")
        .arg(server.ops_addr.to_string())
        .arg("--config")
        .arg(tmp.join("lull.toml"))
        .arg("--data-dir")
        .arg(tmp.join("data"))
        .args(args)
        .output()
        .expect("lull conversations");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composing_holds_a_window_and_available_releases_it_after_the_grace() {
    let tmp = tempfile::tempdir().expect("tmp");
    let capture = Capture::start().await;
    let server = start(tmp.path(), &capture).await;
    // No window: nothing to hold, nothing stored.
    let answer = post(&server, &presence(1, "composing")).await;
    assert_eq!(answer["presence"], 0, "{answer}");
    assert!(conversation(&server, 1).is_none());

    post(&server, &message(1, "m1", false, "android")).await;
    let answer = post(&server, &presence(1, "composing")).await;
    assert_eq!(answer["presence"], 1, "{answer}");
    let c = conversation(&server, 1).expect("conversation 1");
    assert_eq!(c["window"]["waiting_for"], "typing_hold", "{c}");
    assert_eq!(c["window"]["messages"], 1, "presence is not a message: {c}");
    assert!(batches_of(&capture, 1).is_empty(), "held while composing");

    post(&server, &message(1, "m2", false, "android")).await;
    post(&server, &presence(1, "available")).await;
    wait_for("the batch after the grace", PATIENCE, async || {
        !batches_of(&capture, 1).is_empty()
    })
    .await;
    let b = &batches_of(&capture, 1)[0];
    assert_eq!(ids(b), ["m1", "m2"]);
    assert_eq!(b["reason"], "quiet");
    assert_eq!(b["waited"], "typing_grace", "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_operator_pauses_a_conversation_the_bot_does_not_and_resume_hands_off() {
    let tmp = tempfile::tempdir().expect("tmp");
    let capture = Capture::start().await;
    let server = start(tmp.path(), &capture).await;

    // The bot's own reply through Evolution's API (source web) pauses nothing.
    post(&server, &message(2, "u2-1", false, "android")).await;
    post(&server, &message(2, "bot-1", true, "web")).await;
    // A person on the business phone (fromMe from ios) takes conversation 3 over.
    post(&server, &message(3, "u3-1", false, "android")).await;
    let answer = post(&server, &message(3, "op-1", true, "ios")).await;
    assert_eq!(
        answer["accepted"], 0,
        "an operator message is not buffered: {answer}"
    );
    post(&server, &message(3, "u3-2", false, "android")).await;

    wait_for("conversation 2's batch", PATIENCE, async || {
        !batches_of(&capture, 2).is_empty()
    })
    .await;
    assert_eq!(ids(&batches_of(&capture, 2)[0]), ["u2-1"]);
    let c = conversation(&server, 3).expect("conversation 3");
    assert!(c["paused_until"].is_string(), "{c}");
    assert_eq!(c["window"]["waiting_for"], "paused", "{c}");
    assert_eq!(c["window"]["messages"], 2, "still collecting: {c}");
    assert!(batches_of(&capture, 3).is_empty(), "paused");

    // The CLI, through the running server's ops listener.
    let (ok, out) = lull(&["resume", &key(3)], tmp.path(), &server);
    assert!(ok, "{out}");
    wait_for(
        "conversation 3's batch after resume",
        PATIENCE,
        async || !batches_of(&capture, 3).is_empty(),
    )
    .await;
    assert_eq!(ids(&batches_of(&capture, 3)[0]), ["u3-1", "u3-2"]);
    assert_eq!(
        batches_of(&capture, 3)[0]["waited"],
        "paused",
        "held past its quiet period"
    );

    // `lull conversations pause` and the admin route's resume.
    post(&server, &message(4, "u4-1", false, "android")).await;
    let (ok, out) = lull(&["pause", &key(4), "--for", "2h"], tmp.path(), &server);
    assert!(ok && out.contains("paused until"), "{out}");
    let c = conversation(&server, 4).expect("conversation 4");
    assert_eq!(c["window"]["waiting_for"], "paused", "{c}");
    let (ok, out) = lull(&["pause", &key(4), "--for", "soon"], tmp.path(), &server);
    assert!(!ok && out.contains("soon"), "{out}");
    let (ok, out) = lull(&["pause", "not-a-key"], tmp.path(), &server);
    assert!(!ok && out.contains("not-a-key"), "{out}");
    let admin = reqwest::Client::new();
    let resp = admin
        .post(format!("http://{}/conversations/resume", server.ops_addr))
        .json(&json!({"key": key(4)}))
        .send()
        .await
        .expect("admin resume");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = admin
        .post(format!("http://{}/conversations/pause", server.ops_addr))
        .json(&json!({"key": key(99)}))
        .send()
        .await
        .expect("admin pause");
    assert_eq!(resp.status().as_u16(), 404, "a conversation lull never saw");
    wait_for("conversation 4's batch", PATIENCE, async || {
        !batches_of(&capture, 4).is_empty()
    })
    .await;
    assert_eq!(ids(&batches_of(&capture, 4)[0]), ["u4-1"]);
}

/// Pauses conversation `n` through the webhook listener's admin route with `token` (a wrong
/// token first: 401), then resumes it: its one message `u<n>-1` is handed off.
async fn pause_and_resume_through_the_admin_routes(
    server: &Server,
    capture: &Capture,
    n: u32,
    token: &str,
) {
    post(server, &message(n, &format!("u{n}-1"), false, "android")).await;
    let admin = |action: &str, token: &str| {
        reqwest::Client::new()
            .post(format!(
                "http://{}/admin/conversations/{action}",
                server.addr
            ))
            .bearer_auth(token)
            .json(&json!({"key": key(n)}))
            .timeout(Duration::from_secs(10))
            .send()
    };
    let resp = admin("pause", "not-the-token").await.expect("admin pause");
    assert_eq!(resp.status().as_u16(), 401);
    let resp = admin("pause", token).await.expect("admin pause");
    assert_eq!(resp.status().as_u16(), 200, "{}", server.logs());
    let text = resp.text().await.expect("answer");
    assert!(text.starts_with("paused until"), "{text}");
    let c = conversation(server, n).expect("the conversation");
    assert_eq!(c["window"]["waiting_for"], "paused", "{c}");
    let resp = admin("resume", token).await.expect("admin resume");
    assert_eq!(resp.status().as_u16(), 200);
    wait_for("the batch after resume", PATIENCE, async || {
        !batches_of(capture, n).is_empty()
    })
    .await;
    assert_eq!(ids(&batches_of(capture, n)[0]), [format!("u{n}-1")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_listeners_admin_routes_take_the_tenants_token() {
    let tmp = tempfile::tempdir().expect("tmp");
    let capture = Capture::start().await;
    let server = start(tmp.path(), &capture).await;
    pause_and_resume_through_the_admin_routes(&server, &capture, 5, ADMIN_TOKEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_tenant_of_flags_takes_admin_token_from_the_flag() {
    // No lull.toml: the one tenant of flags and environment (as the webhook Lambda's bootstrap
    // tenant), its admin tokens from --admin-token (LULL_ADMIN_TOKEN), two while rotating.
    let tmp = tempfile::tempdir().expect("tmp");
    let capture = Capture::start().await;
    let server = Server::start_with(
        &tmp.path().join("data"),
        &Flags::new()
            .set("--sink", capture.url.clone())
            .set("--quiet", "2s")
            .set("--evolution-token", TOKEN)
            .set("--admin-token", format!("adm-old,{ADMIN_TOKEN}")),
    )
    .await;
    pause_and_resume_through_the_admin_routes(&server, &capture, 6, ADMIN_TOKEN).await;
    pause_and_resume_through_the_admin_routes(&server, &capture, 7, "adm-old").await;
}

/// The ops listener's pause (and redrive) as a web page in the operator's browser would call
/// them (issue 23: a `text/plain` POST with a foreign `Origin` paused a conversation for a
/// week): refused, nothing paused. With an ops token set, only requests carrying it pass, and
/// `lull conversations` sends it (read from the same `lull.toml`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ops_routes_refuse_cross_site_and_non_json_requests_and_want_the_token() {
    const OPS_TOKEN: &str = "ops-secret";
    let tmp = tempfile::tempdir().expect("tmp");
    let capture = Capture::start().await;
    let server = start_with_settings(
        tmp.path(),
        &capture,
        &format!("ops_token = \"{OPS_TOKEN}\""),
    )
    .await;
    post(&server, &message(5, "u5-1", false, "android")).await;

    let http = reqwest::Client::new();
    let ops = |path: &str| format!("http://{}{path}", server.ops_addr);
    let pause = json!({"key": key(5), "for": "7days"}).to_string();
    let send = async |path: &str, headers: &[(&str, &str)]| {
        let mut req = http.post(ops(path)).body(pause.clone());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("ops request").status().as_u16()
    };
    let bearer = format!("Bearer {OPS_TOKEN}");
    // What any web page can send without a CORS preflight.
    let page = [
        ("content-type", "text/plain"),
        ("origin", "https://evil.example"),
    ];
    assert_eq!(send("/conversations/pause", &page).await, 403);
    assert_eq!(send("/redrive", &page).await, 403);
    let fetch = [
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
        ("sec-fetch-site", "cross-site"),
    ];
    assert_eq!(send("/conversations/pause", &fetch).await, 403);
    // Not a browser, but no token, or not JSON.
    let json_only = [("content-type", "application/json")];
    assert_eq!(send("/conversations/pause", &json_only).await, 401);
    let wrong = [
        ("content-type", "application/json"),
        ("authorization", "Bearer nope"),
    ];
    assert_eq!(send("/conversations/pause", &wrong).await, 401);
    let text = [
        ("content-type", "text/plain"),
        ("authorization", bearer.as_str()),
    ];
    assert_eq!(send("/conversations/pause", &text).await, 415);
    assert_eq!(send("/redrive", &text).await, 415);

    // Nothing was paused: the message is handed off after its quiet period.
    wait_for("conversation 5's batch", PATIENCE, async || {
        !batches_of(&capture, 5).is_empty()
    })
    .await;
    assert_eq!(ids(&batches_of(&capture, 5)[0]), ["u5-1"]);

    // The operator's own tools pass: the CLI with the token of lull.toml, and redrive.
    post(&server, &message(5, "u5-2", false, "android")).await;
    let (ok, out) = lull(&["pause", &key(5), "--for", "2h"], tmp.path(), &server);
    assert!(ok && out.contains("paused until"), "{out}");
    let c = conversation(&server, 5).expect("conversation 5");
    assert_eq!(c["window"]["waiting_for"], "paused", "{c}");
    let ok = [
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
    ];
    assert_eq!(send("/redrive", &ok).await, 200);
    let redrive = Command::new(lull_bin())
        .args([
            "redrive",
            "--ops-listen",
            &server.ops_addr.to_string(),
            "--config",
        ])
        .arg(tmp.path().join("lull.toml"))
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .output()
        .expect("lull redrive");
    assert!(
        redrive.status.success(),
        "{}",
        String::from_utf8_lossy(&redrive.stderr)
    );
}
