//! Configuration of `lull serve`: flags > environment > `lull.toml` > defaults.
//!
//! Clap reads flags and their environment variables (each flag's `env`), leaving unset ones as
//! `None`; then `lull.toml` fills the gaps and defaults the rest. Values are checked here, all at
//! start-up, and a bad one stops it with a message naming the setting (flag, variable and file
//! key) and the value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use lull_core::{BufferConfig, Policy};
use lull_ingest::{
    EvolutionSettings, GenericSettings, MetaSettings, Secrets, Tenant, TenantSpec, TwilioSettings,
};
use lull_local::{Durability, SweepSettings};
use serde::Deserialize;

/// Settings of `lull serve` (and of `lull redrive`, which needs the same store and sink).
#[derive(Args, Clone, Debug, Default)]
pub struct ServeArgs {
    /// Configuration file (TOML; also holds tenants). Default: ./lull.toml when it exists.
    #[arg(long, env = "LULL_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]. A non-loopback address requires gateway
    /// secrets.
    #[arg(long, env = "LULL_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Address of the ops routes (/healthz, /metrics, /redrive), never the webhook address
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
    /// retry) [default: 64].
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
    pub sink_secret: Option<String>,
    /// Meta app secret(s) verifying X-Hub-Signature-256, comma-separated.
    #[arg(
        long,
        env = "LULL_META_APP_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub meta_app_secret: Option<String>,
    /// Meta webhook verify token(s) for the subscription handshake, comma-separated.
    #[arg(
        long,
        env = "LULL_META_VERIFY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub meta_verify_token: Option<String>,
    /// Evolution API token(s) (apikey header, bearer or path), comma-separated.
    #[arg(
        long,
        env = "LULL_EVOLUTION_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub evolution_token: Option<String>,
    /// Evolution JWT key(s) (`Authorization: Bearer <HS256 JWT>`, exp checked), comma-separated.
    #[arg(
        long,
        env = "LULL_EVOLUTION_JWT_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub evolution_jwt_key: Option<String>,
    /// Secret(s) verifying /webhook/generic (Standard Webhooks or X-Lull-Signature), comma-separated.
    #[arg(
        long,
        env = "LULL_GENERIC_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub generic_secret: Option<String>,
    /// Twilio auth token(s) verifying X-Twilio-Signature, comma-separated.
    #[arg(
        long,
        env = "LULL_TWILIO_AUTH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub twilio_auth_token: Option<String>,
    /// Twilio webhook shared key secret(s) (signatures announced by
    /// X-Twilio-Webhooks-Signature-Settings), comma-separated.
    #[arg(
        long,
        env = "LULL_TWILIO_SHARED_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub twilio_shared_key: Option<String>,
    /// The exact webhook URL configured in Twilio, when it differs from what lull sees.
    #[arg(long, env = "LULL_TWILIO_PUBLIC_URL", value_name = "URL")]
    pub twilio_public_url: Option<String>,
    /// normal: a 2xx survives kill -9 (WAL, synchronous=NORMAL); full: also survives power loss
    /// (fsync per commit) [default: normal].
    #[arg(long, env = "LULL_DURABILITY", value_name = "normal|full")]
    pub durability: Option<String>,
    /// How often the sweep hands off windows whose timer was lost [default: 5s].
    #[arg(long, env = "LULL_SWEEP_INTERVAL", value_name = "DURATION")]
    pub sweep_interval: Option<String>,
    /// First retry delay after a failed hand-off; doubles per failure, with jitter [default: 1s].
    #[arg(long, env = "LULL_RETRY_MIN", value_name = "DURATION")]
    pub retry_min: Option<String>,
    /// Longest retry delay after failed hand-offs [default: 60s].
    #[arg(long, env = "LULL_RETRY_MAX", value_name = "DURATION")]
    pub retry_max: Option<String>,
    /// How long a hand-off waits for the sink's answer [default: 60s]; the lease is this + 15s.
    #[arg(long, env = "LULL_SINK_TIMEOUT", value_name = "DURATION")]
    pub sink_timeout: Option<String>,
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
}

/// `lull.toml`. Every key is optional; flags and environment variables win over it.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub ops_listen: Option<String>,
    pub allow_unsigned: Option<bool>,
    pub trust_forwarded: Option<bool>,
    pub max_concurrent_requests: Option<usize>,
    pub data_dir: Option<PathBuf>,
    pub quiet: Option<String>,
    pub max_wait: Option<String>,
    pub sink: Option<String>,
    pub sink_secret: Option<StringOrList>,
    pub meta_app_secret: Option<StringOrList>,
    pub meta_verify_token: Option<StringOrList>,
    pub evolution_token: Option<StringOrList>,
    pub evolution_jwt_key: Option<StringOrList>,
    pub generic_secret: Option<StringOrList>,
    pub twilio_auth_token: Option<StringOrList>,
    pub twilio_shared_key: Option<StringOrList>,
    pub twilio_public_url: Option<String>,
    pub durability: Option<String>,
    pub sweep_interval: Option<String>,
    pub retry_min: Option<String>,
    pub retry_max: Option<String>,
    pub sink_timeout: Option<String>,
    pub log_format: Option<String>,
    pub log: Option<String>,
    pub tenant_refresh: Option<String>,
    /// The tenants that seed a fresh data directory (afterwards: `lull tenants apply`).
    #[serde(default)]
    pub tenants: Vec<TenantSpec>,
}

/// A secret given as one string (comma-separated) or a list.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn secrets(&self) -> Secrets {
        match self {
            StringOrList::One(s) => Secrets::from_list(s),
            StringOrList::Many(v) => Secrets::new(v.iter().cloned()),
        }
    }
}

/// A setting that stops start-up. The message names it and its value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid {setting}: {value:?}: {reason}")]
    Invalid {
        setting: &'static str,
        value: String,
        reason: String,
    },
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
    pub trust_forwarded: bool,
    pub max_concurrent_requests: usize,
    pub data_dir: PathBuf,
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
    /// Unsigned webhooks accepted for gateways without a secret (asked for, loopback only).
    pub allow_unsigned: bool,
    /// No tenant has any gateway secret.
    pub no_secrets: bool,
    pub log_format: LogFormat,
    pub log: String,
}

/// Names of a setting for messages: flag / variable / file key.
macro_rules! setting {
    ($flag:literal, $env:literal, $key:literal) => {
        concat!("--", $flag, " / ", $env, " / ", $key, " in lull.toml")
    };
}

fn duration(setting: &'static str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| ConfigError::Invalid {
        setting,
        value: value.into(),
        reason: format!("{e} (write durations like 8s, 500ms, 1m)"),
    })
}

fn pick<T>(flag: Option<T>, file: Option<T>) -> Option<T> {
    flag.or(file)
}

fn secrets(flag: &Option<String>, file: &Option<StringOrList>) -> Secrets {
    match (flag, file) {
        (Some(v), _) => Secrets::from_list(v),
        (None, Some(f)) => f.secrets(),
        (None, None) => Secrets::default(),
    }
}

/// Whether the data directory already holds a live tenant with a secret (tenants applied with
/// `lull tenants apply` count as much as those of `lull.toml`).
fn stored_secrets(data_dir: &Path) -> Result<bool, ConfigError> {
    if !lull_local::store::db_path(data_dir).exists() {
        return Ok(false);
    }
    let records = lull_local::SqliteTenants::open(data_dir)
        .and_then(|t| t.load_now())
        .map_err(|e| ConfigError::Tenants(e.to_string()))?;
    Ok(records
        .iter()
        .any(|r| r.removed_at.is_none() && !r.spec.secret_counts().is_empty()))
}

/// Reads `lull.toml` (the given path, or ./lull.toml when it exists).
pub fn read_file(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("lull.toml"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileConfig::default())
        }
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path,
        source: Box::new(source),
    })
}

impl ServeArgs {
    /// Resolves flags, environment and file into a checked configuration.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let file = read_file(self.config.as_deref())?;
        self.resolve_with(file)
    }

    fn resolve_with(&self, file: FileConfig) -> Result<Config, ConfigError> {
        const LISTEN: &str = setting!("listen", "LULL_LISTEN", "listen");
        let listen_s = pick(self.listen.clone(), file.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_s.trim().parse().map_err(|e| ConfigError::Invalid {
            setting: LISTEN,
            value: listen_s.clone(),
            reason: format!("{e} (expected IP:PORT, e.g. 127.0.0.1:8080)"),
        })?;
        const OPS_LISTEN: &str = setting!("ops-listen", "LULL_OPS_LISTEN", "ops_listen");
        let ops_s = pick(self.ops_listen.clone(), file.ops_listen.clone())
            .unwrap_or_else(|| "127.0.0.1:9090".into());
        let ops_listen: SocketAddr = ops_s.trim().parse().map_err(|e| ConfigError::Invalid {
            setting: OPS_LISTEN,
            value: ops_s.clone(),
            reason: format!("{e} (expected IP:PORT, e.g. 127.0.0.1:9090)"),
        })?;
        if ops_listen == listen && listen.port() != 0 {
            return Err(ConfigError::OpsOnWebhookAddress(listen));
        }
        const MAX_REQUESTS: &str = setting!(
            "max-concurrent-requests",
            "LULL_MAX_CONCURRENT_REQUESTS",
            "max_concurrent_requests"
        );
        let max_concurrent_requests = self
            .max_concurrent_requests
            .or(file.max_concurrent_requests)
            .unwrap_or(64);
        if max_concurrent_requests == 0 {
            return Err(ConfigError::Invalid {
                setting: MAX_REQUESTS,
                value: "0".into(),
                reason: "at least 1 request must be served at a time".into(),
            });
        }
        let allow_unsigned = self.allow_unsigned || file.allow_unsigned.unwrap_or(false);
        let trust_forwarded = self.trust_forwarded || file.trust_forwarded.unwrap_or(false);
        let data_dir = pick(self.data_dir.clone(), file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("lull-data"));

        const QUIET: &str = setting!("quiet", "LULL_QUIET", "quiet");
        const MAX_WAIT: &str = setting!("max-wait", "LULL_MAX_WAIT", "max_wait");
        let quiet = match pick(self.quiet.clone(), file.quiet.clone()) {
            Some(v) => duration(QUIET, &v)?,
            None => Duration::from_secs(8),
        };
        let max_wait = match pick(self.max_wait.clone(), file.max_wait.clone()) {
            Some(v) => duration(MAX_WAIT, &v)?,
            None => Duration::from_secs(30),
        };
        let policy = Policy::with_times(quiet, max_wait).map_err(|e| ConfigError::Invalid {
            setting:
                "--quiet / --max-wait (LULL_QUIET / LULL_MAX_WAIT / quiet, max_wait in lull.toml)",
            value: format!(
                "{} / {}",
                humantime::format_duration(quiet),
                humantime::format_duration(max_wait)
            ),
            reason: e.to_string(),
        })?;

        const SINK: &str = setting!("sink", "LULL_SINK", "sink");
        let sink = pick(self.sink.clone(), file.sink.clone()).unwrap_or_else(|| "stdout".into());
        let sink_secrets: Vec<String> = secrets(&self.sink_secret, &file.sink_secret)
            .iter()
            .map(str::to_string)
            .collect();
        const SINK_TIMEOUT: &str = setting!("sink-timeout", "LULL_SINK_TIMEOUT", "sink_timeout");
        let sink_timeout = match pick(self.sink_timeout.clone(), file.sink_timeout.clone()) {
            Some(v) => duration(SINK_TIMEOUT, &v)?,
            None => lull_core::timing::DEFAULT_SINK_TIMEOUT,
        };
        // One rule (lull_core::timing): the lease and every deadline follow from the timeout.
        let timing = lull_core::timing::HandoffTiming::new(sink_timeout).map_err(|e| {
            ConfigError::Invalid {
                setting: SINK_TIMEOUT,
                value: humantime::format_duration(sink_timeout).to_string(),
                reason: e.to_string(),
            }
        })?;
        // Checked now so a typo stops start-up rather than the first hand-off.
        lull_sink::AnySink::parse(&sink, sink_secrets.clone(), sink_timeout).map_err(|e| {
            ConfigError::Invalid {
                setting: SINK,
                value: sink.clone(),
                reason: e.to_string(),
            }
        })?;

        const DURABILITY: &str = setting!("durability", "LULL_DURABILITY", "durability");
        let durability = match pick(self.durability.clone(), file.durability.clone()) {
            None => Durability::Normal,
            Some(v) => Durability::parse(v.trim()).ok_or_else(|| ConfigError::Invalid {
                setting: DURABILITY,
                value: v.clone(),
                reason: "expected normal or full".into(),
            })?,
        };
        const SWEEP: &str = setting!("sweep-interval", "LULL_SWEEP_INTERVAL", "sweep_interval");
        let sweep_interval = match pick(self.sweep_interval.clone(), file.sweep_interval.clone()) {
            Some(v) => duration(SWEEP, &v)?,
            None => Duration::from_secs(5),
        };
        if sweep_interval < Duration::from_millis(10) {
            return Err(ConfigError::Invalid {
                setting: SWEEP,
                value: humantime::format_duration(sweep_interval).to_string(),
                reason: "must be at least 10ms".into(),
            });
        }
        const RETRY_MIN: &str = setting!("retry-min", "LULL_RETRY_MIN", "retry_min");
        const RETRY_MAX: &str = setting!("retry-max", "LULL_RETRY_MAX", "retry_max");
        let retry_min = match pick(self.retry_min.clone(), file.retry_min.clone()) {
            Some(v) => duration(RETRY_MIN, &v)?,
            None => Duration::from_secs(1),
        };
        let retry_max = match pick(self.retry_max.clone(), file.retry_max.clone()) {
            Some(v) => duration(RETRY_MAX, &v)?,
            None => Duration::from_secs(60),
        };
        if retry_min < Duration::from_millis(10) || retry_max < retry_min {
            return Err(ConfigError::Invalid {
                setting: RETRY_MIN,
                value: format!(
                    "{} .. {}",
                    humantime::format_duration(retry_min),
                    humantime::format_duration(retry_max)
                ),
                reason: "retry-min must be at least 10ms and not above retry-max".into(),
            });
        }

        const LOG_FORMAT: &str = setting!("log-format", "LULL_LOG_FORMAT", "log_format");
        let log_format = match pick(self.log_format.clone(), file.log_format.clone()).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    setting: LOG_FORMAT,
                    value: other.into(),
                    reason: "expected text or json".into(),
                })
            }
        };
        let log = pick(self.log.clone(), file.log.clone())
            .or_else(|| std::env::var("RUST_LOG").ok())
            .unwrap_or_else(|| "info".into());

        const REFRESH: &str = setting!("tenant-refresh", "LULL_TENANT_REFRESH", "tenant_refresh");
        let tenant_refresh = match pick(self.tenant_refresh.clone(), file.tenant_refresh.clone()) {
            Some(v) => duration(REFRESH, &v)?,
            None => lull_ingest::DEFAULT_TENANT_TTL,
        };
        let (seed, fallback) = self.tenants(&file, policy)?;
        let any_secret = fallback.as_ref().is_some_and(Tenant::has_any_secret)
            || seed.iter().any(|s| !s.secret_counts().is_empty())
            || stored_secrets(&data_dir)?;
        let loopback = listen.ip().is_loopback();
        if !loopback && allow_unsigned {
            return Err(ConfigError::UnsignedOnNonLoopback(listen));
        }
        if !loopback && !any_secret {
            return Err(ConfigError::OpenWithoutSecrets(listen));
        }
        let buffer = BufferConfig {
            timing,
            // A failed batch is held for the same backoff the timers use.
            retry_min,
            retry_max,
            ..BufferConfig::default()
        };
        Ok(Config {
            listen,
            ops_listen,
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
                concurrency: 16,
            },
            buffer,
            seed,
            fallback,
            tenant_refresh,
            allow_unsigned,
            no_secrets: !any_secret,
            log_format,
            log,
        })
    }

    /// The single tenant from flags/environment/top-level keys, or the `[[tenants]]` of the file
    /// (checked as a whole: unique ids, each account owned once).
    fn tenants(
        &self,
        file: &FileConfig,
        policy: Policy,
    ) -> Result<(Vec<TenantSpec>, Option<Tenant>), ConfigError> {
        let meta_app = secrets(&self.meta_app_secret, &file.meta_app_secret);
        let meta_verify = secrets(&self.meta_verify_token, &file.meta_verify_token);
        let evolution = secrets(&self.evolution_token, &file.evolution_token);
        let evolution_jwt = secrets(&self.evolution_jwt_key, &file.evolution_jwt_key);
        let generic = secrets(&self.generic_secret, &file.generic_secret);
        let twilio = secrets(&self.twilio_auth_token, &file.twilio_auth_token);
        let twilio_shared = secrets(&self.twilio_shared_key, &file.twilio_shared_key);
        let twilio_url = pick(
            self.twilio_public_url.clone(),
            file.twilio_public_url.clone(),
        );
        if file.tenants.is_empty() {
            return Ok((
                Vec::new(),
                Some(Tenant {
                    id: "default".into(),
                    policy,
                    meta: MetaSettings {
                        app_secrets: meta_app,
                        verify_tokens: meta_verify,
                        ..Default::default()
                    },
                    evolution: EvolutionSettings {
                        tokens: evolution,
                        jwt_keys: evolution_jwt,
                        ..Default::default()
                    },
                    twilio: TwilioSettings {
                        auth_tokens: twilio,
                        shared_keys: twilio_shared,
                        public_url: twilio_url,
                        ..Default::default()
                    },
                    generic: GenericSettings {
                        secrets: generic,
                        ..Default::default()
                    },
                    sink: None,
                }),
            ));
        }
        for (name, set) in [
            ("LULL_META_APP_SECRET", !meta_app.is_empty()),
            ("LULL_META_VERIFY_TOKEN", !meta_verify.is_empty()),
            ("LULL_EVOLUTION_TOKEN", !evolution.is_empty()),
            ("LULL_EVOLUTION_JWT_KEY", !evolution_jwt.is_empty()),
            ("LULL_GENERIC_SECRET", !generic.is_empty()),
            ("LULL_TWILIO_AUTH_TOKEN", !twilio.is_empty()),
            ("LULL_TWILIO_SHARED_KEY", !twilio_shared.is_empty()),
        ] {
            if set {
                return Err(ConfigError::GlobalSecretWithTenants(name));
            }
        }
        let now = lull_core::Millis::now_wall();
        let records: Vec<_> = file
            .tenants
            .iter()
            .map(|s| lull_ingest::TenantRecord::applied(None, s.clone(), now))
            .collect();
        lull_ingest::tenant_spec::check_set(&records, &policy)
            .map_err(|e| ConfigError::Tenants(format!("[[tenants]] in lull.toml: {e}")))?;
        Ok((file.tenants.clone(), None))
    }
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
    fn unsigned_mode_is_opt_in_and_loopback_only() {
        let mut a = args();
        a.allow_unsigned = true;
        assert!(
            a.resolve_with(FileConfig::default())
                .unwrap()
                .allow_unsigned
        );
        a.listen = Some("0.0.0.0:8080".into());
        a.meta_app_secret = Some("s3cret".into());
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
        a.meta_app_secret = Some("s3cret".into());
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
