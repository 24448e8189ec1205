//! The table the AWS benchmark measures against: `--present N` conversations already in it,
//! idle, with acknowledged history, written before the measured run and outside its accounting.
//!
//! Each is a real record, not a hand-made one: its history (a standard burst of 1-6 messages)
//! runs through lull's own protocol (`lull_core::protocol::Buffer`) over the reference memory
//! store with a manual clock, up to the acknowledgement of its batch. Then the table gets what
//! DynamoDB would hold after that history: each final record encoded by `DynamoDbStore`'s own
//! item encoder (its acknowledged ids in the record's list), and the long-horizon dedupe items
//! of any ids that history pushed out of that list, written by the store's own `remember` (a
//! single burst pushes none out). Both go in `BatchWriteItem`s of 25, a few at a time.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use lull_aws::accounting::item_size;
use lull_core::memory::{ManualClock, MemorySink, MemoryStore, MemoryTrigger};
use lull_core::ports::{Clock, DedupeRecord, SystemClock, WindowStore};
use lull_core::protocol::{Buffer, BufferConfig, Claim};
use lull_core::{ConversationKey, Message, Millis, Policy, Provider};

use crate::util::Res;

/// `BatchWriteItem`s in flight at once (moto serialises DynamoDB anyway; a few overlap the HTTP).
const WRITERS: usize = 4;
/// Items per `BatchWriteItem` (DynamoDB's limit).
const CHUNK: usize = 25;
/// Attempts at a chunk's unprocessed items before giving up.
const ATTEMPTS: u32 = 5;
/// DynamoDB bills storage per item as its size plus 100 bytes of overhead.
const ITEM_OVERHEAD: usize = 100;

/// What was written before the measured run.
pub struct Present {
    pub conversations: usize,
    /// Conversation records plus dedupe items.
    pub items: usize,
    /// Storage as DynamoDB bills it (item sizes + 100 bytes each), base table only.
    pub bytes: usize,
    /// The conversation records' share of `bytes` (the rest: dedupe items).
    pub record_bytes: usize,
    pub secs: f64,
}

/// The key of present conversation `i` (never one of the measured run's, which are `55...`).
fn key(i: usize) -> ConversationKey {
    ConversationKey::new(Provider::Meta, "106540352242922", format!("56{i:09}"))
}

/// Writes `n` idle conversations with acknowledged history into the harness's table.
pub async fn fill(
    store: &lull_aws::DynamoDbStore,
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    policy: &Policy,
    n: usize,
    seed: u64,
) -> Res<Present> {
    let started = Instant::now();
    if n == 0 {
        return Ok(Present {
            conversations: 0,
            items: 0,
            bytes: 0,
            record_bytes: 0,
            secs: 0.0,
        });
    }
    // The histories, one conversation after another, ending a minute ago: 4 s apart, each a
    // burst with gaps under 400 ms (100,000 span 4.6 days, inside the 7-day dedupe horizon).
    let step = Duration::from_secs(4);
    let start = SystemClock
        .now()
        .0
        .saturating_sub(60_000 + step.as_millis() as u64 * n as u64);
    let mem = MemoryStore::new();
    let trigger = MemoryTrigger::new();
    let clock = ManualClock::new(Millis(start), seed);
    let buffer = Buffer::new(
        mem.clone(),
        trigger.clone(),
        MemorySink::new(),
        clock.clone(),
        BufferConfig::default(),
    );
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
    let mut dedupe: Vec<DedupeRecord> = Vec::new();
    for i in 0..n {
        let k = key(i);
        clock.set(Millis(start + step.as_millis() as u64 * i as u64));
        let burst = rng.usize(1..=6);
        let ids: Vec<String> = (0..burst).map(|j| format!("h.{i}.{j}")).collect();
        for id in &ids {
            clock.advance(Duration::from_millis(rng.u64(0..400)));
            buffer
                .append(
                    &k,
                    policy,
                    Message::text(id.clone(), "u", "quero 2 pizzas, uma vegana"),
                )
                .await
                .map_err(|e| format!("history append: {e}"))?;
        }
        // Past the window's max wait: fire what is due (early triggers re-arm) until idle.
        clock.advance(policy.max_wait + Duration::from_millis(1));
        for _ in 0..10 {
            let fired = trigger.take_due(clock.now());
            if fired.is_empty() {
                break;
            }
            for (_, t) in fired {
                buffer
                    .flush(&t.key, Claim::Trigger { chain: t.chain })
                    .await
                    .map_err(|e| format!("history flush: {e}"))?;
            }
        }
        match mem.load_now(&k) {
            Some(c) if c.is_idle() => {}
            _ => return Err(format!("present conversation {i} did not end idle").into()),
        }
        // The long-horizon dedupe records the flush wrote for this history (none for an id
        // a design keeps in the record instead).
        for id in &ids {
            dedupe.extend(mem.seen(&k, id, Millis(0)).await?);
        }
    }

    let mut items = Vec::with_capacity(n);
    for c in mem.conversations() {
        items.push(store.conversation_item(&c)?);
    }
    let record_bytes: usize = items.iter().map(|i| item_size(i) + ITEM_OVERHEAD).sum();
    let mut bytes = record_bytes;
    let record_count = items.len();
    let mut writers = tokio::task::JoinSet::new();
    for chunk in items.chunks(CHUNK) {
        if writers.len() >= WRITERS {
            if let Some(r) = writers.join_next().await {
                r??;
            }
        }
        let (client, table, chunk) = (client.clone(), table.to_string(), chunk.to_vec());
        writers.spawn(async move { put_all(&client, &table, chunk).await });
    }
    // Dedupe items through the store's own writer (its accounting is not the measured run's).
    for chunk in dedupe.chunks(CHUNK) {
        bytes += chunk.len() * ITEM_OVERHEAD;
        if writers.len() >= WRITERS {
            if let Some(r) = writers.join_next().await {
                r??;
            }
        }
        let (store, chunk) = (store.clone(), chunk.to_vec());
        writers.spawn(async move {
            store
                .remember(&chunk)
                .await
                .map_err(|e| format!("dedupe items: {e}").into())
        });
    }
    while let Some(r) = writers.join_next().await {
        r??;
    }
    // The dedupe items' sizes, as the store encodes them.
    bytes += dedupe
        .iter()
        .map(|d| item_size(&lull_aws::DynamoDbStore::dedupe_item(d)))
        .sum::<usize>();
    Ok(Present {
        conversations: n,
        items: record_count + dedupe.len(),
        bytes,
        record_bytes,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// Puts `items` in one `BatchWriteItem`, sending unprocessed items again a bounded number of times.
async fn put_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
) -> Res<()> {
    let mut pending = items
        .into_iter()
        .map(|item| {
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|p| WriteRequest::builder().put_request(p).build())
        })
        .collect::<Result<Vec<_>, _>>()?;
    for _ in 0..ATTEMPTS {
        if pending.is_empty() {
            return Ok(());
        }
        let out = client
            .batch_write_item()
            .request_items(table, std::mem::take(&mut pending))
            .send()
            .await
            .map_err(|e| format!("BatchWriteItem: {e:?}"))?;
        pending = out
            .unprocessed_items()
            .and_then(|m| m.get(table))
            .cloned()
            .unwrap_or_default();
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(format!("{} present records unprocessed", pending.len()).into())
    }
}
