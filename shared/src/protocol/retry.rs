//! The conditional write retried after lost races, written once for every path that writes a
//! conversation record: read the record, decide from it what to write (or answer at once), write
//! conditional on the version read, and after a lost race decide again from the record that won,
//! until the attempts run out.
//!
//! A lost race costs no read: the store hands back the record that won (DynamoDB's
//! `ReturnValuesOnConditionCheckFailure`; every adapter does the same, pinned by the store
//! contract), and `None` there means there is no record at all. So a decision sees either the
//! first read or the winner the port returned, never a second read of what the port already said.
//!
//! A caller drives a [`Race`] with `while let Some((current, attempt)) = race.attempt()`, deciding
//! in the loop's body and ending with [`Race::append`] or [`Race::replace`]; everything else
//! (pairing the write with the version decided on, counting the lost race, taking the winner,
//! the backoff, the budget) is here. A loop rather than a closure because a decision may await
//! the store (a dedupe lookup, dedupe records written before the write), and a future that
//! awaits an async closure's call is not provably `Send` to rustc (the webhook's shells box
//! these futures as `Send`).
//!
//! The flush's executor loop (`Handoff::flush_until`) is the one writer not built on a race: see
//! its doc comment.

use std::time::Duration;

use metrics::counter;

use crate::key::ConversationKey;
use crate::metrics as m;
use crate::ports::{Clock, StoreError, WindowStore, Written};
use crate::window::Conversation;

/// Every attempt lost its race (`.0` attempts): each caller's error has a `Contended` variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Contended(pub u32);

/// The store error for a record that vanished under a writer holding it (a replace found none).
pub(super) fn vanished() -> StoreError {
    StoreError::Corrupt("conversation record vanished".into())
}

/// The record that won a race a replace lost (`latest`, as the port returned it); none: it
/// [`vanished`].
pub(super) fn winner(latest: Option<Box<Conversation>>) -> Result<Conversation, StoreError> {
    latest.map(|b| *b).ok_or_else(vanished)
}

/// How soon a lost race is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pace {
    /// After a jittered backoff, from the third lost race on: appends and pauses, where many
    /// requests of one busy conversation race each other.
    BackOff,
    /// At once: the trigger path (one hand-off of a conversation runs at a time), the reply
    /// guard and a duplicate's re-arm (one request's single write each).
    AtOnce,
}

/// The retry rule of one path: how many attempts, and how soon.
pub(super) struct Retry<'a, S, C> {
    pub store: &'a S,
    pub clock: &'a C,
    /// Attempts before giving up ([`super::BufferConfig::max_write_attempts`]).
    pub attempts: u32,
    pub pace: Pace,
}

impl<'a, S: WindowStore, C: Clock> Retry<'a, S, C> {
    /// A race over the record of `key` as read now; its lost races are counted under `op`.
    pub async fn load(
        self,
        key: &ConversationKey,
        op: &'static str,
    ) -> Result<Race<'a, S, C>, StoreError> {
        let current = self.store.load(key).await?;
        Ok(self.over(current, op))
    }

    /// A race over `current`, a record the caller holds (`None`: there is none).
    pub fn over(self, current: Option<Conversation>, op: &'static str) -> Race<'a, S, C> {
        Race {
            rule: self,
            op,
            current,
            expected: None,
            attempt: 0,
        }
    }
}

/// One conditional write being retried: see the module doc.
pub(super) struct Race<'a, S, C> {
    rule: Retry<'a, S, C>,
    op: &'static str,
    /// The record as last seen, until [`Self::attempt`] hands it out.
    current: Option<Conversation>,
    /// The version of the record last handed out (`None`: there was none).
    expected: Option<u64>,
    /// Attempts made so far.
    attempt: u32,
}

impl<S: WindowStore, C: Clock> Race<'_, S, C> {
    /// The next attempt: the record as last seen (to decide from and build the next one on) and
    /// the attempt's number from 0; `None` once every attempt lost its race ([`Self::contended`]).
    pub fn attempt(&mut self) -> Option<(Option<Conversation>, u32)> {
        if self.attempt >= self.rule.attempts {
            return None;
        }
        let current = self.current.take();
        self.expected = current.as_ref().map(|c| c.ver);
        self.attempt += 1;
        Some((current, self.attempt - 1))
    }

    /// Writes `next` with the store's `append` (the write that stores a message), conditional on
    /// the version handed out, or on there being no record. True when it landed; false when the
    /// race was lost (then the next [`Self::attempt`] hands out the record that won).
    pub async fn append(&mut self, next: &Conversation) -> Result<bool, StoreError> {
        let written = self.rule.store.append(self.expected, next).await?;
        Ok(self.landed(written).await)
    }

    /// Writes `next` with the store's `replace`, conditional on the version handed out, as
    /// [`Self::append`]. The attempt must have handed out a record: with none, it [`vanished`].
    pub async fn replace(&mut self, next: &Conversation) -> Result<bool, StoreError> {
        let expected = self.expected.ok_or_else(vanished)?;
        let written = self.rule.store.replace(expected, next).await?;
        Ok(self.landed(written).await)
    }

    /// What every attempt losing its race comes to.
    pub fn contended(&self) -> Contended {
        Contended(self.rule.attempts)
    }

    /// True when `written` landed; a lost race is counted, its winner kept for the next attempt,
    /// and paced as the rule says.
    async fn landed(&mut self, written: Written) -> bool {
        let Written::Conflict(latest) = written else {
            return true;
        };
        counter!(m::WRITE_CONFLICTS, "op" => self.op).increment(1);
        self.current = latest.map(|b| *b);
        let lost = self.attempt - 1;
        if self.rule.pace == Pace::BackOff && lost >= 2 {
            self.backoff(lost).await;
        }
        false
    }

    /// Jittered exponential backoff after `attempt` lost races: up to 1 ms, 2 ms, 4 ms ... 64 ms.
    async fn backoff(&self, attempt: u32) {
        let cap_ms = 1u64 << attempt.min(6);
        let ms = self.rule.clock.random() % (cap_ms + 1);
        if ms > 0 {
            self.rule.clock.sleep(Duration::from_millis(ms)).await;
        }
    }
}
