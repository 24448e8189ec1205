//! The bot behind the sink, as the driver runs it (`ai_step.rs` describes the model): a reply
//! generated, the reply guard asked (a task of its own over the simulated store: the real
//! `Intake::guard`), the answer the bot got recorded for the checker, and the hand-off answered
//! when the reply is decided.

use lull_core::time::Millis;

use super::{lock, Driver, TaskFuture, TaskKind, TaskOutput};
use crate::ai_step::{self, BotCall, BotMode};
use crate::exec::{Event, OpId};
use crate::guard::GuardAnswer;
use crate::record::{GuardSeen, TraceEvent};

impl Driver {
    /// The bot finished generating its reply to `call`'s batch.
    pub(super) fn generated(&mut self, call: Box<BotCall>) {
        match call.mode {
            BotMode::Declares => {
                // It saw the user write again since the hand-off started: it discards its reply
                // and says so in its answer.
                let declared = {
                    let mut w = lock(&self.world);
                    let declared = w.rec.guard.last_accepted[call.conv] > call.started;
                    if declared {
                        w.rec.guard.discarded += 1;
                    }
                    declared
                };
                self.answer(call.op, declared);
            }
            BotMode::AfterReply | BotMode::AtOnce => self.ask(call),
        }
    }

    /// The bot GETs `call`'s reply guard.
    pub(super) fn ask(&mut self, mut call: Box<BotCall>) {
        let Some(claim) = call.claim.clone() else {
            self.answer(call.op, false);
            return;
        };
        call.asks += 1;
        let policy = {
            let mut w = lock(&self.world);
            w.rec.guard.asked += 1;
            let now = w.now;
            self.work.conversations[call.conv].policy_at(now)
        };
        let typing = ai_step::guard_typing(&policy);
        let sut = self.sut.clone();
        let batch = call.batch_id;
        let fut: TaskFuture =
            Box::pin(async move { TaskOutput::Guard(sut.guard(claim, typing).await) });
        let id = self.next_task;
        self.next_task += 1;
        {
            let mut w = lock(&self.world);
            w.begin_task(id, None);
            if let Some(t) = w.tasks.get_mut(&id) {
                t.guard = Some(batch);
            }
        }
        self.tasks.insert(id, (TaskKind::Guard { call }, fut));
        self.poll(id);
    }

    /// `call`'s guard request ended: its answer (`Err`: none, a 4xx/5xx or a crash), made from
    /// the read at `read_at`.
    pub(super) fn guard_done(
        &mut self,
        mut call: Box<BotCall>,
        said: Result<GuardAnswer, String>,
        read_at: Option<Millis>,
    ) {
        let mut w = lock(&self.world);
        let now = w.now;
        let said = match said {
            Ok(_) if w.fault(self.cfg.faults.sink_lost_ack) => {
                let key = &self.work.conversations[call.conv].key;
                w.rec
                    .fault(Some(key), now, TraceEvent::Fault("guard answer lost"));
                Err("answer lost".to_string())
            }
            said => said,
        };
        let gen = call.claim.as_ref().map_or(0, |c| c.gen);
        let what = format!("gen {gen}: {said:?}");
        w.rec.trace_conv(call.conv, now, TraceEvent::Guard(what));
        let answer = match said {
            Ok(answer) => answer,
            Err(_) => {
                w.rec.guard.failed += 1;
                call.failures += 1;
                if call.failures < ai_step::GUARD_ASKS && call.asks < ai_step::MAX_ASKS {
                    let at = now.plus(ai_step::GUARD_RETRY);
                    w.schedule(at, Event::Ask { call });
                } else {
                    // No answer: the bot sends its reply.
                    drop(w);
                    self.answer(call.op, false);
                }
                return;
            }
        };
        call.failures = 0;
        w.rec.guard.answers.push(GuardSeen {
            conv: call.conv,
            batch_id: call.batch_id,
            answer,
            read_at: read_at.unwrap_or(now),
        });
        match answer {
            GuardAnswer::Typing { retry_after_ms } if call.asks < ai_step::MAX_ASKS => {
                let at = Millis(now.0 + retry_after_ms.max(1));
                w.schedule(at, Event::Ask { call });
            }
            GuardAnswer::Superseded {
                supersede: true, ..
            } => {
                // Discarded: the next batch repeats this one as `context`.
                w.rec.guard.discarded += 1;
                drop(w);
                self.answer(call.op, false);
            }
            _ => {
                drop(w);
                self.answer(call.op, false);
            }
        }
    }

    /// The bot answers hand-off `op` (if it answers after its AI step).
    fn answer(&mut self, op: Option<OpId>, declared: bool) {
        let Some(op) = op else { return };
        let task = lock(&self.world).answer_call(op, declared);
        if let Some(task) = task {
            self.poll(task);
        }
    }
}
