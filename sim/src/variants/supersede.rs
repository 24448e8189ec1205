//! Deliberately broken reply guards and supersedes (issue 26), each caught by the invariant it
//! breaks (`check/guard_never_stale.rs`, `check/context_only_from_superseded.rs`):
//!
//! - [`GuardIgnoresOpenWindow`] (`guard-ignores-open-window`): the guard looks only for batches
//!   closed after its own, not at the open window, so "and one coke" still in the window gets
//!   `current`: the bot sends a reply to half the thought.
//! - [`GuardCachesReads`] (`guard-caches-reads`): the guard answers from a record it read up to
//!   [`CACHED_FOR`] ago (a cache in front of the store, or an eventually consistent read), so a
//!   bot polling on `typing` is told `typing` after the user's next message was accepted.
//! - `carries-unsuperseded` ([`carries_unsuperseded`]): the flush marks every batch of a supersede
//!   tenant superseded when it writes it, asked or not, so the next batch repeats a batch whose
//!   reply the bot sent.
//! - `context-from-wrong-batch` ([`context_from_wrong_batch`]): the carried context names the
//!   batch that carries it instead of the one it came from.

use crate::guard::{GuardAnswer, GuardClaim};
use crate::key::ConversationKey;
use crate::ports::{DedupeRecord, StoreError, WindowStore, Written};
use crate::protocol::BufferConfig;
use crate::time::Millis;
use crate::turn::TypingRule;
use crate::window::Conversation;

use super::FlushOver;
use crate::exec::SimPorts;
use crate::sut::{Boxed, Lull, SystemUnderTest};

/// lull, but the guard answers `current` unless a batch closed after its own.
pub(crate) struct GuardIgnoresOpenWindow {
    pub lull: Lull,
    pub ports: SimPorts,
}

impl SystemUnderTest for GuardIgnoresOpenWindow {
    fn lull(&self) -> Lull {
        self.lull.clone()
    }

    fn guard(
        &self,
        claim: GuardClaim,
        typing: Option<TypingRule>,
    ) -> Boxed<Result<GuardAnswer, String>> {
        let (b, p) = (self.lull.buffer.clone(), self.ports.clone());
        Box::pin(async move {
            let conv = p.load(&claim.key).await.map_err(|e| e.to_string())?;
            let closed_after: usize = (conv.iter().flat_map(|c| &c.pending))
                .filter(|b| b.gen > claim.gen)
                .map(|b| b.messages.len())
                .sum();
            if closed_after == 0 {
                // The bug: the open window is never looked at.
                return Ok(GuardAnswer::Current);
            }
            b.intake()
                .guard(&claim, typing)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// How long [`GuardCachesReads`] serves a record it read.
pub(crate) const CACHED_FOR: std::time::Duration = std::time::Duration::from_secs(5);

type Cache = std::collections::HashMap<ConversationKey, (Millis, Option<Conversation>)>;

/// lull's guard answer, but from a record read up to [`CACHED_FOR`] ago (it never writes).
pub(crate) struct GuardCachesReads {
    pub lull: Lull,
    pub ports: SimPorts,
    pub cache: std::sync::Arc<std::sync::Mutex<Cache>>,
}

impl SystemUnderTest for GuardCachesReads {
    fn lull(&self) -> Lull {
        self.lull.clone()
    }

    fn guard(
        &self,
        claim: GuardClaim,
        typing: Option<TypingRule>,
    ) -> Boxed<Result<GuardAnswer, String>> {
        let (p, cache) = (self.ports.clone(), self.cache.clone());
        Box::pin(async move {
            let lock = || cache.lock().unwrap_or_else(|e| e.into_inner());
            let now = crate::ports::Clock::now(&p);
            let cached = (lock().get(&claim.key))
                .filter(|(at, _)| now.since(*at) < CACHED_FOR)
                .map(|(_, c)| c.clone());
            let conv = match cached {
                Some(conv) => conv,
                None => {
                    let conv = p.load(&claim.key).await.map_err(|e| e.to_string())?;
                    lock().insert(claim.key.clone(), (now, conv.clone()));
                    conv
                }
            };
            crate::guard::answer_typing(conv.as_ref(), &claim, now, typing)
                .map_err(|e| e.to_string())
        })
    }
}

/// The simulated store, with every record the flush writes passed through `rewrite` first.
#[derive(Clone)]
pub(crate) struct RewritingStore {
    ports: SimPorts,
    rewrite: fn(&mut Conversation),
}

impl WindowStore for RewritingStore {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        self.ports.load(key).await
    }

    async fn append(
        &self,
        expected: Option<u64>,
        next: &Conversation,
    ) -> Result<Written, StoreError> {
        let mut next = next.clone();
        (self.rewrite)(&mut next);
        self.ports.append(expected, &next).await
    }

    async fn seen(
        &self,
        key: &ConversationKey,
        message_id: &str,
        now: Millis,
    ) -> Result<Option<DedupeRecord>, StoreError> {
        self.ports.seen(key, message_id, now).await
    }

    async fn remember(&self, records: &[DedupeRecord]) -> Result<(), StoreError> {
        self.ports.remember(records).await
    }

    async fn replace(&self, expected: u64, next: &Conversation) -> Result<Written, StoreError> {
        let mut next = next.clone();
        (self.rewrite)(&mut next);
        self.ports.replace(expected, &next).await
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<ConversationKey>, StoreError> {
        self.ports.due(now, limit).await
    }
}

/// lull whose flush writes through a [`RewritingStore`] with `rewrite`.
fn flush_rewriting(
    ports: &SimPorts,
    config: BufferConfig,
    lull: Lull,
    rewrite: fn(&mut Conversation),
) -> FlushOver<RewritingStore> {
    let store = RewritingStore {
        ports: ports.clone(),
        rewrite,
    };
    FlushOver::new(store, ports, config, lull)
}

/// lull, but its flush marks every batch that may be superseded as superseded.
pub(crate) fn carries_unsuperseded(
    ports: &SimPorts,
    config: BufferConfig,
    lull: Lull,
) -> FlushOver<RewritingStore> {
    flush_rewriting(ports, config, lull, |c| {
        for b in &mut c.pending {
            if b.can_be_superseded() {
                b.superseded = true;
            }
        }
    })
}

/// lull, but a batch's carried context names the batch carrying it.
pub(crate) fn context_from_wrong_batch(
    ports: &SimPorts,
    config: BufferConfig,
    lull: Lull,
) -> FlushOver<RewritingStore> {
    flush_rewriting(ports, config, lull, |c| {
        for b in &mut c.pending {
            if let Some(k) = &mut b.carried {
                k.batch_id = b.batch_id;
            }
        }
        if let Some(w) = &mut c.window {
            if let Some(k) = &mut w.carried {
                k.batch_id = w.batch_id;
            }
        }
    })
}
