//! Durable checkpoint stores: an item in the DynamoDB control table (the default, so the sidecar
//! can be stateless) or a local JSON file (written to a temporary file, synced, renamed).
//!
//! The control table has a string partition key `pk` and sort key `sk`; the checkpoint of a
//! binlog reader is the item `pk = "checkpoint#<server_id>"`, `sk = "stream"`. A save is
//! conditional on the stored counter not being ahead, so an older instance can never move the
//! checkpoint back.

use std::collections::HashMap;
use std::path::PathBuf;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::{write_durably, CONTROL_PK, CONTROL_SK};
use crate::dynamo::{classify_sdk_error, SdkErrorInfo};
use crate::error::{Classify, ErrorClass};
use crate::pipeline::{Checkpoint, Position};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint file {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint file {path} is not a checkpoint")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("checkpoint table {table}: {info}")]
    Dynamo { table: String, info: SdkErrorInfo },
    #[error("checkpoint item in {table} is malformed: {reason}")]
    Malformed { table: String, reason: String },
    #[error("checkpoint in {table} is ahead of ours (seq {ours}): another instance is writing it")]
    Fenced { table: String, ours: u64 },
}

impl Classify for CheckpointError {
    fn class(&self) -> ErrorClass {
        match self {
            CheckpointError::File { .. } => ErrorClass::Transient,
            CheckpointError::Dynamo { info, .. } => info.class,
            CheckpointError::Corrupt { .. }
            | CheckpointError::Malformed { .. }
            | CheckpointError::Fenced { .. } => ErrorClass::Definite,
        }
    }
}

pub enum CheckpointStore {
    File(PathBuf),
    Table {
        client: Client,
        table: String,
        id: String,
    },
}

impl CheckpointStore {
    pub fn table(client: Client, table: String, server_id: u32) -> Self {
        CheckpointStore::Table {
            client,
            table,
            id: format!("checkpoint#{server_id}"),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            CheckpointStore::File(path) => format!("file {}", path.display()),
            CheckpointStore::Table { table, id, .. } => format!("table {table} item {id}"),
        }
    }

    pub async fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        match self {
            CheckpointStore::File(path) => {
                let bytes = match tokio::fs::read(path).await {
                    Ok(bytes) => bytes,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(source) => {
                        return Err(CheckpointError::File {
                            path: path.clone(),
                            source,
                        })
                    }
                };
                serde_json::from_slice(&bytes).map(Some).map_err(|source| {
                    CheckpointError::Corrupt {
                        path: path.clone(),
                        source,
                    }
                })
            }
            CheckpointStore::Table { client, table, id } => {
                let out = client
                    .get_item()
                    .table_name(table)
                    .key(CONTROL_PK, AttributeValue::S(id.clone()))
                    .key(CONTROL_SK, AttributeValue::S("stream".into()))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| CheckpointError::Dynamo {
                        table: table.clone(),
                        info: classify_sdk_error(&e),
                    })?;
                let Some(item) = out.item else {
                    return Ok(None);
                };
                decode_item(&item)
                    .map(Some)
                    .map_err(|reason| CheckpointError::Malformed {
                        table: table.clone(),
                        reason,
                    })
            }
        }
    }

    pub async fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        match self {
            CheckpointStore::File(path) => save_file(path, checkpoint).await,
            CheckpointStore::Table { client, table, id } => {
                let mut item = encode_item(checkpoint);
                item.insert(CONTROL_PK.into(), AttributeValue::S(id.clone()));
                item.insert(CONTROL_SK.into(), AttributeValue::S("stream".into()));
                let result = client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(#seq) OR #seq <= :seq")
                    .expression_attribute_names("#seq", "seq")
                    .expression_attribute_values(
                        ":seq",
                        AttributeValue::N(checkpoint.seq.to_string()),
                    )
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(error) => {
                        let info = classify_sdk_error(&error);
                        if info.code.as_deref() == Some("ConditionalCheckFailedException") {
                            return Err(CheckpointError::Fenced {
                                table: table.clone(),
                                ours: checkpoint.seq,
                            });
                        }
                        Err(CheckpointError::Dynamo {
                            table: table.clone(),
                            info,
                        })
                    }
                }
            }
        }
    }
}

async fn save_file(path: &std::path::Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let bytes = serde_json::to_vec_pretty(checkpoint).expect("a checkpoint always serialises");
    write_durably(path, bytes)
        .await
        .map_err(|source| CheckpointError::File {
            path: path.to_path_buf(),
            source,
        })
}

fn encode_item(c: &Checkpoint) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::new();
    item.insert("file".into(), AttributeValue::S(c.position.file.clone()));
    item.insert("pos".into(), AttributeValue::N(c.position.pos.to_string()));
    if let Some(gtid) = &c.position.gtid {
        item.insert("gtid".into(), AttributeValue::S(gtid.clone()));
    }
    item.insert("seq".into(), AttributeValue::N(c.seq.to_string()));
    if !c.backfill.is_empty() {
        let json = serde_json::to_string(&c.backfill).expect("progress always serialises");
        item.insert("backfill".into(), AttributeValue::S(json));
    }
    item.insert(
        "updated_ms".into(),
        AttributeValue::N(c.updated_ms.to_string()),
    );
    item
}

fn decode_item(item: &HashMap<String, AttributeValue>) -> Result<Checkpoint, String> {
    let s = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        _ => Err(format!("attribute {name} missing or not a string")),
    };
    let n = |name: &str| match item.get(name) {
        Some(AttributeValue::N(n)) => n
            .parse::<u64>()
            .map_err(|e| format!("attribute {name}: {e}")),
        _ => Err(format!("attribute {name} missing or not a number")),
    };
    Ok(Checkpoint {
        position: Position {
            file: s("file")?,
            pos: n("pos")?,
            gtid: s("gtid").ok(),
        },
        seq: n("seq")?,
        updated_ms: n("updated_ms").unwrap_or_default(),
        backfill: match s("backfill") {
            Ok(json) => {
                serde_json::from_str(&json).map_err(|e| format!("attribute backfill: {e}"))?
            }
            Err(_) => Default::default(),
        },
    })
}
