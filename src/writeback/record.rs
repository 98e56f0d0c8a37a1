//! One stream record, from its arrival to its outcome: which view made the item, whose change
//! it is (`inverse.rs`), the SQL statement (`apply.rs`), and what happens when SQL refuses.
//!
//! A record ends applied, skipped or rejected — it never blocks the table:
//! - SQL unreachable, or taking no writes (`read_only` during a switchover): the record waits
//!   for the server (retried with backoff, without end: the change must not be lost, and no
//!   other record could be applied either);
//! - a failure a retry may fix (lock wait timeout, deadlock, lost connection, …): retried for
//!   at most [`RETRY_PATIENCE`] from the record's first such failure, then rejected;
//! - anything else SQL refuses, a value that does not convert, or a panic while handling it:
//!   rejected at once.
//!
//! `rowcast_writeback_retrying_seconds` shows how long the record in hand has been retried.
//!
//! A rejection is a dead letter holding the stream record (stored before anything else
//! happens, retried until the store takes it), and the item is made to follow SQL again:
//! rewritten from its row (merged into the binlog stream like a fill on miss), or, when no row
//! makes it and the item is still the one rejected (no version, same attributes), removed.
//!
//! Schema changes: a rejection may come from a schema read before a DDL (a widened ENUM, a
//! dropped column, even one the view does not use, which breaks the cached column list): the
//! table's schema is then read again and the record tried once more with it.
//!
//! Keys: an item belongs to the view whose templates parse its key into values of the key
//! columns' types; any other item of the table is not write-back's (`other-view`).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::apply::{Applied, SqlError, SqlWriter, Target, NO_ROW};
use super::inverse::{
    decide, key_columns, longer_reading, typed_readings, ChangeKind, Decision, Image, StreamChange,
};
use super::stream::image_json;
use super::Consumer;
use crate::dynamo::{remove_marked, RemovalGuard, VERSION_ATTRIBUTE};
use crate::error::pause;
use crate::metrics::metrics;
use crate::pipeline::Position;
use crate::pipeline::{DeadLetter, FillRequest};
use crate::sql::SqlError as ReadError;
use crate::sql::{SqlTable, TableCache};
use crate::util::now_millis;
use crate::view::spec::View;
use crate::view::value::Attr;
use crate::view::ItemKey;

/// How long one record whose statement fails in a way a retry may fix is retried before it is
/// rejected into the dead letters (and its item put back to SQL's state). A row or table the
/// application holds locked (a batch job, a copying ALTER), a full disk, too many connections:
/// causes that pass, for which a rejection would undo the application's change in DynamoDB.
/// The table's later records wait behind it meanwhile (one handler serves every shard of its
/// stream), so it is bounded: a failure that does not pass (a statement always over its time
/// limit) holds them this long, measured over the spell of such failures, not per record. The
/// `RowcastWritebackStuck` alert fires after 5 minutes of it (`retrying_seconds` over 300).
/// Before 2026-12-06's eighth stop the bound was 5 tries, about 30 s of a held row lock
/// (`tests/writeback_safety.rs`, seen failing).
pub const RETRY_PATIENCE: Duration = Duration::from_secs(15 * 60);
/// Tries of one record once a spell of such failures has lasted [`RETRY_PATIENCE`]: a cause
/// that does not pass then lets records through to the dead letters at the pace it did before
/// 2026-12-06's eighth stop (5 tries each), not one per [`RETRY_PATIENCE`], before the stream's
/// 24 h trim could lose them.
const TRIES_AFTER_PATIENCE: u32 = 5;
/// A failure a retry may fix this long after the last one begins a new spell.
const SPELL_GAP: Duration = Duration::from_secs(60);
/// How long records wait for a server that takes no writes (`read_only`) before they are
/// rejected into the dead letters: a switchover takes minutes; a server that stays read-only
/// (write-back pointed at a replica) would otherwise hold every record until DynamoDB Streams
/// trims them after 24 hours, and the changes would be lost. Counted from the start of the
/// spell, which any record's outcome ends: after it, each record is rejected at once.
const READ_ONLY_PATIENCE: Duration = Duration::from_secs(3600);
/// How long a restore (the rejected item read again from SQL and written) goes before it is
/// told slow in the log.
const RESTORE_SLOW: Duration = Duration::from_secs(30);
/// How long a restore is waited for at most (the shard's later records wait behind it).
const RESTORE_LIMIT: Duration = Duration::from_secs(300);
/// How long a consumer whose restore went unanswered waits to be told to stop.
const STOP_NOTICE: Duration = Duration::from_secs(5);
/// How long a record whose statement a foreign key refuses waits for the record that makes it
/// right (its parent's insert, its children's deletes: in another shard of the stream or in
/// another table's) before it is rejected. Its shard is read no further meanwhile (the item's
/// later records wait behind it); the stream's other shards and the other tables go on.
/// A minute: the record it waits for is usually read within a poll interval or two; where no
/// such record comes (the row it needs comes later in the same shard, a self-reference, an
/// application writing orphans), each such record holds its shard this long before it is
/// rejected as it was before the wait.
pub const FOREIGN_KEY_PATIENCE: Duration = Duration::from_secs(60);
/// Tries of the removal of a rejected new item.
const REMOVAL_TRIES: u32 = 5;

/// A spell of failures a retry may fix (its start, its last failure) with one more at `now`: a
/// new spell when the last was [`SPELL_GAP`] ago or more.
fn extended_spell(spell: Option<(Instant, Instant)>, now: Instant) -> (Instant, Instant) {
    match spell {
        Some((start, last)) if now.saturating_duration_since(last) < SPELL_GAP => (start, now),
        _ => (now, now),
    }
}

/// How long the spell has lasted, when a record with `tries` such failures is to be rejected at
/// `now`: the spell is [`RETRY_PATIENCE`] old and the record has had its
/// [`TRIES_AFTER_PATIENCE`].
fn retry_exhausted(
    spell: Option<(Instant, Instant)>,
    tries: u32,
    now: Instant,
) -> Option<Duration> {
    let (start, _) = spell?;
    let lasted = now.saturating_duration_since(start);
    (lasted >= RETRY_PATIENCE && tries >= TRIES_AFTER_PATIENCE).then_some(lasted)
}

/// A view and the key columns parsed from an item's key through its templates.
type ViewKey = (Arc<View>, Vec<(String, String)>);

/// How a record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Applied, skipped or rejected; `changed_sql` when a statement was committed.
    Done {
        changed_sql: bool,
    },
    Cancelled,
    /// A foreign key refused its statement ([`SqlError::ForeignKey`]): the shard waits and
    /// hands the record in again, with the time it began to wait, after its other shards.
    Waiting,
}

/// How one try ended.
enum Tried {
    Outcome(String, &'static str),
    Failed(SqlError),
}

pub struct Handler {
    consumer: Arc<Consumer>,
    tables: TableCache,
    sql: SqlWriter,
    /// A restore of the record being handled got no answer (the pipeline it was sent to
    /// drained and dropped it): see [`Handler::process`].
    restore_unanswered: std::sync::atomic::AtomicBool,
    /// The consumer's stop: a restore waited for gives up then.
    cancel: CancellationToken,
    /// Since when the server has taken no writes (`read_only`), while it has not since.
    read_only_since: Option<Instant>,
    /// Since when statements have failed in ways a retry may fix, and when one last did;
    /// ended by a statement applied (a rejection or a skip proves nothing of SQL).
    retry_spell: Option<(Instant, Instant)>,
    /// The count of DDL statements (`Consumer::ddl`) when the schemas were last forgotten.
    ddl_seen: u64,
    /// When each table's schema was last read again because a key fitted none of its types
    /// (see [`Handler::read_again_for_key`]).
    key_rereads: HashMap<crate::view::spec::TableRef, Instant>,
}

impl Handler {
    pub fn new(consumer: Arc<Consumer>, cancel: CancellationToken) -> Self {
        Handler {
            cancel,
            tables: TableCache::new(consumer.pool.clone()),
            sql: SqlWriter::new(consumer.pool.clone(), consumer.skip_replication),
            consumer,
            restore_unanswered: std::sync::atomic::AtomicBool::new(false),
            read_only_since: None,
            retry_spell: None,
            ddl_seen: 0,
            key_rereads: HashMap::new(),
        }
    }

    /// Handles `change` until it is applied, skipped or rejected, or until a foreign key
    /// refuses it ([`Handled::Waiting`]; `waiting_since`: when it first did, if it did).
    pub async fn process(
        &mut self,
        change: &StreamChange,
        shard: &str,
        cancel: &CancellationToken,
        waiting_since: Option<Instant>,
    ) -> Handled {
        self.forget_schemas_after_ddl();
        let table = self.consumer.table.clone();
        let retrying = metrics().writeback_retrying.with_label_values(&[&table]);
        let mut backoff = self.consumer.retry.backoff();
        let since = Instant::now();
        let mut tries = 0;
        loop {
            (self.restore_unanswered).store(false, std::sync::atomic::Ordering::Relaxed);
            let tried = AssertUnwindSafe(self.try_once(change, shard))
                .catch_unwind()
                .await;
            let failure = match tried {
                // A restore the draining pipeline dropped: the record is not done (its position
                // is not saved past it), and the next start handles it again — nothing was
                // applied to SQL on the paths that restore.
                Ok(Tried::Outcome(..)) if self.restore_dropped(cancel).await => {
                    retrying.set(0.0);
                    return Handled::Cancelled;
                }
                Ok(Tried::Outcome(view, outcome)) => {
                    retrying.set(0.0);
                    self.read_only_since = None;
                    if outcome == "applied" {
                        self.retry_spell = None;
                    }
                    count(&view, outcome);
                    return Handled::Done {
                        changed_sql: outcome == "applied",
                    };
                }
                Ok(Tried::Failed(failure)) => failure,
                Err(panic) => {
                    retrying.set(0.0);
                    let reason = format!("handling the record panicked: {}", panic_text(&panic));
                    let view = self.reject_by_key(change, shard, &reason).await;
                    count(&view, "rejected");
                    return Handled::Done { changed_sql: false };
                }
            };
            let reason = match &failure {
                SqlError::ForeignKey(_) => {
                    return self
                        .foreign_key(change, shard, &failure, (waiting_since, cancel))
                        .await;
                }
                SqlError::Unreachable(_) => "unreachable",
                SqlError::ReadOnly(_) => "read_only",
                SqlError::Retry(_) => {
                    tries += 1;
                    self.retry_spell = Some(extended_spell(self.retry_spell, Instant::now()));
                    "retry"
                }
                SqlError::LeaseLapsed => "lease",
            };
            let error = crate::error::chain(&failure);
            if let Some(reason) = self.given_up(&failure, tries, &error) {
                retrying.set(0.0);
                let view = self.reject_by_key(change, shard, &reason).await;
                count(&view, "rejected");
                return Handled::Done { changed_sql: false };
            }
            metrics()
                .writeback_retries
                .with_label_values(&[&table, reason])
                .inc();
            retrying.set(since.elapsed().as_secs_f64());
            warn!(%table, sequence = %change.sequence, %error, tries, "write-back: applying a record failed; retrying");
            if !pause(cancel, backoff.next().unwrap_or(self.consumer.retry.max)).await {
                return Handled::Cancelled;
            }
        }
    }

    /// Forgets the schemas read when the binlog reader has read a DDL statement since: a key
    /// column's new type (a widened ENUM, a longer VARCHAR) may be what tells an item's key
    /// for the view's (before 2026-12-07 the schema was read again only after a refusal, and
    /// such a change was skipped as no view's).
    fn forget_schemas_after_ddl(&mut self) {
        let ddl = self.consumer.ddl.load(std::sync::atomic::Ordering::Relaxed);
        if ddl != self.ddl_seen {
            self.ddl_seen = ddl;
            self.tables.clear();
            self.sql.forget_all();
        }
    }

    /// Whether to read `table`'s schema again for a key that fits none of its types: an
    /// application's new item may hold a label an `ALTER` just gave a key column, before the
    /// binlog reader has passed the `ALTER` on (the DDL count has not moved). Once a second per
    /// table at most: an application's own items beside a view's (`ACC#1#SETTINGS` next to
    /// `ACC#{id}`) never fit. Before 2026-12-07 such an item was skipped as no view's (found by
    /// the review of the DDL count; `tests/writeback_safety.rs`, seen failing).
    fn read_again_for_key(&mut self, table: &crate::view::spec::TableRef) -> bool {
        let now = Instant::now();
        let due = (self.key_rereads.get(table))
            .is_none_or(|at| now.duration_since(*at) >= Duration::from_secs(1));
        if due {
            self.key_rereads.insert(table.clone(), now);
        }
        due
    }

    /// A record a foreign key refused: [`Handled::Waiting`] until it has waited
    /// [`FOREIGN_KEY_PATIENCE`] (shown as a record retried), then rejected.
    async fn foreign_key(
        &mut self,
        change: &StreamChange,
        shard: &str,
        failure: &SqlError,
        (waiting_since, cancel): (Option<Instant>, &CancellationToken),
    ) -> Handled {
        let table = &self.consumer.table;
        let retrying = metrics().writeback_retrying.with_label_values(&[table]);
        let waited = waiting_since.map(|since| since.elapsed());
        let error = crate::error::chain(failure);
        let patience = if crate::util::failpoint::fails("writeback.foreign_key_patience") {
            Duration::from_secs(2)
        } else {
            FOREIGN_KEY_PATIENCE
        };
        if waited.is_none_or(|waited| waited < patience) {
            metrics()
                .writeback_retries
                .with_label_values(&[table, "foreign_key"])
                .inc();
            retrying.set(waited.unwrap_or_default().as_secs_f64());
            if waited.is_none() {
                warn!(%table, sequence = %change.sequence, %error, "write-back: a foreign key refuses the record; its shard waits for the record that makes it right (the other shards go on)");
            }
            return Handled::Waiting;
        }
        retrying.set(0.0);
        let secs = waited.unwrap_or_default().as_secs();
        let reason = format!("a foreign key still refused it after {secs} s: {error}");
        let view = self.reject_by_key(change, shard, &reason).await;
        // As for any outcome: a restore the draining pipeline dropped leaves the record to
        // the next start.
        if self.restore_dropped(cancel).await {
            return Handled::Cancelled;
        }
        count(&view, "rejected");
        Handled::Done { changed_sql: false }
    }

    /// Why a record that failed so (`tries` failures a retry may fix so far) is rejected now, if
    /// it is: such failures in a spell of [`RETRY_PATIENCE`] (and [`TRIES_AFTER_PATIENCE`] of
    /// this record's), or a server that has taken no writes for [`READ_ONLY_PATIENCE`]. A
    /// server away, or this instance's lease lapsed, never rejects a record (the review of
    /// this change found its first version rejecting a record that had met a lost connection
    /// once and then waited 15 minutes for a server away).
    fn given_up(&mut self, failure: &SqlError, tries: u32, error: &str) -> Option<String> {
        if let SqlError::ReadOnly(_) = failure {
            let spell = (self.read_only_since)
                .get_or_insert_with(Instant::now)
                .elapsed();
            if spell >= READ_ONLY_PATIENCE {
                let secs = spell.as_secs();
                return Some(format!(
                    "the server has taken no writes for {secs} s: {error}"
                ));
            }
        }
        if !matches!(failure, SqlError::Retry(_)) {
            return None;
        }
        let spell = retry_exhausted(self.retry_spell, tries, Instant::now())?;
        let secs = spell.as_secs();
        Some(format!(
            "still failing after {tries} tries, in a spell of {secs} s of such failures: {error}"
        ))
    }

    /// Whether a restore of the record just handled went unanswered or unwritten while the
    /// consumer stops. The pipeline it went to ended (a drain, a failure): the consumers of its
    /// generation are stopped with it, told a moment later at most.
    async fn restore_dropped(&self, cancel: &CancellationToken) -> bool {
        let unanswered = self
            .restore_unanswered
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        unanswered
            && tokio::time::timeout(STOP_NOTICE, cancel.cancelled())
                .await
                .is_ok()
    }

    /// Counts a record that was written before write-back first started on its stream.
    pub fn skip_before_start(&self, change: &StreamChange) {
        let view = self.view_of(change);
        count(
            view.as_ref().map_or("(none)", |(v, _)| v.name.as_str()),
            "skipped-before-start",
        );
    }

    async fn try_once(&mut self, change: &StreamChange, shard: &str) -> Tried {
        let Some((view, columns)) = self.view_of(change) else {
            return Tried::Outcome("(none)".into(), "other-view");
        };
        let name = view.name.clone();
        let mut fresh_schema = false;
        let outcome = loop {
            let table = match self.table(&view).await {
                Ok(table) => table,
                Err(Ok(reason)) => break Err(reason),
                Err(Err(failure)) => return Tried::Failed(failure),
            };
            let readings = typed_readings(&view, &table.schema, &change.keys, columns.clone());
            if readings.is_empty() {
                if !fresh_schema && self.read_again_for_key(&view.source) {
                    self.tables.forget(&view.source);
                    self.sql.forget(&table);
                    fresh_schema = true;
                    continue;
                }
                return Tried::Outcome(name, "other-view");
            }
            let readings = match self.row_first(&view, &table, change, readings).await {
                Ok(readings) => readings,
                Err(failure) => return Tried::Failed(failure),
            };
            // The row behind an updated or deleted item under whichever reading of its key
            // finds it (a text key value may hold the template's separator).
            let mut result = Err(Ok(String::new()));
            for columns in &readings {
                result = self.decide_and_apply(&view, &table, columns, change).await;
                if !matches!(&result, Err(Ok(reason)) if reason == NO_ROW) {
                    break;
                }
            }
            match result {
                Ok(outcome) => break Ok(outcome),
                Err(Err(failure)) => return Tried::Failed(failure),
                // Perhaps refused for a schema read before a DDL: read the table again, once.
                Err(Ok(reason)) if fresh_schema => break Err(reason),
                Err(Ok(_)) => {
                    self.tables.forget(&view.source);
                    self.sql.forget(&table);
                    fresh_schema = true;
                }
            }
        };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(reason) => {
                self.note_rejected(&view, change, &reason);
                self.reject(&view, change, shard, &reason).await;
                "rejected"
            }
        };
        debug!(view = %name, sequence = %change.sequence, kind = ?change.kind, outcome, "write-back record");
        Tried::Outcome(name, outcome)
    }

    /// The record's decision carried out. `Err(Ok(reason))`: rejected; `Err(Err(_))`: try
    /// again.
    /// `readings` with the first one that has the row behind the item in front, when there is
    /// more than one: a new item's insert goes under its first reading (and is refused over an
    /// existing row), and an update of an item rowcast never wrote is an insert or an update of
    /// the row under it, so `T#acme#eu#bob` of the row (`acme#eu`, `bob`) inserted a second row
    /// (`acme`, `eu#bob`) when the item was missing (a lazy view) or unversioned. Found by a
    /// review, 2026-12-06's seventh stop (`tests/writeback_safety.rs`, seen failing).
    async fn row_first(
        &mut self,
        view: &View,
        table: &SqlTable,
        change: &StreamChange,
        mut readings: Vec<Vec<(String, String)>>,
    ) -> Result<Vec<Vec<(String, String)>>, SqlError> {
        if readings.len() < 2 {
            return Ok(readings);
        }
        let key = item_key(view, &change.keys);
        for at in 0..readings.len() {
            let target = Target {
                view,
                table,
                key: &key,
                key_columns: &readings[at],
                lease: &self.consumer.lease,
            };
            if self.sql.makes_item(&target).await? {
                let found = readings.remove(at);
                readings.insert(0, found);
                break;
            }
        }
        Ok(readings)
    }

    async fn decide_and_apply(
        &mut self,
        view: &View,
        table: &SqlTable,
        columns: &[(String, String)],
        change: &StreamChange,
    ) -> Result<&'static str, Result<String, SqlError>> {
        let decision = decide(view, &table.schema, change);
        debug!(view = %view.name, sequence = %change.sequence, ?decision, "write-back decision");
        match &decision {
            Decision::Own => Ok("skipped-own"),
            Decision::Ttl => Ok("skipped-ttl"),
            Decision::Unchanged => Ok(self.unchanged(view, change).await),
            Decision::Reject(reason) => Err(Ok(reason.clone())),
            Decision::Insert { .. } | Decision::Update { .. } | Decision::Delete { .. } => {
                let key = item_key(view, &change.keys);
                let target = Target {
                    view,
                    table,
                    key: &key,
                    key_columns: columns,
                    lease: &self.consumer.lease,
                };
                crate::util::failpoint::delay("writeback.before_apply").await;
                match self.sql.apply(&target, &decision).await {
                    Ok(Applied::Done) => Ok("applied"),
                    Ok(Applied::AlreadyDone) => Ok(self.unchanged(view, change).await),
                    Ok(Applied::NoChange) => {
                        // No binlog event follows: make the item show what SQL holds.
                        self.restore(view, change, None).await;
                        Ok("unchanged")
                    }
                    Ok(Applied::Refused(reason)) => Err(Ok(reason)),
                    Err(failure) => Err(Err(failure)),
                }
            }
        }
    }

    /// A record SQL has nothing to echo for: the item is read again from SQL when the
    /// application's put dropped its version ([`dropped_version`]).
    async fn unchanged(&self, view: &View, change: &StreamChange) -> &'static str {
        if dropped_version(change) {
            self.restore(view, change, None).await;
        }
        "unchanged"
    }

    /// The write-back view whose templates parse the item's key, with the key columns.
    fn view_of(&self, change: &StreamChange) -> Option<ViewKey> {
        let views = &self.consumer.views;
        (views.iter())
            .find_map(|v| key_columns(v, &change.keys).map(|c| (v.clone(), c)))
            .or_else(|| {
                // Only for an item that names the view (rowcast wrote it): a longer reading
                // also parses keys of the application's own items (`ORD#eu#AUDIT#00000001`
                // under `ORD#{region}#{id:08}`), whose changes must never reach SQL (a review
                // of the change that added it).
                (views.iter())
                    .filter(|v| names_view(change, v))
                    .find_map(|v| longer_reading(v, &change.keys).map(|c| (v.clone(), c)))
            })
    }

    /// The view's source table as SQL reads it. `Err(Ok(reason))`: it cannot be read (gone,
    /// no privilege); `Err(Err(_))`: try again.
    async fn table(&mut self, view: &View) -> Result<Arc<SqlTable>, Result<String, SqlError>> {
        match self.tables.get(&view.source).await {
            Ok(table) => Ok(table),
            Err(ReadError::Query(error)) | Err(ReadError::Connect(error)) => {
                if !matches!(error, mysql_async::Error::Server(_)) {
                    return Err(Err(SqlError::Unreachable(error)));
                }
                Err(super::apply::sort(error).map(|reason| format!("reading the table: {reason}")))
            }
            Err(other) => Err(Ok(crate::error::chain(&other))),
        }
    }

    /// Rejects a record that kept failing, through the view its key parses with.
    async fn reject_by_key(&self, change: &StreamChange, shard: &str, reason: &str) -> String {
        let Some((view, _)) = self.view_of(change) else {
            return "(none)".into();
        };
        self.reject(&view, change, shard, reason).await;
        view.name.clone()
    }

    /// Notes an application's change rejected by the inverse mapping or refused by SQL (see
    /// `seen::Rejected`). Not one whose row was gone: SQL deleted the row the application saw,
    /// and a row inserted since under its key is not it. Nor one rejected after its retries
    /// ran out (`reject_by_key`): its statement may have been committed.
    fn note_rejected(&mut self, view: &View, change: &StreamChange, reason: &str) {
        if let (ChangeKind::Modify, Some(old), Some(new), false) =
            (change.kind, &change.old, &change.new, reason == NO_ROW)
        {
            let key = item_key(view, &change.keys);
            self.sql.note_rejected(view, &key, old, new);
        }
    }

    async fn reject(&self, view: &View, change: &StreamChange, shard: &str, reason: &str) {
        warn!(view = %view.name, sequence = %change.sequence, %reason, "write-back: record rejected (dead letter)");
        let letter = DeadLetter {
            view: view.name.clone(),
            key: Some(item_key(view, &change.keys).to_string()),
            // Not replayed: the record is the application's change, kept whole below.
            pk: None,
            sk: None,
            reason: reason.to_string(),
            reason_kind: "writeback_rejected",
            position: Position {
                file: format!("stream:{}:{shard}:{}", self.consumer.table, change.sequence),
                pos: 0,
                gtid: None,
            },
            seq: 0,
            at_ms: now_millis(),
            record: Some(serde_json::json!({
                "sequence": change.sequence,
                "event": format!("{:?}", change.kind),
                "keys": image_json(&change.keys),
                "old": change.old.as_ref().map(image_json),
                "new": change.new.as_ref().map(image_json),
            })),
        };
        metrics()
            .dead_letters
            .with_label_values(&[&view.name, letter.reason_kind])
            .inc();
        // The application's change survives only here: kept before the item is restored.
        self.consumer
            .dead_letters
            .keep(&letter, &self.consumer.retry)
            .await;
        self.restore(view, change, change.new.as_ref()).await;
    }

    /// The item of `key` written again from its row (see [`Handler::restore`]): whether a row
    /// makes it; `None` when given up, or unanswered (`restore_unanswered` says which).
    async fn rewrite(&self, view: &View, key: &ItemKey) -> Option<bool> {
        // Answered once merged; done once written too. The record's position is saved after
        // this returns, so a restore merged but not written when rowcast is killed would be
        // lost with it: the record is kept unhandled instead (read again at the next start).
        // A read that fails is asked again; the whole is waited for 5 minutes at most (a
        // pipeline far behind, or held on another table, would hold this shard's records
        // for as long), and given up then with an error: the item may keep the rejected value.
        let deadline = tokio::time::Instant::now() + RESTORE_LIMIT;
        let mut slow = Box::pin(tokio::time::sleep(RESTORE_SLOW));
        loop {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let written = crate::pipeline::WrittenAt::default();
            let request = FillRequest {
                repair: false,
                view: view.name.clone(),
                key: key.clone(),
                reply,
                restore: Some(written.clone()),
            };
            let asked = async {
                self.consumer.restore.send(request).await.ok()?;
                match answer.await.ok()? {
                    Ok(true) if !written.written().await => None,
                    answer => Some(answer),
                }
            };
            tokio::pin!(asked);
            let asked = loop {
                tokio::select! {
                    asked = &mut asked => break Some(asked),
                    _ = self.cancel.cancelled() => break Some(None),
                    () = &mut slow => {
                        warn!(view = %view.name, key = %key, "write-back: the item is not read again from SQL and written yet after 30 s; the table's records wait for it (5 minutes at most)");
                        slow.as_mut().reset(deadline + RESTORE_LIMIT);
                    }
                    () = tokio::time::sleep_until(deadline) => break None,
                }
            };
            match asked {
                Some(Some(Ok(made))) => return Some(made),
                Some(Some(Err(reason))) => {
                    warn!(view = %view.name, %reason, "write-back: the item could not be read again from SQL; asking again");
                    if !pause(&self.cancel, Duration::from_secs(1)).await {
                        self.restore_unanswered
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        return None;
                    }
                }
                Some(None) => {
                    self.restore_unanswered
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    return None;
                }
                None => {
                    error!(view = %view.name, key = %key, "write-back: the item was not read again from SQL and written within 5 minutes (given up): it may keep the application's rejected value until its row changes or `rowcast snapshot --view`");
                    return None;
                }
            }
        }
    }

    /// Makes the item follow SQL again: written again from its row (merged into the binlog
    /// stream like a fill on miss), or, when no row makes it, removed if it is still
    /// `rejected` (the application's item as the record has it, never written by rowcast).
    async fn restore(&self, view: &View, change: &StreamChange, rejected: Option<&Image>) {
        if key_columns(view, &change.keys)
            .or_else(|| longer_reading(view, &change.keys))
            .is_none()
        {
            return;
        }
        let key = item_key(view, &change.keys);
        let Some(made) = self.rewrite(view, &key).await else {
            return;
        };
        let Some(rejected) = rejected else {
            return;
        };
        if made || change.kind == ChangeKind::Remove {
            return;
        }
        let mut backoff = self.consumer.retry.backoff();
        for _ in 0..REMOVAL_TRIES {
            let guard = RemovalGuard::Rejected(rejected);
            match remove_marked(&self.consumer.dynamo, &key, guard).await {
                Ok(_) => return,
                Err(info) if info.class == crate::error::ErrorClass::Definite => {
                    warn!(view = %view.name, key = %key, error = %info, "write-back: the rejected item could not be removed");
                    return;
                }
                Err(info) => {
                    debug!(view = %view.name, error = %info, "write-back: removing the rejected item failed; retrying");
                    tokio::time::sleep(backoff.next().unwrap_or(self.consumer.retry.max)).await;
                }
            }
        }
        warn!(view = %view.name, key = %key, "write-back: the rejected item could not be removed");
    }
}

/// Whether the item before or after the change names `view` in its `_view` attribute, as
/// every item rowcast writes does.
fn names_view(change: &StreamChange, view: &View) -> bool {
    [change.old.as_ref(), change.new.as_ref()]
        .into_iter()
        .flatten()
        .any(|image| matches!(image.get("_view"), Some(Attr::S(name)) if *name == *view.name))
}

pub fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

fn count(view: &str, outcome: &str) {
    metrics()
        .writeback_records
        .with_label_values(&[view, outcome])
        .inc();
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

/// An application's put left out the version rowcast had written (a mapper that drops the
/// attributes it does not know). With no SQL change to echo, nothing would write the version
/// back until the row changes, and meanwhile the application's next change would be taken for
/// a write over an item rowcast never wrote (every attribute counted as set; an update of a row
/// SQL deleted meanwhile made an insert): the item is read again from SQL instead.
fn dropped_version(change: &StreamChange) -> bool {
    let had = |image: &Option<Image>| {
        image
            .as_ref()
            .is_some_and(|i| i.contains_key(VERSION_ATTRIBUTE))
    };
    change.kind == ChangeKind::Modify && had(&change.old) && !had(&change.new)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spell of failures a retry may fix lasts across records while they come less than a
    /// minute apart; records wait while it is under 15 minutes old, then have 5 tries each.
    #[test]
    fn a_spell_of_retryable_failures_rejects_only_after_its_patience() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut spell = Some(extended_spell(None, at(0)));
        // Failures 30 s apart for 20 minutes: one spell.
        for secs in (30..=1200).step_by(30) {
            spell = Some(extended_spell(spell, at(secs)));
        }
        assert_eq!(spell, Some((at(0), at(1200))));
        // Under the patience: no rejection, whatever the tries.
        assert_eq!(retry_exhausted(spell, 100, at(899)), None);
        // Past it: a record with fewer than 5 tries still tries; with 5 it is rejected.
        assert_eq!(retry_exhausted(spell, 4, at(1200)), None);
        assert_eq!(
            retry_exhausted(spell, 5, at(1200)),
            Some(Duration::from_secs(1200))
        );
        // A minute without such a failure: the next begins a new spell.
        let renewed = extended_spell(spell, at(1260));
        assert_eq!(renewed, (at(1260), at(1260)));
        assert_eq!(retry_exhausted(Some(renewed), 5, at(1300)), None);
        // No spell (a statement applied since): nothing to reject.
        assert_eq!(retry_exhausted(None, 50, at(5000)), None);
    }
}
