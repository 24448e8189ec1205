//! The tenant store contract: what every tenant store (the SQLite table locally, the DynamoDB
//! directory item with secrets in Secrets Manager on AWS) must do, checked against each by its
//! own tests, as `lull_core::contract` checks the window stores. Both stores apply through
//! [`apply_specs`](crate::tenant_spec::apply_specs); this checks what they keep and give back.

use std::future::Future;
use std::pin::Pin;

use lull_core::Millis;
use serde_json::json;

use crate::tenant_cache::TenantSource;
use crate::tenant_spec::{Applied, TenantRecord, TenantSpec};

/// What a contract step answers; an error is the store's message.
pub type ContractFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// A tenant store as the contract drives it: the writes `lull tenants` makes, and
/// [`TenantSource::load`], what every running process reads.
pub trait TenantStoreUnderTest: TenantSource {
    fn apply(&self, specs: Vec<TenantSpec>, now: Millis) -> ContractFuture<'_, Applied>;
    fn remove<'a>(&'a self, id: &'a str, purge: bool, now: Millis) -> ContractFuture<'a, ()>;
}

fn spec(value: serde_json::Value) -> TenantSpec {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("contract spec: {e}"))
}

fn alpha() -> TenantSpec {
    spec(json!({
        "id": "alpha",
        "quiet": "3s",
        "meta": {"phone_number_ids": ["1065"], "app_secret": "alpha-app"},
    }))
}

fn bravo(tokens: &[&str], quiet: &str) -> TenantSpec {
    spec(json!({
        "id": "bravo",
        "quiet": quiet,
        "sink": "https://bravo.example/lull",
        "sink_secret": "whsec_YnJhdm8tc2luay1zZWNyZXQ=",
        "admin_token": ["bravo-admin"],
        "twilio": {
            "numbers": ["+15550001111"],
            "auth_token": tokens,
            "shared_key": "bravo-shared",
        },
    }))
}

fn charlie_on(meta_account: &str) -> TenantSpec {
    spec(json!({
        "id": "charlie",
        "meta": {"phone_number_ids": [meta_account], "app_secret": "charlie-app"},
    }))
}

async fn load(store: &impl TenantStoreUnderTest) -> Vec<TenantRecord> {
    let mut records = store.load().await.expect("load");
    records.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
    records
}

fn ids(records: &[TenantRecord]) -> Vec<(&str, bool)> {
    records
        .iter()
        .map(|r| (r.spec.id.as_str(), r.removed_at.is_some()))
        .collect()
}

/// Runs the whole contract against an empty store.
pub async fn check_tenant_store(store: &impl TenantStoreUnderTest) {
    let t = |s: u64| Millis(1_767_225_600_000 + s * 1000);
    assert!(load(store).await.is_empty(), "the store starts empty");

    // Created, and read back whole: every secret field (Twilio's shared key and the admin
    // token too) resolved.
    let applied = store
        .apply(vec![alpha(), bravo(&["b1"], "5s")], t(1))
        .await
        .expect("apply");
    assert_eq!(applied.created, ["alpha", "bravo"]);
    let records = load(store).await;
    assert_eq!(records[0].spec, alpha());
    assert_eq!(records[1].spec, bravo(&["b1"], "5s"));
    assert_eq!(records[1].created_at, t(1));
    let counts = records[1].spec.secret_counts();
    for field in [
        "sink_secret",
        "admin_token",
        "twilio.auth_token",
        "twilio.shared_key",
    ] {
        assert_eq!(counts.get(field), Some(&1), "{field}: {counts:?}");
    }

    // The same file again changes nothing.
    let applied = store
        .apply(vec![alpha(), bravo(&["b1"], "5s")], t(2))
        .await
        .expect("apply");
    assert_eq!(applied.unchanged, ["alpha", "bravo"]);
    assert_eq!(load(store).await[1].updated_at, t(1));

    // A policy change and a rotation with overlap: both values kept, the secret's "set at" moves.
    let applied = store
        .apply(vec![bravo(&["b2", "b1"], "2s")], t(3))
        .await
        .expect("apply");
    assert_eq!(applied.updated, ["bravo"]);
    let b = &load(store).await[1];
    assert_eq!(b.spec, bravo(&["b2", "b1"], "2s"));
    assert_eq!((b.created_at, b.updated_at), (t(1), t(3)));
    assert_eq!(b.secrets_set_at.get("twilio.auth_token"), Some(&t(3)));
    assert_eq!(b.secrets_set_at.get("twilio.shared_key"), Some(&t(1)));

    // All or nothing: a set with one bad tenant (an account another owns) writes nothing.
    let before = load(store).await;
    let mut alpha_changed = alpha();
    alpha_changed.quiet = Some("9s".into());
    let e = store
        .apply(vec![alpha_changed, charlie_on("1065")], t(4))
        .await
        .expect_err("an account owned twice");
    assert!(e.contains("1065"), "{e}");
    let e = store
        .apply(vec![alpha(), alpha()], t(4))
        .await
        .expect_err("an id twice");
    assert!(e.contains("alpha"), "{e}");
    assert_eq!(load(store).await, before, "a refused apply wrote something");

    // Removed: a tombstone that keeps the sink, whose accounts a new tenant cannot take yet.
    store.remove("bravo", false, t(5)).await.expect("remove");
    let records = load(store).await;
    assert_eq!(ids(&records), [("alpha", false), ("bravo", true)]);
    assert_eq!(records[1].removed_at, Some(t(5)));
    assert_eq!(
        records[1].spec.sink.as_deref(),
        Some("https://bravo.example/lull")
    );
    let mut taker = charlie_on("2000");
    taker.twilio = records[1].spec.twilio.clone();
    taker.twilio.as_mut().expect("twilio").auth_token = None;
    taker.twilio.as_mut().expect("twilio").shared_key = None;
    let e = store
        .apply(vec![taker.clone()], t(6))
        .await
        .expect_err("a removed tenant's account");
    assert!(e.contains("+15550001111"), "{e}");

    // Purged: gone, its account free again. Unknown ids are named.
    store.remove("bravo", true, t(7)).await.expect("purge");
    assert_eq!(ids(&load(store).await), [("alpha", false)]);
    let applied = store.apply(vec![taker], t(8)).await.expect("apply");
    assert_eq!(applied.created, ["charlie"]);
    let e = store
        .remove("nobody", false, t(9))
        .await
        .expect_err("unknown id");
    assert!(e.contains("nobody"), "{e}");

    // A removed tenant applied again comes back, its creation time kept.
    store.remove("alpha", false, t(10)).await.expect("remove");
    let applied = store.apply(vec![alpha()], t(11)).await.expect("apply");
    assert_eq!(applied.updated, ["alpha"]);
    let a = &load(store).await[0];
    assert_eq!((a.removed_at, a.created_at), (None, t(1)));
}
