//! The core's two capabilities bound to the local adapters: appending (the webhook routes, the
//! ops routes, the console) and handing off (timers, sweep, redrive). Named here, below the
//! server that builds them, so the routes that take them need not import the server.

use lull_core::ports::SystemClock;
use lull_core::protocol::{Handoff, Intake};

use crate::store::SqliteStore;
use crate::timers::LocalTrigger;

/// The append capability bound to the local adapters (what the webhook routes use).
pub type LocalIntake = Intake<SqliteStore, LocalTrigger, SystemClock>;
/// The hand-off capability bound to the local adapters (timers, sweep, redrive).
pub type LocalHandoff<K> = Handoff<SqliteStore, LocalTrigger, K, SystemClock>;
