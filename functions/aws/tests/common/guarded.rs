//! A flush Lambda whose batches carry reply guards (as `LULL_PUBLIC_URL` and the log secret make
//! it in `wiring.rs`), over a test harness: its own file, the benchmarks include `common`
//! without it.

use std::sync::Arc;
use std::time::Duration;

use lull_aws::sink::BatchSink;
use lull_aws::store::{DynamoDbStore, StoreSettings};
use lull_aws::{AwsHandoff, SqsTrigger};
use lull_core::ports::SystemClock;
use lull_core::protocol::Handoff;

/// The flush path of `h` (same table, queue, sink and accounting), sealing a reply guard under
/// `base` with `key` into every batch.
pub fn flusher(
    h: &crate::common::Harness,
    base: &str,
    key: lull_sink::GuardKey,
) -> Arc<AwsHandoff> {
    let store = DynamoDbStore::new(
        h.clients.dynamodb.clone(),
        StoreSettings::new(&h.table),
        h.flush_acct.clone(),
    );
    let trigger = SqsTrigger::new(h.clients.sqs.clone(), &h.queue, h.flush_acct.clone());
    let target = lull_sink::HttpTarget::new(&h.sink.url, vec!["s3cret".into()]).expect("target");
    let http = lull_sink::HttpSink::new(target, Duration::from_secs(2)).expect("sink");
    let handoff = Handoff::new(
        store,
        trigger,
        lull_sink::Listening::off(lull_tenants::RoutedSink::new(BatchSink::Any(
            lull_sink::AnySink::Http(http),
        ))),
        SystemClock,
        crate::common::test_config(),
    );
    Arc::new(handoff.with_reply_guard(Arc::new(lull_sink::GuardUrls::new(base, key))))
}
