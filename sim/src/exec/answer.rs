//! The world's side of the bot behind the sink (`ai_step.rs`): which hand-offs are answered
//! after an AI step, how long it generates, and the hand-off's answer when its reply is decided.

use std::time::Duration;

use crate::ai_step::{self, BotCall, BotMode};
use crate::batch::Batch;
use crate::ports::{Acknowledged, SinkError};
use crate::time::Millis;

use super::{Event, Op, OpId, OpResult, SinkFault, TaskId, World};

impl World {
    /// The bot of `batch`'s conversation, when the run models the AI step.
    fn bot(&self, batch: &Batch) -> Option<(usize, BotMode)> {
        let c = *self.rec.conv_index.get(&batch.conversation)?;
        Some((c, *self.bots.as_ref()?.get(c)?))
    }

    /// True when `batch`'s receiver answers the hand-off after its AI step.
    pub(super) fn answers_after_ai_step(&self, batch: &Batch) -> bool {
        matches!(
            self.bot(batch),
            Some((_, BotMode::AfterReply | BotMode::Declares))
        )
    }

    /// A seeded generation time (`ai_step::GENERATION_MIN` to `GENERATION_MAX`).
    pub(super) fn generation(&mut self) -> Duration {
        let (lo, hi) = (ai_step::GENERATION_MIN, ai_step::GENERATION_MAX);
        self.between(lo.as_millis() as u64, hi.as_millis() as u64)
    }

    /// The reply the bot starts on receiving `batch` (hand-off started at `started`).
    pub(super) fn bot_call(&self, batch: &Batch, started: Millis) -> Option<BotCall> {
        let (conv, mode) = self.bot(batch)?;
        Some(BotCall {
            op: None,
            conv,
            batch_id: batch.batch_id,
            claim: batch
                .reply_guard
                .as_ref()
                .and_then(|g| ai_step::open(&g.url)),
            started,
            mode,
            asks: 0,
            failures: 0,
        })
    }

    /// An `at-once` bot acknowledged `batch` now: it generates its reply, then asks the guard.
    pub(super) fn generate_after_ack(&mut self, batch: &Batch, started: Millis) {
        if let Some(call) = self.bot_call(batch, started) {
            if call.mode == BotMode::AtOnce {
                let at = self.now.plus(self.generation());
                self.schedule(
                    at,
                    Event::Generated {
                        call: Box::new(call),
                    },
                );
            }
        }
    }

    /// The bot decided its reply and answers hand-off `op` now (`declared`: with
    /// `Lull-Reply: superseded`). Returns the task waiting on it, if lull still waits: the call
    /// may have ended at its budget, or with its flush.
    pub fn answer_call(&mut self, op: OpId, declared: bool) -> Option<TaskId> {
        let waiting = matches!(
            self.ops.get(&op),
            Some((
                _,
                Op::Deliver {
                    outcome: SinkFault::AiStep { .. },
                    ..
                },
                _
            ))
        );
        if !waiting {
            return None;
        }
        let (task, call, _) = self.take_op(op)?;
        let Op::Deliver {
            batch,
            started,
            outcome: SinkFault::AiStep { lost_ack },
            ..
        } = call
        else {
            return None;
        };
        let now = self.now;
        let acked = !lost_ack && !self.sink_down;
        self.rec.delivery(&batch, started, now, true, acked);
        if acked && declared {
            (self.rec.guard.declared.entry(batch.batch_id))
                .or_default()
                .push(now);
        }
        let r = if acked {
            Ok(Acknowledged {
                superseded: declared,
            })
        } else {
            Err(SinkError::retryable(
                "injected: the answer after the AI step was lost",
            ))
        };
        self.put_result(op, task, OpResult::Delivered(r));
        Some(task)
    }
}
