//! Configuration from environment variables, read and validated once at start-up. A missing or
//! bad value fails the Lambda's init with a message naming the variable. The protocol's settings
//! (the `LULL_QUIET` .. `LULL_DEDUPE_HORIZON` rows) are resolved by the core
//! (`lull_core::settings`), with the same defaults and checks as `lull serve`; wiring the adapters
//! from these settings is [`crate::wiring`]'s.
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `LULL_TABLE` | DynamoDB table | required |
//! | `LULL_TRIGGER_QUEUE_URL` | SQS standard queue of triggers | required |
//! | `LULL_DLQ_URL` | its dead-letter queue (redrive) | required for redrive |
//! | `LULL_SINK` | `http(s)://...`, `sqs:<FIFO queue URL>`, `stdout` | required for flush, sweep, redrive |
//! | `LULL_SINK_SECRET` | HMAC secret signing HTTP hand-offs (comma-separated: the first signs; not read by the webhook) | none |
//! | `LULL_SINK_TIMEOUT` | how long one sink call may take; the lease and the flush/sweep timeouts follow from it (`lull_core::timing`) | `60s` |
//! | `LULL_QUIET` | quiet period | `8s` |
//! | `LULL_MAX_WAIT` | max wait | `30s` |
//! | `LULL_MAX_MESSAGES` | size cap in messages | `50` |
//! | `LULL_MAX_BYTES` | size cap in bytes | `65536` |
//! | `LULL_DEDUPE_HORIZON` | how long message ids are remembered | `7days` |
//! | `LULL_LEASE` | hand-off lease (at least sink timeout + 2 s) | sink timeout + 15 s |
//! | `LULL_RETRY_MIN`, `LULL_RETRY_MAX` | backoff after a failed hand-off, doubled per failure (not read by the webhook) | `1s`, `60s` |
//! | `LULL_IDLE_TTL` | how long an idle conversation record is kept | `30days` |
//! | `LULL_DUE_SHARDS` | partitions of the due index (fixed per table) | `4` |
//! | `LULL_SWEEP_LIMIT` | conversations one sweep flushes at most (sweep only) | `500` |
//! | `LULL_LOG_SECRET` | key of the conversation hash in logs; the reply guards' key is derived from it (none without it) | empty |
//! | `LULL_PUBLIC_URL` | the HTTP API's URL: base of each batch's reply guard (flush, sweep, redrive) | none: batches carry no guard |
//! | `LULL_SECRET_PREFIX` | name prefix of the tenants' secrets in Secrets Manager | `lull/tenants/` |
//! | `LULL_TENANT_REFRESH` | how long a read of the tenants is used before the next | `10s` |
//! | `LULL_LISTEN_TIMEOUT` | bound on each `on_close` call to a messaging API (hand-off roles) | `2s` |
//! | `LULL_METRICS_NAMESPACE` | CloudWatch namespace of the EMF metrics (read by `telemetry`) | `lull` |

use std::time::Duration;

use lull_core::settings::{var, ProtocolSettings, Reader, SettingError, SettingSource};
use lull_core::{BufferConfig, Policy};

/// Which program reads the configuration: it decides what is required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Webhook,
    Flush,
    Sweep,
    Redrive,
    /// `lull tenants --aws`: the tenant store only (table, secret prefix, default policy).
    Tenants,
}

/// Read by every role (besides the protocol settings of [`lull_core::settings::var`]).
const COMMON_ENV: &[&str] = &[
    "LULL_TABLE",
    "LULL_TRIGGER_QUEUE_URL",
    "LULL_IDLE_TTL",
    "LULL_DUE_SHARDS",
    "LULL_LOG_SECRET",
    "LULL_SECRET_PREFIX",
    "LULL_TENANT_REFRESH",
];
/// Read by the roles that hand batches off.
/// `LULL_PUBLIC_URL` too: only a batch carries a guard URL, and the webhook could not be given
/// its own API's URL anyway (the HTTP API depends on the webhook function: a cycle).
/// `LULL_LISTEN_TIMEOUT`: the bound on each `on_close` call, docs/listening.md.
const SINK_ENV: &[&str] = &[
    "LULL_SINK",
    "LULL_SINK_SECRET",
    "LULL_PUBLIC_URL",
    "LULL_LISTEN_TIMEOUT",
];
/// Protocol settings only a hand-off uses: the webhook never calls a sink, so it does not read
/// them (and a bad one cannot stop it).
const HANDOFF_ONLY: &[&str] = &[var::SINK_TIMEOUT, var::RETRY_MIN, var::RETRY_MAX];

/// Every environment variable [`Settings::from_lookup`] reads for `role` (required or not): the
/// deployment (infra/template.yaml, checked by tests/infra.rs) sets each of them.
pub fn known_env(role: Role) -> Vec<&'static str> {
    let hands_off = hands_off(role);
    let mut v = COMMON_ENV.to_vec();
    v.extend(
        var::ALL
            .iter()
            .filter(|name| hands_off || !HANDOFF_ONLY.contains(name)),
    );
    if hands_off {
        v.extend_from_slice(SINK_ENV);
    }
    match role {
        Role::Sweep => v.push("LULL_SWEEP_LIMIT"),
        Role::Redrive => v.push("LULL_DLQ_URL"),
        Role::Webhook | Role::Flush | Role::Tenants => {}
    }
    v
}

/// Whether `role` hands batches off (and so reads the sink's settings).
fn hands_off(role: Role) -> bool {
    !matches!(role, Role::Webhook | Role::Tenants)
}

/// A missing or bad environment variable of a Lambda (or of `lull ... --aws`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LambdaConfigError {
    #[error("{var} is required but not set")]
    Missing { var: &'static str },
    /// A value that cannot be used, named by its variable (the core's protocol checks included).
    #[error(transparent)]
    Invalid(#[from] SettingError),
}

/// Where batches go, parsed but not yet connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkSpec {
    /// `http(s)://`, `stdout` or `jsonl:PATH`: lull-sink's spec string.
    Any(String),
    /// `sqs:<FIFO queue URL>`.
    SqsFifo(String),
}

/// Everything the AWS programs read from the environment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub table: String,
    pub trigger_queue_url: String,
    pub dlq_url: Option<String>,
    pub sink: Option<SinkSpec>,
    pub sink_secrets: Vec<String>,
    pub sink_timeout: Duration,
    pub policy: Policy,
    pub buffer: BufferConfig,
    pub idle_ttl: Duration,
    pub due_shards: u32,
    pub sweep_limit: usize,
    pub log_secret: String,
    /// The HTTP API's base URL: batches carry a reply guard under it (with a log secret).
    pub public_url: Option<String>,
    /// Name prefix of the tenants' Secrets Manager secrets (`<prefix><tenant id>`).
    pub secret_prefix: String,
    /// How long a read of the tenant directory is used.
    pub tenant_refresh: Duration,
    /// The bound on each `on_close` call (read receipt, typing) to a messaging API
    /// (`LULL_LISTEN_TIMEOUT`, default 2s).
    pub listen_timeout: Duration,
}

/// The environment as a Lambda role sees it: hand-off-only settings are invisible to the roles
/// that never hand off.
struct RoleEnv<F> {
    role: Role,
    get: F,
}

impl<F: Fn(&str) -> Option<String>> SettingSource for RoleEnv<F> {
    fn value(&self, name: &'static str) -> Option<String> {
        if !hands_off(self.role) && HANDOFF_ONLY.contains(&name) {
            return None;
        }
        (self.get)(name)
    }
}

fn queue_url(
    r: &Reader<'_, impl SettingSource + ?Sized>,
    name: &'static str,
    value: &str,
) -> Result<String, SettingError> {
    if value.starts_with("https://") || value.starts_with("http://") {
        Ok(value.to_string())
    } else {
        Err(r.invalid(
            name,
            value,
            "expected an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)",
        ))
    }
}

/// Parses a `LULL_SINK` value.
pub fn parse_sink(value: &str) -> Result<SinkSpec, LambdaConfigError> {
    const VAR: &str = "LULL_SINK";
    let env = |_: &str| -> Option<String> { None };
    let r = Reader::new(&env);
    if let Some(url) = value.strip_prefix("sqs:") {
        let url = queue_url(&r, VAR, url)?;
        if !url.ends_with(".fifo") {
            return Err(r
                .invalid(
                    VAR,
                    value,
                    "the SQS sink must be a FIFO queue (name ending in .fifo) so batches of a \
                     conversation keep their order",
                )
                .into());
        }
        return Ok(SinkSpec::SqsFifo(url));
    }
    // Validate with lull-sink's own parser (no secrets or real timeout needed to check the shape;
    // nothing is sent).
    lull_sink::AnySink::parse(value, Vec::new(), Duration::from_secs(1))
        .map_err(|e| r.invalid(VAR, value, format!("{e}; or sqs:<FIFO queue URL>")))?;
    Ok(SinkSpec::Any(value.to_string()))
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env(role: Role) -> Result<Settings, LambdaConfigError> {
        Self::from_lookup(role, |k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (the environment, or a map in tests). Blank values count as
    /// unset. The protocol's settings (policy, timing, retries, dedupe) are resolved and
    /// checked by the core, as `lull serve` resolves them.
    pub fn from_lookup(
        role: Role,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, LambdaConfigError> {
        let env = RoleEnv { role, get };
        let r = Reader::new(&env);
        let req = |name: &'static str| r.get(name).ok_or(LambdaConfigError::Missing { var: name });

        let table = req("LULL_TABLE")?;
        let trigger_queue_url = match (role, r.get("LULL_TRIGGER_QUEUE_URL")) {
            (Role::Tenants, None) => String::new(),
            _ => queue_url(
                &r,
                "LULL_TRIGGER_QUEUE_URL",
                &req("LULL_TRIGGER_QUEUE_URL")?,
            )?,
        };
        // Only the redrive reads the dead-letter queue.
        let dlq_url = match role {
            Role::Redrive => Some(queue_url(&r, "LULL_DLQ_URL", &req("LULL_DLQ_URL")?)?),
            _ => None,
        };
        // The webhook never hands a batch off: it reads no sink setting (and holds no sink secret).
        let sink = if hands_off(role) {
            Some(parse_sink(&req("LULL_SINK")?)?)
        } else {
            None
        };
        let sink_secrets: Vec<String> = hands_off(role)
            .then(|| r.get("LULL_SINK_SECRET"))
            .flatten()
            .map(|v| {
                lull_ingest::Secrets::from_list(&v)
                    .iter()
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();

        let ProtocolSettings { policy, buffer } = ProtocolSettings::resolve(&env)?;

        // The store's own defaults (`StoreSettings::new`), stated once there.
        let store_defaults = crate::store::StoreSettings::new(String::new());
        let idle_ttl = r.duration("LULL_IDLE_TTL", store_defaults.idle_ttl)?;
        if idle_ttl < buffer.dedupe_horizon {
            return Err(r
                .invalid_as_set(
                    "LULL_IDLE_TTL",
                    "must not be shorter than the dedupe horizon",
                )
                .into());
        }
        let due_shards: u32 = r.number("LULL_DUE_SHARDS", store_defaults.due_shards)?;
        if !(1..=64).contains(&due_shards) {
            return Err(r
                .invalid(
                    "LULL_DUE_SHARDS",
                    due_shards.to_string(),
                    "must be between 1 and 64",
                )
                .into());
        }
        // Only the sweep uses its limit.
        let sweep_limit: usize = if role == Role::Sweep {
            r.number("LULL_SWEEP_LIMIT", lull_core::protocol::SWEEP_LIMIT)?
        } else {
            lull_core::protocol::SWEEP_LIMIT
        };
        if sweep_limit == 0 {
            return Err(r
                .invalid("LULL_SWEEP_LIMIT", "0", "must be at least 1")
                .into());
        }
        Ok(Settings {
            table,
            trigger_queue_url,
            dlq_url,
            sink,
            sink_secrets,
            sink_timeout: buffer.timing.sink_timeout(),
            policy,
            buffer,
            idle_ttl,
            due_shards,
            sweep_limit,
            log_secret: r.get("LULL_LOG_SECRET").unwrap_or_default(),
            // Only a hand-off builds guard URLs (see SINK_ENV).
            public_url: if hands_off(role) {
                r.get("LULL_PUBLIC_URL")
            } else {
                None
            },
            secret_prefix: r
                .get("LULL_SECRET_PREFIX")
                .unwrap_or_else(|| "lull/tenants/".into()),
            tenant_refresh: r.duration("LULL_TENANT_REFRESH", lull_ingest::DEFAULT_TENANT_TTL)?,
            // Only a hand-off sends `on_close` calls: the webhook never reads this.
            listen_timeout: if hands_off(role) {
                r.duration("LULL_LISTEN_TIMEOUT", lull_sink::DEFAULT_LISTEN_TIMEOUT)?
            } else {
                lull_sink::DEFAULT_LISTEN_TIMEOUT
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("LULL_TABLE", "lull"),
        (
            "LULL_TRIGGER_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/1/lull-triggers",
        ),
        ("LULL_SINK", "https://ai.example.com/batches"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = BASE.to_vec();
        v.retain(|(k, _)| !extra.iter().any(|(ek, _)| ek == k));
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn defaults_apply_when_only_the_required_values_are_set() {
        let s = Settings::from_lookup(Role::Flush, lookup(BASE)).unwrap();
        assert_eq!(s.table, "lull");
        assert_eq!(s.policy, Policy::default());
        assert_eq!(s.due_shards, 4);
        assert_eq!(s.sink_timeout, Duration::from_secs(60));
        assert_eq!(s.buffer.timing.lease(), Duration::from_secs(75));
        assert_eq!(
            s.sink,
            Some(SinkSpec::Any("https://ai.example.com/batches".into()))
        );
        assert_eq!(s.buffer.dedupe_horizon, Duration::from_secs(7 * 24 * 3600));
    }

    #[test]
    fn missing_values_are_named() {
        let e = Settings::from_lookup(Role::Flush, lookup(&[])).unwrap_err();
        assert_eq!(e, LambdaConfigError::Missing { var: "LULL_TABLE" });
        let e = Settings::from_lookup(Role::Flush, lookup(&BASE[..2])).unwrap_err();
        assert_eq!(e.to_string(), "LULL_SINK is required but not set");
        // The webhook does not hand off: it needs no sink.
        assert!(Settings::from_lookup(Role::Webhook, lookup(&BASE[..2])).is_ok());
        let e = Settings::from_lookup(Role::Redrive, lookup(BASE)).unwrap_err();
        assert_eq!(
            e,
            LambdaConfigError::Missing {
                var: "LULL_DLQ_URL"
            }
        );
        let e =
            Settings::from_lookup(Role::Flush, lookup(&with(&[("LULL_TABLE", " ")]))).unwrap_err();
        assert_eq!(e, LambdaConfigError::Missing { var: "LULL_TABLE" });
    }

    #[test]
    fn bad_values_are_named_with_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("LULL_QUIET", "soon"),
            ("LULL_QUIET", "0s"),
            ("LULL_MAX_WAIT", "2s"),
            ("LULL_MAX_MESSAGES", "-1"),
            ("LULL_MAX_BYTES", "10"),
            ("LULL_DUE_SHARDS", "0"),
            ("LULL_SWEEP_LIMIT", "0"),
            ("LULL_SINK_TIMEOUT", "11m"),
            ("LULL_SINK_TIMEOUT", "0s"),
            ("LULL_LEASE", "20s"),
            ("LULL_DEDUPE_HORIZON", "1m"),
            ("LULL_IDLE_TTL", "1day"),
            ("LULL_TRIGGER_QUEUE_URL", "lull-triggers"),
            ("LULL_SINK", "ftp://x"),
            ("LULL_SINK", "sqs:https://sqs.us-east-1.amazonaws.com/1/out"),
            ("LULL_SINK", "sqs:out.fifo"),
        ];
        for (var, value) in cases {
            // The sweep reads every setting the flush reads, and its limit.
            let e = Settings::from_lookup(Role::Sweep, lookup(&with(&[(var, value)])))
                .expect_err(&format!("{var}={value} must be refused"));
            assert!(
                e.to_string().starts_with(var),
                "{var}={value}: error must name the variable: {e}"
            );
        }
    }

    #[test]
    fn known_env_is_exactly_what_each_role_reads() {
        use std::cell::RefCell;
        use std::collections::BTreeSet;
        let all: Vec<(&str, &str)> = BASE
            .iter()
            .copied()
            .chain([(
                "LULL_DLQ_URL",
                "https://sqs.us-east-1.amazonaws.com/1/lull-dlq",
            )])
            .collect();
        for role in [Role::Webhook, Role::Flush, Role::Sweep, Role::Redrive] {
            let read = RefCell::new(BTreeSet::new());
            let get = lookup(&all);
            Settings::from_lookup(role, |k| {
                read.borrow_mut().insert(k.to_string());
                get(k)
            })
            .unwrap();
            let known: BTreeSet<String> = known_env(role).into_iter().map(String::from).collect();
            assert_eq!(read.into_inner(), known, "{role:?}");
        }
        assert!(!known_env(Role::Webhook).contains(&"LULL_SINK_SECRET"));
    }

    #[test]
    fn the_webhook_ignores_sink_settings() {
        let s = Settings::from_lookup(
            Role::Webhook,
            lookup(&with(&[
                ("LULL_SINK", "ftp://x"),
                ("LULL_SINK_SECRET", "s"),
            ])),
        )
        .unwrap();
        assert_eq!(s.sink, None);
        assert!(s.sink_secrets.is_empty());
    }

    #[test]
    fn sinks_parse() {
        let s = Settings::from_lookup(
            Role::Sweep,
            lookup(&with(&[
                (
                    "LULL_SINK",
                    "sqs:https://sqs.us-east-1.amazonaws.com/1/out.fifo",
                ),
                ("LULL_SINK_SECRET", "new, old"),
                ("LULL_QUIET", "2s"),
                ("LULL_MAX_WAIT", "1m"),
            ])),
        )
        .unwrap();
        assert_eq!(
            s.sink,
            Some(SinkSpec::SqsFifo(
                "https://sqs.us-east-1.amazonaws.com/1/out.fifo".into()
            ))
        );
        assert_eq!(s.sink_secrets, vec!["new".to_string(), "old".to_string()]);
        assert_eq!(s.policy.quiet, Duration::from_secs(2));
        assert_eq!(s.policy.max_wait, Duration::from_secs(60));
    }
}
