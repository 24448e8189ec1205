//! The console over `lull serve`'s own store: lists from the SQLite due index (a partial index
//! on `(due_at, key)`, read with keyset pages: `store::CONSOLE_DUE_PAGE`,
//! `store::CONSOLE_PARKED_PAGE`), records through the store (its cache, then SQLite), actions
//! through the server's own timers (a redrive claim, as `POST /redrive` and `lull redrive` do)
//! and intake (`Intake::pause`, as `lull conversations` does), tenants from the data directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lull_core::ports::{StoreError, SystemClock, WindowStore as _};
use lull_core::{ConversationKey, Millis};
use metrics_exporter_prometheus::PrometheusHandle;

use super::chart::{Minute, Samples, Totals};
use super::{Backend, BackendError, ConsoleIndex, TenantScope};
use crate::capability::LocalIntake;
use crate::store::SqliteStore;
use crate::tenants::SqliteTenants;
use crate::timers::{LocalTrigger, TimerQueue};

/// The console's view of a running `lull serve`.
pub struct LocalConsole {
    pub store: SqliteStore,
    pub timers: Arc<TimerQueue>,
    pub intake: Arc<LocalIntake>,
    /// The data directory's tenant store; with no tenant in it, the single tenant of flags.
    pub tenants: Option<Arc<SqliteTenants>>,
    pub metrics: Option<PrometheusHandle>,
    pub samples: Arc<Samples>,
    pub horizon: Duration,
    pub data_dir: PathBuf,
}

impl LocalConsole {
    /// Samples the hand-off counters (a background task calls this every
    /// [`super::chart::SAMPLE_EVERY`]; page loads too).
    pub fn sample(&self) {
        if let Some(h) = &self.metrics {
            self.samples
                .record(Millis::now_wall(), Totals::parse(&h.render()));
        }
    }
}

impl ConsoleIndex for SqliteStore {
    async fn due_page(
        &self,
        after: Option<(u64, String)>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        self.console_due_page(after, limit).await
    }

    async fn parked_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        self.console_parked_page(after, limit).await
    }
}

impl Backend for Arc<LocalConsole> {
    type Store = SqliteStore;
    type Trigger = LocalTrigger;
    type Clock = SystemClock;

    fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn intake(&self) -> &LocalIntake {
        &self.intake
    }

    async fn tenants(&self) -> Result<Vec<TenantScope>, BackendError> {
        let Some(source) = self.tenants.clone() else {
            return Ok(vec![TenantScope::everything("default")]);
        };
        let records = tokio::task::spawn_blocking(move || source.load_now())
            .await
            .map_err(BackendError::of)?
            .map_err(BackendError::of)?;
        Ok(TenantScope::from_records(&records))
    }

    async fn redrive(&self, key: &ConversationKey) -> Result<String, BackendError> {
        let now = Millis::now_wall();
        match self.store.load(key).await.map_err(BackendError::of)? {
            None => Ok("no such conversation".into()),
            Some(c) if c.pending.is_empty() && !c.is_past_due(now) => {
                Ok("nothing pending to redrive".into())
            }
            Some(c) => {
                let n = c.pending.len();
                self.timers.redrive(std::slice::from_ref(&c), now);
                tracing::info!(conversations = 1, "redrive requested (console)");
                Ok(format!("redrive started for {n} pending batch(es)"))
            }
        }
    }

    fn activity(&self, now: Millis) -> Option<Vec<Minute>> {
        self.metrics.as_ref()?;
        self.sample();
        Some(self.samples.minutes(now))
    }

    fn horizon(&self) -> Duration {
        self.horizon
    }

    fn describe(&self) -> String {
        format!("lull serve, data directory {}", self.data_dir.display())
    }
}
