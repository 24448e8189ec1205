//! Configuration of `lull serve`: flags > environment > `lull.toml` > defaults.
//!
//! Every setting is declared once, in [`ServeArgs`]: clap reads it from its flag or environment
//! variable, serde from the key of the same name in `lull.toml`. [`ServeArgs::resolve`] lays the
//! flags over the file ([`Layers`]) and reads the result by environment name, so one setting has
//! one name in three spellings: `--max-wait`, `LULL_MAX_WAIT`, `max_wait`. What the protocol runs
//! with (policy, hand-off timing, retries, dedupe) is resolved and checked by the core
//! ([`ProtocolSettings`]), exactly as the Lambdas resolve it; the flags' tenant is built by
//! [`Tenant::from_env`], as the webhook Lambda builds its bootstrap tenant. This module keeps only
//! what is the local server's own: addresses, the data directory, durability, the sweep and logs.
//!
//! - [`args`]: the flag schema ([`ServeArgs`], also `lull.toml`'s shape);
//! - [`layers`]: flags over the file, read by environment name;
//! - [`tenants`]: the flags' tenant or the file's `[[tenants]]`, and the stored tenants' secrets;
//! - here: the checked [`Config`] and its resolution.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lull_core::settings::{ProtocolSettings, Reader, SettingError};
use lull_core::{BufferConfig, Policy};
use lull_ingest::{Tenant, TenantSpec};
use lull_local::{Durability, SweepSettings};

mod args;
mod layers;
mod tenants;
#[cfg(test)]
mod tests;

pub use args::{defaults, FileConfig, ServeArgs};
pub use layers::{read_file, Layers};
use tenants::{stored_secrets, tenants};

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
    /// The reply guards' base URL (`--public-url`); empty: `http://` + the address listened on.
    pub public_url: String,
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

/// A public base URL: absolute http(s), without query or fragment; its trailing `/` dropped.
fn public_url(v: &str) -> Result<String, String> {
    let t = v.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .ok_or("expected an absolute http:// or https:// URL")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("the URL names no host".into());
    }
    if t.contains(['?', '#', ' ']) {
        return Err("a base URL takes no query, fragment or spaces".into());
    }
    Ok(t.to_string())
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

        let public_url = match r.get("LULL_PUBLIC_URL") {
            None => String::new(),
            Some(v) => public_url(&v).map_err(|e| r.invalid("LULL_PUBLIC_URL", v.clone(), e))?,
        };
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
            public_url,
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
                limit: lull_core::protocol::SWEEP_LIMIT,
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
