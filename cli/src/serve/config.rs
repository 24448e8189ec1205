//! Configuration of `lull serve`: flags > environment > `lull.toml` > defaults.
//!
//! Every setting is declared once, in [`ServeArgs`]: clap reads it from its flag or environment
//! variable, serde from the key of the same name in `lull.toml`. [`ServeArgs::resolve`] lays the
//! flags over the file ([`Layers`]) and reads the result by environment name, so one setting has
//! one name in three spellings: `--max-wait`, `LULL_MAX_WAIT`, `max_wait`. What the protocol runs
//! with (policy, hand-off timing, retries, dedupe) is resolved and checked by the core
//! ([`ProtocolSettings`]), exactly as the Lambdas resolve it; the flags' tenant is built by
//! [`Tenant::from_env`], as the webhook Lambda builds its bootstrap tenant. This file keeps only
//! what is the local server's own: addresses, the data directory, durability, the sweep and logs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use lull_core::settings::{ProtocolSettings, Reader, SettingError, SettingSource};
use lull_core::{BufferConfig, Policy};
use lull_ingest::{Tenant, TenantSpec};
use lull_local::{Durability, SweepSettings};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

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

/// The flags (and their environment variables) laid over `lull.toml`, read by environment name:
/// the [`SettingSource`] every setting of `serve` is resolved from.
pub struct Layers {
    values: Map<String, Value>,
}

impl Layers {
    /// `flags` over `file`: a flag or variable that is set wins; a switch can only turn on.
    pub fn new(flags: &ServeArgs, file: &ServeArgs) -> Layers {
        let object = |a: &ServeArgs| match serde_json::to_value(a) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let mut values = object(file);
        for (key, value) in object(flags) {
            let unset = match &value {
                Value::Null | Value::Bool(false) => true,
                Value::Array(a) => a.is_empty(),
                _ => false,
            };
            if !unset {
                values.insert(key, value);
            }
        }
        Layers { values }
    }

    /// The file key of an environment name: `LULL_MAX_WAIT` is `max_wait`.
    fn key(var: &str) -> String {
        var.trim_start_matches("LULL_").to_ascii_lowercase()
    }

    fn switch(&self, var: &'static str) -> bool {
        matches!(self.values.get(&Self::key(var)), Some(Value::Bool(true)))
    }
}

impl SettingSource for Layers {
    fn value(&self, var: &'static str) -> Option<String> {
        match self.values.get(&Self::key(var))? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn name(&self, var: &'static str) -> String {
        let key = Self::key(var);
        format!("--{} / {var} / {key} in lull.toml", key.replace('_', "-"))
    }
}

/// A setting that stops `lull serve` (or `redrive`, `check`) at start-up. The message names the
/// setting (flag, variable and file key) and its value.
#[derive(Debug, thiserror::Error)]
pub enum ServeConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Position and key name only: the offending line may hold a secret (`crate::toml_error`).
    #[error("config file {path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error(transparent)]
    Invalid(#[from] SettingError),
    #[error(
        "listen address {0} is not loopback, but no gateway secret is configured: anyone could \
         write into your buffer. Set LULL_META_APP_SECRET, LULL_EVOLUTION_TOKEN or \
         LULL_TWILIO_AUTH_TOKEN (or secrets per tenant in lull.toml), or listen on 127.0.0.1"
    )]
    OpenWithoutSecrets(SocketAddr),
    #[error(
        "--allow-unsigned (LULL_ALLOW_UNSIGNED) is only for a loopback --listen, but the listen \
         address is {0}: configure gateway secrets instead"
    )]
    UnsignedOnNonLoopback(SocketAddr),
    #[error("--ops-listen and --listen are both {0}: the ops routes need their own address")]
    OpsOnWebhookAddress(SocketAddr),
    #[error(
        "{0} is set, but lull.toml lists [[tenants]]: give each tenant its own secrets instead"
    )]
    GlobalSecretWithTenants(&'static str),
    #[error("tenants: {0}")]
    Tenants(String),
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything `lull serve` runs with, checked.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub ops_listen: SocketAddr,
    /// The ops token(s) (`crate::serve` sends the first one from `lull redrive` and
    /// `lull conversations`).
    pub ops_tokens: lull_ingest::Secrets,
    pub trust_forwarded: bool,
    pub max_concurrent_requests: usize,
    pub data_dir: PathBuf,
    /// The policy of tenants that set none.
    pub policy: Policy,
    pub sink: String,
    pub sink_secrets: Vec<String>,
    pub sink_timeout: Duration,
    pub durability: Durability,
    pub sweep: SweepSettings,
    pub buffer: BufferConfig,
    /// The `[[tenants]]` of `lull.toml`: stored in a fresh data directory at start-up.
    pub seed: Vec<TenantSpec>,
    /// The single tenant of flags and environment variables, serving while the data directory
    /// holds no tenant (`None` when `lull.toml` lists `[[tenants]]`).
    pub fallback: Option<Tenant>,
    /// How long a read of the tenant store is used.
    pub tenant_refresh: Duration,
    /// The bound on each `on_close` call to a messaging API.
    pub listen_timeout: Duration,
    /// Unsigned webhooks accepted for gateways without a secret (asked for, loopback only).
    pub allow_unsigned: bool,
    /// No tenant has any gateway secret.
    pub no_secrets: bool,
    pub log_format: LogFormat,
    pub log: String,
}

/// Whether the data directory already holds a live tenant with a secret (tenants applied with
/// `lull tenants apply` count as much as those of `lull.toml`).
fn stored_secrets(data_dir: &Path) -> Result<bool, ServeConfigError> {
    if !lull_local::store::db_path(data_dir).exists() {
        return Ok(false);
    }
    let records = lull_local::SqliteTenants::open(data_dir)
        .and_then(|t| t.load_now())
        .map_err(|e| ServeConfigError::Tenants(e.to_string()))?;
    Ok(records
        .iter()
        .any(|r| r.removed_at.is_none() && r.spec.has_gateway_secret()))
}

/// Reads `lull.toml` (the given path, or ./lull.toml when it exists).
pub fn read_file(path: Option<&Path>) -> Result<FileConfig, ServeConfigError> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("lull.toml"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileConfig::default())
        }
        Err(source) => return Err(ServeConfigError::Read { path, source }),
    };
    toml::from_str(&text).map_err(|e| ServeConfigError::Parse {
        path,
        detail: crate::toml_error::describe(&text, &e),
    })
}

/// An address setting.
fn address(
    r: &Reader<'_, Layers>,
    var: &'static str,
    default: &str,
) -> Result<SocketAddr, SettingError> {
    let v = r.get(var).unwrap_or_else(|| default.to_string());
    v.parse().map_err(|e| {
        r.invalid(
            var,
            v.clone(),
            format!("{e} (expected IP:PORT, e.g. {default})"),
        )
    })
}

impl ServeArgs {
    /// Resolves flags, environment and file into a checked configuration.
    pub fn resolve(&self) -> Result<Config, ServeConfigError> {
        let file = read_file(self.config.as_deref())?;
        self.resolve_with(file)
    }

    fn resolve_with(&self, file: FileConfig) -> Result<Config, ServeConfigError> {
        let layers = Layers::new(self, &file);
        let r = Reader::new(&layers);
        let ProtocolSettings { policy, buffer } = ProtocolSettings::resolve(&layers)?;

        let listen = address(&r, "LULL_LISTEN", defaults::LISTEN)?;
        let ops_listen = address(&r, "LULL_OPS_LISTEN", defaults::OPS_LISTEN)?;
        if ops_listen == listen && listen.port() != 0 {
            return Err(ServeConfigError::OpsOnWebhookAddress(listen));
        }
        let max_concurrent_requests = r.number(
            "LULL_MAX_CONCURRENT_REQUESTS",
            defaults::MAX_CONCURRENT_REQUESTS,
        )?;
        if max_concurrent_requests == 0 {
            return Err(r
                .invalid_as_set(
                    "LULL_MAX_CONCURRENT_REQUESTS",
                    "at least 1 request must be served at a time",
                )
                .into());
        }
        let allow_unsigned = layers.switch("LULL_ALLOW_UNSIGNED");
        let trust_forwarded = layers.switch("LULL_TRUST_FORWARDED");
        let data_dir = PathBuf::from(
            r.get("LULL_DATA_DIR")
                .unwrap_or_else(|| defaults::DATA_DIR.into()),
        );

        let sink = r.get("LULL_SINK").unwrap_or_else(|| defaults::SINK.into());
        let sink_secrets: Vec<String> =
            lull_ingest::Secrets::from_list(&r.get("LULL_SINK_SECRET").unwrap_or_default())
                .iter()
                .map(str::to_string)
                .collect();
        let sink_timeout = buffer.timing.sink_timeout();
        // Checked now so a typo stops start-up rather than the first hand-off.
        lull_sink::AnySink::parse(&sink, sink_secrets.clone(), sink_timeout)
            .map_err(|e| r.invalid("LULL_SINK", sink.clone(), e.to_string()))?;

        let durability = match r.get("LULL_DURABILITY") {
            None => Durability::Normal,
            Some(v) => Durability::parse(&v).ok_or_else(|| {
                r.invalid("LULL_DURABILITY", v.clone(), "expected normal or full")
            })?,
        };
        let sweep_interval = r.duration("LULL_SWEEP_INTERVAL", defaults::SWEEP_INTERVAL)?;
        if sweep_interval < Duration::from_millis(10) {
            return Err(r
                .invalid_as_set("LULL_SWEEP_INTERVAL", "must be at least 10ms")
                .into());
        }
        let log_format = match r.get("LULL_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(r
                    .invalid("LULL_LOG_FORMAT", other, "expected text or json")
                    .into())
            }
        };
        let log = r
            .get("LULL_LOG")
            .or_else(|| std::env::var("RUST_LOG").ok())
            .unwrap_or_else(|| defaults::LOG.into());
        let tenant_refresh = r.duration("LULL_TENANT_REFRESH", lull_ingest::DEFAULT_TENANT_TTL)?;
        let listen_timeout =
            r.duration("LULL_LISTEN_TIMEOUT", lull_sink::DEFAULT_LISTEN_TIMEOUT)?;

        let (seed, fallback) = tenants(&layers, &file, policy)?;
        let any_secret = fallback.as_ref().is_some_and(Tenant::has_any_secret)
            || seed.iter().any(TenantSpec::has_gateway_secret)
            || stored_secrets(&data_dir)?;
        let loopback = listen.ip().is_loopback();
        if !loopback && allow_unsigned {
            return Err(ServeConfigError::UnsignedOnNonLoopback(listen));
        }
        if !loopback && !any_secret {
            return Err(ServeConfigError::OpenWithoutSecrets(listen));
        }
        let ops_tokens =
            lull_ingest::Secrets::from_list(&r.get("LULL_OPS_TOKEN").unwrap_or_default());
        Ok(Config {
            listen,
            ops_listen,
            ops_tokens,
            trust_forwarded,
            max_concurrent_requests,
            data_dir,
            policy,
            sink,
            sink_secrets,
            sink_timeout,
            durability,
            sweep: SweepSettings {
                interval: sweep_interval,
                limit: 256,
                concurrency: lull_core::protocol::SWEEP_CONCURRENCY,
            },
            buffer,
            seed,
            fallback,
            tenant_refresh,
            listen_timeout,
            allow_unsigned,
            no_secrets: !any_secret,
            log_format,
            log,
        })
    }
}

/// The single tenant of flags, environment and top-level file keys (built as the webhook Lambda
/// builds its bootstrap tenant, by [`Tenant::from_env`]), or the `[[tenants]]` of the file
/// (checked as a whole: unique ids, each account owned once), never both.
fn tenants(
    layers: &Layers,
    file: &FileConfig,
    policy: Policy,
) -> Result<(Vec<TenantSpec>, Option<Tenant>), ServeConfigError> {
    if file.tenants.is_empty() {
        let tenant = Tenant::from_env(|var| {
            lull_ingest::tenant::env::ALL
                .iter()
                .find(|v| **v == var)
                .and_then(|v| layers.value(v))
        })
        .map_err(|e| ServeConfigError::Tenants(e.to_string()))?;
        return Ok((Vec::new(), Some(Tenant { policy, ..tenant })));
    }
    if let Some(var) = lull_ingest::tenant::env::ALL
        .iter()
        .find(|v| layers.value(v).is_some())
    {
        return Err(ServeConfigError::GlobalSecretWithTenants(var));
    }
    let now = lull_core::Millis::now_wall();
    let records: Vec<_> = file
        .tenants
        .iter()
        .map(|s| lull_ingest::TenantRecord::applied(None, s.clone(), now))
        .collect();
    lull_ingest::tenant_spec::check_set(&records, &policy, |_| true)
        .map_err(|e| ServeConfigError::Tenants(format!("[[tenants]] in lull.toml: {e}")))?;
    Ok((file.tenants.clone(), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs::default()
    }

    #[test]
    fn defaults() {
        let c = args().resolve_with(FileConfig::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("lull-data"));
        assert_eq!(c.policy.quiet, Duration::from_secs(8));
        assert_eq!(c.policy.max_wait, Duration::from_secs(30));
        assert_eq!(c.sink, "stdout");
        assert!(
            !c.allow_unsigned,
            "unsigned webhooks are an explicit opt-in"
        );
        assert!(c.no_secrets);
        assert_eq!(c.ops_listen.to_string(), "127.0.0.1:9090");
        assert!(!c.trust_forwarded);
        assert_eq!(c.max_concurrent_requests, 64);
        assert_eq!(c.fallback.as_ref().map(|t| t.id.as_str()), Some("default"));
        assert!(c.seed.is_empty());
        assert_eq!(c.tenant_refresh, lull_ingest::DEFAULT_TENANT_TTL);
    }

    #[test]
    fn every_setting_is_one_flag_one_variable_and_one_file_key() {
        use clap::Args as _;
        let cmd = ServeArgs::augment_args(clap::Command::new("serve"));
        let keys = match serde_json::to_value(ServeArgs::default()).unwrap() {
            Value::Object(m) => m,
            other => panic!("{other}"),
        };
        for arg in cmd.get_arguments() {
            let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
                continue;
            };
            let key = Layers::key(env);
            assert_eq!(
                arg.get_long(),
                Some(key.replace('_', "-").as_str()),
                "{env}"
            );
            // Every flag but --config is also a lull.toml key of the same name.
            assert_eq!(keys.contains_key(&key), env != "LULL_CONFIG", "{env}");
        }
        // The protocol's settings are among them: serve resolves what the Lambdas resolve.
        for var in lull_core::settings::var::ALL {
            assert!(
                cmd.get_arguments()
                    .any(|a| a.get_env().and_then(|e| e.to_str()) == Some(*var)),
                "{var} is not a flag of serve"
            );
        }
    }

    #[test]
    fn protocol_settings_come_from_every_layer_and_are_named_in_all_three_spellings() {
        let file: FileConfig = toml::from_str(
            "max_messages = 7\nlease = \"80s\"\ndedupe_horizon = \"2h\"\nretry_min = \"2s\"",
        )
        .unwrap();
        let mut a = args();
        a.max_bytes = Some(4096);
        let c = a.resolve_with(file).unwrap();
        assert_eq!(c.policy.max_messages, 7);
        assert_eq!(c.policy.max_bytes, 4096);
        assert_eq!(c.buffer.timing.lease(), Duration::from_secs(80));
        assert_eq!(c.buffer.dedupe_horizon, Duration::from_secs(7200));
        assert_eq!(c.buffer.retry_min, Duration::from_secs(2));
        let file: FileConfig = toml::from_str("lease = \"61s\"").unwrap();
        let e = args().resolve_with(file).unwrap_err().to_string();
        assert!(
            e.starts_with("--lease / LULL_LEASE / lease in lull.toml: \"61s\" is invalid"),
            "{e}"
        );
        // A secret list in the file is the same as a comma-separated flag.
        let file: FileConfig = toml::from_str("meta_app_secret = [\"new\", \"old\"]").unwrap();
        let c = args().resolve_with(file).unwrap();
        let fallback = c.fallback.expect("the flags' tenant");
        assert_eq!(fallback.meta.app_secrets.len(), 2);
        // Secrets never show in a debug print of the settings.
        let file: FileConfig = toml::from_str("sink_secret = \"whsec_x\"").unwrap();
        assert!(!format!("{file:?}").contains("whsec_x"));
    }

    #[test]
    fn unsigned_mode_is_opt_in_and_loopback_only() {
        let mut a = args();
        a.allow_unsigned = true;
        assert!(
            a.resolve_with(FileConfig::default())
                .unwrap()
                .allow_unsigned
        );
        a.listen = Some("0.0.0.0:8080".into());
        a.meta_app_secret = Some("s3cret".parse().unwrap());
        let e = a
            .resolve_with(FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("LULL_ALLOW_UNSIGNED") && e.contains("0.0.0.0:8080"),
            "{e}"
        );
        let file: FileConfig = toml::from_str("allow_unsigned = true").unwrap();
        assert!(args().resolve_with(file).unwrap().allow_unsigned);
    }

    #[test]
    fn ops_listener_forwarded_trust_and_request_bound_are_settings() {
        let file: FileConfig = toml::from_str(
            "ops_listen = \"0.0.0.0:9100\"\ntrust_forwarded = true\nmax_concurrent_requests = 8\ntwilio_shared_key = [\"k1\", \"k2\"]",
        )
        .unwrap();
        let c = args().resolve_with(file).unwrap();
        assert_eq!(c.ops_listen.to_string(), "0.0.0.0:9100");
        assert!(c.trust_forwarded);
        assert_eq!(c.max_concurrent_requests, 8);
        let fallback = c.fallback.as_ref().expect("the flags' tenant");
        assert_eq!(fallback.twilio.shared_keys.len(), 2);
        let mut a = args();
        a.ops_listen = Some("127.0.0.1:8080".into());
        let e = a
            .resolve_with(FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("ops"), "{e}");
        let mut a = args();
        a.max_concurrent_requests = Some(0);
        let e = a
            .resolve_with(FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("LULL_MAX_CONCURRENT_REQUESTS"), "{e}");
    }

    #[test]
    fn flags_beat_file_which_beats_defaults() {
        let file: FileConfig = toml::from_str(
            "quiet = \"2s\"\nmax_wait = \"20s\"\nlisten = \"127.0.0.1:9000\"\nsink = \"jsonl:/tmp/x\"",
        )
        .unwrap();
        let mut a = args();
        a.quiet = Some("500ms".into());
        let c = a.resolve_with(file).unwrap();
        assert_eq!(c.policy.quiet, Duration::from_millis(500));
        assert_eq!(c.policy.max_wait, Duration::from_secs(20));
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.sink, "jsonl:/tmp/x");
    }

    #[test]
    fn bad_values_are_named() {
        let mut a = args();
        a.quiet = Some("soon".into());
        let e = a
            .resolve_with(FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("LULL_QUIET") && e.contains("soon"), "{e}");
        let mut a = args();
        a.listen = Some("0.0.0.0:8080".into());
        let e = a
            .resolve_with(FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("0.0.0.0:8080") && e.contains("secret"), "{e}");
        a.meta_app_secret = Some("s3cret".parse().unwrap());
        assert!(a.resolve_with(FileConfig::default()).is_ok());
        let mut a = args();
        a.sink = Some("ftp://x".into());
        let e = a
            .resolve_with(FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("LULL_SINK") && e.contains("ftp://x"), "{e}");
        let mut a = args();
        a.durability = Some("paranoid".into());
        let e = a
            .resolve_with(FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("LULL_DURABILITY") && e.contains("paranoid"),
            "{e}"
        );
        let mut a = args();
        a.max_wait = Some("1s".into());
        let e = a
            .resolve_with(FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("max wait"), "{e}");
    }

    /// A `lull.toml` that does not parse is reported by line, column and key, never by quoting
    /// the line, which may be a secret's.
    #[test]
    fn a_broken_config_file_never_quotes_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lull.toml");
        std::fs::write(
            &path,
            "quiet = \"8s\"\nmeta_app_secret = \"hunter2-app-secret\nsink = \"stdout\"\n",
        )
        .unwrap();
        let e = read_file(Some(&path)).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(
            e.contains("line 2") && e.contains("key meta_app_secret"),
            "{e}"
        );
        std::fs::write(&path, "sink_secret = 424242424242\n").unwrap();
        let e = read_file(Some(&path)).unwrap_err().to_string();
        assert!(!e.contains("424242424242"), "{e}");
        assert!(e.contains("key sink_secret"), "{e}");
    }

    #[test]
    fn the_single_tenants_admin_token_comes_from_flag_or_file_and_opens_no_webhook() {
        let file: FileConfig = toml::from_str("admin_token = [\"adm-old\", \"adm-new\"]").unwrap();
        assert!(!format!("{file:?}").contains("adm-old"), "redacted");
        let c = args().resolve_with(file.clone()).unwrap();
        let tokens = |c: &Config| {
            let t = c.fallback.as_ref().expect("the flags' tenant");
            t.admin_tokens
                .iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(tokens(&c), ["adm-old", "adm-new"]);
        assert!(c.no_secrets, "an admin token authenticates no webhook");
        let mut a = args();
        a.admin_token = Some("adm-flag".parse().unwrap());
        assert_eq!(tokens(&a.resolve_with(file).unwrap()), ["adm-flag"]);
        // Not enough to listen beyond loopback: the webhooks would still be open.
        a.listen = Some("0.0.0.0:8080".into());
        let e = a.resolve_with(FileConfig::default()).unwrap_err();
        assert!(matches!(e, ServeConfigError::OpenWithoutSecrets(_)), "{e}");
        // With [[tenants]], each tenant has its own.
        let file: FileConfig = toml::from_str(
            "admin_token = \"adm\"\n[[tenants]]\nid = \"a\"\n[tenants.meta]\napp_secret = \"s\"",
        )
        .unwrap();
        let e = args().resolve_with(file).unwrap_err().to_string();
        assert!(e.contains("LULL_ADMIN_TOKEN"), "{e}");
        // A tenant of the file holding only an admin token and a sink secret opens no webhook
        // either: still loopback only.
        let file: FileConfig = toml::from_str(
            "listen = \"0.0.0.0:8080\"\n[[tenants]]\nid = \"a\"\nadmin_token = \"adm\"\nsink = \"https://ai.example.com/batch\"\nsink_secret = \"whsec_x\"\n[tenants.meta]\nphone_number_ids = [\"123\"]",
        )
        .unwrap();
        let e = args().resolve_with(file).unwrap_err();
        assert!(matches!(e, ServeConfigError::OpenWithoutSecrets(_)), "{e}");
    }

    #[test]
    fn tenants_come_from_the_file() {
        let file: FileConfig = toml::from_str(
            r#"
            [[tenants]]
            id = "acme"
            quiet = "3s"
            [tenants.meta]
            phone_number_ids = ["106540352242922"]
            app_secret = ["a", "b"]

            [[tenants]]
            id = "beta"
            passthrough = true
            [tenants.twilio]
            numbers = ["+15550001111"]
            auth_token = "t"
            "#,
        )
        .unwrap();
        let c = args().resolve_with(file).unwrap();
        assert_eq!(c.seed.len(), 2);
        assert!(c.fallback.is_none());
        let acme = c.seed[0].to_tenant(&c.policy).unwrap();
        assert_eq!(acme.policy.quiet, Duration::from_secs(3));
        assert_eq!(acme.meta.app_secrets.len(), 2);
        assert!(!c.seed[1].to_tenant(&c.policy).unwrap().policy.buffering);
        assert!(!c.allow_unsigned);
    }

    #[test]
    fn a_bad_tenant_sink_and_duplicate_ids_or_accounts_are_named() {
        let file: FileConfig = toml::from_str(
            "[[tenants]]\nid = \"acme\"\nsink = \"ftp://nope\"\n[tenants.meta]\napp_secret = \"a\"",
        )
        .unwrap();
        let e = args().resolve_with(file).unwrap_err().to_string();
        assert!(e.contains("ftp://nope") && e.contains("sink"), "{e}");
        let file: FileConfig = toml::from_str(
            r#"
            [[tenants]]
            id = "a"
            [tenants.twilio]
            numbers = ["whatsapp:+15550001111"]
            auth_token = "t"
            [[tenants]]
            id = "b"
            [tenants.twilio]
            numbers = ["+15550001111"]
            auth_token = "u"
            "#,
        )
        .unwrap();
        let e = args().resolve_with(file).unwrap_err().to_string();
        assert!(e.contains("+15550001111") && e.contains("\"b\""), "{e}");
        let file: FileConfig = toml::from_str(
            "[[tenants]]\nid = \"a\"\n[tenants.meta]\nphone_number_ids = [\"1\"]\n\
             [[tenants]]\nid = \"a\"\n[tenants.meta]\nphone_number_ids = [\"2\"]",
        )
        .unwrap();
        let e = args().resolve_with(file).unwrap_err().to_string();
        assert!(e.contains("\"a\" appears twice"), "{e}");
    }
}
