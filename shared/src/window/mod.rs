//! The window state machine: one conversation's stored record and its pure transitions.
//!
//! A conversation record holds the open window (generation `gen`, still filling), the closed
//! batches not yet acknowledged by the sink (`pending`, oldest first), and the trigger chain that
//! will wake the flush. Every change bumps `ver`; stores only accept a write whose expected `ver`
//! matches (optimistic concurrency), so every transition here is computed from one consistent
//! read and either lands whole or not at all. Nothing in this module does I/O.

mod acked;
mod amend;
mod append;
mod batch;
mod chain;
mod limits;
mod open;
mod supersede;
#[cfg(test)]
pub(crate) mod test_support;

pub use acked::{AckedIds, ACKED_IDS_BYTES, LEGACY_DEDUPE};
pub use amend::{Amend, Amended, AMENDS_BYTES, AMEND_CONTENT_BYTES, MAX_AMENDS};
pub use append::{AppendPlan, AppendRefused};
pub use batch::{Attempt, ClosedBatch, Hold, MAX_ATTEMPTS_KEPT, MAX_ERROR_BYTES, PARKED};
pub use chain::{Chain, OVERDUE_SLACK};
pub use limits::{
    FLUSH_HEADROOM, MAX_CONVERSATION_BYTES, MAX_MESSAGE_BYTES, MAX_RECORD_BYTES, STORE_ITEM_LIMIT,
    STORE_KEY_LIMIT,
};
pub use open::OpenWindow;
pub use supersede::Carried;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::key::ConversationKey;
use crate::time::Millis;
use crate::turn::TurnState;

/// One conversation's stored record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub key: ConversationKey,
    /// Bumped on every change; 0 means "not stored yet".
    pub ver: u64,
    /// The generation of the open window: the next batch. It only grows.
    pub gen: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<OpenWindow>,
    /// Closed batches not yet acknowledged, oldest (lowest gen) first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<ClosedBatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Chain>,
    /// The end-of-turn state kept across windows: gap summary, presence, operator pause.
    #[serde(default, skip_serializing_if = "TurnState::is_empty")]
    pub turn: TurnState,
    pub updated_at: Millis,
    /// Where the store's due index files this record, as of its last write (see
    /// [`Self::index_due`]). Kept so the index stays put from a window's opening to its
    /// batch's acknowledgement instead of moving with every append and lease. Absent in
    /// records written before it existed: derived again at their next write.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::opt_ms"
    )]
    pub index_at: Option<Millis>,
    /// The latest expiry of the long-horizon dedupe records written for this conversation (the
    /// flush writes them before acknowledging a batch). Until then, an append of an id the record
    /// does not hold asks the store (`WindowStore::seen`); after it (and for a conversation
    /// whose batches were never acknowledged: `null`) the record alone decides, with no extra
    /// read. A record written before this field existed (field absent) reads as
    /// [`LEGACY_DEDUPE`]: its dedupe records were written with its appends, so it asks the store
    /// until its last write is a horizon old, and its first acknowledgement replaces the marker.
    #[serde(default = "acked::legacy_dedupe", with = "crate::time::opt_ms")]
    pub dedupe_until: Option<Millis>,
    /// The ids of recently acknowledged batches, oldest first, within a byte budget (see
    /// [`Self::retire_head_ids`]): an append recognises a resend of one of them from the record
    /// alone. An id leaves the list when its horizon ends, or when a later acknowledgement
    /// pushes it out, and then only after its long-horizon dedupe record was written. Absent in
    /// records written before it existed (their acknowledged ids have dedupe records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acked: Vec<AckedIds>,
    /// Remembered edits and unsends, oldest first (see `amend.rs`): bounded by [`MAX_AMENDS`]
    /// and [`AMENDS_BYTES`], each until its dedupe horizon ends. Absent in older records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amends: Vec<Amend>,
    /// Every message this conversation accepted so far (monotonic; counted from the first write
    /// of code that counts): what a reply guard compares with its batch's count at close
    /// (`supersede.rs`).
    #[serde(default, skip_serializing_if = "supersede::is_zero64")]
    pub accepted: u64,
}

impl Conversation {
    /// A conversation that has never been stored. Generations start at the creation time in ms,
    /// so a conversation whose record expired after days of idleness never reuses a generation.
    pub fn fresh(key: ConversationKey, now: Millis) -> Conversation {
        Conversation {
            key,
            ver: 0,
            gen: now.0.max(1),
            window: None,
            pending: Vec::new(),
            chain: None,
            turn: TurnState::default(),
            updated_at: now,
            index_at: None,
            dedupe_until: None,
            acked: Vec::new(),
            amends: Vec::new(),
            accepted: 0,
        }
    }

    /// True when nothing is buffered or pending.
    pub fn is_idle(&self) -> bool {
        self.window.is_none() && self.pending.is_empty()
    }

    /// The end of an operator pause in force at `now`.
    pub fn paused_until(&self, now: Millis) -> Option<Millis> {
        self.turn.paused_until(now)
    }

    /// Generations of batches that are closed but not acknowledged.
    pub fn pending_gens(&self) -> impl Iterator<Item = u64> + '_ {
        self.pending.iter().map(|b| b.gen)
    }

    /// Marks a change: a new version at `now`.
    pub(super) fn touch(&mut self, now: Millis) {
        self.ver += 1;
        self.updated_at = now;
        self.settle_index();
    }
}

/// A UUIDv7 from the window's opening time and 80 bits of entropy: unique forever, sortable by
/// time, and free of any phone number.
pub fn mint_batch_id(at: Millis, random: &mut dyn FnMut() -> u64) -> Uuid {
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&random().to_le_bytes());
    bytes[8..].copy_from_slice(&random().to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(at.0, &bytes).into_uuid()
}
