//! Invariant 4 (In order): a conversation's messages are handed off in the order their writes
//! landed (inside and across batches), generations increase, batch g+1 is first handed off only
//! after g was acknowledged, and a message answered 2xx before another was first sent comes first.

use std::collections::HashMap;

use super::Ctx;
use crate::invariant::{Invariant, Violation};
use crate::time::Millis;

pub(super) fn check(ctx: &Ctx<'_>, out: &mut Vec<Violation>) {
    for (c, list) in ctx.per_conv.iter().enumerate() {
        let mut order: Vec<&str> = Vec::new();
        let mut last_seq = 0u64;
        let mut prev: Option<usize> = None;
        for &i in list {
            let b = &ctx.batches[i];
            let gen = b.batch.generation;
            for m in &b.batch.messages {
                if let Some(s) = ctx.stored(m) {
                    if s.seq < last_seq {
                        out.push(Violation::new(
                            Invariant::InOrder,
                            Some(c),
                            format!("gen {gen}: message {} out of the order it was stored", m.id),
                        ));
                    }
                    last_seq = last_seq.max(s.seq);
                }
            }
            order.extend(b.batch.messages.iter().map(|m| m.id.as_str()));
            if let Some(p) = prev.map(|p| &ctx.batches[p]) {
                let pg = p.batch.generation;
                if pg >= gen {
                    out.push(Violation::new(
                        Invariant::InOrder,
                        Some(c),
                        format!("generations not increasing: {pg} then {gen}"),
                    ));
                }
                if p.first_ack.is_none_or(|ack| b.first_start < ack) {
                    out.push(
                        Violation::new(
                            Invariant::InOrder,
                            Some(c),
                            format!("gen {gen} handed off before gen {pg} was acknowledged"),
                        )
                        .around(p.first_start, b.first_start),
                    );
                }
            }
            prev = Some(i);
        }
        acceptance_order(ctx, c, &order, out);
    }
}

/// A message answered 2xx before another was first sent is handed off before it.
fn acceptance_order(ctx: &Ctx<'_>, c: usize, order: &[&str], out: &mut Vec<Violation>) {
    let rec = ctx.input.rec;
    let pos: HashMap<&str, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut accepted: Vec<(Millis, usize)> = Vec::new();
    let mut firsts: Vec<(Millis, usize)> = Vec::new();
    for (i, m) in ctx.input.work.messages.iter().enumerate() {
        if m.conv != c {
            continue;
        }
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
            out.push(Violation::new(
                Invariant::InOrder,
                Some(c),
                format!(
                    "a message accepted before {} was first sent is handed off after it",
                    order[p]
                ),
            ));
        }
    }
}
