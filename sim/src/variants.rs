//! Deliberately broken protocols, to prove the checker can fail. Each is a short rewrite of one
//! step of lull's protocol with one known bug; the simulator must report violations for each.
//!
//! - [`replaced`]: the design lull replaces (Redis get/setex plus `setTimeout`): read the buffer,
//!   mark it processed, write it back without a version condition; a message arriving after the
//!   mark starts a new buffer that nobody schedules; no retry when the hand-off fails.
//! - [`flush_ack_first`]: marks a batch acknowledged before the sink answered.
//! - [`append_separate_dedupe`]: writes the dedupe record in a write of its own, before the
//!   append, so a crash between the two turns the gateway's retry into a "duplicate".
//! - [`late_dedupe`] (`remembers-late`): the flush writes the long-horizon dedupe records of the ids an
//!   acknowledgement pushes out of the record after that write instead of before, so a crash
//!   between the two leaves a gateway's resend of an acknowledged message unrecognised: it is
//!   handed off again.
//! - [`late_dedupe`] (`drops-unremembered`): the flush drops the ids an acknowledgement pushes out of the
//!   record's list of acknowledged ids without writing their dedupe records at all.
//! - [`StampsEarly`]: the webhook stamps `received_at` from a clock 2 s behind, so windows close
//!   2 s early by lull's own timestamps; only a checker on the world's clock sees it.
//! - [`IgnoresPause`]: answers an operator pause as stored but stores nothing, so the bot
//!   answers a conversation a human has taken over.
//! - [`FollowsLatestPolicy`]: an open window takes the quiet period and max wait of every
//!   append's policy, so a tenant that shortens its quiet period mid-window closes the window
//!   before the rule it opened under said.
//! - [`AppliesEditsTwice`]: forgets which edits it applied, so a provider's retry of an edit is
//!   applied again (back over a later edit, or handed off again as an `edit` message).
//! - [`ForgetsRevokes`]: answers an unsend as stored but stores nothing, so the AI reads what the
//!   user deleted.
//! - `supersede.rs`: a guard that ignores the open window, one that answers from a cached read, a
//!   flush that supersedes batches nobody
//!   superseded, a context that names the wrong batch.

mod supersede;

pub(crate) use supersede::{
    carries_unsuperseded, context_from_wrong_batch, GuardCachesReads, GuardIgnoresOpenWindow,
};

use std::sync::Arc;
use std::time::Duration;

use crate::batch::{Batch, CloseReason};
use crate::key::ConversationKey;
use crate::message::Message;
use crate::policy::Policy;
use crate::ports::{
    Appended, Clock, DedupeRecord, Sink, Trigger, TriggerMsg, WindowStore, Written,
};
use crate::window::{mint_batch_id, Chain, Conversation};

use super::exec::{Event, Op, OpResult, SimPorts};
use super::sut::{answer, buffer, Answer, Boxed, Flushed, Lull, SimBuffer, SystemUnderTest};
use crate::protocol::{Buffer, BufferConfig};

/// Marks a replaced-design buffer as processed.
const PROCESSED: u64 = u64::MAX;

fn trigger(conv: &Conversation, chain: u64, at: crate::Millis) -> TriggerMsg {
    TriggerMsg {
        key: conv.key.clone(),
        chain,
        gen: conv.gen,
        ver: conv.ver,
        due: at,
    }
}

async fn put_if_version(
    p: &SimPorts,
    expected: Option<u64>,
    next: &Conversation,
) -> Result<Written, String> {
    let op = Op::PutIfVersion {
        expected,
        next: Box::new(next.clone()),
    };
    match p.call(op).await {
        OpResult::Written(r) => r.map_err(|e| e.to_string()),
        other => Err(format!("unexpected {other:?}")),
    }
}

/// Bug: the dedupe record is its own write. A crash after it and before the append loses the
/// message: the retry is refused as a duplicate.
pub(crate) async fn append_separate_dedupe(
    p: &SimPorts,
    key: &ConversationKey,
    policy: &Policy,
    msg: Message,
) -> Result<&'static str, String> {
    let now = p.now();
    let dedupe = DedupeRecord {
        key: key.clone(),
        message_id: msg.id.clone(),
        gen: 0,
        expires_at: now.plus(Duration::from_secs(7 * 24 * 3600)),
    };
    match p.call(Op::DedupeAlone { dedupe, now }).await {
        OpResult::Appended(Ok(Appended::Duplicate(_))) => return Ok("duplicate"),
        OpResult::Appended(Ok(_)) => {}
        other => return Err(format!("dedupe write: {other:?}")),
    }
    let mut current = p.load(key).await.map_err(|e| e.to_string())?;
    for _ in 0..64 {
        let now = p.now();
        let expected = current.as_ref().map(|c| c.ver);
        let conv = current
            .clone()
            .unwrap_or_else(|| Conversation::fresh(key.clone(), now));
        let plan = conv
            .plan_append(msg.clone(), policy, now, &mut || p.random())
            .map_err(|e| e.to_string())?;
        match put_if_version(p, expected, &plan.next).await? {
            Written::Ok => {
                if let (Some(at), Some(chain)) = (plan.arm, plan.next.chain) {
                    p.arm(&trigger(&plan.next, chain.token, at), at)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                return Ok("accepted");
            }
            Written::Conflict(latest) => current = latest.map(|b| *b),
        }
    }
    Err("contended".into())
}

/// Bug: the batch is marked acknowledged before the sink answers; a failed hand-off is lost.
pub(crate) async fn flush_ack_first(p: &SimPorts, trig: &TriggerMsg) -> Result<bool, String> {
    let Some(mut conv) = p.load(&trig.key).await.map_err(|e| e.to_string())? else {
        return Ok(true);
    };
    for _ in 0..64 {
        let now = p.now();
        let live = conv.chain.is_some_and(|c| c.token == trig.chain) || trig.chain == 0;
        if !live && !conv.is_past_due(now) {
            return Ok(true);
        }
        let mut next = conv.clone();
        next.close_if_due(now);
        let Some(head) = next.pending.first().cloned() else {
            if let (Some(due), Some(chain), true) = (next.window_due(), next.chain, live) {
                let at = due.at;
                p.arm(&trigger(&next, chain.token, at), at)
                    .await
                    .map_err(|e| e.to_string())?;
            } else if live && next.end_chain(now) {
                let _ = p.replace(conv.ver, &next).await;
            }
            return Ok(true);
        };
        // The broken order: recorded as acknowledged (lease and ack in one write) first.
        next.lease_head(now, Duration::from_secs(60), 1);
        next.ack(head.gen, 1, now);
        match p
            .replace(conv.ver, &next)
            .await
            .map_err(|e| e.to_string())?
        {
            Written::Ok => conv = next,
            Written::Conflict(latest) => {
                conv = match latest {
                    Some(c) => *c,
                    None => return Ok(true),
                };
                continue;
            }
        }
        let _ = p
            .deliver(&head.to_batch(&conv.key), Duration::from_secs(60))
            .await;
    }
    Ok(true)
}

fn processed(c: &Conversation) -> bool {
    c.chain.is_some_and(|c| c.token == PROCESSED)
}

/// The replaced design's webhook: get, modify, setex, and a `setTimeout` only for a new buffer.
pub(crate) async fn replaced_webhook(
    p: &SimPorts,
    key: &ConversationKey,
    quiet: Duration,
    mut msg: Message,
) -> Result<&'static str, String> {
    let now = p.now();
    msg.received_at = now;
    // SETEX with a 15 s TTL: a buffer not written for 15 s is gone.
    let current = p
        .load(key)
        .await
        .map_err(|e| e.to_string())?
        .filter(|c| c.updated_at.plus(Duration::from_secs(15)) >= now);
    let (mut buf, schedule) = match current {
        None => (Conversation::fresh(key.clone(), now), true),
        // Processed: the message starts a new buffer, and nobody schedules it.
        Some(c) if processed(&c) => (Conversation::fresh(key.clone(), now), false),
        Some(c) => (c, false),
    };
    let w = buf.window.get_or_insert_with(|| crate::window::OpenWindow {
        batch_id: uuid::Uuid::nil(),
        opened_at: now,
        last_at: now,
        quiet_ms: 0,
        max_wait_ms: 0,
        adaptive: false,
        typing: None,
        bytes: 0,
        messages: Vec::new(),
        supersede: false,
        carried: None,
    });
    w.last_at = now;
    w.messages.push(msg);
    buf.chain = None;
    buf.updated_at = now;
    let _ = p.call(Op::PutUnconditionally(Box::new(buf.clone()))).await;
    if schedule {
        let at = now.plus(quiet);
        p.arm(&trigger(&buf, 1, at), at)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok("accepted")
}

/// The replaced design's timer: mark processed, write back, read out, hand off once, clean up.
pub(crate) async fn replaced_timer(p: &SimPorts, trig: &TriggerMsg) -> Result<bool, String> {
    let Some(mut buf) = p.load(&trig.key).await.map_err(|e| e.to_string())? else {
        return Ok(true);
    };
    if processed(&buf) {
        return Ok(true);
    }
    let now = p.now();
    buf.chain = Some(Chain {
        token: PROCESSED,
        armed_for: now,
    });
    buf.updated_at = now;
    let _ = p.call(Op::PutUnconditionally(Box::new(buf.clone()))).await;
    let Some(w) = buf.window.take() else {
        return Ok(true);
    };
    let batch = Batch::new(
        mint_batch_id(now, &mut || p.random()),
        buf.key.clone(),
        buf.gen,
        CloseReason::Quiet,
        w.opened_at,
        now,
        false,
        w.messages,
    );
    // No retry when the hand-off fails.
    let _ = p.deliver(&batch, Duration::from_secs(60)).await;
    if let Ok(mut world) = p.world.lock() {
        let at = world.now.plus(Duration::from_secs(30));
        world.schedule(
            at,
            Event::Cleanup {
                key: buf.key.clone(),
            },
        );
    }
    Ok(true)
}

/// The design lull replaces.
pub(crate) struct Replaced {
    pub lull: Lull,
    pub ports: SimPorts,
}

impl SystemUnderTest for Replaced {
    fn lull(&self) -> Lull {
        self.lull.clone()
    }

    fn append(&self, key: ConversationKey, policy: Policy, msg: Message) -> Boxed<Answer> {
        let p = self.ports.clone();
        Box::pin(async move {
            match replaced_webhook(&p, &key, policy.quiet, msg).await {
                Ok(_) => Answer::Accepted,
                Err(e) => Answer::Failed(e),
            }
        })
    }

    fn flush(&self, trig: TriggerMsg) -> Boxed<Flushed> {
        let p = self.ports.clone();
        Box::pin(async move { shell(replaced_timer(&p, &trig).await) })
    }

    fn sweep_due(&self, _: usize) -> Boxed<Vec<ConversationKey>> {
        Box::pin(async { Vec::new() })
    }

    /// No sweep, and a failed timer is never retried.
    fn retries(&self) -> bool {
        false
    }
}

fn shell(r: Result<bool, String>) -> Flushed {
    Flushed {
        delete: r == Ok(true),
        stale: false,
        what: format!("{r:?}"),
    }
}

/// lull, but acknowledging before the sink answered.
pub(crate) struct AckBeforeSink {
    pub lull: Lull,
    pub ports: SimPorts,
}

impl SystemUnderTest for AckBeforeSink {
    fn lull(&self) -> Lull {
        self.lull.clone()
    }

    fn flush(&self, trig: TriggerMsg) -> Boxed<Flushed> {
        let p = self.ports.clone();
        Box::pin(async move { shell(flush_ack_first(&p, &trig).await) })
    }

    fn sweep_one(&self, key: ConversationKey) -> Boxed<Flushed> {
        let p = self.ports.clone();
        Box::pin(async move {
            let due = p.now();
            let trig = TriggerMsg {
                key,
                chain: 0,
                gen: 0,
                ver: 0,
                due,
            };
            shell(flush_ack_first(&p, &trig).await)
        })
    }
}

/// lull, but writing the dedupe record apart from the append.
pub(crate) struct SeparateDedupe {
    pub lull: Lull,
    pub ports: SimPorts,
}

impl SystemUnderTest for SeparateDedupe {
    fn lull(&self) -> Lull {
        self.lull.clone()
    }

    fn append(&self, key: ConversationKey, policy: Policy, msg: Message) -> Boxed<Answer> {
        let p = self.ports.clone();
        Box::pin(async move {
            match append_separate_dedupe(&p, &key, &policy, msg).await {
                Ok("duplicate") => Answer::Duplicate,
                Ok(_) => Answer::Accepted,
                Err(e) => Answer::Failed(e),
            }
        })
    }
}

/// How far behind the broken webhook's clock runs.
pub(crate) const EARLY_BY: Duration = Duration::from_secs(2);

/// A clock `EARLY_BY` behind the host's: the bug of [`StampsEarly`].
#[derive(Clone)]
pub(crate) struct EarlyClock(pub SimPorts);

impl crate::ports::Clock for EarlyClock {
    fn now(&self) -> crate::Millis {
        let now = self.0.now();
        crate::Millis(now.0.saturating_sub(EARLY_BY.as_millis() as u64))
    }

    async fn sleep(&self, d: Duration) {
        self.0.sleep(d).await
    }

    fn random(&self) -> u64 {
        self.0.random()
    }
}

/// lull, but the webhook stamps `received_at` 2 s early; the flush is lull's.
pub(crate) struct StampsEarly {
    pub webhook: Arc<SimBuffer<EarlyClock>>,
    pub lull: Lull,
}

impl StampsEarly {
    pub fn new(ports: &SimPorts, config: BufferConfig, lull: Lull) -> StampsEarly {
        StampsEarly {
            webhook: Arc::new(buffer(ports, EarlyClock(ports.clone()), config)),
            lull,
        }
    }
}

impl SystemUnderTest for StampsEarly {
    fn lull(&self) -> Lull {
        self.lull.clone()
    }

    fn append(&self, key: ConversationKey, policy: Policy, msg: Message) -> Boxed<Answer> {
        let b = self.webhook.clone();
        Box::pin(async move { answer(b.append(&key, &policy, msg).await) })
    }
}

/// lull, but every append rewrites the open window's quiet period and max wait to the policy in
/// force (what lull did before windows kept the rule they opened under), arming a trigger for
/// the new due time when it moved earlier.
pub(crate) struct FollowsLatestPolicy {
    pub lull: Lull,
    pub ports: SimPorts,
}

impl SystemUnderTest for FollowsLatestPolicy {
    fn lull(&self) -> Lull {
        self.lull.clone()
    }

    fn append(&self, key: ConversationKey, policy: Policy, msg: Message) -> Boxed<Answer> {
        let b = self.lull.buffer.clone();
        let p = self.ports.clone();
        Box::pin(async move {
            let answer = answer(b.append(&key, &policy, msg).await);
            if matches!(answer, Answer::Accepted) {
                retime_to(&p, &key, &policy).await;
            }
            answer
        })
    }
}

/// The bug of [`FollowsLatestPolicy`]: the open window's timing rewritten to `policy`.
async fn retime_to(p: &SimPorts, key: &ConversationKey, policy: &Policy) {
    let Ok(Some(mut conv)) = p.load(key).await else {
        return;
    };
    let expected = conv.ver;
    let Some(w) = conv.window.as_mut() else {
        return;
    };
    let (quiet, max_wait) = (
        crate::time::duration_ms(policy.quiet),
        crate::time::duration_ms(policy.max_wait),
    );
    if (w.quiet_ms, w.max_wait_ms) == (quiet, max_wait) {
        return;
    }
    w.quiet_ms = quiet;
    w.max_wait_ms = max_wait;
    let Some(due) = conv.hand_off_due() else {
        return;
    };
    let token = p.random();
    conv.restart_chain(token, due, p.now());
    if let Ok(Written::Ok) = p.replace(expected, &conv).await {
        let _ = p.arm(&trigger(&conv, token, due), due).await;
    }
}

/// lull, but an operator pause is acknowledged and never stored.
pub(crate) struct IgnoresPause {
    pub lull: Lull,
}

impl SystemUnderTest for IgnoresPause {
    fn lull(&self) -> Lull {
        self.lull.clone()
    }

    fn pause(&self, _key: ConversationKey, _pause_for: Duration) -> Boxed<bool> {
        Box::pin(async { true })
    }
}

/// The store as `remembers-late` and `drops-unremembered` ([`late_dedupe`]) use it: `remember` only notes the records in the process's memory,
/// and the next write of that conversation writes them after itself, as a separate write (or,
/// with `never`, drops them). A new flush starts with a read of the record, which forgets what
/// a crashed process noted (its memory died with it).
#[derive(Clone)]
pub(crate) struct LateDedupeStore {
    ports: SimPorts,
    /// Drop the noted records instead of writing them late.
    never: bool,
    noted: Arc<std::sync::Mutex<std::collections::HashMap<ConversationKey, Vec<DedupeRecord>>>>,
}

impl LateDedupeStore {
    fn noted(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<ConversationKey, Vec<DedupeRecord>>>
    {
        self.noted.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl WindowStore for LateDedupeStore {
    async fn load(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<Conversation>, crate::ports::StoreError> {
        self.noted().remove(key);
        self.ports.load(key).await
    }

    async fn append(
        &self,
        expected: Option<u64>,
        next: &Conversation,
    ) -> Result<Written, crate::ports::StoreError> {
        self.ports.append(expected, next).await
    }

    async fn seen(
        &self,
        key: &ConversationKey,
        message_id: &str,
        now: crate::Millis,
    ) -> Result<Option<DedupeRecord>, crate::ports::StoreError> {
        self.ports.seen(key, message_id, now).await
    }

    async fn remember(&self, records: &[DedupeRecord]) -> Result<(), crate::ports::StoreError> {
        if let Some(first) = records.first() {
            self.noted()
                .entry(first.key.clone())
                .or_default()
                .extend_from_slice(records);
        }
        Ok(())
    }

    async fn replace(
        &self,
        expected: u64,
        next: &Conversation,
    ) -> Result<Written, crate::ports::StoreError> {
        let r = self.ports.replace(expected, next).await?;
        let noted = self.noted().remove(&next.key);
        if let (Written::Ok, Some(records), false) = (&r, noted, self.never) {
            // The bug: written after the acknowledgement, in a write of its own (or never).
            self.ports.remember(&records).await?;
        }
        Ok(r)
    }

    async fn due(
        &self,
        now: crate::Millis,
        limit: usize,
    ) -> Result<Vec<ConversationKey>, crate::ports::StoreError> {
        self.ports.due(now, limit).await
    }
}

/// lull whose flush (the triggers' and the sweep's) runs over another store, `S`, with one
/// bug ([`LateDedupeStore`]). The webhook is lull's.
pub(crate) struct FlushOver<S> {
    pub lull: Lull,
    pub flush: Arc<Buffer<S, SimPorts, SimPorts, SimPorts>>,
}

impl<S: WindowStore + Clone + Send + Sync + 'static> FlushOver<S> {
    pub(crate) fn new(
        store: S,
        ports: &SimPorts,
        config: BufferConfig,
        lull: Lull,
    ) -> FlushOver<S> {
        FlushOver {
            flush: Arc::new(
                Buffer::new(store, ports.clone(), ports.clone(), ports.clone(), config)
                    .with_reply_guard(Arc::new(crate::ai_step::SimSeal)),
            ),
            lull,
        }
    }
}

/// lull, but its flush writes the dedupe records of the ids an acknowledgement pushes out of
/// the record after that write (`remembers-late`), or `never` (`drops-unremembered`): see
/// [`LateDedupeStore`].
pub(crate) fn late_dedupe(
    ports: &SimPorts,
    config: BufferConfig,
    lull: Lull,
    never: bool,
) -> FlushOver<LateDedupeStore> {
    let store = LateDedupeStore {
        ports: ports.clone(),
        noted: Arc::default(),
        never,
    };
    FlushOver::new(store, ports, config, lull)
}

impl<S: WindowStore + Clone + Send + Sync + 'static> SystemUnderTest for FlushOver<S> {
    fn lull(&self) -> Lull {
        self.lull.clone()
    }

    fn flush(&self, trig: TriggerMsg) -> Boxed<Flushed> {
        let b = self.flush.clone();
        let claim = crate::protocol::Claim::Trigger { chain: trig.chain };
        Box::pin(async move { super::sut::flushed(b.flush(&trig.key, claim).await) })
    }

    fn sweep_one(&self, key: ConversationKey) -> Boxed<Flushed> {
        let b = self.flush.clone();
        Box::pin(async move { super::sut::flushed(b.handoff().sweep_one(&key).await) })
    }
}

/// lull, but a retried edit is not recognised: the record's memory of the edit is dropped just
/// before each append of it, so every delivery of the edit is applied again.
pub(crate) struct AppliesEditsTwice {
    pub lull: Lull,
    pub ports: SimPorts,
}

impl SystemUnderTest for AppliesEditsTwice {
    fn lull(&self) -> Lull {
        self.lull.clone()
    }

    fn append(&self, key: ConversationKey, policy: Policy, msg: Message) -> Boxed<Answer> {
        let b = self.lull.buffer.clone();
        let p = self.ports.clone();
        Box::pin(async move {
            if msg.kind == crate::message::MessageKind::Edit {
                forget_amend(&p, &key, &msg.id).await;
            }
            answer(b.append(&key, &policy, msg).await)
        })
    }
}

/// The bug of [`AppliesEditsTwice`]: the remembered amend `id` dropped from `key`'s record.
async fn forget_amend(p: &SimPorts, key: &ConversationKey, id: &str) {
    let Ok(Some(mut conv)) = p.load(key).await else {
        return;
    };
    let expected = conv.ver;
    let before = conv.amends.len();
    conv.amends.retain(|a| a.id != id);
    if conv.amends.len() != before {
        conv.ver += 1;
        let _ = p.replace(expected, &conv).await;
    }
}

/// lull, but an unsend is acknowledged and never stored.
pub(crate) struct ForgetsRevokes {
    pub lull: Lull,
}

impl SystemUnderTest for ForgetsRevokes {
    fn lull(&self) -> Lull {
        self.lull.clone()
    }

    fn append(&self, key: ConversationKey, policy: Policy, msg: Message) -> Boxed<Answer> {
        if msg.kind == crate::message::MessageKind::Revoke {
            return Box::pin(async { Answer::Accepted });
        }
        let b = self.lull.buffer.clone();
        Box::pin(async move { answer(b.append(&key, &policy, msg).await) })
    }
}
