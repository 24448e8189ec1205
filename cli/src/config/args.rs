//! The flag schema of `lull serve` (and `redrive`, `check`, `conversations`, which resolve the
//! same): [`ServeArgs`] is at once clap's flags and environment variables and serde's `lull.toml`
//! keys, so one setting has one name in three spellings. Nothing is checked here: that is
//! [`super::ServeArgs::resolve`]'s.

use std::path::PathBuf;

use clap::Args;
use lull_ingest::TenantSpec;
use serde::{Deserialize, Deserializer, Serialize};

/// The local server's own defaults (the protocol's are the core's: `Policy::default()`,
/// `BufferConfig::default()`).
pub mod defaults {
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const OPS_LISTEN: &str = "127.0.0.1:9090";
    pub const MAX_CONCURRENT_REQUESTS: usize = 64;
    pub const DATA_DIR: &str = "lull-data";
    pub const SINK: &str = "stdout";
    pub const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
    pub const LOG: &str = "info";
}

/// Settings of `lull serve` (and of `lull redrive` and `lull check`, which resolve the same),
/// and the shape of `lull.toml`: each field is a flag, an environment variable and a file key.
#[derive(Args, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeArgs {
    /// Configuration file (TOML; also holds tenants). Default: ./lull.toml when it exists.
    #[arg(long, env = "LULL_CONFIG", value_name = "PATH")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]. A non-loopback address requires gateway
    /// secrets.
    #[arg(long, env = "LULL_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Address of the ops routes (/healthz, /metrics, /redrive, the operators' console at
    /// /console), never the webhook address
    /// [default: 127.0.0.1:9090].
    #[arg(long, env = "LULL_OPS_LISTEN", value_name = "ADDR")]
    pub ops_listen: Option<String>,
    /// Accept unsigned webhooks for gateways without a secret. For trying lull locally only:
    /// refused on a non-loopback --listen, and anyone reaching the port through a tunnel or a
    /// proxy on this machine could write into the buffer.
    #[arg(long, env = "LULL_ALLOW_UNSIGNED")]
    pub allow_unsigned: bool,
    /// Trust X-Forwarded-Proto / X-Forwarded-Host when rebuilding the URL Twilio signed: only
    /// behind a proxy that sets them (prefer --twilio-public-url).
    #[arg(long, env = "LULL_TRUST_FORWARDED")]
    pub trust_forwarded: bool,
    /// Webhook requests handled at once; more are answered 503 with Retry-After (gateways
    /// retry). Requests declaring bodies over 64 KiB also share 96 MiB (waiting up to 5 s, then 503)
    /// [default: 64].
    #[arg(long, env = "LULL_MAX_CONCURRENT_REQUESTS", value_name = "N")]
    pub max_concurrent_requests: Option<usize>,
    /// Directory of the SQLite store [default: ./lull-data].
    #[arg(long, env = "LULL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Quiet period: a window is handed off when its last message is this old [default: 8s].
    #[arg(long, env = "LULL_QUIET", value_name = "DURATION")]
    pub quiet: Option<String>,
    /// Max wait: a window is handed off when its first message is this old [default: 30s].
    #[arg(long, env = "LULL_MAX_WAIT", value_name = "DURATION")]
    pub max_wait: Option<String>,
    /// A window holding this many messages is handed off at once [default: 50].
    #[arg(long, env = "LULL_MAX_MESSAGES", value_name = "N")]
    pub max_messages: Option<u32>,
    /// A window whose messages take this many bytes is handed off at once (1024..=163840)
    /// [default: 65536].
    #[arg(long, env = "LULL_MAX_BYTES", value_name = "BYTES")]
    pub max_bytes: Option<u64>,
    /// What the next batch does when the user wrote again before the bot answered one: append
    /// (today's behaviour) or supersede (it repeats the superseded batch as `context`;
    /// docs/batch.md, "The reply guard") [default: append].
    #[arg(long, env = "LULL_ON_NEWER", value_name = "append|supersede")]
    pub on_newer: Option<String>,
    /// The public base URL of --listen (what bots reach it as, e.g. behind a proxy): each
    /// batch's reply guard is GET {public_url}/guard/{token} [default: http://<listen address>].
    #[arg(long, env = "LULL_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Where batches go: stdout, jsonl:PATH, or an http(s):// URL [default: stdout].
    #[arg(long, env = "LULL_SINK", value_name = "SINK")]
    pub sink: Option<String>,
    /// Secret(s) signing HTTP hand-offs (Standard Webhooks `webhook-signature`), comma-separated;
    /// each signs. `whsec_<base64>`, or a plain secret used as raw key bytes (docs/batch.md).
    #[arg(
        long,
        env = "LULL_SINK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub sink_secret: Option<SecretValues>,
    /// How long a hand-off waits for the sink's answer [default: 60s]; the lease is this + 15s.
    #[arg(long, env = "LULL_SINK_TIMEOUT", value_name = "DURATION")]
    pub sink_timeout: Option<String>,
    /// How long a hand-off holds its conversation; at least the sink timeout + 2s
    /// [default: sink timeout + 15s].
    #[arg(long, env = "LULL_LEASE", value_name = "DURATION")]
    pub lease: Option<String>,
    /// First retry delay after a failed hand-off; doubles per failure, with jitter [default: 1s].
    #[arg(long, env = "LULL_RETRY_MIN", value_name = "DURATION")]
    pub retry_min: Option<String>,
    /// Longest retry delay after failed hand-offs [default: 60s].
    #[arg(long, env = "LULL_RETRY_MAX", value_name = "DURATION")]
    pub retry_max: Option<String>,
    /// How long message ids are remembered to drop gateway resends; at least 1h and longer than
    /// max wait [default: 7days].
    #[arg(long, env = "LULL_DEDUPE_HORIZON", value_name = "DURATION")]
    pub dedupe_horizon: Option<String>,
    /// Meta app secret(s) verifying X-Hub-Signature-256, comma-separated.
    #[arg(
        long,
        env = "LULL_META_APP_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub meta_app_secret: Option<SecretValues>,
    /// Meta webhook verify token(s) for the subscription handshake, comma-separated.
    #[arg(
        long,
        env = "LULL_META_VERIFY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub meta_verify_token: Option<SecretValues>,
    /// Evolution API token(s) (apikey header, bearer or path), comma-separated.
    #[arg(
        long,
        env = "LULL_EVOLUTION_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub evolution_token: Option<SecretValues>,
    /// Evolution JWT key(s) (`Authorization: Bearer <HS256 JWT>`, exp checked), comma-separated.
    #[arg(
        long,
        env = "LULL_EVOLUTION_JWT_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub evolution_jwt_key: Option<SecretValues>,
    /// Secret(s) verifying /webhook/generic (Standard Webhooks headers), comma-separated.
    #[arg(
        long,
        env = "LULL_GENERIC_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub generic_secret: Option<SecretValues>,
    /// WAHA webhook HMAC key(s) verifying X-Webhook-Hmac (HMAC-SHA512), comma-separated.
    #[arg(
        long,
        env = "LULL_WAHA_HMAC_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub waha_hmac_key: Option<SecretValues>,
    /// Twilio auth token(s) verifying X-Twilio-Signature, comma-separated.
    #[arg(
        long,
        env = "LULL_TWILIO_AUTH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub twilio_auth_token: Option<SecretValues>,
    /// Twilio webhook shared key secret(s) (signatures announced by
    /// X-Twilio-Webhooks-Signature-Settings), comma-separated.
    #[arg(
        long,
        env = "LULL_TWILIO_SHARED_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub twilio_shared_key: Option<SecretValues>,
    /// The exact webhook URL configured in Twilio, when it differs from what lull sees.
    #[arg(long, env = "LULL_TWILIO_PUBLIC_URL", value_name = "URL")]
    pub twilio_public_url: Option<String>,
    /// Bearer token(s) of the webhook listener's admin routes (POST
    /// /admin/conversations/pause|resume), comma-separated to rotate. Unset: they answer 401.
    #[arg(
        long,
        env = "LULL_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<SecretValues>,
    /// Bearer token(s) of the ops listener's POST /redrive and /conversations/pause|resume,
    /// comma-separated to rotate. Unset: those routes serve only on a loopback --ops-listen.
    #[arg(
        long,
        env = "LULL_OPS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub ops_token: Option<SecretValues>,
    /// normal: a 2xx survives kill -9 (WAL, synchronous=NORMAL); full: also survives power loss
    /// (fsync per commit) [default: normal].
    #[arg(long, env = "LULL_DURABILITY", value_name = "normal|full")]
    pub durability: Option<String>,
    /// How often the sweep hands off windows whose timer was lost [default: 5s].
    #[arg(long, env = "LULL_SWEEP_INTERVAL", value_name = "DURATION")]
    pub sweep_interval: Option<String>,
    /// Log format: text or json [default: text]. Logs go to stderr; stdout is the stdout sink's.
    #[arg(long, env = "LULL_LOG_FORMAT", value_name = "text|json")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info, debug, lull_local=debug [default: info; RUST_LOG also works].
    #[arg(long, env = "LULL_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// How long the server uses the tenants it read from the data directory before reading
    /// them again: the bound on how long `lull tenants apply/remove` take to apply [default: 10s].
    #[arg(long, env = "LULL_TENANT_REFRESH", value_name = "DURATION")]
    pub tenant_refresh: Option<String>,
    /// The bound on each `on_close` call (read receipt, typing indicator) to a messaging API;
    /// best effort, never in a hand-off's way [default: 2s].
    #[arg(long, env = "LULL_LISTEN_TIMEOUT", value_name = "DURATION")]
    pub listen_timeout: Option<String>,
    /// `lull.toml` only: the tenants that seed a fresh data directory (afterwards: `lull
    /// tenants apply`).
    #[arg(skip)]
    pub tenants: Vec<TenantSpec>,
}

/// `lull.toml`: the same keys as the flags (see [`ServeArgs`]), every one optional.
pub type FileConfig = ServeArgs;

/// A secret setting's values: comma-separated on a command line or in the environment; one
/// string or a list in `lull.toml`. `Debug` never prints them.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SecretValues(String);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValues(redacted)")
    }
}

impl std::str::FromStr for SecretValues {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretValues(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for SecretValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The same shapes as a tenant's secrets in `[[tenants]]`.
        let list = lull_ingest::tenant_spec::SecretList::deserialize(d)?;
        Ok(SecretValues(list.0.join(",")))
    }
}
