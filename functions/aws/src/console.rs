//! `lull console --aws`: the operators' console (`lull_local::console`) against an AWS
//! deployment, with the caller's AWS credentials. Lists come from the table's due index (one
//! `Query` per shard and page), records from consistent `GetItem`s of the conversations shown,
//! tenants from the tenant item; pause and resume run `Intake::pause` (as `lull conversations
//! --aws`), a redrive flushes the conversation under the redrive claim (as `lull redrive --aws`
//! does for each conversation its DLQ names). Built with the `console` feature only (the
//! Lambdas never link it). docs/console.md states what a page costs in read units.

use std::time::Duration;

use lull_core::ports::SystemClock;
use lull_core::protocol::{FlushEnd, RedriveEnd};
use lull_core::{ConversationKey, Millis};
use lull_local::console::chart::Minute;
use lull_local::console::{Backend, BackendError, TenantScope};

use crate::tenants::DynamoTenants;
use crate::{AwsHandoff, AwsIntake, DynamoDbStore, SqsTrigger};

/// The console's view of a deployment.
pub struct AwsConsole {
    pub store: DynamoDbStore,
    pub intake: AwsIntake,
    /// The hand-off a redrive runs; `None` when the flush Lambda's sink settings (`LULL_SINK`)
    /// are not in the environment: the console then says so instead of redriving.
    pub handoff: Option<AwsHandoff>,
    pub tenants: DynamoTenants,
    pub horizon: Duration,
    pub table: String,
}

impl Backend for AwsConsole {
    type Store = DynamoDbStore;
    type Trigger = SqsTrigger;
    type Clock = SystemClock;

    fn store(&self) -> &DynamoDbStore {
        &self.store
    }

    fn intake(&self) -> &AwsIntake {
        &self.intake
    }

    async fn tenants(&self) -> Result<Vec<TenantScope>, BackendError> {
        let records = self.tenants.list().await.map_err(BackendError::of)?;
        Ok(TenantScope::from_records(&records))
    }

    async fn redrive(&self, key: &ConversationKey) -> Result<String, BackendError> {
        let Some(handoff) = &self.handoff else {
            return Ok(
                "not redriven: set the flush Lambda's LULL_SINK (and LULL_SINK_SECRET) \
                       where `lull console --aws` runs"
                    .into(),
            );
        };
        // The core's redrive: flushed again after each yield, until done or failed.
        let report = handoff.redrive(key).await;
        let n = report.handed_off.len();
        let why = report.failure().unwrap_or_default();
        Ok(match report.end {
            RedriveEnd::Error(e) => return Err(BackendError::of(e)),
            RedriveEnd::Failed(FlushEnd::Parked { error }) => format!(
                "{n} batch(es) handed off; the sink refused the next again: {}",
                error.unwrap_or_default()
            ),
            RedriveEnd::Failed(FlushEnd::SinkFailed { error, .. }) => {
                format!("{n} batch(es) handed off; the next failed: {error}")
            }
            RedriveEnd::Done(_) => format!("redrive handed off {n} batch(es)"),
            _ => format!("{n} batch(es) handed off; {why}"),
        })
    }

    fn activity(&self, _now: Millis) -> Option<Vec<Minute>> {
        None
    }

    fn horizon(&self) -> Duration {
        self.horizon
    }

    fn describe(&self) -> String {
        format!("AWS deployment, DynamoDB table {}", self.table)
    }
}
