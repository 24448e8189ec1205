//! `lull check --send-test-batch`: the test batch, and what the sink's answer to it means, as
//! report lines. Pure: the delivery itself is the sink's (`lull_sink::Receipt`).
//!
//! Two lines always go to stdout: the answer (HTTP status and time, or how long a stdout, JSONL
//! or SQS sink took) and `sink: signature verified by the sink: yes | no | not reported | not
//! applicable (...)`. A sink that says the signature did not verify is a problem even when it
//! answered 2xx (the next real batch would be refused, or worse, taken unverified); a batch that
//! was not acknowledged is a problem; "not reported" and "not applicable" are not.

use lull_core::{Batch, CloseReason, ConversationKey, Message, Millis, Provider};
use lull_sink::{AnySink, Receipt, Verified};

use super::Report;

/// The test batch: a generic conversation of user `lull-check` (no phone number), one message.
pub(super) fn batch() -> Batch {
    let now = Millis::now_wall();
    Batch::new(
        uuid::Uuid::now_v7(),
        ConversationKey::new(Provider::Generic, "lull-check", "lull-check"),
        0,
        CloseReason::Quiet,
        now,
        now,
        false,
        vec![Message::text(
            format!("lull-check-{}", now.0),
            "lull-check",
            "lull check: test batch",
        )],
    )
}

/// A sink's name in the report ("the stdout sink does not sign batches").
pub(super) fn kind(sink: &AnySink) -> &'static str {
    match sink {
        AnySink::Stdout(_) => "stdout",
        AnySink::Jsonl(_) => "JSONL",
        AnySink::Http(_) => "HTTP",
    }
}

/// Reports what `receipt` says about the test batch `batch_id`, handed to a `kind` sink
/// (`signed`: lull has at least one sink secret).
pub(super) fn report(
    batch_id: &str,
    kind: &str,
    signed: bool,
    receipt: &Receipt,
    report: &mut Report,
) {
    let ms = receipt.elapsed.as_millis();
    let acked = if receipt.outcome.is_ok() {
        "acknowledged"
    } else {
        "not acknowledged"
    };
    report.note(match receipt.status {
        Some(code) => format!("sink: test batch {batch_id}: HTTP {code} in {ms} ms, {acked}"),
        None if receipt.verified == Verified::NotApplicable => {
            format!("sink: test batch {batch_id}: handed to the {kind} sink in {ms} ms, {acked}")
        }
        None => format!("sink: test batch {batch_id}: no answer after {ms} ms"),
    });
    let verified = match receipt.verified {
        Verified::Yes => "yes".to_string(),
        Verified::No => "no".to_string(),
        Verified::NotReported if receipt.status.is_none() => "not reported (no answer)".into(),
        Verified::NotReported => "not reported (the answer has no JSON \"verified\" field; \
                                  docs/batch.md says how a sink reports it)"
            .into(),
        Verified::NotApplicable => {
            format!("not applicable (the {kind} sink does not sign batches)")
        }
    };
    report.note(format!("sink: signature verified by the sink: {verified}"));

    if receipt.verified == Verified::No {
        let status = receipt
            .status
            .map(|code| format!(" (HTTP {code}, {acked})"))
            .unwrap_or_default();
        let fix = if signed {
            "the sink's secret and lull's sink secret (LULL_SINK_SECRET / --sink-secret) \
             differ: give both the same one"
        } else {
            "lull has no sink secret, so the batch went unsigned: set LULL_SINK_SECRET / \
             --sink-secret to the sink's secret"
        };
        report.problem(format!(
            "sink: the sink says test batch {batch_id}'s signature did not verify{status}: {fix}"
        ));
    } else if let Err(e) = &receipt.outcome {
        report.problem(format!(
            "sink: test batch {batch_id} not acknowledged after {ms} ms: {e}"
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lull_core::ports::SinkError;

    use super::*;

    fn lines(kind: &str, signed: bool, receipt: Receipt) -> Report {
        let mut r = Report::default();
        report("B", kind, signed, &receipt, &mut r);
        r
    }

    fn answered(code: u16, outcome: Result<(), SinkError>, verified: Verified) -> Receipt {
        Receipt {
            outcome,
            elapsed: Duration::from_millis(12),
            status: Some(code),
            verified,
        }
    }

    #[test]
    fn a_verified_acknowledgement_is_two_notes_and_no_problem() {
        let r = lines("HTTP", true, answered(200, Ok(()), Verified::Yes));
        assert_eq!(
            r.notes,
            [
                "sink: test batch B: HTTP 200 in 12 ms, acknowledged",
                "sink: signature verified by the sink: yes"
            ]
        );
        assert!(r.problems.is_empty());
    }

    #[test]
    fn a_signature_the_sink_refused_is_one_problem_naming_the_fix() {
        let refused = || Err(SinkError::permanent("127.0.0.1 answered 401 Unauthorized"));
        let r = lines("HTTP", true, answered(401, refused(), Verified::No));
        assert_eq!(r.notes[1], "sink: signature verified by the sink: no");
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].contains("did not verify (HTTP 401, not acknowledged)"));
        assert!(r.problems[0].contains("LULL_SINK_SECRET"));
        // Unsigned: the fix is to configure a secret at all.
        let r = lines("HTTP", false, answered(401, refused(), Verified::No));
        assert!(r.problems[0].contains("lull has no sink secret"), "{r:?}");
        // A sink that acknowledges what it could not verify is a problem too.
        let r = lines("HTTP", true, answered(200, Ok(()), Verified::No));
        assert!(r.problems[0].contains("(HTTP 200, acknowledged)"), "{r:?}");
    }

    #[test]
    fn silence_is_not_reported_and_unsigned_sinks_are_not_applicable() {
        let r = lines("HTTP", true, answered(204, Ok(()), Verified::NotReported));
        assert!(r.notes[1].starts_with("sink: signature verified by the sink: not reported ("));
        assert!(r.problems.is_empty());
        let r = lines(
            "SQS FIFO",
            false,
            Receipt {
                outcome: Ok(()),
                elapsed: Duration::from_millis(3),
                status: None,
                verified: Verified::NotApplicable,
            },
        );
        assert_eq!(
            r.notes,
            [
                "sink: test batch B: handed to the SQS FIFO sink in 3 ms, acknowledged",
                "sink: signature verified by the sink: not applicable (the SQS FIFO sink does \
                 not sign batches)"
            ]
        );
        assert!(r.problems.is_empty());
    }

    #[test]
    fn no_answer_is_not_reported_and_a_problem() {
        let r = lines(
            "HTTP",
            true,
            Receipt {
                outcome: Err(SinkError::retryable(
                    "127.0.0.1: connection failed: refused",
                )),
                elapsed: Duration::from_millis(2),
                status: None,
                verified: Verified::NotReported,
            },
        );
        assert_eq!(r.notes[0], "sink: test batch B: no answer after 2 ms");
        assert_eq!(
            r.notes[1],
            "sink: signature verified by the sink: not reported (no answer)"
        );
        assert!(
            r.problems[0].contains("not acknowledged after 2 ms"),
            "{r:?}"
        );
        assert!(r.problems[0].contains("connection failed"), "{r:?}");
    }
}
