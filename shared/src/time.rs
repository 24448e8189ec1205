//! lull's notion of time: milliseconds since the Unix epoch, as read from the `Clock` port.
//!
//! Every decision (quiet period, max wait, order) uses lull's own receive time, never a provider
//! timestamp: Meta's are whole seconds and Twilio sends none. Instants serialise as RFC 3339 with
//! milliseconds (`2026-11-28T12:00:00.123Z`), the format of the public batch JSON.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// An instant, in milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// The instant `d` after this one (saturating: time never wraps).
    pub fn plus(self, d: Duration) -> Millis {
        Millis(self.0.saturating_add(duration_ms(d)))
    }

    /// How long after `earlier` this instant is; zero when it is not later.
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// This instant as a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    /// The current wall-clock time. Only clocks should call this; the core reads `Clock::now`.
    pub fn now_wall() -> Millis {
        Millis(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(duration_ms)
                .unwrap_or(0),
        )
    }

    /// Formats as RFC 3339 with milliseconds, in UTC.
    pub fn rfc3339(self) -> String {
        humantime::format_rfc3339_millis(self.to_system_time()).to_string()
    }

    /// Parses RFC 3339 (any fraction of a second, truncated to milliseconds).
    pub fn parse_rfc3339(s: &str) -> Result<Millis, humantime::TimestampError> {
        let t = humantime::parse_rfc3339(s)?;
        Ok(Millis(
            t.duration_since(UNIX_EPOCH).map(duration_ms).unwrap_or(0),
        ))
    }
}

/// A duration in whole milliseconds, saturating at `u64::MAX`.
pub fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Millis;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp or milliseconds since the epoch")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Millis, E> {
                Millis::parse_rfc3339(v).map_err(|e| E::custom(format!("bad timestamp {v:?}: {e}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Millis, E> {
                Ok(Millis(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Millis, E> {
                u64::try_from(v)
                    .map(Millis)
                    .map_err(|_| E::custom("negative timestamp"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Serde for an optional instant stored as integer milliseconds (compact, and any `u64`, also
/// past what RFC 3339 can write); reads RFC 3339 too. `#[serde(with = "crate::time::opt_ms")]`.
pub mod opt_ms {
    use super::Millis;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(m) => s.serialize_some(&m.0),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
        Option::<Millis>::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_with_milliseconds() {
        let t = Millis(1_764_334_161_123);
        assert_eq!(t.rfc3339(), "2025-11-28T12:49:21.123Z");
        assert_eq!(Millis::parse_rfc3339(&t.rfc3339()).unwrap(), t);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Millis>(&json).unwrap(), t);
        assert_eq!(serde_json::from_str::<Millis>("1764334161123").unwrap(), t);
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Millis(5).since(Millis(9)), Duration::ZERO);
        assert_eq!(
            Millis(u64::MAX).plus(Duration::from_secs(1)),
            Millis(u64::MAX)
        );
    }
}
