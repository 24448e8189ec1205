//! # lull-aws
//!
//! lull on AWS: the adapters and the thin library behind the Lambdas.
//!
//! - [`DynamoDbStore`]: the `WindowStore` on one DynamoDB table (see `docs/dynamodb.md`).
//! - [`SqsTrigger`]: delayed wake-ups as SQS messages (`DelaySeconds`, rounded up, 0..=900).
//! - [`SqsSink`] and [`BatchSink`]: where batches go (an SQS FIFO queue, or HTTP via `lull-sink`).
//! - [`flush::handle_sqs_event`]: the flush Lambda's handler (per-record failures).
//! - [`redrive::redrive`]: replays the triggers in the dead-letter queue (`lull redrive`).
//! - [`Accounting`]: counts requests and consumed capacity units per operation, and the sizes of
//!   record writes ([`record_sizes::RecordSizes`]).
//! - [`config::Settings`]: configuration from environment variables, validated once;
//!   [`wiring`] builds the adapters from it.
//! - [`tenants::DynamoTenants`]: tenants in the table, their secrets in Secrets Manager.
//!
//! Role and imports: an adapter. It imports the core (`lull-core`) and the edges (`lull-ingest`,
//! `lull-tenants`, `lull-sink`), never a binary or the simulator; the Lambdas (`functions/*/`)
//! and `lull --features aws` import it. Its `console` feature (`lull console --aws` only) adds
//! the local adapter's console; the Lambdas never enable it.

pub mod accounting;
pub mod clients;
pub mod config;
#[cfg(feature = "console")]
pub mod console;
pub mod flush;
pub mod record_sizes;
pub mod redrive;
pub mod sink;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub mod trigger;
pub mod wiring;

pub use accounting::{Accounting, OpUsage, Usage};
pub use clients::AwsClients;
pub use config::{LambdaConfigError, Role, Settings};
pub use sink::{BatchSink, SqsSink};
pub use store::DynamoDbStore;
pub use trigger::SqsTrigger;

use lull_core::ports::SystemClock;
use lull_core::protocol::{Handoff, Intake};

/// The append capability as the webhook Lambda runs it (no sink: it never hands off).
pub type AwsIntake = Intake<DynamoDbStore, SqsTrigger, SystemClock>;
/// The hand-off capability (each batch to its tenant's sink, else the deployment's) as the flush and sweep Lambdas and `lull redrive --aws` run it.
pub type AwsHandoff = Handoff<
    DynamoDbStore,
    SqsTrigger,
    lull_sink::Listening<lull_tenants::RoutedSink<BatchSink>>,
    SystemClock,
>;

/// Conversations the sweep flushes at once: the core's bound, shared with the local shell and the
/// simulator.
pub use lull_core::protocol::SWEEP_CONCURRENCY;

/// Formats an SDK error with its whole source chain (the SDK's `Display` alone says little).
pub(crate) fn sdk_error<E: std::error::Error + ?Sized>(e: &E) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}
