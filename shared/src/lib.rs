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
//! - [`memory`]: in-memory adapters, the reference for every store's conditional semantics.
//! - [`sim`]: the deterministic fault-injection simulator that checks the invariants.
//! - [`turn`]: the end-of-turn rule (fixed, adaptive and typing-aware quiet, operator pause).
//!
//! No I/O lives here: no AWS, SQLite or HTTP. Shells (the Lambdas, the local server) read
//! configuration, build adapters and call [`protocol::Buffer`].

pub mod batch;
#[cfg(feature = "contract")]
pub mod contract;
pub mod key;
pub mod listen;
pub mod memory;
pub mod message;
pub mod metrics;
pub mod policy;
pub mod ports;
pub mod protocol;
pub mod scenarios;
pub mod settings;
pub mod sim;
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
