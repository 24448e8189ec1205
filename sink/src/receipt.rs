//! A receipt of one delivery, for `lull check --send-test-batch`: what the sink answered, how
//! long it took, and whether the sink says the signature verified.
//!
//! Hand-offs never ask for one: they act on the status alone and never read a 2xx's body
//! ([`crate::answer`]). A receipt costs one bounded read more: at most
//! [`crate::DIAGNOSTIC_BYTES`] of the answer's body, within the same sink timeout.
//!
//! The echo convention (`docs/batch.md`, "Telling `lull check` the signature verified"): the
//! answer's body is a JSON object with a boolean top-level `verified`, e.g. `{"verified": true}`
//! on the 2xx and `{"verified": false}` on the 401 a bad signature gets. Anything else says
//! nothing, so a sink that does not echo is "not reported", never "no".

use std::future::Future;
use std::time::{Duration, Instant};

use lull_core::ports::SinkError;

/// What the sink says about the batch's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    /// The answer's body says `"verified": true`.
    Yes,
    /// The answer's body says `"verified": false`.
    No,
    /// An HTTP sink that gave no answer, or an answer without the echo.
    NotReported,
    /// A sink that neither signs nor answers (stdout, JSONL, SQS).
    NotApplicable,
}

impl Verified {
    /// What an HTTP answer's body (its first bytes, at most the read cap) says: the top-level
    /// boolean `verified` of a JSON object. No body, not JSON (or cut off at the cap), no such
    /// field, or not a boolean: [`Verified::NotReported`].
    pub fn from_body(body: &[u8]) -> Verified {
        // Bounded: the caller read at most the cap, and serde_json limits nesting depth.
        let Ok(serde_json::Value::Object(answer)) = serde_json::from_slice(body) else {
            return Verified::NotReported;
        };
        match answer.get("verified") {
            Some(serde_json::Value::Bool(true)) => Verified::Yes,
            Some(serde_json::Value::Bool(false)) => Verified::No,
            _ => Verified::NotReported,
        }
    }
}

/// One delivery, as `lull check` reports it.
#[derive(Debug)]
pub struct Receipt {
    /// What a hand-off would conclude from the same answer: acknowledged, or the failure and its
    /// class (the receipt changes nothing about what an answer means).
    pub outcome: Result<(), SinkError>,
    /// From sending until the answer's status arrived (or the failure).
    pub elapsed: Duration,
    /// The HTTP status, when an HTTP sink answered.
    pub status: Option<u16>,
    /// What the sink says about the signature.
    pub verified: Verified,
}

impl Receipt {
    /// The receipt of a sink with no answer to read and no signature (stdout, JSONL, SQS): the
    /// delivery's outcome and duration.
    pub async fn of_unsigned<T>(delivery: impl Future<Output = Result<T, SinkError>>) -> Receipt {
        let started = Instant::now();
        let outcome = delivery.await.map(|_| ());
        Receipt {
            outcome,
            elapsed: started.elapsed(),
            status: None,
            verified: Verified::NotApplicable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_json_object_with_a_boolean_verified_reports() {
        assert_eq!(Verified::from_body(br#"{"verified": true}"#), Verified::Yes);
        assert_eq!(
            Verified::from_body(br#"{"status":"duplicate","verified":true}"#),
            Verified::Yes
        );
        assert_eq!(
            Verified::from_body(br#"{"verified": false, "reason": "bad"}"#),
            Verified::No
        );
        for silent in [
            &b""[..],
            b"ok",
            b"bad signature",
            br#"{"verified": "true"}"#,
            br#"{"verified": 1}"#,
            br#"{"ok": true}"#,
            br#"[{"verified": true}]"#,
            br#"{"nested": {"verified": true}}"#,
            // Cut off at the read cap: not JSON, so nothing is reported.
            br#"{"verified": true, "pad": "xxxx"#,
        ] {
            assert_eq!(
                Verified::from_body(silent),
                Verified::NotReported,
                "{}",
                String::from_utf8_lossy(silent)
            );
        }
    }
}
