//! Tenants as data on AWS, against moto: `lull tenants apply --aws` (the real CLI, built with
//! `--features aws`) writes the directory item and Secrets Manager; the webhook path (the
//! ingestion router over a store-backed directory, as the webhook Lambda builds it) and the
//! flush path (`handle_sqs_event` with per-tenant sinks, fed by an SQS poller) pick changes up
//! within the refresh time, with secrets rotated with overlap and a removed tenant's pending
//! batch still reaching its own sink.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use hmac::{Hmac, Mac};
use lull_aws::sink::BatchSink;
use lull_aws::store::{DynamoDbStore, StoreSettings};
use lull_aws::tenants::DynamoTenants;
use lull_aws::{Accounting, SqsTrigger};
use lull_core::ports::SystemClock;
use lull_core::protocol::Handoff;
use lull_ingest::{CachedDirectory, IngestConfig, IngestState};
use tower::ServiceExt;

use common::{
    delete_succeeded, lull_aws_bin, moto_endpoint, receive, test_config, to_event, unique,
    CaptureSink, Harness,
};
use lull_testkit::{holds_within, wait_for};

const PN_A: &str = "100000000000001";
const PN_B: &str = "200000000000002";
const REFRESH: Duration = Duration::from_millis(300);
const BOUND: Duration = Duration::from_secs(60);

struct Deployment {
    /// moto's endpoint, which the CLI is pointed at.
    endpoint: String,
    table: String,
    prefix: String,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Deployment {
    /// `lull tenants ARGS --aws` with the variables the Lambdas read; panics when it fails.
    fn tenants(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .arg("tenants")
            .args(args)
            .arg("--aws")
            .env("LULL_TABLE", &self.table)
            .env("LULL_SECRET_PREFIX", &self.prefix)
            .env("LULL_QUIET", "1s")
            .env("LULL_MAX_WAIT", "5s")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .output()
            .expect("run lull tenants --aws");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "lull tenants {args:?} --aws: {text}");
        text
    }

    fn apply(&self, toml: &str) -> String {
        let path = self.dir.path().join("tenants.toml");
        std::fs::write(&path, toml).expect("write tenants file");
        self.tenants(&["apply", &path.to_string_lossy()])
    }
}

fn tenants_file(a_sink: &str, b_sink: &str, b_secret: &str, b_extra: &str) -> String {
    format!(
        "[[tenants]]\nid = \"alpha\"\nsink = \"{a_sink}\"\n[tenants.meta]\n\
         phone_number_ids = [\"{PN_A}\"]\napp_secret = \"a-v1\"\n\n\
         [[tenants]]\nid = \"bravo\"\nquiet = \"2s\"\n{b_extra}\nsink = \"{b_sink}\"\n\
         sink_secret = \"bravo-signing\"\n[tenants.meta]\nphone_number_ids = [\"{PN_B}\"]\n\
         app_secret = {b_secret}\n"
    )
}

/// Now, in unix seconds: a provider timestamp lull does not refuse as older than its dedupe
/// horizon (`lull_core::protocol::stale`).
fn now_secs() -> String {
    (lull_core::Millis::now_wall().0 / 1000).to_string()
}

fn meta_body(account: &str, user: &str, id: &str) -> Vec<u8> {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": account},
            "contacts": [{"profile": {"name": "U"}, "wa_id": user}],
            "messages": [{"from": user, "id": id, "timestamp": now_secs(), "type": "text",
                          "text": {"body": format!("text of {id}")}}]
        }}]}]
    })
    .to_string()
    .into_bytes()
}

async fn post(router: &axum::Router, account: &str, user: &str, id: &str, secret: &str) -> u16 {
    let body = meta_body(account, user, id);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(&body);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let req = axum::http::Request::post("/webhook/meta")
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sig)
        .body(Body::from(body))
        .expect("request");
    router
        .clone()
        .oneshot(req)
        .await
        .expect("router")
        .status()
        .as_u16()
}

/// Posts until the status satisfies `want` (a tenant change reaching the webhook path).
async fn until(
    router: &axum::Router,
    what: &str,
    (account, user, id, secret): (&str, &str, &str, &str),
    want: impl Fn(u16) -> bool,
) -> Duration {
    let start = Instant::now();
    let reached = holds_within(BOUND, async || {
        want(post(router, account, user, id, secret).await)
    })
    .await;
    assert!(reached, "timed out: {what}");
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_applied_with_the_cli_reach_the_webhook_and_flush_paths() {
    let h = Harness::new(3, 50).await;
    let d = Deployment {
        endpoint: moto_endpoint().await,
        table: h.table.clone(),
        prefix: format!("{}/", unique("lull/test")),
        dir: tempfile::tempdir().expect("tempdir"),
        bin: lull_aws_bin(),
    };
    let (sink_a, sink_b) = (CaptureSink::start(), CaptureSink::start());
    let store = || {
        Arc::new(DynamoTenants::new(
            h.clients.dynamodb.clone(),
            h.clients.secrets.clone(),
            &h.table,
            &d.prefix,
            Accounting::new(),
        ))
    };
    // The webhook Lambda's directory and the flush Lambda's, each with its own cache.
    let webhook_dir = Arc::new(CachedDirectory::new(store(), REFRESH, h.policy, None));
    let flush_dir = Arc::new(CachedDirectory::new(store(), REFRESH, h.policy, None));
    let router = lull_ingest::router(IngestState::new(
        h.webhook.clone(),
        webhook_dir,
        IngestConfig::default(),
    ));
    let default_target =
        lull_sink::HttpTarget::new(&h.sink.url, Vec::new()).expect("default target");
    let default = lull_sink::HttpSink::new(default_target, Duration::from_secs(2)).expect("sink");
    let flusher = Arc::new(Handoff::new(
        DynamoDbStore::new(
            h.clients.dynamodb.clone(),
            StoreSettings::new(&h.table),
            Accounting::new(),
        ),
        SqsTrigger::new(h.clients.sqs.clone(), &h.queue, Accounting::new()),
        lull_tenants::RoutedSink::new(BatchSink::Any(lull_sink::AnySink::Http(default)))
            .with_routes(flush_dir, Duration::from_secs(2)),
        SystemClock,
        test_config(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (clients, queue, flusher, stop) = (
            h.clients.clone(),
            h.queue.clone(),
            flusher.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let acct = Accounting::new();
            while !stop.load(Ordering::SeqCst) {
                let msgs = receive(&clients, &queue, 1, &acct).await;
                if msgs.is_empty() {
                    continue;
                }
                let resp =
                    lull_aws::flush::handle_sqs_event(&flusher, to_event(&msgs), b"t", None).await;
                let failed: Vec<String> = resp
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect();
                delete_succeeded(&clients, &queue, &msgs, &failed, &acct).await;
            }
        })
    };

    // Apply A and B with the CLI; the webhook path serves them within the refresh time.
    assert_eq!(post(&router, PN_A, "u1", "a0", "a-v1").await, 401);
    let out = d.apply(&tenants_file(&sink_a.url, &sink_b.url, "\"b-v1\"", ""));
    assert!(out.contains("created: alpha, bravo"), "{out}");
    let took = until(&router, "A served", (PN_A, "u1", "a1", "a-v1"), |s| {
        s == 200
    })
    .await;
    eprintln!(
        "moto path: tenant served {} ms after `lull tenants apply --aws` returned (refresh {} ms)",
        took.as_millis(),
        REFRESH.as_millis()
    );
    assert_eq!(post(&router, PN_B, "u2", "b1", "b-v1").await, 200);
    // Isolation: A's secret never writes into B's account.
    assert_eq!(post(&router, PN_B, "u3", "forged", "a-v1").await, 401);
    wait_for("A's and B's batches", BOUND, async || {
        !sink_a.batches().is_empty() && !sink_b.batches().is_empty()
    })
    .await;
    let b = &sink_b.batches()[0];
    assert_eq!(b.messages[0].id, "b1");
    let silence = b.closed_at.0 - b.messages[0].received_at.0;
    assert!(
        silence >= 2000,
        "B's quiet period is 2s: closed after {silence} ms"
    );
    assert_eq!(sink_a.batches()[0].messages[0].id, "a1");
    assert_eq!(
        h.sink.message_count(),
        0,
        "a tenant batch reached the default sink"
    );

    // The table holds no secret value; Secrets Manager does.
    let item = h.directory_item().await;
    let raw = format!("{item:?}");
    assert!(!raw.contains("a-v1") && !raw.contains("b-v1") && !raw.contains("bravo-signing"));
    let secret = h
        .clients
        .secrets
        .get_secret_value()
        .secret_id(format!("{}bravo", d.prefix))
        .send()
        .await
        .expect("bravo's secret");
    assert!(secret.secret_string().unwrap_or_default().contains("b-v1"));

    // Rotation with overlap: both values accepted, then only the new one.
    d.apply(&tenants_file(
        &sink_a.url,
        &sink_b.url,
        "[\"b-v1\", \"b-v2\"]",
        "",
    ));
    until(&router, "b-v2 accepted", (PN_B, "u2", "r1", "b-v2"), |s| {
        s == 200
    })
    .await;
    assert_eq!(post(&router, PN_B, "u2", "r2", "b-v1").await, 200);
    d.apply(&tenants_file(&sink_a.url, &sink_b.url, "\"b-v2\"", ""));
    until(&router, "b-v1 retired", (PN_B, "u2", "r3", "b-v1"), |s| {
        s == 401
    })
    .await;
    let listed = d.tenants(&["list"]);
    assert!(
        listed.contains("meta.app_secret(x1") && !listed.contains("b-v2"),
        "{listed}"
    );

    // Buffering off for B: its next windows are passthrough batches.
    d.apply(&tenants_file(
        &sink_a.url,
        &sink_b.url,
        "\"b-v2\"",
        "passthrough = true",
    ));
    let mut probe = 0;
    wait_for("B's policy change applied", BOUND, async || {
        probe += 1;
        let id = format!("p{probe}");
        assert_eq!(
            post(&router, PN_B, &format!("probe{probe}"), &id, "b-v2").await,
            200
        );
        wait_for("the probe's batch", BOUND, async || {
            sink_b.batches().iter().any(|b| b.messages[0].id == id)
        })
        .await;
        sink_b
            .batches()
            .iter()
            .any(|b| b.messages[0].id == id && b.reason.as_str() == "passthrough")
    })
    .await;

    // Remove B while its batch is pending behind its failing sink.
    sink_b.set_failing(true);
    let attempts = sink_b.attempts();
    assert_eq!(post(&router, PN_B, "u9", "pending-b", "b-v2").await, 200);
    wait_for("a failed hand-off to B", BOUND, async || {
        sink_b.attempts() > attempts
    })
    .await;
    let out = d.tenants(&["remove", "bravo"]);
    assert!(out.contains("removed"), "{out}");
    until(&router, "B refused", (PN_B, "u9", "late", "b-v2"), |s| {
        s == 401
    })
    .await;
    sink_b.set_failing(false);
    wait_for("B's pending batch at B's sink", BOUND, async || {
        sink_b
            .batches()
            .iter()
            .any(|b| b.messages[0].id == "pending-b")
    })
    .await;
    assert_eq!(
        h.sink.message_count(),
        0,
        "a tenant batch reached the default sink"
    );
    // A untouched.
    assert_eq!(post(&router, PN_A, "u1", "a2", "a-v1").await, 200);
    stop.store(true, Ordering::SeqCst);
    poller.await.expect("poller");
}
