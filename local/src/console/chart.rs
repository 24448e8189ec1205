//! The last hour of hand-offs, per minute: AI calls saved (messages handed off minus batches:
//! every batch is one AI call instead of one per message) and the mean hand-off lag (due time
//! to acknowledgement). Read from the process's own metrics (the Prometheus recorder the flush
//! already feeds), sampled every 10 s and on every page load: the console adds nothing to the
//! flush. Drawn as a small server-rendered SVG (no script).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use lull_core::metrics as m;
use lull_core::Millis;
use maud::{html, Markup};

/// How often the background task samples the counters.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// What the chart covers.
const HOUR_MS: u64 = 3_600_000;
const MINUTE_MS: u64 = 60_000;

/// The cumulative counters at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    pub batches: f64,
    pub messages: f64,
    pub lag_sum_s: f64,
    pub lag_count: f64,
}

impl Totals {
    /// The totals in a Prometheus text exposition (every label of a counter summed).
    pub fn parse(text: &str) -> Totals {
        let mut t = Totals::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.trim().parse::<f64>() else {
                continue;
            };
            let bare = name.split('{').next().unwrap_or(name);
            match bare {
                n if n == m::BATCHES => t.batches += v,
                n if n == m::MESSAGES_HANDED_OFF => t.messages += v,
                n if n.strip_suffix("_sum") == Some(m::HANDOFF_LAG) => t.lag_sum_s += v,
                n if n.strip_suffix("_count") == Some(m::HANDOFF_LAG) => t.lag_count += v,
                _ => {}
            }
        }
        t
    }
}

/// One minute of hand-offs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Minute {
    /// The minute's start.
    pub start: Millis,
    pub batches: u64,
    pub messages: u64,
    /// Mean hand-off lag of the batches acknowledged in it, ms (`None`: none).
    pub mean_lag_ms: Option<u64>,
}

impl Minute {
    /// AI calls saved: messages that did not need a call of their own.
    pub fn saved(&self) -> u64 {
        self.messages.saturating_sub(self.batches)
    }
}

/// Samples of the counters over the last hour (bounded: one per [`SAMPLE_EVERY`], plus page
/// loads, at most 1,000 kept).
#[derive(Debug, Default)]
pub struct Samples {
    kept: Mutex<VecDeque<(Millis, Totals)>>,
}

const MAX_SAMPLES: usize = 1_000;

impl Samples {
    pub fn record(&self, now: Millis, totals: Totals) {
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        // One sample before the hour is kept, as the baseline of its first minute.
        while kept.len() > 1 && kept.get(1).is_some_and(|(at, _)| at.0 + HOUR_MS < now.0) {
            kept.pop_front();
        }
        if kept.len() >= MAX_SAMPLES {
            kept.pop_front();
        }
        kept.push_back((now, totals));
    }

    /// The 60 minutes ending at `now`, oldest first. A minute's figures are the counters' growth
    /// between the last samples at or before its start and its end; minutes before the first
    /// sample are empty.
    pub fn minutes(&self, now: Millis) -> Vec<Minute> {
        let Ok(kept) = self.kept.lock() else {
            return Vec::new();
        };
        let at = |t: u64| kept.iter().rev().find(|(a, _)| a.0 <= t).map(|(_, v)| *v);
        let first = kept.front().map(|(_, v)| *v);
        (0..60u64)
            .map(|i| {
                let end = now.0.saturating_sub((59 - i) * MINUTE_MS);
                let start = end.saturating_sub(MINUTE_MS);
                let (Some(b), Some(a)) = (at(end), at(start).or(first)) else {
                    return Minute {
                        start: Millis(start),
                        ..Minute::default()
                    };
                };
                let lag_n = b.lag_count - a.lag_count;
                Minute {
                    start: Millis(start),
                    batches: (b.batches - a.batches).max(0.0) as u64,
                    messages: (b.messages - a.messages).max(0.0) as u64,
                    mean_lag_ms: (lag_n >= 1.0).then(|| {
                        ((b.lag_sum_s - a.lag_sum_s) / lag_n * 1000.0)
                            .max(0.0)
                            .round() as u64
                    }),
                }
            })
            .collect()
    }
}

/// The chart: bars of AI calls saved per minute, a line of the mean hand-off lag, and the hour's
/// totals in words (what a screen reader or a text browser gets).
pub fn svg(minutes: &[Minute]) -> Markup {
    let (w, h, pad) = (600.0_f64, 120.0_f64, 4.0_f64);
    let n = minutes.len().max(1) as f64;
    let bar_w = (w - 2.0 * pad) / n;
    let max_saved = minutes.iter().map(Minute::saved).max().unwrap_or(0).max(1) as f64;
    let max_lag = minutes
        .iter()
        .filter_map(|m| m.mean_lag_ms)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let saved: u64 = minutes.iter().map(Minute::saved).sum();
    let messages: u64 = minutes.iter().map(|m| m.messages).sum();
    let batches: u64 = minutes.iter().map(|m| m.batches).sum();
    let y = |v: f64, max: f64| h - pad - (v / max) * (h - 2.0 * pad);
    let points: Vec<String> = minutes
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            m.mean_lag_ms.map(|lag| {
                format!(
                    "{:.1},{:.1}",
                    pad + (i as f64 + 0.5) * bar_w,
                    y(lag as f64, max_lag)
                )
            })
        })
        .collect();
    html! {
        figure.chart {
            svg width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) role="img"
                aria-label="AI calls saved per minute (bars) and mean hand-off lag (line), last hour" {
                rect x="0" y="0" width=(w) height=(h) fill="#fafafa" stroke="#ddd" {}
                @for (i, m) in minutes.iter().enumerate() {
                    @if m.saved() > 0 {
                        rect x=(format!("{:.1}", pad + i as f64 * bar_w + 1.0))
                            y=(format!("{:.1}", y(m.saved() as f64, max_saved)))
                            width=(format!("{:.1}", (bar_w - 2.0).max(1.0)))
                            height=(format!("{:.1}", h - pad - y(m.saved() as f64, max_saved)))
                            fill="#7fb3d5" {
                            title { (m.start.rfc3339()) ": " (m.saved()) " AI calls saved" }
                        }
                    }
                }
                @if points.len() > 1 {
                    polyline points=(points.join(" ")) fill="none" stroke="#c0392b" stroke-width="2" {}
                }
                @for p in &points {
                    @if let Some((x, yy)) = p.split_once(',') {
                        circle cx=(x) cy=(yy) r="2.5" fill="#c0392b" {}
                    }
                }
            }
            figcaption {
                "Last hour: " strong { (messages) } " messages in " strong { (batches) }
                " batches: " strong.saved { (saved) } " AI calls saved. Bars: AI calls saved per minute (max "
                (max_saved as u64) "); line: mean hand-off lag (max " (max_lag as u64) " ms)."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_the_prometheus_text_and_binned_per_minute() {
        let text = "# TYPE lull_batches_total counter\n\
            lull_batches_total{reason=\"quiet\"} 2\n\
            lull_batches_total{reason=\"size\"} 1\n\
            lull_messages_handed_off_total 7\n\
            lull_handoff_lag_seconds{quantile=\"0.5\"} 0.01\n\
            lull_handoff_lag_seconds_sum 0.3\n\
            lull_handoff_lag_seconds_count 3\n";
        let t = Totals::parse(text);
        assert_eq!(
            t,
            Totals {
                batches: 3.0,
                messages: 7.0,
                lag_sum_s: 0.3,
                lag_count: 3.0
            }
        );
        let s = Samples::default();
        let t0 = Millis(10 * HOUR_MS);
        s.record(t0, Totals::default());
        s.record(Millis(t0.0 + 90_000), t);
        let mins = s.minutes(Millis(t0.0 + 100_000));
        assert_eq!(mins.len(), 60);
        let last = mins[59];
        assert_eq!((last.batches, last.messages, last.saved()), (3, 7, 4));
        assert_eq!(last.mean_lag_ms, Some(100));
        assert_eq!(mins[..59].iter().map(|m| m.messages).sum::<u64>(), 0);
        let drawn = svg(&mins).into_string();
        assert!(
            drawn.contains("<svg") && drawn.contains("4</strong> AI calls saved"),
            "{drawn}"
        );
    }
}
