//! # lull-local
//!
//! lull on one machine: the same core protocol as the Lambdas, over
//! - [`store::SqliteStore`]: SQLite (WAL) with DynamoDB's conditional semantics, written
//!   through a group-commit writer (`group_commit`: one thread, one transaction per group);
//! - [`timers`]: an in-process timer heap as the `Trigger`, re-loaded from the store's due index
//!   at start-up so a restart resumes every pending window;
//! - [`sweep`]: the core's periodic sweep;
//! - [`tenants`]: the tenant store, a table beside the windows;
//! - [`ops`]: `/healthz`, `/metrics` and `/redrive`, on their own listener (loopback by default);
//! - [`console`]: the operators' console (HTML pages and actions on the ops listener);
//! - [`limit`]: the bound on webhook requests in flight (503 + `Retry-After` beyond it);
//! - [`server`]: wiring and clean shutdown (one `CancellationToken` the tasks share).
//!
//! Role and imports: an adapter. It imports the core (`lull-core`) and the edges (`lull-ingest`,
//! `lull-tenants` through it, `lull-sink`), never a binary, the AWS adapter or the simulator; the
//! `lull` command imports it.

pub mod capability;
pub mod console;
mod group_commit;
pub mod limit;
pub mod ops;
pub mod ops_guard;
pub mod private;
pub mod record_cache;
pub mod server;
pub mod store;
pub mod sweep;
pub mod tenants;
pub mod timers;

pub use record_cache::CacheLimits;
pub use server::{Local, LocalHandoff, LocalIntake, ServerError, Settings};
pub use store::{Durability, SqliteStore};
pub use sweep::SweepSettings;
pub use tenants::SqliteTenants;
pub use timers::LocalTrigger;
