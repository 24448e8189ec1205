//! Tenant changes that must always apply safely, on the real `lull serve` with `lull tenants`
//! run beside it (issue 23):
//!
//! - an account a live tenant drops stays with it (refused for new messages, its pending work
//!   still going to its own sink) until its conversations are idle; only then can another
//!   tenant claim it (§3);
//! - a tenant is validated once, at apply time, against the running server's settings (not
//!   the shell's), and a stored tenant that fails later is quarantined, not the whole directory:
//!   the server starts and serves the others (§4).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hmac::{Hmac, Mac};
use lull_testkit::{holds_within, wait_for};
use lull_tests::{ids, lull_bin, meta_text, Capture, Flags, Server};
use serde_json::Value;
use sha2::Sha256;

const PN_1: &str = "100000000000001";
const PN_2: &str = "100000000000002";
const PN_3: &str = "100000000000003";
const PN_4: &str = "100000000000004";
const BOUND: Duration = Duration::from_secs(20);

async fn post_signed(server: &Server, body: &Value, secret: &str) -> u16 {
    let bytes = serde_json::to_vec(body).expect("json");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(&bytes);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    reqwest::Client::new()
        .post(format!("http://{}/webhook/meta", server.addr))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sig)
        .body(bytes)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// `lull tenants apply` of `toml` from a shell without any LULL_* setting; (success, output).
fn apply(data: &Path, toml: &str) -> (bool, String) {
    let file = data.with_extension("tenants.toml");
    std::fs::write(&file, toml).expect("write tenants file");
    let out = Command::new(lull_bin())
        .arg("tenants")
        .arg("apply")
        .arg(&file)
        .arg("--data-dir")
        .arg(data)
        .env_remove("LULL_QUIET")
        .env_remove("LULL_MAX_WAIT")
        .env_remove("LULL_CONFIG")
        .output()
        .expect("run lull tenants");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn tenant(id: &str, accounts: &[&str], sink: &str, extra: &str) -> String {
    let list: Vec<String> = accounts.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[[tenants]]\nid = \"{id}\"\nquiet = \"300ms\"\n{extra}\nsink = \"{sink}\"\n\
         [tenants.meta]\nphone_number_ids = [{}]\napp_secret = \"{id}-secret\"\n",
        list.join(", ")
    )
}

/// §3: A drops account 1 (keeping 2) while its message on 1 is pending behind its failing
/// sink; B claiming 1 is refused until that batch reached A's sink, then allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_a_tenant_drops_goes_to_the_next_owner_only_once_idle() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (sink_a, sink_b) = (Capture::start().await, Capture::start().await);
    let data = tmp.path().join("data");
    let server = Server::start(
        &data,
        &Flags::new()
            .set("--tenant-refresh", "300ms")
            .set("--sweep-interval", "200ms")
            .set("--retry-min", "50ms")
            .set("--retry-max", "300ms")
            .set("--sink", "stdout"),
    )
    .await;
    let (ok, out) = apply(&data, &tenant("alpha", &[PN_1, PN_2], &sink_a.url, ""));
    assert!(ok, "{out}");
    // A's message on account 1 waits behind A's failing sink.
    sink_a.state.failing.store(true, Ordering::SeqCst);
    let pending = meta_text(PN_1, "5511900000001", "a-pending", "mine");
    let accepted = holds_within(BOUND, async || {
        post_signed(&server, &pending, "alpha-secret").await == 200
    })
    .await;
    assert!(accepted, "A never served:\n{}", server.logs());
    wait_for("A's hand-off attempted", BOUND, async || {
        sink_a.requests().iter().any(|b| ids(b) == ["a-pending"])
    })
    .await;

    // One file: A keeps only 2, B claims 1. Refused while A's batch is pending; nothing written.
    let both = format!(
        "{}\n{}",
        tenant("alpha", &[PN_2], &sink_a.url, ""),
        tenant("bravo", &[PN_1], &sink_b.url, "")
    );
    let (ok, out) = apply(&data, &both);
    assert!(!ok, "B took A's busy account: {out}");
    assert!(out.contains("\"alpha\"") && out.contains(PN_1), "{out}");
    // A alone drops it: allowed, and account 1 is refused for new messages from then on.
    let (ok, out) = apply(&data, &tenant("alpha", &[PN_2], &sink_a.url, ""));
    assert!(ok, "{out}");
    let late = meta_text(PN_1, "5511900000002", "a-late", "too late");
    let refused = holds_within(BOUND, async || {
        post_signed(&server, &late, "alpha-secret").await == 401
    })
    .await;
    assert!(refused, "a dropped account still accepted");
    let (ok, out) = apply(&data, &tenant("bravo", &[PN_1], &sink_b.url, ""));
    assert!(!ok && out.contains("still hold work"), "{out}");

    // A's sink recovers: the batch A accepted reaches A's sink, then B may claim the account.
    sink_a.state.failing.store(false, Ordering::SeqCst);
    wait_for("A's batch at A's sink", BOUND, async || {
        sink_a.acked().iter().any(|b| ids(b) == ["a-pending"])
    })
    .await;
    let claimed = holds_within(BOUND, async || {
        apply(&data, &tenant("bravo", &[PN_1], &sink_b.url, "")).0
    })
    .await;
    assert!(claimed, "B could never claim the idle account");
    let b1 = meta_text(PN_1, "5511900000003", "b1", "now B's");
    let served = holds_within(BOUND, async || {
        post_signed(&server, &b1, "bravo-secret").await == 200
    })
    .await;
    assert!(served, "B never served its new account:\n{}", server.logs());
    wait_for("B's batch", BOUND, async || {
        sink_b.acked().iter().any(|b| ids(b) == ["b1"])
    })
    .await;
    assert!(
        sink_b
            .requests()
            .iter()
            .all(|b| !ids(b).contains(&"a-pending".to_string())),
        "A's pending work reached B's sink"
    );
}

/// §4, the scenario of the issue: `lull serve` runs with a max wait of 10 s; a shell without
/// that setting applies C (quiet 15 s) and a valid D.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_invalid_under_the_servers_settings_is_refused_then_quarantined_not_all() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Capture::start().await;
    let data = tmp.path().join("data");
    let flags = Flags::new()
        .set("--max-wait", "10s")
        .set("--tenant-refresh", "300ms")
        .set("--sink", &sink.url);
    let mut server = Server::start(&data, &flags).await;
    let c =
        tenant("charlie", &[PN_3], &sink.url, "quiet = \"15s\"").replace("quiet = \"300ms\"\n", "");
    let d = tenant("delta", &[PN_4], &sink.url, "");
    // Validated against the server's max wait, not the shell's default 30 s: refused, naming C.
    let (ok, out) = apply(&data, &format!("{c}\n{d}"));
    assert!(
        !ok,
        "C applied though invalid under the server's settings: {out}"
    );
    assert!(
        out.contains("\"charlie\"") && out.contains("max_wait"),
        "{out}"
    );
    let (ok, out) = apply(&data, &d);
    assert!(ok && out.contains("recorded by lull serve"), "{out}");
    let d1 = meta_text(PN_4, "5511900000004", "d1", "hi");
    let served = holds_within(BOUND, async || {
        post_signed(&server, &d1, "delta-secret").await == 200
    })
    .await;
    assert!(served, "D never served");
    assert!(server.terminate().await, "lull did not stop");

    // C as an older lull stored it (no resolved policy, so it resolves with the reading
    // process's defaults): invalid under this server's max wait of 10 s.
    let spec: lull_ingest::TenantSpec = serde_json::from_value(serde_json::json!({
        "id": "charlie", "quiet": "15s", "sink": sink.url,
        "meta": {"phone_number_ids": [PN_3], "app_secret": "charlie-secret"}
    }))
    .expect("spec");
    let legacy = lull_ingest::TenantRecord::applied(None, spec, lull_core::Millis::now_wall());
    assert!(legacy.policy.is_none());
    let db = rusqlite::Connection::open(data.join("lull.db")).expect("open db");
    db.execute(
        "INSERT INTO tenants (id, record) VALUES ('charlie', ?1)",
        [serde_json::to_string(&legacy).expect("json")],
    )
    .expect("insert legacy record");
    drop(db);

    // The server starts, serves D, answers 503 for C's account and counts the quarantine.
    let server = Server::start(&data, &flags).await;
    let d2 = meta_text(PN_4, "5511900000004", "d2", "still here");
    assert_eq!(post_signed(&server, &d2, "delta-secret").await, 200);
    let c1 = meta_text(PN_3, "5511900000005", "c1", "quarantined");
    assert_eq!(post_signed(&server, &c1, "charlie-secret").await, 503);
    let metrics = server
        .get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(&format!("{} 1", lull_core::metrics::TENANTS_QUARANTINED)),
        "{metrics}"
    );
    assert!(server.logs().contains("quarantined"), "{}", server.logs());
    // d1's window resumed after the restart; d2 joined it or the next one.
    wait_for("D's batches", BOUND, async || {
        sink.acked()
            .iter()
            .any(|b| ids(b).contains(&"d2".to_string()))
    })
    .await;
}

/// §1 on the real server: a tenant store that cannot be read keeps the tenants in force, and
/// `/healthz` turns red once it has failed for 3 refresh times, green again when it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_tenant_store_keeps_the_tenants_and_turns_healthz_red() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Capture::start().await;
    let data = tmp.path().join("data");
    let flags = Flags::new()
        .set("--tenant-refresh", "300ms")
        .set("--sink", &sink.url);
    let server = Server::start(&data, &flags).await;
    let (ok, out) = apply(&data, &tenant("delta", &[PN_4], &sink.url, ""));
    assert!(ok, "{out}");
    let d1 = meta_text(PN_4, "5511900000004", "d1", "hi");
    let served = holds_within(BOUND, async || {
        post_signed(&server, &d1, "delta-secret").await == 200
    })
    .await;
    assert!(served, "D never served");
    // A record no lull can read: every read of the store fails from now on.
    let db = rusqlite::Connection::open(data.join("lull.db")).expect("open db");
    db.execute(
        "INSERT INTO tenants (id, record) VALUES ('broken', 'not a record')",
        [],
    )
    .expect("insert");
    let health = async || match server.get("/healthz").await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    };
    let red = holds_within(BOUND, async || health().await.0 == 503).await;
    assert!(red, "healthz never reported the stale tenants");
    let (_, why) = health().await;
    assert!(why.contains("tenant store failed"), "{why}");
    // The tenants in force keep being served meanwhile.
    let d2 = meta_text(PN_4, "5511900000004", "d2", "still served");
    assert_eq!(post_signed(&server, &d2, "delta-secret").await, 200);
    db.execute("DELETE FROM tenants WHERE id = 'broken'", [])
        .expect("delete");
    let green = holds_within(BOUND, async || health().await.0 == 200).await;
    assert!(green, "healthz stayed red after the store recovered");
}
