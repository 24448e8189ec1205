//! A tenant as data: the `[[tenants]]` shape of `lull.toml` and of `lull tenants apply FILE`,
//! stored whole in the tenant store (an SQLite table locally, DynamoDB items on AWS), and turned
//! into a checked [`Tenant`] by [`TenantSpec::to_tenant`].
//!
//! The spec is the one serialised form: the store keeps it as one document, so a field added
//! here (with `#[serde(default)]`) travels from the file through the store to the running
//! processes with no change to either store. A field that holds a secret is also listed in
//! [`SECRET_FIELDS`], so that the AWS store can keep its values in Secrets Manager and `lull
//! tenants list` can say which secrets are set without printing them.
//!
//! The spec's secret fields, moved out and back, are in `tenant_spec/secrets.rs`.

mod secrets;

use std::collections::HashSet;
use std::time::Duration;

use lull_core::listen::{ApiAccess, Listen, OnClose, META_API_URL};
use lull_core::{Policy, Provider};
use serde::{Deserialize, Deserializer, Serialize};

use crate::tenant::{
    normalise_account, ChatwootSettings, EvolutionSettings, GenericSettings, MetaSettings, Secrets,
    SinkSettings, Tenant, TwilioSettings, WahaSettings,
};

/// The values of one secret setting, given in a file as one string (comma-separated) or a list;
/// always written back as a list. Several values are all accepted (rotation). `Debug` never
/// prints them.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecretList(pub Vec<String>);

impl std::fmt::Debug for SecretList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretList({} value(s), redacted)", self.0.len())
    }
}

impl<'de> Deserialize<'de> for SecretList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            // Comma-separated (`Secrets::split`), each value as written: validation names an
            // empty one.
            OneOrMany::One(s) => SecretList(Secrets::split(&s).map(str::to_string).collect()),
            OneOrMany::Many(v) => SecretList(v),
        })
    }
}

impl SecretList {
    fn secrets(&self) -> Secrets {
        Secrets::new(self.0.iter().cloned())
    }
}

/// Meta Cloud API part of a tenant spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_number_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<SecretList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<SecretList>,
    /// Access token(s) of the Cloud API, for `on_close` (the first is used; rotate by listing
    /// the new one first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<SecretList>,
    /// The Graph API base with its version (default `lull_core::listen::META_API_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

/// Evolution API part of a tenant spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvolutionSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_key: Option<SecretList>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub accept_from_me: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub accept_status_broadcast: bool,
    /// The Evolution server's base URL, for `on_close` (self-hosted: no default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The `apikey` of that server, for `on_close` (the first is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretList>,
}

/// Twilio part of a tenant spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numbers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<SecretList>,
    /// Twilio webhook shared key secret(s) (`X-Twilio-Webhooks-Signature-Settings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_key: Option<SecretList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

/// Generic-format part of a tenant spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretList>,
}

/// WAHA part of a tenant spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WahaSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<String>,
    /// The webhook's `hmac.key` (WAHA signs with HMAC-SHA512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_key: Option<SecretList>,
    /// The WAHA server's base URL, for `on_close` (self-hosted: no default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The `X-Api-Key` of that server, for `on_close` (the first is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretList>,
}

/// Chatwoot part of a tenant spec: human handover from Chatwoot (`docs/chatwoot.md`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatwootSpec {
    /// The webhook's secret (Chatwoot signs `"{timestamp}.{body}"` with HMAC-SHA256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretList>,
    /// Which lull account each Chatwoot inbox talks through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inboxes: Vec<ChatwootInboxSpec>,
    /// Chatwoot user ids whose messages are the bot's own (it posts with their access token).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bot_user_ids: Vec<u64>,
}

/// One `[[tenants.chatwoot.inboxes]]` entry: Chatwoot inbox `id` is lull's `provider` account
/// `account` (an Evolution instance, a Meta phone number id, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatwootInboxSpec {
    pub id: u64,
    pub provider: String,
    pub account: String,
}

/// One `[[tenants]]` entry. Policy fields left out take the deployment's defaults (`--quiet`,
/// `--max-wait`, `LULL_QUIET`, ...) when the tenant is loaded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub id: String,
    /// A duration, or `"adaptive"` (with `quiet_min`/`quiet_max`): `lull_core::turn::settings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_max: Option<String>,
    /// Presence events shape the end of a turn (with `typing_grace`/`typing_hold`/
    /// `typing_stop_grace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_grace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_hold: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_stop_grace: Option<String>,
    /// How long a human operator's message pauses the conversation's hand-offs (default 30m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<String>,
    /// `append` (default) or `supersede`: the batch after a superseded one repeats it as
    /// `context` (docs/batch.md, "The reply guard").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_newer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Buffering off: each message is a batch of its own, through the same path.
    #[serde(default, skip_serializing_if = "is_false")]
    pub passthrough: bool,
    /// This tenant's own AI endpoint (`http(s)://...`); its batches go there instead of the
    /// deployment's sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    /// Secret(s) signing this tenant's batches (Standard Webhooks; each one signs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_secret: Option<SecretList>,
    /// Bearer token(s) of the admin routes (`POST /admin/conversations/pause|resume`), for this
    /// tenant's conversations only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<SecretList>,
    /// What the user sees when a window closes: `read` (messages marked read) and/or `typing`
    /// (the typing indicator), through the provider's API (`meta.access_token`,
    /// `evolution.api_url`/`api_key`, `waha.api_url`/`api_key`). Empty: nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_close: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<MetaSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evolution: Option<EvolutionSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twilio: Option<TwilioSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic: Option<GenericSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waha: Option<WahaSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chatwoot: Option<ChatwootSpec>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A tenant spec that cannot be used; the message names the tenant, the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant {tenant:?}: {field}: {reason}")]
pub struct SpecError {
    pub tenant: String,
    pub field: String,
    pub reason: String,
}

/// The longest account a spec may claim (business numbers, instance names: far shorter).
pub const MAX_ACCOUNT_LEN: usize = 256;

/// The longest tenant id (it names Secrets Manager secrets and metric labels).
pub const MAX_TENANT_ID: usize = 64;

impl TenantSpec {
    pub(crate) fn err(&self, field: impl Into<String>, reason: impl Into<String>) -> SpecError {
        SpecError {
            tenant: self.id.clone(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The checked tenant, with `defaults` for the policy fields the spec leaves out.
    pub fn to_tenant(&self, defaults: &Policy) -> Result<Tenant, SpecError> {
        self.check_id()?;
        let policy = self.policy(defaults)?;
        for field in SECRET_FIELDS {
            if let Some(list) = self.secret(field) {
                if list.0.is_empty() {
                    return Err(self.err(*field, "is an empty list"));
                }
                if let Some(i) = list.0.iter().position(|v| v.trim().is_empty()) {
                    return Err(self.err(format!("{field}[{i}]"), "is empty"));
                }
            }
        }
        for p in PROVIDERS {
            let mut seen = HashSet::new();
            for a in self.accounts(p) {
                let a = normalise_account(p, a);
                if a.is_empty() {
                    return Err(self.err(account_field(p), "lists an empty account"));
                }
                if a.len() > MAX_ACCOUNT_LEN {
                    return Err(self.err(account_field(p), format!("account {a:?} is too long")));
                }
                if !seen.insert(a) {
                    return Err(self.err(account_field(p), format!("lists {a:?} twice")));
                }
            }
        }
        let secrets = |field: &str| {
            self.secret(field)
                .map(SecretList::secrets)
                .unwrap_or_default()
        };
        let sink = match &self.sink {
            None => {
                if self.sink_secret.is_some() {
                    return Err(self.err("sink_secret", "is set but sink is not"));
                }
                None
            }
            Some(url) => {
                check_sink_url(url).map_err(|r| self.err("sink", format!("{url:?}: {r}")))?;
                if PROVIDERS.iter().all(|p| self.accounts(*p).is_empty()) {
                    return Err(self.err(
                        "sink",
                        "is set but the tenant lists no phone_number_ids, instances, numbers, \
                         accounts or sessions whose batches could be routed to it",
                    ));
                }
                Some(SinkSettings {
                    url: url.clone(),
                    signing_secrets: secrets("sink_secret"),
                })
            }
        };
        let meta = self.meta.clone().unwrap_or_default();
        let evo = self.evolution.clone().unwrap_or_default();
        let tw = self.twilio.clone().unwrap_or_default();
        let gen = self.generic.clone().unwrap_or_default();
        let waha = self.waha.clone().unwrap_or_default();
        let chatwoot = self.chatwoot_settings(secrets("chatwoot.secret"))?;
        if let Some(url) = &tw.public_url {
            check_sink_url(url)
                .map_err(|r| self.err("twilio.public_url", format!("{url:?}: {r}")))?;
        }
        let listen = self.listen(&meta, &evo, &waha)?;
        Ok(Tenant {
            id: self.id.clone(),
            policy,
            sink,
            listen,
            admin_tokens: secrets("admin_token"),
            meta: MetaSettings {
                phone_number_ids: meta.phone_number_ids,
                app_secrets: secrets("meta.app_secret"),
                verify_tokens: secrets("meta.verify_token"),
            },
            evolution: EvolutionSettings {
                instances: evo.instances,
                tokens: secrets("evolution.token"),
                jwt_keys: secrets("evolution.jwt_key"),
                accept_from_me: evo.accept_from_me,
                accept_status_broadcast: evo.accept_status_broadcast,
            },
            twilio: TwilioSettings {
                numbers: tw.numbers,
                auth_tokens: secrets("twilio.auth_token"),
                shared_keys: secrets("twilio.shared_key"),
                public_url: tw.public_url,
            },
            generic: GenericSettings {
                accounts: gen.accounts,
                secrets: secrets("generic.secret"),
            },
            waha: WahaSettings {
                sessions: waha.sessions,
                hmac_keys: secrets("waha.hmac_key"),
            },
            chatwoot,
        })
    }

    /// The checked Chatwoot section: a secret, at least one inbox, each inbox once, each mapped
    /// to a gateway lull knows and to an account this tenant lists for it (when it lists any).
    fn chatwoot_settings(&self, secrets: Secrets) -> Result<ChatwootSettings, SpecError> {
        let Some(spec) = &self.chatwoot else {
            return Ok(ChatwootSettings::default());
        };
        if secrets.is_empty() {
            return Err(self.err(
                "chatwoot.secret",
                "is required: Chatwoot signs its webhooks with it",
            ));
        }
        if spec.inboxes.is_empty() {
            return Err(self.err(
                "chatwoot.inboxes",
                "lists no inbox: nothing would be paused",
            ));
        }
        let mut inboxes: Vec<crate::tenant::ChatwootInbox> = Vec::new();
        for (i, inbox) in spec.inboxes.iter().enumerate() {
            let field = format!("chatwoot.inboxes[{i}]");
            let provider = Provider::parse(inbox.provider.trim()).ok_or_else(|| {
                self.err(
                    format!("{field}.provider"),
                    format!(
                        "{:?} is not a gateway (meta, evolution, twilio, generic, waha)",
                        inbox.provider
                    ),
                )
            })?;
            let account = normalise_account(provider, &inbox.account).to_string();
            if account.is_empty() || account.len() > MAX_ACCOUNT_LEN {
                return Err(self.err(
                    format!("{field}.account"),
                    format!("{:?} is empty or too long", inbox.account),
                ));
            }
            let listed = self.accounts(provider);
            if !listed.is_empty()
                && !listed
                    .iter()
                    .any(|a| normalise_account(provider, a) == account)
            {
                return Err(self.err(
                    format!("{field}.account"),
                    format!(
                        "{account:?} is not among this tenant's {}",
                        account_field(provider)
                    ),
                ));
            }
            if inboxes.iter().any(|seen| seen.id == inbox.id) {
                return Err(self.err(
                    format!("{field}.id"),
                    format!("inbox {} is listed twice", inbox.id),
                ));
            }
            inboxes.push(crate::tenant::ChatwootInbox {
                id: inbox.id,
                provider,
                account,
            });
        }
        Ok(ChatwootSettings {
            secrets,
            inboxes,
            bot_user_ids: spec.bot_user_ids.clone(),
        })
    }

    /// The `on_close` setting: the actions, and per provider the API access it needs (a base
    /// URL and the first value of its secret). `None` when `on_close` is empty.
    fn listen(
        &self,
        meta: &MetaSpec,
        evo: &EvolutionSpec,
        waha: &WahaSpec,
    ) -> Result<Option<Listen>, SpecError> {
        let on_close = OnClose::parse(self.on_close.iter().map(String::as_str))
            .map_err(|e| self.err("on_close", e.to_string()))?;
        let access = |url_field: &str,
                      url: Option<&String>,
                      default: Option<&str>,
                      key_field: &str|
         -> Result<Option<ApiAccess>, SpecError> {
            let token = self.secret(key_field).and_then(|l| l.0.first()).cloned();
            let url = url.map(String::as_str).or(default);
            match (url, token) {
                (_, None) => Ok(None),
                (None, Some(_)) => Err(self.err(url_field, format!("is needed with {key_field}"))),
                (Some(u), Some(token)) => {
                    check_sink_url(u).map_err(|r| self.err(url_field, format!("{u:?}: {r}")))?;
                    Ok(Some(ApiAccess {
                        api_url: u.trim_end_matches('/').to_string(),
                        token: token.trim().to_string(),
                    }))
                }
            }
        };
        let listen = Listen {
            on_close,
            meta: access(
                "meta.api_url",
                meta.api_url.as_ref(),
                Some(META_API_URL),
                "meta.access_token",
            )?,
            evolution: access(
                "evolution.api_url",
                evo.api_url.as_ref(),
                None,
                "evolution.api_key",
            )?,
            waha: access("waha.api_url", waha.api_url.as_ref(), None, "waha.api_key")?,
        };
        if on_close.is_off() {
            return Ok(None);
        }
        if listen.meta.is_none() && listen.evolution.is_none() && listen.waha.is_none() {
            return Err(self.err(
                "on_close",
                "is set but no API access is: set meta.access_token, evolution.api_url and \
                 api_key, or waha.api_url and api_key",
            ));
        }
        Ok(Some(listen))
    }

    fn check_id(&self) -> Result<(), SpecError> {
        let ok = !self.id.is_empty()
            && self.id.len() <= MAX_TENANT_ID
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(())
        } else {
            Err(self.err(
                "id",
                format!(
                    "{:?} must be 1-{MAX_TENANT_ID} characters of A-Z a-z 0-9 . _ -",
                    self.id
                ),
            ))
        }
    }

    fn policy(&self, defaults: &Policy) -> Result<Policy, SpecError> {
        let duration = |field: &str, v: &Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(s) => humantime::parse_duration(s.trim()).map_err(|e| {
                self.err(
                    field,
                    format!("{s:?} is not a duration: {e} (write 8s, 500ms, 1m)"),
                )
            }),
        };
        let quiet = match &self.quiet {
            Some(q) if lull_core::turn::settings::is_adaptive(q) => None,
            q => q.clone(),
        };
        let policy = Policy {
            quiet: duration("quiet", &quiet, defaults.quiet)?,
            max_wait: duration("max_wait", &self.max_wait, defaults.max_wait)?,
            max_messages: self.max_messages.unwrap_or(defaults.max_messages),
            max_bytes: self.max_bytes.unwrap_or(defaults.max_bytes),
            buffering: !self.passthrough,
            ..*defaults
        };
        lull_core::turn::settings::TurnSettings {
            quiet: self.quiet.as_deref(),
            quiet_min: self.quiet_min.as_deref(),
            quiet_max: self.quiet_max.as_deref(),
            typing: self.typing,
            typing_grace: self.typing_grace.as_deref(),
            typing_hold: self.typing_hold.as_deref(),
            typing_stop_grace: self.typing_stop_grace.as_deref(),
            pause: self.pause.as_deref(),
            on_newer: self.on_newer.as_deref(),
        }
        .apply(policy)
        .map_err(|e| {
            self.err(
                "quiet/max_wait/max_messages/max_bytes/typing/pause/on_newer",
                e,
            )
        })
    }

    /// The accounts the spec claims on `provider`, as written.
    pub fn accounts(&self, provider: Provider) -> &[String] {
        match provider {
            Provider::Meta => self.meta.as_ref().map_or(&[], |m| &m.phone_number_ids),
            Provider::Evolution => self.evolution.as_ref().map_or(&[], |e| &e.instances),
            Provider::Twilio => self.twilio.as_ref().map_or(&[], |t| &t.numbers),
            Provider::Generic => self.generic.as_ref().map_or(&[], |g| &g.accounts),
            Provider::Waha => self.waha.as_ref().map_or(&[], |w| &w.sessions),
        }
    }
}

const PROVIDERS: [Provider; 5] = Provider::ALL;

fn account_field(p: Provider) -> &'static str {
    match p {
        Provider::Meta => "meta.phone_number_ids",
        Provider::Evolution => "evolution.instances",
        Provider::Twilio => "twilio.numbers",
        Provider::Generic => "generic.accounts",
        Provider::Waha => "waha.sessions",
    }
}

fn check_sink_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("has no host");
    }
    Ok(())
}

pub use secrets::SECRET_FIELDS;

pub use crate::tenant_apply::{
    apply_specs, check_set, held_claims, Applied, ApplyContext, HeldAccount, TenantRecord,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_like_json: serde_json::Value) -> TenantSpec {
        serde_json::from_value(toml_like_json).unwrap()
    }

    #[test]
    fn end_of_turn_settings_reach_the_policy_and_bad_ones_name_the_tenant() {
        let t = spec(serde_json::json!({
            "id": "acme", "quiet": "adaptive", "quiet_max": "12s", "typing": true,
            "typing_grace": "1s", "typing_stop_grace": "4s", "pause": "10m"
        }))
        .to_tenant(&Policy::default())
        .unwrap();
        let a = t.policy.adaptive.expect("adaptive");
        assert_eq!(
            (a.min, a.max),
            (Duration::from_millis(1500), Duration::from_secs(12))
        );
        assert_eq!(t.policy.typing.unwrap().grace, Duration::from_secs(1));
        assert_eq!(t.policy.typing.unwrap().stop_grace, Duration::from_secs(4));
        assert_eq!(t.policy.pause, Duration::from_secs(600));
        let e = spec(serde_json::json!({"id": "acme", "typing_hold": "5s"}))
            .to_tenant(&Policy::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("acme") && e.contains("typing = true"), "{e}");
    }

    #[test]
    fn file_shape_reads_and_turns_into_a_tenant() {
        let s = spec(serde_json::json!({
            "id": "acme", "quiet": "3s", "passthrough": false,
            "sink": "https://ai.acme.example/lull", "sink_secret": "s1,s2",
            "meta": {"phone_number_ids": ["106"], "app_secret": ["a", "b"]},
            "twilio": {"numbers": ["whatsapp:+15550001111"], "auth_token": "t"}
        }));
        let t = s.to_tenant(&Policy::default()).unwrap();
        assert_eq!(t.policy.quiet, Duration::from_secs(3));
        assert_eq!(t.policy.max_wait, Duration::from_secs(30));
        assert_eq!(t.meta.app_secrets.len(), 2);
        assert_eq!(t.sink.unwrap().signing_secrets.len(), 2);
        // Round trip through the stored form.
        let back: TenantSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            (serde_json::json!({"id": "a", "quiet": "soon"}), "quiet"),
            (
                serde_json::json!({"id": "a", "meta": {"app_secret": ""}}),
                "meta.app_secret[0]",
            ),
            (
                serde_json::json!({"id": "a", "twilio": {"auth_token": ["x", " "]}}),
                "twilio.auth_token[1]",
            ),
            (serde_json::json!({"id": "a b"}), "id"),
            (serde_json::json!({"id": "a", "sink": "ftp://x"}), "sink"),
            (
                serde_json::json!({"id": "a", "sink": "http://x.example"}),
                "sink",
            ),
            (
                serde_json::json!({"id": "a", "meta": {"phone_number_ids": ["1", " 1"]}}),
                "meta.phone_number_ids",
            ),
            (
                serde_json::json!({"id": "a", "quiet": "10s", "max_wait": "5s"}),
                "max_wait",
            ),
        ];
        for (json, field) in cases {
            let e = spec(json).to_tenant(&Policy::default()).unwrap_err();
            assert!(e.field.contains(field), "{e} should name {field}");
            assert!(e.to_string().contains("\"a"), "{e}");
        }
    }

    #[test]
    fn on_close_takes_its_api_access_from_secrets_and_bad_settings_name_the_field() {
        let s = spec(serde_json::json!({
            "id": "a", "on_close": ["read", "typing"],
            "meta": {"phone_number_ids": ["1"], "access_token": ["new", "old"]},
            "waha": {"sessions": ["s"], "api_url": "http://waha:3000/", "api_key": "wk"},
        }));
        let listen = s.to_tenant(&Policy::default()).unwrap().listen.unwrap();
        assert!(listen.on_close.read && listen.on_close.typing);
        let meta = listen.meta.unwrap();
        // The first token is used (rotation: list the new one first), Meta's API by default.
        assert_eq!(meta.token, "new");
        assert_eq!(meta.api_url, lull_core::listen::META_API_URL);
        assert_eq!(listen.waha.unwrap().api_url, "http://waha:3000");
        assert!(listen.evolution.is_none());
        // Outbound credentials authenticate no webhook, and are taken out like every secret.
        assert!(!s.has_gateway_secret());
        let mut out = s.clone();
        let taken = out.take_secrets();
        assert_eq!(taken["meta.access_token"], ["new", "old"]);
        assert_eq!(taken["waha.api_key"], ["wk"]);
        let text = serde_json::to_string(&out).unwrap();
        assert!(!text.contains("new") && !text.contains("wk"), "{text}");
        assert_eq!(s.secret_counts()["meta.access_token"], 2);
        // Off unless asked for, even with access set.
        let off = spec(serde_json::json!({"id": "a", "meta": {"access_token": "t"}}));
        assert!(off.to_tenant(&Policy::default()).unwrap().listen.is_none());

        let cases = [
            (
                serde_json::json!({"id": "a", "on_close": ["read", "seen"],
                                   "meta": {"access_token": "t"}}),
                "on_close",
                "\"seen\"",
            ),
            (
                serde_json::json!({"id": "a", "on_close": ["typing"]}),
                "on_close",
                "no API access",
            ),
            (
                serde_json::json!({"id": "a", "on_close": ["read"],
                                   "evolution": {"api_key": "k"}}),
                "evolution.api_url",
                "evolution.api_key",
            ),
            (
                serde_json::json!({"id": "a", "on_close": ["read"],
                                   "waha": {"api_url": "waha:3000", "api_key": "k"}}),
                "waha.api_url",
                "http",
            ),
            (
                serde_json::json!({"id": "a", "on_close": ["read"],
                                   "meta": {"access_token": " "}}),
                "meta.access_token[0]",
                "",
            ),
        ];
        for (json, field, says) in cases {
            let e = spec(json).to_tenant(&Policy::default()).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(says), "{e} should say {says}");
        }
    }

    #[test]
    fn chatwoot_section_is_checked_and_its_secret_moves_out() {
        let ok = serde_json::json!({
            "id": "a", "evolution": {"instances": ["pizzeria"], "token": "t"},
            "chatwoot": {"secret": "cw", "bot_user_ids": [9],
                         "inboxes": [{"id": 3, "provider": "evolution", "account": "pizzeria"}]}
        });
        let t = spec(ok.clone()).to_tenant(&Policy::default()).unwrap();
        let inbox = t.chatwoot.inbox(3).unwrap();
        assert_eq!(
            (inbox.provider, inbox.account.as_str()),
            (Provider::Evolution, "pizzeria")
        );
        assert_eq!(t.chatwoot.bot_user_ids, [9]);
        let mut s = spec(ok);
        let moved = s.take_secrets();
        assert_eq!(moved["chatwoot.secret"], ["cw"]);
        assert!(!serde_json::to_string(&s).unwrap().contains("\"cw\""));
        let bad = |chatwoot: serde_json::Value| {
            spec(serde_json::json!({
                "id": "a", "evolution": {"instances": ["pizzeria"], "token": "t"},
                "chatwoot": chatwoot
            }))
            .to_tenant(&Policy::default())
            .unwrap_err()
            .field
        };
        let inbox = |provider: &str, account: &str| serde_json::json!([{"id": 3, "provider": provider, "account": account}]);
        assert_eq!(
            bad(serde_json::json!({"inboxes": inbox("evolution", "pizzeria")})),
            "chatwoot.secret"
        );
        assert_eq!(bad(serde_json::json!({"secret": "x"})), "chatwoot.inboxes");
        assert_eq!(
            bad(serde_json::json!({"secret": "x", "inboxes": inbox("sms", "p")})),
            "chatwoot.inboxes[0].provider"
        );
        assert_eq!(
            bad(serde_json::json!({"secret": "x", "inboxes": inbox("evolution", "other")})),
            "chatwoot.inboxes[0].account"
        );
        let twice = serde_json::json!([
            {"id": 3, "provider": "evolution", "account": "pizzeria"},
            {"id": 3, "provider": "evolution", "account": "pizzeria"}
        ]);
        assert_eq!(
            bad(serde_json::json!({"secret": "x", "inboxes": twice})),
            "chatwoot.inboxes[1].id"
        );
    }
}
