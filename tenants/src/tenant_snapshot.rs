//! One loaded state of the tenant store, built from its records by [`Snapshot::build`]: the
//! directory lookups answer from, the sink routes hand-offs follow, and the tenants left out.
//!
//! A stored tenant that does not build (its stored policy or spec invalid, or one stored before
//! policies were resolved at apply time and invalid under this process's defaults; two tenants
//! claiming one account, which only writing the store around the CLI can do) is
//! **quarantined**: skipped, counted, logged, its accounts answered 503 (the gateway retries;
//! nothing is accepted under a tenant this process cannot trust), while every other tenant is
//! served. Its sink still routes what it had accepted, like a removed tenant's.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use lull_core::{Policy, Provider};

use crate::tenant::{
    normalise_account, DirectoryConfigError, MemoryDirectory, Secrets, SinkSettings, Tenant,
};
use crate::tenant_spec::{TenantRecord, TenantSpec};

/// A stored tenant this process does not serve, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    pub tenant: String,
    pub reason: String,
}

/// One loaded state of the store.
pub(crate) struct Snapshot {
    pub loaded: Instant,
    pub dir: MemoryDirectory,
    /// (provider, normalised account) -> the sink of the tenant that owns it, or of the tenant
    /// (removed, quarantined, or one that dropped it) that holds it.
    pub sinks: HashMap<(Provider, String), SinkSettings>,
    /// Accounts of quarantined tenants that no served tenant owns.
    pub quarantined_accounts: HashSet<(Provider, String)>,
    pub quarantined: Vec<Quarantined>,
    /// How many tenants are served.
    pub live: usize,
}

impl Snapshot {
    /// The snapshot of `records`; tenants' missing policy fields (records without a stored
    /// policy) take `defaults`; `fallback` serves alone when the store holds no record at all.
    pub fn build(
        records: Vec<TenantRecord>,
        defaults: &Policy,
        fallback: Option<&Tenant>,
    ) -> Snapshot {
        let mut snap = Snapshot {
            loaded: Instant::now(),
            dir: MemoryDirectory::default(),
            sinks: HashMap::new(),
            quarantined_accounts: HashSet::new(),
            quarantined: Vec::new(),
            live: 0,
        };
        if records.is_empty() {
            if let Some(f) = fallback {
                snap.dir = MemoryDirectory::single(f.clone());
                snap.live = 1;
            }
            return snap;
        }
        let removed = records.iter().filter(|r| r.removed_at.is_some()).count();
        let mut live: Vec<(Tenant, &TenantRecord)> = Vec::new();
        for r in records.iter().filter(|r| r.removed_at.is_none()) {
            match r.tenant(defaults) {
                Ok(t) => live.push((t, r)),
                Err(e) => snap.quarantine(&r.spec.id, e.to_string()),
            }
        }
        // Conflicts between tenants: each one named is left out, until the rest is consistent.
        loop {
            let tenants: Vec<Tenant> = live.iter().map(|(t, _)| t.clone()).collect();
            let err = match snap.dir.replace_beside(tenants, removed) {
                Ok(()) => break,
                Err(e) => e,
            };
            let out: Vec<String> = match &err {
                DirectoryConfigError::SharedAccount {
                    provider,
                    account,
                    first,
                    second,
                } => {
                    let reason = format!(
                        "{provider} account {account:?} is claimed by tenants {first:?} and \
                         {second:?}"
                    );
                    snap.quarantine(first, reason.clone());
                    snap.quarantine(second, reason);
                    vec![first.clone(), second.clone()]
                }
                DirectoryConfigError::WildcardAmongMany(id)
                | DirectoryConfigError::DuplicateId(id) => {
                    snap.quarantine(id, err.to_string());
                    vec![id.clone()]
                }
            };
            let before = live.len();
            live.retain(|(t, _)| !out.contains(&t.id));
            if live.len() == before {
                // Never reached (each error names a tenant it holds); never loop forever.
                live.clear();
            }
        }
        snap.live = live.len();
        for (t, _) in &live {
            if let Some(sink) = &t.sink {
                for k in tenant_accounts(t) {
                    snap.sinks.insert(k, sink.clone());
                }
            }
        }
        // What others hold keeps their sink where no served tenant owns the account: accounts a
        // tenant dropped, removed tenants' and quarantined tenants' accounts.
        for (t, r) in &live {
            if let Some(sink) = &t.sink {
                for k in r.holds() {
                    snap.sinks.entry(k).or_insert_with(|| sink.clone());
                }
            }
        }
        let served: HashSet<(Provider, String)> =
            live.iter().flat_map(|(t, _)| tenant_accounts(t)).collect();
        let ids: HashSet<&str> = live.iter().map(|(t, _)| t.id.as_str()).collect();
        for r in &records {
            if ids.contains(r.spec.id.as_str()) {
                continue;
            }
            let accounts = if r.removed_at.is_some() {
                r.holds()
            } else {
                r.all_accounts()
            };
            if let Some(sink) = spec_sink(&r.spec) {
                for k in &accounts {
                    snap.sinks.entry(k.clone()).or_insert_with(|| sink.clone());
                }
            }
            if r.removed_at.is_none() {
                snap.quarantined_accounts
                    .extend(accounts.into_iter().filter(|k| !served.contains(k)));
            }
        }
        snap
    }

    fn quarantine(&mut self, tenant: &str, reason: String) {
        if !self.quarantined.iter().any(|q| q.tenant == tenant) {
            self.quarantined.push(Quarantined {
                tenant: tenant.to_string(),
                reason,
            });
        }
    }

    /// True when (`provider`, `account`) belongs to a quarantined tenant only.
    pub fn is_quarantined(&self, provider: Provider, account: &str) -> bool {
        !self.quarantined_accounts.is_empty()
            && self
                .quarantined_accounts
                .contains(&(provider, normalise_account(provider, account).to_string()))
    }
}

/// A built tenant's accounts, normalised.
fn tenant_accounts(t: &Tenant) -> Vec<(Provider, String)> {
    Provider::ALL
        .into_iter()
        .flat_map(|p| {
            t.accounts(p)
                .iter()
                .map(move |a| (p, normalise_account(p, a).to_string()))
        })
        .collect()
}

/// The sink a spec names, read leniently (a tenant that does not build still gets what it
/// accepted): any `http(s)://` URL and its signing secrets.
fn spec_sink(spec: &TenantSpec) -> Option<SinkSettings> {
    let url = spec.sink.as_ref()?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return None;
    }
    Some(SinkSettings {
        url: url.clone(),
        signing_secrets: Secrets::new(
            spec.sink_secret
                .as_ref()
                .map(|s| s.0.clone())
                .unwrap_or_default(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_core::Millis;
    use std::time::Duration;

    fn rec(j: serde_json::Value) -> TenantRecord {
        TenantRecord::applied(None, serde_json::from_value(j).unwrap(), Millis(1))
    }

    #[test]
    fn a_tenant_that_fails_here_is_quarantined_and_the_others_are_served() {
        // c (quiet 15 s, stored without a policy) is invalid under a max wait of 10 s.
        let c = rec(serde_json::json!({
            "id": "c", "quiet": "15s", "sink": "https://c.example/lull",
            "meta": {"phone_number_ids": ["3"], "app_secret": "c"}
        }));
        let d = rec(serde_json::json!({
            "id": "d", "meta": {"phone_number_ids": ["4"], "app_secret": "d"}
        }));
        let here = Policy::with_times(Duration::from_secs(8), Duration::from_secs(10)).unwrap();
        let s = Snapshot::build(vec![c, d], &here, None);
        assert_eq!(s.live, 1);
        assert_eq!(s.quarantined.len(), 1);
        assert_eq!(s.quarantined[0].tenant, "c");
        assert!(
            s.quarantined[0].reason.contains("max_wait"),
            "{:?}",
            s.quarantined
        );
        assert_eq!(s.dir.find_now(Provider::Meta, "4").unwrap().id, "d");
        assert!(s.dir.find_now(Provider::Meta, "3").is_none());
        assert!(s.is_quarantined(Provider::Meta, "3"));
        assert!(!s.is_quarantined(Provider::Meta, "4"));
        // What c accepted still reaches c's sink.
        assert_eq!(
            s.sinks[&(Provider::Meta, "3".to_string())].url,
            "https://c.example/lull"
        );
    }

    #[test]
    fn two_tenants_claiming_one_account_are_both_left_out() {
        let x = rec(serde_json::json!({"id": "x", "meta": {"phone_number_ids": ["7"]}}));
        let y = rec(serde_json::json!({"id": "y", "meta": {"phone_number_ids": ["7"]}}));
        let z = rec(serde_json::json!({"id": "z", "meta": {"phone_number_ids": ["8"]}}));
        let s = Snapshot::build(vec![x, y, z], &Policy::default(), None);
        let out: Vec<_> = s.quarantined.iter().map(|q| q.tenant.as_str()).collect();
        assert_eq!(out, ["x", "y"]);
        assert!(s.quarantined[0].reason.contains("\"7\""));
        assert_eq!(s.dir.find_now(Provider::Meta, "8").unwrap().id, "z");
        assert!(s.is_quarantined(Provider::Meta, "7"));
    }

    #[test]
    fn an_account_a_tenant_dropped_keeps_routing_to_its_sink() {
        let a1 = rec(serde_json::json!({
            "id": "a", "sink": "https://a.example/x",
            "meta": {"phone_number_ids": ["1", "2"], "app_secret": "a"}
        }));
        let a2: crate::TenantSpec = serde_json::from_value(serde_json::json!({
            "id": "a", "sink": "https://a.example/x",
            "meta": {"phone_number_ids": ["2"], "app_secret": "a"}
        }))
        .unwrap();
        let a = TenantRecord::applied(Some(&a1), a2, Millis(2));
        let s = Snapshot::build(vec![a], &Policy::default(), None);
        // Refused for new messages, but its pending work goes to a's sink.
        assert!(s.dir.find_now(Provider::Meta, "1").is_none());
        assert_eq!(
            s.sinks[&(Provider::Meta, "1".to_string())].url,
            "https://a.example/x"
        );
    }
}
