//! The store contract (the same suite the in-memory store passes) against DynamoDbStore on moto.

mod common;

use lull_aws::store::{DynamoDbStore, StoreSettings};
use lull_aws::Accounting;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_store_meets_the_contract() {
    let c = common::clients().await;
    let table = common::table(&c).await;
    let store = DynamoDbStore::new(
        c.dynamodb.clone(),
        StoreSettings::new(table),
        Accounting::new(),
    );
    lull_core::contract::check_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_store_meets_the_contract_with_one_due_shard() {
    let c = common::clients().await;
    let table = common::table(&c).await;
    let mut settings = StoreSettings::new(table);
    settings.due_shards = 1;
    let store = DynamoDbStore::new(c.dynamodb.clone(), settings, Accounting::new());
    lull_core::contract::due_index_lists_past_due_oldest_first(&store).await;
    lull_core::contract::records_round_trip_exactly(&store).await;
}
