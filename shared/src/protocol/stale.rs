//! Messages older than the dedupe horizon can vouch for are refused (skipped and counted), never
//! handed off as new.
//!
//! lull remembers a message id for the dedupe horizon (default 7 days) after its batch was
//! acknowledged; after that a resend of it would be a new message. A gateway's own retries stop
//! within the horizon, so a message that old arriving again is a replay (a captured request sent
//! again: WAHA's and the legacy body-only signatures carry no timestamp). The provider's
//! timestamp (`Message::sent_at`) is the only age a replayed body carries, so it decides here and
//! nowhere else: every other decision runs on lull's receive time.
//!
//! The cut-off is the horizon minus [`STALE_SLACK`]: a gateway whose clock runs ahead of lull's
//! by up to the slack still cannot slip a replay between the end of the id's dedupe horizon
//! (acknowledgement + horizon, never earlier than receipt + horizon) and the cut-off. The price
//! is that a genuine message first delivered more than horizon - slack after it was written is
//! refused too: lull could not tell it from a replay. A message without a timestamp (Twilio, a
//! generic sender that sends none) is never stale.

use std::time::Duration;

use crate::time::Millis;

/// How far ahead of lull's clock a gateway's clock may run without opening a replay gap, and so
/// how much earlier than the horizon a message counts as stale. Smaller than the shortest
/// horizon lull accepts (1 h).
pub const STALE_SLACK: Duration = Duration::from_secs(5 * 60);

/// True when a message the provider says it sent at `sent_at` is too old at `now` for the dedupe
/// `horizon` to tell a replay from a new message.
pub fn is_stale(sent_at: Option<Millis>, now: Millis, horizon: Duration) -> bool {
    let Some(sent_at) = sent_at else {
        return false;
    };
    now.since(sent_at) >= horizon.saturating_sub(STALE_SLACK)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);
    const NOW: Millis = Millis(1_767_225_600_000);

    fn ago(d: Duration) -> Option<Millis> {
        Some(Millis(NOW.0 - d.as_millis() as u64))
    }

    #[test]
    fn a_message_within_the_horizon_is_not_stale() {
        assert!(!is_stale(ago(Duration::from_secs(2)), NOW, 7 * DAY));
        assert!(!is_stale(ago(6 * DAY), NOW, 7 * DAY));
        assert!(!is_stale(
            ago(7 * DAY - STALE_SLACK - Duration::from_millis(1)),
            NOW,
            7 * DAY
        ));
    }

    #[test]
    fn a_message_at_the_horizon_minus_the_slack_is_stale() {
        assert!(is_stale(ago(7 * DAY - STALE_SLACK), NOW, 7 * DAY));
        assert!(is_stale(
            ago(7 * DAY + Duration::from_secs(1)),
            NOW,
            7 * DAY
        ));
        assert!(is_stale(Some(Millis(0)), NOW, 7 * DAY));
    }

    #[test]
    fn no_timestamp_or_a_future_one_is_never_stale() {
        assert!(!is_stale(None, NOW, 7 * DAY));
        assert!(!is_stale(Some(NOW.plus(DAY)), NOW, 7 * DAY));
    }

    #[test]
    fn the_cut_off_follows_the_configured_horizon() {
        let hour = Duration::from_secs(3600);
        assert!(!is_stale(ago(Duration::from_secs(50 * 60)), NOW, hour));
        assert!(is_stale(ago(hour), NOW, hour));
    }
}
