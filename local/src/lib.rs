//! # lull-local
//!
//! lull on one machine: the same core protocol as the Lambdas, over
//! - [`store::SqliteStore`]: SQLite (WAL) with DynamoDB's conditional semantics;
//! - [`timers`]: an in-process timer heap as the `Trigger`, re-loaded from the store's due index
//!   at start-up so a restart resumes every pending window;
//! - [`sweep`]: the core's periodic sweep;
//! - [`tenants`]: the tenant store, a table beside the windows;
//! - [`ops`]: `/healthz`, `/metrics` and `/redrive`, answered to loopback clients only;
//! - [`server`]: wiring and clean shutdown ([`shutdown`] is the signal the tasks share).

pub mod backoff;
pub mod ops;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod sweep;
pub mod tenants;
pub mod timers;

pub use backoff::Backoff;
pub use server::{Local, LocalBuffer, ServerError, Settings};
pub use store::{Durability, SqliteStore};
pub use sweep::SweepSettings;
pub use tenants::SqliteTenants;
pub use timers::LocalTrigger;
