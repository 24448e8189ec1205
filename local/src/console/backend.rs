//! What the console reads and does, over a deployment: the local SQLite store and timers
//! ([`super::local`]), or an AWS deployment's table and queues (`lull console --aws`).
//!
//! The lists, a record and a pause are the same on both: a store's due index in keyset pages
//! ([`ConsoleIndex`]), its consistent read, and `Intake::pause` over that store. So they are
//! written once here, as [`Backend`]'s provided methods; a backend says which store and intake
//! it runs over and supplies only what differs (its tenants, its redrive, its chart).

use std::future::Future;
use std::time::Duration;

use lull_core::ports::{Clock, StoreError, Trigger, WindowStore};
use lull_core::protocol::{Intake, PauseOutcome};
use lull_core::turn::PauseReason;
use lull_core::{Conversation, ConversationKey, Millis};

use super::chart::Minute;
use super::{Cursor, IndexEntry, TenantScope};

/// A console backend failed (the store or the tenant store could not answer).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

impl BackendError {
    /// Any failure, by what it says.
    pub fn of(e: impl std::fmt::Display) -> Self {
        BackendError(e.to_string())
    }
}

/// A store the console lists from: keyset pages of its due index, never a scan (SQLite's
/// partial index; DynamoDB's sparse index, one `Query` per shard). Rows are
/// `(due_at, storage key)`.
pub trait ConsoleIndex: WindowStore {
    /// Up to `limit` rows after `after`, in (due_at, key) order, parked ones left out.
    fn due_page(
        &self,
        after: Option<(u64, String)>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(u64, String)>, StoreError>> + Send;
    /// Up to `limit` parked rows after storage key `after`, in key order.
    fn parked_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(u64, String)>, StoreError>> + Send;
}

/// What the console reads and does. Lists come from the due index only.
pub trait Backend: Send + Sync + 'static {
    /// The store lists and records come from.
    type Store: ConsoleIndex;
    /// The trigger and clock of the intake a pause runs through.
    type Trigger: Trigger;
    type Clock: Clock;

    fn store(&self) -> &Self::Store;
    /// The intake over [`Self::store`] a pause or resume runs through.
    fn intake(&self) -> &Intake<Self::Store, Self::Trigger, Self::Clock>;

    /// Every tenant (removed ones included).
    fn tenants(&self) -> impl Future<Output = Result<Vec<TenantScope>, BackendError>> + Send;
    /// Re-delivers the conversation's pending batches now, lifting a park or a backoff (the
    /// redrive claim, as `lull redrive` does); answers what it did.
    fn redrive(
        &self,
        key: &ConversationKey,
    ) -> impl Future<Output = Result<String, BackendError>> + Send;
    /// Hand-offs per minute over the last hour, oldest first (`None`: not available here).
    fn activity(&self, now: Millis) -> Option<Vec<Minute>>;
    /// The dedupe horizon the flush runs with (acknowledgement times follow from it).
    fn horizon(&self) -> Duration;
    /// Where this console looks ("lull serve, data directory ...", "AWS table ...").
    fn describe(&self) -> String;

    /// Up to `limit` due-index entries after `after`, in (due_at, key) order, parked ones left
    /// out.
    fn due_page(
        &self,
        after: Option<Cursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<IndexEntry>, BackendError>> + Send {
        async move {
            let after = after.map(|c| (c.due_at, c.key));
            entries(
                self.store()
                    .due_page(after, limit)
                    .await
                    .map_err(BackendError::of)?,
            )
        }
    }

    /// Up to `limit` parked conversations after key `after`, in key order.
    fn parked_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<IndexEntry>, BackendError>> + Send {
        async move {
            entries(
                self.store()
                    .parked_page(after, limit)
                    .await
                    .map_err(BackendError::of)?,
            )
        }
    }

    /// One conversation's record (one consistent read).
    fn load(
        &self,
        key: &ConversationKey,
    ) -> impl Future<Output = Result<Option<Conversation>, BackendError>> + Send {
        async move { self.store().load(key).await.map_err(BackendError::of) }
    }

    /// Pauses (`Some`) or resumes (`None`) hand-offs: `Intake::pause` (an admin pause), as the
    /// CLI does.
    fn pause(
        &self,
        key: &ConversationKey,
        pause_for: Option<Duration>,
    ) -> impl Future<Output = Result<PauseOutcome, BackendError>> + Send {
        async move {
            self.intake()
                .pause(key, pause_for, PauseReason::Admin)
                .await
                .map_err(BackendError::of)
        }
    }
}

/// Index rows (`(due_at, storage key)`, as the stores answer) as entries.
fn entries(rows: Vec<(u64, String)>) -> Result<Vec<IndexEntry>, BackendError> {
    rows.into_iter()
        .map(|(due_at, k)| {
            ConversationKey::from_storage_key(&k)
                .map(|key| IndexEntry { due_at, key })
                .map_err(BackendError::of)
        })
        .collect()
}
