//! `SqliteStore`: the window store on one machine, with DynamoDB's conditional semantics.
//!
//! Two tables: `conversations` (the record as JSON, its `ver`, and a nullable `due_at` with a
//! partial index: the sweep's sparse due-time index) and `dedupe` (keyed by conversation storage
//! key and message id, with a stored `expires_at` compared when read, never a TTL). An append is
//! one conditional write of the record alone (the record holds its messages' ids); the flush
//! writes a batch's dedupe rows (`remember`) before the write acknowledging it, as on DynamoDB.
//!
//! All SQLite work runs on one dedicated thread fed by a channel (`crate::group_commit`), for
//! two reasons: rusqlite's `Connection` is blocking and not `Sync`, and one writer lets us *group
//! commit*: the thread
//! drains every request queued while it was busy, runs each in its own savepoint inside one
//! transaction, commits once, and only then answers them all. With `--durability full` that is
//! one fsync for the whole group instead of one per message; with `normal` (WAL,
//! `synchronous=NORMAL`) a committed write survives `kill -9` of the process at once, which is
//! what "2xx means stored" requires.
//!
//! In front of it, a bounded write-through cache of the records this process committed
//! ([`crate::record_cache`]): a `load` of a recently written conversation is a map lookup on the
//! caller's thread. Conditional writes are still decided by SQLite; the cache is updated by the
//! store thread after the commit and before the answer, and forgets a conversation whose write
//! failed or was refused.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread;

use lull_core::ports::{DedupeRecord, StoreError, WindowStore, Written};
use lull_core::window::PARKED;
use lull_core::{Conversation, ConversationKey, Millis};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::group_commit::{run_cached, serve, unavailable, Completion, Job};
use crate::record_cache::{CacheLimits, Cached, Leftovers, RecordCache};

/// How hard a commit tries to reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: a commit survives a process crash (`kill -9`); the last
    /// commits before a power loss may be lost.
    #[default]
    Normal,
    /// WAL with `synchronous=FULL`: every commit is fsynced; survives power loss.
    Full,
}

impl Durability {
    pub fn parse(s: &str) -> Option<Durability> {
        match s {
            "normal" => Some(Durability::Normal),
            "full" => Some(Durability::Full),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Normal => "normal",
            Durability::Full => "full",
        }
    }
}

/// The store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open SQLite database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot start the store thread: {0}")]
    Thread(std::io::Error),
}

/// The database file inside a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("lull.db")
}

/// The SQLite `WindowStore`. Cheap to clone: clones share the store thread, which stops when
/// the last clone is dropped.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Box<dyn Job>>,
    records: Arc<RecordCache>,
}

struct Call<F, R> {
    f: F,
    /// The answer, with what the cache displaced (freed by the caller, off the store thread).
    reply: oneshot::Sender<(Result<R, StoreError>, Leftovers)>,
    /// The conversation whose record the request reads or writes, and the cache mirroring it:
    /// updated once the transaction's fate is known (see `record_cache`).
    record: Option<(ConversationKey, Arc<RecordCache>)>,
}

/// What a request learnt about its conversation's committed record, for the cache.
enum Fill {
    /// Nothing to record (a read that is decoded on the caller's side).
    Keep,
    /// Once committed, the database holds this for the conversation.
    Put(Cached),
    /// The cache may be behind (a conditional write was refused): forget the conversation.
    Forget,
}

impl<F, R> Job for Call<F, R>
where
    F: FnOnce(&Connection) -> Result<(R, Fill), StoreError> + Send,
    R: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Completion {
        let Call { f, reply, record } = *self;
        // A savepoint per request: a request that fails half-way leaves nothing behind, and the
        // others in the group still commit.
        let result = match run_cached(conn, "SAVEPOINT op") {
            Err(e) => Err(unavailable(e)),
            Ok(()) => {
                let r = f(conn);
                let end = if r.is_ok() {
                    run_cached(conn, "RELEASE op")
                } else {
                    run_cached(conn, "ROLLBACK TO op").and_then(|()| run_cached(conn, "RELEASE op"))
                };
                match end {
                    Ok(()) => r,
                    Err(e) => Err(unavailable(e)),
                }
            }
        };
        Box::new(move |committed| {
            let out = match committed {
                Ok(()) => result,
                Err(e) => Err(e),
            };
            // The cache follows the commit, before the caller hears of it; on any failure the
            // database is the only truth left.
            let (out, fill) = match out {
                Ok((r, fill)) => (Ok(r), fill),
                Err(e) => (Err(e), Fill::Forget),
            };
            let mut leftovers = Leftovers::default();
            if let Some((key, cache)) = record {
                match fill {
                    Fill::Keep => {}
                    Fill::Put(value) => leftovers = cache.put(key, value),
                    Fill::Forget => cache.forget(&key),
                }
            }
            let _ = reply.send((out, leftovers));
        })
    }

    fn abort(self: Box<Self>, err: StoreError) {
        if let Some((key, cache)) = self.record {
            cache.forget(&key);
        }
        let _ = self.reply.send((Err(err), Leftovers::default()));
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// SQLite integers are signed: clamp (times past year 292 million are "never").
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversations (
    key     TEXT PRIMARY KEY NOT NULL,
    ver     INTEGER NOT NULL,
    due_at  INTEGER,
    record  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversations_due ON conversations (due_at, key)
    WHERE due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS dedupe (
    key         TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    gen         INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (key, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_expiry ON dedupe (expires_at);
";

/// The console's list query (`?1`: the parked position, `?2, ?3`: the page cursor, `?4`: the
/// page size): a range of the partial index `conversations_due`, which holds only
/// conversations with an open window or a pending batch.
pub const CONSOLE_DUE_PAGE: &str = "SELECT due_at, key FROM conversations \
    WHERE due_at IS NOT NULL AND due_at < ?1 AND (due_at, key) > (?2, ?3) \
    ORDER BY due_at, key LIMIT ?4";

/// The console's parked list (`?1`: the parked position, `?2`: the key cursor, `?3`: the page
/// size): one `due_at` value of the partial index, in key order.
pub const CONSOLE_PARKED_PAGE: &str = "SELECT due_at, key FROM conversations \
    WHERE due_at = ?1 AND key > ?2 ORDER BY key LIMIT ?3";

impl SqliteStore {
    /// Opens (creating if needed) the store under `data_dir`, with the default record cache.
    pub fn open(data_dir: &Path, durability: Durability) -> Result<SqliteStore, OpenError> {
        SqliteStore::open_with(data_dir, durability, CacheLimits::default())
    }

    /// Opens the store with a record cache of at most `cache` (`CacheLimits::OFF`: none).
    pub fn open_with(
        data_dir: &Path,
        durability: Durability,
        cache: CacheLimits,
    ) -> Result<SqliteStore, OpenError> {
        crate::private::create_dir(data_dir).map_err(|source| OpenError::CreateDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = db_path(data_dir);
        crate::private::create_database(&path).map_err(|source| OpenError::CreateDir {
            path: path.clone(),
            source,
        })?;
        let sqlite = |source| OpenError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(sqlite)?;
        let sync = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite)?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; {SCHEMA}"
        ))
        .map_err(sqlite)?;
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        thread::Builder::new()
            .name("lull-sqlite".into())
            .spawn(move || serve(conn, rx))
            .map_err(OpenError::Thread)?;
        Ok(SqliteStore {
            jobs: tx,
            records: Arc::new(RecordCache::new(cache)),
        })
    }

    /// Runs `f` on the store thread inside a transaction; answers after the commit.
    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.send(move |conn| f(conn).map(|r| (r, Fill::Keep)), None)
            .await
    }

    /// [`Self::call`] for a request on `key`'s record: `f` says what the cache learns from it.
    async fn call_on<R: Send + 'static>(
        &self,
        key: &ConversationKey,
        f: impl FnOnce(&Connection) -> Result<(R, Fill), StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.send(f, Some((key.clone(), self.records.clone())))
            .await
    }

    async fn send<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<(R, Fill), StoreError> + Send + 'static,
        record: Option<(ConversationKey, Arc<RecordCache>)>,
    ) -> Result<R, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(Call { f, reply, record }))
            .map_err(|_| StoreError::Unavailable("store closed".into()))?;
        let (out, leftovers) = answer
            .await
            .map_err(|_| StoreError::Unavailable("store thread stopped".into()))?;
        drop(leftovers);
        out
    }

    /// Every conversation with something to do (open window or pending batch), oldest due first:
    /// what start-up re-arms and what `lull inspect` lists.
    pub async fn scheduled(&self) -> Result<Vec<Conversation>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT record FROM conversations WHERE due_at IS NOT NULL \
                     ORDER BY due_at, key",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for json in rows {
                out.push(decode(&json.map_err(unavailable)?)?);
            }
            Ok(out)
        })
        .await
    }

    /// One console page of the due index: up to `limit` conversations after `after` in
    /// (due_at, key) order, parked ones left out ([`CONSOLE_DUE_PAGE`]: a range of the partial
    /// index, never a scan of the table).
    pub async fn console_due_page(
        &self,
        after: Option<(u64, String)>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let (due, key) = after.map_or((i64::MIN, String::new()), |(d, k)| (to_i64(d), k));
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(CONSOLE_DUE_PAGE).map_err(unavailable)?;
            let rows = stmt
                .query_map(
                    params![to_i64(PARKED.0), due, key, to_i64(limit as u64)],
                    |r| Ok((to_u64(r.get(0)?), r.get::<_, String>(1)?)),
                )
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    /// One console page of parked conversations: up to `limit` after key `after`, in key order
    /// ([`CONSOLE_PARKED_PAGE`]: one equality range of the partial index).
    pub async fn console_parked_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let after = after.unwrap_or_default();
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(CONSOLE_PARKED_PAGE)
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(
                    params![to_i64(PARKED.0), after, to_i64(limit as u64)],
                    |r| Ok((to_u64(r.get(0)?), r.get::<_, String>(1)?)),
                )
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    /// Deletes up to `limit` dedupe records that expired before `now`; returns how many.
    pub async fn purge_expired(&self, now: Millis, limit: usize) -> Result<usize, StoreError> {
        self.call(move |conn| {
            conn.prepare_cached(
                "DELETE FROM dedupe WHERE (key, message_id) IN \
                 (SELECT key, message_id FROM dedupe WHERE expires_at < ?1 LIMIT ?2)",
            )
            .and_then(|mut s| s.execute(params![to_i64(now.0), to_i64(limit as u64)]))
            .map_err(unavailable)
        })
        .await
    }

    /// Number of stored dedupe records.
    pub async fn dedupe_len(&self) -> Result<u64, StoreError> {
        self.call(|conn| {
            conn.query_row("SELECT count(*) FROM dedupe", [], |r| r.get::<_, i64>(0))
                .map(to_u64)
                .map_err(unavailable)
        })
        .await
    }
}

fn decode(json: &str) -> Result<Conversation, StoreError> {
    serde_json::from_str(json).map_err(corrupt)
}

/// The current (version, record JSON) of `key`.
fn current(conn: &Connection, key: &str) -> Result<Option<(u64, String)>, StoreError> {
    conn.prepare_cached("SELECT ver, record FROM conversations WHERE key = ?1")
        .and_then(|mut s| {
            s.query_row([key], |r| Ok((to_u64(r.get(0)?), r.get::<_, String>(1)?)))
                .optional()
        })
        .map_err(unavailable)
}

/// Writes `row` if the stored version is `expected` (`None`: no record), in one statement, so
/// SQLite decides the condition where it finds the row; `false`: the condition failed and
/// nothing was written.
fn put_if(conn: &Connection, expected: Option<u64>, row: &Row) -> Result<bool, StoreError> {
    let changed = match expected {
        None => conn
            .prepare_cached(
                "INSERT INTO conversations (key, ver, due_at, record) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![row.key, to_i64(row.ver), row.due_at, row.json])),
        Some(ver) => conn
            .prepare_cached(
                "UPDATE conversations SET ver = ?2, due_at = ?3, record = ?4 \
                 WHERE key = ?1 AND ver = ?5",
            )
            .and_then(|mut s| {
                s.execute(params![
                    row.key,
                    to_i64(row.ver),
                    row.due_at,
                    row.json,
                    to_i64(ver)
                ])
            }),
    }
    .map_err(unavailable)?;
    Ok(changed == 1)
}

/// A conversation record encoded on the caller's side, so the store thread does no JSON work.
struct Row {
    key: String,
    ver: u64,
    due_at: Option<i64>,
    json: String,
}

impl Row {
    fn of(c: &Conversation) -> Result<Row, StoreError> {
        Ok(Row {
            key: c.key.storage_key(),
            ver: c.ver,
            due_at: c.index_due().map(|d| to_i64(d.0)),
            json: serde_json::to_string(c).map_err(corrupt)?,
        })
    }
}

fn conflict(json: Option<String>) -> Result<Option<Box<Conversation>>, StoreError> {
    json.map(|j| decode(&j).map(Box::new)).transpose()
}

impl SqliteStore {
    /// Writes `next` if the stored version is `expected` (`None`: no record): what both
    /// `append` and `replace` are.
    async fn put_if_version(
        &self,
        expected: Option<u64>,
        next: &Conversation,
    ) -> Result<Written, StoreError> {
        let row = Row::of(next)?;
        let cached = Cached::Record(Arc::new(next.clone()), row.json.len());
        let raw = self
            .call_on(&next.key, move |conn| {
                // The row goes back with the answer, to be freed where it was made.
                if put_if(conn, expected, &row)? {
                    return Ok(((None, row), Fill::Put(cached)));
                }
                // Refused: the record is read back only to report the conflict.
                let found = current(conn, &row.key)?.map(|(_, j)| j);
                Ok(((Some(found), row), Fill::Forget))
            })
            .await?
            .0;
        match raw {
            None => Ok(Written::Ok),
            Some(json) => Ok(Written::Conflict(conflict(json)?)),
        }
    }
}

impl WindowStore for SqliteStore {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        if let Some(hit) = self.records.get(key) {
            return Ok(hit);
        }
        let k = key.storage_key();
        let json = self
            .call_on(key, move |conn| {
                // A record read here is decoded on the caller's side and not cached (its next
                // write caches it); an absence is, until a write creates the record.
                Ok(match current(conn, &k)? {
                    Some((_, json)) => (Some(json), Fill::Keep),
                    None => (None, Fill::Put(Cached::Absent)),
                })
            })
            .await?;
        json.map(|j| decode(&j)).transpose()
    }

    async fn append(
        &self,
        expected: Option<u64>,
        next: &Conversation,
    ) -> Result<Written, StoreError> {
        self.put_if_version(expected, next).await
    }

    async fn seen(
        &self,
        key: &ConversationKey,
        message_id: &str,
        now: Millis,
    ) -> Result<Option<DedupeRecord>, StoreError> {
        let (dkey, mid) = (key.storage_key(), message_id.to_string());
        let found = self
            .call(move |conn| {
                conn.prepare_cached(
                    "SELECT gen, expires_at FROM dedupe WHERE key = ?1 AND message_id = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![dkey, mid], |r| {
                        Ok((to_u64(r.get(0)?), to_u64(r.get(1)?)))
                    })
                    .optional()
                })
                .map_err(unavailable)
            })
            .await?;
        Ok(found
            .filter(|&(_, expires_at)| expires_at >= now.0)
            .map(|(gen, expires_at)| DedupeRecord {
                key: key.clone(),
                message_id: message_id.to_string(),
                gen,
                expires_at: Millis(expires_at),
            }))
    }

    async fn remember(&self, records: &[DedupeRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let rows: Vec<(String, String, i64, i64)> = records
            .iter()
            .map(|d| {
                (
                    d.key.storage_key(),
                    d.message_id.clone(),
                    to_i64(d.gen),
                    to_i64(d.expires_at.0),
                )
            })
            .collect();
        // One call runs under its own savepoint (see `Call::run`): all rows land or none.
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "INSERT INTO dedupe (key, message_id, gen, expires_at) \
                     VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (key, message_id) DO UPDATE SET gen = excluded.gen, \
                     expires_at = excluded.expires_at",
                )
                .map_err(unavailable)?;
            for (k, m, g, e) in &rows {
                stmt.execute(params![k, m, g, e]).map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    async fn replace(&self, expected: u64, next: &Conversation) -> Result<Written, StoreError> {
        self.put_if_version(Some(expected), next).await
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<ConversationKey>, StoreError> {
        let keys = self
            .call(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT key FROM conversations WHERE due_at IS NOT NULL AND due_at <= ?1 \
                         ORDER BY due_at, key LIMIT ?2",
                    )
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![to_i64(now.0), to_i64(limit as u64)], |r| {
                        r.get::<_, String>(0)
                    })
                    .map_err(unavailable)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
            })
            .await?;
        keys.iter()
            .map(|k| ConversationKey::from_storage_key(k).map_err(corrupt))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_core::{Message, Policy, Provider};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_meets_the_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
        lull_core::contract::check_all(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_contract_holds_with_a_tiny_cache_and_without_one() {
        for limits in [
            CacheLimits {
                entries: 4,
                bytes: 1 << 20,
            },
            CacheLimits::OFF,
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let store =
                SqliteStore::open_with(dir.path(), Durability::Normal, limits).expect("open");
            lull_core::contract::check_all(&store).await;
        }
    }

    fn key(i: usize) -> ConversationKey {
        ConversationKey::new(Provider::Meta, "acct", format!("55119999{i:05}"))
    }

    fn with_message(conv: Conversation, id: &str, now: Millis) -> Conversation {
        conv.plan_append(
            Message::text(id, "u", "hello"),
            &Policy::default(),
            now,
            &mut || 7,
        )
        .expect("plan_append")
        .next
    }

    /// What SQLite itself holds for `key`, read on a connection of its own.
    fn in_database(db: &Connection, key: &ConversationKey) -> Option<Conversation> {
        current(db, &key.storage_key())
            .expect("read")
            .map(|(_, json)| decode(&json).expect("decode"))
    }

    /// Creates, appends, refused writes and re-reads over more conversations than a tiny cache
    /// holds (entries are evicted and promoted all along): after every step, `load` gives
    /// exactly what the database holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn load_agrees_with_the_database_through_evictions_and_conflicts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = CacheLimits {
            entries: 6,
            bytes: 1 << 20,
        };
        let store = SqliteStore::open_with(dir.path(), Durability::Normal, limits).expect("open");
        let db = Connection::open(db_path(dir.path())).expect("reader");
        let mut rng = fastrand::Rng::with_seed(15);
        for step in 0..600u64 {
            let k = key(rng.usize(..16));
            let now = Millis(1_000_000 + step);
            let loaded = store.load(&k).await.expect("load");
            assert_eq!(
                loaded,
                in_database(&db, &k),
                "step {step}: before the write"
            );
            let id = format!("m{step}");
            match (loaded, rng.u8(..4)) {
                (None, _) => {
                    let next = with_message(Conversation::fresh(k.clone(), now), &id, now);
                    let r = store.append(None, &next).await.expect("create");
                    assert_eq!(r, Written::Ok, "step {step}");
                }
                // A stale expected version: refused, nothing written.
                (Some(c), 0) => {
                    let next = with_message(c.clone(), &id, now);
                    let r = store.replace(c.ver - 1, &next).await.expect("stale write");
                    assert!(
                        matches!(r, Written::Conflict(Some(_))),
                        "step {step}: {r:?}"
                    );
                }
                // A create over an existing record: refused too.
                (Some(_), 1) => {
                    let next = with_message(Conversation::fresh(k.clone(), now), &id, now);
                    let r = store.append(None, &next).await.expect("create again");
                    assert!(
                        matches!(r, Written::Conflict(Some(_))),
                        "step {step}: {r:?}"
                    );
                }
                (Some(c), _) => {
                    let ver = c.ver;
                    let r = store
                        .append(Some(ver), &with_message(c, &id, now))
                        .await
                        .expect("append");
                    assert_eq!(r, Written::Ok, "step {step}");
                }
            }
            assert_eq!(
                store.load(&k).await.expect("load"),
                in_database(&db, &k),
                "step {step}: after the write"
            );
        }
        let (entries, _) = store.records.size();
        assert!(entries <= limits.entries, "{entries} cached");
    }

    /// A write whose statement fails (SQLite may not grow the file) is answered with an error
    /// and leaves no trace in the cache: `load` gives what the database still holds, the retry is
    /// decided against it, and a reopened store reads the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_never_reaches_the_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Normal).expect("open");
        let k = key(1);
        let now = Millis(1_000_000);
        let first = with_message(Conversation::fresh(k.clone(), now), "m1", now);
        assert_eq!(
            store.append(None, &first).await.expect("create"),
            Written::Ok
        );
        assert_eq!(store.load(&k).await.expect("load").as_ref(), Some(&first));

        let pages = store
            .call(|conn| {
                conn.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
                    .map_err(unavailable)
            })
            .await
            .expect("page_count");
        let cap = move |n: i64| {
            move |conn: &Connection| {
                conn.query_row(&format!("PRAGMA max_page_count = {n}"), [], |_| Ok(()))
                    .map_err(unavailable)
            }
        };
        store.call(cap(pages)).await.expect("cap the file");
        let mut big = first.clone();
        for i in 0..40 {
            big = with_message(big, &format!("big{i}"), now);
        }
        for m in big.window.iter_mut().flat_map(|w| w.messages.iter_mut()) {
            m.text = Some("x".repeat(4_000));
        }
        let refused = store.append(Some(first.ver), &big).await;
        assert!(refused.is_err(), "a write past max_page_count: {refused:?}");
        assert_eq!(store.load(&k).await.expect("load").as_ref(), Some(&first));

        store.call(cap(1 << 30)).await.expect("uncap");
        let retried = store.append(Some(first.ver), &big).await.expect("retry");
        assert_eq!(retried, Written::Ok);
        assert_eq!(store.load(&k).await.expect("load").as_ref(), Some(&big));
        drop(store);
        let reopened = SqliteStore::open(dir.path(), Durability::Normal).expect("reopen");
        assert_eq!(reopened.load(&k).await.expect("load").as_ref(), Some(&big));
    }

    /// When SQLite rolls a group's transaction back by itself, the requests after that point are
    /// not run outside it (a savepoint there would start and commit a transaction of its own):
    /// every request of the group is answered with the error and none of its writes is left.
    #[test]
    fn a_group_whose_transaction_sqlite_rolled_back_writes_nothing_and_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join("g.db")).expect("open");
        conn.execute_batch("CREATE TABLE t (x INTEGER)")
            .expect("table");
        let (jobs, rx) = mpsc::channel::<Box<dyn Job>>();
        let mut answers = Vec::new();
        let mut queue = |f: fn(&Connection) -> Result<((), Fill), StoreError>| {
            let (reply, answer) = oneshot::channel();
            jobs.send(Box::new(Call {
                f,
                reply,
                record: None,
            }))
            .expect("queue");
            answers.push(answer);
        };
        let insert = |conn: &Connection| {
            conn.execute("INSERT INTO t VALUES (1)", [])
                .map(|_| ((), Fill::Keep))
                .map_err(unavailable)
        };
        queue(insert);
        // What SQLite does on SQLITE_FULL or an I/O error in the middle of a statement.
        queue(|conn: &Connection| {
            conn.execute_batch("ROLLBACK").map_err(unavailable)?;
            Ok(((), Fill::Keep))
        });
        queue(insert);
        drop(jobs);
        // Every job is queued before the store thread starts: they form one group.
        serve(conn, rx);
        for (i, answer) in answers.into_iter().enumerate() {
            let (out, _) = answer.blocking_recv().expect("answered");
            assert!(
                out.is_err(),
                "request {i} of the rolled-back group: {out:?}"
            );
        }
        let check = Connection::open(dir.path().join("g.db")).expect("reopen");
        let rows: i64 = check
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 0, "a request of the failed group was written");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_durability_meets_the_contract_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SqliteStore::open(dir.path(), Durability::Full).expect("open");
            lull_core::contract::check_all(&store).await;
        }
        let store = SqliteStore::open(dir.path(), Durability::Full).expect("reopen");
        assert!(!store.scheduled().await.expect("scheduled").is_empty());
        assert!(store.dedupe_len().await.expect("dedupe") > 0);
        let purged = store
            .purge_expired(Millis(u64::MAX / 2), 10_000)
            .await
            .expect("purge");
        assert!(purged > 0);
        assert_eq!(store.dedupe_len().await.expect("dedupe"), 0);
    }
}
