//! The window state machine: one conversation's stored record and its pure transitions.
//!
//! A conversation record holds the open window (generation `gen`, still filling), the closed
//! batches not yet acknowledged by the sink (`pending`, oldest first), and the trigger chain that
//! will wake the flush. Every change bumps `ver`; stores only accept a write whose expected `ver`
//! matches (optimistic concurrency), so every transition here is computed from one consistent
//! read and either lands whole or not at all. Nothing in this file does I/O.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::batch::{Batch, CloseReason};
use crate::key::ConversationKey;
use crate::message::Message;
use crate::policy::Policy;
use crate::time::{duration_ms, Millis};
use crate::turn::{
    self, QuietRule, TurnDue, TurnInputs, TurnPolicy, TurnReason, TurnState, TypingRule,
};

/// The store's item limit (DynamoDB: 400 KB, attribute names and values included). The in-memory
/// reference store enforces it too, so the contract suite and the simulator meet it.
pub const STORE_ITEM_LIMIT: u64 = 400 * 1024;

/// The largest store key (DynamoDB's partition key: 2,048 bytes).
pub const STORE_KEY_LIMIT: u64 = 2048;

/// The encoded record's budget: the item limit less the item's other attributes (its key, up to
/// [`STORE_KEY_LIMIT`], the version and the due-index numbers).
pub const MAX_RECORD_BYTES: u64 = STORE_ITEM_LIMIT - 8 * 1024;

/// What the flush may add to a record at most: closing the window (a batch's fields), a lease,
/// a backoff or park with its failure reason, a new chain. Appends stop this far below
/// [`MAX_RECORD_BYTES`], so every write a flush (or a redrive) needs always fits: no
/// conversation can wedge at the limit.
pub const FLUSH_HEADROOM: u64 = 2 * 1024;

/// The encoded size past which an append is refused (retryable: the gateway retries later). It
/// is reached only while a sink has been failing for long.
pub const MAX_CONVERSATION_BYTES: u64 = MAX_RECORD_BYTES - FLUSH_HEADROOM;

/// The largest single message a conversation takes (its stored size): well under the record
/// budget, so an oversized message can become a batch of its own beside what is pending.
pub const MAX_MESSAGE_BYTES: u64 = 160 * 1024;

/// How far past due a conversation may be before an append assumes its trigger chain is lost:
/// more than SQS's whole-second rounding plus polling, far less than a sweep interval.
pub const OVERDUE_SLACK: Duration = Duration::from_secs(5);

/// The open window: messages waiting for the user to go quiet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenWindow {
    /// Minted when the window opens (UUIDv7), so every retry of its hand-off carries the same id.
    pub batch_id: Uuid,
    /// Receive time of the first message.
    pub opened_at: Millis,
    /// Receive time of the last message.
    pub last_at: Millis,
    /// The quiet period the window opened under, in ms (the flush needs no tenant config). A
    /// policy change applies from the next window on.
    pub quiet_ms: u64,
    /// The max wait the window opened under, in ms.
    pub max_wait_ms: u64,
    /// True when `quiet_ms` is the conversation's adaptive quiet period, drawn from its gap
    /// summary when the window opened.
    #[serde(default, skip_serializing_if = "is_false")]
    pub adaptive: bool,
    /// The typing rule the window opened under: presence events shape its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<TypingRule>,
    /// Stored size of `messages`, for the size cap.
    pub bytes: u64,
    pub messages: Vec<Message>,
    /// The tenant's `on_newer` was `supersede` when the window opened (its batch may be
    /// superseded; see `supersede.rs`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub supersede: bool,
    /// What a superseded batch handed to this one (its `context`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<Carried>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl OpenWindow {
    /// The end-of-turn rule this window runs under: the one it opened under (an adaptive quiet
    /// period is fixed at opening, from the gap summary of that moment).
    pub fn rule(&self) -> TurnPolicy {
        let ms = u32::try_from(self.quiet_ms).unwrap_or(u32::MAX);
        TurnPolicy {
            quiet: if self.adaptive {
                QuietRule::Adaptive {
                    min_ms: ms,
                    max_ms: ms,
                    prior_ms: ms,
                }
            } else {
                QuietRule::Fixed { ms }
            },
            max_wait_ms: u32::try_from(self.max_wait_ms).unwrap_or(u32::MAX),
            typing: self.typing,
        }
    }

    /// When this window is due by its rule, given the conversation's turn state.
    pub fn due(&self, turn: &TurnState) -> TurnDue {
        turn::due(
            &self.rule(),
            &TurnInputs {
                opened_at: self.opened_at,
                last_at: self.last_at,
                gaps: turn.gaps,
                presence: turn.presence,
                paused_until: turn.pause.map(|p| p.until),
            },
        )
    }
}

/// The close reason of a window that became due by `reason`: the turn rule's reasons are all a
/// quiet period but max wait (a pause only delays whichever of them came first).
fn close_reason(w: &OpenWindow, turn: &TurnState) -> CloseReason {
    let unpaused = TurnState {
        pause: None,
        ..*turn
    };
    match w.due(&unpaused).reason {
        TurnReason::MaxWait => CloseReason::MaxWait,
        _ => CloseReason::Quiet,
    }
}

/// What holds the oldest pending batch back from a hand-off right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Hold {
    /// A flush is handing the batch off under `token`; until `until` no other flush hands off
    /// anything of this conversation, so two hand-offs never overlap. Every write that follows
    /// the sink call is conditional on the token.
    Lease { until: Millis, token: u64 },
    /// The last hand-off failed (a retryable failure): nobody retries before `until`.
    Backoff { until: Millis },
    /// The sink refused the batch (a permanent failure): it waits for an operator's redrive.
    Parked { since: Millis },
}

impl Hold {
    /// True while this hold keeps every flush (but a redrive, for backoffs and parks) away.
    fn active(self, now: Millis) -> bool {
        match self {
            Hold::Lease { until, .. } | Hold::Backoff { until } => until > now,
            Hold::Parked { .. } => true,
        }
    }
}

/// The due-index position of a conversation whose oldest batch is parked: later than any real due
/// time (and still a valid signed 64-bit number for SQLite and DynamoDB).
pub const PARKED: Millis = Millis(i64::MAX as u64);

/// `Conversation::dedupe_until` of a record written before the field existed, when every
/// append wrote its message's dedupe record (see [`Conversation::needs_dedupe_lookup`]).
pub const LEGACY_DEDUPE: Millis = Millis(u64::MAX);

fn legacy_dedupe() -> Option<Millis> {
    Some(LEGACY_DEDUPE)
}

/// The default byte budget of a record's recently acknowledged ids ([`Conversation::acked`], as
/// counted by [`AckedIds::bytes`]): room for a batch of six WhatsApp ids (~64 bytes each: 458)
/// or many more shorter ones. A conversation whose ids never leave it writes no dedupe record
/// at all; a returning user's appends carry it, which DynamoDB's deflated record makes cheap
/// (a 6-message window with a full list of WhatsApp ids: ~2.1 KB of JSON, ~0.7 KB stored, one
/// write unit; `BENCHMARKS.md`, section 3, "Issue 15, part 2").
pub const ACKED_IDS_BYTES: u64 = 512;

/// What one group of [`AckedIds`] counts for beside its ids: its JSON's field names, numbers
/// and punctuation (`{"gen":…,"until":…,"ids":[]},`, 13-digit numbers).
const ACKED_GROUP_BYTES: u64 = 56;

/// What one acknowledged id counts for beside its own bytes: its quotes and a comma.
const ACKED_ID_BYTES: u64 = 3;

/// The message ids of one acknowledged batch, kept in the record (full ids: a hash collision
/// would drop a new message as a duplicate) so a gateway's resend is recognised from the record
/// an append reads anyway, with no dedupe record written or read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedIds {
    /// The batch's generation (what a duplicate's answer names).
    pub gen: u64,
    /// The end of these ids' dedupe horizon (the acknowledgement + the horizon), in ms: after
    /// it they just drop.
    pub until: u64,
    pub ids: Vec<String>,
}

impl AckedIds {
    /// What this group counts for in the list's byte budget.
    pub fn bytes(&self) -> u64 {
        ACKED_GROUP_BYTES
            + self
                .ids
                .iter()
                .map(|id| id.len() as u64 + ACKED_ID_BYTES)
                .sum::<u64>()
    }
}

/// The longest reason kept with a failed batch (for `lull inspect` and the logs).
pub const MAX_ERROR_BYTES: usize = 200;

/// A closed window waiting to be acknowledged by the sink. Immutable but for its lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedBatch {
    pub gen: u64,
    pub batch_id: Uuid,
    pub reason: CloseReason,
    pub opened_at: Millis,
    pub closed_at: Millis,
    /// When the window became due (quiet period or max wait reached; for size and passthrough,
    /// when it closed): the start of its hand-off lag.
    pub due_at: Millis,
    pub bytes: u64,
    /// Fixed at the first hand-off, so retries carry the same content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more_pending: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// Hand-offs the sink did not acknowledge so far: the retry backoff grows with it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
    /// Why the last hand-off failed (at most [`MAX_ERROR_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The end-of-turn rule that made the window due (quiet and max-wait closes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited: Option<TurnReason>,
    pub messages: Vec<Message>,
    /// [`Conversation::accepted`] when the batch closed: its reply guard says `current` while
    /// the record's count is still this (records from before the count: 0, see `supersede.rs`).
    #[serde(default, skip_serializing_if = "is_zero64")]
    pub accepted: u64,
    /// The window opened under `on_newer = "supersede"`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub supersede: bool,
    /// Superseded (by its guard's answer or its hand-off's): its acknowledgement hands its
    /// messages to the next batch.
    #[serde(default, skip_serializing_if = "is_false")]
    pub superseded: bool,
    /// The `context` this batch carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<Carried>,
}

fn is_zero64(n: &u64) -> bool {
    *n == 0
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ClosedBatch {
    /// The public batch handed to the sink.
    pub fn to_batch(&self, key: &ConversationKey) -> Batch {
        Batch::new(
            self.batch_id,
            key.clone(),
            self.gen,
            self.reason,
            self.opened_at,
            self.closed_at,
            self.more_pending.unwrap_or(false),
            self.messages.clone(),
        )
        .waited(self.waited)
        .carrying(self.carried.as_ref())
    }

    /// True while a lease, backoff or park keeps flushes away from this batch.
    pub fn is_held(&self, now: Millis) -> bool {
        self.hold.is_some_and(|h| h.active(now))
    }

    /// The lease token this batch is being handed off under, if any (expired or not).
    pub fn lease_token(&self) -> Option<u64> {
        match self.hold {
            Some(Hold::Lease { token, .. }) => Some(token),
            _ => None,
        }
    }

    /// True when the sink refused this batch and it waits for a redrive.
    pub fn is_parked(&self) -> bool {
        matches!(self.hold, Some(Hold::Parked { .. }))
    }
}

/// The live trigger chain. Appends start a chain (a trigger armed for `armed_for`); the flush
/// re-arms the same chain while work remains and ends it when the conversation goes idle. A
/// trigger whose token is not the stored one is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub token: u64,
    pub armed_for: Millis,
}

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
    #[serde(default = "legacy_dedupe", with = "crate::time::opt_ms")]
    pub dedupe_until: Option<Millis>,
    /// The ids of recently acknowledged batches, oldest first, within a byte budget (see
    /// [`Self::retire_head_ids`]): an append recognises a resend of one of them from the record
    /// alone. An id leaves the list when its horizon ends, or when a later acknowledgement
    /// pushes it out, and then only after its long-horizon dedupe record was written. Absent in
    /// records written before it existed (their acknowledged ids have dedupe records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acked: Vec<AckedIds>,
    /// Every message this conversation accepted so far (monotonic; from the first write of code
    /// that counts): what a reply guard compares with its batch's count at close.
    #[serde(default, skip_serializing_if = "is_zero64")]
    pub accepted: u64,
}

/// Why an append cannot be taken now. Nothing was stored; the gateway should retry later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendRefused {
    #[error("message of {size} bytes is larger than a conversation can hold ({max} bytes)")]
    TooLarge { size: u64, max: u64 },
    #[error("conversation backlog full (record of {bytes} bytes, limit {max}): the sink is not acknowledging; retry later")]
    Backlogged { bytes: u64, max: u64 },
}

/// The result of planning an append: the record to write and whether to arm a trigger.
#[derive(Debug, Clone)]
pub struct AppendPlan {
    pub next: Conversation,
    /// The generation the message went into.
    pub gen: u64,
    /// Arm a trigger (a new chain) for this instant.
    pub arm: Option<Millis>,
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
            accepted: 0,
        }
    }

    /// True when nothing is buffered or pending.
    pub fn is_idle(&self) -> bool {
        self.window.is_none() && self.pending.is_empty()
    }

    /// When something must next happen, ignoring leases and backoffs: the oldest pending batch
    /// is due at once (when it closed), else the open window's due time; nothing while the oldest
    /// batch is parked. This is what a trigger chain covers.
    pub fn hand_off_due(&self) -> Option<Millis> {
        match self.pending.first() {
            Some(b) if b.is_parked() => None,
            Some(b) => Some(self.after_pause(b.closed_at)),
            None => self.window_due().map(|d| d.at),
        }
    }

    /// When the open window is due by the rule it runs under, and which rule decides.
    pub fn window_due(&self) -> Option<TurnDue> {
        self.window.as_ref().map(|w| w.due(&self.turn))
    }

    /// `at`, or the end of an operator pause when that is later: a pause holds every hand-off.
    fn after_pause(&self, at: Millis) -> Millis {
        self.turn.pause.map_or(at, |p| p.until.max(at))
    }

    /// The end of an operator pause in force at `now`.
    pub fn paused_until(&self, now: Millis) -> Option<Millis> {
        self.turn.paused_until(now)
    }

    /// True when `message_id` is still held in this record (the open window or a pending batch):
    /// a resend of it is a duplicate however long its batch has been waiting, whatever the dedupe
    /// horizon.
    pub fn holds_message(&self, message_id: &str) -> Option<u64> {
        if let Some(w) = &self.window {
            if w.messages.iter().any(|m| m.id == message_id) {
                return Some(self.gen);
            }
        }
        self.pending
            .iter()
            .find(|b| b.messages.iter().any(|m| m.id == message_id))
            .map(|b| b.gen)
    }

    /// True when an append of an id this record does not hold must ask the store's dedupe
    /// records: some were written for this conversation and have not expired at `now`.
    pub fn needs_dedupe_lookup(&self, now: Millis, horizon: Duration) -> bool {
        match self.dedupe_until {
            Some(LEGACY_DEDUPE) => self.updated_at.plus(horizon) >= now,
            Some(until) => until >= now,
            None => false,
        }
    }

    /// The generation of the acknowledged batch whose id `message_id` is, while the record keeps
    /// it ([`Self::acked`]) and its horizon has not ended at `now`.
    pub fn acked_message(&self, message_id: &str, now: Millis) -> Option<u64> {
        self.acked
            .iter()
            .filter(|g| g.until >= now.0)
            .find(|g| g.ids.iter().any(|id| id == message_id))
            .map(|g| g.gen)
    }

    /// The byte budget the list of acknowledged ids takes (see [`AckedIds::bytes`]).
    pub fn acked_bytes(&self) -> u64 {
        self.acked.iter().map(AckedIds::bytes).sum()
    }

    /// Moves the ids of the oldest pending batch into the list of acknowledged ids, until
    /// `now + horizon`, for the write that acknowledges it: ids whose horizon ended drop; while
    /// the list is over `budget` bytes its oldest ids are pushed out. Returns the long-horizon
    /// dedupe records of the ids pushed out: the flush writes them *before* the write that drops
    /// them from the record (a crash in between leaves both), and the record notes their expiry
    /// (`dedupe_until`) so an append knows to ask the store. A batch whose ids all fit writes no
    /// dedupe record at all.
    pub fn retire_head_ids(
        &mut self,
        now: Millis,
        horizon: Duration,
        budget: u64,
    ) -> Vec<crate::ports::DedupeRecord> {
        let Some(head) = self.pending.first() else {
            return Vec::new();
        };
        let group = AckedIds {
            gen: head.gen,
            until: now.plus(horizon).0,
            ids: head.messages.iter().map(|m| m.id.clone()).collect(),
        };
        self.acked.retain(|g| g.until >= now.0);
        self.acked.push(group);
        let mut bytes = self.acked_bytes();
        let mut out = Vec::new();
        while bytes > budget {
            let Some(oldest) = self.acked.first_mut() else {
                break;
            };
            if oldest.ids.is_empty() {
                bytes -= ACKED_GROUP_BYTES;
                self.acked.remove(0);
                continue;
            }
            let id = oldest.ids.remove(0);
            bytes -= id.len() as u64 + ACKED_ID_BYTES;
            out.push(crate::ports::DedupeRecord {
                key: self.key.clone(),
                message_id: id,
                gen: oldest.gen,
                expires_at: Millis(oldest.until),
            });
        }
        // A group left without ids takes no room.
        self.acked.retain(|g| !g.ids.is_empty());
        // A legacy marker resolves here: every dedupe record the old appends wrote expires by
        // the record's last write + the horizon.
        let legacy =
            (self.dedupe_until == Some(LEGACY_DEDUPE)).then(|| self.updated_at.plus(horizon));
        let pushed_out = out.iter().map(|d| d.expires_at).max();
        let kept = self.dedupe_until.filter(|&d| d != LEGACY_DEDUPE);
        self.dedupe_until = [kept, legacy, pushed_out].into_iter().flatten().max();
        out
    }

    /// When a flush can next make progress: like [`Self::hand_off_due`], but a held batch only
    /// when its lease or backoff runs out, and a parked one never (until a redrive). This is the
    /// due time the sweep's index holds.
    pub fn due_at(&self) -> Option<Millis> {
        match self.pending.first() {
            Some(b) => match b.hold {
                None => Some(self.after_pause(b.closed_at)),
                Some(Hold::Lease { until, .. }) => Some(until.max(b.closed_at)),
                Some(Hold::Backoff { until }) => Some(self.after_pause(until.max(b.closed_at))),
                Some(Hold::Parked { .. }) => None,
            },
            None => self.window_due().map(|d| d.at),
        }
    }

    /// Where the store's due index files this record: a bound the sweep may act on, not the
    /// exact due time. The sweep is the safety net for lost triggers (every hand-off on time is a
    /// trigger's), so the index holds the *latest* time the next hand-off can fall due and moves
    /// only when that changes, not with every append: an index entry costs a write when it
    /// appears, disappears or moves (DynamoDB bills a moved GSI key twice), and the index was a
    /// quarter of the AWS bill when it tracked [`Self::due_at`].
    ///
    /// - open window, nothing pending: its first message + max wait (the latest it can be due);
    /// - oldest pending batch leased or free: the bound already stored (the window's, through
    ///   its close and lease), else its close time (due at once);
    /// - backing off: the end of the backoff (exact: the next attempt);
    /// - parked: [`PARKED`], after every real due time, so the sweep never reaches it while
    ///   start-up, `lull inspect` and `lull redrive` still find it;
    /// - idle: none (not in the index).
    ///
    /// Never earlier than [`Self::due_at`] for an open window, so the sweep never finds a window
    /// before it is due; a sweep finding a conversation still leased re-arms for the lease's end.
    /// Every transition stores the value (`index_at`) so it can be kept; computing it again from
    /// a record that stores it gives the same value.
    pub fn index_due(&self) -> Option<Millis> {
        match self.pending.first() {
            Some(head) => match head.hold {
                Some(Hold::Parked { .. }) => Some(PARKED),
                Some(Hold::Backoff { until }) => Some(until.max(head.closed_at)),
                Some(Hold::Lease { .. }) | None => match self.index_at {
                    Some(kept) if kept != PARKED => Some(kept),
                    _ => Some(head.closed_at),
                },
            },
            None => self.window.as_ref().map(|w| {
                Millis(w.opened_at.0.saturating_add(w.max_wait_ms)).max(w.due(&self.turn).at)
            }),
        }
    }

    /// Stores [`Self::index_due`] for the write being prepared.
    fn settle_index(&mut self) {
        self.index_at = self.index_due();
    }

    /// True when a flush now can make progress.
    pub fn is_past_due(&self, now: Millis) -> bool {
        self.due_at().is_some_and(|d| d <= now)
    }

    /// The record's encoded size: what the store's item limit applies to.
    pub fn encoded_len(&self) -> u64 {
        serde_json::to_vec(self).map_or(u64::MAX, |v| v.len() as u64)
    }

    /// An upper bound of [`Self::encoded_len`], computed without encoding: the messages' stored
    /// sizes (their own JSON, as the record holds them), a separator each, the key (every
    /// character escaped at worst) and generous overheads per record and per window or batch
    /// (field names, times, ids, a hold and a failure reason of at most [`MAX_ERROR_BYTES`]).
    pub fn encoded_len_bound(&self) -> u64 {
        const PER_RECORD: u64 = 1024;
        const PER_BATCH: u64 = 2048;
        let messages = self.window.as_ref().map_or(0, |w| w.messages.len())
            + self.pending.iter().map(|b| b.messages.len()).sum::<usize>();
        let key = 6 * self.key.storage_key().len() as u64;
        self.stored_bytes()
            + messages as u64
            + 6 * self.acked_bytes()
            + key
            + PER_RECORD
            + crate::turn::state::MAX_TURN_STATE_BYTES
            + PER_BATCH * (self.pending.len() as u64 + 1)
    }

    /// Bytes of messages held: open window plus pending batches.
    pub fn stored_bytes(&self) -> u64 {
        let carried = |c: &Option<Carried>| c.as_ref().map_or(0, |c| c.bytes);
        self.window
            .as_ref()
            .map_or(0, |w| w.bytes + carried(&w.carried))
            + self
                .pending
                .iter()
                .map(|b| b.bytes + carried(&b.carried))
                .sum::<u64>()
    }

    /// Generations of batches that are closed but not acknowledged.
    pub fn pending_gens(&self) -> impl Iterator<Item = u64> + '_ {
        self.pending.iter().map(|b| b.gen)
    }

    /// The latest receive time held, so a new message never sorts before an older one.
    fn last_received(&self) -> Millis {
        if let Some(w) = &self.window {
            return w.last_at;
        }
        self.pending
            .last()
            .and_then(|b| b.messages.last())
            .map_or(Millis(0), |m| m.received_at)
    }

    /// Closes the open window into a pending batch of generation `gen`.
    fn close(&mut self, reason: CloseReason, now: Millis) {
        if let Some(w) = self.window.take() {
            let (due_at, waited) = match reason {
                CloseReason::Quiet | CloseReason::MaxWait => {
                    let due = w.due(&self.turn);
                    (due.at.min(now), Some(due.reason))
                }
                CloseReason::Size | CloseReason::Passthrough => (now, None),
            };
            self.turn.closed(now);
            self.pending.push(ClosedBatch {
                gen: self.gen,
                batch_id: w.batch_id,
                reason,
                opened_at: w.opened_at,
                closed_at: now,
                due_at,
                bytes: w.bytes,
                more_pending: None,
                hold: None,
                failures: 0,
                last_error: None,
                waited,
                messages: w.messages,
                accepted: self.accepted,
                supersede: w.supersede,
                superseded: false,
                carried: w.carried,
            });
            self.gen += 1;
        }
    }

    /// Closes the open window if it is due at `now`; returns the reason when it did.
    pub fn close_if_due(&mut self, now: Millis) -> Option<CloseReason> {
        let w = self.window.as_ref()?;
        let due = w.due(&self.turn).at;
        let reason = close_reason(w, &self.turn);
        if due <= now {
            self.close(reason, now);
            Some(reason)
        } else {
            None
        }
    }

    /// Plans appending `msg` (its `received_at` is set here) under `policy` at `now`. `random`
    /// supplies the entropy for a new batch id and chain token.
    pub fn plan_append(
        mut self,
        mut msg: Message,
        policy: &Policy,
        now: Millis,
        random: &mut dyn FnMut() -> u64,
    ) -> Result<AppendPlan, AppendRefused> {
        let covered_until = self.hand_off_due();
        // A conversation overdue by more than any trigger's slack has lost its chain (a trigger
        // lost, or its flush died); this message revives it instead of waiting for the sweep.
        let overdue = self.due_at().is_some_and(|d| d.plus(OVERDUE_SLACK) < now);
        msg.received_at = now.max(self.last_received());
        let size = msg.stored_size();
        if size > MAX_MESSAGE_BYTES {
            return Err(AppendRefused::TooLarge {
                size,
                max: MAX_MESSAGE_BYTES,
            });
        }
        let at = msg.received_at;
        // Acknowledged ids whose horizon ended just drop (the write is being made anyway).
        self.acked.retain(|g| g.until >= now.0);
        if !policy.buffering {
            // Passthrough: whatever was buffered before the switch closes first, then the
            // message is a batch of its own.
            self.close(CloseReason::Passthrough, at);
        } else if let Some(w) = &self.window {
            let overflows = w.messages.len() as u64 + 1 > u64::from(policy.max_messages)
                || w.bytes + size > policy.max_bytes;
            if overflows {
                self.close(CloseReason::Size, at);
            }
        }
        let gen = self.gen;
        let rule = policy.turn();
        if let QuietRule::Adaptive { .. } = rule.quiet {
            // Only an adaptive tenant learns its users' gaps: the default record stays as small.
            self.turn.observe_activity(at);
            self.turn.message(at);
        }
        // A window runs under the timing it opened under: a tenant's policy changed mid-window
        // applies from its next window on, so a change never makes an open window due earlier
        // (or later) than the rule it opened under said. An adaptive quiet period is drawn from
        // the gap summary once, here.
        let gaps = self.turn.gaps;
        let w = self.window.get_or_insert_with(|| {
            let (quiet_ms, adaptive) = match rule.quiet {
                QuietRule::Fixed { .. } => (duration_ms(policy.quiet), false),
                QuietRule::Adaptive {
                    min_ms,
                    max_ms,
                    prior_ms,
                } => (u64::from(gaps.quiet_ms(min_ms, max_ms, prior_ms)), true),
            };
            OpenWindow {
                batch_id: mint_batch_id(at, random),
                opened_at: at,
                last_at: at,
                quiet_ms,
                max_wait_ms: duration_ms(policy.max_wait),
                adaptive,
                typing: rule.typing,
                bytes: 0,
                messages: Vec::new(),
                supersede: policy.on_newer == crate::policy::OnNewer::Supersede,
                carried: None,
            }
        });
        w.last_at = at;
        w.bytes += size;
        w.messages.push(msg);
        self.accepted += 1;
        if !policy.buffering {
            self.close(CloseReason::Passthrough, at);
        } else if w.messages.len() as u64 >= u64::from(policy.max_messages)
            || w.bytes >= policy.max_bytes
        {
            self.close(CloseReason::Size, at);
        }
        // Encoding the whole record costs as much as the store's own encoding: done only when the
        // cheap bound says the record may be near its budget (the webhook path is hot).
        let bytes = match self.encoded_len_bound() {
            bound if bound <= MAX_CONVERSATION_BYTES => bound,
            _ => self.encoded_len(),
        };
        if bytes > MAX_CONVERSATION_BYTES {
            return Err(AppendRefused::Backlogged {
                bytes,
                max: MAX_CONVERSATION_BYTES,
            });
        }
        self.ver += 1;
        self.updated_at = now;
        self.settle_index();
        // Due times only move later as messages arrive, unless a size cap or passthrough closed a
        // batch just now.
        let arm = self.chain_for_write(covered_until, overdue, random);
        Ok(AppendPlan {
            next: self,
            gen,
            arm,
        })
    }

    /// The chain a write being prepared must start, if any: a live chain fires no later than the
    /// due time it covered (`covered_until`, before the write), so a new one is started only when
    /// the write moved the due time earlier, the conversation was overdue, or no chain lives.
    /// Returns the new chain's due time (what to arm a trigger for).
    fn chain_for_write(
        &mut self,
        covered_until: Option<Millis>,
        overdue: bool,
        random: &mut dyn FnMut() -> u64,
    ) -> Option<Millis> {
        let arm = match (self.chain, covered_until, self.hand_off_due()) {
            (Some(_), Some(covered), Some(due)) if due >= covered && !overdue => None,
            (_, _, due) => due,
        };
        if let Some(armed_for) = arm {
            self.chain = Some(Chain {
                token: random(),
                armed_for,
            });
        }
        arm
    }

    /// Plans a change of the end-of-turn state (a presence, a pause, a resume) at `now`: `change`
    /// edits it and says whether anything changed. When the change moved the conversation's due
    /// time earlier (a resume, a `paused` after `composing`), a new chain is started for it
    /// (`arm`), in the same write. `None` when nothing changed: no write at all.
    pub fn plan_turn_change(
        mut self,
        now: Millis,
        random: &mut dyn FnMut() -> u64,
        change: impl FnOnce(&mut TurnState) -> bool,
    ) -> Option<AppendPlan> {
        // As for an append: a live chain fires no later than the due time it covered.
        let covered_until = self.hand_off_due();
        let overdue = self.due_at().is_some_and(|d| d.plus(OVERDUE_SLACK) < now);
        if !change(&mut self.turn) {
            return None;
        }
        self.touch(now);
        let arm = self.chain_for_write(covered_until, overdue, random);
        Some(AppendPlan {
            gen: self.gen,
            next: self,
            arm,
        })
    }

    /// Takes the hand-off lease on the oldest pending batch, freezing `more_pending` at its first
    /// hand-off. Returns false when a live lease, a backoff or a park holds it.
    pub fn lease_head(&mut self, now: Millis, lease: Duration, token: u64) -> bool {
        if self.paused_until(now).is_some() {
            return false;
        }
        let more = self.pending.len() > 1 || self.window.is_some();
        match self.pending.first_mut() {
            Some(head) if !head.is_held(now) => {
                head.hold = Some(Hold::Lease {
                    until: now.plus(lease),
                    token,
                });
                head.more_pending.get_or_insert(more);
                self.touch(now);
                true
            }
            _ => false,
        }
    }

    /// True when batch `gen` is the oldest pending one and is leased under `token`: what every
    /// write after a sink call checks, so a flush whose lease was taken over changes nothing.
    fn head_leased_by(&self, gen: u64, token: u64) -> bool {
        self.pending
            .first()
            .is_some_and(|b| b.gen == gen && b.lease_token() == Some(token))
    }

    /// Records that batch `gen`, handed off under lease `token`, was acknowledged. Ends the
    /// trigger chain when nothing is left. Returns false (and changes nothing) when the batch is
    /// no longer pending under that lease: acknowledged already, or its lease taken over.
    pub fn ack(&mut self, gen: u64, token: u64, now: Millis) -> bool {
        if !self.head_leased_by(gen, token) {
            return false;
        }
        let acked = self.pending.remove(0);
        self.carry_forward(&acked);
        if self.is_idle() {
            self.chain = None;
        }
        self.touch(now);
        true
    }

    /// After a retryable failure of batch `gen` under lease `token`, holds it until `now + hold`:
    /// nobody retries before then (not the sweep, not a duplicate trigger), and the failure is
    /// counted so the next hold can grow. Returns false when the lease is no longer ours.
    pub fn hold_after_failure(
        &mut self,
        gen: u64,
        token: u64,
        now: Millis,
        hold: Duration,
        error: &str,
    ) -> bool {
        self.after_failure(
            gen,
            token,
            now,
            Hold::Backoff {
                until: now.plus(hold),
            },
            error,
        )
    }

    /// After the sink refused batch `gen` under lease `token`, parks it until an operator
    /// redrives it. Returns false when the lease is no longer ours.
    pub fn park(&mut self, gen: u64, token: u64, now: Millis, error: &str) -> bool {
        self.after_failure(gen, token, now, Hold::Parked { since: now }, error)
    }

    fn after_failure(
        &mut self,
        gen: u64,
        token: u64,
        now: Millis,
        hold: Hold,
        error: &str,
    ) -> bool {
        if !self.head_leased_by(gen, token) {
            return false;
        }
        if let Some(head) = self.pending.first_mut() {
            head.hold = Some(hold);
            head.failures = head.failures.saturating_add(1);
            head.last_error = Some(truncated(&printable(error), MAX_ERROR_BYTES));
        }
        self.touch(now);
        true
    }

    /// Clears the lease (token `token`) on batch `gen`: the local server does this at start-up
    /// for leases a killed process left behind. Returns false when there was no such lease.
    pub fn release(&mut self, gen: u64, token: u64, now: Millis) -> bool {
        if !self.head_leased_by(gen, token) {
            return false;
        }
        if let Some(head) = self.pending.first_mut() {
            head.hold = None;
        }
        self.touch(now);
        true
    }

    /// When the oldest pending batch is in a backoff after a failure, until when.
    pub fn held_until(&self, now: Millis) -> Option<Millis> {
        match self.pending.first()?.hold {
            Some(Hold::Backoff { until }) if until > now => Some(until),
            _ => None,
        }
    }

    /// True when the oldest pending batch was refused by the sink and waits for a redrive.
    pub fn is_parked(&self) -> bool {
        self.pending.first().is_some_and(ClosedBatch::is_parked)
    }

    /// Lifts a backoff or a park (an operator's redrive); a live hand-off lease stays.
    pub fn lift_hold(&mut self) {
        if let Some(head) = self.pending.first_mut() {
            if matches!(head.hold, Some(Hold::Backoff { .. } | Hold::Parked { .. })) {
                head.hold = None;
            }
        }
    }

    /// Failed hand-offs of the oldest pending batch so far.
    pub fn head_failures(&self) -> u32 {
        self.pending.first().map_or(0, |b| b.failures)
    }

    /// Marks a change: a new version at `now`.
    fn touch(&mut self, now: Millis) {
        self.ver += 1;
        self.updated_at = now;
        self.settle_index();
    }

    /// Ends the trigger chain of an idle conversation.
    pub fn end_chain(&mut self, now: Millis) -> bool {
        if self.is_idle() && self.chain.is_some() {
            self.chain = None;
            self.touch(now);
            true
        } else {
            false
        }
    }

    /// Starts a new chain (the sweep adopts a conversation whose chain was lost).
    pub fn restart_chain(&mut self, token: u64, armed_for: Millis, now: Millis) {
        self.chain = Some(Chain { token, armed_for });
        self.touch(now);
    }
}

/// `s` with control characters as spaces: a failure reason never grows sixfold when encoded.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncated(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// A UUIDv7 from the window's opening time and 80 bits of entropy: unique forever, sortable by
/// time, and free of any phone number.
pub fn mint_batch_id(at: Millis, random: &mut dyn FnMut() -> u64) -> Uuid {
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&random().to_le_bytes());
    bytes[8..].copy_from_slice(&random().to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(at.0, &bytes).into_uuid()
}

mod supersede;
pub use supersede::Carried;

#[cfg(test)]
#[path = "window_index_test.rs"]
mod index_test;

#[cfg(test)]
#[path = "window_acked_test.rs"]
mod acked_test;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Provider;

    fn key() -> ConversationKey {
        ConversationKey::new(Provider::Meta, "pn", "user")
    }

    fn counter() -> impl FnMut() -> u64 {
        let mut n = 0;
        move || {
            n += 1;
            n
        }
    }

    #[test]
    fn first_append_opens_a_window_and_starts_a_chain() {
        let mut r = counter();
        let p = Policy::default();
        let plan = Conversation::fresh(key(), Millis(1000))
            .plan_append(Message::text("m1", "u", "hi"), &p, Millis(1000), &mut r)
            .unwrap();
        assert_eq!(plan.next.ver, 1);
        assert_eq!(plan.arm, Some(Millis(9000)));
        let w = plan.next.window.as_ref().unwrap();
        assert_eq!(w.messages[0].received_at, Millis(1000));
        assert_eq!(w.batch_id.get_version_num(), 7);
        // A second message moves the due time later: the chain still covers it, no new trigger.
        let plan2 = plan
            .next
            .plan_append(Message::text("m2", "u", "there"), &p, Millis(5000), &mut r)
            .unwrap();
        assert_eq!(plan2.arm, None);
        assert_eq!(plan2.next.due_at(), Some(Millis(13000)));
    }

    #[test]
    fn size_cap_overflow_goes_to_the_next_window_and_arms_now() {
        let mut r = counter();
        let p = Policy {
            max_messages: 2,
            ..Policy::default()
        };
        let mut c = Conversation::fresh(key(), Millis(0));
        let g0 = c.gen;
        c = c
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        let plan = c
            .plan_append(Message::text("b", "u", "2"), &p, Millis(10), &mut r)
            .unwrap();
        // Two messages reach the cap: the window closes at once with reason size.
        assert_eq!(plan.next.pending.len(), 1);
        assert_eq!(plan.next.pending[0].reason, CloseReason::Size);
        assert_eq!(plan.next.pending[0].gen, g0);
        assert_eq!(plan.arm, Some(Millis(10)));
        assert_eq!(plan.next.gen, g0 + 1);
    }

    #[test]
    fn passthrough_makes_each_message_a_batch() {
        let mut r = counter();
        let p = Policy {
            buffering: false,
            ..Policy::default()
        };
        let c = Conversation::fresh(key(), Millis(0));
        let plan = c
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap();
        assert_eq!(plan.next.pending[0].reason, CloseReason::Passthrough);
        assert!(plan.next.window.is_none());
        assert_eq!(plan.arm, Some(Millis(0)));
        let plan = plan
            .next
            .plan_append(Message::text("b", "u", "2"), &p, Millis(1), &mut r)
            .unwrap();
        assert_eq!(plan.next.pending.len(), 2);
        // The chain already covers the first pending batch, which is due earlier.
        assert_eq!(plan.arm, None);
    }

    #[test]
    fn a_lease_taken_over_fences_every_later_write() {
        let mut r = counter();
        let p = Policy::default();
        let mut c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        c.close_if_due(Millis(8000));
        let gen = c.pending[0].gen;
        assert!(c.lease_head(Millis(8000), Duration::from_secs(10), 1));
        // The first flush's sink call outlives its lease; a second flush takes it over.
        assert!(c.lease_head(Millis(18_000), Duration::from_secs(10), 2));
        let before = c.clone();
        assert!(!c.ack(gen, 1, Millis(19_000)));
        assert!(!c.hold_after_failure(gen, 1, Millis(19_000), Duration::from_secs(1), "x"));
        assert!(!c.park(gen, 1, Millis(19_000), "x"));
        assert!(!c.release(gen, 1, Millis(19_000)));
        assert_eq!(c, before, "the first flush changes nothing");
        assert!(c.ack(gen, 2, Millis(19_000)));
    }

    #[test]
    fn a_message_still_in_the_record_is_recognised() {
        let mut r = counter();
        let p = Policy::default();
        let mut c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        let g = c.gen;
        assert_eq!(c.holds_message("a"), Some(g));
        c.close_if_due(Millis(8000));
        assert_eq!(c.holds_message("a"), Some(g), "pending behind the sink");
        assert_eq!(c.holds_message("b"), None);
    }

    #[test]
    fn at_the_append_limit_every_flush_write_still_fits_the_store() {
        // Passthrough: every message becomes a pending batch (a sink that is down), until the
        // record budget refuses the next append.
        let mut r = counter();
        let p = Policy {
            buffering: false,
            ..Policy::default()
        };
        let key = ConversationKey::new(Provider::Meta, "p".repeat(256), "u".repeat(256));
        let mut c = Conversation::fresh(key, Millis(0));
        c.turn = TurnState::largest();
        let mut at = 0;
        let full = loop {
            at += 1;
            assert!(at < 1_000, "the record budget never refused an append");
            let msg = Message::text(format!("m{at:0>250}"), "u", "\"\u{1}".repeat(300));
            match c.clone().plan_append(msg, &p, Millis(at), &mut r) {
                Ok(plan) => {
                    c = plan.next;
                    assert!(c.encoded_len_bound() >= c.encoded_len(), "the bound holds");
                    assert!(
                        c.encoded_len() <= MAX_CONVERSATION_BYTES,
                        "taken over the limit"
                    );
                }
                Err(AppendRefused::Backlogged { bytes, max }) => break (bytes, max),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(full.1, MAX_CONVERSATION_BYTES);
        assert!(c.encoded_len() <= MAX_CONVERSATION_BYTES);
        assert!(
            c.encoded_len() + MAX_MESSAGE_BYTES / 2 > MAX_CONVERSATION_BYTES,
            "the test filled the record"
        );
        // The worst a flush adds: a lease, then a park with the longest reason.
        let gen = c.pending[0].gen;
        assert!(c.lease_head(
            Millis(u64::from(u32::MAX)),
            Duration::from_secs(900),
            u64::MAX
        ));
        assert!(c.park(
            gen,
            u64::MAX,
            Millis(u64::from(u32::MAX)),
            &"\"".repeat(1000)
        ));
        c.restart_chain(
            u64::MAX,
            Millis(u64::from(u32::MAX)),
            Millis(u64::from(u32::MAX)),
        );
        assert!(
            c.encoded_len_bound() >= c.encoded_len(),
            "the bound holds with holds"
        );
        let item = c.encoded_len() + c.key.storage_key().len() as u64 + 128;
        assert!(item <= STORE_ITEM_LIMIT, "{item} > {STORE_ITEM_LIMIT}");
        assert!(c.encoded_len() <= MAX_RECORD_BYTES);
        const { assert!(MAX_RECORD_BYTES + STORE_KEY_LIMIT < STORE_ITEM_LIMIT) };
    }

    #[test]
    fn a_failure_reason_is_kept_short() {
        let long = "é".repeat(300);
        let t = truncated(&long, MAX_ERROR_BYTES);
        assert!(t.len() <= MAX_ERROR_BYTES && long.starts_with(&t));
    }

    #[test]
    fn a_window_keeps_the_timing_it_opened_under() {
        let mut r = counter();
        let p = Policy::default();
        let c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        // The tenant shortens its quiet period and max wait mid-window: the open window keeps
        // 8 s / 30 s; the next window follows the new policy.
        let short = Policy::with_times(Duration::from_secs(1), Duration::from_secs(2)).unwrap();
        let mut c = c
            .plan_append(Message::text("b", "u", "2"), &short, Millis(1000), &mut r)
            .unwrap()
            .next;
        let w = c.window.as_ref().unwrap();
        assert_eq!((w.quiet_ms, w.max_wait_ms), (8000, 30_000));
        assert_eq!(c.due_at(), Some(Millis(9000)));
        assert_eq!(c.close_if_due(Millis(8999)), None);
        assert_eq!(c.close_if_due(Millis(9000)), Some(CloseReason::Quiet));
        let c = c
            .plan_append(Message::text("c", "u", "3"), &short, Millis(9500), &mut r)
            .unwrap()
            .next;
        let w = c.window.as_ref().unwrap();
        assert_eq!((w.quiet_ms, w.max_wait_ms), (1000, 2000));
        // A longer policy mid-window does not hold the open window past its own rule either.
        let long = Policy::with_times(Duration::from_secs(20), Duration::from_secs(60)).unwrap();
        let c = c
            .plan_append(Message::text("d", "u", "4"), &long, Millis(9600), &mut r)
            .unwrap()
            .next;
        let w = c.window.as_ref().unwrap();
        assert_eq!(w.due(&c.turn).at, Millis(10_600));
    }

    #[test]
    fn never_closes_early() {
        let mut r = counter();
        let p = Policy::default();
        let mut c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        assert_eq!(c.close_if_due(Millis(7999)), None);
        assert_eq!(c.close_if_due(Millis(8000)), Some(CloseReason::Quiet));
    }

    #[test]
    fn lease_blocks_a_second_hand_off_and_ack_ends_the_chain() {
        let mut r = counter();
        let p = Policy::default();
        let mut c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        c.close_if_due(Millis(8000));
        let gen = c.pending[0].gen;
        assert!(c.lease_head(Millis(8000), Duration::from_secs(30), 7));
        assert!(!c.lease_head(Millis(8001), Duration::from_secs(30), 8));
        assert_eq!(c.due_at(), Some(Millis(38000)));
        assert!(
            !c.ack(gen, 8, Millis(8002)),
            "only the lease holder records the ack"
        );
        assert!(c.ack(gen, 7, Millis(8002)));
        assert!(!c.ack(gen, 7, Millis(8003)), "a second ack is a no-op");
        assert!(c.chain.is_none());
        assert!(c.is_idle());
    }

    /// The stored size of a message with `text` received at `at`.
    fn size_at(text: &str, at: u64) -> u64 {
        let mut m = Message::text("x", "u", text);
        m.received_at = Millis(at);
        m.stored_size()
    }

    /// A record with the message "a" appended at 0 under the default policy, its window due at
    /// 8 s.
    fn one_message() -> Conversation {
        Conversation::fresh(key(), Millis(0))
            .plan_append(
                Message::text("a", "u", "1"),
                &Policy::default(),
                Millis(0),
                &mut counter(),
            )
            .unwrap()
            .next
    }

    #[test]
    fn the_store_limits_are_dynamodbs_with_the_flush_headroom_below_them() {
        // The numbers the docs and the in-memory store state: DynamoDB's 400 KB item and 2 KB
        // key, the record budget 8 KiB below the item, appends stopping 2 KiB below the budget.
        assert_eq!(STORE_ITEM_LIMIT, 409_600);
        assert_eq!(STORE_KEY_LIMIT, 2_048);
        assert_eq!(MAX_RECORD_BYTES, 401_408);
        assert_eq!(FLUSH_HEADROOM, 2_048);
        assert_eq!(MAX_CONVERSATION_BYTES, 399_360);
        assert_eq!(MAX_MESSAGE_BYTES, 163_840);
    }

    #[test]
    fn a_zero_failure_count_is_left_out_of_the_record_and_any_other_is_kept() {
        let mut c = one_message();
        c.close_if_due(Millis(8000));
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("failures"), "{json}");
        c.pending[0].failures = 2;
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"failures\":2"), "{json}");
        let back: Conversation = serde_json::from_str(&json).unwrap();
        assert_eq!(back.head_failures(), 2);
        assert_eq!(back, c);
    }

    #[test]
    fn the_encoded_length_is_the_json_the_store_writes() {
        let c = one_message();
        let json = serde_json::to_vec(&c).unwrap();
        assert_eq!(c.encoded_len(), json.len() as u64);
        assert!(c.encoded_len() > 100);
        assert!(c.encoded_len_bound() >= c.encoded_len());
    }

    #[test]
    fn stored_bytes_count_the_open_window_and_every_pending_batch() {
        let mut r = counter();
        let p = Policy::default();
        let mut c = one_message();
        let first = c.window.as_ref().unwrap().bytes;
        assert_eq!(first, size_at("1", 0));
        assert_eq!(c.stored_bytes(), first);
        c.close_if_due(Millis(8000));
        c = c
            .plan_append(Message::text("b", "u", "22"), &p, Millis(9000), &mut r)
            .unwrap()
            .next;
        c = c
            .plan_append(Message::text("c", "u", "333"), &p, Millis(9001), &mut r)
            .unwrap()
            .next;
        let open = c.window.as_ref().unwrap().bytes;
        assert_eq!(open, size_at("22", 9000) + size_at("333", 9001));
        assert_eq!(c.stored_bytes(), first + open);
        assert_eq!(c.pending_gens().collect::<Vec<_>>(), vec![c.gen - 1]);
    }

    #[test]
    fn pending_generations_are_listed_oldest_first() {
        let mut r = counter();
        let p = Policy {
            buffering: false,
            ..Policy::default()
        };
        let mut c = Conversation::fresh(key(), Millis(5));
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            c = c
                .plan_append(
                    Message::text(id, "u", "x"),
                    &p,
                    Millis(10 + i as u64),
                    &mut r,
                )
                .unwrap()
                .next;
        }
        assert_eq!(c.pending_gens().collect::<Vec<_>>(), vec![5, 6, 7]);
        assert_eq!(c.gen, 8);
    }

    #[test]
    fn a_message_never_sorts_before_one_already_held() {
        // A host whose clock is behind: the message takes the latest receive time held, from the
        // open window or, with none, from the newest pending batch.
        let mut r = counter();
        let p = Policy::default();
        let c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(5000), &mut r)
            .unwrap()
            .next;
        let c = c
            .plan_append(Message::text("b", "u", "2"), &p, Millis(4000), &mut r)
            .unwrap()
            .next;
        let w = c.window.as_ref().unwrap();
        assert_eq!(w.messages[1].received_at, Millis(5000));
        let mut c = c;
        c.close_if_due(Millis(13_000));
        let c = c
            .plan_append(Message::text("c", "u", "3"), &p, Millis(4500), &mut r)
            .unwrap()
            .next;
        assert_eq!(
            c.window.as_ref().unwrap().messages[0].received_at,
            Millis(5000)
        );
    }

    #[test]
    fn a_chain_is_presumed_lost_only_past_the_overdue_slack() {
        let p = Policy::default();
        let slack = duration_ms(OVERDUE_SLACK);
        // Due at 8 s with a live chain: an append at exactly due + slack trusts the chain (the
        // due time only moves later), one a millisecond later starts a new chain.
        let at_slack = one_message()
            .plan_append(
                Message::text("b", "u", "2"),
                &p,
                Millis(8000 + slack),
                &mut counter(),
            )
            .unwrap();
        assert_eq!(at_slack.arm, None);
        let past = one_message()
            .plan_append(
                Message::text("b", "u", "2"),
                &p,
                Millis(8000 + slack + 1),
                &mut counter(),
            )
            .unwrap();
        assert_eq!(past.arm, Some(Millis(8000 + slack + 1 + 8000)));
        assert_eq!(past.next.chain.map(|ch| ch.armed_for), past.arm);
    }

    #[test]
    fn a_message_of_exactly_the_largest_size_is_taken_and_one_byte_more_is_refused() {
        let p = Policy {
            max_bytes: 2 * MAX_MESSAGE_BYTES,
            ..Policy::default()
        };
        let base = size_at("", 1000);
        let exact = "x".repeat((MAX_MESSAGE_BYTES - base) as usize);
        assert_eq!(size_at(&exact, 1000), MAX_MESSAGE_BYTES);
        let c = Conversation::fresh(key(), Millis(0));
        let plan = c
            .clone()
            .plan_append(
                Message::text("m", "u", &exact),
                &p,
                Millis(1000),
                &mut counter(),
            )
            .unwrap();
        assert_eq!(plan.next.stored_bytes(), MAX_MESSAGE_BYTES);
        let over = format!("{exact}x");
        assert_eq!(
            c.plan_append(
                Message::text("m", "u", over),
                &p,
                Millis(1000),
                &mut counter()
            )
            .unwrap_err(),
            AppendRefused::TooLarge {
                size: MAX_MESSAGE_BYTES + 1,
                max: MAX_MESSAGE_BYTES
            }
        );
    }

    #[test]
    fn a_window_filled_to_exactly_its_byte_cap_is_one_batch_and_a_byte_more_overflows() {
        let mut r = counter();
        let (s1, s2) = (size_at("first", 0), size_at("second", 10));
        let exact = Policy {
            max_bytes: s1 + s2,
            ..Policy::default()
        };
        let c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "first"), &exact, Millis(0), &mut r)
            .unwrap()
            .next;
        assert_eq!(c.window.as_ref().unwrap().bytes, s1);
        // Exactly the cap: both messages close together, by size.
        let plan = c
            .clone()
            .plan_append(
                Message::text("b", "u", "second"),
                &exact,
                Millis(10),
                &mut r,
            )
            .unwrap();
        assert!(plan.next.window.is_none());
        assert_eq!(plan.next.pending.len(), 1);
        assert_eq!(plan.next.pending[0].messages.len(), 2);
        assert_eq!(plan.next.pending[0].bytes, s1 + s2);
        assert_eq!(plan.next.pending[0].reason, CloseReason::Size);
        // One byte under the two: the first closes alone and the second opens the next window.
        let tight = Policy {
            max_bytes: s1 + s2 - 1,
            ..Policy::default()
        };
        let plan = c
            .plan_append(
                Message::text("b", "u", "second"),
                &tight,
                Millis(10),
                &mut r,
            )
            .unwrap();
        assert_eq!(plan.next.pending.len(), 1);
        assert_eq!(plan.next.pending[0].messages.len(), 1);
        assert_eq!(plan.next.pending[0].bytes, s1);
        let w = plan.next.window.as_ref().unwrap();
        assert_eq!((w.messages.len(), w.bytes), (1, s2));
        assert_eq!(plan.gen, plan.next.pending[0].gen + 1);
    }

    #[test]
    fn a_message_cap_lowered_mid_window_closes_the_window_before_the_next_message() {
        let mut r = counter();
        let wide = Policy {
            max_messages: 5,
            ..Policy::default()
        };
        let mut c = Conversation::fresh(key(), Millis(0));
        for (i, id) in ["a", "b"].into_iter().enumerate() {
            c = c
                .plan_append(Message::text(id, "u", "x"), &wide, Millis(i as u64), &mut r)
                .unwrap()
                .next;
        }
        let two = Policy {
            max_messages: 2,
            ..Policy::default()
        };
        let plan = c
            .plan_append(Message::text("c", "u", "x"), &two, Millis(2), &mut r)
            .unwrap();
        assert_eq!(plan.next.pending.len(), 1);
        assert_eq!(plan.next.pending[0].messages.len(), 2);
        assert_eq!(plan.next.pending[0].reason, CloseReason::Size);
        assert_eq!(plan.next.window.as_ref().unwrap().messages.len(), 1);
    }

    #[test]
    fn two_messages_under_a_cap_of_two_are_one_batch() {
        let mut r = counter();
        let p = Policy {
            max_messages: 2,
            ..Policy::default()
        };
        let c = Conversation::fresh(key(), Millis(0))
            .plan_append(Message::text("a", "u", "1"), &p, Millis(0), &mut r)
            .unwrap()
            .next;
        assert_eq!(c.window.as_ref().unwrap().messages.len(), 1);
        let plan = c
            .plan_append(Message::text("b", "u", "2"), &p, Millis(10), &mut r)
            .unwrap();
        assert!(plan.next.window.is_none());
        let ids: Vec<_> = plan.next.pending[0]
            .messages
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn a_record_of_exactly_the_append_limit_is_taken_and_one_byte_more_is_refused() {
        // Passthrough batches behind a sink that is down fill the record; the last message is
        // sized so the record lands exactly on the limit.
        let mut r = counter();
        let p = Policy {
            buffering: false,
            ..Policy::default()
        };
        let chunk = "y".repeat(100_000);
        let mut c = Conversation::fresh(key(), Millis(0));
        for i in 0..3 {
            c = c
                .plan_append(
                    Message::text(format!("m{i}"), "u", &chunk),
                    &p,
                    Millis(1),
                    &mut r,
                )
                .unwrap()
                .next;
        }
        let append = |c: &Conversation, len: usize| {
            c.clone().plan_append(
                Message::text("last", "u", "z".repeat(len)),
                &p,
                Millis(1),
                &mut counter(),
            )
        };
        // One more byte of text is one more byte of record (or, rarely, two: a size field
        // gaining a digit), so some length lands exactly on the limit.
        let probe = append(&c, 0).unwrap().next.encoded_len();
        let mut len = (MAX_CONVERSATION_BYTES - probe) as usize - 8;
        let exact = loop {
            let plan = append(&c, len).expect("still under the limit");
            match plan.next.encoded_len() {
                n if n == MAX_CONVERSATION_BYTES => break len,
                n if n < MAX_CONVERSATION_BYTES => len += 1,
                n => panic!("jumped over the limit to {n} at {len}"),
            }
        };
        let taken = append(&c, exact).unwrap();
        assert!(
            taken.next.encoded_len_bound() > MAX_CONVERSATION_BYTES,
            "encoded, not bound"
        );
        assert_eq!(
            append(&c, exact + 1).unwrap_err(),
            AppendRefused::Backlogged {
                bytes: MAX_CONVERSATION_BYTES + 1,
                max: MAX_CONVERSATION_BYTES
            }
        );
    }

    #[test]
    fn the_first_hand_off_freezes_whether_more_is_pending() {
        let lease = Duration::from_secs(30);
        // One batch, nothing behind it.
        let mut c = one_message();
        c.close_if_due(Millis(8000));
        assert!(c.lease_head(Millis(8000), lease, 1));
        assert_eq!(c.pending[0].more_pending, Some(false));
        // One batch and an open window behind it.
        let mut c = one_message();
        c.close_if_due(Millis(8000));
        let mut c = c
            .plan_append(
                Message::text("b", "u", "2"),
                &Policy::default(),
                Millis(8001),
                &mut counter(),
            )
            .unwrap()
            .next;
        assert!(c.lease_head(Millis(8001), lease, 1));
        assert_eq!(c.pending[0].more_pending, Some(true));
        // Two batches.
        let p = Policy {
            buffering: false,
            ..Policy::default()
        };
        let mut r = counter();
        let mut c = Conversation::fresh(key(), Millis(0));
        for id in ["a", "b"] {
            c = c
                .plan_append(Message::text(id, "u", "x"), &p, Millis(1), &mut r)
                .unwrap()
                .next;
        }
        assert!(c.lease_head(Millis(1), lease, 1));
        assert_eq!(c.pending[0].more_pending, Some(true));
    }

    #[test]
    fn a_released_lease_frees_the_batch_at_once() {
        let mut c = one_message();
        c.close_if_due(Millis(8000));
        let gen = c.pending[0].gen;
        assert!(c.lease_head(Millis(8000), Duration::from_secs(30), 7));
        let ver = c.ver;
        assert!(c.release(gen, 7, Millis(8001)));
        assert_eq!(c.pending[0].hold, None);
        assert_eq!((c.ver, c.updated_at), (ver + 1, Millis(8001)));
        assert!(c.lease_head(Millis(8002), Duration::from_secs(30), 8));
    }

    #[test]
    fn failures_are_counted_and_a_parked_batch_is_out_of_the_chain_and_the_sweep() {
        let mut c = one_message();
        c.close_if_due(Millis(8000));
        let gen = c.pending[0].gen;
        assert_eq!(c.head_failures(), 0);
        assert_eq!(c.hand_off_due(), Some(Millis(8000)));
        // The index keeps the window's bound (first message + max wait) until a hold.
        assert_eq!(c.index_due(), Some(Millis(30_000)));
        for (token, at) in [(1, 8000), (2, 20_000)] {
            assert!(c.lease_head(Millis(at), Duration::from_secs(10), token));
            assert!(c.hold_after_failure(gen, token, Millis(at), Duration::from_secs(2), "503"));
        }
        assert_eq!(c.head_failures(), 2);
        assert_eq!(c.index_due(), Some(Millis(22_000)));
        assert!(c.lease_head(Millis(22_000), Duration::from_secs(10), 3));
        assert!(c.park(gen, 3, Millis(22_000), "410 gone"));
        assert_eq!(c.head_failures(), 3);
        assert_eq!(
            c.hand_off_due(),
            None,
            "no trigger chain for a parked batch"
        );
        assert_eq!(c.due_at(), None);
        assert_eq!(
            c.index_due(),
            Some(PARKED),
            "filed after every real due time"
        );
    }

    #[test]
    fn only_an_idle_conversation_with_a_chain_ends_it() {
        let mut busy = one_message();
        let before = busy.clone();
        assert!(busy.chain.is_some());
        assert!(!busy.end_chain(Millis(1)), "work is left");
        assert_eq!(busy, before);
        let mut idle = Conversation::fresh(key(), Millis(0));
        assert!(!idle.end_chain(Millis(1)), "no chain to end");
        assert_eq!(idle.ver, 0);
        idle.restart_chain(5, Millis(1), Millis(1));
        assert!(idle.end_chain(Millis(2)));
        assert_eq!((idle.chain, idle.ver), (None, 2));
    }

    #[test]
    fn a_failure_reason_is_cut_on_a_character_boundary() {
        let s = format!("a{}", "é".repeat(300));
        let t = truncated(&s, MAX_ERROR_BYTES);
        assert_eq!(t, format!("a{}", "é".repeat(99)));
        assert_eq!(truncated("short", MAX_ERROR_BYTES), "short");
    }

    #[test]
    fn the_size_bound_holds_up_to_the_limit_with_the_smallest_messages() {
        // The cheapest messages in the largest windows: the most messages a record can hold, so
        // the bound's per-message allowance (a separator each) and its key allowance matter most. Near the limit, where
        // the append decision rests on it, the bound never falls below the encoding.
        let mut r = counter();
        let p = Policy {
            max_messages: u32::MAX,
            max_bytes: crate::policy::MAX_WINDOW_BYTES,
            ..Policy::default()
        };
        // The longest key, of characters JSON escapes sixfold (nothing refuses them in a key).
        let part = "\u{1}".repeat(crate::key::MAX_KEY_PART_BYTES);
        let key =
            ConversationKey::new(Provider::Evolution, part.clone(), part.clone()).in_group(part);
        assert!(key.check_lengths("m").is_ok(), "a key ingestion accepts");
        let mut c = Conversation::fresh(key, Millis(0));
        let (mut near, mut batches) = (0, 0);
        for n in 0.. {
            assert!(n < 10_000, "the record budget never refused an append");
            // Not cloned: a record of thousands of messages, appended to thousands of times.
            c = match c.plan_append(Message::text("", "", ""), &p, Millis(1), &mut r) {
                Ok(plan) => plan.next,
                Err(AppendRefused::Backlogged { .. }) => break,
                Err(e) => panic!("{e}"),
            };
            batches = c.pending.len();
            if c.encoded_len_bound() + 10_000 >= MAX_CONVERSATION_BYTES {
                near += 1;
                assert!(c.encoded_len_bound() >= c.encoded_len());
                assert!(c.encoded_len() <= MAX_CONVERSATION_BYTES);
            }
        }
        assert!(near > 50, "the record came near the limit");
        assert!(batches >= 2, "in windows of thousands of messages");
    }
}
