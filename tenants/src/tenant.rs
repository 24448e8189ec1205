//! Tenants: who owns which business number, with which secrets, policy and sink.
//!
//! A tenant is found by the account a request names (Meta `phone_number_id`, Evolution instance,
//! Twilio `To` number, generic `account`, WAHA session), then the request is authenticated with that tenant's
//! secrets, and the conversation key's account is that same authenticated account: a request
//! authenticated for one tenant can never write into another tenant's conversations.
//!
//! Single-tenant setups build one [`Tenant`] from environment variables ([`Tenant::from_env`])
//! whose account lists are empty, meaning "every account" (only allowed when it is the only
//! tenant). Multi-tenant setups implement [`TenantDirectory`] (the store-backed one caches tenant
//! items briefly); [`MemoryDirectory`] can be swapped at run time without a restart.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use lull_core::{Policy, Provider};

/// Several values of one secret setting, any of which is accepted (rotation). `Debug` never
/// prints the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// The non-empty values, trimmed.
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Secrets(
            values
                .into_iter()
                .map(|s| s.into().trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        )
    }

    /// Parses a comma-separated list (how environment variables carry several values); blank
    /// values are dropped.
    pub fn from_list(list: &str) -> Self {
        Secrets::new(Self::split(list))
    }

    /// The one rule for several values in one string (a flag, a variable, a `lull.toml` or
    /// tenant string): comma-separated, each value as written.
    pub fn split(list: &str) -> impl Iterator<Item = &str> {
        list.split(',')
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} value(s), redacted)", self.0.len())
    }
}

/// Meta Cloud API settings of a tenant.
#[derive(Clone, Debug, Default)]
pub struct MetaSettings {
    /// The business numbers (`metadata.phone_number_id`) this tenant owns; empty: all (single
    /// tenant only).
    pub phone_number_ids: Vec<String>,
    /// The Meta app secret(s) that sign `X-Hub-Signature-256`.
    pub app_secrets: Secrets,
    /// The verify token(s) of the subscription handshake.
    pub verify_tokens: Secrets,
}

/// Evolution API settings of a tenant.
#[derive(Clone, Debug, Default)]
pub struct EvolutionSettings {
    /// The instance names this tenant owns; empty: all (single tenant only).
    pub instances: Vec<String>,
    /// Tokens accepted in the `apikey` header, as `Authorization: Bearer <token>`, or in the
    /// path (`/webhook/evolution/k/<token>`).
    pub tokens: Secrets,
    /// Evolution `jwt_key` values: `Authorization: Bearer <HS256 JWT>` signed with one of them.
    pub jwt_keys: Secrets,
    /// Buffer the instance's own messages (`fromMe: true`); off by default.
    pub accept_from_me: bool,
    /// Buffer status updates (`status@broadcast`); off by default.
    pub accept_status_broadcast: bool,
}

/// Twilio settings of a tenant.
#[derive(Clone, Debug, Default)]
pub struct TwilioSettings {
    /// The business numbers (`To`, with or without `whatsapp:`) this tenant owns; empty: all.
    pub numbers: Vec<String>,
    /// Auth token(s) that sign `X-Twilio-Signature`.
    pub auth_tokens: Secrets,
    /// Webhook shared key secret(s) (Twilio's Webhooks configuration API): they sign instead
    /// of the auth token when a request carries `X-Twilio-Webhooks-Signature-Settings`.
    pub shared_keys: Secrets,
    /// The exact URL configured in Twilio, when the one seen by lull differs (proxies, API
    /// Gateway stages, custom domains). Without it the URL is rebuilt from the request.
    pub public_url: Option<String>,
}

/// Generic-format settings of a tenant.
#[derive(Clone, Debug, Default)]
pub struct GenericSettings {
    /// The `account` values this tenant owns; empty: all (single tenant only).
    pub accounts: Vec<String>,
    /// Standard Webhooks secrets of `/webhook/generic` (`crate::standard_webhooks`).
    pub secrets: Secrets,
}

/// WAHA settings of a tenant.
#[derive(Clone, Debug, Default)]
pub struct WahaSettings {
    /// The session names this tenant owns; empty: all (single tenant only).
    pub sessions: Vec<String>,
    /// HMAC keys of the webhook (`hmac.key` / `WHATSAPP_HOOK_HMAC_KEY` on WAHA): WAHA sends
    /// `X-Webhook-Hmac`, the hex HMAC-SHA512 of the raw body.
    pub hmac_keys: Secrets,
}

/// Chatwoot settings of a tenant: human handover (`POST /webhook/chatwoot`,
/// `crate::routes::chatwoot`).
#[derive(Clone, Debug, Default)]
pub struct ChatwootSettings {
    /// The webhook's secret(s): Chatwoot signs `"{timestamp}.{body}"` with HMAC-SHA256.
    pub secrets: Secrets,
    /// Which lull account each Chatwoot inbox talks through.
    pub inboxes: Vec<ChatwootInbox>,
    /// Chatwoot users whose messages are the bot's own (a bot posting with a user's access
    /// token): they never pause.
    pub bot_user_ids: Vec<u64>,
}

/// One Chatwoot inbox and the lull account (gateway and business account) its conversations
/// are held under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatwootInbox {
    pub id: u64,
    pub provider: Provider,
    pub account: String,
}

impl ChatwootSettings {
    /// The lull account of inbox `id`, if mapped.
    pub fn inbox(&self, id: u64) -> Option<&ChatwootInbox> {
        self.inboxes.iter().find(|i| i.id == id)
    }
}

/// Where this tenant's batches go (carried for the sink; the router does not use it).
#[derive(Clone, Debug, Default)]
pub struct SinkSettings {
    pub url: String,
    /// Secrets the sink signs batches with (the first signs; all are listed for receivers).
    pub signing_secrets: Secrets,
}

/// One tenant.
#[derive(Clone, Debug, Default)]
pub struct Tenant {
    /// A stable name, for logs and metrics (never a phone number).
    pub id: String,
    pub policy: Policy,
    pub sink: Option<SinkSettings>,
    /// What the user sees when a window closes (read receipt, typing indicator), and the API
    /// access it takes; `None`: nothing.
    pub listen: Option<lull_core::listen::Listen>,
    /// Bearer tokens of the admin routes (`POST /admin/conversations/pause|resume`): any one
    /// opens this tenant's own conversations, none another's. Empty: the routes refuse it.
    pub admin_tokens: Secrets,
    pub meta: MetaSettings,
    pub evolution: EvolutionSettings,
    pub twilio: TwilioSettings,
    pub generic: GenericSettings,
    pub waha: WahaSettings,
    pub chatwoot: ChatwootSettings,
}

/// A gateway setting of the single tenant ([`Tenant::from_env`]: environment variables, or
/// `lull serve`'s flags and top-level `lull.toml` keys) could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TenantEnvError {
    #[error("{0} is set but holds no value")]
    Empty(&'static str),
}

/// Environment variables read by [`Tenant::from_env`].
pub mod env {
    pub const META_APP_SECRET: &str = "LULL_META_APP_SECRET";
    pub const META_VERIFY_TOKEN: &str = "LULL_META_VERIFY_TOKEN";
    pub const EVOLUTION_TOKEN: &str = "LULL_EVOLUTION_TOKEN";
    pub const EVOLUTION_JWT_KEY: &str = "LULL_EVOLUTION_JWT_KEY";
    pub const TWILIO_AUTH_TOKEN: &str = "LULL_TWILIO_AUTH_TOKEN";
    pub const TWILIO_PUBLIC_URL: &str = "LULL_TWILIO_PUBLIC_URL";
    pub const TWILIO_SHARED_KEY: &str = "LULL_TWILIO_SHARED_KEY";
    pub const GENERIC_SECRET: &str = "LULL_GENERIC_SECRET";
    pub const WAHA_HMAC_KEY: &str = "LULL_WAHA_HMAC_KEY";
    /// Bearer token(s) of the admin routes (`POST /admin/conversations/pause|resume`): the
    /// single tenant's `admin_token`. Not a gateway secret: it authenticates no webhook.
    pub const ADMIN_TOKEN: &str = "LULL_ADMIN_TOKEN";

    /// Every variable [`Tenant::from_env`](super::Tenant::from_env) reads.
    pub const ALL: &[&str] = &[
        META_APP_SECRET,
        META_VERIFY_TOKEN,
        EVOLUTION_TOKEN,
        EVOLUTION_JWT_KEY,
        TWILIO_AUTH_TOKEN,
        TWILIO_PUBLIC_URL,
        TWILIO_SHARED_KEY,
        GENERIC_SECRET,
        WAHA_HMAC_KEY,
        ADMIN_TOKEN,
    ];
}

impl Tenant {
    /// The single tenant of a one-tenant setup, from variables read through `lookup` (pass
    /// `|k| std::env::var(k).ok()`). Secrets are comma-separated lists; account lists stay empty
    /// (every account belongs to this tenant).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Tenant, TenantEnvError> {
        let secrets = |name: &'static str| -> Result<Secrets, TenantEnvError> {
            match lookup(name) {
                None => Ok(Secrets::default()),
                Some(v) => {
                    let s = Secrets::from_list(&v);
                    if s.is_empty() {
                        Err(TenantEnvError::Empty(name))
                    } else {
                        Ok(s)
                    }
                }
            }
        };
        let public_url = match lookup(env::TWILIO_PUBLIC_URL) {
            None => None,
            Some(v) if v.trim().is_empty() => {
                return Err(TenantEnvError::Empty(env::TWILIO_PUBLIC_URL))
            }
            Some(v) => Some(v.trim().to_string()),
        };
        Ok(Tenant {
            id: "default".into(),
            meta: MetaSettings {
                app_secrets: secrets(env::META_APP_SECRET)?,
                verify_tokens: secrets(env::META_VERIFY_TOKEN)?,
                ..Default::default()
            },
            evolution: EvolutionSettings {
                tokens: secrets(env::EVOLUTION_TOKEN)?,
                jwt_keys: secrets(env::EVOLUTION_JWT_KEY)?,
                ..Default::default()
            },
            twilio: TwilioSettings {
                auth_tokens: secrets(env::TWILIO_AUTH_TOKEN)?,
                shared_keys: secrets(env::TWILIO_SHARED_KEY)?,
                public_url,
                ..Default::default()
            },
            generic: GenericSettings {
                secrets: secrets(env::GENERIC_SECRET)?,
                ..Default::default()
            },
            waha: WahaSettings {
                hmac_keys: secrets(env::WAHA_HMAC_KEY)?,
                ..Default::default()
            },
            admin_tokens: secrets(env::ADMIN_TOKEN)?,
            ..Default::default()
        })
    }

    /// True when any gateway has a secret: the local server may only accept unsigned requests
    /// on loopback when this is false for every tenant. Admin tokens do not count: they
    /// authenticate no webhook.
    pub fn has_any_secret(&self) -> bool {
        !(self.meta.app_secrets.is_empty()
            && self.meta.verify_tokens.is_empty()
            && self.evolution.tokens.is_empty()
            && self.evolution.jwt_keys.is_empty()
            && self.twilio.auth_tokens.is_empty()
            && self.twilio.shared_keys.is_empty()
            && self.generic.secrets.is_empty()
            && self.waha.hmac_keys.is_empty()
            && self.chatwoot.secrets.is_empty())
    }

    /// The accounts this tenant owns on `provider` (empty: all).
    pub fn accounts(&self, provider: Provider) -> &[String] {
        match provider {
            Provider::Meta => &self.meta.phone_number_ids,
            Provider::Evolution => &self.evolution.instances,
            Provider::Twilio => &self.twilio.numbers,
            Provider::Generic => &self.generic.accounts,
            Provider::Waha => &self.waha.sessions,
        }
    }
}

/// Normalises an account for lookup: Twilio numbers with or without `whatsapp:`.
pub fn normalise_account(provider: Provider, account: &str) -> &str {
    let a = account.trim();
    match provider {
        Provider::Twilio => a.strip_prefix("whatsapp:").unwrap_or(a),
        _ => a,
    }
}

/// The tenant directory could not answer (a store-backed one whose store is down).
#[derive(Debug, thiserror::Error)]
#[error("tenant directory unavailable: {0}")]
pub struct DirectoryError(pub String);

/// The future of a directory lookup.
pub type LookupFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DirectoryError>> + Send + 'a>>;

/// Finds tenants. Lookups may change between calls (tenants added, secrets rotated).
pub trait TenantDirectory: Send + Sync {
    /// The tenant owning `account` on `provider`, if any.
    fn find<'a>(
        &'a self,
        provider: Provider,
        account: &'a str,
    ) -> LookupFuture<'a, Option<Arc<Tenant>>>;

    /// The tenant with this id, if served (a webhook URL that names its tenant: Chatwoot's).
    fn find_id<'a>(&'a self, id: &'a str) -> LookupFuture<'a, Option<Arc<Tenant>>>;

    /// Every Meta verify token of every tenant (the subscription handshake names no account).
    fn meta_verify_tokens(&self) -> LookupFuture<'_, Secrets>;

    /// The one tenant, when the directory knows there is exactly one: the routes then check the
    /// signature over the raw body before parsing it. `None` (the default) means "unknown or
    /// several"; the routes then parse first to learn the tenant from the body.
    fn sole(&self) -> Option<Arc<Tenant>> {
        None
    }
}

/// A tenant list that refuses to be ambiguous.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryConfigError {
    #[error("{provider} account {account:?} belongs to tenants {first:?} and {second:?}")]
    SharedAccount {
        provider: Provider,
        account: String,
        first: String,
        second: String,
    },
    #[error("tenant {0:?} lists no account for some gateway, which means 'all': only a single tenant may do that")]
    WildcardAmongMany(String),
    #[error("tenant id {0:?} is used by two tenants")]
    DuplicateId(String),
}

#[derive(Default)]
struct Index {
    by_account: HashMap<(Provider, String), Arc<Tenant>>,
    by_id: HashMap<String, Arc<Tenant>>,
    /// The single tenant, when there is exactly one: it owns every account on gateways where it
    /// lists none.
    only: Option<Arc<Tenant>>,
    verify_tokens: Secrets,
}

/// An in-memory directory; [`MemoryDirectory::replace`] swaps the whole list atomically (for
/// configuration reloads).
#[derive(Default)]
pub struct MemoryDirectory {
    index: RwLock<Arc<Index>>,
}

impl MemoryDirectory {
    /// A directory of one tenant (usually from [`Tenant::from_env`]).
    pub fn single(tenant: Tenant) -> Self {
        let d = MemoryDirectory::default();
        // One tenant can never be ambiguous.
        let _ = d.replace(vec![tenant]);
        d
    }

    /// A directory of several tenants; each account must belong to one tenant, and every tenant
    /// must list its accounts for every gateway it uses.
    pub fn new(tenants: Vec<Tenant>) -> Result<Self, DirectoryConfigError> {
        let d = MemoryDirectory::default();
        d.replace(tenants)?;
        Ok(d)
    }

    /// Replaces every tenant at once; the old list stays in force when the new one is refused.
    pub fn replace(&self, tenants: Vec<Tenant>) -> Result<(), DirectoryConfigError> {
        self.replace_beside(tenants, 0)
    }

    /// [`MemoryDirectory::replace`] when `removed` other tenants still exist as tombstones: a
    /// tenant owns every account of a gateway where it lists none only when it is the one tenant
    /// ever stored, so removing tenants never hands their accounts to the last one left.
    pub fn replace_beside(
        &self,
        tenants: Vec<Tenant>,
        removed: usize,
    ) -> Result<(), DirectoryConfigError> {
        let mut index = Index::default();
        let many = tenants.len() + removed > 1;
        let mut tokens = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for t in tenants {
            if !ids.insert(t.id.clone()) {
                return Err(DirectoryConfigError::DuplicateId(t.id));
            }
            let t = Arc::new(t);
            index.by_id.insert(t.id.clone(), t.clone());
            tokens.extend(t.meta.verify_tokens.iter().map(str::to_string));
            for p in Provider::ALL {
                let accounts = t.accounts(p);
                if many && accounts.is_empty() && gateway_used(&t, p) {
                    return Err(DirectoryConfigError::WildcardAmongMany(t.id.clone()));
                }
                for a in accounts {
                    let a = normalise_account(p, a).to_string();
                    if let Some(prev) = index.by_account.get(&(p, a.clone())) {
                        return Err(DirectoryConfigError::SharedAccount {
                            provider: p,
                            account: a,
                            first: prev.id.clone(),
                            second: t.id.clone(),
                        });
                    }
                    index.by_account.insert((p, a), t.clone());
                }
            }
            if !many {
                index.only = Some(t);
            }
        }
        index.verify_tokens = Secrets::new(tokens);
        let mut slot = self.index.write().unwrap_or_else(|e| e.into_inner());
        *slot = Arc::new(index);
        Ok(())
    }

    fn snapshot(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Synchronous [`TenantDirectory::find_id`].
    pub fn find_id_now(&self, id: &str) -> Option<Arc<Tenant>> {
        self.snapshot().by_id.get(id).cloned()
    }

    /// Synchronous [`TenantDirectory::find`].
    pub fn find_now(&self, provider: Provider, account: &str) -> Option<Arc<Tenant>> {
        let index = self.snapshot();
        let account = normalise_account(provider, account);
        if let Some(t) = index.by_account.get(&(provider, account.to_string())) {
            return Some(t.clone());
        }
        index
            .only
            .as_ref()
            .filter(|t| t.accounts(provider).is_empty())
            .cloned()
    }
}

/// A gateway "is used" by a tenant when it has any secret for it.
fn gateway_used(t: &Tenant, p: Provider) -> bool {
    match p {
        Provider::Meta => !t.meta.app_secrets.is_empty(),
        Provider::Evolution => !(t.evolution.tokens.is_empty() && t.evolution.jwt_keys.is_empty()),
        Provider::Twilio => !(t.twilio.auth_tokens.is_empty() && t.twilio.shared_keys.is_empty()),
        Provider::Generic => !t.generic.secrets.is_empty(),
        Provider::Waha => !t.waha.hmac_keys.is_empty(),
    }
}

impl TenantDirectory for MemoryDirectory {
    fn find<'a>(
        &'a self,
        provider: Provider,
        account: &'a str,
    ) -> LookupFuture<'a, Option<Arc<Tenant>>> {
        let found = self.find_now(provider, account);
        Box::pin(async move { Ok(found) })
    }

    fn find_id<'a>(&'a self, id: &'a str) -> LookupFuture<'a, Option<Arc<Tenant>>> {
        let found = self.find_id_now(id);
        Box::pin(async move { Ok(found) })
    }

    fn meta_verify_tokens(&self) -> LookupFuture<'_, Secrets> {
        let tokens = self.snapshot().verify_tokens.clone();
        Box::pin(async move { Ok(tokens) })
    }

    fn sole(&self) -> Option<Arc<Tenant>> {
        self.snapshot().only.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str, phone_ids: &[&str]) -> Tenant {
        Tenant {
            id: id.into(),
            meta: MetaSettings {
                phone_number_ids: phone_ids.iter().map(|s| s.to_string()).collect(),
                app_secrets: Secrets::new([format!("{id}-secret")]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_tenant_id_used_twice_is_refused() {
        let t = |id: &str, pn: &str| Tenant {
            id: id.into(),
            meta: MetaSettings {
                phone_number_ids: vec![pn.into()],
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(matches!(
            MemoryDirectory::new(vec![t("a", "1"), t("a", "2")]),
            Err(DirectoryConfigError::DuplicateId(id)) if id == "a"
        ));
        assert!(MemoryDirectory::new(vec![t("a", "1"), t("b", "2")]).is_ok());
    }

    #[test]
    fn from_env_reads_lists_and_refuses_empty_values() {
        let vars: HashMap<&str, &str> = [
            (env::META_APP_SECRET, "a, b"),
            (env::TWILIO_PUBLIC_URL, "https://x.example/webhook/twilio"),
        ]
        .into();
        let t = Tenant::from_env(|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(t.meta.app_secrets.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert!(t.evolution.tokens.is_empty());
        assert!(t.has_any_secret());
        assert_eq!(
            t.twilio.public_url.as_deref(),
            Some("https://x.example/webhook/twilio")
        );
        let err = Tenant::from_env(|k| (k == env::EVOLUTION_TOKEN).then(|| " , ".into()));
        assert!(err.unwrap_err().to_string().contains(env::EVOLUTION_TOKEN));
        assert!(!Tenant::from_env(|_| None).unwrap().has_any_secret());
    }

    #[test]
    fn from_env_reads_the_admin_tokens_which_sign_no_webhook() {
        let t = Tenant::from_env(|k| (k == env::ADMIN_TOKEN).then(|| "adm-old, adm-new".into()))
            .unwrap();
        assert_eq!(
            t.admin_tokens.iter().collect::<Vec<_>>(),
            ["adm-old", "adm-new"]
        );
        assert!(
            !t.has_any_secret(),
            "an admin token alone leaves every webhook unauthenticated"
        );
        assert!(Tenant::from_env(|_| None).unwrap().admin_tokens.is_empty());
        let err = Tenant::from_env(|k| (k == env::ADMIN_TOKEN).then(|| ",".into()));
        assert!(err.unwrap_err().to_string().contains(env::ADMIN_TOKEN));
    }

    #[test]
    fn single_tenant_owns_every_account_many_tenants_own_only_theirs() {
        let d = MemoryDirectory::single(tenant("solo", &[]));
        assert_eq!(d.find_now(Provider::Meta, "123").unwrap().id, "solo");

        let d = MemoryDirectory::new(vec![tenant("a", &["1"]), tenant("b", &["2"])]).unwrap();
        assert_eq!(d.find_now(Provider::Meta, "1").unwrap().id, "a");
        assert_eq!(d.find_now(Provider::Meta, "2").unwrap().id, "b");
        assert!(d.find_now(Provider::Meta, "3").is_none());
        assert!(d.find_now(Provider::Twilio, "1").is_none());

        assert!(matches!(
            MemoryDirectory::new(vec![tenant("a", &["1"]), tenant("b", &["1"])]),
            Err(DirectoryConfigError::SharedAccount { .. })
        ));
        assert!(matches!(
            MemoryDirectory::new(vec![tenant("a", &["1"]), tenant("a", &["2"])]),
            Err(DirectoryConfigError::DuplicateId(_))
        ));
        assert!(matches!(
            MemoryDirectory::new(vec![tenant("a", &["1"]), tenant("b", &[])]),
            Err(DirectoryConfigError::WildcardAmongMany(_))
        ));
    }

    #[test]
    fn replace_takes_effect_without_restart_and_keeps_old_list_on_error() {
        let d = MemoryDirectory::new(vec![tenant("a", &["1"]), tenant("b", &["2"])]).unwrap();
        d.replace(vec![tenant("a", &["1", "2"]), tenant("c", &["3"])])
            .unwrap();
        assert_eq!(d.find_now(Provider::Meta, "2").unwrap().id, "a");
        assert!(d
            .replace(vec![tenant("x", &["9"]), tenant("y", &["9"])])
            .is_err());
        assert_eq!(d.find_now(Provider::Meta, "3").unwrap().id, "c");
    }

    #[test]
    fn secrets_debug_is_redacted() {
        let s = Secrets::from_list("hunter2,other");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.len(), 2);
    }
}
