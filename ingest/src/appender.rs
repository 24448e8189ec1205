//! The one thing the router needs from the core: append a message to its conversation.
//!
//! An object-safe trait so the router is not generic over the store, trigger, sink and clock:
//! the Lambda (DynamoDB + SQS), the local server (SQLite + timers) and the tests (memory) all
//! hand the same `Router` an `Arc<dyn Appender>`.

use std::future::Future;
use std::pin::Pin;

use lull_core::ports::{Clock, Sink, Trigger, WindowStore};
use lull_core::protocol::Intake;
use lull_core::protocol::{AppendError, AppendOutcome};
use lull_core::{Buffer, ConversationKey, Message, Policy};

/// The future [`Appender::append`] returns.
pub type AppendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AppendOutcome, AppendError>> + Send + 'a>>;

/// Appends one normalised message to the window of `key` under `policy`.
pub trait Appender: Send + Sync {
    fn append(&self, key: ConversationKey, policy: Policy, msg: Message) -> AppendFuture<'_>;
}

impl<S, T, K, C> Appender for Buffer<S, T, K, C>
where
    S: WindowStore + 'static,
    T: Trigger + 'static,
    K: Sink + 'static,
    C: Clock + 'static,
{
    fn append(&self, key: ConversationKey, policy: Policy, msg: Message) -> AppendFuture<'_> {
        Box::pin(async move { Buffer::append(self, &key, &policy, msg).await })
    }
}

impl<S, T, C> Appender for Intake<S, T, C>
where
    S: WindowStore + 'static,
    T: Trigger + 'static,
    C: Clock + 'static,
{
    fn append(&self, key: ConversationKey, policy: Policy, msg: Message) -> AppendFuture<'_> {
        Box::pin(async move { Intake::append(self, &key, &policy, msg).await })
    }
}
