//! Write-back: DynamoDB Streams → SQL, without loops.
//!
//! One task per DynamoDB table that holds write-back views. It finds the table's stream and its
//! shards (DescribeStream, paginated), reads parent shards before their children (a child is
//! read once its parent is closed and read to its end, or gone from the stream), follows
//! closed shards and new ones (the stream is described again every few seconds and whenever a
//! shard ends), and keeps per shard the sequence number of the last record applied (see
//! `positions.rs`), saved after every batch — at-least-once, with idempotent statements.
//! An expired iterator is fetched again after the last sequence number
//! (`rowcast_writeback_iterator_refreshes_total`). Records trimmed away before they were read
//! (more than 24 h behind) are a definite error: logged, counted in
//! `rowcast_writeback_trimmed_total`, and reading goes on from the oldest record still there;
//! the application changes in between are lost for SQL — the documented recovery is
//! `rowcast snapshot --view` (the view follows SQL again).
//!
//! Each record goes through `inverse.rs` (whose change: rowcast's own writes, TTL removals and
//! rowcast's own removals are skipped) and `apply.rs` (parameterized SQL on a connection marked
//! with `skip_replication`). The row change then comes back through the binlog like any other
//! and is written with a new version, which this consumer recognises as rowcast's own: one
//! round trip, no ping-pong. A record that cannot be applied is a dead letter (with the stream
//! record) and the rest flows.

pub mod apply;
pub mod inverse;
pub mod positions;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, Record, ShardIteratorType};
use mysql_async::Pool;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use self::apply::{Applied, SqlWriter};
use self::inverse::{decide, key_columns, ChangeKind, Decision, Image, StreamChange};
use self::positions::{PositionStore, ShardPosition};
use crate::checkpoint::Position;
use crate::metrics::{metrics, now_millis};
use crate::pipeline::DeadLetter;
use crate::sink::deadletter::DeadLetterStore;
use crate::sink::dynamo::classify_sdk_error;
use crate::source::schema::SchemaCache;
use crate::view::spec::View;
use crate::view::value::Attr;
use crate::view::ItemKey;

/// How often the shard list is read again.
const DESCRIBE_EVERY: Duration = Duration::from_secs(10);

pub async fn streams_client(
    config: &crate::config::DynamoConfig,
) -> aws_sdk_dynamodbstreams::Client {
    let shared = crate::sink::dynamo::shared_config(config).await;
    aws_sdk_dynamodbstreams::Client::new(&shared)
}

/// The write-back consumer of one DynamoDB table.
pub struct Consumer {
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub pool: Pool,
    /// The table's write-back views.
    pub views: Vec<Arc<View>>,
    pub table: String,
    pub positions: Arc<PositionStore>,
    pub dead_letters: Arc<DeadLetterStore>,
    /// Pause between two reads when no shard had anything new.
    pub poll: Duration,
    /// Fill requests: after a rejection, the item is written again from its row.
    pub restore: tokio::sync::mpsc::Sender<crate::pipeline::FillRequest>,
}

struct ShardState {
    parent: Option<String>,
    iterator: Option<String>,
    position: ShardPosition,
}

impl Consumer {
    pub async fn run(self, cancel: CancellationToken) {
        let mut worker = Worker {
            schemas: SchemaCache::new(self.pool.clone()),
            sql: SqlWriter::new(self.pool.clone()),
            consumer: self,
        };
        worker.run(cancel).await;
    }
}

struct Worker {
    consumer: Consumer,
    schemas: SchemaCache,
    sql: SqlWriter,
}

async fn pause(cancel: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

impl Worker {
    async fn run(&mut self, cancel: CancellationToken) {
        let table = self.consumer.table.clone();
        let arn = loop {
            match self.stream_arn().await {
                Ok(Some(arn)) => break arn,
                Ok(None) => {
                    error!(%table, "write-back: the table has no stream; run `rowcast tables create` (streams NEW_AND_OLD_IMAGES)")
                }
                Err(error) => {
                    warn!(%table, %error, "write-back: cannot describe the table; retrying")
                }
            }
            if !pause(&cancel, Duration::from_secs(5)).await {
                return;
            }
        };
        let mut shards: BTreeMap<String, ShardState> = BTreeMap::new();
        let saved = loop {
            match self.consumer.positions.load(&table).await {
                Ok(saved) => break saved,
                Err(error) => {
                    warn!(%table, %error, "write-back: cannot load shard positions; retrying")
                }
            }
            if !pause(&cancel, Duration::from_secs(2)).await {
                return;
            }
        };
        info!(%table, stream = %arn, shards_saved = saved.len(), "write-back: following the stream");
        let mut described: Option<Instant> = None;
        while !cancel.is_cancelled() {
            if described.is_none_or(|at| at.elapsed() >= DESCRIBE_EVERY) {
                match self.describe(&arn).await {
                    Ok(list) => {
                        // Shards read to their end and gone from the stream are forgotten.
                        shards.retain(|id, state| {
                            !state.position.done || list.iter().any(|(listed, _)| listed == id)
                        });
                        for (id, parent) in list {
                            shards.entry(id.clone()).or_insert_with(|| ShardState {
                                parent,
                                iterator: None,
                                position: saved.get(&id).cloned().unwrap_or_default(),
                            });
                        }
                        metrics()
                            .writeback_shards
                            .with_label_values(&[&table])
                            .set(shards.len() as i64);
                        described = Some(Instant::now());
                    }
                    Err(error) => {
                        warn!(%table, %error, "write-back: cannot describe the stream; retrying");
                        if !pause(&cancel, Duration::from_secs(1)).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let mut busy = false;
            let ids: Vec<String> = shards.keys().cloned().collect();
            for id in ids {
                if cancel.is_cancelled() {
                    return;
                }
                let ready = {
                    let state = &shards[&id];
                    !state.position.done
                        && state
                            .parent
                            .as_ref()
                            .and_then(|p| shards.get(p))
                            .is_none_or(|parent| parent.position.done)
                };
                if !ready {
                    continue;
                }
                let state = shards.get_mut(&id).expect("listed above");
                match self.read_shard(&arn, &id, state, &cancel).await {
                    Ok(ShardRead { records, ended }) => {
                        busy |= records > 0;
                        if ended {
                            described = None;
                            busy = true;
                        }
                    }
                    Err(error) => {
                        warn!(%table, shard = %id, %error, "write-back: reading the shard failed; retrying");
                    }
                }
            }
            if !busy {
                metrics()
                    .writeback_lag
                    .with_label_values(&[&table])
                    .set(0.0);
                if !pause(&cancel, self.consumer.poll).await {
                    return;
                }
            }
        }
    }

    async fn stream_arn(&self) -> Result<Option<String>, String> {
        let out = self
            .consumer
            .dynamo
            .describe_table()
            .table_name(&self.consumer.table)
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e).to_string())?;
        Ok(out
            .table
            .and_then(|t| t.latest_stream_arn)
            .filter(|arn| !arn.is_empty()))
    }

    /// Every shard of the stream with its parent.
    async fn describe(&self, arn: &str) -> Result<Vec<(String, Option<String>)>, String> {
        let mut out = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let page = self
                .consumer
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| classify_sdk_error(&e).to_string())?;
            let Some(description) = page.stream_description else {
                break;
            };
            for shard in description.shards() {
                if let Some(id) = shard.shard_id() {
                    out.push((id.to_string(), shard.parent_shard_id().map(str::to_string)));
                }
            }
            match description.last_evaluated_shard_id {
                Some(last) if start.as_deref() != Some(last.as_str()) => start = Some(last),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn iterator(
        &self,
        arn: &str,
        shard: &str,
        position: &ShardPosition,
    ) -> Result<Option<String>, String> {
        let request = self
            .consumer
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard);
        let request = match &position.sequence {
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        match request.send().await {
            Ok(out) => Ok(out.shard_iterator),
            Err(error) => {
                let info = classify_sdk_error(&error);
                if info.code.as_deref() == Some("TrimmedDataAccessException") {
                    return Err("trimmed".into());
                }
                Err(info.to_string())
            }
        }
    }

    async fn read_shard(
        &mut self,
        arn: &str,
        shard: &str,
        state: &mut ShardState,
        cancel: &CancellationToken,
    ) -> Result<ShardRead, String> {
        let table = self.consumer.table.clone();
        if state.iterator.is_none() {
            match self.iterator(arn, shard, &state.position).await {
                Ok(Some(iterator)) => state.iterator = Some(iterator),
                Ok(None) => return self.finish(shard, state).await,
                Err(reason) if reason == "trimmed" => {
                    self.trimmed(shard, state);
                    return Ok(ShardRead {
                        records: 0,
                        ended: false,
                    });
                }
                Err(reason) => return Err(reason),
            }
        }
        let iterator = state.iterator.clone().expect("set above");
        let out = match self
            .consumer
            .streams
            .get_records()
            .shard_iterator(iterator)
            .limit(1000)
            .send()
            .await
        {
            Ok(out) => out,
            Err(error) => {
                state.iterator = None;
                match error.as_service_error() {
                    Some(GetRecordsError::ExpiredIteratorException(_)) => {
                        metrics()
                            .writeback_iterator_refreshes
                            .with_label_values(&[&table])
                            .inc();
                        debug!(%table, %shard, "write-back: iterator expired; fetched again after the last sequence number");
                        return Ok(ShardRead {
                            records: 0,
                            ended: false,
                        });
                    }
                    Some(GetRecordsError::TrimmedDataAccessException(_)) => {
                        self.trimmed(shard, state);
                        return Ok(ShardRead {
                            records: 0,
                            ended: false,
                        });
                    }
                    _ => return Err(classify_sdk_error(&error).to_string()),
                }
            }
        };
        let records = out.records();
        for record in records {
            // Transient SQL failures are retried here: the record is not skipped.
            let mut delay = Duration::from_millis(100);
            loop {
                match self.handle(record, shard).await {
                    Ok(()) => break,
                    Err(error) => {
                        warn!(%table, %shard, %error, "write-back: applying a record failed; retrying");
                        if !pause(cancel, delay).await {
                            return Ok(ShardRead {
                                records: 0,
                                ended: false,
                            });
                        }
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
            if let Some(sequence) = record.dynamodb().and_then(|d| d.sequence_number()) {
                state.position.sequence = Some(sequence.to_string());
            }
            if let Some(created) = record
                .dynamodb()
                .and_then(|d| d.approximate_creation_date_time())
            {
                let lag = now_millis() as f64 / 1000.0 - created.as_secs_f64();
                metrics()
                    .writeback_lag
                    .with_label_values(&[&table])
                    .set(lag.max(0.0));
            }
        }
        if !records.is_empty() {
            self.save(shard, &state.position).await;
        }
        match out.next_shard_iterator.clone() {
            Some(next) => {
                state.iterator = Some(next);
                Ok(ShardRead {
                    records: records.len(),
                    ended: false,
                })
            }
            None => {
                let mut read = self.finish(shard, state).await?;
                read.records = records.len();
                Ok(read)
            }
        }
    }

    async fn finish(&mut self, shard: &str, state: &mut ShardState) -> Result<ShardRead, String> {
        state.position.done = true;
        state.iterator = None;
        self.save(shard, &state.position).await;
        info!(table = %self.consumer.table, %shard, "write-back: shard closed and read to its end");
        Ok(ShardRead {
            records: 0,
            ended: true,
        })
    }

    fn trimmed(&self, shard: &str, state: &mut ShardState) {
        let table = &self.consumer.table;
        if state.position.sequence.is_none() {
            // Reading from the oldest record already: nothing can have been skipped. (DynamoDB
            // Local answers so when a new shard receives its first record.)
            debug!(%table, %shard, "write-back: trimmed while reading from the oldest record; reading again");
            state.iterator = None;
            return;
        }
        metrics()
            .writeback_trimmed
            .with_label_values(&[table])
            .inc();
        error!(%table, %shard, after = ?state.position.sequence, "write-back: stream records were trimmed before they were read (over 24 h behind); application changes in between never reached SQL. Reading goes on from the oldest record left; run `rowcast snapshot --view` for the table's write-back views so that they follow SQL again");
        state.position.sequence = None;
        state.iterator = None;
    }

    async fn save(&self, shard: &str, position: &ShardPosition) {
        let mut delay = Duration::from_millis(100);
        for _ in 0..8 {
            match self
                .consumer
                .positions
                .save(&self.consumer.table, shard, position)
                .await
            {
                Ok(()) => return,
                Err(error) => {
                    warn!(table = %self.consumer.table, %shard, %error, "write-back: saving the shard position failed; retrying")
                }
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        // Not saved: a restart reads these records again (they are idempotent).
    }

    /// One record; `Err` is transient (retry the record).
    async fn handle(&mut self, record: &Record, shard: &str) -> Result<(), String> {
        let Some(change) = stream_change(record) else {
            return Ok(());
        };
        let Some((view, columns)) = self
            .consumer
            .views
            .iter()
            .find_map(|v| key_columns(v, &change.keys).map(|c| (v.clone(), c)))
        else {
            count("(none)", "other-view");
            return Ok(());
        };
        let table = self
            .schemas
            .sql_table(&view.source)
            .await
            .map_err(|e| crate::error::chain(&e))?;
        let decision = decide(&view, &table.schema, &change);
        let outcome = match &decision {
            Decision::Own => "skipped-own",
            Decision::Ttl => "skipped-ttl",
            Decision::Unchanged => "unchanged",
            Decision::Reject(reason) => {
                self.reject(&view, &change, shard, reason).await;
                "rejected"
            }
            _ => {
                let key = item_key(&view, &change.keys);
                match self
                    .sql
                    .apply(&view, &table, &key, &columns, &decision)
                    .await
                    .map_err(|e| crate::error::chain(&e))?
                {
                    Applied::Done => "applied",
                    Applied::NotOurs => "skipped-own",
                    Applied::Refused(reason) => {
                        self.reject(&view, &change, shard, &reason).await;
                        "rejected"
                    }
                }
            }
        };
        debug!(view = %view.name, sequence = %change.sequence, kind = ?change.kind, key = %item_key(&view, &change.keys), ?decision, outcome, "write-back record");
        count(&view.name, outcome);
        Ok(())
    }

    async fn reject(&self, view: &View, change: &StreamChange, shard: &str, reason: &str) {
        warn!(view = %view.name, sequence = %change.sequence, %reason, "write-back: record rejected (dead letter)");
        let record = serde_json::json!({
            "sequence": change.sequence,
            "event": format!("{:?}", change.kind),
            "keys": image_json(&change.keys),
            "old": change.old.as_ref().map(image_json),
            "new": change.new.as_ref().map(image_json),
        });
        let letter = DeadLetter {
            view: view.name.clone(),
            key: Some(item_key(view, &change.keys).to_string()),
            reason: reason.to_string(),
            reason_kind: "writeback_rejected",
            position: Position {
                file: format!("stream:{}:{shard}", self.consumer.table),
                pos: 0,
                gtid: None,
            },
            seq: 0,
            at_ms: now_millis(),
            record: Some(record),
        };
        metrics()
            .dead_letters
            .with_label_values(&[&view.name, letter.reason_kind])
            .inc();
        if let Err(error) = self.consumer.dead_letters.record(&letter).await {
            error!(view = %view.name, error = %crate::error::chain(&error), "write-back: cannot store a dead letter");
        }
        self.restore(view, change).await;
    }

    /// After a rejection the item is made to follow SQL again: written again from its row
    /// (merged into the binlog stream like a fill on miss), or, when no row makes it and the
    /// item is still the application's own (no version), deleted — conditionally, so that an
    /// item rowcast wrote meanwhile stays.
    async fn restore(&self, view: &View, change: &StreamChange) {
        let Some(columns) = key_columns(view, &change.keys) else {
            return;
        };
        let key = item_key(view, &change.keys);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = crate::pipeline::FillRequest {
            view: view.name.clone(),
            columns,
            key: key.clone(),
            reply,
        };
        if self.consumer.restore.send(request).await.is_err() {
            return;
        }
        let made = matches!(answer.await, Ok(Ok(true)));
        if made || change.kind == ChangeKind::Remove {
            return;
        }
        let mut request = self
            .consumer
            .dynamo
            .delete_item()
            .table_name(&view.table)
            .key(
                &key.pk_attribute,
                aws_sdk_dynamodb::types::AttributeValue::S(key.pk.clone()),
            )
            .condition_expression("attribute_not_exists(#v)")
            .expression_attribute_names("#v", crate::sink::dynamo::VERSION_ATTRIBUTE);
        if let (Some(name), Some(sk)) = (&key.sk_attribute, &key.sk) {
            request = request.key(name, aws_sdk_dynamodb::types::AttributeValue::S(sk.clone()));
        }
        if let Err(error) = request.send().await {
            debug!(view = %view.name, error = %classify_sdk_error(&error), "write-back: the rejected item was not deleted (rowcast wrote it meanwhile, or DynamoDB refused)");
        }
    }
}

struct ShardRead {
    records: usize,
    ended: bool,
}

fn count(view: &str, outcome: &str) {
    metrics()
        .writeback_records
        .with_label_values(&[view, outcome])
        .inc();
}

fn image_json(image: &Image) -> serde_json::Value {
    serde_json::Value::Object(
        image
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
    )
}

fn item_key(view: &View, keys: &Image) -> ItemKey {
    let text = |name: &str| match keys.get(name) {
        Some(Attr::S(s)) => s.clone(),
        _ => String::new(),
    };
    ItemKey {
        table: view.table.clone(),
        pk_attribute: view.key.pk_attribute.clone(),
        pk: text(&view.key.pk_attribute),
        sk_attribute: view.key.sk_attribute.clone(),
        sk: view.key.sk_attribute.as_deref().map(text),
    }
}

/// A stream attribute value in rowcast's terms (number and binary sets as lists).
fn attr(value: &AttributeValue) -> Attr {
    match value {
        AttributeValue::S(s) => Attr::S(s.clone()),
        AttributeValue::N(n) => Attr::N(n.clone()),
        AttributeValue::B(b) => Attr::B(b.as_ref().to_vec()),
        AttributeValue::Ss(items) => Attr::Ss(items.clone()),
        AttributeValue::Ns(items) => Attr::L(items.iter().cloned().map(Attr::N).collect()),
        AttributeValue::Bs(items) => {
            Attr::L(items.iter().map(|b| Attr::B(b.as_ref().to_vec())).collect())
        }
        AttributeValue::M(map) => Attr::M(map.iter().map(|(k, v)| (k.clone(), attr(v))).collect()),
        AttributeValue::L(items) => Attr::L(items.iter().map(attr).collect()),
        AttributeValue::Bool(b) => Attr::Bool(*b),
        _ => Attr::Null,
    }
}

fn image(map: Option<&HashMap<String, AttributeValue>>) -> Option<Image> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), attr(v))).collect())
}

/// A record as a [`StreamChange`]; `None` for an event type rowcast does not know.
pub fn stream_change(record: &Record) -> Option<StreamChange> {
    let kind = match record.event_name()? {
        OperationType::Insert => ChangeKind::Insert,
        OperationType::Modify => ChangeKind::Modify,
        OperationType::Remove => ChangeKind::Remove,
        _ => return None,
    };
    let data = record.dynamodb()?;
    let ttl = record.user_identity().is_some_and(|identity| {
        identity.r#type() == Some("Service")
            && identity.principal_id() == Some("dynamodb.amazonaws.com")
    });
    Some(StreamChange {
        kind,
        keys: image(data.keys()).unwrap_or_default(),
        old: image(data.old_image()),
        new: image(data.new_image()),
        ttl,
        sequence: data.sequence_number().unwrap_or_default().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodbstreams::types::{Identity, StreamRecord};

    use super::*;

    #[test]
    fn ttl_removals_are_recognised() {
        let record = |principal: Option<&str>| {
            let mut builder = Record::builder()
                .event_name(OperationType::Remove)
                .dynamodb(
                    StreamRecord::builder()
                        .keys("pk", AttributeValue::S("ACC#1".into()))
                        .old_image("pk", AttributeValue::S("ACC#1".into()))
                        .sequence_number("42")
                        .build(),
                );
            if let Some(principal) = principal {
                builder = builder.user_identity(
                    Identity::builder()
                        .r#type("Service")
                        .principal_id(principal)
                        .build(),
                );
            }
            builder.build()
        };
        let ttl = stream_change(&record(Some("dynamodb.amazonaws.com"))).unwrap();
        assert!(ttl.ttl);
        assert_eq!(ttl.kind, ChangeKind::Remove);
        assert_eq!(ttl.sequence, "42");
        assert!(!stream_change(&record(None)).unwrap().ttl);
        assert!(!stream_change(&record(Some("someone.else"))).unwrap().ttl);
    }
}
