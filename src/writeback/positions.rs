//! Where each stream shard was processed to: the sequence number of the last record applied,
//! and whether the shard is closed and finished. Saved after every batch of records applied,
//! so a restart reprocesses at most the batch in flight (at-least-once; the statements are
//! idempotent: UPDATE to values, upsert, delete).
//!
//! In the control table: item `pk = "writeback#<server_id>#<table>"`, `sk = <shard id>`; with a
//! file checkpoint: `<checkpoint path>.writeback.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use crate::checkpoint::store::{write_durably, CONTROL_PK, CONTROL_SK};
use crate::sink::dynamo::classify_sdk_error;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPosition {
    /// Sequence number of the last record applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// Closed and read to its end.
    #[serde(default)]
    pub done: bool,
}

pub type Positions = BTreeMap<String, ShardPosition>;

#[derive(Debug, thiserror::Error)]
#[error("write-back positions: {0}")]
pub struct PositionError(pub String);

pub enum PositionStore {
    Table {
        client: Client,
        table: String,
        server_id: u32,
    },
    File(PathBuf),
}

impl PositionStore {
    fn partition(server_id: u32, view_table: &str) -> String {
        format!("writeback#{server_id}#{view_table}")
    }

    pub async fn load(&self, view_table: &str) -> Result<Positions, PositionError> {
        match self {
            PositionStore::Table {
                client,
                table,
                server_id,
            } => {
                let mut positions = Positions::new();
                let mut start = None;
                loop {
                    let out = client
                        .query()
                        .table_name(table)
                        .key_condition_expression("#p = :p")
                        .expression_attribute_names("#p", CONTROL_PK)
                        .expression_attribute_values(
                            ":p",
                            AttributeValue::S(Self::partition(*server_id, view_table)),
                        )
                        .consistent_read(true)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| PositionError(classify_sdk_error(&e).to_string()))?;
                    for item in out.items() {
                        let Some(AttributeValue::S(shard)) = item.get(CONTROL_SK) else {
                            continue;
                        };
                        let sequence = match item.get("sequence") {
                            Some(AttributeValue::S(s)) => Some(s.clone()),
                            _ => None,
                        };
                        let done = matches!(item.get("done"), Some(AttributeValue::Bool(true)));
                        positions.insert(shard.clone(), ShardPosition { sequence, done });
                    }
                    match out.last_evaluated_key {
                        Some(key) => start = Some(key),
                        None => break,
                    }
                }
                Ok(positions)
            }
            PositionStore::File(path) => {
                let all = read_file(path)?;
                Ok(all.get(view_table).cloned().unwrap_or_default())
            }
        }
    }

    pub async fn save(
        &self,
        view_table: &str,
        shard: &str,
        position: &ShardPosition,
    ) -> Result<(), PositionError> {
        match self {
            PositionStore::Table {
                client,
                table,
                server_id,
            } => {
                let mut request = client
                    .put_item()
                    .table_name(table)
                    .item(
                        CONTROL_PK,
                        AttributeValue::S(Self::partition(*server_id, view_table)),
                    )
                    .item(CONTROL_SK, AttributeValue::S(shard.to_string()))
                    .item("done", AttributeValue::Bool(position.done));
                if let Some(sequence) = &position.sequence {
                    request = request.item("sequence", AttributeValue::S(sequence.clone()));
                }
                request
                    .send()
                    .await
                    .map_err(|e| PositionError(classify_sdk_error(&e).to_string()))?;
                Ok(())
            }
            PositionStore::File(path) => {
                let mut all = read_file(path)?;
                all.entry(view_table.to_string())
                    .or_default()
                    .insert(shard.to_string(), position.clone());
                let bytes = serde_json::to_vec_pretty(&all).expect("positions serialise");
                write_durably(path, bytes)
                    .await
                    .map_err(|e| PositionError(format!("{}: {e}", path.display())))
            }
        }
    }
}

fn read_file(path: &PathBuf) -> Result<BTreeMap<String, Positions>, PositionError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| PositionError(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(PositionError(format!("{}: {e}", path.display()))),
    }
}
