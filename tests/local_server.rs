//! The local server end to end: the real `lull` binary, Meta-shaped webhooks, an HTTP capture
//! sink on loopback, kill -9 and restarts.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use lull_testkit::{wait_for, PATIENCE};
use lull_tests::{ids, meta_text, Capture, Flags, Server};
use serde_json::Value;

const PN: &str = "106540352242922";

/// Short timings for tests that only need a window to close soon; a test whose messages must
/// share a window sets a quiet period long against the gaps it sends them with.
fn fast(sink: &str) -> Flags {
    Flags::new()
        .set("--quiet", "300ms")
        .set("--max-wait", "1s")
        .set("--sweep-interval", "200ms")
        .set("--retry-min", "50ms")
        .set("--retry-max", "300ms")
        .set("--sink", sink)
}

async fn start(dir: &std::path::Path, flags: &Flags) -> Server {
    Server::start(dir, flags).await
}

fn ms(v: &Value) -> u64 {
    lull_core::Millis::parse_rfc3339(v.as_str().unwrap_or(""))
        .map(|m| m.0)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_inside_the_quiet_period_is_one_batch_never_early() {
    // The real server, with margins a loaded machine cannot eat. (The quiet period's edge, a
    // message at 7.8 s of 8 s, is a scenario on the core's manual clock: tests/scenarios.rs.)
    // The second message comes a third of the way into the quiet period: late enough that a
    // window closing at first message + quiet would close before last message + quiet (checked
    // below), early enough that two seconds of stalls on a loaded machine still leave it inside.
    const QUIET: Duration = Duration::from_secs(3);
    const GAP: Duration = Duration::from_secs(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Capture::start().await;
    let flags = fast(&sink.url)
        .set("--quiet", humantime::format_duration(QUIET).to_string())
        .set("--max-wait", "20s");
    let server = start(&tmp.path().join("data"), &flags).await;
    assert_eq!(
        server
            .post_meta(&meta_text(PN, "5511900000001", "w1", "hi"))
            .await,
        200
    );
    // The scenario's pause between two messages of one burst (what is tested, not a wait).
    tokio::time::sleep(GAP).await;
    assert_eq!(
        server
            .post_meta(&meta_text(PN, "5511900000001", "w2", "2 pizzas"))
            .await,
        200
    );
    // A message right after from someone else is a conversation of its own.
    assert_eq!(
        server
            .post_meta(&meta_text(PN, "5511900000002", "x1", "yo"))
            .await,
        200
    );
    wait_for("two batches", PATIENCE, async || sink.acked().len() >= 2).await;
    let acked = sink.acked();
    let b = acked
        .iter()
        .find(|b| b["conversation"]["user"] == "5511900000001")
        .expect("batch of user 1");
    assert_eq!(ids(b), vec!["w1", "w2"]);
    assert_eq!(b["reason"], "quiet");
    assert_eq!(b["text"], "hi\n2 pizzas");
    let first = ms(&b["messages"][0]["received_at"]);
    let last = ms(&b["messages"][1]["received_at"]);
    assert!(last >= first + GAP.as_millis() as u64, "{b}");
    assert!(
        ms(&b["closed_at"]) >= last + QUIET.as_millis() as u64,
        "closed early: {b}"
    );
    // A duplicate delivery of w1 (Meta retries) is dropped, never a new batch.
    assert_eq!(
        server
            .post_meta(&meta_text(PN, "5511900000001", "w1", "hi"))
            .await,
        200
    );
    let metrics = server
        .get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("lull_duplicates_total 1"), "{metrics}");
    assert!(
        metrics.contains("lull_batches_total{reason=\"quiet\"} 2"),
        "{metrics}"
    );
    assert_eq!(sink.acked().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_during_a_hand_off_goes_to_the_next_batch_after_the_ack() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Capture::start().await;
    let server = start(&tmp.path().join("data"), &fast(&sink.url)).await;
    sink.hold();
    assert_eq!(
        server
            .post_meta(&meta_text(PN, "5511900000003", "h1", "a"))
            .await,
        200
    );
    wait_for("hand-off in flight", PATIENCE, async || {
        sink.state.in_flight.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        server
            .post_meta(&meta_text(PN, "5511900000003", "h2", "b"))
            .await,
        200
    );
    // Wait until the second window has been due for a while (five sweep intervals: long enough
    // for a timer or a sweep to have handed it off, had the server not waited for the first
    // batch's acknowledgement) while the first hand-off is still held.
    wait_for("the second window well past due", PATIENCE, async || {
        server.inspect().iter().any(|c| {
            c["window"]["due_at"]
                .as_str()
                .is_some_and(|d| ms(&Value::from(d)) + 1000 < lull_core::Millis::now_wall().0)
        })
    })
    .await;
    assert_eq!(
        sink.requests().len(),
        1,
        "batch g+1 handed off before g was acknowledged"
    );
    sink.release();
    wait_for("second batch", PATIENCE, async || sink.acked().len() >= 2).await;
    let acked = sink.acked();
    assert_eq!(ids(&acked[0]), vec!["h1"]);
    assert_eq!(ids(&acked[1]), vec!["h2"]);
    assert_eq!(
        acked[1]["generation"].as_u64(),
        acked[0]["generation"].as_u64().map(|g| g + 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_conversations_writing_concurrently() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Capture::start().await;
    // A burst of three from one user stays one batch while 199 other writers queue for the same
    // store: the quiet period is long against the time 600 appends take on a loaded machine.
    // 200 writers at once: above the default bound on requests in flight (64), which would shed
    // some with 503 for the gateway to retry; this test is about concurrent appends.
    let flags = fast(&sink.url)
        .set("--quiet", "5s")
        .set("--max-wait", "20s")
        .set("--max-concurrent-requests", "256");
    let server = start(&tmp.path().join("data"), &flags).await;
    let server = std::sync::Arc::new(server);
    let mut tasks = tokio::task::JoinSet::new();
    for u in 0..200 {
        let server = server.clone();
        tasks.spawn(async move {
            let user = format!("55119{u:08}");
            for i in 0..3 {
                let body = meta_text(PN, &user, &format!("c{u}-{i}"), &format!("m{i}"));
                assert_eq!(server.post_meta(&body).await, 200);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("writer");
    }
    // Every message once, each conversation's messages in receive order across its batches
    // (under load a gap may exceed the quiet period and split a burst: that is allowed).
    wait_for("600 messages", PATIENCE, async || {
        sink.acked().iter().map(|b| ids(b).len()).sum::<usize>() >= 600
    })
    .await;
    let mut acked = sink.acked();
    acked.sort_by_key(|b| b["generation"].as_u64());
    let mut per_user: HashMap<String, Vec<String>> = HashMap::new();
    for b in &acked {
        let user = b["conversation"]["user"].as_str().unwrap_or("").to_string();
        per_user.entry(user).or_default().extend(ids(b));
    }
    assert_eq!(per_user.len(), 200);
    for got in per_user.values() {
        let u = got[0].split('-').next().unwrap_or("").to_string();
        assert_eq!(got, &(0..3).map(|i| format!("{u}-{i}")).collect::<Vec<_>>());
    }
    assert!(acked.len() < 300, "{} batches for 200 bursts", acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_burst_and_mid_hand_off_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let sink = Capture::start().await;
    let flags = fast(&sink.url);
    let mut server = start(&data, &flags).await;
    // A hand-off in flight when the process dies: the sink holds the first request.
    sink.hold();
    assert_eq!(
        server
            .post_meta(&meta_text(PN, "5511911111111", "k0", "first"))
            .await,
        200
    );
    wait_for("hand-off in flight", PATIENCE, async || {
        sink.state.in_flight.load(Ordering::SeqCst) == 1
    })
    .await;
    // Bursts from 20 conversations; kill -9 while they are being written.
    let server_addr = server.addr;
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = tokio::task::JoinSet::new();
    for u in 0..20 {
        let accepted = accepted.clone();
        writers.spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..30 {
                let id = format!("k{u}-{i}");
                let body = meta_text(PN, &format!("55119222{u:05}"), &id, "x");
                let ok = client
                    .post(format!("http://{server_addr}/webhook/meta"))
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    return;
                }
                accepted.lock().expect("lock").push(id);
            }
        });
    }
    wait_for("some accepted", PATIENCE, async || {
        accepted.lock().expect("lock").len() >= 100
    })
    .await;
    server.kill9();
    while writers.join_next().await.is_some() {}
    let mut accepted: Vec<String> = accepted.lock().expect("lock").clone();
    accepted.push("k0".into());
    sink.release();
    // Restart on the same data directory: every accepted message is still handed off.
    let server = start(&data, &flags).await;
    let want: HashSet<String> = accepted.iter().cloned().collect();
    wait_for("every accepted message", PATIENCE, async || {
        let got: HashSet<String> = sink.unique_batches().iter().flat_map(ids).collect();
        want.is_subset(&got)
    })
    .await;
    // Once per batch id: replays carry the same id and the same content.
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for b in sink.acked() {
        let id = b["batch_id"].as_str().unwrap_or("").to_string();
        if let Some(prev) = by_id.get(&id) {
            assert_eq!(prev["messages"], b["messages"], "a replay changed content");
        }
        by_id.insert(id, b);
    }
    let mut seen = HashSet::new();
    for b in sink.unique_batches() {
        for id in ids(&b) {
            assert!(seen.insert(id.clone()), "message {id} in two batches");
        }
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_holds_back_only_its_conversation_and_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Capture::start().await;
    let server = start(&tmp.path().join("data"), &fast(&sink.url)).await;
    *sink.state.failing_user.lock().expect("lock") = Some("5511933333333".into());
    assert_eq!(
        server
            .post_meta(&meta_text(PN, "5511933333333", "f1", "a"))
            .await,
        200
    );
    assert_eq!(
        server
            .post_meta(&meta_text(PN, "5511944444444", "g1", "b"))
            .await,
        200
    );
    wait_for("the healthy conversation's batch", PATIENCE, async || {
        sink.acked().iter().any(|b| ids(b) == ["g1"])
    })
    .await;
    wait_for("three failed attempts", PATIENCE, async || {
        sink.requests().iter().filter(|b| ids(b) == ["f1"]).count() >= 3
    })
    .await;
    // Pending, visible, not dropped.
    assert!(server
        .inspect()
        .iter()
        .any(|c| c["pending"].as_array().is_some_and(|p| !p.is_empty())));
    *sink.state.failing_user.lock().expect("lock") = None;
    wait_for("the held batch", PATIENCE, async || {
        sink.acked().iter().any(|b| ids(b) == ["f1"])
    })
    .await;
    let metrics = server
        .get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("lull_sink_failures_total{kind=\"retryable\"}"),
        "{metrics}"
    );
    let ids_of_f1: HashSet<_> = sink
        .requests()
        .iter()
        .filter(|b| ids(b) == ["f1"])
        .map(|b| b["batch_id"].clone().to_string())
        .collect();
    assert_eq!(ids_of_f1.len(), 1, "retries carry the same batch id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_keeps_open_windows_for_the_next_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let sink = Capture::start().await;
    // The window must still be open when the server has exited: the quiet period is long against
    // a clean shutdown on a loaded machine.
    const QUIET: Duration = Duration::from_secs(5);
    let flags = fast(&sink.url)
        .set("--quiet", humantime::format_duration(QUIET).to_string())
        .set("--max-wait", "20s");
    let mut server = start(&data, &flags).await;
    assert_eq!(
        server
            .post_meta(&meta_text(PN, "5511955555555", "s1", "a"))
            .await,
        200
    );
    assert!(server.terminate().await, "clean exit:\n{}", server.logs());
    assert!(sink.acked().is_empty(), "never early");
    let _server = start(&data, &flags).await;
    wait_for("the window after restart", PATIENCE, async || {
        sink.acked().iter().any(|b| ids(b) == ["s1"])
    })
    .await;
    let b = &sink.acked()[0];
    let received = ms(&b["messages"][0]["received_at"]);
    assert!(
        ms(&b["closed_at"]) >= received + QUIET.as_millis() as u64,
        "closed early across the restart: {b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_routes_answer_on_their_own_listener_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = start(&tmp.path().join("data"), &fast("stdout")).await;
    let health = server.get("/healthz").await.expect("healthz");
    assert_eq!(health.status(), 200);
    // A proxy in front of the webhook port never exposes them.
    for path in ["/healthz", "/metrics"] {
        let r = server.get_webhook(path).await.expect("webhook listener");
        assert_eq!(r.status(), 404, "{path} on the webhook listener");
    }
    let metrics = server
        .get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for name in lull_core::metrics::ALL {
        if *name != lull_core::metrics::HANDOFF_LAG {
            assert!(metrics.contains(name), "{name} missing from /metrics");
        }
    }
}

/// Issue 11 §6: without `--allow-unsigned` an unsigned webhook is refused (401) even on
/// loopback, and the start-up log says how to opt in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_webhooks_need_the_explicit_opt_in() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        &tmp.path().join("data"),
        &Flags::new().set("--sink", "stdout"),
    )
    .await;
    assert_eq!(
        server
            .post_meta(&meta_text(PN, "5511900000009", "u1", "hi"))
            .await,
        401
    );
    assert!(
        server.logs().contains("--allow-unsigned"),
        "{}",
        server.logs()
    );
    let tmp2 = tempfile::tempdir().expect("tempdir");
    let open = start(&tmp2.path().join("data"), &fast("stdout")).await;
    assert_eq!(
        open.post_meta(&meta_text(PN, "5511900000009", "u1", "hi"))
            .await,
        200
    );
    assert!(open.logs().contains("UNSIGNED MODE"), "{}", open.logs());
}

#[test]
fn bad_configuration_is_refused_naming_the_setting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // (flags, environment, what the error must name)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--quiet", "soon"], &[], "--quiet"),
        (&[], &[("LULL_MAX_WAIT", "forever")], "LULL_MAX_WAIT"),
        (&["--listen", "0.0.0.0:18081"], &[], "not loopback"),
        (&["--listen", "nowhere"], &[], "LULL_LISTEN"),
        (
            &[
                "--listen",
                "0.0.0.0:18081",
                "--allow-unsigned",
                "--generic-secret",
                "s",
            ],
            &[],
            "LULL_ALLOW_UNSIGNED",
        ),
        (&["--ops-listen", "here"], &[], "LULL_OPS_LISTEN"),
        (&["--sink", "ftp://example"], &[], "LULL_SINK"),
        (&["--durability", "paranoid"], &[], "LULL_DURABILITY"),
        (&["--quiet", "10s", "--max-wait", "5s"], &[], "max wait"),
    ];
    for (args, env, needle) in cases {
        let out = std::process::Command::new(lull_tests::lull_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(tmp.path().join("never"))
            .args(*args)
            .envs(env.iter().copied())
            .output()
            .expect("run lull");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?} was accepted");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let help = std::process::Command::new(lull_tests::lull_bin())
        .args(["serve", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    for var in [
        "LULL_LISTEN",
        "LULL_DATA_DIR",
        "LULL_QUIET",
        "LULL_MAX_WAIT",
        "LULL_SINK",
        "LULL_SINK_SECRET",
        "LULL_META_APP_SECRET",
        "LULL_META_VERIFY_TOKEN",
        "LULL_EVOLUTION_TOKEN",
        "LULL_TWILIO_AUTH_TOKEN",
        "LULL_TWILIO_PUBLIC_URL",
        "LULL_TWILIO_SHARED_KEY",
        "LULL_ALLOW_UNSIGNED",
        "LULL_OPS_LISTEN",
        "LULL_TRUST_FORWARDED",
        "LULL_MAX_CONCURRENT_REQUESTS",
    ] {
        assert!(help.contains(var), "{var} missing from lull serve --help");
    }
}

/// WAHA through the real server: `--waha-hmac-key`, a message signed as WAHA signs it
/// (`X-Webhook-Hmac`, HMAC-SHA512) becomes a batch of the `waha` conversation; an unsigned or
/// wrongly signed one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_waha_message_is_handed_off_and_unsigned_ones_are_refused() {
    const KEY: &str = "waha-hmac-key";
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Capture::start().await;
    let flags = fast(&sink.url).set("--waha-hmac-key", KEY);
    let server = Server::start_with(&tmp.path().join("data"), &flags).await;
    let fixture =
        std::fs::read(lull_tests::repo().join("ingest/tests/fixtures/waha_message_text.json"))
            .expect("fixture");
    // The captured message, sent now (one older than the dedupe horizon would be refused).
    let mut fixture: serde_json::Value = serde_json::from_slice(&fixture).expect("json");
    fixture["payload"]["timestamp"] = (lull_core::Millis::now_wall().0 / 1000).into();
    let body = serde_json::to_vec(&fixture).expect("json");
    let sig = |k: &str| {
        vec![
            (
                "x-webhook-hmac",
                lull_ingest::auth::sign_sha512_hex(k, &body),
            ),
            ("x-webhook-hmac-algorithm", "sha512".to_string()),
        ]
    };
    assert_eq!(server.post_json("/webhook/waha", &body, &[]).await, 401);
    assert_eq!(
        server
            .post_json("/webhook/waha", &body, &sig("wrong"))
            .await,
        401
    );
    assert_eq!(
        server.post_json("/webhook/waha", &body, &sig(KEY)).await,
        200
    );
    wait_for("the WAHA batch", PATIENCE, async || {
        !sink.acked().is_empty()
    })
    .await;
    let acked = sink.acked();
    assert_eq!(acked.len(), 1, "{acked:?}");
    let b = &acked[0];
    assert_eq!(b["conversation"]["provider"], "waha");
    assert_eq!(b["conversation"]["account"], "default");
    assert_eq!(b["conversation"]["user"], "5219991234567@c.us");
    assert_eq!(b["text"], "Hola, quiero dos pizzas");
}

/// Issue 25 on the real server: a signed Meta POST with two good messages and an `interactive`
/// one without its object (Meta sends such with an `errors` array) is answered 200, and all
/// three reach the sink in one batch, the odd one as `other` with its type. Then a Business-app
/// echo (`smb_message_echoes`) of the same conversation pauses it: the user's next message waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_odd_message_does_not_lose_its_meta_post() {
    const SECRET: &str = "meta-app-secret";
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Capture::start().await;
    let flags = fast(&sink.url).set("--meta-app-secret", SECRET);
    let server = Server::start_with(&tmp.path().join("data"), &flags).await;
    let fixture = |name: &str| {
        std::fs::read(lull_tests::repo().join("ingest/tests/fixtures").join(name)).expect(name)
    };
    let signed = |body: &[u8]| {
        vec![(
            "x-hub-signature-256",
            lull_ingest::auth::sign_sha256(SECRET, body),
        )]
    };
    // The fixture's 2025 timestamps are older than the dedupe horizon: sent now, as Meta would.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let body = String::from_utf8(fixture("meta_cloud_interactive_without_object.json"))
        .expect("utf-8")
        .replace("\"1749416383\"", &format!("\"{now}\""))
        .replace("\"1749416384\"", &format!("\"{now}\""))
        .replace("\"1749416385\"", &format!("\"{now}\""))
        .into_bytes();
    assert_eq!(
        server
            .post_json("/webhook/meta", &body, &signed(&body))
            .await,
        200
    );
    wait_for("the batch", PATIENCE, async || !sink.acked().is_empty()).await;
    let b = &sink.acked()[0];
    assert_eq!(
        ids(b),
        vec![
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQ1",
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQ2",
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQ3"
        ]
    );
    assert_eq!(b["messages"][1]["kind"], "other");
    assert_eq!(b["messages"][1]["provider_type"], "interactive");
    assert_eq!(b["text"], "2 pizzas\none vegan");
    // A person answers from the WhatsApp Business app (sent now, as Meta would): the echo
    // pauses the conversation, so the user's next message waits for the person.
    let echo = String::from_utf8(fixture("meta_smb_message_echoes_text.json"))
        .expect("utf-8")
        .replace("\"1739321024\"", &format!("\"{now}\""))
        .into_bytes();
    assert_eq!(
        server
            .post_json("/webhook/meta", &echo, &signed(&echo))
            .await,
        200
    );
    let next = lull_tests::meta_text(
        "106540352242922",
        "16505551234",
        "wamid.after-echo",
        "are you there?",
    );
    let next = next.to_string().into_bytes();
    assert_eq!(
        server
            .post_json("/webhook/meta", &next, &signed(&next))
            .await,
        200
    );
    let conv = server
        .inspect()
        .into_iter()
        .find(|c| c["conversation"] == "meta|106540352242922|16505551234")
        .expect("the conversation");
    assert!(conv["paused_until"].is_string(), "{conv}");
    assert_eq!(conv["window"]["waiting_for"], "paused", "{conv}");
}
