//! # lull-local
//!
//! lull on one machine: the same core protocol as the Lambdas, over
//! - [`store::SqliteStore`]: SQLite (WAL) with DynamoDB's conditional semantics;
//! - [`timers`]: an in-process timer heap as the `Trigger`, re-loaded from the store's due index
//!   at start-up so a restart resumes every pending window;
//! - [`sweep`]: the core's periodic sweep;
//! - [`ops`]: `/healthz` and `/metrics`, answered to loopback clients only;
//! - [`server`]: wiring and clean shutdown.

pub mod store;

pub use store::{Durability, SqliteStore};
