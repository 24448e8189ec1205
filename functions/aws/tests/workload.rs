//! Request and unit counts of a realistic burst workload: 100 conversations, bursts of 1-6
//! messages. Printed (run with `--nocapture` to see them); the budgets of docs/architecture.md are checked
//! loosely (lost races legitimately cost a retry).

mod common;

use std::time::Duration;

use common::{check_batches, Harness};
use lull_core::{ConversationKey, Message, Provider};
use lull_testkit::{wait_for, PATIENCE};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn burst_workload_request_and_unit_counts() {
    let h = Harness::new(5, 5).await;
    let poller = h.start_poller();
    let mut rng = fastrand::Rng::with_seed(42);
    let mut tasks = tokio::task::JoinSet::new();
    let mut total = 0usize;
    for c in 0..100 {
        let burst = rng.usize(1..=6);
        let gaps: Vec<u64> = (0..burst).map(|_| rng.u64(0..400)).collect();
        let start = rng.u64(0..2000);
        total += burst;
        let (buffer, policy) = (h.webhook.clone(), h.policy);
        // The workload's arrival schedule (what is measured, not a wait): each conversation
        // starts at its own time and types with its own gaps.
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(start)).await;
            let k = ConversationKey::new(Provider::Meta, "106540352242922", format!("55{c:09}"));
            for (i, gap) in gaps.into_iter().enumerate() {
                tokio::time::sleep(Duration::from_millis(gap)).await;
                buffer
                    .append(
                        &k,
                        &policy,
                        Message::text(format!("w.{c}.{i}"), "u", "quero 2 pizzas, uma vegana"),
                    )
                    .await
                    .expect("append");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    wait_for("every message handed off", PATIENCE, async || {
        h.sink.message_count() >= total
    })
    .await;
    poller.stop().await;
    let batches = check_batches(&h.sink.batches(), &h.policy);
    let msgs = total as f64;
    let nb = batches.len() as f64;
    let web = h.webhook_acct.snapshot();
    let fl = h.flush_acct.snapshot();
    let esm = h.esm_acct.snapshot();
    println!("\n== burst workload: {total} messages, {} batches ({:.3} batches/message: {:.0}% fewer AI calls)",
        batches.len(), nb / msgs, 100.0 * (1.0 - nb / msgs));
    println!("-- webhook path (appends)\n{web}");
    println!("-- flush path (triggers)\n{fl}");
    println!("-- event source mapping stand-in (SQS polling, not lull's)\n{esm}");
    let (wd, ws) = (web.dynamodb(), web.sqs());
    let (fd, fs) = (fl.dynamodb(), fl.sqs());
    println!(
        "per message (webhook): {:.2} DynamoDB requests ({:.2} items written; est. {:.2} WCU, {:.2} RCU; moto reported {:.2} WCU, {:.2} RCU), {:.2} SQS sends",
        wd.requests as f64 / msgs,
        wd.items_written as f64 / msgs,
        wd.est_wcu / msgs,
        wd.est_rcu / msgs,
        wd.wcu / msgs,
        wd.rcu / msgs,
        ws.requests as f64 / msgs
    );
    println!(
        "per batch (flush): {:.2} DynamoDB requests ({:.2} reads, {:.2} items written; est. {:.2} WCU, {:.2} RCU; moto reported {:.2} WCU, {:.2} RCU), {:.2} SQS sends",
        fd.requests as f64 / nb,
        fl.op("dynamodb.GetItem").requests as f64 / nb,
        fd.items_written as f64 / nb,
        fd.est_wcu / nb,
        fd.est_rcu / nb,
        fd.wcu / nb,
        fd.rcu / nb,
        fs.requests as f64 / nb
    );
    println!(
        "per message (all lull): {:.2} DynamoDB requests, est. {:.2} WCU, {:.2} RCU, {:.2} SQS requests\n",
        (wd.requests + fd.requests) as f64 / msgs,
        (wd.est_wcu + fd.est_wcu) / msgs,
        (wd.est_rcu + fd.est_rcu) / msgs,
        (ws.requests + fs.requests) as f64 / msgs
    );
    // The store counts every record write it sends in the size distribution (what the AWS
    // benchmark reports): one per PutItem, dedupe items (BatchWriteItem) apart.
    for (acct, usage) in [(&h.webhook_acct, &web), (&h.flush_acct, &fl)] {
        let sizes = acct.record_sizes();
        println!("record sizes: {sizes}");
        assert_eq!(sizes.writes, usage.op("dynamodb.PutItem").requests);
        assert!(sizes.percentile(50.0) <= sizes.percentile(99.0));
        assert!(sizes.percentile(99.0) <= sizes.max && sizes.max > 100);
    }
    // Budgets (docs/architecture.md), with slack for lost races under concurrency.
    assert!(
        ws.requests as f64 <= msgs,
        "at most one trigger send per message"
    );
    assert!(
        (wd.items_written as f64) <= 2.0 * msgs,
        "at most 2 items written per message"
    );
    assert!(
        (fl.op("dynamodb.PutItem").items_written as f64) <= 2.2 * nb,
        "about 2 writes per batch"
    );
}
