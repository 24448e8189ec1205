//! Exponential backoff with full jitter, for re-trying a conversation whose hand-off failed.
//!
//! The delay doubles per failed attempt from `min` up to `max`, and is drawn uniformly between
//! half of that and all of it, so conversations that failed together (the sink went down) do not
//! all retry in the same millisecond when it comes back.

use std::time::Duration;

/// Retry delays for failed hand-offs (defaults: 1 s doubling up to 60 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max)
            .max(self.min);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let half = ms / 2;
        Duration::from_millis(half + fastrand::u64(0..=ms - half))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_and_is_capped() {
        let b = Backoff::default();
        for _ in 0..100 {
            let d0 = b.delay(0);
            assert!(d0 >= Duration::from_millis(500) && d0 <= Duration::from_secs(1));
            let d3 = b.delay(3);
            assert!(d3 >= Duration::from_secs(4) && d3 <= Duration::from_secs(8));
            let d30 = b.delay(30);
            assert!(d30 >= Duration::from_secs(30) && d30 <= Duration::from_secs(60));
        }
    }
}
