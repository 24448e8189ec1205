//! Tenant changes on AWS, against moto (issue 23): an account a tenant drops stays with it
//! while its conversations hold work, and `lull tenants remove --purge --aws` checks pending
//! work like the local one (§3); a cold webhook directory serves every valid tenant when one
//! stored tenant is invalid under its settings (§4).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use hmac::{Hmac, Mac};
use lull_aws::tenants::DynamoTenants;
use lull_aws::{Accounting, Role};
use lull_core::{Millis, Policy};
use lull_ingest::{CachedDirectory, IngestConfig, IngestState, TenantSpec};

use common::{apigw, lull_aws_bin, moto_endpoint, unique, CaptureSink, Harness};
use lull_testkit::{holds_within, wait_for};

const PN_1: &str = "100000000000001";
const PN_2: &str = "100000000000002";
const BOUND: Duration = Duration::from_secs(60);
/// The answer to a Meta body with one message, all of it stored.
const ACCEPTED_ONE: &str = r#"{"accepted":1,"duplicates":0,"ignored":0}"#;

struct Deployment {
    endpoint: String,
    table: String,
    prefix: String,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Deployment {
    /// `lull tenants ARGS --aws` with the Lambdas' variables: (success, output).
    fn tenants(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(&self.bin)
            .arg("tenants")
            .args(args)
            .arg("--aws")
            .env("LULL_TABLE", &self.table)
            .env("LULL_SECRET_PREFIX", &self.prefix)
            .env("LULL_QUIET", "1s")
            .env("LULL_MAX_WAIT", "5s")
            .env("LULL_TENANT_REFRESH", "300ms")
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
        (out.status.success(), text)
    }

    fn apply(&self, toml: &str) -> (bool, String) {
        let path = self.dir.path().join("tenants.toml");
        std::fs::write(&path, toml).expect("write tenants file");
        self.tenants(&["apply", &path.to_string_lossy()])
    }
}

/// Tenant `id` on Meta `accounts`, its batches to `sink` signed with `<id>-signing`.
fn tenant(id: &str, accounts: &[&str], sink: &str) -> String {
    let list: Vec<String> = accounts.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[[tenants]]\nid = \"{id}\"\nsink = \"{sink}\"\nsink_secret = \"{id}-signing\"\n\
         [tenants.meta]\nphone_number_ids = [{}]\napp_secret = \"{id}-secret\"\n",
        list.join(", ")
    )
}

/// A Meta text message (the shape of Meta's "messages" webhook, as `fixtures/meta_cloud_text`),
/// sent now (an older provider timestamp is skipped as stale: `lull_core::protocol::stale`), as
/// an API Gateway event decoded as the webhook Lambda decodes it; (status, body) of the answer.
async fn post(router: &axum::Router, account: &str, id: &str, secret: &str) -> (u16, String) {
    let body = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": account},
            "contacts": [{"profile": {"name": "U"}, "wa_id": "5511900000001"}],
            "messages": [{"from": "5511900000001", "id": id,
                          "timestamp": (lull_core::Millis::now_wall().0 / 1000).to_string(),
                          "type": "text", "text": {"body": "hi"}}]
        }}]}]
    })
    .to_string()
    .into_bytes();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(&body);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let headers = [
        ("content-type", "application/json".to_string()),
        ("x-hub-signature-256", sig),
    ];
    apigw::send(
        router,
        &apigw::event("/webhook/meta", &headers, &body, false),
    )
    .await
}

fn store(h: &Harness, prefix: &str) -> DynamoTenants {
    DynamoTenants::new(
        h.clients.dynamodb.clone(),
        h.clients.secrets.clone(),
        &h.table,
        prefix,
        Accounting::new(),
    )
}

/// §3, as the local test (`tests/tenant_changes.rs`) on the real `lull tenants --aws`: alpha
/// drops account 1 while its message there is pending behind alpha's failing sink. Taking the
/// account for bravo in the same file is refused (held by alpha), and so is bravo's claim and
/// alpha's purge while the work is pending; the flush path (the flush Lambda's handler with
/// per-tenant sinks, as `Settings::handoff` wires it) hands the held batch to alpha's sink,
/// signed with alpha's key, never to bravo's or the default one; once idle, the purge goes
/// through and bravo takes the account. (Its messages carry the current time: with the fixed
/// 2023 timestamp it once had, every message was skipped as stale, no window ever opened, and
/// nothing was held, handed off or pending.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_account_stays_held_while_busy_and_purge_checks_pending_work() {
    let h = Harness::new(3, 50).await;
    let d = Deployment {
        endpoint: moto_endpoint().await,
        table: h.table.clone(),
        prefix: format!("{}/", unique("lull/moves")),
        dir: tempfile::tempdir().expect("tempdir"),
        bin: lull_aws_bin(),
    };
    let (sink_a, sink_b) = (CaptureSink::start(), CaptureSink::start());
    // The webhook Lambda (its intake and tenant directory) and the flush Lambda (its hand-off,
    // routing each batch through its own directory), wired from their settings as they are.
    let (acct, clients) = (Accounting::new(), &h.clients);
    let webhook = h.lambda_settings(Role::Webhook, &d.prefix);
    let router = lull_ingest::router(IngestState::new(
        Arc::new(webhook.intake(clients, &acct).expect("intake")),
        webhook.tenants(clients, &acct, None),
        IngestConfig::default(),
    ));
    let flush = h.lambda_settings(Role::Flush, &d.prefix);
    let flusher = Arc::new(flush.handoff(clients, &acct).expect("handoff"));
    let poller = h.start_pollers_of(flusher, 1, None);
    let alpha = |accounts: &[&str]| tenant("alpha", accounts, &sink_a.url);
    let bravo = |accounts: &[&str]| tenant("bravo", accounts, &sink_b.url);
    let (ok, out) = d.apply(&alpha(&[PN_1, PN_2]));
    assert!(ok, "{out}");
    // Alpha's message on account 1 waits behind alpha's failing sink.
    sink_a.set_failing(true);
    let accepted = holds_within(BOUND, async || {
        post(&router, PN_1, "a-pending", "alpha-secret").await == (200, ACCEPTED_ONE.into())
    })
    .await;
    assert!(accepted, "alpha never served");
    wait_for("a failed hand-off to alpha", BOUND, async || {
        sink_a.attempts() > 0
    })
    .await;

    // One file: alpha keeps only 2, bravo claims 1. Refused as held by alpha; nothing written.
    let (ok, out) = d.apply(&format!("{}\n{}", alpha(&[PN_2]), bravo(&[PN_1])));
    assert!(
        !ok && out.contains("held by tenant \"alpha\"") && out.contains(PN_1),
        "{out}"
    );
    // Alpha alone drops it: allowed, and account 1 is refused for new messages from then on,
    // answered as an account no tenant serves (like a wrong signature).
    let (ok, out) = d.apply(&alpha(&[PN_2]));
    assert!(ok, "{out}");
    let refused = holds_within(BOUND, async || {
        post(&router, PN_1, "a-late", "alpha-secret").await.0 == 401
    })
    .await;
    assert!(refused, "a dropped account still accepted");
    assert_eq!(
        post(&router, PN_1, "a-late", "alpha-secret").await,
        post(&router, PN_2, "forged", "bravo-secret").await,
        "a dropped account is told apart from a wrong signature"
    );
    // Bravo's claim and alpha's purge are refused while alpha's batch is pending.
    let (ok, out) = d.apply(&bravo(&[PN_1]));
    assert!(!ok && out.contains("still hold work"), "{out}");
    let (ok, out) = d.tenants(&["remove", "alpha", "--purge"]);
    assert!(
        !ok && out.contains("purge it once"),
        "purged with work pending: {out}"
    );

    // Alpha's sink recovers: the batch reaches it, signed with alpha's key.
    sink_a.set_failing(false);
    wait_for("alpha's batch at alpha's sink", BOUND, async || {
        sink_a.holds("a-pending")
    })
    .await;
    assert!(sink_a.signed_with("a-pending", "alpha-signing"));
    assert!(!sink_a.signed_with("a-pending", "bravo-signing"));
    // Once idle: alpha is purged, and bravo takes account 1 and is served there.
    let purged = holds_within(BOUND, async || d.tenants(&["remove", "alpha", "--purge"]).0).await;
    assert!(purged, "alpha could never be purged once idle");
    let (ok, out) = d.apply(&bravo(&[PN_1]));
    assert!(ok, "{out}");
    let served = holds_within(BOUND, async || {
        post(&router, PN_1, "b1", "bravo-secret").await == (200, ACCEPTED_ONE.into())
    })
    .await;
    assert!(served, "bravo never served its new account");
    wait_for("bravo's batch at bravo's sink", BOUND, async || {
        sink_b.holds("b1")
    })
    .await;
    assert!(sink_b.signed_with("b1", "bravo-signing"));
    assert!(
        !sink_b.holds("a-pending"),
        "alpha's pending work reached bravo's sink"
    );
    assert_eq!(
        h.sink.message_count(),
        0,
        "a tenant batch reached the default sink"
    );
    poller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_webhook_serves_the_valid_tenants_when_one_is_invalid_under_its_settings() {
    let h = Harness::new(3, 50).await;
    let prefix = format!("{}/", unique("lull/quarantine"));
    let tenants = store(&h, &prefix);
    let spec = |j: serde_json::Value| -> TenantSpec { serde_json::from_value(j).expect("spec") };
    // Applied by a CLI with the default max wait of 30 s...
    tenants
        .apply(
            vec![
                spec(serde_json::json!({"id": "charlie", "quiet": "15s",
                    "meta": {"phone_number_ids": ["300"], "app_secret": "c-secret"}})),
                spec(serde_json::json!({"id": "delta",
                    "meta": {"phone_number_ids": ["400"], "app_secret": "d-secret"}})),
            ],
            &Policy::default(),
            Millis::now_wall(),
            Duration::ZERO,
        )
        .await
        .expect("apply");
    // ... by an older lull, which stored no resolved policy: take it out of the item.
    let item = h.directory_item().await;
    let Some(AttributeValue::S(json)) = item.get("tenants") else {
        panic!("no tenants attribute")
    };
    let mut stored: serde_json::Value = serde_json::from_str(json).expect("json");
    for s in stored.as_array_mut().expect("list") {
        s["record"]
            .as_object_mut()
            .expect("record")
            .remove("policy");
    }
    let mut put = h
        .clients
        .dynamodb
        .put_item()
        .table_name(&h.table)
        .set_item(Some(item.clone()));
    put = put.item("tenants", AttributeValue::S(stored.to_string()));
    put.send().await.expect("put the older item");

    // A cold webhook whose deployment max wait is 10 s: charlie (quiet 15 s) fails there.
    let here = Policy::with_times(Duration::from_secs(3), Duration::from_secs(10)).expect("p");
    let dir = Arc::new(CachedDirectory::new(
        Arc::new(store(&h, &prefix)),
        Duration::from_secs(10),
        here,
        None,
    ));
    let router = lull_ingest::router(IngestState::new(
        h.webhook.clone(),
        dir.clone(),
        IngestConfig::default(),
    ));
    assert_eq!(post(&router, "400", "d1", "d-secret").await.0, 200);
    assert_eq!(post(&router, "300", "c1", "c-secret").await.0, 503);
    let q = dir.health().quarantined;
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].tenant, "charlie");
}
