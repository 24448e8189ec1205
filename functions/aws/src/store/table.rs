//! The table's creation (pay per request, the due index, TTL on): for tests and `lull` set-up
//! scripts; production tables come from infrastructure code with the same shape
//! (`infra/template.yaml`, held to this by `tests/infra.rs`).

use lull_core::ports::StoreError;

use super::{DynamoDbStore, DUE_INDEX};

/// Creates the table (pay per request), its due index, and turns on TTL. For tests and
/// `lull` set-up scripts; production tables come from infrastructure code with the same shape.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
    };
    let err = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Corrupt(e.to_string());
    let attr = |name: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .map_err(err)
    };
    let key = |name: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .map_err(err)
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
        .attribute_definitions(attr("due_shard", ScalarAttributeType::N)?)
        .attribute_definitions(attr("due_at", ScalarAttributeType::N)?)
        .key_schema(key("pk", KeyType::Hash)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(DUE_INDEX)
                .key_schema(key("due_shard", KeyType::Hash)?)
                .key_schema(key("due_at", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .map_err(err)?,
        )
        .send()
        .await
        .map_err(|e| DynamoDbStore::unavailable("CreateTable", &e))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("ttl")
                .enabled(true)
                .build()
                .map_err(err)?,
        )
        .send()
        .await
        .map_err(|e| DynamoDbStore::unavailable("UpdateTimeToLive", &e))?;
    Ok(())
}
