//! A conversation's DynamoDB item read raw, as a test checks what is stored (its own file: the
//! benchmarks include `common` without it).

use aws_sdk_dynamodb::types::AttributeValue;
use lull_core::ConversationKey;

/// The item of `key`'s conversation in `h`'s table (consistent `GetItem`): its attributes but
/// `rec`, sorted by name, and `rec` inflated (raw deflate) to its JSON.
pub async fn record(
    h: &crate::common::Harness,
    key: &ConversationKey,
) -> (Vec<(String, AttributeValue)>, serde_json::Value) {
    let out = h
        .clients
        .dynamodb
        .get_item()
        .table_name(&h.table)
        .key("pk", AttributeValue::S(format!("c#{}", key.storage_key())))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    let mut item = out.item.expect("the conversation's item");
    let Some(AttributeValue::B(blob)) = item.remove("rec") else {
        panic!("no binary rec: {item:?}");
    };
    let json = miniz_oxide::inflate::decompress_to_vec(blob.as_ref()).expect("inflate rec");
    let mut attrs: Vec<_> = item.into_iter().collect();
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    (attrs, serde_json::from_slice(&json).expect("rec is JSON"))
}
