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

/// The tenant store contract (the same suite the SQLite store passes) against the DynamoDB
/// directory item with its secrets in moto's Secrets Manager.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_tenants_meet_the_tenant_store_contract() {
    use lull_aws::tenants::DynamoTenants;
    use lull_core::{Millis, Policy};
    use lull_ingest::tenant_spec::Applied;
    use lull_ingest::{TenantRecord, TenantSource, TenantSpec};
    use lull_tenants::tenant_contract::{check_tenant_store, ContractFuture, TenantStoreUnderTest};

    struct Under(DynamoTenants);
    impl TenantSource for Under {
        fn load(&self) -> lull_ingest::tenant::LookupFuture<'_, Vec<TenantRecord>> {
            self.0.load()
        }
    }
    impl TenantStoreUnderTest for Under {
        fn apply(&self, specs: Vec<TenantSpec>, now: Millis) -> ContractFuture<'_, Applied> {
            Box::pin(async move {
                let defaults = Policy::default();
                self.0
                    .apply(specs, &defaults, now, std::time::Duration::ZERO)
                    .await
                    .map_err(|e| e.to_string())
            })
        }
        fn remove<'a>(&'a self, id: &'a str, purge: bool, now: Millis) -> ContractFuture<'a, ()> {
            Box::pin(async move {
                self.0
                    .remove(id, purge, now)
                    .await
                    .map_err(|e| e.to_string())
            })
        }
    }

    let c = common::clients().await;
    let table = common::table(&c).await;
    let prefix = format!("{}/", common::unique("lull/contract"));
    let store = Under(DynamoTenants::new(
        c.dynamodb.clone(),
        c.secrets.clone(),
        &table,
        &prefix,
        Accounting::new(),
    ));
    check_tenant_store(&store).await;
}
