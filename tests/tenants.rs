//! Tenants as data, end to end on the local server: the real `lull serve`, `lull tenants`
//! changing its tenant store while it runs, Meta webhooks signed with each tenant's app secret,
//! and one capture sink per tenant plus the default one.
//!
//! The story: tenant A comes from `lull.toml` (the seed of a fresh data directory); tenant B is
//! added with `lull tenants apply` and is served within the refresh bound, under its own quiet
//! period and to its own sink, with A untouched; B's secret is rotated with overlap; buffering
//! is turned off for B; B is removed, its account gets 401 (as any account no tenant serves:
//! like a wrong signature) and its pending batch still reaches
//! B's sink.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use lull_testkit::{holds_within, wait_for};
use lull_tests::{ids, lull_bin, meta_text, Capture, Flags, Server};
use serde_json::Value;
use sha2::Sha256;

const PN_A: &str = "100000000000001";
const PN_B: &str = "200000000000002";
const REFRESH: &str = "300ms";
/// The bound every wait on a tenant change uses: the refresh time plus generous slack for a
/// loaded 2-core machine.
const BOUND: Duration = Duration::from_secs(15);

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs a Meta body signed with `secret`; returns the status.
async fn post_signed(server: &Server, body: &Value, secret: &str) -> u16 {
    let bytes = serde_json::to_vec(body).expect("json");
    reqwest::Client::new()
        .post(format!("http://{}/webhook/meta", server.addr))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(secret, &bytes))
        .body(bytes)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// POSTs `body` signed with `secret` until the status satisfies `want` (a tenant change reaching
/// the server); panics with `what` after [`BOUND`]. Returns how long it took.
async fn until(
    server: &Server,
    what: &str,
    body: &Value,
    secret: &str,
    want: impl Fn(u16) -> bool,
) -> Duration {
    let start = Instant::now();
    let reached = holds_within(BOUND, async || {
        want(post_signed(server, body, secret).await)
    })
    .await;
    assert!(reached, "timed out: {what}\n{}", server.logs());
    start.elapsed()
}

/// Runs `lull tenants ARGS --data-dir DIR`; panics with its output when it fails.
fn tenants(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(lull_bin())
        .arg("tenants")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("LULL_QUIET")
        .env_remove("LULL_MAX_WAIT")
        .output()
        .expect("run lull tenants");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "lull tenants {args:?} failed: {text}");
    text
}

fn ms(v: &Value) -> u64 {
    lull_core::Millis::parse_rfc3339(v.as_str().unwrap_or(""))
        .map(|m| m.0)
        .unwrap_or(0)
}

/// The silence a batch closed after: closed_at minus its last message's receive time.
fn silence(batch: &Value) -> u64 {
    let last = batch["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map(|m| ms(&m["received_at"]))
        .unwrap_or(0);
    ms(&batch["closed_at"]).saturating_sub(last)
}

fn tenant_b(sink: &str, extra: &str, secrets: &str) -> String {
    format!(
        "[[tenants]]\nid = \"bravo\"\nquiet = \"900ms\"\nmax_wait = \"5s\"\n{extra}\nsink = \"{sink}\"\n\
         sink_secret = \"bravo-signing\"\n[tenants.meta]\nphone_number_ids = [\"{PN_B}\"]\n\
         app_secret = {secrets}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_added_changed_rotated_and_removed_while_the_server_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (sink_a, sink_b, sink_default) = (
        Capture::start().await,
        Capture::start().await,
        Capture::start().await,
    );
    let config = tmp.path().join("lull.toml");
    std::fs::write(
        &config,
        format!(
            "[[tenants]]\nid = \"alpha\"\nquiet = \"300ms\"\nmax_wait = \"3s\"\nsink = \"{}\"\n\
             [tenants.meta]\nphone_number_ids = [\"{PN_A}\"]\napp_secret = \"alpha-secret\"\n",
            sink_a.url
        ),
    )
    .expect("write lull.toml");
    let data = tmp.path().join("data");
    let flags = Flags::new()
        .set("--config", config.to_string_lossy())
        .set("--tenant-refresh", REFRESH)
        .set("--sweep-interval", "200ms")
        .set("--retry-min", "50ms")
        .set("--retry-max", "300ms")
        .set("--sink", &sink_default.url);
    let server = Server::start(&data, &flags).await;

    // A, seeded from lull.toml, works; B's account is unknown.
    let a1 = meta_text(PN_A, "5511900000001", "a1", "hello");
    assert_eq!(post_signed(&server, &a1, "alpha-secret").await, 200);
    let b0 = meta_text(PN_B, "5511900000002", "b0", "before");
    assert_eq!(post_signed(&server, &b0, "bravo-v1").await, 401);
    let listed = tenants(&data, &["list"]);
    assert!(
        listed.contains("alpha") && !listed.contains("alpha-secret"),
        "{listed}"
    );

    // Add B: its own secret, quiet period and sink.
    let file = tmp.path().join("bravo.toml");
    std::fs::write(&file, tenant_b(&sink_b.url, "", "\"bravo-v1\"")).expect("write");
    let applied_at = Instant::now();
    let out = tenants(&data, &["apply", &file.to_string_lossy()]);
    assert!(out.contains("created: bravo"), "{out}");
    let b1 = meta_text(PN_B, "5511900000002", "b1", "hi from b");
    until(&server, "B accepted", &b1, "bravo-v1", |s| s == 200).await;
    eprintln!(
        "tenant B served {} ms after `lull tenants apply` returned (refresh {REFRESH})",
        applied_at.elapsed().as_millis()
    );
    // Isolation: A's secret cannot write into B's account.
    let forged = meta_text(PN_B, "5511900000003", "x1", "forged");
    let status = post_signed(&server, &forged, "alpha-secret").await;
    assert!(status == 401, "A's secret on B's account: {status}");

    wait_for("A's and B's batches", BOUND, async || {
        !sink_a.acked().is_empty() && !sink_b.acked().is_empty()
    })
    .await;
    let a_batch = &sink_a.acked()[0];
    assert_eq!(ids(a_batch), ["a1"]);
    assert!(silence(a_batch) >= 300, "A closed early: {a_batch}");
    let b_batch = &sink_b.acked()[0];
    assert_eq!(ids(b_batch), ["b1"]);
    assert_eq!(b_batch["reason"], "quiet");
    assert!(
        silence(b_batch) >= 900,
        "B not under its own quiet period: {b_batch}"
    );
    assert!(
        sink_default.requests().is_empty(),
        "a tenant batch went to the default sink"
    );

    // Rotate B's secret with overlap: both values work, then only the new one.
    std::fs::write(
        &file,
        tenant_b(&sink_b.url, "", "[\"bravo-v1\", \"bravo-v2\"]"),
    )
    .expect("write");
    tenants(&data, &["apply", &file.to_string_lossy()]);
    let rotated = meta_text(PN_B, "5511900000002", "rotated", "new secret");
    until(&server, "new secret accepted", &rotated, "bravo-v2", |s| {
        s == 200
    })
    .await;
    let old = meta_text(PN_B, "5511900000002", "old-still-ok", "old secret");
    assert_eq!(post_signed(&server, &old, "bravo-v1").await, 200);
    std::fs::write(&file, tenant_b(&sink_b.url, "", "\"bravo-v2\"")).expect("write");
    tenants(&data, &["apply", &file.to_string_lossy()]);
    let retired = meta_text(PN_B, "5511900000002", "retired", "old secret");
    until(&server, "old secret refused", &retired, "bravo-v1", |s| {
        s == 401
    })
    .await;
    let shown = tenants(&data, &["show", "bravo"]);
    assert!(
        !shown.contains("bravo-v2") && shown.contains("meta.app_secret"),
        "{shown}"
    );

    // Turn buffering off for B: its next windows are passthrough batches. Each probe (a user
    // of its own) waits for its batch before the next, so no probe window is open across the
    // change.
    std::fs::write(
        &file,
        tenant_b(&sink_b.url, "passthrough = true", "\"bravo-v2\""),
    )
    .expect("write");
    tenants(&data, &["apply", &file.to_string_lossy()]);
    let mut probe = 0;
    wait_for("B's policy change applied", BOUND, async || {
        probe += 1;
        let id = format!("p{probe}");
        let m = meta_text(PN_B, "5511900000004", &id, "probe");
        assert_eq!(post_signed(&server, &m, "bravo-v2").await, 200);
        wait_for("the probe's batch", BOUND, async || {
            sink_b.acked().iter().any(|b| ids(b) == [id.clone()])
        })
        .await;
        let acked = sink_b.acked();
        let batch = acked
            .iter()
            .find(|b| ids(b) == [id.clone()])
            .expect("probe batch");
        batch["reason"] == "passthrough"
    })
    .await;

    // Remove B while a batch of B is pending behind its failing sink.
    sink_b.state.failing.store(true, Ordering::SeqCst);
    let pending = meta_text(PN_B, "5511900000005", "pending-b", "last words");
    assert_eq!(post_signed(&server, &pending, "bravo-v2").await, 200);
    wait_for("B's hand-off attempted", BOUND, async || {
        sink_b.requests().iter().any(|b| ids(b) == ["pending-b"])
    })
    .await;
    let out = tenants(&data, &["remove", "bravo"]);
    assert!(out.contains("removed"), "{out}");
    let after = meta_text(PN_B, "5511900000006", "after", "too late");
    until(&server, "removed tenant refused", &after, "bravo-v2", |s| {
        s == 401
    })
    .await;
    // Its account cannot go to another tenant while its tombstone holds accepted batches.
    let out = Command::new(lull_bin())
        .args(["tenants", "remove", "bravo", "--purge", "--data-dir"])
        .arg(&data)
        .output()
        .expect("purge");
    assert!(!out.status.success(), "purged with a batch pending");
    sink_b.state.failing.store(false, Ordering::SeqCst);
    wait_for("B's pending batch at B's sink", BOUND, async || {
        sink_b.acked().iter().any(|b| ids(b) == ["pending-b"])
    })
    .await;
    assert!(
        sink_default.requests().is_empty(),
        "a tenant batch went to the default sink"
    );
    let listed = tenants(&data, &["list", "--json"]);
    assert!(listed.contains("\"state\":\"removed\""), "{listed}");

    // A was untouched throughout.
    let a2 = meta_text(PN_A, "5511900000001", "a2", "still here");
    assert_eq!(post_signed(&server, &a2, "alpha-secret").await, 200);
    wait_for("A's second batch", BOUND, async || {
        sink_a.acked().len() >= 2
    })
    .await;
    assert!(sink_a
        .acked()
        .iter()
        .all(|b| b["conversation"]["account"] == PN_A));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_tenants_file_changes_nothing_and_names_the_field() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let file = tmp.path().join("t.toml");
    std::fs::write(
        &file,
        format!(
            "[[tenants]]\nid = \"ok\"\n[tenants.meta]\nphone_number_ids = [\"{PN_A}\"]\n\
             app_secret = \"s\"\n[[tenants]]\nid = \"bad\"\nquiet = \"soonish\"\n"
        ),
    )
    .expect("write");
    for (content, named) in [
        (None, "quiet"),
        (
            Some("[[tenants]]\nid = \"e\"\n[tenants.twilio]\nnumbers = [\"+1555\"]\nauth_token = \"\"\n"),
            "twilio.auth_token[0]",
        ),
        (
            Some("[[tenants]]\nid = \"d\"\n[[tenants]]\nid = \"d\"\n"),
            "appears twice",
        ),
    ] {
        if let Some(c) = content {
            std::fs::write(&file, c).expect("write");
        }
        let out = Command::new(lull_bin())
            .args(["tenants", "apply"])
            .arg(&file)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("apply");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(named), "{named}: {err}");
    }
    assert_eq!(tenants(&data, &["list"]).trim(), "no tenants");
}
