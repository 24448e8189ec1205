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
    /// The quiet period in force at the last append, in ms (the flush needs no tenant config).
    pub quiet_ms: u64,
    /// The max wait in force at the last append, in ms.
    pub max_wait_ms: u64,
    /// Stored size of `messages`, for the size cap.
    pub bytes: u64,
    pub messages: Vec<Message>,
}

impl OpenWindow {
    /// When this window is due, and why: the earlier of quiet period after the last message and
    /// max wait after the first.
    pub fn due(&self) -> (Millis, CloseReason) {
        let quiet = Millis(self.last_at.0.saturating_add(self.quiet_ms));
        let max = Millis(self.opened_at.0.saturating_add(self.max_wait_ms));
        if quiet <= max {
            (quiet, CloseReason::Quiet)
        } else {
            (max, CloseReason::MaxWait)
        }
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
    pub messages: Vec<Message>,
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
            updated_at: now,
            index_at: None,
            dedupe_until: None,
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
            Some(b) => Some(b.closed_at),
            None => self.window.as_ref().map(|w| w.due().0),
        }
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

    /// The long-horizon dedupe records of the oldest pending batch, expiring at `expires_at`,
    /// and the record noting them: what the flush writes before acknowledging that batch.
    pub fn dedupe_records_of_head(
        &mut self,
        expires_at: Millis,
    ) -> Vec<crate::ports::DedupeRecord> {
        let Some(head) = self.pending.first() else {
            return Vec::new();
        };
        let records = head
            .messages
            .iter()
            .map(|m| crate::ports::DedupeRecord {
                key: self.key.clone(),
                message_id: m.id.clone(),
                gen: head.gen,
                expires_at,
            })
            .collect();
        // A legacy marker resolves here: every dedupe record its appends wrote expires before
        // this one (written later, with the same horizon).
        self.dedupe_until = Some(match self.dedupe_until {
            Some(d) if d != LEGACY_DEDUPE => d.max(expires_at),
            _ => expires_at,
        });
        records
    }

    /// When a flush can next make progress: like [`Self::hand_off_due`], but a held batch only
    /// when its lease or backoff runs out, and a parked one never (until a redrive). This is the
    /// due time the sweep's index holds.
    pub fn due_at(&self) -> Option<Millis> {
        match self.pending.first() {
            Some(b) => match b.hold {
                None => Some(b.closed_at),
                Some(Hold::Lease { until, .. } | Hold::Backoff { until }) => {
                    Some(until.max(b.closed_at))
                }
                Some(Hold::Parked { .. }) => None,
            },
            None => self.window.as_ref().map(|w| w.due().0),
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
            None => self
                .window
                .as_ref()
                .map(|w| Millis(w.opened_at.0.saturating_add(w.max_wait_ms)).max(w.due().0)),
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
            + key
            + PER_RECORD
            + PER_BATCH * (self.pending.len() as u64 + 1)
    }

    /// Bytes of messages held: open window plus pending batches.
    pub fn stored_bytes(&self) -> u64 {
        self.window.as_ref().map_or(0, |w| w.bytes)
            + self.pending.iter().map(|b| b.bytes).sum::<u64>()
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
            let due_at = match reason {
                CloseReason::Quiet | CloseReason::MaxWait => w.due().0.min(now),
                CloseReason::Size | CloseReason::Passthrough => now,
            };
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
                messages: w.messages,
            });
            self.gen += 1;
        }
    }

    /// Closes the open window if it is due at `now`; returns the reason when it did.
    pub fn close_if_due(&mut self, now: Millis) -> Option<CloseReason> {
        let (due, reason) = self.window.as_ref()?.due();
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
        let w = self.window.get_or_insert_with(|| OpenWindow {
            batch_id: mint_batch_id(at, random),
            opened_at: at,
            last_at: at,
            quiet_ms: 0,
            max_wait_ms: 0,
            bytes: 0,
            messages: Vec::new(),
        });
        w.last_at = at;
        w.quiet_ms = duration_ms(policy.quiet);
        w.max_wait_ms = duration_ms(policy.max_wait);
        w.bytes += size;
        w.messages.push(msg);
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
        // A live chain fires no later than the due time it covered; due times only move later
        // as messages arrive, unless a size cap or passthrough closed a batch just now. Only then,
        // or with no chain at all, does this append start a new chain.
        let due = self.hand_off_due();
        let arm = match (self.chain, covered_until, due) {
            (Some(_), Some(covered), Some(due)) if due >= covered && !overdue => None,
            (_, _, due) => due,
        };
        if let Some(armed_for) = arm {
            self.chain = Some(Chain {
                token: random(),
                armed_for,
            });
        }
        Ok(AppendPlan {
            next: self,
            gen,
            arm,
        })
    }

    /// Takes the hand-off lease on the oldest pending batch, freezing `more_pending` at its first
    /// hand-off. Returns false when a live lease, a backoff or a park holds it.
    pub fn lease_head(&mut self, now: Millis, lease: Duration, token: u64) -> bool {
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
        self.pending.remove(0);
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

#[cfg(test)]
#[path = "window_index_test.rs"]
mod index_test;

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
        let mut at = 0;
        let full = loop {
            at += 1;
            let msg = Message::text(format!("m{at:0>250}"), "u", "\"\u{1}".repeat(300));
            match c.clone().plan_append(msg, &p, Millis(at), &mut r) {
                Ok(plan) => {
                    c = plan.next;
                    assert!(c.encoded_len_bound() >= c.encoded_len(), "the bound holds");
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
}
