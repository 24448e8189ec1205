//! What a run did and found: the summary line, and the seed and traces of a failing run.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::{Invariant, Protocol, Violation};

/// What a run did and found.
#[derive(Clone, Debug)]
pub struct SimReport {
    pub seed: u64,
    pub protocol: Protocol,
    /// Messages accepted (answered 2xx), edits and unsends not counted.
    pub messages: usize,
    /// Edits and unsends accepted (answered 2xx).
    pub amends: usize,
    /// Distinct batches acknowledged.
    pub batches: usize,
    pub faults: u64,
    pub violations: Vec<Violation>,
    /// Triggers moved to the DLQ.
    pub dead_letters: u64,
    /// Virtual time simulated.
    pub simulated: Duration,
    /// Conversations left with pending work that no longer progressed after the drain.
    pub wedged: usize,
    /// Batches an operator resume released before their pause would have ended (each checked
    /// against its window's rule after the resume).
    pub released_by_resume: usize,
    /// Writes the store refused because the item would exceed its size limit (400 KB).
    pub item_limit_hits: u64,
    /// Webhook requests the protocol refused (no room, too large, too busy).
    pub refused_appends: u64,
    /// The longest sink call (start to answer).
    pub longest_sink_call: Duration,
    /// Traces of the first conversations with violations.
    pub traces: Vec<String>,
    /// The bots' reply guards and what supersede handed off.
    pub guards: GuardCounts,
}

/// The AI step's reply guards and supersedes (`ai_step.rs`; all zero without the AI step).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardCounts {
    /// Guard requests the bots made (retries and `typing` polls included).
    pub asked: u64,
    /// Requests that got no answer (store error, contention, a crash, a lost answer).
    pub failed: u64,
    /// Answers by state: `current`; `superseded` with `supersede` (the next batch repeats
    /// this one); `superseded` without it (`newer`); `typing`.
    pub current: u64,
    pub superseded: u64,
    pub newer: u64,
    pub typing: u64,
    /// Replies the bots discarded (told `superseded` with `supersede`, or declaring it).
    pub discarded: u64,
    /// Hand-off answers declaring `Lull-Reply: superseded` that reached lull.
    pub declared: usize,
    /// Distinct batches handed off with `supersedes` (each repeats the batch it supersedes).
    pub superseded_batches: usize,
    /// Messages those batches repeated as `context`.
    pub context_messages: usize,
}

impl fmt::Display for GuardCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "guards asked={} current={} superseded={} newer={} typing={} failed={} \
             discarded={} declared={} superseded_batches={} context_messages={}",
            self.asked,
            self.current,
            self.superseded,
            self.newer,
            self.typing,
            self.failed,
            self.discarded,
            self.declared,
            self.superseded_batches,
            self.context_messages
        )
    }
}

impl SimReport {
    /// Violations per invariant, for those broken.
    pub fn by_invariant(&self) -> BTreeMap<Invariant, usize> {
        let mut by = BTreeMap::new();
        for v in &self.violations {
            *by.entry(v.invariant).or_default() += 1;
        }
        by
    }

    /// True when some violation is of `inv`.
    pub fn broke(&self, inv: Invariant) -> bool {
        self.violations.iter().any(|v| v.invariant == inv)
    }

    /// The one summary line: `messages=N amends=N batches=N faults=N violations=N wedged=N`,
    /// then the count per broken invariant (`one_at_a_time=12`).
    pub fn summary(&self) -> String {
        let mut line = format!(
            "messages={} amends={} batches={} faults={} violations={} wedged={}",
            self.messages,
            self.amends,
            self.batches,
            self.faults,
            self.violations.len(),
            self.wedged
        );
        for (inv, n) in self.by_invariant() {
            line.push_str(&format!(" {}={n}", inv.label()));
        }
        line
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.summary())?;
        if self.guards.asked > 0 || self.guards.declared > 0 {
            writeln!(f, "{}", self.guards)?;
        }
        if !self.violations.is_empty() {
            writeln!(
                f,
                "seed {} ({}) broke invariants; replay with --seed {}",
                self.seed,
                self.protocol.as_str(),
                self.seed
            )?;
            for (k, n) in self.by_invariant() {
                writeln!(f, "  {n} x invariant {k}")?;
            }
            // The first violation of each broken invariant, then more up to five.
            let mut shown: Vec<&Violation> = Vec::new();
            for inv in self.by_invariant().keys() {
                shown.extend(self.violations.iter().find(|v| v.invariant == *inv));
            }
            for v in &self.violations {
                if shown.len() >= 5.max(self.by_invariant().len()) {
                    break;
                }
                if !shown.iter().any(|s| std::ptr::eq(*s, v)) {
                    shown.push(v);
                }
            }
            for v in shown {
                writeln!(f, "  - [{}] {}", v.invariant, v.detail)?;
            }
            for t in &self.traces {
                write!(f, "{t}")?;
            }
        }
        Ok(())
    }
}
