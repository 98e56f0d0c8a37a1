//! What an application does to a view table through the AWS SDK (UpdateItem, PutItem,
//! DeleteItem), and a reader of the table's stream, for the write-back tests.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::Env;

pub type Key = HashMap<String, AttributeValue>;

/// An item key from `(attribute, text)` pairs.
pub fn key(parts: &[(&str, &str)]) -> Key {
    parts
        .iter()
        .map(|(name, value)| (name.to_string(), AttributeValue::S(value.to_string())))
        .collect()
}

/// The item at `key`, read strongly consistent; `None` when there is none.
pub async fn stored(env: &Env, table: &str, key: Key) -> Option<HashMap<String, AttributeValue>> {
    env.ddb
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

pub fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_string())
}

pub fn n(text: &str) -> AttributeValue {
    AttributeValue::N(text.to_string())
}

/// An application's UpdateItem. `#s`, `#d` and `#r` in the expression stand for `status` and
/// `day` (reserved words) and `_restored`.
pub async fn update(
    env: &Env,
    table: &str,
    key: Key,
    expression: &str,
    values: &[(&str, AttributeValue)],
) {
    let mut request = env
        .ddb
        .update_item()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(expression);
    for (name, value) in values {
        request = request.expression_attribute_values(*name, value.clone());
    }
    for (alias, name) in [("#s", "status"), ("#d", "day"), ("#r", "_restored")] {
        if expression.contains(alias) {
            request = request.expression_attribute_names(alias, name);
        }
    }
    request.send().await.unwrap();
}

/// An application's PutItem.
pub async fn put(env: &Env, table: &str, attributes: &[(&str, AttributeValue)]) {
    env.ddb
        .put_item()
        .table_name(table)
        .set_item(Some(
            attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        ))
        .send()
        .await
        .unwrap();
}

/// An application's DeleteItem.
pub async fn delete(env: &Env, table: &str, key: Key) {
    env.ddb
        .delete_item()
        .table_name(table)
        .set_key(Some(key))
        .send()
        .await
        .unwrap();
}

/// The ARN of the table's latest stream.
pub async fn stream_arn(env: &Env, table: &str) -> String {
    env.ddb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap()
        .latest_stream_arn
        .unwrap()
}

/// Every record in the table's stream as `(shard, sequence number)`, all shards, oldest first.
pub async fn stream_records(env: &Env, table: &str) -> Vec<(String, String)> {
    full_stream_records(env, table)
        .await
        .into_iter()
        .map(|(shard, record)| {
            let sequence = record.dynamodb().unwrap().sequence_number().unwrap();
            (shard, sequence.to_string())
        })
        .collect()
}

/// Every record in the table's stream with its shard, all shards, oldest first in each.
pub async fn full_stream_records(
    env: &Env,
    table: &str,
) -> Vec<(String, aws_sdk_dynamodbstreams::types::Record)> {
    let streams = rowcast::dynamo::streams_client(&rowcast::config::DynamoConfig {
        endpoint_url: Some(env.ddb_url.clone()),
        region: Some("us-east-1".into()),
    })
    .await;
    let arn = stream_arn(env, table).await;
    let description = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    let mut records = Vec::new();
    for shard in description.shards() {
        let id = shard.shard_id().unwrap().to_string();
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(&id)
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(it) = iterator {
            let out = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            if out.records().is_empty() {
                break;
            }
            records.extend(out.records().iter().map(|r| (id.clone(), r.clone())));
            iterator = out.next_shard_iterator;
        }
    }
    records
}

/// The dead letters of a `[dead_letter] path = "dead.jsonl"` config.
pub fn dead_letters(env: &Env) -> Vec<serde_json::Value> {
    std::fs::read_to_string(env.dir.join("dead.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Whether write-back has saved, for every shard of the table's stream, the position of the
/// shard's last record: its control table entries (`writeback#<stream arn>`), or those of a
/// file checkpoint at `state/checkpoint.json`.
pub async fn caught_up(env: &Env, table: &str) -> bool {
    let arn = stream_arn(env, table).await;
    let mut last: HashMap<String, String> = HashMap::new();
    for (shard, sequence) in stream_records(env, table).await {
        last.insert(shard, sequence);
    }
    let saved = saved_positions(env, &arn).await;
    last.iter()
        .all(|(shard, sequence)| saved.get(shard) == Some(sequence))
}

/// The sequence number saved for each shard of the stream `arn`.
pub async fn saved_positions(env: &Env, arn: &str) -> HashMap<String, String> {
    let file = env.dir.join("state/checkpoint.writeback.json");
    if file.exists() {
        let all: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        return all[arn]["shards"]
            .as_object()
            .map(|shards| {
                shards
                    .iter()
                    .filter_map(|(id, p)| Some((id.clone(), p["sequence"].as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
    }
    let out = env
        .ddb
        .query()
        .table_name(env.table("control"))
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s(&format!("writeback#{arn}")))
        .send()
        .await
        .unwrap();
    out.items()
        .iter()
        .filter_map(|item| {
            Some((
                item.get("sk")?.as_s().ok()?.clone(),
                item.get("sequence")?.as_s().ok()?.clone(),
            ))
        })
        .collect()
}
