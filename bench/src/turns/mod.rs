//! Benchmark 7, end of turn (`lull-bench turns`): how soon each end-of-turn policy answers after
//! a user's turn, and how often it splits one thought into two batches, on a documented model of
//! people typing on phones (see [`model`]). Every policy is evaluated with lull-core's own rule,
//! [`lull_core::turn::due`], replayed over the same deterministic workload ([`replay`]).
//!
//! Prints one `bench=turns policy=... signals=...` line per policy and population (users whose
//! gateway sends presence, users whose gateway does not), then one `bench=turns verdict ...`
//! line against the budgets. `--csv` writes the same figures for `scripts/plot_turns.py`.

mod model;
mod replay;
mod reply;
mod sign;

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use lull_core::turn::{PresenceKind, QuietRule, TurnPolicy, TurnReason, TypingRule};

use crate::util::{self, Res};

#[derive(Args, Debug, Clone)]
pub struct TurnsArgs {
    /// Conversations (users) in the workload.
    #[arg(long, default_value_t = 4_000)]
    pub conversations: u64,
    /// Ground-truth turns per conversation.
    #[arg(long, default_value_t = 25)]
    pub turns: u32,
    /// Share of users whose gateway sends presence (Evolution/WAHA `presence.update`).
    #[arg(long, default_value_t = 0.5)]
    pub presence_share: f64,
    /// Share of users who type a turn in fragments.
    #[arg(long, default_value_t = 0.35)]
    pub fragmenter_share: f64,
    /// Seed of the workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the figures as CSV here (for `scripts/plot_turns.py`).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Also write the AI-step figures (stale answers per `on_newer`) as CSV here (for
    /// `scripts/plot_turns.py --replies`).
    #[arg(long)]
    pub reply_csv: Option<PathBuf>,
}

/// The end-of-turn policies the AI step is modelled after ([`reply`]).
const REPLY_POLICIES: [&str; 4] = ["fixed-8s", "adaptive", "typing", "both"];

/// The AI-step figures of one end-of-turn policy, bot and population.
#[derive(Default, Clone)]
struct ReplyFigures {
    turns: u64,
    messages: u64,
    replies: u64,
    stale: u64,
    calls: u64,
    wasted: u64,
    causes: [u64; 5],
    max_wait_cut: u64,
    guards: u64,
    after_send_gap_s: Vec<f64>,
    answer_s: Vec<f64>,
    silence_s: Vec<f64>,
}

#[derive(Clone, Copy)]
struct ReplySummary {
    turns: u64,
    replies: u64,
    /// Stale replies, % of turns (a split turn answered in parts is one).
    stale_pct: f64,
    median_answer_s: f64,
    p90_answer_s: f64,
    calls_per_message: f64,
    wasted_per_message: f64,
    median_silence_s: f64,
    /// Stale answers by cause, % of turns (as [`reply::StaleCause::ALL`]).
    causes_pct: [f64; 5],
    max_wait_cut_pct: f64,
    guards_per_message: f64,
    /// How much longer every reply would have to be held (after its generation, and after the
    /// guard's `typing` answers) for stale answers to reach 1% of turns: the gap that many of
    /// the after-send answers' missing messages came within (0: met already).
    hold_for_1pct_s: f64,
    median_after_send_gap_s: f64,
}

impl ReplyFigures {
    fn add(&mut self, o: reply::Outcome, messages: u64, turns: usize) {
        self.turns += turns as u64;
        self.messages += messages;
        self.replies += o.replies;
        self.stale += o.stale;
        for (sum, n) in self.causes.iter_mut().zip(o.causes) {
            *sum += n;
        }
        self.max_wait_cut += o.max_wait_cut;
        self.guards += o.guards;
        self.after_send_gap_s.extend(o.after_send_gap_s);
        self.calls += o.calls;
        self.wasted += o.wasted;
        self.answer_s.extend(o.answer_s);
        self.silence_s.extend(o.silence_s);
    }

    /// The hold that would catch enough after-send answers for stale answers to reach `pct`% of
    /// turns (`after_send_gap_s` sorted; infinite when even all of them would not do).
    fn hold_for(&self, pct: f64) -> f64 {
        let allowed = (pct / 100.0 * self.turns as f64).floor() as u64;
        let excess = self.stale.saturating_sub(allowed) as usize;
        match excess {
            0 => 0.0,
            n if n <= self.after_send_gap_s.len() => self.after_send_gap_s[n - 1],
            _ => f64::INFINITY,
        }
    }

    fn summary(&mut self) -> ReplySummary {
        util::sort(&mut self.answer_s);
        util::sort(&mut self.after_send_gap_s);
        util::sort(&mut self.silence_s);
        let m = self.messages.max(1) as f64;
        ReplySummary {
            turns: self.turns,
            replies: self.replies,
            stale_pct: pct_of(self.stale, self.turns),
            median_answer_s: util::pct(&self.answer_s, 50.0),
            p90_answer_s: util::pct(&self.answer_s, 90.0),
            calls_per_message: self.calls as f64 / m,
            wasted_per_message: self.wasted as f64 / m,
            median_silence_s: util::pct(&self.silence_s, 50.0),
            causes_pct: self.causes.map(|n| pct_of(n, self.turns)),
            max_wait_cut_pct: pct_of(self.max_wait_cut, self.turns),
            guards_per_message: self.guards as f64 / m,
            hold_for_1pct_s: self.hold_for(1.0),
            median_after_send_gap_s: util::pct(&self.after_send_gap_s, 50.0),
        }
    }
}

/// The `bench=turns_reply stale_causes` line: why the stale answers of one row are stale.
fn print_stale_causes(policy: &str, bot: reply::Bot, signals: &str, s: &ReplySummary) {
    let causes: Vec<String> = reply::StaleCause::ALL
        .iter()
        .map(|c| format!("{}_pct={:.2}", c.name(), s.causes_pct[*c as usize]))
        .collect();
    println!(
        "bench=turns_reply stale_causes policy={policy} on_newer={} signals={signals} {} \
         max_wait_cut_pct={:.2} guard_calls_per_message={:.4} median_after_send_gap_s={:.2} \
         hold_needed_for_1pct_s={:.2}",
        bot.name(),
        causes.join(" "),
        s.max_wait_cut_pct,
        s.guards_per_message,
        s.median_after_send_gap_s,
        s.hold_for_1pct_s,
    );
}

/// The policies compared: fixed quiet 1..10 s, adaptive, typing-aware, both.
fn policies() -> Vec<(String, TurnPolicy)> {
    // lull's default max wait, the same for every policy.
    let max_wait = 30_000;
    // lull's typing defaults (`policy::Typing::default()`): a stop grace of 6 s after a
    // `paused`/`available` (the `*-stop1.5s` rows show the 1.5 s it replaced).
    let typing = Some(TypingRule {
        grace_ms: 1_500,
        hold_ms: 12_000,
        stop_grace_ms: Some(6_000),
    });
    // Fragmenters' gaps run past 10 s (a slow typist's next fragment), so the max is 20 s; the
    // median answer is set by the min, which whole-thought writers get.
    let adaptive = QuietRule::Adaptive {
        min_ms: 1_500,
        max_ms: 20_000,
        prior_ms: 4_000,
    };
    let mut out: Vec<(String, TurnPolicy)> = (1..=10)
        .map(|s| {
            (
                format!("fixed-{s}s"),
                TurnPolicy {
                    quiet: QuietRule::Fixed { ms: s * 1_000 },
                    max_wait_ms: max_wait,
                    typing: None,
                },
            )
        })
        .collect();
    out.push((
        "adaptive".into(),
        TurnPolicy {
            quiet: adaptive,
            max_wait_ms: max_wait,
            typing: None,
        },
    ));
    out.push((
        "typing".into(),
        TurnPolicy {
            quiet: QuietRule::Fixed { ms: 8_000 },
            max_wait_ms: max_wait,
            typing,
        },
    ));
    out.push((
        "both".into(),
        TurnPolicy {
            quiet: adaptive,
            max_wait_ms: max_wait,
            typing,
        },
    ));
    // The rule before the stop grace: a `paused`/`available` released after the 1.5 s grace.
    let short_stop = typing.map(|t| TypingRule {
        stop_grace_ms: None,
        ..t
    });
    out.push((
        "typing-stop1.5s".into(),
        TurnPolicy {
            quiet: QuietRule::Fixed { ms: 8_000 },
            max_wait_ms: max_wait,
            typing: short_stop,
        },
    ));
    out.push((
        "both-stop1.5s".into(),
        TurnPolicy {
            quiet: adaptive,
            max_wait_ms: max_wait,
            typing: short_stop,
        },
    ));
    out
}

/// Why a ground-truth turn was split: the cause of its first cut (a hand-off between two of its
/// messages), from what the generator knows about the message after the cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// Max wait closed the window while the turn went on.
    MaxWait,
    /// A whole-thought writer's afterthought came after the quiet in force.
    Afterthought,
    /// A `paused`/`available` mid-message (the user stopped typing, then went on) released the
    /// window after the grace.
    StopReleased,
    /// The user had started typing before the hand-off, but its `composing` was lost or reached
    /// lull after the hand-off.
    PresenceLostOrLate,
    /// A `composing` held the window for the typing hold and no newer event came in time.
    HoldExpired,
    /// A long pause (5-20 s) before the next fragment was started.
    LongPause,
    /// The think time before the next fragment was started outlasted the quiet in force (the
    /// user was not typing yet, so presence could not show it).
    ThinkPause,
    /// No presence: the gap to the next fragment (think time + typing it) outlasted the quiet.
    Gap,
}

impl Cause {
    const ALL: [Cause; 8] = [
        Cause::MaxWait,
        Cause::Afterthought,
        Cause::StopReleased,
        Cause::PresenceLostOrLate,
        Cause::HoldExpired,
        Cause::LongPause,
        Cause::ThinkPause,
        Cause::Gap,
    ];

    fn name(self) -> &'static str {
        match self {
            Cause::MaxWait => "max_wait",
            Cause::Afterthought => "afterthought",
            Cause::StopReleased => "paused_released",
            Cause::PresenceLostOrLate => "presence_lost_or_late",
            Cause::HoldExpired => "hold_expired",
            Cause::LongPause => "long_pause",
            Cause::ThinkPause => "think_pause",
            Cause::Gap => "gap_no_presence",
        }
    }

    fn of(c: &model::Conversation, h: &replay::Handoff, next: &model::MessageTruth) -> Cause {
        if h.reason == TurnReason::MaxWait {
            return Cause::MaxWait;
        }
        if next.afterthought {
            return Cause::Afterthought;
        }
        if !c.presence {
            return if next.long_pause {
                Cause::LongPause
            } else {
                Cause::Gap
            };
        }
        if matches!(
            h.presence_after,
            Some(PresenceKind::Paused | PresenceKind::Available)
        ) {
            return Cause::StopReleased;
        }
        if next.started_at < h.at && next.start_received.is_none_or(|r| r > h.at) {
            return Cause::PresenceLostOrLate;
        }
        if h.reason == TurnReason::TypingHold {
            return Cause::HoldExpired;
        }
        if next.long_pause {
            Cause::LongPause
        } else {
            Cause::ThinkPause
        }
    }

    fn index(self) -> usize {
        Cause::ALL.iter().position(|&c| c == self).unwrap_or(0)
    }
}

/// Figures of one policy on one population.
#[derive(Default, Clone)]
struct Figures {
    /// Split turns per [`Cause`] (indexed as `Cause::ALL`).
    causes: [u64; Cause::ALL.len()],
    turns: u64,
    frag_turns: u64,
    frag_split: u64,
    messages: u64,
    batches: u64,
    split: u64,
    merged_batches: u64,
    max_wait_batches: u64,
    silence_s: Vec<f64>,
}

impl Figures {
    fn add(&mut self, r: &replay::Replay, c: &model::Conversation) {
        let fragmenter = c.fragmenter;
        self.messages += r.messages;
        self.batches += r.handoffs.len() as u64;
        let turns = r.turn_last.len();
        let mut batches_of_turn = vec![0u32; turns];
        let mut handed_at = vec![None; turns];
        let mut cause_of_turn: Vec<Option<Cause>> = vec![None; turns];
        for h in &r.handoffs {
            let last = c.truth.get(h.last_msg);
            let next = c.truth.get(h.last_msg + 1);
            if let (Some(last), Some(next)) = (last, next) {
                if last.turn == next.turn {
                    if let Some(slot @ None) = cause_of_turn.get_mut(last.turn as usize) {
                        *slot = Some(Cause::of(c, h, next));
                    }
                }
            }
            let mut seen: Vec<u32> = h.turns.clone();
            seen.dedup();
            if seen.len() > 1 {
                self.merged_batches += 1;
            }
            if h.reason == TurnReason::MaxWait {
                self.max_wait_batches += 1;
            }
            for &t in &seen {
                if let Some(n) = batches_of_turn.get_mut(t as usize) {
                    *n += 1;
                }
            }
            if let Some(&t) = h.turns.last() {
                // The batch holding a turn's last message is its answer.
                if let Some(slot) = handed_at.get_mut(t as usize) {
                    *slot = Some(h.at);
                }
            }
        }
        for t in 0..turns {
            self.turns += 1;
            if fragmenter {
                self.frag_turns += 1;
            }
            if batches_of_turn[t] > 1 {
                self.split += 1;
                if let Some(cause) = cause_of_turn[t] {
                    self.causes[cause.index()] += 1;
                }
                if fragmenter {
                    self.frag_split += 1;
                }
            }
            if let Some(at) = handed_at[t] {
                self.silence_s
                    .push(at.0.saturating_sub(r.turn_last[t].0) as f64 / 1000.0);
            }
        }
    }

    fn summary(&mut self) -> Summary {
        util::sort(&mut self.silence_s);
        Summary {
            turns: self.turns,
            messages: self.messages,
            batches: self.batches,
            median_s: util::pct(&self.silence_s, 50.0),
            p90_s: util::pct(&self.silence_s, 90.0),
            split_pct: pct_of(self.split, self.turns),
            split_frag_pct: pct_of(self.frag_split, self.frag_turns),
            split_other_pct: pct_of(self.split - self.frag_split, self.turns - self.frag_turns),
            causes_pct: self.causes.map(|n| pct_of(n, self.turns)),
            merged_pct: pct_of(self.merged_batches, self.batches),
            max_wait_pct: pct_of(self.max_wait_batches, self.batches),
            calls_per_message: self.batches as f64 / self.messages.max(1) as f64,
        }
    }
}

fn pct_of(n: u64, of: u64) -> f64 {
    100.0 * n as f64 / of.max(1) as f64
}

#[derive(Clone, Copy)]
struct Summary {
    turns: u64,
    messages: u64,
    batches: u64,
    median_s: f64,
    p90_s: f64,
    split_pct: f64,
    /// Split turns among users who fragment, and among the others.
    split_frag_pct: f64,
    split_other_pct: f64,
    /// Split turns per [`Cause`], % of all turns (they sum to `split_pct`).
    causes_pct: [f64; Cause::ALL.len()],
    merged_pct: f64,
    /// Batches closed by max wait (the cap every policy shares).
    max_wait_pct: f64,
    calls_per_message: f64,
}

pub fn run(a: &TurnsArgs) -> Res<()> {
    if !(0.0..=1.0).contains(&a.presence_share) || !(0.0..=1.0).contains(&a.fragmenter_share) {
        return Err("--presence-share and --fragmenter-share must be between 0 and 1".into());
    }
    if a.turns == 0 || a.conversations == 0 || a.turns > 1_000 || a.conversations > 1_000_000 {
        return Err("--turns must be 1..=1000 and --conversations 1..=1000000".into());
    }
    let m = model::Model {
        turns: a.turns,
        presence_share: a.presence_share,
        fragmenter_share: a.fragmenter_share,
    };
    let convs: Vec<model::Conversation> = (0..a.conversations)
        .map(|i| model::conversation(&m, a.seed.wrapping_mul(1_000_003).wrapping_add(i)))
        .collect();
    let mut rows = Vec::new();
    let mut reply_rows = Vec::new();
    for (name, policy) in policies() {
        policy.validate().map_err(|e| format!("{name}: {e}"))?;
        let mut with = Figures::default();
        let mut without = Figures::default();
        // The AI step after the hand-off, for the policies a tenant would run.
        let modelled = REPLY_POLICIES.contains(&name.as_str());
        let mut replies: Vec<ReplyFigures> =
            vec![ReplyFigures::default(); reply::Bot::ALL.len() * 2];
        let typing = policy.typing;
        for (i, c) in convs.iter().enumerate() {
            let r = replay::replay(&policy, c);
            if modelled {
                for (b, bot) in reply::Bot::ALL.into_iter().enumerate() {
                    let seed = a.seed.wrapping_mul(7_919).wrapping_add(i as u64);
                    let rule = typing.filter(|_| c.presence);
                    let o = reply::run(bot, c, &r, seed, rule);
                    replies[b * 2 + usize::from(!c.presence)].add(o, r.messages, r.turn_last.len());
                }
            }
            if c.presence {
                with.add(&r, c);
            } else {
                without.add(&r, c);
            }
        }
        if modelled {
            for (b, bot) in reply::Bot::ALL.into_iter().enumerate() {
                for (k, signals) in ["yes", "no"].into_iter().enumerate() {
                    let s = replies[b * 2 + k].summary();
                    println!(
                        "bench=turns_reply policy={name} on_newer={} signals={signals} turns={} \
                         replies={} stale_answers_pct={:.2} median_answer_s={:.2} \
                         p90_answer_s={:.2} ai_calls_per_message={:.4} \
                         wasted_calls_per_message={:.4} median_silence_s={:.2}",
                        bot.name(),
                        s.turns,
                        s.replies,
                        s.stale_pct,
                        s.median_answer_s,
                        s.p90_answer_s,
                        s.calls_per_message,
                        s.wasted_per_message,
                        s.median_silence_s,
                    );
                    print_stale_causes(&name, bot, signals, &s);
                    reply_rows.push((name.clone(), bot, signals, s));
                }
            }
        }
        for (signals, f) in [("yes", &mut with), ("no", &mut without)] {
            let s = f.summary();
            println!(
                "bench=turns policy={name} signals={signals} turns={} messages={} batches={} \
                 median_silence_s={:.2} p90_silence_s={:.2} split_turns_pct={:.2} \
                 split_fragmenters_pct={:.2} split_others_pct={:.2} merged_batches_pct={:.2} \
                 max_wait_batches_pct={:.2} calls_per_message={:.4}",
                s.turns,
                s.messages,
                s.batches,
                s.median_s,
                s.p90_s,
                s.split_pct,
                s.split_frag_pct,
                s.split_other_pct,
                s.merged_pct,
                s.max_wait_pct,
                s.calls_per_message
            );
            let causes: Vec<String> = Cause::ALL
                .iter()
                .map(|c| format!("{}_pct={:.2}", c.name(), s.causes_pct[c.index()]))
                .collect();
            println!(
                "bench=turns split_causes policy={name} signals={signals} {}",
                causes.join(" ")
            );
            sign::print(&name, signals, &sign::signs(&f.silence_s, a.seed));
            rows.push((name.clone(), signals, s));
        }
    }
    let find = |name: &str, signals: &str| {
        rows.iter()
            .find(|(n, s, _)| n == name && *s == signals)
            .map(|r| r.2)
    };
    if let (Some(typing), Some(adaptive), Some(fixed8)) = (
        find("both", "yes"),
        find("adaptive", "no"),
        find("fixed-8s", "no"),
    ) {
        let with_ok = typing.median_s <= 2.0 && typing.split_pct <= 2.0;
        let without_ok = adaptive.median_s <= 4.0 && adaptive.split_pct <= fixed8.split_pct + 1.0;
        println!(
            "bench=turns verdict with_signals_policy=both median_silence_s={:.2} split_turns_pct={:.2} \
             met={with_ok} without_signals_policy=adaptive median_silence_s={:.2} \
             split_turns_pct={:.2} fixed8_split_turns_pct={:.2} met={without_ok}",
            typing.median_s, typing.split_pct, adaptive.median_s, adaptive.split_pct, fixed8.split_pct
        );
    }
    if let Some(s) = reply_rows
        .iter()
        .find(|(n, b, sig, _)| n == "both" && *b == reply::Bot::SupersedeWait && *sig == "yes")
        .map(|r| r.3)
    {
        println!(
            "bench=turns_reply verdict policy=both on_newer=supersede+wait signals=yes \
             stale_answers_pct={:.2} median_silence_s={:.2} met={}",
            s.stale_pct,
            s.median_silence_s,
            s.stale_pct <= 1.0 && s.median_silence_s <= 2.0
        );
    }
    if let Some(path) = &a.reply_csv {
        let mut f = std::fs::File::create(path)?;
        writeln!(
            f,
            "policy,on_newer,signals,turns,replies,stale_answers_pct,median_answer_s,p90_answer_s,ai_calls_per_message,wasted_calls_per_message,median_silence_s"
        )?;
        for (name, bot, signals, s) in &reply_rows {
            writeln!(
                f,
                "{name},{},{signals},{},{},{:.3},{:.3},{:.3},{:.5},{:.5},{:.3}",
                bot.name(),
                s.turns,
                s.replies,
                s.stale_pct,
                s.median_answer_s,
                s.p90_answer_s,
                s.calls_per_message,
                s.wasted_per_message,
                s.median_silence_s
            )?;
        }
    }
    if let Some(path) = &a.csv {
        let mut f = std::fs::File::create(path)?;
        writeln!(
            f,
            "policy,signals,turns,messages,batches,median_silence_s,p90_silence_s,split_turns_pct,split_fragmenters_pct,split_others_pct,merged_batches_pct,calls_per_message,{}",
            Cause::ALL.map(|c| format!("split_{}_pct", c.name())).join(",")
        )?;
        for (name, signals, s) in &rows {
            writeln!(
                f,
                "{name},{signals},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.5},{}",
                s.turns,
                s.messages,
                s.batches,
                s.median_s,
                s.p90_s,
                s.split_pct,
                s.split_frag_pct,
                s.split_other_pct,
                s.merged_pct,
                s.calls_per_message,
                s.causes_pct.map(|p| format!("{p:.3}")).join(",")
            )?;
        }
    }
    Ok(())
}
