//! The narrow ports the protocol runs over. Adapters: DynamoDB + SQS (AWS), SQLite + local timers
//! (one machine), and in memory with fault injection (tests and the simulator).
//!
//! `WindowStore`'s writes map 1:1 to DynamoDB conditional writes: `append` and `replace` are one
//! conditional `PutItem` each, `remember` a `BatchWriteItem` of dedupe records, `seen` a
//! consistent `GetItem`.
//! A write that fails its condition returns the current record (DynamoDB's
//! `ReturnValuesOnConditionCheckFailure`), so a retry needs no extra read.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::batch::Batch;
use crate::key::ConversationKey;
use crate::time::Millis;
use crate::window::Conversation;

/// A long-horizon dedupe record, written by the flush before the acknowledgement that removes
/// the message from the record: message `id` of conversation `key` went into generation `gen`;
/// it expires (by stored timestamp, not by TTL) at `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupeRecord {
    pub key: ConversationKey,
    pub message_id: String,
    pub gen: u64,
    pub expires_at: Millis,
}

/// What a conditional write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// The write landed.
    Ok,
    /// The record's version was not the expected one; here is the current record, if any.
    Conflict(Option<Box<Conversation>>),
}

/// What a check-and-write of a dedupe record alone did (the simulator's broken
/// "separate dedupe write" variant: lull never writes one before its append).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Appended {
    /// The dedupe record landed.
    Ok,
    /// Unused by the dedupe-alone write; kept for the variant's shape.
    Conflict(Option<Box<Conversation>>),
    /// An unexpired dedupe record for this message exists: the message was accepted before.
    Duplicate(DedupeRecord),
}

/// A store failure: the operation may or may not have landed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store is shedding load (DynamoDB throttling): back off, nothing landed.
    #[error("store throttled: {0}")]
    Throttled(String),
    /// The write breaks the store's item or key limits: retrying it cannot help, and nothing
    /// landed. The core's record budget keeps this from happening; it is reported, never retried
    /// in a loop.
    #[error("store refused the write as too large: {0}")]
    TooLarge(String),
    #[error("store holds a record it cannot read: {0}")]
    Corrupt(String),
}

/// Where windows live. Every write is conditional on the version read.
pub trait WindowStore: Send + Sync {
    /// Consistent read of one conversation record.
    fn load(
        &self,
        key: &ConversationKey,
    ) -> impl Future<Output = Result<Option<Conversation>, StoreError>> + Send;

    /// Writes `next` if the stored version is `expected` (`None`: no record): one conditional
    /// write, no transaction. The message's identity needs no write of its own here: an id still
    /// held in the record (open window, pending batch, recently acknowledged ids) is recognised
    /// from the record, and the flush writes its long-horizon dedupe record
    /// ([`Self::remember`]) before a write that drops it from the record within its horizon.
    fn append(
        &self,
        expected: Option<u64>,
        next: &Conversation,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// The unexpired (expiry compared with `now`, on the stored timestamp) dedupe record of
    /// message `message_id` of conversation `key`, if any. Consistent: a record written before
    /// this call started is seen.
    fn seen(
        &self,
        key: &ConversationKey,
        message_id: &str,
        now: Millis,
    ) -> impl Future<Output = Result<Option<DedupeRecord>, StoreError>> + Send;

    /// Writes these dedupe records (overwriting any of the same message). Not atomic with
    /// anything: the flush calls it before the acknowledgement write that pushes these ids out
    /// of the record, so a crash in between leaves the ids in the record and the records
    /// written, both recognising a resend.
    fn remember(
        &self,
        records: &[DedupeRecord],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes `next` if the stored version is `expected`.
    fn replace(
        &self,
        expected: u64,
        next: &Conversation,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// Up to `limit` conversations whose due time (`Conversation::due_at`) is at or before `now`,
    /// oldest due first: what the sweep reads (a sparse index on AWS).
    fn due(
        &self,
        now: Millis,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ConversationKey>, StoreError>> + Send;
}

/// The body of a trigger: which conversation to wake, and the chain it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerMsg {
    pub key: ConversationKey,
    /// The chain token; a trigger whose token is not the stored one is stale.
    pub chain: u64,
    /// Generation and version of the record when armed (for logs and tracing).
    pub gen: u64,
    pub ver: u64,
    /// When the conversation was due when this trigger was armed.
    pub due: Millis,
}

/// A trigger could not be armed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("trigger not armed: {0}")]
pub struct TriggerError(pub String);

/// Delayed wake-ups. Implementations may fire late, twice or never (the sweep covers a lost one),
/// but must never fire before `at` on purpose (SQS rounds delays up to whole seconds).
pub trait Trigger: Send + Sync {
    fn arm(
        &self,
        msg: &TriggerMsg,
        at: Millis,
    ) -> impl Future<Output = Result<(), TriggerError>> + Send;
}

/// A hand-off that was not acknowledged. The sink adapter classifies the answer; what each class
/// means for the batch (a backoff hold, parking it for an operator) is decided once, in the core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying: timeouts, connection errors, HTTP 3xx (redirects are never followed),
    /// 408, 429, 5xx. `retry_after` is the sink's own `Retry-After`, when it sent one: the
    /// backoff hold is at least that long.
    #[error("sink failed (will retry): {reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
        /// The HTTP status the sink answered, when it answered one (for the console's attempts).
        status: Option<u16>,
    },
    /// The sink refused the batch (400, 401, 403, 404, 410, 413, 422, ...): the same content would
    /// be refused again. The batch stays pending, parked until an operator redrives it.
    #[error("sink refused the batch: {reason}")]
    Permanent {
        reason: String,
        /// The HTTP status of the refusal, when the sink is an HTTP endpoint.
        status: Option<u16>,
    },
}

impl SinkError {
    /// A failure worth retrying after the usual backoff.
    pub fn retryable(reason: impl Into<String>) -> SinkError {
        SinkError::Retryable {
            reason: reason.into(),
            retry_after: None,
            status: None,
        }
    }

    /// A refusal: retrying the same batch would fail again.
    pub fn permanent(reason: impl Into<String>) -> SinkError {
        SinkError::Permanent {
            reason: reason.into(),
            status: None,
        }
    }

    /// The same failure, naming the HTTP status the sink answered.
    pub fn with_status(mut self, code: u16) -> SinkError {
        match &mut self {
            SinkError::Retryable { status, .. } | SinkError::Permanent { status, .. } => {
                *status = Some(code)
            }
        }
        self
    }

    /// The HTTP status the sink answered, if it answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            SinkError::Retryable { status, .. } | SinkError::Permanent { status, .. } => *status,
        }
    }

    /// The human-readable reason, without the class.
    pub fn reason(&self) -> &str {
        match self {
            SinkError::Retryable { reason, .. } | SinkError::Permanent { reason, .. } => reason,
        }
    }

    /// `"retryable"` or `"permanent"`: the label of the sink-failure metric.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkError::Retryable { .. } => "retryable",
            SinkError::Permanent { .. } => "permanent",
        }
    }
}

/// Where batches go. `Ok` means acknowledged: the sink accepted the batch, and says what its
/// acknowledgement declared ([`Acknowledged`]; `docs/batch.md`, "The reply guard": an HTTP sink's
/// `Lull-Reply: superseded` answer header). Sinks that cannot answer (stdout, files, queues)
/// declare nothing. One method, so a sink that wraps another passes the answer on by
/// forwarding the call: none can drop it by implementing only part of the trait.
///
/// `within` is the time the call may take: the core derives it from the hand-off lease the call
/// is made under (see [`crate::timing`]), so a sink call never outlives its lease and two
/// hand-offs of one conversation never overlap. Every adapter must return by then (a timeout is
/// `SinkError::Retryable`: the receiver may or may not have the batch, and a retry carries the
/// same batch id).
pub trait Sink: Send + Sync {
    fn deliver(
        &self,
        batch: &Batch,
        within: Duration,
    ) -> impl Future<Output = Result<Acknowledged, SinkError>> + Send;
}

/// What a sink's acknowledgement declared beside accepting the batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Acknowledged {
    /// The bot discarded its reply to this batch because the user wrote again: under
    /// `on_newer = "supersede"` the next batch carries it as `context`.
    pub superseded: bool,
}

/// The source of non-determinism: time and randomness. The simulator replaces it with a virtual
/// clock and a seeded generator, which is what makes a run replayable from its seed.
pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send;
    fn random(&self) -> u64;
}

/// The real clock: wall time, tokio's timer and fastrand's thread-local generator.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        Millis::now_wall()
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }

    fn random(&self) -> u64 {
        fastrand::u64(..)
    }
}
