//! The tenant store on one machine: a `tenants` table in the data directory's SQLite database,
//! beside the windows.
//!
//! Each row is one [`TenantRecord`] as JSON (the whole spec, secrets included: the data
//! directory is the server's own), keyed by tenant id. `lull tenants apply/remove` write it from
//! their own process while `lull serve` runs (SQLite WAL lets both in; the server's store thread
//! and this table never touch the same rows); the server reads it through a
//! [`CachedDirectory`](lull_ingest::CachedDirectory), so a change reaches it within the
//! directory's TTL. Every write is one `IMMEDIATE` transaction that reads the whole table,
//! checks the resulting set ([`apply_specs`]) and writes: all or nothing, and two concurrent
//! applies cannot both pass the check against a stale view.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lull_core::{ConversationKey, Millis, Policy, Provider};
use lull_ingest::tenant::{DirectoryError, LookupFuture};
use lull_ingest::tenant_apply::{busy_per_account, check_purge, held_claims, ApplyContext};
use lull_ingest::tenant_spec::{apply_specs, Applied};
use lull_ingest::{TenantRecord, TenantSource, TenantSpec};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::store::db_path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tenant_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// The tenant store failed or refused a change; the message says which and why.
#[derive(Debug, thiserror::Error)]
pub enum TenantStoreError {
    #[error("tenant store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stored tenant {id:?} is unreadable: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("{0}")]
    Refused(String),
    #[error("no tenant {0:?}")]
    NotFound(String),
}

/// The `tenants` table of a data directory.
#[derive(Clone, Debug)]
pub struct SqliteTenants {
    path: PathBuf,
}

impl SqliteTenants {
    /// Opens (creating if needed) the table in `data_dir`'s database.
    pub fn open(data_dir: &Path) -> Result<SqliteTenants, TenantStoreError> {
        // `lull tenants apply` may be the first to create the data directory: owner-only, as
        // `lull serve` makes it (`crate::private`).
        crate::private::create_dir(data_dir).map_err(|source| TenantStoreError::CreateDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        crate::private::create_database(&db_path(data_dir)).map_err(|source| {
            TenantStoreError::CreateDir {
                path: db_path(data_dir),
                source,
            }
        })?;
        let t = SqliteTenants {
            path: db_path(data_dir),
        };
        let conn = t.conn()?;
        conn.execute_batch(&format!("PRAGMA journal_mode=WAL; {SCHEMA}"))
            .map_err(|e| t.sql(e))?;
        Ok(t)
    }

    fn sql(&self, source: rusqlite::Error) -> TenantStoreError {
        TenantStoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn conn(&self) -> Result<Connection, TenantStoreError> {
        let conn = Connection::open(&self.path).map_err(|e| self.sql(e))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| self.sql(e))?;
        Ok(conn)
    }

    /// Every record, removed ones included, ordered by id.
    pub fn load_now(&self) -> Result<Vec<TenantRecord>, TenantStoreError> {
        read_all(&self.conn()?).map_err(|e| self.map(e))
    }

    fn map(&self, e: ReadError) -> TenantStoreError {
        match e {
            ReadError::Sql(e) => self.sql(e),
            ReadError::Corrupt { id, reason } => TenantStoreError::Corrupt { id, reason },
        }
    }

    /// Creates or updates every tenant of `specs` at once, after checking the whole resulting
    /// set; nothing is written when any check fails. `defaults` fill the policy fields specs
    /// leave out (resolved now and stored); an account another tenant dropped is given to its
    /// claimant only once its conversations hold no work and the drop is older than `refresh`
    /// (checked in this transaction, against this data directory's windows).
    pub fn apply(
        &self,
        specs: Vec<TenantSpec>,
        defaults: &Policy,
        now: Millis,
        refresh: Duration,
    ) -> Result<Applied, TenantStoreError> {
        self.write(|tx, mut records| {
            let claims = held_claims(&records, &specs);
            let busy = busy(tx, &claims)?;
            let cx = ApplyContext {
                defaults,
                now,
                refresh,
                busy: &busy,
            };
            let applied =
                apply_specs(&mut records, specs, &cx).map_err(TenantStoreError::Refused)?;
            for r in &records {
                if applied.changed().any(|id| *id == r.spec.id) {
                    put(tx, r)?;
                }
            }
            Ok(applied)
        })
    }

    /// Removes tenant `id`: its accounts are refused from the next reload on, and a tombstone
    /// keeps its sink for what it had accepted. With `purge`, the tombstone goes too, refused
    /// while a conversation of its accounts (or of those it holds) still holds work.
    pub fn remove(&self, id: &str, purge: bool, now: Millis) -> Result<(), TenantStoreError> {
        self.write(|tx, mut records| {
            let Some(r) = records.iter_mut().find(|r| r.spec.id == id) else {
                return Err(TenantStoreError::NotFound(id.into()));
            };
            if purge {
                let busy = busy(tx, &r.all_accounts())?;
                check_purge(r, &busy).map_err(TenantStoreError::Refused)?;
                tx.execute("DELETE FROM tenants WHERE id = ?1", params![id])
                    .map_err(ReadError::Sql)?;
                return Ok(());
            }
            if r.removed_at.is_none() {
                r.removed_at = Some(now);
                r.updated_at = now;
            }
            put(tx, r)
        })
    }

    /// Stores `specs` when this data directory never held tenants (the `[[tenants]]` of
    /// `lull.toml` seed a fresh data directory); returns whether it did.
    pub fn seed(
        &self,
        specs: Vec<TenantSpec>,
        defaults: &Policy,
        now: Millis,
    ) -> Result<bool, TenantStoreError> {
        let seeded: bool = self.write(|tx, records| {
            let done: Option<String> = tx
                .query_row(
                    "SELECT value FROM tenant_meta WHERE key = 'seeded'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(ReadError::Sql)?;
            if done.is_some() || !records.is_empty() || specs.is_empty() {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO tenant_meta (key, value) VALUES ('seeded', ?1)",
                params![now.rfc3339()],
            )
            .map_err(ReadError::Sql)?;
            Ok(true)
        })?;
        if seeded {
            self.apply(specs, defaults, now, Duration::ZERO)?;
        }
        Ok(seeded)
    }

    /// Records the running server's settings (`lull serve` at start-up), so that `lull tenants
    /// apply` resolves tenants' policies with the deployment's defaults, not its own shell's.
    pub fn record_deployment(&self, d: &Deployment) -> Result<(), TenantStoreError> {
        let json = serde_json::to_string(d).map_err(|e| TenantStoreError::Corrupt {
            id: "deployment".into(),
            reason: e.to_string(),
        })?;
        self.conn()?
            .execute(
                "INSERT INTO tenant_meta (key, value) VALUES ('deployment', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![json],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// The settings the last `lull serve` on this data directory recorded, if any.
    pub fn deployment(&self) -> Result<Option<Deployment>, TenantStoreError> {
        let json: Option<String> = self
            .conn()?
            .query_row(
                "SELECT value FROM tenant_meta WHERE key = 'deployment'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| TenantStoreError::Corrupt {
                id: "deployment".into(),
                reason: e.to_string(),
            })
        })
        .transpose()
    }

    /// Runs `f` over every record inside one `IMMEDIATE` transaction; commits when it succeeds.
    fn write<R>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, Vec<TenantRecord>) -> Result<R, TenantStoreError>,
    ) -> Result<R, TenantStoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let records = read_all(&tx).map_err(|e| self.map(e))?;
        let out = f(&tx, records)?;
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(out)
    }
}

/// What `lull serve` records of its settings for `lull tenants` (only ever gains fields).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// The default policy (`--quiet`, `--max-wait`, `--max-messages`, `--max-bytes`).
    pub defaults: Policy,
    /// `--tenant-refresh`, in ms.
    pub tenant_refresh_ms: u64,
}

/// How many conversations of each of `accounts` hold work (a record in the due index: an open
/// or paused window, a pending or parked batch), read in `conn`'s transaction. A data directory
/// no server has opened yet has no windows.
fn busy(
    conn: &Connection,
    accounts: &[(Provider, String)],
) -> Result<std::collections::HashMap<(Provider, String), usize>, ReadError> {
    if accounts.is_empty() {
        return Ok(Default::default());
    }
    let exists: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'conversations'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(ReadError::Sql)?;
    let mut keys = Vec::new();
    if exists.is_some() {
        let mut stmt = conn
            .prepare("SELECT key FROM conversations WHERE due_at IS NOT NULL")
            .map_err(ReadError::Sql)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(ReadError::Sql)?;
        for row in rows {
            let k = row.map_err(ReadError::Sql)?;
            let key = ConversationKey::from_storage_key(&k).map_err(|e| ReadError::Corrupt {
                id: k.clone(),
                reason: e.to_string(),
            })?;
            keys.push(key);
        }
    }
    Ok(busy_per_account(&keys, accounts))
}

enum ReadError {
    Sql(rusqlite::Error),
    Corrupt { id: String, reason: String },
}

impl From<ReadError> for TenantStoreError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Sql(source) => TenantStoreError::Sqlite {
                path: PathBuf::new(),
                source,
            },
            ReadError::Corrupt { id, reason } => TenantStoreError::Corrupt { id, reason },
        }
    }
}

fn read_all(conn: &Connection) -> Result<Vec<TenantRecord>, ReadError> {
    let mut stmt = conn
        .prepare_cached("SELECT id, record FROM tenants ORDER BY id")
        .map_err(ReadError::Sql)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(ReadError::Sql)?;
    let mut out = Vec::new();
    for row in rows {
        let (id, json) = row.map_err(ReadError::Sql)?;
        let rec: TenantRecord = serde_json::from_str(&json).map_err(|e| ReadError::Corrupt {
            id: id.clone(),
            reason: e.to_string(),
        })?;
        out.push(rec);
    }
    Ok(out)
}

fn put(tx: &rusqlite::Transaction<'_>, r: &TenantRecord) -> Result<(), TenantStoreError> {
    let json = serde_json::to_string(r).map_err(|e| TenantStoreError::Corrupt {
        id: r.spec.id.clone(),
        reason: e.to_string(),
    })?;
    tx.execute(
        "INSERT INTO tenants (id, record) VALUES (?1, ?2)
         ON CONFLICT(id) DO UPDATE SET record = excluded.record",
        params![r.spec.id, json],
    )
    .map_err(ReadError::Sql)?;
    Ok(())
}

impl TenantSource for SqliteTenants {
    fn load(&self) -> LookupFuture<'_, Vec<TenantRecord>> {
        let this = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.load_now())
                .await
                .map_err(|e| DirectoryError(e.to_string()))?
                .map_err(|e| DirectoryError(e.to_string()))
        })
    }
}

/// The tenant store of `data_dir` as a shared [`TenantSource`].
pub fn source(data_dir: &Path) -> Result<Arc<SqliteTenants>, TenantStoreError> {
    SqliteTenants::open(data_dir).map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(j: serde_json::Value) -> TenantSpec {
        serde_json::from_value(j).unwrap()
    }

    /// `lull tenants apply` before the first `lull serve` creates the data directory: owner-only
    /// like serve makes it, and the database (which holds the tenants' secrets) 0600, WAL
    /// files included.
    #[cfg(unix)]
    #[test]
    fn the_first_apply_creates_an_owner_only_data_directory() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("fresh");
        let store = SqliteTenants::open(&dir).unwrap();
        let secret = spec(serde_json::json!({"id": "a", "meta": {"app_secret": "s3cret"}}));
        store
            .apply(vec![secret], &Policy::default(), Millis(1), Duration::ZERO)
            .unwrap();
        assert_eq!(mode(&dir), 0o700);
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            files += 1;
        }
        assert!(files >= 1, "the database exists");
    }

    use lull_tenants::tenant_contract::{check_tenant_store, ContractFuture, TenantStoreUnderTest};

    impl TenantStoreUnderTest for SqliteTenants {
        fn apply(&self, specs: Vec<TenantSpec>, now: Millis) -> ContractFuture<'_, Applied> {
            let r = SqliteTenants::apply(self, specs, &Policy::default(), now, Duration::ZERO);
            Box::pin(async move { r.map_err(|e| e.to_string()) })
        }
        fn remove<'a>(&'a self, id: &'a str, purge: bool, now: Millis) -> ContractFuture<'a, ()> {
            let r = SqliteTenants::remove(self, id, purge, now);
            Box::pin(async move { r.map_err(|e| e.to_string()) })
        }
    }

    /// The tenant store contract (the same suite the DynamoDB store passes on moto).
    #[tokio::test]
    async fn the_sqlite_table_meets_the_tenant_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        check_tenant_store(&SqliteTenants::open(dir.path()).unwrap()).await;
    }

    #[test]
    fn apply_is_all_or_nothing_and_remove_leaves_a_tombstone() {
        let dir = tempfile::tempdir().unwrap();
        let t = SqliteTenants::open(dir.path()).unwrap();
        let d = Policy::default();
        let a = spec(
            serde_json::json!({"id": "a", "meta": {"phone_number_ids": ["1"], "app_secret": "x"}}),
        );
        let b = spec(
            serde_json::json!({"id": "b", "meta": {"phone_number_ids": ["2"], "app_secret": "y"}}),
        );
        let r = t
            .apply(vec![a.clone(), b.clone()], &d, Millis(1), Duration::ZERO)
            .unwrap();
        assert_eq!(r.created, ["a", "b"]);
        // One bad tenant in a file: nothing of it is written.
        let mut a2 = a.clone();
        a2.quiet = Some("2s".into());
        let bad = spec(
            serde_json::json!({"id": "c", "meta": {"phone_number_ids": ["2"], "app_secret": "z"}}),
        );
        let e = t
            .apply(vec![a2.clone(), bad], &d, Millis(2), Duration::ZERO)
            .unwrap_err();
        assert!(e.to_string().contains("\"2\""), "{e}");
        assert_eq!(t.load_now().unwrap()[0].spec.quiet, None);
        let r = t
            .apply(vec![a2.clone(), b.clone()], &d, Millis(3), Duration::ZERO)
            .unwrap();
        assert_eq!(
            (r.updated, r.unchanged),
            (vec!["a".into()], vec!["b".into()])
        );
        // Removal keeps a tombstone; its account cannot be claimed until purged.
        t.remove("b", false, Millis(4)).unwrap();
        let recs = t.load_now().unwrap();
        assert_eq!(recs[1].removed_at, Some(Millis(4)));
        let c = spec(
            serde_json::json!({"id": "c", "meta": {"phone_number_ids": ["2"], "app_secret": "z"}}),
        );
        assert!(t
            .apply(vec![c.clone()], &d, Millis(5), Duration::ZERO)
            .is_err());
        t.remove("b", true, Millis(6)).unwrap();
        assert!(t.apply(vec![c], &d, Millis(7), Duration::ZERO).is_ok());
        assert!(matches!(
            t.remove("nope", false, Millis(8)),
            Err(TenantStoreError::NotFound(_))
        ));
    }

    #[test]
    fn seed_only_fills_a_fresh_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let t = SqliteTenants::open(dir.path()).unwrap();
        let d = Policy::default();
        let a = spec(serde_json::json!({"id": "a", "meta": {"app_secret": "x"}}));
        assert!(t.seed(vec![a.clone()], &d, Millis(1)).unwrap());
        t.remove("a", true, Millis(2)).unwrap();
        assert!(!t.seed(vec![a], &d, Millis(3)).unwrap());
        assert!(t.load_now().unwrap().is_empty());
    }
}
