//! A stored tenant ([`TenantRecord`]) and what an apply does to the stored set
//! ([`apply_specs`]): every tenant store (SQLite, DynamoDB) applies through this one function,
//! so they cannot disagree on what an apply means.
//!
//! Two rules live here besides the checks of each spec:
//!
//! - **The policy is resolved once, at apply time**, with the deployment's defaults, and stored
//!   beside the spec ([`TenantRecord::policy`]). Every process then uses that stored policy, so a
//!   tenant means the same in the CLI, the local server and each Lambda whatever their own
//!   `--quiet`/`--max-wait`; a process never re-resolves it against its own settings.
//! - **An account a tenant drops stays held by it** ([`TenantRecord::held`]) while its
//!   conversations may still hold work: open or paused windows and pending or parked batches go
//!   to the sink of the tenant that accepted them, never to the account's next owner. Another
//!   tenant may claim it only once no conversation of the account holds work and the drop is
//!   older than the tenant refresh time (until then a running process may still accept for the
//!   old owner). A removed tenant (tombstone) holds all its accounts until it is purged.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use lull_core::{ConversationKey, Millis, Policy, Provider};
use serde::{Deserialize, Serialize};

use crate::tenant::{normalise_account, Tenant};
use crate::tenant_spec::{SpecError, TenantSpec, SECRET_FIELDS};

/// An account a live tenant dropped from its spec while it still held it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldAccount {
    pub provider: Provider,
    /// Normalised ([`normalise_account`]).
    pub account: String,
    /// When the tenant dropped it.
    pub since: Millis,
}

/// A stored tenant: the spec (secrets included once resolved) and its bookkeeping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub spec: TenantSpec,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// When each secret field last changed value (`lull tenants list` shows it).
    #[serde(default)]
    pub secrets_set_at: BTreeMap<String, Millis>,
    /// Set by `lull tenants remove`: the tenant's accounts are refused from then on, but its
    /// sink stays known so that batches accepted before the removal still reach it (a
    /// tombstone, deleted by `lull tenants remove --purge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<Millis>,
    /// The policy resolved at apply time (the spec over the deployment's defaults then); every
    /// process uses it as is. Absent in records stored before it existed: those resolve with
    /// the reading process's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// Accounts this tenant dropped but still holds: refused for new messages, their batches
    /// still routed to this tenant's sink, not claimable by another tenant while busy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldAccount>,
}

use std::collections::BTreeMap;

impl TenantRecord {
    /// The record after applying `spec` at `now` over `old` (if any): creation time kept, a
    /// tombstone revived, each secret's "set at" moved only when its values changed, and every
    /// account `old` held that `spec` no longer lists held (since its first drop). The policy is
    /// left for the caller to resolve ([`apply_specs`] does).
    pub fn applied(old: Option<&TenantRecord>, spec: TenantSpec, now: Millis) -> TenantRecord {
        let mut set_at = BTreeMap::new();
        for field in SECRET_FIELDS {
            let Some(new) = spec.secret(field) else {
                continue;
            };
            let kept = old.and_then(|o| {
                (o.spec.secret(field) == Some(new))
                    .then(|| o.secrets_set_at.get(*field).copied())
                    .flatten()
            });
            set_at.insert(field.to_string(), kept.unwrap_or(now));
        }
        let claimed: HashSet<(Provider, String)> = spec_accounts(&spec).collect();
        let mut held: Vec<HeldAccount> = Vec::new();
        if let Some(o) = old {
            let dropped = spec_accounts(&o.spec).map(|(provider, account)| HeldAccount {
                provider,
                account,
                since: now,
            });
            for h in o.held.iter().cloned().chain(dropped) {
                let key = (h.provider, h.account.clone());
                if !claimed.contains(&key)
                    && !held
                        .iter()
                        .any(|x| x.provider == h.provider && x.account == h.account)
                {
                    held.push(h);
                }
            }
        }
        TenantRecord {
            created_at: old.map_or(now, |o| o.created_at),
            updated_at: now,
            secrets_set_at: set_at,
            removed_at: None,
            policy: None,
            held,
            spec,
        }
    }

    /// The tenant this record describes, with its stored policy (checked again: a policy is
    /// valid or not whatever the process) or, for a record stored before policies were
    /// resolved at apply time, the spec over `defaults`.
    pub fn tenant(&self, defaults: &Policy) -> Result<Tenant, SpecError> {
        let Some(policy) = &self.policy else {
            return self.spec.to_tenant(defaults);
        };
        policy
            .validate()
            .map_err(|e| self.spec.err("policy", format!("the stored policy: {e}")))?;
        let mut t = self.spec.to_tenant(policy)?;
        t.policy = *policy;
        Ok(t)
    }

    /// Every account this record keeps from other tenants, normalised: a tombstone all of its
    /// spec's, a live tenant those it dropped but still holds.
    pub fn holds(&self) -> Vec<(Provider, String)> {
        if self.removed_at.is_some() {
            return spec_accounts(&self.spec).collect();
        }
        self.held
            .iter()
            .map(|h| (h.provider, h.account.clone()))
            .collect()
    }

    /// Every account whose conversations may hold this tenant's work: its spec's and those it
    /// holds (what `lull tenants remove --purge` checks).
    pub fn all_accounts(&self) -> Vec<(Provider, String)> {
        let mut out: Vec<_> = spec_accounts(&self.spec).collect();
        for h in &self.held {
            if !out.iter().any(|(p, a)| *p == h.provider && *a == h.account) {
                out.push((h.provider, h.account.clone()));
            }
        }
        out
    }
}

/// The accounts a spec lists, normalised.
fn spec_accounts(spec: &TenantSpec) -> impl Iterator<Item = (Provider, String)> + '_ {
    Provider::ALL.into_iter().flat_map(move |p| {
        spec.accounts(p)
            .iter()
            .map(move |a| (p, normalise_account(p, a).to_string()))
    })
}

/// What an apply did, per tenant id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// Tenants that gave up an account they held (idle now) to the tenant claiming it.
    pub released: Vec<String>,
}

impl Applied {
    /// The ids whose records changed: what a store must write.
    pub fn changed(&self) -> impl Iterator<Item = &String> {
        self.created
            .iter()
            .chain(&self.updated)
            .chain(&self.released)
    }
}

/// What an apply is checked against, besides the stored records.
pub struct ApplyContext<'a> {
    /// The deployment's default policy: the policy fields a spec leaves out.
    pub defaults: &'a Policy,
    pub now: Millis,
    /// How soon every running process sees a change (the tenant refresh time): a dropped
    /// account goes to another tenant no sooner than this after its drop.
    pub refresh: Duration,
    /// How many conversations hold work (open or paused window, pending or parked batch), per
    /// account of [`held_claims`]: the shell counts them in its window store.
    pub busy: &'a HashMap<(Provider, String), usize>,
}

/// The accounts `specs` claim that another live tenant holds ([`TenantRecord::held`]): the
/// shell counts their busy conversations for [`ApplyContext::busy`].
pub fn held_claims(records: &[TenantRecord], specs: &[TenantSpec]) -> Vec<(Provider, String)> {
    let mut out = Vec::new();
    for s in specs {
        for (p, a) in spec_accounts(s) {
            let held_by_other = records.iter().any(|r| {
                r.spec.id != s.id
                    && r.removed_at.is_none()
                    && r.held.iter().any(|h| h.provider == p && h.account == a)
            });
            if held_by_other && !out.contains(&(p, a.clone())) {
                out.push((p, a));
            }
        }
    }
    out
}

/// Per account of `accounts`, how many of `keys` (the conversations holding work: a record in
/// the store's due index) are on it.
pub fn busy_per_account<'a>(
    keys: impl IntoIterator<Item = &'a ConversationKey>,
    accounts: &[(Provider, String)],
) -> HashMap<(Provider, String), usize> {
    let mut out: HashMap<(Provider, String), usize> =
        accounts.iter().map(|k| (k.clone(), 0)).collect();
    for key in keys {
        if let Some(n) = out.get_mut(&(key.provider, key.account.clone())) {
            *n += 1;
        }
    }
    out
}

/// Whether tenant `r` may be purged (its tombstone deleted, its accounts free for others): not
/// while a conversation of any account it owns or holds still holds work (`busy`, per account
/// of [`TenantRecord::all_accounts`]), which would then go to the default sink or the
/// accounts' next owner.
pub fn check_purge(
    r: &TenantRecord,
    busy: &HashMap<(Provider, String), usize>,
) -> Result<(), String> {
    let n: usize = r
        .all_accounts()
        .iter()
        .map(|k| busy.get(k).copied().unwrap_or(0))
        .sum();
    if n == 0 {
        return Ok(());
    }
    Err(format!(
        "tenant {:?} still has {n} conversation(s) with open or paused windows or pending \
         batches (`lull inspect`); purge it once they are handed off",
        r.spec.id
    ))
}

/// Applies `specs` to the stored `records` (removed ones included), all or nothing: a spec equal
/// to its live record (policy resolved the same) is unchanged, another replaces it (reviving a
/// removed tenant), a new id is created; each changed tenant's policy is resolved with the
/// context's defaults and stored; an account another tenant holds is released to its claimant
/// when idle (else refused, saying why); then the whole resulting set is checked
/// ([`check_set`]). On an error `records` may be half changed and must not be written.
pub fn apply_specs(
    records: &mut Vec<TenantRecord>,
    specs: Vec<TenantSpec>,
    cx: &ApplyContext<'_>,
) -> Result<Applied, String> {
    let mut applied = Applied::default();
    let mut seen = HashSet::new();
    let claims = held_claims(records, &specs);
    for spec in specs {
        if !seen.insert(spec.id.clone()) {
            return Err(format!("tenant id {:?} appears twice in the file", spec.id));
        }
        let policy = Some(
            spec.to_tenant(cx.defaults)
                .map_err(|e| e.to_string())?
                .policy,
        );
        match records.iter_mut().find(|r| r.spec.id == spec.id) {
            Some(old) if old.spec == spec && old.removed_at.is_none() && old.policy == policy => {
                applied.unchanged.push(spec.id);
            }
            Some(old) => {
                applied.updated.push(spec.id.clone());
                *old = TenantRecord::applied(Some(old), spec, cx.now);
                old.policy = policy;
            }
            None => {
                applied.created.push(spec.id.clone());
                let mut r = TenantRecord::applied(None, spec, cx.now);
                r.policy = policy;
                records.push(r);
            }
        }
    }
    for (p, a) in claims {
        for r in records.iter_mut().filter(|r| r.removed_at.is_none()) {
            let Some(i) = r
                .held
                .iter()
                .position(|h| h.provider == p && h.account == a)
            else {
                continue;
            };
            let since = r.held[i].since;
            let busy = cx.busy.get(&(p, a.clone())).copied().unwrap_or(0);
            let visible = since.plus(cx.refresh);
            if busy > 0 {
                return Err(format!(
                    "{p} account {a:?} was dropped by tenant {:?} at {}, and {busy} of its \
                     conversations still hold work (open or paused windows, pending or parked \
                     batches: `lull inspect`), which goes to {:?}'s sink; apply again once they \
                     are handed off",
                    r.spec.id,
                    since.rfc3339(),
                    r.spec.id
                ));
            }
            if visible > cx.now {
                return Err(format!(
                    "{p} account {a:?} was dropped by tenant {:?} at {}: running processes may \
                     accept for it until they refresh their tenants (at {}); apply again then",
                    r.spec.id,
                    since.rfc3339(),
                    visible.rfc3339()
                ));
            }
            r.held.remove(i);
            r.updated_at = cx.now;
            if !applied.changed().any(|id| *id == r.spec.id) {
                applied.released.push(r.spec.id.clone());
            }
        }
    }
    let touched: HashSet<String> = applied.changed().cloned().collect();
    check_set(records, cx.defaults, |id| touched.contains(id))?;
    Ok(applied)
}

/// Checks a whole set of tenants as it would be after an apply: ids unique, every account owned
/// by one live tenant and not held by another (a removed tenant, or a live one that dropped it:
/// their pending batches would otherwise go to the new owner's sink), and each tenant for which
/// `strict(id)` holds valid. A stored tenant that is not being changed and no longer builds
/// (stored before policies were resolved at apply time, invalid under these defaults) does not
/// stop the apply: running processes quarantine it; its accounts still count.
pub fn check_set(
    records: &[TenantRecord],
    defaults: &Policy,
    strict: impl Fn(&str) -> bool,
) -> Result<Vec<Tenant>, String> {
    let mut ids = HashSet::new();
    let mut live = Vec::new();
    let mut held: HashMap<(Provider, String), &str> = HashMap::new();
    let mut owned: HashMap<(Provider, String), &str> = HashMap::new();
    let mut removed = 0;
    for r in records {
        if !ids.insert(r.spec.id.as_str()) {
            return Err(format!("tenant id {:?} appears twice", r.spec.id));
        }
        for k in r.holds() {
            held.insert(k, &r.spec.id);
        }
        if r.removed_at.is_some() {
            removed += 1;
        }
    }
    for r in records.iter().filter(|r| r.removed_at.is_none()) {
        for k in spec_accounts(&r.spec) {
            if let Some(first) = owned.insert(k.clone(), &r.spec.id) {
                let (p, a) = k;
                return Err(format!(
                    "{p} account {a:?} belongs to tenants {first:?} and {:?}",
                    r.spec.id
                ));
            }
            match held.get(&k) {
                Some(holder) if *holder != r.spec.id => {
                    let (p, a) = k;
                    let gone = records
                        .iter()
                        .find(|x| x.spec.id == *holder)
                        .is_some_and(|x| x.removed_at.is_some());
                    return Err(if gone {
                        format!(
                            "tenant {:?}: {p} account {a:?} still belongs to removed tenant \
                             {holder:?} (its accepted batches go to its sink); purge it first \
                             with `lull tenants remove {holder} --purge`",
                            r.spec.id
                        )
                    } else {
                        format!(
                            "tenant {:?}: {p} account {a:?} is still held by tenant {holder:?}, \
                             which dropped it while its conversations may hold work",
                            r.spec.id
                        )
                    });
                }
                _ => {}
            }
        }
        match r.tenant(defaults) {
            Ok(t) => live.push(t),
            Err(e) if strict(&r.spec.id) => return Err(e.to_string()),
            Err(e) => tracing::warn!(
                error = %e,
                "a stored tenant no longer builds under these defaults; running processes \
                 quarantine it until it is applied again"
            ),
        }
    }
    crate::tenant::MemoryDirectory::default()
        .replace_beside(live.clone(), removed)
        .map_err(|e| e.to_string())?;
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec(j: serde_json::Value) -> TenantSpec {
        serde_json::from_value(j).unwrap()
    }

    fn meta(id: &str, accounts: &[&str]) -> TenantSpec {
        spec(serde_json::json!({
            "id": id, "meta": {"phone_number_ids": accounts, "app_secret": format!("{id}-app")}
        }))
    }

    const REFRESH: Duration = Duration::from_secs(10);

    fn apply(
        records: &mut Vec<TenantRecord>,
        specs: Vec<TenantSpec>,
        defaults: &Policy,
        now: u64,
        busy: &[(&str, usize)],
    ) -> Result<Applied, String> {
        let busy = busy
            .iter()
            .map(|(a, n)| ((Provider::Meta, a.to_string()), *n))
            .collect();
        apply_specs(
            records,
            specs,
            &ApplyContext {
                defaults,
                now: Millis(now),
                refresh: REFRESH,
                busy: &busy,
            },
        )
    }

    #[test]
    fn the_policy_is_resolved_at_apply_and_used_as_stored_by_every_process() {
        let cli = Policy::with_times(Duration::from_secs(8), Duration::from_secs(10)).unwrap();
        let mut records = Vec::new();
        let mut c = meta("c", &["1"]);
        c.quiet = Some("15s".into());
        // Invalid under the deployment's max wait of 10 s: refused at apply, naming it.
        let e = apply(
            &mut records.clone(),
            vec![c.clone(), meta("d", &["2"])],
            &cli,
            1,
            &[],
        )
        .unwrap_err();
        assert!(e.contains("\"c\"") && e.contains("max_wait"), "{e}");
        let r = apply(&mut records, vec![meta("d", &["2"])], &cli, 1, &[]).unwrap();
        assert_eq!(r.created, ["d"]);
        // Another process with other defaults builds d exactly as applied.
        let d = records[0].tenant(&Policy::default()).unwrap();
        assert_eq!(d.policy.max_wait, Duration::from_secs(10));
        // The same spec under other defaults is re-resolved: an update, not "unchanged".
        let r = apply(
            &mut records,
            vec![meta("d", &["2"])],
            &Policy::default(),
            2,
            &[],
        )
        .unwrap();
        assert_eq!(r.updated, ["d"]);
        let r = apply(
            &mut records,
            vec![meta("d", &["2"])],
            &Policy::default(),
            3,
            &[],
        )
        .unwrap();
        assert_eq!(r.unchanged, ["d"]);
        // A stored record without a policy (written before) that fails under these defaults
        // does not stop another tenant's apply.
        let mut legacy = TenantRecord::applied(None, c, Millis(1));
        legacy.policy = None;
        records.push(legacy);
        assert!(records[1].tenant(&cli).is_err());
        let r = apply(&mut records, vec![meta("e", &["3"])], &cli, 4, &[]).unwrap();
        assert_eq!(r.created, ["e"]);
    }

    #[test]
    fn a_dropped_account_stays_with_its_tenant_until_idle_and_visible_everywhere() {
        let d = Policy::default();
        let mut records = Vec::new();
        apply(&mut records, vec![meta("a", &["1", "2"])], &d, 1_000, &[]).unwrap();
        // a keeps only "2": "1" is held by a, not free.
        apply(&mut records, vec![meta("a", &["2"])], &d, 2_000, &[]).unwrap();
        assert_eq!(records[0].holds(), [(Provider::Meta, "1".to_string())]);
        assert_eq!(records[0].all_accounts().len(), 2);
        let claim = vec![meta("b", &["1"])];
        assert_eq!(
            held_claims(&records, &claim),
            [(Provider::Meta, "1".to_string())]
        );
        // Busy: refused, naming the holder and the work.
        let e = apply(&mut records.clone(), claim.clone(), &d, 60_000, &[("1", 2)]).unwrap_err();
        assert!(e.contains("\"a\"") && e.contains("2 of its"), "{e}");
        // Idle but dropped less than a refresh ago: a process may still accept for a.
        let e = apply(&mut records.clone(), claim.clone(), &d, 5_000, &[("1", 0)]).unwrap_err();
        assert!(e.contains("refresh"), "{e}");
        let mut records2 = records.clone();
        // Idle and old enough: released to b, and a's record changes too.
        let r = apply(&mut records2, claim, &d, 60_000, &[("1", 0)]).unwrap();
        assert_eq!(
            (r.created, r.released),
            (vec!["b".into()], vec!["a".into()])
        );
        assert!(records2[0].held.is_empty());
        // a taking it back itself needs no check.
        let r = apply(&mut records, vec![meta("a", &["1", "2"])], &d, 3_000, &[]).unwrap();
        assert_eq!(r.updated, ["a"]);
        assert!(records[0].held.is_empty());
    }

    #[test]
    fn a_claim_of_a_held_account_written_around_the_cli_is_refused_by_the_set_check() {
        let d = Policy::default();
        let mut a = TenantRecord::applied(None, meta("a", &["2"]), Millis(1));
        a.held.push(HeldAccount {
            provider: Provider::Meta,
            account: "1".into(),
            since: Millis(1),
        });
        let b = TenantRecord::applied(None, meta("b", &["1"]), Millis(1));
        let e = check_set(&[a, b], &d, |_| true).unwrap_err();
        assert!(e.contains("held by tenant \"a\""), "{e}");
    }

    #[test]
    fn secret_set_at_moves_only_when_values_change() {
        let s1 = spec(serde_json::json!({"id": "a", "meta": {"app_secret": "x"}}));
        let r1 = TenantRecord::applied(None, s1.clone(), Millis(1));
        let mut s2 = s1.clone();
        s2.quiet = Some("2s".into());
        let r2 = TenantRecord::applied(Some(&r1), s2.clone(), Millis(2));
        assert_eq!(r2.secrets_set_at["meta.app_secret"], Millis(1));
        assert_eq!(r2.created_at, Millis(1));
        let s3 = spec(serde_json::json!({"id": "a", "meta": {"app_secret": ["x", "y"]}}));
        let r3 = TenantRecord::applied(Some(&r2), s3, Millis(3));
        assert_eq!(r3.secrets_set_at["meta.app_secret"], Millis(3));
    }

    #[test]
    fn a_set_refuses_duplicates_and_accounts_of_removed_tenants() {
        let rec = |j: serde_json::Value| TenantRecord::applied(None, spec(j), Millis(1));
        let a = rec(
            serde_json::json!({"id": "a", "meta": {"phone_number_ids": ["1"], "app_secret": "x"}}),
        );
        let b = rec(
            serde_json::json!({"id": "b", "twilio": {"numbers": ["whatsapp:+1"], "auth_token": "y"}}),
        );
        assert_eq!(
            check_set(&[a.clone(), b.clone()], &Policy::default(), |_| true)
                .unwrap()
                .len(),
            2
        );
        let e = check_set(&[a.clone(), a.clone()], &Policy::default(), |_| true).unwrap_err();
        assert!(e.contains("\"a\" appears twice"), "{e}");
        let b2 =
            rec(serde_json::json!({"id": "b2", "twilio": {"numbers": ["+1"], "auth_token": "y"}}));
        let e = check_set(&[b.clone(), b2.clone()], &Policy::default(), |_| true).unwrap_err();
        assert!(e.contains("+1") && e.contains("b2"), "{e}");
        let mut gone = b.clone();
        gone.removed_at = Some(Millis(2));
        let e = check_set(&[gone.clone(), b2], &Policy::default(), |_| true).unwrap_err();
        assert!(e.contains("removed tenant \"b\""), "{e}");
        assert_eq!(
            check_set(&[a, gone], &Policy::default(), |_| true)
                .unwrap()
                .len(),
            1
        );
    }
}
