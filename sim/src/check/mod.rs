//! The checker: one function per invariant, each over what the world observed by its own clock
//! ([`super::record::Recorder`]). From lull it takes only the batches' content (ids, messages,
//! generation, claimed close reason) and its counters; never its timestamps.

mod context_only_from_superseded;
mod guard_never_stale;
mod in_order;
mod isolation;
mod latest_content;
mod liveness;
mod never_early;
mod no_loss;
mod nothing_silent;
mod once;
mod one_at_a_time;
mod thought_bounded;
mod unsent;

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

use crate::batch::{Batch, CloseReason};
use crate::message::Message;
use crate::time::Millis;

use super::invariant::Violation;
use super::record::{Recorder, Stored};
use super::workload::Workload;

pub(crate) use nothing_silent::Counted;

/// Bounds the time checks allow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    /// Longest lag from due (or the predecessor's acknowledgement) to acknowledgement when no
    /// fault touched the conversation.
    pub max_lag: Duration,
    /// What each fault injected into the conversation's operations (or into the sweep's query)
    /// may add to that: the longest recovery from one fault (`check/liveness.rs`).
    pub per_fault: Duration,
    /// The hand-off lease: a fault up to this long before a batch's first message (a flush
    /// that died holding the lease on its predecessor) can still delay it.
    pub lease: Duration,
    /// Largest difference between two simulated hosts' clocks.
    pub skew: Duration,
}

/// A conversation left with pending work that no longer progresses after the run drained.
#[derive(Clone, Debug)]
pub(crate) struct Wedged {
    pub conv: usize,
    pub what: String,
}

/// Everything the checks read.
pub(crate) struct Input<'a> {
    pub rec: &'a Recorder,
    pub work: &'a Workload,
    pub bounds: Bounds,
    pub counted: Counted,
    pub wedged: &'a [Wedged],
}

/// One distinct batch (by id): its first hand-off and first acknowledgement, by the world's clock.
pub(crate) struct BatchSeen<'a> {
    pub batch: &'a Batch,
    pub conv: usize,
    pub first_start: Millis,
    pub first_ack: Option<Millis>,
}

/// What the checks share: distinct batches, grouped per conversation in generation order.
pub(crate) struct Ctx<'a> {
    pub input: &'a Input<'a>,
    pub batches: Vec<BatchSeen<'a>>,
    /// Per conversation: indices into `batches`, by generation.
    pub per_conv: Vec<Vec<usize>>,
    pub msg_index: HashMap<&'a str, usize>,
    /// Per conversation: the world's 2xx times of its accepted items (messages, edits, unsends),
    /// sorted.
    pub accepted_per_conv: Vec<Vec<Millis>>,
    /// The same for edits and unsends alone.
    pub amends_per_conv: Vec<Vec<Millis>>,
}

impl<'a> Ctx<'a> {
    fn new(input: &'a Input<'a>) -> Ctx<'a> {
        let mut by_id: HashMap<Uuid, usize> = HashMap::new();
        let mut batches: Vec<BatchSeen<'a>> = Vec::new();
        for d in &input.rec.deliveries {
            let i = *by_id.entry(d.batch.batch_id).or_insert_with(|| {
                batches.push(BatchSeen {
                    batch: &d.batch,
                    conv: d.conv,
                    first_start: d.start,
                    first_ack: None,
                });
                batches.len() - 1
            });
            let b = &mut batches[i];
            b.first_start = b.first_start.min(d.start);
            if d.acked {
                b.first_ack = Some(b.first_ack.map_or(d.end, |a| a.min(d.end)));
            }
        }
        let mut per_conv = vec![Vec::new(); input.work.conversations.len()];
        for (i, b) in batches.iter().enumerate() {
            per_conv[b.conv].push(i);
        }
        for list in &mut per_conv {
            list.sort_by_key(|&i| (batches[i].batch.generation, batches[i].first_start));
        }
        let msg_index = input
            .work
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.as_str(), i))
            .collect();
        let mut accepted_per_conv = vec![Vec::new(); input.work.conversations.len()];
        let mut amends_per_conv = vec![Vec::new(); input.work.conversations.len()];
        for (m, at) in input.work.messages.iter().zip(&input.rec.accepted) {
            if let Some(at) = at {
                accepted_per_conv[m.conv].push(*at);
                if m.amend.is_some() {
                    amends_per_conv[m.conv].push(*at);
                }
            }
        }
        for list in accepted_per_conv.iter_mut().chain(&mut amends_per_conv) {
            list.sort_unstable();
        }
        Ctx {
            input,
            batches,
            per_conv,
            msg_index,
            accepted_per_conv,
            amends_per_conv,
        }
    }

    /// The earliest instant batch `pos` of conversation `conv` could have closed, by the world's
    /// clock: its first hand-off, or its due time less the clock skew when earlier; `None` for a
    /// size or passthrough close (at an append; `never_early` checks the reason) or when its
    /// messages' storage was not observed.
    pub fn earliest_close(&self, conv: usize, pos: usize) -> Option<Millis> {
        let seen = &self.batches[self.per_conv[conv][pos]];
        if matches!(
            seen.batch.reason,
            CloseReason::Size | CloseReason::Passthrough
        ) {
            return None;
        }
        let due = self.world_due(conv, pos)?.ok()?;
        let skew = Millis(
            due.0
                .saturating_sub(self.input.bounds.skew.as_millis() as u64),
        );
        Some(skew.min(seen.first_start))
    }

    /// How the world saw message `m` stored, if it is one of the workload's.
    pub fn stored(&self, m: &Message) -> Option<Stored> {
        let i = *self.msg_index.get(m.id.as_str())?;
        self.input.rec.stored[i]
    }

    /// When batch `pos` of conversation `conv` became due by the world's clock, or why its
    /// claimed close reason does not hold. `None` when its messages' storage was not observed.
    pub fn world_due(&self, conv: usize, pos: usize) -> Option<Result<Millis, String>> {
        let list = &self.per_conv[conv];
        let b = self.batches[list[pos]].batch;
        let first = self.stored(b.messages.first()?)?;
        let last = self.stored(b.messages.last()?)?;
        let next = list
            .get(pos + 1)
            .and_then(|&n| self.batches[n].batch.messages.first())
            .and_then(|m| Some((m, self.stored(m)?)));
        let gen = b.generation;
        Some(match b.reason {
            // A window runs under the timing of the policy it opened under: its first message's.
            // The earliest its rule allows: an adaptive quiet period is at least its min, and
            // once presence flows a fixed one shrinks to the typing grace (presence and pauses
            // only ever delay).
            CloseReason::Quiet => Ok(last.arrived.plus(shortest_quiet(&first.policy))),
            CloseReason::MaxWait => Ok(first.arrived.plus(first.policy.max_wait)),
            CloseReason::Size => {
                let bytes: u64 = b.messages.iter().map(|m| m.stored_size()).sum();
                let count = b.messages.len() as u64;
                let p = last.policy;
                if count >= u64::from(p.max_messages) || bytes >= p.max_bytes {
                    Ok(last.landed)
                } else {
                    match next {
                        Some((m, n))
                            if count + 1 > u64::from(n.policy.max_messages)
                                || bytes + m.stored_size() > n.policy.max_bytes =>
                        {
                            // Unless an unsent message between them overflowed it first.
                            let unsent = self.unsent_overflow(conv, last.seq, count, bytes);
                            let early = unsent.map_or(n.landed, |u| u.min(n.landed));
                            // Or an edit accepted after the last message, which a window holds
                            // (in place, or remembered for its original) and may fill it.
                            Ok(self
                                .first_accepted_after(conv, last.landed)
                                .map_or(early, |a| a.min(early)))
                        }
                        _ => self
                            .unsent_overflow(conv, last.seq, count, bytes)
                            .or_else(|| self.first_accepted_after(conv, last.landed))
                            .ok_or_else(|| {
                                format!(
                                    "gen {gen} closed for size with {count} msgs / {bytes} bytes"
                                )
                            }),
                    }
                }
            }
            CloseReason::Passthrough => {
                if !last.policy.buffering {
                    Ok(last.landed)
                } else {
                    match next {
                        Some((_, n)) if !n.policy.buffering => Ok(n.landed),
                        _ => Err(format!("gen {gen} passthrough for a buffering tenant")),
                    }
                }
            }
        })
    }
}

impl Ctx<'_> {
    /// The latest activity a quiet period of a batch may run from: its last message's arrival,
    /// or a later accepted item of the conversation (an edit restarts the quiet period, an
    /// unsent message leaves its arrival and its unsend behind) between the batch's first message
    /// and its first hand-off. By the world's 2xx times, an upper bound of when lull appended
    /// them; an item that went to the next window only makes this later (more lenient).
    fn last_activity(&self, conv: usize, last: Millis, first: Millis, start: Millis) -> Millis {
        let at = &self.accepted_per_conv[conv];
        let hi = at.partition_point(|t| *t <= start);
        at[..hi]
            .last()
            .filter(|t| **t >= first)
            .map_or(last, |t| last.max(*t))
    }

    /// The first world 2xx of an edit or unsend of conversation `conv` after `after`: what may
    /// have filled a window closed for size at an append.
    fn first_accepted_after(&self, conv: usize, after: Millis) -> Option<Millis> {
        let at = &self.amends_per_conv[conv];
        at.get(at.partition_point(|t| *t <= after)).copied()
    }

    /// When a message of conversation `conv` that the user later unsent landed right after a
    /// batch of `count` messages and `bytes` whose last landed as `after`, and would have
    /// overflowed it under its policy: the unsend removed the message that closed the batch for
    /// size, so the next batch does not show it.
    fn unsent_overflow(&self, conv: usize, after: u64, count: u64, bytes: u64) -> Option<Millis> {
        let (work, rec) = (self.input.work, self.input.rec);
        let key = &work.conversations[conv].key;
        work.messages
            .iter()
            .enumerate()
            .filter(|(i, m)| m.conv == conv && m.amend.is_none() && rec.exempt[*i])
            .filter_map(|(i, m)| Some((m, rec.stored[i]?)))
            .filter(|(_, s)| s.seq > after)
            .min_by_key(|(_, s)| s.seq)
            .filter(|(m, s)| {
                let size = crate::amends::message(m, &key.user).stored_size();
                count + 1 > u64::from(s.policy.max_messages) || bytes + size > s.policy.max_bytes
            })
            .map(|(_, s)| s.landed)
    }
}

/// The shortest quiet period `p`'s end-of-turn rule can apply.
fn shortest_quiet(p: &crate::policy::Policy) -> Duration {
    let quiet = p.adaptive.map_or(p.quiet, |a| a.min);
    p.typing.map_or(quiet, |t| quiet.min(t.grace))
}

/// The longest quiet period `p`'s rule can apply without presence (an adaptive one is at most
/// its max); with presence a window may be held up to max wait.
fn longest_quiet(p: &crate::policy::Policy) -> Duration {
    match (p.typing, p.adaptive) {
        (Some(_), _) => p.max_wait,
        (None, Some(a)) => a.max.max(p.quiet),
        (None, None) => p.quiet,
    }
}

/// The operator pause that holds a batch: when it ended at the earliest, and when it would have
/// ended without a resume.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PauseHold {
    pub until: Millis,
    pub full: Millis,
}

impl Ctx<'_> {
    /// The end of pause `started` of conversation `conv` at the earliest, by the world's clock:
    /// its full length from the request's start, or a resume request that ended after the
    /// pause's request started (so it may have been applied after the pause, even unanswered),
    /// which took effect no earlier than either request started.
    pub fn pause_end(&self, conv: usize, started: Millis, pause: Duration) -> Millis {
        self.input.rec.resumes[conv]
            .iter()
            .filter(|&&(_, answered)| answered > started)
            .map(|&(resumed, _)| resumed.max(started))
            .fold(started.plus(pause), Millis::min)
    }

    /// The operator pause holding batch `pos` of conversation `conv`: the pauses lull stored
    /// before its last message landed hold it until the last of them ended (by lull's clock: at
    /// most the skew off). `None` when no pause holds it or its storage was not observed.
    pub fn pause_hold(&self, conv: usize, pos: usize) -> Option<PauseHold> {
        let b = self.batches[self.per_conv[conv][pos]].batch;
        let last = self.stored(b.messages.last()?)?;
        let pause = last.policy.pause;
        let held = self.input.rec.pauses[conv]
            .iter()
            .filter(|&&(_, answered)| answered <= last.landed);
        let until = held
            .clone()
            .map(|&(s, _)| self.pause_end(conv, s, pause))
            .max()?;
        let full = held.map(|&(s, _)| s.plus(pause)).max()?;
        Some(PauseHold { until, full })
    }

    /// The latest batch `pos` of conversation `conv` may become due by its rule (by the world's
    /// clock): what liveness measures from. Presence may hold a window up to max wait, and an
    /// operator pause that began before then holds it until the pause ends.
    pub fn world_due_latest(&self, conv: usize, pos: usize) -> Option<Millis> {
        let due = self.world_due(conv, pos)?.ok()?;
        let b = self.batches[self.per_conv[conv][pos]].batch;
        let first = self.stored(b.messages.first()?)?;
        let last = self.stored(b.messages.last()?)?;
        let seen = &self.batches[self.per_conv[conv][pos]];
        let mut latest = match b.reason {
            CloseReason::Quiet => self
                .last_activity(conv, last.arrived, first.arrived, seen.first_start)
                .plus(longest_quiet(&first.policy))
                .min(first.arrived.plus(first.policy.max_wait)),
            _ => due,
        };
        let skew = self.input.bounds.skew;
        // A pause requested before the batch was acknowledged (or within the fault-free lag of
        // when it was due) may hold it: faults can delay a batch past that lag, and a pause
        // holds pending batches too.
        let reach = latest
            .plus(self.input.bounds.max_lag)
            .max(seen.first_ack.unwrap_or(seen.first_start));
        for &(started, _) in &self.input.rec.pauses[conv] {
            if started <= reach {
                latest = latest.max(started.plus(first.policy.pause).plus(skew));
            }
        }
        Some(latest.max(due))
    }
}

/// How many batches an operator resume released before their pause would have ended.
pub(crate) fn released_by_resume(input: &Input<'_>) -> usize {
    never_early::released_by_resume(&Ctx::new(input))
}

/// Checks every invariant over what was observed.
pub(crate) fn check(input: &Input<'_>) -> Vec<Violation> {
    let ctx = Ctx::new(input);
    let mut out = Vec::new();
    no_loss::check(&ctx, &mut out);
    liveness::check(&ctx, &mut out);
    once::check(&ctx, &mut out);
    never_early::check(&ctx, &mut out);
    in_order::check(&ctx, &mut out);
    one_at_a_time::check(&ctx, &mut out);
    isolation::check(&ctx, &mut out);
    nothing_silent::check(&ctx, &mut out);
    unsent::check(&ctx, &mut out);
    latest_content::check(&ctx, &mut out);
    context_only_from_superseded::check(&ctx, &mut out);
    thought_bounded::check(&ctx, &mut out);
    guard_never_stale::check(&ctx, &mut out);
    out
}
