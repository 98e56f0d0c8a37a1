//! Where each stream shard was processed to, per DynamoDB Stream: the sequence number of the
//! last record applied, whether the shard is closed and finished, and when the consumer first
//! started on that stream.
//!
//! Positions belong to the stream (its ARN names the table and the stream's creation), never to
//! the binlog replica id: another `server_id`, or a restored checkpoint, finds them unchanged,
//! and a re-created table's new stream starts afresh. Saved after every batch of records, so a
//! restart reprocesses at most the batch in flight (at-least-once).
//!
//! The first start on a stream (no entry at all) records its time: the consumer then begins at
//! the stream's latest record, and any later read from a shard's oldest record (a shard that
//! had no record yet when rowcast stopped) skips records created before that time, so history
//! from before the first start is never applied.
//!
//! A table written with write-back off for all its views is marked (`#off#<table>` in place of
//! a stream ARN) until its consumer has forgotten the positions of every stream of the table
//! (see `app::prepare`).
//!
//! In the control table: items `pk = "writeback#<stream arn>"`, `sk = <shard id>` (and
//! `sk = "#start"`); with a file checkpoint: `<checkpoint path>.writeback.json`, one object per
//! stream, written under a lock so that the consumers of several tables never lose or tear each
//! other's entries. (Positions of the earlier layout, `writeback#<server_id>#<table>`, are not
//! read: a consumer upgraded from it starts at the latest record.)

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::debug;

use super::{write_durably, CONTROL_PK, CONTROL_SK};
use crate::dynamo::{classify_sdk_error, is_condition_failure, SdkErrorInfo};
use crate::error::{Classify, ErrorClass};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPosition {
    /// Sequence number of the last record applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// Closed and read to its end.
    #[serde(default)]
    pub done: bool,
    /// Every record after this position was made after the stream's first start: the shard's
    /// reading began at its latest record then, or a record read since was made after it (or
    /// its parent's were). Records are compared with the first start's time only until then
    /// (see `writeback::shards`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_start: bool,
}

/// Everything saved for one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamPositions {
    /// When the consumer first started on this stream (milliseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(default)]
    pub shards: BTreeMap<String, ShardPosition>,
    /// A [`PositionStore::forget`] begun and not finished (in the control table, where it
    /// takes several requests): the positions are not to be used; finish forgetting them.
    #[serde(skip)]
    pub forgetting: bool,
}

impl StreamPositions {
    pub fn is_empty(&self) -> bool {
        self.started_ms.is_none() && self.shards.is_empty() && !self.forgetting
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PositionError {
    #[error("write-back positions in DynamoDB: {0}")]
    Dynamo(SdkErrorInfo),
    #[error("write-back positions in {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write-back positions in {path} are not readable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// Failpoint `writeback.position_save` (tests only).
    #[error("failpoint writeback.position_save")]
    Failpoint,
}

impl Classify for PositionError {
    fn class(&self) -> ErrorClass {
        match self {
            PositionError::Dynamo(info) => info.class,
            PositionError::File { .. } => ErrorClass::Transient,
            PositionError::Corrupt { .. } => ErrorClass::Definite,
            PositionError::Failpoint => ErrorClass::Transient,
        }
    }
}

const START_SK: &str = "#start";
/// A shard position's sequence number, left-padded with zeros to 40 digits (the longest a
/// sequence number can be), so that the control table compares two of them as numbers.
const ORDER: &str = "order";
/// A shard position's `after_start` (see [`ShardPosition::after_start`]).
const AFTER_START: &str = "after_start";
/// Written first and deleted last by [`PositionStore::forget`].
const FORGETTING_SK: &str = "#forgetting";
/// The partition (control table) or key (file) of [`PositionStore::mark_off`]'s mark of a
/// table; a stream ARN never begins with `#`.
const OFF_PREFIX: &str = "#off#";

pub enum PositionStore {
    Table {
        client: Client,
        /// The client of [`PositionStore::save`]: one attempt per call (no retry inside the
        /// SDK), so that the caller checks the write lease before every attempt.
        saves: Client,
        table: String,
        /// `writeback#`, or `writeback#<pipeline name>#` with `[pipeline] name`.
        prefix: String,
    },
    File {
        path: PathBuf,
        /// One read-modify-write of the file at a time.
        lock: Mutex<()>,
    },
}

/// The file: stream ARN → its positions.
type FileContents = BTreeMap<String, StreamPositions>;

impl PositionStore {
    pub fn file(path: PathBuf) -> Self {
        PositionStore::File {
            path,
            lock: Mutex::new(()),
        }
    }

    /// The control-table partition of `stream`'s positions.
    fn partition(prefix: &str, stream: &str) -> String {
        format!("{prefix}{stream}")
    }

    /// The positions of `stream`.
    pub async fn load(&self, stream: &str) -> Result<StreamPositions, PositionError> {
        match self {
            PositionStore::Table {
                client,
                table: control,
                prefix,
                ..
            } => query_partition(client, control, &Self::partition(prefix, stream)).await,
            PositionStore::File { path, lock } => {
                let _held = lock.lock().await;
                Ok(read_file(path)?.remove(stream).unwrap_or_default())
            }
        }
    }

    /// Records the consumer's first start on `stream`.
    pub async fn save_start(&self, stream: &str, started_ms: u64) -> Result<(), PositionError> {
        match self {
            PositionStore::Table {
                client,
                table: control,
                prefix,
                ..
            } => client
                .put_item()
                .table_name(control)
                .item(
                    CONTROL_PK,
                    AttributeValue::S(Self::partition(prefix, stream)),
                )
                .item(CONTROL_SK, AttributeValue::S(START_SK.into()))
                .item("started_ms", AttributeValue::N(started_ms.to_string()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| PositionError::Dynamo(classify_sdk_error(&e))),
            PositionStore::File { .. } => {
                self.update_file(stream, |entry| entry.started_ms = Some(started_ms))
                    .await
            }
        }
    }

    pub async fn save(
        &self,
        stream: &str,
        shard: &str,
        position: &ShardPosition,
    ) -> Result<(), PositionError> {
        match self {
            PositionStore::Table {
                saves: client,
                table: control,
                prefix,
                ..
            } => {
                let mut request = client
                    .put_item()
                    .table_name(control)
                    .item(
                        CONTROL_PK,
                        AttributeValue::S(Self::partition(prefix, stream)),
                    )
                    .item(CONTROL_SK, AttributeValue::S(shard.to_string()))
                    .item("done", AttributeValue::Bool(position.done))
                    .item(AFTER_START, AttributeValue::Bool(position.after_start));
                if let Some(sequence) = &position.sequence {
                    request = request.item("sequence", AttributeValue::S(sequence.clone()));
                }
                let order = position.sequence.as_deref().and_then(sequence_order);
                if let Some(order) = &order {
                    request = request.item(ORDER, AttributeValue::S(order.clone()));
                }
                if let Some(condition) = forward_only(position, order) {
                    request = request
                        .condition_expression(condition.expression)
                        .expression_attribute_names("#order", ORDER)
                        .expression_attribute_names("#done", "done")
                        .set_expression_attribute_values(Some(condition.values));
                }
                match request.send().await {
                    Ok(_) => Ok(()),
                    Err(error) => {
                        let info = classify_sdk_error(&error);
                        if is_condition_failure(&info) {
                            // A further position is saved (this save landed after it), or
                            // the shard is finished: nothing to do. (A save sent again after
                            // a lost answer carries the same order, which the condition lets
                            // through.)
                            debug!(%stream, %shard, sequence = ?position.sequence, "write-back: a later position is saved already; this one is not");
                            Ok(())
                        } else {
                            Err(PositionError::Dynamo(info))
                        }
                    }
                }
            }
            PositionStore::File { .. } => {
                self.update_file(stream, |entry| {
                    entry.shards.insert(shard.to_string(), position.clone());
                })
                .await
            }
        }
    }

    /// Marks that rowcast wrote `table` with write-back off for all its views: the table's
    /// consumer, when write-back is on again, forgets the positions of every stream of the
    /// table before it reads (see [`PositionStore::is_off`]). No DynamoDB Streams call here: a
    /// deployment without write-back may not reach Streams at all.
    pub async fn mark_off(&self, table: &str, at_ms: u64) -> Result<(), PositionError> {
        // Kept as the start of a stream of that name (a stream ARN never begins with `#`).
        self.save_start(&format!("{OFF_PREFIX}{table}"), at_ms)
            .await
    }

    /// Whether [`PositionStore::mark_off`] marked `table` (until [`PositionStore::clear_off`]).
    pub async fn is_off(&self, table: &str) -> Result<bool, PositionError> {
        Ok(!self.load(&format!("{OFF_PREFIX}{table}")).await?.is_empty())
    }

    /// Removes `table`'s mark, once its streams' positions are forgotten.
    pub async fn clear_off(&self, table: &str) -> Result<(), PositionError> {
        self.forget(&format!("{OFF_PREFIX}{table}"))
            .await
            .map(|_| ())
    }

    /// Forgets everything saved for `stream`: the consumer's next start on it is a first
    /// start (at the stream's latest record). `true` when there was something to forget.
    ///
    /// In the control table a marker goes first and goes last, so that a forget cut short
    /// leaves positions that [`PositionStore::load`] reports as `forgetting`, never a part of
    /// them that would be taken for all of them.
    pub async fn forget(&self, stream: &str) -> Result<bool, PositionError> {
        match self {
            PositionStore::Table {
                client,
                table: control,
                prefix,
                ..
            } => {
                let partition = Self::partition(prefix, stream);
                let pages = crate::dynamo::tables::query_partition(
                    client, control, CONTROL_PK, &partition, None,
                )
                .await
                .map_err(PositionError::Dynamo)?;
                if pages.iter().flatten().next().is_none() {
                    return Ok(false);
                }
                // The marker last, whether this forget put it or one cut short did.
                let mut sort_keys: Vec<String> = pages
                    .iter()
                    .flatten()
                    .filter_map(|item| match item.get(CONTROL_SK) {
                        Some(AttributeValue::S(sk)) if sk != FORGETTING_SK => Some(sk.clone()),
                        _ => None,
                    })
                    .collect();
                client
                    .put_item()
                    .table_name(control)
                    .item(CONTROL_PK, AttributeValue::S(partition.clone()))
                    .item(CONTROL_SK, AttributeValue::S(FORGETTING_SK.into()))
                    .send()
                    .await
                    .map_err(|e| PositionError::Dynamo(classify_sdk_error(&e)))?;
                sort_keys.push(FORGETTING_SK.to_string());
                for sk in sort_keys {
                    client
                        .delete_item()
                        .table_name(control)
                        .key(CONTROL_PK, AttributeValue::S(partition.clone()))
                        .key(CONTROL_SK, AttributeValue::S(sk))
                        .send()
                        .await
                        .map_err(|e| PositionError::Dynamo(classify_sdk_error(&e)))?;
                }
                Ok(true)
            }
            PositionStore::File { path, lock } => {
                let _held = lock.lock().await;
                let mut all = read_file(path)?;
                if all.remove(stream).is_none() {
                    return Ok(false);
                }
                write_file(path, &all).await?;
                Ok(true)
            }
        }
    }

    async fn update_file(
        &self,
        stream: &str,
        change: impl FnOnce(&mut StreamPositions),
    ) -> Result<(), PositionError> {
        let PositionStore::File { path, lock } = self else {
            unreachable!("update_file is called for the file store only");
        };
        let _held = lock.lock().await;
        let mut all = read_file(path)?;
        let mut entry = all.remove(stream).unwrap_or_default();
        change(&mut entry);
        all.insert(stream.to_string(), entry);
        write_file(path, &all).await
    }
}

/// `sequence` as [`ORDER`] holds it; `None` for anything but 1 to 40 digits (not a sequence
/// number as DynamoDB Streams documents them: such a position is saved unguarded).
fn sequence_order(sequence: &str) -> Option<String> {
    let digits = !sequence.is_empty() && sequence.bytes().all(|b| b.is_ascii_digit());
    (digits && sequence.len() <= 40).then(|| format!("{sequence:0>40}"))
}

/// The condition of a position save, and its values.
struct Condition {
    expression: &'static str,
    values: std::collections::HashMap<String, AttributeValue>,
}

/// The condition under which a save of `position` (whose sequence number orders as `order`)
/// may replace what is saved: only if it moves the shard's position forward, or keeps it.
/// Sequence numbers grow within a shard, so a save that would find a later one saved was made
/// before it and landed after it: a request held in the network, or the save of an instance
/// stalled while its successor went on (see `lease.rs` for what the lease's clock cannot
/// cover). Without the condition it would move the position back, and the next start would
/// apply the records in between again, over newer changes of their rows in SQL. A finished
/// shard's save (`done`) is never refused: a shard is read to its end once every record was
/// handled, so nothing is after it; and no save reopens a finished shard (also one whose item
/// has no `order`: saved by an earlier release, or finished with no record read). `None`: no
/// condition (a sequence number that cannot be ordered, which DynamoDB Streams does not make).
/// A refusal is not an error: a further position is saved, or the shard is finished. (It can
/// also be the newer save that is refused, where an instance taken over saved a further
/// position late: the records up to that position were applied by it, since a shard is read
/// no further while a position is not saved, `writeback/shards.rs`.)
fn forward_only(position: &ShardPosition, order: Option<String>) -> Option<Condition> {
    if position.done {
        return None;
    }
    let not_done = (":not_done".to_string(), AttributeValue::Bool(false));
    match (order, &position.sequence) {
        (Some(order), _) => Some(Condition {
            expression: "attribute_not_exists(#done) OR (#done = :not_done AND (attribute_not_exists(#order) OR #order <= :order))",
            values: [not_done, (":order".to_string(), AttributeValue::S(order))].into(),
        }),
        // Before any record of the shard was handled.
        (None, None) => Some(Condition {
            expression: "attribute_not_exists(#done) OR (#done = :not_done AND attribute_not_exists(#order))",
            values: [not_done].into(),
        }),
        (None, Some(_)) => None,
    }
}

async fn write_file(path: &std::path::Path, all: &FileContents) -> Result<(), PositionError> {
    let bytes = serde_json::to_vec_pretty(all).expect("positions serialise");
    write_durably(path, bytes)
        .await
        .map_err(|source| PositionError::File {
            path: path.to_path_buf(),
            source,
        })
}

async fn query_partition(
    client: &Client,
    control: &str,
    partition: &str,
) -> Result<StreamPositions, PositionError> {
    let mut positions = StreamPositions::default();
    let pages =
        crate::dynamo::tables::query_partition(client, control, CONTROL_PK, partition, None)
            .await
            .map_err(PositionError::Dynamo)?;
    for item in pages.iter().flatten() {
        let Some(AttributeValue::S(sk)) = item.get(CONTROL_SK) else {
            continue;
        };
        if sk == FORGETTING_SK {
            positions.forgetting = true;
            continue;
        }
        if sk == START_SK {
            positions.started_ms = match item.get("started_ms") {
                Some(AttributeValue::N(n)) => n.parse().ok(),
                _ => None,
            };
            continue;
        }
        let sequence = match item.get("sequence") {
            Some(AttributeValue::S(s)) => Some(s.clone()),
            _ => None,
        };
        let done = matches!(item.get("done"), Some(AttributeValue::Bool(true)));
        let after_start = matches!(item.get(AFTER_START), Some(AttributeValue::Bool(true)));
        positions.shards.insert(
            sk.clone(),
            ShardPosition {
                sequence,
                done,
                after_start,
            },
        );
    }
    Ok(positions)
}

fn read_file(path: &PathBuf) -> Result<FileContents, PositionError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| PositionError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileContents::new()),
        Err(source) => Err(PositionError::File {
            path: path.clone(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_as_numbers() {
        let short = sequence_order("000000000000000000033").unwrap();
        let long = sequence_order("1000000000000000000000").unwrap();
        assert!(short < long, "{short} {long}");
        assert_eq!(long.len(), 40);
        assert_eq!(sequence_order(&"9".repeat(40)), Some("9".repeat(40)));
        for not_a_number in ["", "12a", &"1".repeat(41)] {
            assert_eq!(sequence_order(not_a_number), None, "{not_a_number}");
        }
    }

    #[test]
    fn only_a_finished_shard_or_an_unordered_sequence_is_saved_unguarded() {
        let at = |sequence: Option<&str>, done| ShardPosition {
            sequence: sequence.map(str::to_string),
            done,
            ..ShardPosition::default()
        };
        let guarded = |position: ShardPosition| {
            let order = position.sequence.as_deref().and_then(sequence_order);
            forward_only(&position, order).map(|c| c.expression)
        };
        assert_eq!(guarded(at(Some("000000000000000000026"), true)), None);
        assert_eq!(guarded(at(None, true)), None);
        assert_eq!(guarded(at(Some("not digits"), false)), None);
        let forward = guarded(at(Some("000000000000000000026"), false)).unwrap();
        assert!(forward.contains("#order <= :order"), "{forward}");
        let first = guarded(at(None, false)).unwrap();
        assert!(first.ends_with("attribute_not_exists(#order))"), "{first}");
        // A finished shard's item, also one saved without `order`, is never reopened.
        assert!(forward.starts_with("attribute_not_exists(#done) OR (#done = :not_done"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_tables_keep_their_positions_in_one_file() {
        let dir = std::env::temp_dir().join(format!("rowcast-positions-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = std::sync::Arc::new(PositionStore::file(dir.join("cp.writeback.json")));
        let mut tasks = Vec::new();
        for stream in ["first", "second", "third"] {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.save_start(stream, 7).await.unwrap();
                for i in 0..60u32 {
                    let position = ShardPosition {
                        sequence: Some(format!("{i:05}")),
                        after_start: i == 59,
                        ..ShardPosition::default()
                    };
                    store.save(stream, "shard-1", &position).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        for stream in ["first", "second", "third"] {
            let loaded = store.load(stream).await.unwrap();
            assert_eq!(loaded.started_ms, Some(7), "{stream}");
            assert_eq!(
                loaded
                    .shards
                    .get("shard-1")
                    .and_then(|p| p.sequence.clone()),
                Some("00059".to_string()),
                "{stream}"
            );
            assert!(loaded.shards["shard-1"].after_start, "{stream}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
