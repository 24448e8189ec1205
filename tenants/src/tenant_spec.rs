//! A tenant as data: the `[[tenants]]` shape of `lull.toml` and of `lull tenants apply FILE`,
//! stored whole in the tenant store (an SQLite table locally, DynamoDB items on AWS), and turned
//! into a checked [`Tenant`](crate::tenant::Tenant) by [`TenantSpec::to_tenant`].
//!
//! The spec is the one serialised form: the store keeps it as one document, so a field added
//! here (with `#[serde(default)]`) travels from the file through the store to the running
//! processes with no change to either store. A field that holds a secret is also listed in
//! [`SECRET_FIELDS`], so that the AWS store can keep its values in Secrets Manager and `lull
//! tenants list` can say which secrets are set without printing them.
//!
//! One concern per file: the shape here; its checks, into a `Tenant` (`tenant_spec/check.rs`);
//! its secret fields (`tenant_spec/secrets.rs`).

mod check;
mod secrets;

use serde::{Deserialize, Deserializer, Serialize};

use crate::tenant::Secrets;

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
            OneOrMany::One(s) => SecretList(s.split(',').map(str::to_string).collect()),
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
}

fn is_false(b: &bool) -> bool {
    !*b
}

pub use check::{SpecError, MAX_ACCOUNT_LEN, MAX_TENANT_ID};
pub use secrets::SECRET_FIELDS;

pub use crate::tenant_apply::{
    apply_specs, check_set, held_claims, Applied, ApplyContext, HeldAccount, TenantRecord,
};
