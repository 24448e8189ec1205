//! The workload: people typing turns on phones, with the ground truth known.
//!
//! Every number here is either from a source or a stated assumption (BENCHMARKS.md section 7
//! lists them with the sources); the command line changes the two that matter most.
//!
//! - Typing speed: Palin et al., "How do People Type on Mobile Devices? Observations from a Study
//!   with 37,000 Volunteers" (MobileHCI 2019): about 36 words per minute on average, with a wide
//!   spread between people. Per user: normal, mean 36 wpm, SD 13 (our spread), clamped to
//!   12..80 wpm; 5 characters per word (the WPM convention).
//! - Message length: WhatsApp messages are short (Rosenfeld et al., "WhatsApp usage patterns and
//!   prediction of demographic characteristics without access to message content", Demographic
//!   Research 39, 2018). Assumed log-normal: fragments median 15 characters, whole thoughts
//!   median 55 characters.
//! - Who fragments: `fragmenter_share` of users (assumed 35%) type a turn as 2+ messages (75% of
//!   their turns; 2 + geometric(1/2) messages); the others send one message per turn, 10% of the
//!   time followed by an afterthought.
//! - Pauses inside a turn: the think time before the next fragment, log-normal around a per-user
//!   median (itself log-normal around 0.8 s), plus a 5% chance of a long pause (5-20 s: looking
//!   something up). A message is typed at the user's speed (time = length / speed, +-20%); 15%
//!   of messages have a mid-message pause of ~3 s (the app sends `paused` then `composing`).
//! - Between turns: the user reads the bot's answer first: at least 15 s after the turn's last
//!   message, plus log-normal median 25 s. The timeline is open-loop: every policy sees the same
//!   user, so the comparison is paired.
//! - Delivery: webhooks reach lull after a log-normal delay (median 300 ms). For the
//!   `presence_share` of users whose gateway sends presence (Evolution/WAHA over WhatsApp Web):
//!   `composing` when typing starts, repeated every 10 s while typing (assumed), `paused` on a
//!   mid-message pause; 3% of presence events are lost and 5% are delayed by a further 0.5-3 s
//!   (late and out of order; the gateway's timestamp is kept, as Evolution's `date_time`).

use lull_core::turn::PresenceKind;
use lull_core::Millis;

/// One thing lull receives, in receive order per conversation.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// A message of ground-truth turn `turn` (index within the conversation).
    Message { turn: u32 },
    /// A presence event; `sent_at` is the gateway's timestamp.
    Presence { kind: PresenceKind, sent_at: Millis },
}

/// One received event.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    pub at: Millis,
    pub event: Event,
}

/// What the generator knows about one message (ground truth, never shown to the rule): what
/// the split-turn breakdown attributes a cut to.
#[derive(Clone, Copy, Debug, Default)]
pub struct MessageTruth {
    pub turn: u32,
    /// A second message of a whole-thought writer's turn (an afterthought).
    pub afterthought: bool,
    /// A long pause (5-20 s) came before this message was started.
    pub long_pause: bool,
    /// When the user started typing it (the first `composing` was sent), on the user's clock.
    pub started_at: Millis,
    /// When that first `composing` reached lull; `None` if lost (or the gateway sends none).
    pub start_received: Option<Millis>,
}

/// One user's conversation.
pub struct Conversation {
    pub presence: bool,
    pub fragmenter: bool,
    pub events: Vec<Received>,
    pub turns: u32,
    /// One entry per message, in receive order (messages keep their order).
    pub truth: Vec<MessageTruth>,
}

/// The knobs of the model (defaults in `TurnsArgs`).
#[derive(Clone, Copy, Debug)]
pub struct Model {
    pub turns: u32,
    pub presence_share: f64,
    pub fragmenter_share: f64,
}

fn normal(rng: &mut fastrand::Rng) -> f64 {
    // Box-Muller; 1 - f64() is in (0, 1].
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn lognormal(rng: &mut fastrand::Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

fn ms(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1000.0).round() as u64
}

/// Generates one conversation, deterministically from `seed`.
pub fn conversation(m: &Model, seed: u64) -> Conversation {
    let mut rng = fastrand::Rng::with_seed(seed);
    let presence = rng.f64() < m.presence_share;
    let fragmenter = rng.f64() < m.fragmenter_share;
    let wpm = (36.0 + 13.0 * normal(&mut rng)).clamp(12.0, 80.0);
    let chars_per_s = wpm * 5.0 / 60.0;
    let think_median = lognormal(&mut rng, 0.8, 0.5);

    // (send time s, event) on the user's clock, before delivery.
    let mut sent: Vec<(f64, Event)> = Vec::new();
    let mut truth: Vec<MessageTruth> = Vec::new();
    // Index in `sent` of each message's first `composing`.
    let mut first_composing: Vec<usize> = Vec::new();
    let mut t = rng.f64() * 60.0;
    for turn in 0..m.turns {
        let k = if fragmenter {
            if rng.f64() < 0.25 {
                1
            } else {
                let mut k = 2;
                while rng.bool() && k < 8 {
                    k += 1;
                }
                k
            }
        } else if rng.f64() < 0.1 {
            2
        } else {
            1
        };
        for j in 0..k {
            let mut long_pause = false;
            if j > 0 {
                t += lognormal(&mut rng, think_median, 0.8);
                if rng.f64() < 0.05 {
                    t += 5.0 + 15.0 * rng.f64();
                    long_pause = true;
                }
            }
            truth.push(MessageTruth {
                turn,
                afterthought: j > 0 && !fragmenter,
                long_pause,
                started_at: Millis(ms(t)),
                start_received: None,
            });
            first_composing.push(sent.len());
            let median_len = if fragmenter || j > 0 { 15.0 } else { 55.0 };
            let len = lognormal(&mut rng, median_len, 0.65).clamp(2.0, 600.0);
            let typing = len / chars_per_s * (0.8 + 0.4 * rng.f64());
            let mid_pause = (rng.f64() < 0.15).then(|| lognormal(&mut rng, 3.0, 0.5));
            let produce = |sent: &mut Vec<(f64, Event)>, kind, at: f64| {
                sent.push((
                    at,
                    Event::Presence {
                        kind,
                        sent_at: Millis(ms(at)),
                    },
                ))
            };
            // Typing, with `composing` repeated every 10 s, and maybe one mid-message pause.
            let mut typed = 0.0;
            let pause_after = typing * rng.f64();
            produce(&mut sent, PresenceKind::Composing, t);
            let mut since_composing = 0.0;
            while typed < typing {
                let step = (typing - typed).min(0.25);
                typed += step;
                t += step;
                since_composing += step;
                if let Some(p) = mid_pause {
                    if typed >= pause_after && typed - step < pause_after {
                        produce(&mut sent, PresenceKind::Paused, t);
                        t += p;
                        produce(&mut sent, PresenceKind::Composing, t);
                        since_composing = 0.0;
                    }
                }
                if since_composing >= 10.0 && typed < typing {
                    produce(&mut sent, PresenceKind::Composing, t);
                    since_composing = 0.0;
                }
            }
            sent.push((t, Event::Message { turn }));
        }
        t += 15.0 + lognormal(&mut rng, 25.0, 0.8);
    }

    // Delivery: messages keep their order (the gateway sends them one by one); presence events
    // are independent requests, sometimes lost, sometimes late.
    let mut events = Vec::with_capacity(sent.len());
    let mut last_message_at = 0u64;
    let mut next_start = 0;
    for (i, (at, ev)) in sent.into_iter().enumerate() {
        let starts = first_composing
            .get(next_start)
            .filter(|&&f| f == i)
            .map(|_| {
                next_start += 1;
                next_start - 1
            });
        let delay = lognormal(&mut rng, 0.3, 0.5).min(5.0);
        match ev {
            Event::Message { .. } => {
                let r = ms(at + delay).max(last_message_at + 1);
                last_message_at = r;
                events.push(Received {
                    at: Millis(r),
                    event: ev,
                });
            }
            Event::Presence { .. } if presence => {
                if rng.f64() < 0.03 {
                    continue;
                }
                let late = if rng.f64() < 0.05 {
                    0.5 + 2.5 * rng.f64()
                } else {
                    0.0
                };
                let received = Millis(ms(at + delay + late));
                if let Some(m) = starts.and_then(|m| truth.get_mut(m)) {
                    m.start_received = Some(received);
                }
                events.push(Received {
                    at: received,
                    event: ev,
                });
            }
            Event::Presence { .. } => {}
        }
    }
    events.sort_by_key(|e| e.at);
    Conversation {
        presence,
        fragmenter,
        events,
        turns: m.turns,
        truth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_ordered_and_presence_only_for_presence_users() {
        let m = Model {
            turns: 30,
            presence_share: 0.5,
            fragmenter_share: 0.35,
        };
        let mut with = 0;
        for seed in 0..40 {
            let a = conversation(&m, seed);
            let b = conversation(&m, seed);
            assert_eq!(a.events.len(), b.events.len());
            assert!(a.events.windows(2).all(|w| w[0].at <= w[1].at));
            let msgs = a
                .events
                .iter()
                .filter(|e| matches!(e.event, Event::Message { .. }))
                .count();
            assert!(msgs >= 30, "every turn has a message");
            let pres = a.events.len() - msgs;
            if a.presence {
                with += 1;
                assert!(pres > 0);
            } else {
                assert_eq!(pres, 0);
            }
        }
        assert!((5..=35).contains(&with), "{with}");
    }
}
