//! # lull-core
//!
//! The functional core of lull, a message buffer for WhatsApp AI bots: it holds each
//! conversation's messages until the user goes quiet, then hands one batch with all of them to
//! the AI step. It never loses an accepted message, never hands one over twice, never answers
//! early, and never lets two hand-offs of one conversation overlap.
//!
//! - [`window`]: the conversation record and its pure transitions (the state machine).
//! - [`protocol`]: append, flush and sweep, written once over the [`ports`].
//! - [`timing`]: the one rule from the sink timeout to the lease and every deadline.
//! - [`guard`]: the reply guard a batch carries, and its answer.
//! - [`turn`]: the end-of-turn rule (fixed, adaptive and typing-aware quiet, operator pause).
//!
//! No I/O lives here: no AWS, SQLite or HTTP. Role and imports: the bottom of the one-way stack
//! (binaries -> adapters -> edges -> core); it imports no lull crate. Edges (`lull-ingest`,
//! `lull-sink`, `lull-tenants`) and adapters (`lull-local`, `lull-aws`) import it; the shells (the
//! Lambdas, the local server) read configuration, build adapters and call [`protocol::Buffer`].
//! The simulator that checks the invariants is a crate of its own (`lull-sim`).
//!
//! Test fixtures, compiled only for tests and for crates that enable them (the Lambdas do not):
//! - feature `fixtures`: `memory` (in-memory adapters, the reference for every store's
//!   conditional semantics), `counts` (a metrics recorder that only counts) and `scenarios`
//!   (scripted runs of the protocol, `lull demo`);
//! - feature `contract`: `contract`, the store contract suite for adapters' tests.

pub mod batch;
#[cfg(feature = "contract")]
pub mod contract;
#[cfg(any(test, feature = "fixtures"))]
pub mod counts;
pub mod guard;
pub mod key;
pub mod listen;
#[cfg(any(test, feature = "fixtures"))]
pub mod memory;
pub mod message;
pub mod metrics;
pub mod policy;
pub mod ports;
pub mod protocol;
#[cfg(any(test, feature = "fixtures"))]
pub mod scenarios;
pub mod settings;
pub mod time;
pub mod timeline;
pub mod timing;
pub mod turn;
pub mod window;

pub use batch::{Batch, CloseReason};
pub use key::{ConversationKey, Provider};
pub use message::{Message, MessageKind};
pub use policy::Policy;
pub use protocol::{Buffer, BufferConfig};
pub use time::Millis;
pub use window::Conversation;
