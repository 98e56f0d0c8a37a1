//! Durable checkpoint stores: an item in the DynamoDB control table (the default, so the sidecar
//! can be stateless) or a local JSON file (written to a temporary file, synced, renamed).
//!
//! The control table has a string partition key `pk` and sort key `sk`; the checkpoint of a
//! binlog reader is the item `pk = "checkpoint#<pipeline name>"` (`checkpoint#<server_id>`
//! without `[pipeline] name`), `sk = "stream"`. A save is
//! conditional on the stored counter not being ahead, so an older instance can never move the
//! checkpoint back.
//!
//! The item also names its owner: an instance claims it at start (before loading it), and every
//! save, and an ownership check while idle, is conditional on still owning it. A second instance
//! started with the same control table and server id therefore takes over and the first one is
//! fenced at its next save or check (within one checkpoint interval, at most a second when idle)
//! and stops. An instance that takes the item from an owner that did not release it (a clean
//! stop releases it) waits that long, and a little more, before it writes anything, so that
//! the older one has stopped. A file checkpoint has no owner: it belongs to one sidecar's volume.

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
    #[error("checkpoint in {table} was taken over by another instance (owner {owner}, ours {ours}) or moved ahead of ours: this instance stops")]
    Fenced {
        table: String,
        ours: String,
        owner: String,
    },
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
        /// This instance's claim on the item.
        owner: String,
    },
}

/// A name no other instance uses: the process id, the start time and a random part (containers
/// often all run as pid 1).
fn owner_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!(
        "{}-{}-{:08x}",
        std::process::id(),
        crate::util::now_millis(),
        random as u32
    )
}

impl CheckpointStore {
    /// The checkpoint item `id` (`Config::checkpoint_id`) in the control table `table`.
    pub fn table(client: Client, table: String, id: String) -> Self {
        CheckpointStore::Table {
            client,
            table,
            id,
            owner: owner_name(),
        }
    }

    /// Whether the checkpoint has an owner that fences another instance (the control table;
    /// a file has none).
    pub fn has_owner(&self) -> bool {
        matches!(self, CheckpointStore::Table { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            CheckpointStore::File(path) => format!("file {}", path.display()),
            CheckpointStore::Table { table, id, .. } => format!("table {table} item {id}"),
        }
    }

    /// Takes the checkpoint over: from now on only this instance's saves succeed. Called before
    /// `load`, so that what is loaded is final. Returns the owner it took it from, if another
    /// instance held it and did not release it (it may still be running until it notices).
    pub async fn claim(&self) -> Result<Option<String>, CheckpointError> {
        let CheckpointStore::Table {
            client,
            table,
            id,
            owner,
        } = self
        else {
            return Ok(None);
        };
        let out = client
            .update_item()
            .table_name(table)
            .set_key(Some(item_key(id)))
            .update_expression("SET #owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", AttributeValue::S(owner.clone()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .send()
            .await
            .map_err(|e| CheckpointError::Dynamo {
                table: table.clone(),
                info: classify_sdk_error(&e),
            })?;
        Ok(match out.attributes.as_ref().and_then(|a| a.get("owner")) {
            Some(AttributeValue::S(previous)) if previous != owner => Some(previous.clone()),
            _ => None,
        })
    }

    /// Gives the checkpoint up after a clean stop, so that the next instance need not wait for
    /// this one to notice it was taken over.
    pub async fn release(&self) -> Result<(), CheckpointError> {
        let CheckpointStore::Table {
            client,
            table,
            id,
            owner,
        } = self
        else {
            return Ok(());
        };
        let result = client
            .update_item()
            .table_name(table)
            .set_key(Some(item_key(id)))
            .update_expression("REMOVE #owner")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", AttributeValue::S(owner.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                let info = classify_sdk_error(&error);
                if info.code.as_deref() == Some("ConditionalCheckFailedException") {
                    return Ok(()); // not ours any more: nothing to give up
                }
                Err(CheckpointError::Dynamo {
                    table: table.clone(),
                    info,
                })
            }
        }
    }

    /// Whether this instance still owns the checkpoint (`Fenced` if not).
    pub async fn check_owner(&self) -> Result<(), CheckpointError> {
        let CheckpointStore::Table {
            client,
            table,
            id,
            owner,
        } = self
        else {
            return Ok(());
        };
        let item = read_item(client, table, id).await?;
        match item.as_ref().and_then(|item| item.get("owner")) {
            Some(AttributeValue::S(current)) if current != owner => Err(CheckpointError::Fenced {
                table: table.clone(),
                ours: owner.clone(),
                owner: current.clone(),
            }),
            _ => Ok(()),
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
            CheckpointStore::Table {
                client, table, id, ..
            } => {
                let item = read_item(client, table, id).await?;
                // An item holding only the owner's claim: nothing saved yet.
                let Some(item) = item.filter(|item| item.contains_key("file")) else {
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
            CheckpointStore::Table {
                client,
                table,
                id,
                owner,
            } => {
                let mut item = encode_item(checkpoint);
                item.extend(item_key(id));
                item.insert("owner".into(), AttributeValue::S(owner.clone()));
                let result = client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(item))
                    .condition_expression(
                        "(attribute_not_exists(#seq) OR #seq <= :seq) \
                         AND (attribute_not_exists(#owner) OR #owner = :me)",
                    )
                    .expression_attribute_names("#seq", "seq")
                    .expression_attribute_names("#owner", "owner")
                    .expression_attribute_values(
                        ":seq",
                        AttributeValue::N(checkpoint.seq.to_string()),
                    )
                    .expression_attribute_values(":me", AttributeValue::S(owner.clone()))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(error) => {
                        let info = classify_sdk_error(&error);
                        if info.code.as_deref() == Some("ConditionalCheckFailedException") {
                            return Err(match self.check_owner().await {
                                Err(fenced @ CheckpointError::Fenced { .. }) => fenced,
                                _ => CheckpointError::Fenced {
                                    table: table.clone(),
                                    ours: owner.clone(),
                                    owner: format!(
                                        "{owner}, with a later seq than {}",
                                        checkpoint.seq
                                    ),
                                },
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

/// The key of the checkpoint item `id`.
fn item_key(id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (CONTROL_PK.to_string(), AttributeValue::S(id.to_string())),
        (CONTROL_SK.to_string(), AttributeValue::S("stream".into())),
    ])
}

/// The checkpoint item as stored (a consistent read).
async fn read_item(
    client: &Client,
    table: &str,
    id: &str,
) -> Result<Option<HashMap<String, AttributeValue>>, CheckpointError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(item_key(id)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| CheckpointError::Dynamo {
            table: table.to_string(),
            info: classify_sdk_error(&e),
        })?;
    Ok(out.item)
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
