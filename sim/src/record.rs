//! What the simulator observes, by its own clock: when the world delivered each request, when
//! each write landed, when each sink call started and ended. The checker (`check/`) holds these
//! against the invariants; it trusts nothing lull stamped but the batches' content.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use uuid::Uuid;

use crate::batch::Batch;
use crate::guard::GuardAnswer;
use crate::key::ConversationKey;
use crate::policy::Policy;
use crate::time::Millis;

use super::workload::Workload;

/// One step in a conversation's trace, printed with a violation.
#[derive(Clone, Debug)]
pub(crate) enum TraceEvent {
    Arrive(String),
    Accepted(String, &'static str),
    AppendFailed(String, String),
    Op(&'static str),
    Fault(&'static str),
    Crash(&'static str),
    TriggerFired {
        chain: u64,
        receives: u32,
    },
    FlushEnded(String),
    SinkCall {
        gen: u64,
        messages: usize,
    },
    Delivered {
        gen: u64,
        messages: usize,
        received: bool,
        acked: bool,
    },
    /// The bot's reply guard answered (or not).
    Guard(String),
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceEvent::Arrive(id) => write!(f, "webhook POST {id}"),
            TraceEvent::Accepted(id, how) => write!(f, "2xx for {id} ({how})"),
            TraceEvent::AppendFailed(id, e) => write!(f, "5xx for {id}: {e}"),
            TraceEvent::Op(op) => write!(f, "  {op}"),
            TraceEvent::Fault(what) => write!(f, "  FAULT {what}"),
            TraceEvent::Crash(op) => write!(f, "  CRASH around {op}"),
            TraceEvent::TriggerFired { chain, receives } => {
                write!(f, "trigger fired (chain {chain:x}, receive {receives})")
            }
            TraceEvent::FlushEnded(end) => write!(f, "flush ended: {end}"),
            TraceEvent::SinkCall { gen, messages } => {
                write!(f, "  sink call gen {gen} ({messages} msgs) starts")
            }
            TraceEvent::Delivered {
                gen,
                messages,
                received,
                acked,
            } => write!(
                f,
                "  sink call gen {gen} ({messages} msgs) ends: received={received} acked={acked}"
            ),
            TraceEvent::Guard(what) => write!(f, "bot's guard request: {what}"),
        }
    }
}

/// One sink call as the receiver saw it.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    pub conv: usize,
    pub batch: Batch,
    pub start: Millis,
    pub end: Millis,
    pub acked: bool,
}

/// How a message got stored, as the world saw it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stored {
    /// When the world delivered the webhook request whose write stored the message.
    pub arrived: Millis,
    /// When that write landed.
    pub landed: Millis,
    /// The order of landed writes (global): a conversation's messages keep it.
    pub seq: u64,
    /// The tenant policy the request was appended under.
    pub policy: Policy,
}

/// Drops and refusals the world saw, to compare with what lull counted (invariant 6).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Drops {
    /// Webhook requests answered 2xx as a duplicate.
    pub duplicate_answers: u64,
    /// Appends whose store write answered "duplicate" and whose task saw that answer.
    pub duplicate_results: u64,
    /// Webhook requests refused by the protocol (no room, too large, too busy).
    pub refused_answers: u64,
    /// Triggers the protocol reported stale.
    pub stale_triggers: u64,
    /// Triggers deleted after a flush that wrote nothing, armed nothing and called no sink.
    pub dropped_triggers: u64,
}

/// Everything observed during a run.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub conv_index: HashMap<ConversationKey, usize>,
    pub faults: u64,
    pub first_attempt: Vec<Option<Millis>>,
    /// When each message's 2xx was answered (the first one).
    pub accepted: Vec<Option<Millis>>,
    pub accepted_count: usize,
    /// Per message: true when an acknowledged batch need not hold it: an edit or unsend (applied
    /// in place, or handed off on its own), or a message the workload unsends (`amends.rs`).
    pub exempt: Vec<bool>,
    /// Per message: its id.
    pub ids: Vec<String>,
    /// How each message got stored (the first write that landed it).
    pub stored: Vec<Option<Stored>>,
    /// Webhook attempts per message (gateways back off).
    pub attempts: Vec<u32>,
    pub drops: Drops,
    /// Writes the store refused for an item over its size limit.
    pub item_limit_hits: u64,
    stored_seq: u64,
    pub acked_ids: HashSet<String>,
    pub deliveries: Vec<Delivery>,
    /// The whole trace of each conversation in `traced`, and of no other: a run records none,
    /// and a failing run is replayed (same seed, same run) tracing the conversations whose
    /// violations it prints. A bounded ring per conversation kept only the last events of a
    /// long run, so the stretch around an early violation was gone by the end.
    pub traces: BTreeMap<usize, Vec<(Millis, TraceEvent)>>,
    /// Per conversation: times at which a hand-off was not acknowledged.
    pub sink_trouble: Vec<Vec<Millis>>,
    /// Per conversation: when the world injected a fault into one of its operations (a crash, a
    /// store error or throttle, a trigger fault). Each may delay its hand-off by up to one
    /// fault's recovery, which liveness allows for (`check/liveness.rs`).
    pub faults_at: Vec<Vec<Millis>>,
    /// Faults that may delay every conversation: the sweep's query crashed or was throttled.
    pub global_faults_at: Vec<Millis>,
    /// Per conversation: operator pauses lull said it stored, as (request started, answered).
    pub pauses: Vec<Vec<(Millis, Millis)>>,
    /// Per conversation: operator resume requests, answered or not (a write may land before a
    /// failure hides its answer), as (request started, ended).
    pub resumes: Vec<Vec<(Millis, Millis)>>,
    /// The reply guard and supersede, as the world saw them (`ai_step.rs`).
    pub guard: GuardRecord,
}

/// A guard answer the bot received: for which batch, and the instant of the read it was made
/// from (the guard task's last store read: its load, or the conditional write whose answer
/// carried the latest record), by the world's clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GuardSeen {
    pub conv: usize,
    pub batch_id: Uuid,
    pub answer: GuardAnswer,
    pub read_at: Millis,
}

/// What the checker needs of the AI step, from the world's own observation: when each batch
/// closed (the first write that landed with it among the record's pending batches: from then
/// on nothing joins its `messages`, and the record's count of accepted messages at that write
/// is the one its guard compares with), every guard answer the bot got, every guard write that
/// landed (a guard marking its batch superseded), and every hand-off answer that declared the
/// batch superseded and reached lull. Plus the counts the report prints.
#[derive(Debug, Default)]
pub(crate) struct GuardRecord {
    pub closed_at: HashMap<Uuid, Millis>,
    pub answers: Vec<GuardSeen>,
    /// Per batch: when a guard's write (its mark) landed.
    pub marks: HashMap<Uuid, Vec<Millis>>,
    /// Per batch: when a hand-off answer declaring it superseded reached lull.
    pub declared: HashMap<Uuid, Vec<Millis>>,
    /// Per conversation: the latest 2xx of one of its items (what a declaring bot knows).
    pub last_accepted: Vec<Millis>,
    /// Guard requests the bot made.
    pub asked: u64,
    /// Guard requests that failed (store error, contention, a crash, a lost answer).
    pub failed: u64,
    /// Replies the bot discarded (guard `superseded` with `supersede`, or declared).
    pub discarded: u64,
}

impl GuardRecord {
    /// Answers by state: (current, superseded with `supersede`, superseded without, typing).
    pub fn by_state(&self) -> (u64, u64, u64, u64) {
        let mut n = (0, 0, 0, 0);
        for a in &self.answers {
            match a.answer {
                GuardAnswer::Current => n.0 += 1,
                GuardAnswer::Superseded {
                    supersede: true, ..
                } => n.1 += 1,
                GuardAnswer::Superseded { .. } => n.2 += 1,
                GuardAnswer::Typing { .. } => n.3 += 1,
            }
        }
        n
    }
}

impl Recorder {
    /// A recorder for `work` that traces the conversations in `traced`.
    pub fn new(work: &Workload, traced: &[usize]) -> Recorder {
        Recorder {
            conv_index: work
                .conversations
                .iter()
                .enumerate()
                .map(|(i, c)| (c.key.clone(), i))
                .collect(),
            first_attempt: vec![None; work.messages.len()],
            accepted: vec![None; work.messages.len()],
            stored: vec![None; work.messages.len()],
            exempt: exempt(work),
            ids: work.messages.iter().map(|m| m.id.clone()).collect(),
            attempts: vec![0; work.messages.len()],
            traces: traced.iter().map(|&c| (c, Vec::new())).collect(),
            sink_trouble: vec![Vec::new(); work.conversations.len()],
            faults_at: vec![Vec::new(); work.conversations.len()],
            pauses: vec![Vec::new(); work.conversations.len()],
            resumes: vec![Vec::new(); work.conversations.len()],
            guard: GuardRecord {
                last_accepted: vec![Millis(0); work.conversations.len()],
                ..GuardRecord::default()
            },
            ..Recorder::default()
        }
    }

    pub fn trace(&mut self, key: &ConversationKey, at: Millis, ev: TraceEvent) {
        if let Some(&c) = self.conv_index.get(key) {
            self.trace_conv(c, at, ev);
        }
    }

    /// The world injected a fault (`ev`) at `at` into an operation of conversation `key` (of
    /// every conversation when `None`): counted, timed, and traced.
    pub fn fault(&mut self, key: Option<&ConversationKey>, at: Millis, ev: TraceEvent) {
        self.faults += 1;
        match key.and_then(|k| self.conv_index.get(k)).copied() {
            Some(c) => {
                self.faults_at[c].push(at);
                self.trace_conv(c, at, ev);
            }
            None if key.is_none() => self.global_faults_at.push(at),
            None => {}
        }
    }

    pub fn trace_conv(&mut self, c: usize, at: Millis, ev: TraceEvent) {
        if let Some(t) = self.traces.get_mut(&c) {
            t.push((at, ev));
        }
    }

    pub fn delivery(
        &mut self,
        batch: &Batch,
        start: Millis,
        end: Millis,
        received: bool,
        acked: bool,
    ) {
        let conv = self
            .conv_index
            .get(&batch.conversation)
            .copied()
            .unwrap_or(usize::MAX);
        if conv == usize::MAX {
            return;
        }
        self.trace_conv(
            conv,
            end,
            TraceEvent::Delivered {
                gen: batch.generation,
                messages: batch.messages.len(),
                received,
                acked,
            },
        );
        if !acked {
            self.sink_trouble[conv].push(end);
        }
        if acked {
            for m in &batch.messages {
                self.acked_ids.insert(m.id.clone());
            }
        }
        if received {
            self.deliveries.push(Delivery {
                conv,
                batch: batch.clone(),
                start,
                end,
                acked,
            });
        }
    }

    /// Message `msg`, delivered at `arrived` under `policy`, landed in the store now.
    pub fn landed(&mut self, msg: usize, arrived: Millis, now: Millis, policy: Policy) {
        if self.stored[msg].is_none() {
            self.stored_seq += 1;
            self.stored[msg] = Some(Stored {
                arrived,
                landed: now,
                seq: self.stored_seq,
                policy,
            });
        }
    }

    /// True when every message got its 2xx and every one that must be handed off was
    /// acknowledged.
    pub fn all_acked(&self) -> bool {
        self.accepted_count == self.accepted.len()
            && self
                .ids
                .iter()
                .zip(&self.exempt)
                .all(|(id, &exempt)| exempt || self.acked_ids.contains(id))
    }
}

/// [`Recorder::exempt`] of `work`'s messages.
fn exempt(work: &Workload) -> Vec<bool> {
    let unsent: HashSet<&str> = work
        .messages
        .iter()
        .filter_map(|m| m.amend.as_ref().filter(|a| a.revoke))
        .map(|a| a.target.as_str())
        .collect();
    work.messages
        .iter()
        .map(|m| m.amend.is_some() || unsent.contains(m.id.as_str()))
        .collect()
}
