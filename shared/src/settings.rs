//! The protocol's settings, resolved once for every shell.
//!
//! `lull serve` reads flags, environment variables and `lull.toml`; the Lambdas read their
//! environment. Both hand a [`SettingSource`] to [`ProtocolSettings::resolve`], which owns the
//! names, the defaults and the checks of everything the protocol runs with: the buffering policy
//! (quiet, max wait, size caps), the hand-off timing (sink timeout and lease, one rule in
//! [`crate::timing`]), the retry backoff and the dedupe horizon. A shell only says where values
//! come from and how to name them in a message.

use std::time::Duration;

use crate::timing::{check_dedupe_horizon, HandoffTiming};
use crate::{BufferConfig, Policy};

/// The variables [`ProtocolSettings::resolve`] reads, by their environment names. Shells that
/// take flags or file keys derive those from these names (`LULL_MAX_WAIT` is `--max-wait` and
/// `max_wait`).
pub mod var {
    pub const QUIET: &str = "LULL_QUIET";
    pub const MAX_WAIT: &str = "LULL_MAX_WAIT";
    pub const MAX_MESSAGES: &str = "LULL_MAX_MESSAGES";
    pub const MAX_BYTES: &str = "LULL_MAX_BYTES";
    pub const SINK_TIMEOUT: &str = "LULL_SINK_TIMEOUT";
    pub const LEASE: &str = "LULL_LEASE";
    pub const RETRY_MIN: &str = "LULL_RETRY_MIN";
    pub const RETRY_MAX: &str = "LULL_RETRY_MAX";
    pub const DEDUPE_HORIZON: &str = "LULL_DEDUPE_HORIZON";
    /// `append` or `supersede`: the default tenant's `on_newer`.
    pub const ON_NEWER: &str = "LULL_ON_NEWER";

    /// Every variable of the protocol's settings.
    pub const ALL: &[&str] = &[
        QUIET,
        MAX_WAIT,
        MAX_MESSAGES,
        MAX_BYTES,
        SINK_TIMEOUT,
        LEASE,
        RETRY_MIN,
        RETRY_MAX,
        DEDUPE_HORIZON,
        ON_NEWER,
    ];
}

/// The shortest dedupe horizon accepted: gateways retry for hours (Meta for up to 7 days).
pub const MIN_DEDUPE_HORIZON: Duration = Duration::from_secs(3600);
/// The shortest retry backoff accepted.
pub const MIN_RETRY: Duration = Duration::from_millis(10);

/// Where a shell's setting values come from, by environment name.
pub trait SettingSource {
    /// The raw value of `var`, when set. Blank values count as unset.
    fn value(&self, var: &'static str) -> Option<String>;

    /// How an operator recognises `var` in a message (e.g. `--quiet / LULL_QUIET / quiet in
    /// lull.toml`); the variable itself by default.
    fn name(&self, var: &'static str) -> String {
        var.to_string()
    }
}

/// A lookup function is a source (the environment: `|v| std::env::var(v).ok()`).
impl<F: Fn(&str) -> Option<String>> SettingSource for F {
    fn value(&self, var: &'static str) -> Option<String> {
        self(var)
    }
}

/// A setting that cannot be used; the message names it (as its shell knows it) and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {value:?} is invalid: {reason}")]
pub struct SettingError {
    pub setting: String,
    pub value: String,
    pub reason: String,
}

/// Reads and names values of one source; the helpers every shell's own settings use too.
pub struct Reader<'a, S: ?Sized> {
    source: &'a S,
}

impl<'a, S: SettingSource + ?Sized> Reader<'a, S> {
    pub fn new(source: &'a S) -> Self {
        Reader { source }
    }

    /// The value of `var`, trimmed, when set and not blank.
    pub fn get(&self, var: &'static str) -> Option<String> {
        self.source
            .value(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// An error about `var` holding `value`.
    pub fn invalid(
        &self,
        var: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> SettingError {
        SettingError {
            setting: self.source.name(var),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// An error about `var` with whatever it holds (empty when it holds nothing: the default).
    pub fn invalid_as_set(&self, var: &'static str, reason: impl Into<String>) -> SettingError {
        self.invalid(var, self.get(var).unwrap_or_default(), reason)
    }

    /// A duration (`8s`, `500ms`, `1m`), or `default` when unset.
    pub fn duration(&self, var: &'static str, default: Duration) -> Result<Duration, SettingError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => humantime::parse_duration(&v).map_err(|e| {
                self.invalid(
                    var,
                    v.clone(),
                    format!("{e} (write durations like 8s, 500ms, 1m)"),
                )
            }),
        }
    }

    /// A number, or `default` when unset.
    pub fn number<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
    ) -> Result<T, SettingError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e: T::Err| self.invalid(var, v.clone(), e.to_string())),
        }
    }
}

/// Everything the protocol runs with, checked: the default policy of tenants that set none, and
/// the buffer's own settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtocolSettings {
    pub policy: Policy,
    pub buffer: BufferConfig,
}

impl ProtocolSettings {
    /// Resolves every protocol setting from `source`, defaults for what it leaves unset
    /// ([`Policy::default`], [`BufferConfig::default`]), and checks them together.
    pub fn resolve(source: &(impl SettingSource + ?Sized)) -> Result<Self, SettingError> {
        let r = Reader::new(source);
        let defaults = Policy::default();
        let policy = Policy {
            quiet: r.duration(var::QUIET, defaults.quiet)?,
            max_wait: r.duration(var::MAX_WAIT, defaults.max_wait)?,
            max_messages: r.number(var::MAX_MESSAGES, defaults.max_messages)?,
            max_bytes: r.number(var::MAX_BYTES, defaults.max_bytes)?,
            on_newer: r.number(var::ON_NEWER, defaults.on_newer)?,
            buffering: true,
            ..defaults
        };
        policy.validate().map_err(|e| {
            use crate::policy::PolicyError as P;
            let v = match e {
                // The deployment-wide settings leave the end-of-turn rule at its defaults (tenants
                // set it): only the quiet period can break its checks.
                P::ZeroQuiet(_) | P::ZeroPause | P::Turn(_) => var::QUIET,
                P::MaxWaitBelowQuiet { .. } | P::TooLong { .. } => var::MAX_WAIT,
                P::ZeroMaxMessages(_) => var::MAX_MESSAGES,
                P::MaxBytesOutOfRange { .. } => var::MAX_BYTES,
            };
            r.invalid_as_set(v, e.to_string())
        })?;

        let base = BufferConfig::default();
        let sink_timeout = r.duration(var::SINK_TIMEOUT, base.timing.sink_timeout())?;
        // One rule (crate::timing): the lease follows from the sink timeout; an explicit lease
        // must still leave room for a whole sink call.
        let timing = match r.get(var::LEASE) {
            Some(_) => HandoffTiming::with_lease(
                sink_timeout,
                r.duration(var::LEASE, base.timing.lease())?,
            )
            .map_err(|e| r.invalid_as_set(var::LEASE, e.to_string()))?,
            None => HandoffTiming::new(sink_timeout)
                .map_err(|e| r.invalid_as_set(var::SINK_TIMEOUT, e.to_string()))?,
        };

        let retry_min = r.duration(var::RETRY_MIN, base.retry_min)?;
        let retry_max = r.duration(var::RETRY_MAX, base.retry_max)?;
        if retry_min < MIN_RETRY {
            return Err(r.invalid_as_set(var::RETRY_MIN, "must be at least 10ms"));
        }
        if retry_max < retry_min {
            return Err(r.invalid(
                var::RETRY_MAX,
                humantime::format_duration(retry_max).to_string(),
                format!(
                    "must not be below the retry minimum ({})",
                    humantime::format_duration(retry_min)
                ),
            ));
        }

        let dedupe_horizon = r.duration(var::DEDUPE_HORIZON, base.dedupe_horizon)?;
        if dedupe_horizon < MIN_DEDUPE_HORIZON {
            return Err(r.invalid_as_set(
                var::DEDUPE_HORIZON,
                "must be at least 1h (Meta retries for up to 7 days)",
            ));
        }
        check_dedupe_horizon(dedupe_horizon, policy.max_wait)
            .map_err(|e| r.invalid_as_set(var::DEDUPE_HORIZON, e.to_string()))?;

        Ok(ProtocolSettings {
            policy,
            buffer: BufferConfig {
                dedupe_horizon,
                timing,
                retry_min,
                retry_max,
                ..base
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(vars: &[(&str, &str)]) -> Result<ProtocolSettings, SettingError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProtocolSettings::resolve(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_is_the_core_defaults() {
        let s = resolve(&[]).unwrap();
        assert_eq!(s.policy, Policy::default());
        assert_eq!(s.buffer, BufferConfig::default());
    }

    #[test]
    fn every_setting_is_read_and_blank_is_unset() {
        let s = resolve(&[
            (var::QUIET, "2s"),
            (var::MAX_WAIT, " 20s "),
            (var::MAX_MESSAGES, "7"),
            (var::MAX_BYTES, "2048"),
            (var::SINK_TIMEOUT, "10s"),
            (var::LEASE, "30s"),
            (var::RETRY_MIN, "500ms"),
            (var::RETRY_MAX, "5s"),
            (var::DEDUPE_HORIZON, "2h"),
            (var::ON_NEWER, "supersede"),
        ])
        .unwrap();
        assert_eq!(s.policy.on_newer, crate::policy::OnNewer::Supersede);
        let e = resolve(&[(var::ON_NEWER, "replace")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("LULL_ON_NEWER") && e.contains("replace"), "{e}");
        assert_eq!(s.policy.quiet, Duration::from_secs(2));
        assert_eq!(s.policy.max_wait, Duration::from_secs(20));
        assert_eq!((s.policy.max_messages, s.policy.max_bytes), (7, 2048));
        assert_eq!(s.buffer.timing.sink_timeout(), Duration::from_secs(10));
        assert_eq!(s.buffer.timing.lease(), Duration::from_secs(30));
        assert_eq!(s.buffer.retry_min, Duration::from_millis(500));
        assert_eq!(s.buffer.retry_max, Duration::from_secs(5));
        assert_eq!(s.buffer.dedupe_horizon, Duration::from_secs(7200));
        assert_eq!(
            resolve(&[(var::QUIET, "  ")]).unwrap().policy.quiet,
            Policy::default().quiet
        );
        // The lease follows the sink timeout when not set.
        let s = resolve(&[(var::SINK_TIMEOUT, "10s")]).unwrap();
        assert_eq!(s.buffer.timing.lease(), Duration::from_secs(25));
    }

    #[test]
    fn each_bad_value_is_named_with_its_value() {
        for (vars, named, value) in [
            (vec![(var::QUIET, "soon")], var::QUIET, "soon"),
            (vec![(var::QUIET, "0s")], var::QUIET, "0s"),
            (
                vec![(var::QUIET, "9s"), (var::MAX_WAIT, "5s")],
                var::MAX_WAIT,
                "5s",
            ),
            (vec![(var::MAX_MESSAGES, "0")], var::MAX_MESSAGES, "0"),
            (vec![(var::MAX_MESSAGES, "-1")], var::MAX_MESSAGES, "-1"),
            (vec![(var::MAX_BYTES, "10")], var::MAX_BYTES, "10"),
            (vec![(var::SINK_TIMEOUT, "0s")], var::SINK_TIMEOUT, "0s"),
            (
                vec![(var::SINK_TIMEOUT, "30s"), (var::LEASE, "31s")],
                var::LEASE,
                "31s",
            ),
            (vec![(var::RETRY_MIN, "1ms")], var::RETRY_MIN, "1ms"),
            (
                vec![(var::RETRY_MIN, "5s"), (var::RETRY_MAX, "1s")],
                var::RETRY_MAX,
                "1s",
            ),
            (vec![(var::DEDUPE_HORIZON, "5m")], var::DEDUPE_HORIZON, "5m"),
            (
                vec![(var::MAX_WAIT, "3h"), (var::DEDUPE_HORIZON, "2h")],
                var::DEDUPE_HORIZON,
                "2h",
            ),
        ] {
            let e = resolve(&vars).unwrap_err();
            assert_eq!(e.setting, named, "{vars:?}: {e}");
            assert_eq!(e.value, value, "{vars:?}: {e}");
            assert!(!e.reason.is_empty());
        }
    }

    #[test]
    fn a_source_names_settings_its_own_way() {
        struct Flags;
        impl SettingSource for Flags {
            fn value(&self, var: &'static str) -> Option<String> {
                (var == var::QUIET).then(|| "never".into())
            }
            fn name(&self, var: &'static str) -> String {
                format!("--{}", var.trim_start_matches("LULL_").to_lowercase())
            }
        }
        let e = ProtocolSettings::resolve(&Flags).unwrap_err();
        assert_eq!(e.setting, "--quiet");
        assert!(e.to_string().contains("\"never\""), "{e}");
    }
}
