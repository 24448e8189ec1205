//! The reply guard's cost on AWS (`lull-bench aws`, the `bench=aws_guard` line): after the
//! measured run, one guard per conversation through the webhook Lambda's own `Intake` (the code
//! the `GET /guard/{token}` route calls) against the records the run left, counted by
//! lull-aws's request accounting. A guard is one strongly consistent `GetItem` of the
//! conversation record (a `current` answer never writes), so its price is one API Gateway
//! request, one webhook invocation and the read units of that record.

use std::time::Instant;

use lull_core::guard::{GuardAnswer, GuardClaim};
use lull_core::ports::WindowStore;
use lull_core::ConversationKey;

use super::{common, lambda_cost, price};
use crate::util;

/// What the guards of one run cost.
pub(super) struct GuardCost {
    pub calls: u64,
    pub ddb_requests_per_call: f64,
    pub rcu_per_call: f64,
    pub writes: u64,
    pub ms_p50: f64,
}

/// Asks one guard for each of `keys`, as the bot would just before sending its reply to the
/// conversation's last batch (nothing newer: `current`).
pub(super) async fn measure(
    h: &common::Harness,
    keys: &[ConversationKey],
) -> Result<GuardCost, String> {
    let before = h.webhook_acct.snapshot();
    let mut times = Vec::with_capacity(keys.len());
    let mut calls = 0;
    for key in keys {
        // Read outside the accounting (h.store counts nothing): the claim the last batch sealed.
        let Some(rec) = h.store.load(key).await.map_err(|e| e.to_string())? else {
            continue;
        };
        let claim = GuardClaim {
            key: key.clone(),
            gen: rec.gen.saturating_sub(1),
            batch_id: uuid::Uuid::nil(),
            accepted: rec.accepted,
            expires_at: u64::MAX,
            closed_at: rec.updated_at.0,
        };
        let t = Instant::now();
        let said = h
            .webhook
            .guard(&claim, None)
            .await
            .map_err(|e| format!("guard: {e}"))?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if said != GuardAnswer::Current {
            return Err(format!("a guard with nothing newer answered {said:?}"));
        }
        calls += 1;
    }
    let used = h.webhook_acct.snapshot().since(&before).dynamodb();
    util::sort(&mut times);
    let n = calls.max(1) as f64;
    Ok(GuardCost {
        calls,
        ddb_requests_per_call: used.requests as f64 / n,
        rcu_per_call: used.est_rcu / n,
        writes: used.items_written,
        ms_p50: util::pct(&times, 50.0),
    })
}

impl GuardCost {
    /// The `bench=aws_guard` line: per guard, and $ per million guards at list prices, the
    /// webhook invocation priced at `priced_ms` (the run's webhook figure, or `--lambda-ms`).
    pub fn print(&self, priced_ms: f64) {
        let apigw = 1e6 * price::APIGW_HTTP;
        let lambda = lambda_cost(1e6, priced_ms);
        let ddb = 1e6 * self.rcu_per_call * price::DDB_RRU;
        println!(
            "bench=aws_guard store=moto guards={} ddb_req_per_guard={:.2} rcu_per_guard={:.2} \
             items_written={} guard_ms_p50={:.1} lambda_priced_ms={priced_ms:.1} \
             usd_per_million_guards={:.3} apigw={apigw:.3} lambda_webhook={lambda:.3} dynamodb={ddb:.3}",
            self.calls,
            self.ddb_requests_per_call,
            self.rcu_per_call,
            self.writes,
            self.ms_p50,
            apigw + lambda + ddb,
        );
    }
}
