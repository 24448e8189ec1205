//! Benchmark 3, AWS requests and cost: the standard workload (1,000 conversations, bursts of 1-6
//! messages) end to end on moto through lull-aws's own request accounting (the moto harness of
//! `functions/aws/tests/common`, reused as is), then cost per million messages at list prices.
//! How the cost grows: `--burst N` (messages per batch) and `--present N` (conversations already
//! in the table, see `aws_table`); the record writes' size distribution is in the summary line.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use lull_core::message::Target;
use lull_core::{ConversationKey, Message, MessageKind, Provider};

#[allow(dead_code, clippy::all)]
#[path = "../../functions/aws/tests/common/mod.rs"]
mod common;
mod guard;

use crate::util::{self, Res};

#[derive(Args, Debug, Clone)]
pub struct AwsArgs {
    /// Conversations of the standard workload.
    #[arg(long, default_value_t = 1_000)]
    pub conversations: usize,
    /// Seconds over which the conversations' first messages are spread. The default keeps the
    /// arrival rate (~12 messages/s) under what one moto process serves without queueing;
    /// a shorter spread measures moto's backlog, not lull.
    #[arg(long, default_value_t = 300)]
    pub spread_secs: u64,
    /// Seed of burst sizes, gaps and start times.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Concurrent event-source-mapping pollers (Lambda starts 5 for a standard queue).
    #[arg(long, default_value_t = 5)]
    pub pollers: usize,
    /// Seconds between sweep runs (the template's schedule is 1 minute).
    #[arg(long, default_value_t = 60)]
    pub sweep_secs: u64,
    /// Upper bound, in seconds, on waiting for every message to be handed off after the last
    /// append (moto serialises DynamoDB, so 1,000 conversations need minutes, not seconds).
    #[arg(long, default_value_t = 900)]
    pub drain_secs: u64,
    /// Every conversation sends a burst of exactly this many messages (gaps 0-400 ms, so a
    /// burst of up to 7 fits the 3 s max wait: one batch each). Unset: the standard workload,
    /// bursts of 1-6 (mean 3.5).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=7))]
    pub burst: Option<u16>,
    /// Conversations already in the table before the measured run: idle, with acknowledged
    /// history (a record and its dedupe items each), written in `BatchWriteItem`s outside the
    /// measured accounting. Per-message units must not depend on it.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub present: u32,
    /// Percent of conversations whose user edits or unsends a message of the burst just after
    /// sending it (half edits, half unsends; inside the open window): each is one more webhook
    /// request and one more append. The cost is stated per million items (messages, edits and
    /// unsends), with the share.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub amend_pct: u8,
    /// Price both Lambdas' durations at this many ms per invocation instead of the handler
    /// times measured against moto (which measure moto, and the machine's load, more than
    /// lull). Unset: the measured p50s.
    #[arg(long)]
    pub lambda_ms: Option<f64>,
}

/// List prices, us-east-1, as documented in BENCHMARKS.md (dated there).
pub mod price {
    /// API Gateway HTTP API, per request (first 300 M/month).
    pub const APIGW_HTTP: f64 = 1.00 / 1e6;
    /// Lambda, per request.
    pub const LAMBDA_REQ: f64 = 0.20 / 1e6;
    /// Lambda arm64, per GB-second (first 7.5 B GB-s/month).
    pub const LAMBDA_ARM_GBS: f64 = 0.000_013_333_4;
    /// DynamoDB on-demand, per write request unit.
    pub const DDB_WRU: f64 = 0.625 / 1e6;
    /// DynamoDB on-demand, per read request unit.
    pub const DDB_RRU: f64 = 0.125 / 1e6;
    /// SQS standard, per request (64 KB chunk), after the free tier.
    pub const SQS_REQ: f64 = 0.40 / 1e6;
}

/// Lambda at 128 MB: billed per started ms.
fn lambda_cost(invocations: f64, ms: f64) -> f64 {
    invocations * (price::LAMBDA_REQ + ms.ceil() / 1000.0 * 0.125 * price::LAMBDA_ARM_GBS)
}

pub async fn run(a: &AwsArgs) -> Res<()> {
    // As deployed (infra/template.yaml): trigger visibility 180 s, 5 receives before the DLQ,
    // the default hand-off timing (60 s sink timeout, 75 s lease), the sweep on a schedule.
    let h = common::Harness::with_config(180, 5, lull_core::BufferConfig::default()).await;
    let present = crate::aws_table::fill(
        &h.store,
        &h.clients.dynamodb,
        &h.table,
        &h.policy,
        a.present as usize,
        a.seed,
    )
    .await?;
    eprintln!(
        "-- {} conversations present: {} items, {} bytes, written in {:.1} s",
        present.conversations, present.items, present.bytes, present.secs
    );
    // The event source mapping stand-in: `--pollers` concurrent receive loops, timing each
    // flush handler call and counting the records it handled.
    let flush_times: common::FlushTimings = Arc::default();
    let poller = h.start_pollers(a.pollers, Some(flush_times.clone()));
    let mut background = tokio::task::JoinSet::new();
    // The sweep Lambda on its schedule: what it hands off is a trigger that was lost or late.
    let swept = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sweep_runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sweep_stop = Arc::new(tokio::sync::Notify::new());
    {
        let (buffer, stop, swept, runs) = (
            h.sweeper.clone(),
            sweep_stop.clone(),
            swept.clone(),
            sweep_runs.clone(),
        );
        let every = Duration::from_secs(a.sweep_secs.max(1));
        background.spawn(async move {
            let mut schedule = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    _ = schedule.tick() => {}
                    _ = stop.notified() => return,
                }
                runs.fetch_add(1, Ordering::SeqCst);
                if let Ok(r) = buffer.sweep(500, lull_aws::SWEEP_CONCURRENCY).await {
                    swept.fetch_add(r.handed_off, Ordering::SeqCst);
                }
            }
        });
    }

    // The standard workload: bursts of 1-6 messages (or `--burst`), gaps under the 1 s quiet
    // period.
    let mut rng = fastrand::Rng::with_seed(a.seed);
    let mut tasks = tokio::task::JoinSet::new();
    let mut total = 0usize;
    let (mut amends, mut unsent) = (0usize, 0usize);
    let append_times: Arc<Mutex<Vec<f64>>> = Arc::default();
    for c in 0..a.conversations {
        let burst = match a.burst {
            Some(n) => usize::from(n),
            None => rng.usize(1..=6),
        };
        let gaps: Vec<u64> = (0..burst).map(|_| rng.u64(0..400)).collect();
        let start = rng.u64(0..a.spread_secs * 1000);
        total += burst;
        // An edit or unsend of one of the burst's messages, sent right after the burst.
        let amend = (rng.u8(0..100) < a.amend_pct).then(|| {
            let target = format!("w.{c}.{}", rng.usize(0..burst));
            let revoke = rng.bool();
            (
                Message {
                    kind: if revoke {
                        MessageKind::Revoke
                    } else {
                        MessageKind::Edit
                    },
                    text: (!revoke).then(|| "quero 3 pizzas, uma vegana".to_string()),
                    target: Some(Target {
                        message_id: target,
                        batch_id: None,
                    }),
                    ..Message::text(format!("w.{c}.edit"), "u", "")
                },
                rng.u64(0..400),
            )
        });
        if let Some((m, _)) = &amend {
            amends += 1;
            unsent += usize::from(m.kind == MessageKind::Revoke);
        }
        let (buffer, policy, times) = (h.webhook.clone(), h.policy, append_times.clone());
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(start)).await;
            let k = ConversationKey::new(Provider::Meta, "106540352242922", format!("55{c:09}"));
            for (i, gap) in gaps.into_iter().enumerate() {
                tokio::time::sleep(Duration::from_millis(gap)).await;
                let t = Instant::now();
                let r = buffer
                    .append(
                        &k,
                        &policy,
                        Message::text(format!("w.{c}.{i}"), "u", "quero 2 pizzas, uma vegana"),
                    )
                    .await;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                match r {
                    Ok(_) => {
                        if let Ok(mut v) = times.lock() {
                            v.push(ms);
                        }
                    }
                    Err(e) => return Err(format!("append failed: {e}")),
                }
            }
            if let Some((m, gap)) = amend {
                tokio::time::sleep(Duration::from_millis(gap)).await;
                let t = Instant::now();
                buffer
                    .append(&k, &policy, m)
                    .await
                    .map_err(|e| format!("append of an amend failed: {e}"))?;
                if let Ok(mut v) = times.lock() {
                    v.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
            Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let appended_at = Instant::now();
    // Drain: every message handed off, bounded.
    // An unsend inside the window removes its original: at least `total - unsent` messages
    // are handed off (more when a slow append let a window close before its edit or unsend).
    let handed_off = total - unsent;
    let drained = lull_testkit::holds_within(Duration::from_secs(a.drain_secs), async || {
        h.sink.message_count() >= handed_off
    })
    .await;
    if !drained {
        return Err(format!(
            "only {} of {handed_off} messages handed off within {} s of the last append",
            h.sink.message_count(),
            a.drain_secs
        )
        .into());
    }
    let drain_secs = appended_at.elapsed().as_secs_f64();
    poller.stop().await;
    sweep_stop.notify_one();
    while let Some(r) = background.join_next().await {
        r?;
    }
    let batches = common::check_batches(&h.sink.batches(), &h.policy);
    let dead_lettered = common::queue_depth(&h.clients, &h.dlq).await.0;

    // Every item is a webhook request and an append: the per-message figures are per item.
    let msgs = (total + amends) as f64;
    // The flush path's per-batch figures are over the batches it handed off; the sweep's share
    // is reported apart (`swept_batches`, `sweep_ddb_req`).
    let swept_batches = swept.load(Ordering::SeqCst);
    let flush_nb = (batches.len().saturating_sub(swept_batches)).max(1) as f64;
    let (web, fl, esm, sw) = (
        h.webhook_acct.snapshot(),
        h.flush_acct.snapshot(),
        h.esm_acct.snapshot(),
        h.sweep_acct.snapshot(),
    );
    let (wd, ws) = (web.dynamodb(), web.sqs());
    let (fd, fs) = (fl.dynamodb(), fl.sqs());
    let (sd, ss) = (sw.dynamodb(), sw.sqs());
    // Every record write the measured run sent, on all three paths.
    let mut sizes = h.webhook_acct.record_sizes();
    sizes.merge(&h.flush_acct.record_sizes());
    sizes.merge(&h.sweep_acct.record_sizes());
    let mut appends = append_times.lock().map_err(|_| "poisoned")?.clone();
    util::sort(&mut appends);
    let flushes = flush_times.lock().map_err(|_| "poisoned")?.clone();
    let flush_invocations = flushes.len() as f64;
    let flush_records: usize = flushes.iter().map(|(_, n)| n).sum();
    let mut per_flush: Vec<f64> = flushes.iter().map(|(ms, _)| *ms).collect();
    util::sort(&mut per_flush);
    let webhook_ms = util::pct(&appends, 50.0);
    let flush_ms = util::pct(&per_flush, 50.0);
    let (webhook_priced_ms, flush_priced_ms) = match a.lambda_ms {
        Some(ms) => (ms, ms),
        None => (webhook_ms, flush_ms),
    };

    // Per million messages, measured rates.
    let m = 1e6 / msgs;
    // The sweep's requests count here in full: what it hands off and re-arms is per message,
    // and its due-index queries (a handful of runs in a bench, 43,800 a month deployed) are
    // included too rather than separated out.
    let ddb_wcu = (wd.est_wcu + fd.est_wcu + sd.est_wcu) * m;
    // The due index's write units, counted by the store on each landed write that moved a
    // record's index key (`Accounting`'s `est_index_wcu`).
    let index_wcu = (wd.est_index_wcu + fd.est_index_wcu + sd.est_index_wcu) * m;
    let ddb_rcu = (wd.est_rcu + fd.est_rcu + sd.est_rcu) * m;
    let lull_sqs = (ws.requests + fs.requests + ss.requests) as f64 * m;
    // The event source mapping's receives and deletes that carried triggers (its empty
    // long polls are a fixed cost per month, see BENCHMARKS.md).
    let esm_sqs = (esm.op("sqs.DeleteMessageBatch(esm)").requests as f64 + flush_invocations) * m;
    let apigw = 1e6 * price::APIGW_HTTP;
    let lambda_web = lambda_cost(1e6, webhook_priced_ms);
    let lambda_flush = lambda_cost(flush_invocations * m, flush_priced_ms);
    let ddb = ddb_wcu * price::DDB_WRU + ddb_rcu * price::DDB_RRU;
    let ddb_index = index_wcu * price::DDB_WRU;
    let sqs = (lull_sqs + esm_sqs) * price::SQS_REQ;
    // All-in: every term above, the due index included.
    let total_usd = apigw + lambda_web + lambda_flush + ddb + ddb_index + sqs;
    println!(
        "bench=aws store=moto conversations={} messages={total} amends={amends} amend_pct={} unsent={unsent} batches={} mean_burst={:.2} burst={} present={} \
         webhook_ddb_req_per_msg={:.2} webhook_items_written_per_msg={:.2} webhook_wcu_per_msg={:.2} webhook_rcu_per_msg={:.2} webhook_sqs_per_msg={:.2} \
         flush_ddb_req_per_batch={:.2} flush_reads_per_batch={:.2} flush_items_written_per_batch={:.2} flush_wcu_per_batch={:.2} flush_rcu_per_batch={:.2} flush_sqs_per_batch={:.2} \
         wcu_per_msg={:.2} index_wcu_per_msg={:.2} rcu_per_msg={:.2} lull_sqs_per_msg={:.3} esm_sqs_per_msg={:.3} flush_invocations={} flush_records={} \
         webhook_append_ms_p50={:.1} webhook_append_ms_p99={:.1} flush_handler_ms_p50={:.1} flush_handler_ms_p99={:.1} \
         lambda_priced_ms={} usd_per_million_messages={:.3} apigw={:.3} lambda_webhook={:.3} lambda_flush={:.3} dynamodb={:.3} dynamodb_index={:.3} sqs={:.3} \
         pollers={} sweep_runs={} swept_batches={} sweep_ddb_req={} dead_lettered={} drain_secs={:.1} \
         {sizes} present_items={} present_bytes={} present_record_bytes={} present_write_secs={:.1}",
        a.conversations,
        a.amend_pct,
        batches.len(),
        total as f64 / a.conversations as f64,
        a.burst.map_or("1-6".to_string(), |n| n.to_string()),
        present.conversations,
        wd.requests as f64 / msgs,
        wd.items_written as f64 / msgs,
        wd.est_wcu / msgs,
        wd.est_rcu / msgs,
        ws.requests as f64 / msgs,
        fd.requests as f64 / flush_nb,
        fl.op("dynamodb.GetItem").requests as f64 / flush_nb,
        fd.items_written as f64 / flush_nb,
        fd.est_wcu / flush_nb,
        fd.est_rcu / flush_nb,
        fs.requests as f64 / flush_nb,
        ddb_wcu / 1e6,
        index_wcu / 1e6,
        ddb_rcu / 1e6,
        lull_sqs / 1e6,
        esm_sqs / 1e6,
        flushes.len(),
        flush_records,
        webhook_ms,
        util::pct(&appends, 99.0),
        flush_ms,
        util::pct(&per_flush, 99.0),
        a.lambda_ms.map_or("measured".to_string(), |ms| format!("{ms}")),
        total_usd,
        apigw,
        lambda_web,
        lambda_flush,
        ddb,
        ddb_index,
        sqs,
        a.pollers.max(1),
        sweep_runs.load(Ordering::SeqCst),
        swept_batches,
        sd.requests,
        dead_lettered,
        drain_secs,
        present.items,
        present.bytes,
        present.record_bytes,
        present.secs,
    );
    eprintln!(
        "-- webhook path\n{web}\n-- flush path\n{fl}\n-- sweep\n{sw}\n-- event source mapping stand-in\n{esm}"
    );
    // The reply guard: one per conversation, after the run (its own accounting window).
    let keys: Vec<ConversationKey> = (0..a.conversations)
        .map(|c| ConversationKey::new(Provider::Meta, "106540352242922", format!("55{c:09}")))
        .collect();
    let guards = guard::measure(&h, &keys).await?;
    // A guard's invocation is one read, not an append: priced at its own handler time unless
    // `--lambda-ms` says otherwise.
    guards.print(a.lambda_ms.unwrap_or(guards.ms_p50));
    Ok(())
}
