//! `lull console --aws`: the operators' console (`lull_local::console`) against an AWS
//! deployment, with the caller's AWS credentials. Lists come from the table's due index (one
//! `Query` per shard and page), records from consistent `GetItem`s of the conversations shown,
//! tenants from the tenant item; pause and resume run `Intake::pause` (as `lull conversations
//! --aws`), a redrive flushes the conversation under the redrive claim (as `lull redrive --aws`
//! does for each conversation its DLQ names). Built with the `console` feature only (the
//! Lambdas never link it). docs/console.md states what a page costs in read units.

use std::time::Duration;

use lull_core::ports::WindowStore as _;
use lull_core::protocol::{FlushEnd, PauseOutcome, RedriveEnd};
use lull_core::turn::PauseReason;
use lull_core::{Conversation, ConversationKey, Millis};
use lull_local::console::chart::Minute;
use lull_local::console::{entries, Backend, BackendError, Cursor, IndexEntry, TenantScope};

use crate::tenants::DynamoTenants;
use crate::{AwsHandoff, AwsIntake, DynamoDbStore};

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

fn err(e: impl std::fmt::Display) -> BackendError {
    BackendError(e.to_string())
}

impl Backend for AwsConsole {
    async fn tenants(&self) -> Result<Vec<TenantScope>, BackendError> {
        let records = self.tenants.list().await.map_err(err)?;
        Ok(TenantScope::from_records(&records))
    }

    async fn due_page(
        &self,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, BackendError> {
        let after = after.map(|c| (c.due_at, c.key));
        entries(
            self.store
                .console_due_page(after, limit)
                .await
                .map_err(err)?,
        )
    }

    async fn parked_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, BackendError> {
        entries(
            self.store
                .console_parked_page(after, limit)
                .await
                .map_err(err)?,
        )
    }

    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, BackendError> {
        self.store.load(key).await.map_err(err)
    }

    async fn pause(
        &self,
        key: &ConversationKey,
        pause_for: Option<Duration>,
    ) -> Result<PauseOutcome, BackendError> {
        self.intake
            .pause(key, pause_for, PauseReason::Admin)
            .await
            .map_err(err)
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
            RedriveEnd::Error(e) => return Err(err(e)),
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
