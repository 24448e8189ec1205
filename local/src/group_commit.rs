//! The group-commit writer: one thread owns the SQLite connection and serves requests (jobs)
//! fed by a channel. It drains every request queued while it was busy, runs each inside one
//! transaction (each job under its own savepoint), commits once, and only then lets them all
//! answer: with `--durability full` one fsync serves the whole group. It knows nothing of
//! conversations; the window store (`store.rs`) and its record cache are one user of it.

use std::sync::mpsc;

use lull_core::ports::StoreError;
use rusqlite::Connection;

/// The most requests one transaction serves (bounds the latency one group adds).
const MAX_GROUP: usize = 512;

/// Called once the group's transaction committed (`Ok`) or failed (`Err`).
pub(crate) type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// One request for the store thread.
pub(crate) trait Job: Send {
    /// Runs inside the group's transaction; the answer waits for the commit.
    fn run(self: Box<Self>, conn: &Connection) -> Completion;
    /// The transaction could not even start.
    fn abort(self: Box<Self>, err: StoreError);
}

impl std::fmt::Debug for dyn Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

pub(crate) fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

/// The store thread: take a group of requests, run them in one transaction, commit, answer.
pub(crate) fn serve(conn: Connection, jobs: mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = run_cached(&conn, "BEGIN IMMEDIATE") {
            let err = unavailable(e);
            for job in group {
                job.abort(err.clone());
            }
            continue;
        }
        let (done, lost) = run_group(&conn, group);
        let committed = match lost {
            Some(e) => Err(e),
            None => run_cached(&conn, "COMMIT").map_err(unavailable),
        };
        if committed.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for complete in done {
            complete(committed.clone());
        }
    }
    // Every handle is gone: fold the WAL back into the database for a tidy data directory.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}

/// Runs a group's requests inside the open transaction, each under its own savepoint. SQLite
/// may roll the whole transaction back on its own (SQLITE_FULL, an I/O error, out of memory):
/// the requests already run are then lost with it, and the rest must not run at all, since a
/// savepoint outside a transaction starts (and its release commits) one of its own: such a
/// request would be written yet answered as failed with its group. So the group stops there:
/// the requests it did not run are answered with the error, and the error is the group's.
fn run_group(conn: &Connection, group: Vec<Box<dyn Job>>) -> (Vec<Completion>, Option<StoreError>) {
    let mut done = Vec::with_capacity(group.len());
    let mut jobs = group.into_iter();
    for job in jobs.by_ref() {
        done.push(job.run(conn));
        if conn.is_autocommit() {
            let lost = StoreError::Unavailable(
                "sqlite rolled the transaction back (disk full or I/O error)".into(),
            );
            for rest in jobs {
                rest.abort(lost.clone());
            }
            return (done, Some(lost));
        }
    }
    (done, None)
}

/// Runs a parameterless statement from the connection's statement cache: the store thread runs
/// four of these per request (transaction and savepoint), and `execute_batch` would parse each
/// one every time.
pub(crate) fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
}
