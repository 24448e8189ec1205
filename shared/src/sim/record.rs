//! What the simulator observes, and the checker that holds it against the six invariants.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use crate::batch::{Batch, CloseReason};
use crate::key::ConversationKey;
use crate::time::Millis;

use super::workload::Workload;

const TRACE_LEN: usize = 1_200;

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
    Delivered {
        gen: u64,
        messages: usize,
        received: bool,
        acked: bool,
    },
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
            TraceEvent::Delivered {
                gen,
                messages,
                received,
                acked,
            } => write!(
                f,
                "  sink call gen {gen} ({messages} msgs): received={received} acked={acked}"
            ),
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

/// Everything observed during a run.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub conv_index: HashMap<ConversationKey, usize>,
    pub faults: u64,
    pub first_attempt: Vec<Option<Millis>>,
    pub accepted: Vec<Option<Millis>>,
    pub accepted_count: usize,
    pub acked_ids: HashSet<String>,
    pub deliveries: Vec<Delivery>,
    pub traces: Vec<VecDeque<(Millis, TraceEvent)>>,
    /// Per conversation: times at which a hand-off was not acknowledged.
    pub sink_trouble: Vec<Vec<Millis>>,
}

impl Recorder {
    pub fn new(work: &Workload) -> Recorder {
        Recorder {
            conv_index: work
                .conversations
                .iter()
                .enumerate()
                .map(|(i, c)| (c.key.clone(), i))
                .collect(),
            first_attempt: vec![None; work.messages.len()],
            accepted: vec![None; work.messages.len()],
            traces: vec![VecDeque::new(); work.conversations.len()],
            sink_trouble: vec![Vec::new(); work.conversations.len()],
            ..Recorder::default()
        }
    }

    pub fn trace(&mut self, key: &ConversationKey, at: Millis, ev: TraceEvent) {
        if let Some(&c) = self.conv_index.get(key) {
            self.trace_conv(c, at, ev);
        }
    }

    pub fn trace_conv(&mut self, c: usize, at: Millis, ev: TraceEvent) {
        let t = &mut self.traces[c];
        if t.len() == TRACE_LEN {
            t.pop_front();
        }
        t.push_back((at, ev));
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

    pub fn all_acked(&self) -> bool {
        self.accepted_count == self.accepted.len() && self.acked_ids.len() >= self.accepted_count
    }
}

/// A broken invariant, with the conversation whose trace explains it.
#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: &'static str,
    pub conversation: Option<usize>,
    pub detail: String,
    /// The stretch of virtual time the trace should show.
    pub around: Option<(Millis, Millis)>,
}

/// Bounds the liveness check uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub max_lag: Duration,
}

struct BatchSeen<'a> {
    batch: &'a Batch,
    first_start: Millis,
    first_ack: Option<Millis>,
}

/// Checks every invariant over what was observed.
pub(crate) fn check(rec: &Recorder, work: &Workload, bounds: Bounds) -> Vec<Violation> {
    let v = std::cell::RefCell::new(Vec::new());
    let mut around: Option<(Millis, Millis)> = None;
    let add = |invariant, conversation, detail: String| {
        v.borrow_mut().push(Violation {
            invariant,
            conversation,
            detail,
            around: None,
        })
    };
    let msg_index: HashMap<&str, usize> = work
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();

    // Distinct batches, with their first hand-off and first acknowledgement.
    let mut batches: HashMap<Uuid, BatchSeen<'_>> = HashMap::new();
    for d in &rec.deliveries {
        let e = batches.entry(d.batch.batch_id).or_insert(BatchSeen {
            batch: &d.batch,
            first_start: d.start,
            first_ack: None,
        });
        // 2. Once: a retried hand-off carries the same content.
        if e.batch != &d.batch {
            add(
                "2 once",
                Some(d.conv),
                format!(
                    "batch {} handed off with different content",
                    d.batch.batch_id
                ),
            );
        }
        e.first_start = e.first_start.min(d.start);
        if d.acked {
            e.first_ack = Some(e.first_ack.map_or(d.end, |a: Millis| a.min(d.end)));
        }
    }

    // 2. Once: a message id is in at most one batch.
    let mut home: HashMap<&str, Uuid> = HashMap::new();
    for b in batches.values() {
        let mut seen = HashSet::new();
        for m in &b.batch.messages {
            if !seen.insert(m.id.as_str()) {
                add(
                    "2 once",
                    None,
                    format!("message {} twice in batch {}", m.id, b.batch.batch_id),
                );
            }
            if let Some(other) = home.insert(m.id.as_str(), b.batch.batch_id) {
                if other != b.batch.batch_id {
                    let conv = rec.conv_index.get(&b.batch.conversation).copied();
                    add(
                        "2 once",
                        conv,
                        format!(
                            "message {} in batches {other} and {}",
                            m.id, b.batch.batch_id
                        ),
                    );
                }
            }
        }
    }

    // 1. No loss: every accepted message is in an acknowledged batch.
    for (i, m) in work.messages.iter().enumerate() {
        match rec.accepted[i] {
            None => add(
                "1 no loss",
                Some(m.conv),
                format!("message {} never got a 2xx (gateway gave up)", m.id),
            ),
            Some(_) if !rec.acked_ids.contains(&m.id) => add(
                "1 no loss",
                Some(m.conv),
                format!("accepted message {} was never handed off", m.id),
            ),
            Some(_) => {}
        }
    }

    let mut per_conv: Vec<Vec<&BatchSeen<'_>>> = vec![Vec::new(); work.conversations.len()];
    for b in batches.values() {
        match rec.conv_index.get(&b.batch.conversation) {
            Some(&c) => per_conv[c].push(b),
            None => add(
                "5 isolation",
                None,
                format!("batch {} for an unknown conversation", b.batch.batch_id),
            ),
        }
    }
    for (c, list) in per_conv.iter_mut().enumerate() {
        list.sort_by_key(|b| b.batch.generation);
        let policy = &work.conversations[c].policy;
        let mut prev: Option<&BatchSeen<'_>> = None;
        let mut order: Vec<&str> = Vec::new();
        for (bi, b) in list.iter().enumerate() {
            let msgs = &b.batch.messages;
            // 5. Isolation: every message belongs to this conversation.
            for m in msgs {
                match msg_index.get(m.id.as_str()) {
                    Some(&i) if work.messages[i].conv == c => {}
                    _ => add(
                        "5 isolation",
                        Some(c),
                        format!("message {} in another conversation's batch", m.id),
                    ),
                }
            }
            // 3. Never early.
            let (Some(first), Some(last)) = (msgs.first(), msgs.last()) else {
                add(
                    "3 never early",
                    Some(c),
                    format!("empty batch gen {}", b.batch.generation),
                );
                continue;
            };
            let closed = b.batch.closed_at;
            let bytes: u64 = msgs.iter().map(|m| m.stored_size()).sum();
            let next_first = list.get(bi + 1).and_then(|n| n.batch.messages.first());
            let due = match b.batch.reason {
                CloseReason::Quiet => last.received_at.plus(policy.quiet),
                CloseReason::MaxWait => first.received_at.plus(policy.max_wait),
                CloseReason::Size => {
                    let full = msgs.len() as u64 >= u64::from(policy.max_messages)
                        || bytes >= policy.max_bytes;
                    let overflowed =
                        next_first.is_some_and(|n| bytes + n.stored_size() > policy.max_bytes);
                    if !full && !overflowed {
                        add(
                            "3 never early",
                            Some(c),
                            format!(
                                "gen {} closed for size with {} msgs / {bytes} bytes",
                                b.batch.generation,
                                msgs.len()
                            ),
                        );
                    }
                    closed
                }
                CloseReason::Passthrough => {
                    if policy.buffering {
                        add(
                            "3 never early",
                            Some(c),
                            format!(
                                "gen {} passthrough for a buffering tenant",
                                b.batch.generation
                            ),
                        );
                    }
                    closed
                }
            };
            if closed < due {
                add(
                    "3 never early",
                    Some(c),
                    format!(
                        "gen {} ({:?}) closed at {} before due {}",
                        b.batch.generation, b.batch.reason, closed, due
                    ),
                );
            }
            if b.first_start < closed {
                add(
                    "3 never early",
                    Some(c),
                    format!("gen {} handed off before it closed", b.batch.generation),
                );
            }
            // 4. In order: receive order inside the batch and across batches.
            if msgs.windows(2).any(|w| w[0].received_at > w[1].received_at) {
                add(
                    "4 order",
                    Some(c),
                    format!("gen {} out of receive order", b.batch.generation),
                );
            }
            order.extend(msgs.iter().map(|m| m.id.as_str()));
            let mut eff_due = due;
            if let Some(p) = prev {
                if p.batch.generation >= b.batch.generation {
                    add("4 order", Some(c), "generations not increasing".into());
                }
                if p.batch.messages.last().map(|m| m.received_at) > Some(first.received_at) {
                    add(
                        "4 order",
                        Some(c),
                        format!(
                            "gen {} holds messages older than gen {}",
                            b.batch.generation, p.batch.generation
                        ),
                    );
                }
                match p.first_ack {
                    Some(ack) if b.first_start >= ack => eff_due = eff_due.max(ack),
                    _ => add(
                        "4 order",
                        Some(c),
                        format!(
                            "gen {} handed off before gen {} was acknowledged",
                            b.batch.generation, p.batch.generation
                        ),
                    ),
                }
            }
            // 1. Liveness: acknowledged within the bound after it was due (and its predecessor
            // acknowledged), unless the sink was failing meanwhile.
            if let Some(ack) = b.first_ack {
                let troubled = rec.sink_trouble[c]
                    .iter()
                    .any(|t| *t >= eff_due && *t <= ack);
                let lag = ack.since(eff_due);
                if !troubled && lag > bounds.max_lag {
                    around = Some((eff_due, ack));
                    add(
                        "1 liveness",
                        Some(c),
                        format!(
                            "gen {} acknowledged {:?} after due (bound {:?})",
                            b.batch.generation, lag, bounds.max_lag
                        ),
                    );
                }
            }
            prev = Some(b);
            if let Some(w) = around.take() {
                if let Some(last) = v.borrow_mut().last_mut() {
                    last.around = Some(w);
                }
            }
        }
        // 4. Overlap: no two sink calls of one conversation at once.
        let mut calls: Vec<(Millis, Millis)> = rec
            .deliveries
            .iter()
            .filter(|d| d.conv == c)
            .map(|d| (d.start, d.end))
            .collect();
        calls.sort();
        let mut busy_until = Millis(0);
        for (s, e) in calls {
            if s < busy_until {
                add(
                    "4 one at a time",
                    Some(c),
                    format!("sink call at {s} overlaps one running until {busy_until}"),
                );
            }
            busy_until = busy_until.max(e);
        }
        // 4. Acceptance order: a message answered 2xx before another was first sent comes first.
        let pos: HashMap<&str, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut accepted: Vec<(Millis, usize)> = Vec::new();
        let mut firsts: Vec<(Millis, usize)> = Vec::new();
        for (i, m) in work
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.conv == c)
        {
            if let (Some(a), Some(f), Some(&p)) = (
                rec.accepted[i],
                rec.first_attempt[i],
                pos.get(m.id.as_str()),
            ) {
                accepted.push((a, p));
                firsts.push((f, p));
            }
        }
        accepted.sort();
        let mut prefix_max = Vec::with_capacity(accepted.len());
        let mut mx = 0usize;
        for (_, p) in &accepted {
            mx = mx.max(*p);
            prefix_max.push(mx);
        }
        for (f, p) in firsts {
            let n = accepted.partition_point(|(a, _)| *a < f);
            if n > 0 && prefix_max[n - 1] > p {
                add(
                    "4 order",
                    Some(c),
                    format!(
                        "a message accepted before {} was first sent is handed off after it",
                        order[p]
                    ),
                );
            }
        }
    }
    v.into_inner()
}
