//! Delayed wake-ups as SQS messages on a standard queue (FIFO queues cannot delay one message).
//!
//! The delay is the time to the due instant rounded UP to whole seconds, so a trigger never fires
//! early on purpose, clamped to SQS's 0..=900 s: a later due time fires early and the flush
//! re-arms it. The body is the [`TriggerMsg`] JSON (conversation, chain, gen, ver, due time).

use aws_sdk_sqs::types::QueueAttributeName;
use lull_core::ports::{Trigger, TriggerError, TriggerMsg};
use lull_core::Millis;

use crate::accounting::Accounting;
use crate::sdk_error;

/// The longest delay SQS allows.
pub const MAX_DELAY_SECONDS: i32 = 900;

/// `DelaySeconds` for a trigger due `at`, sent `now`: whole seconds rounded up, in 0..=900.
pub fn delay_seconds(now: Millis, at: Millis) -> i32 {
    let ms = at.0.saturating_sub(now.0);
    let secs = ms.div_ceil(1000);
    i32::try_from(secs.min(MAX_DELAY_SECONDS as u64)).unwrap_or(MAX_DELAY_SECONDS)
}

/// The SQS trigger.
#[derive(Clone, Debug)]
pub struct SqsTrigger {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    acct: Accounting,
}

impl SqsTrigger {
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        acct: Accounting,
    ) -> Self {
        SqsTrigger {
            client,
            queue_url: queue_url.into(),
            acct,
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

impl Trigger for SqsTrigger {
    async fn arm(&self, msg: &TriggerMsg, at: Millis) -> Result<(), TriggerError> {
        let body = serde_json::to_string(msg)
            .map_err(|e| TriggerError(format!("cannot encode trigger: {e}")))?;
        let delay = delay_seconds(Millis::now_wall(), at);
        let result = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await;
        self.acct.record("sqs.SendMessage", 0, 0.0, 0.0);
        result
            .map(|_| ())
            .map_err(|e| TriggerError(format!("SQS SendMessage: {}", sdk_error(&e))))
    }
}

/// Creates a standard trigger queue with a dead-letter queue behind it: a trigger received
/// `max_receive_count` times without success moves there (the batch stays pending in DynamoDB).
/// Returns (trigger queue URL, dead-letter queue URL). For tests and set-up scripts.
pub async fn create_queues(
    client: &aws_sdk_sqs::Client,
    name: &str,
    visibility_timeout_secs: u32,
    max_receive_count: u32,
) -> Result<(String, String), TriggerError> {
    let err =
        |op: &str, e: &dyn std::error::Error| TriggerError(format!("SQS {op}: {}", sdk_error(e)));
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(|e| err("CreateQueue", &e))?;
    let dlq_url = dlq.queue_url().unwrap_or_default().to_string();
    let attrs = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| err("GetQueueAttributes", &e))?;
    let dlq_arn = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| TriggerError("dead-letter queue has no ARN".into()))?;
    let policy = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive_count.to_string(),
    });
    let q = client
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_secs.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        .send()
        .await
        .map_err(|e| err("CreateQueue", &e))?;
    Ok((q.queue_url().unwrap_or_default().to_string(), dlq_url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_rounds_up_and_clamps() {
        assert_eq!(delay_seconds(Millis(1000), Millis(1000)), 0);
        assert_eq!(delay_seconds(Millis(1000), Millis(500)), 0);
        assert_eq!(delay_seconds(Millis(1000), Millis(1001)), 1);
        assert_eq!(delay_seconds(Millis(1000), Millis(9000)), 8);
        assert_eq!(delay_seconds(Millis(1000), Millis(9001)), 9);
        assert_eq!(delay_seconds(Millis(0), Millis(10_000_000)), 900);
    }
}
