//! The requests a lane sends: BatchWriteItem for plain writes, conditional PutItem/DeleteItem
//! where the version guard is needed, each retried until DynamoDB accepts or definitely
//! refuses it.
//!
//! Retry policy: throttling, unprocessed items and transport errors back off exponentially with
//! jitter and retry forever, resending only what is still unwritten. A definite refusal of a
//! batch (a validation error) is narrowed down by writing its items one by one; the one that is
//! refused goes to the dead-letter store with its reason.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemError, BatchWriteItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures_util::future::join_all;
use futures_util::StreamExt as _;
use tracing::{debug, warn};

use crate::config::WriteMode;
use crate::control::{DeadLetterStore, Lease};
use crate::dynamo::{
    classify_sdk_error, encode_item, encode_key, is_condition_failure, remove_marked,
    to_attribute_value, types_value, BatchBody, RemovalGuard, SdkErrorInfo, ORIGIN_ATTRIBUTE,
    RESTORED_ATTRIBUTE, VERSION_ATTRIBUTE,
};
use crate::dynamo::{item_version, size_over, MAX_ITEM_BYTES};
use crate::error::{ErrorClass, RetryPolicy};
use crate::metrics::metrics;
use crate::pipeline::{DeadLetter, WriteOp};
use crate::util::now_millis;
use crate::view::ItemOp;

use super::checked::Asked;

pub struct Writer {
    pub client: Client,
    pub dead_letters: DeadLetterStore,
    pub max_backoff: Duration,
    /// Tables whose writes are held (a table-wide refusal), for one log line per episode.
    pub held: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Guarded writes may be checked, then batched (`checked.rs`): only where the checkpoint
    /// has an owner that fences other instances (the control table), since the check and the
    /// write are two requests. Otherwise every guarded write is a conditional single write.
    pub check_versions: bool,
    /// Every request that writes waits for it first (see `control::Lease`).
    pub lease: Lease,
    /// Set when a write was given up because the lease ended (or ran out while draining):
    /// nothing more of this instance may be acknowledged.
    pub abandoned: std::sync::atomic::AtomicBool,
    /// Plain writes of unknown outcome, to be written again guarded (`unsure.rs`).
    pub unsure: super::unsure::Unsure,
}

/// Outcome of one write that DynamoDB answered.
enum Outcome {
    Written,
    Stale,
    Refused(SdkErrorInfo),
}

impl super::lane::Deliver for Writer {
    async fn deliver(&self, delivery: super::lane::Delivery, mode: WriteMode) -> bool {
        for letter in &delivery.dead {
            self.dead_letter(letter).await;
        }
        let mut batched = Vec::new();
        let mut checked = Vec::new();
        let mut guarded = Vec::new();
        for op in delivery.ops {
            if let Some(letter) = Writer::oversized(&op) {
                self.dead_letter(&letter).await;
                continue;
            }
            self.unsure.follow(&op);
            if op.always_guarded() {
                guarded.push(op);
            } else if op.guard || mode == WriteMode::Conditional {
                checked.push(op);
            } else {
                batched.push(op);
            }
        }
        let batches = async {
            // A lone item goes as a PutItem (or DeleteItem): quicker than a batch of one.
            if let [op] = batched.as_slice() {
                self.write_single(op, false).await;
                return;
            }
            join_all(
                batched
                    .chunks(BATCH_LIMIT)
                    .map(|chunk| self.write_batch(chunk, false)),
            )
            .await;
        };
        // A few guarded writes go as conditional single writes; more are checked and batched
        // (see `checked.rs`), where a checkpoint owner fences other instances.
        if checked.len() < super::checked::CHECK_MIN || !self.check_versions {
            guarded.append(&mut checked);
        }
        let checked = self.write_checked(&checked);
        let singles = self.write_conditional(guarded.iter());
        tokio::join!(batches, checked, singles);
        !self.abandoned.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn recheck_due(&self, lane: usize) -> Option<Instant> {
        self.unsure.next_due(lane)
    }

    fn loss_epoch(&self, lane: usize) -> u64 {
        self.unsure.loss_epoch(lane)
    }

    fn oldest_loss(&self, lane: usize) -> Option<u64> {
        self.unsure.oldest_loss(lane)
    }

    async fn recheck(&self, lane: usize) -> Option<bool> {
        let due = self.unsure.take_due(lane);
        steadily(&due, |recheck| self.recheck_one(recheck)).await;
        self.unsure.finished(lane, &due);
        let given_up = self.abandoned.load(std::sync::atomic::Ordering::Relaxed);
        (!given_up).then_some(!due.is_empty())
    }
}

/// The version guard of a conditional write: the stored item is absent or older.
const GUARD: &str = "attribute_not_exists(#v) OR #v < :v";
/// The guard of a write again after an unknown outcome (`unsure.rs`): the stored item is older;
/// an absent one is left absent (a cleanup or TTL may have removed it since).
const OLDER: &str = "attribute_exists(#v) AND #v < :v";

/// `write` of every item, CONDITIONAL_CONCURRENCY in flight, a finished one replaced at once.
async fn steadily<T, F: std::future::Future<Output = ()>>(
    items: impl IntoIterator<Item = T>,
    write: impl Fn(T) -> F,
) {
    let mut waiting = items.into_iter();
    let mut running = futures_util::stream::FuturesUnordered::new();
    loop {
        while running.len() < CONDITIONAL_CONCURRENCY {
            let Some(item) = waiting.next() else { break };
            running.push(write(item));
        }
        if running.next().await.is_none() {
            break;
        }
    }
}

/// Items per BatchWriteItem.
pub(super) const BATCH_LIMIT: usize = 25;
/// Conditional single writes in flight at once.
const CONDITIONAL_CONCURRENCY: usize = 32;

impl Writer {
    /// Conditional single writes of `ops` (distinct keys, so in any order): a steady
    /// CONDITIONAL_CONCURRENCY in flight, a finished one replaced at once (not groups that wait
    /// for their slowest member).
    pub(super) async fn write_conditional<'a>(&self, ops: impl IntoIterator<Item = &'a WriteOp>) {
        steadily(ops, |op| self.write_single(op, true)).await;
    }

    /// Waits for the write lease (see `control::Lease`); `false`: the write is given up, this
    /// instance may not write any more, and the lane that delivered it stops without
    /// acknowledging it.
    async fn leased(&self) -> bool {
        if self.lease.held().await {
            return true;
        }
        if !self
            .abandoned
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            warn!("writes given up: this instance's ownership of the checkpoint is no longer confirmed; what is unwritten is not acknowledged and will be replayed");
        }
        false
    }

    pub fn backoff(&self) -> impl Iterator<Item = Duration> {
        RetryPolicy::new(Duration::from_millis(25), self.max_backoff).backoff()
    }

    /// DynamoDB refuses every write to `table` (see `SdkErrorInfo::is_table_wide`): the writes
    /// wait, retried with backoff, and the checkpoint does not pass them.
    pub(super) fn hold(&self, table: &str, info: &SdkErrorInfo) {
        metrics().write_held.with_label_values(&[table]).inc();
        crate::metrics::note_pushback();
        let newly = self
            .held
            .lock()
            .map(|mut held| held.insert(table.to_string()))
            .unwrap_or(false);
        if newly {
            warn!(%table, error = %info, "writes to this table are held: DynamoDB refuses them for the whole table; retrying until it takes them (the checkpoint waits)");
        }
    }

    /// A write to `table` went through: the end of a hold, if there was one.
    fn resumed(&self, table: &str) {
        let ended = self
            .held
            .lock()
            .map(|mut held| !held.is_empty() && held.remove(table))
            .unwrap_or(false);
        if ended {
            tracing::info!(%table, "writes to this table are taken again");
        }
    }

    /// Records a dead letter (see `DeadLetterStore::keep`: it never wedges the lane).
    pub async fn dead_letter(&self, letter: &DeadLetter) {
        let retry = RetryPolicy::new(Duration::from_millis(25), self.max_backoff);
        self.dead_letters.keep(letter, &retry).await;
    }

    /// The dead letter of a put whose item is over DynamoDB's limit (never sent).
    pub(super) fn oversized(op: &WriteOp) -> Option<DeadLetter> {
        let ItemOp::Put { item, .. } = &op.op else {
            return None;
        };
        let size = size_over(item, &op.view, MAX_ITEM_BYTES)?;
        let reason = format!("item is {size} bytes, over DynamoDB's 400 KB limit");
        Some(Writer::letter(op, reason, "too_large"))
    }

    pub fn letter(op: &WriteOp, reason: String, reason_kind: &'static str) -> DeadLetter {
        DeadLetter {
            view: op.view.to_string(),
            key: Some(op.op.key().to_string()),
            pk: Some(op.op.key().pk.clone()),
            sk: op.op.key().sk.clone(),
            reason,
            reason_kind,
            position: (*op.origin).clone(),
            seq: op.seq,
            at_ms: now_millis(),
            record: None,
        }
    }

    pub(super) fn count_written(op: &WriteOp) {
        Self::count_written_all(std::slice::from_ref(op));
    }

    /// Counts written items with one labelled lookup per run of one view and kind (a batch is
    /// usually one run), not one per item.
    fn count_written_all(ops: &[WriteOp]) {
        let kind = |op: &WriteOp| match op.op {
            ItemOp::Put { .. } => "put",
            ItemOp::Delete { .. } => "delete",
        };
        let mut rest = ops;
        while let Some(first) = rest.first() {
            let run = rest
                .iter()
                .take_while(|op| op.view == first.view && kind(op) == kind(first))
                .count();
            metrics()
                .items
                .with_label_values(&[&first.view, kind(first)])
                .inc_by(run as u64);
            rest = &rest[run..];
        }
    }

    /// Writes `ops` (distinct keys, at most 25) with one BatchWriteItem, retrying what is left.
    /// A batch DynamoDB refuses is written one by one, conditionally when `guarded` (items
    /// whose version guard was checked before).
    pub async fn write_batch(&self, ops: &[WriteOp], guarded: bool) {
        let tables: std::collections::BTreeSet<&str> =
            ops.iter().map(|op| &*op.op.key().table).collect();
        // The first attempt (and a retry of all of it) is written from `ops` as the request's
        // body (`dynamo::BatchBody`); only the items DynamoDB leaves unprocessed are kept, typed
        // as it returns them, to send again. (Cloning every request for every attempt cost as
        // much as encoding it.)
        let mut unprocessed_left: Option<HashMap<String, Vec<WriteRequest>>> = None;
        let mut backoff = self.backoff();
        loop {
            if !self.leased().await {
                return;
            }
            let request = match &unprocessed_left {
                Some(left) => BatchRequest::Typed(left.clone()),
                None => BatchRequest::Body {
                    tables: tables.iter().map(|table| table.to_string()).collect(),
                    body: batch_body(ops, &tables),
                },
            };
            match self.send_batch(request).await {
                Ok(out) => {
                    let unprocessed: HashMap<String, Vec<WriteRequest>> = out
                        .unprocessed_items
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|(_, requests)| !requests.is_empty())
                        .collect();
                    if unprocessed.is_empty() {
                        Self::count_written_all(ops);
                        // The tables of the request that went through (as a hold names them).
                        for table in sent_tables(&unprocessed_left, &tables) {
                            self.resumed(table);
                        }
                        return;
                    }
                    count_unprocessed();
                    if guarded {
                        self.checked_leftovers(ops, &unprocessed).await;
                        return;
                    }
                    let left: usize = unprocessed.values().map(Vec::len).sum();
                    debug!(left, "unprocessed items; retrying them");
                    unprocessed_left = Some(unprocessed);
                }
                Err(error) => {
                    let info = classify_sdk_error(&error);
                    if info.unsure {
                        // The request carries no condition (a checked batch's neither).
                        self.unsure.lost(ops);
                    }
                    if guarded {
                        // As for unprocessed items: a checked batch is never resent as a batch.
                        count_retry(&info);
                        debug!(error = %info, "checked batch failed; writing its items conditionally");
                        self.write_conditional(ops).await;
                        return;
                    }
                    if info.is_table_wide() {
                        for table in sent_tables(&unprocessed_left, &tables) {
                            self.hold(table, &info);
                        }
                    } else if info.class == ErrorClass::Definite {
                        warn!(error = %info, items = ops.len(), "batch refused; writing its items one by one");
                        for op in ops {
                            self.write_single(op, guarded).await;
                        }
                        return;
                    } else if count_retry(&info) {
                        warn!(error = %info, "batch write failed; retrying");
                    }
                }
            }
            tokio::time::sleep(backoff.next().unwrap_or(self.max_backoff)).await;
        }
    }

    /// One BatchWriteItem, timed.
    async fn send_batch(
        &self,
        request: BatchRequest,
    ) -> Result<BatchWriteItemOutput, SdkError<BatchWriteItemError, HttpResponse>> {
        let started = Instant::now();
        let builder = self.client.batch_write_item();
        let result = match request {
            BatchRequest::Typed(items) => builder.set_request_items(Some(items)).send().await,
            BatchRequest::Body { tables, body } => {
                // The tables stay in the input, their requests out: the SDK's endpoint
                // parameters name a batch's tables. The body the SDK serialised of it is
                // replaced before it is signed.
                let input = tables
                    .into_iter()
                    .map(|table| (table, Vec::new()))
                    .collect();
                // Set again for each attempt, shared rather than copied.
                let body = bytes::Bytes::from(body);
                builder
                    .set_request_items(Some(input))
                    .customize()
                    .mutate_request(move |request| {
                        request
                            .headers_mut()
                            .insert("content-length", body.len().to_string());
                        *request.body_mut() = body.clone().into();
                    })
                    .send()
                    .await
            }
        };
        metrics()
            .batch_duration
            .with_label_values(&["batch"])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// A checked batch's items that DynamoDB left unprocessed: not retried as a batch (their
    /// check would be old by then) but as conditional single writes; the rest are written.
    async fn checked_leftovers(
        &self,
        ops: &[WriteOp],
        unprocessed: &HashMap<String, Vec<WriteRequest>>,
    ) {
        let Some(left) = unprocessed_positions(ops, unprocessed) else {
            // An unprocessed item that is not one of the batch's cannot tell which of them
            // were written: all of them go conditionally (those written count as stale).
            warn!("unprocessed items not among the batch's; writing all of it conditionally");
            self.write_conditional(ops).await;
            return;
        };
        let mut unwritten: Vec<&WriteOp> = Vec::new();
        for (op, left) in ops.iter().zip(left) {
            if left {
                unwritten.push(op);
            } else {
                Self::count_written(op);
            }
        }
        self.write_conditional(unwritten).await;
    }

    /// One PutItem or DeleteItem, conditional on the stored version being older when
    /// `conditional`; retried until answered.
    pub async fn write_single(&self, op: &WriteOp, conditional: bool) {
        let mut backoff = self.backoff();
        loop {
            if !self.leased().await {
                return;
            }
            let started = Instant::now();
            let outcome = self.send_single(op, conditional.then_some(GUARD)).await;
            let kind = if conditional { "conditional" } else { "single" };
            metrics()
                .batch_duration
                .with_label_values(&[kind])
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(Outcome::Written) => {
                    Self::count_written(op);
                    self.resumed(&op.op.key().table);
                    return;
                }
                Ok(Outcome::Stale) => {
                    metrics().stale_writes.with_label_values(&[&op.view]).inc();
                    return;
                }
                Ok(Outcome::Refused(info)) if info.is_table_wide() => {
                    self.hold(&op.op.key().table, &info);
                    tokio::time::sleep(backoff.next().unwrap_or(self.max_backoff)).await;
                }
                Ok(Outcome::Refused(info)) => {
                    let letter =
                        Self::letter(op, format!("DynamoDB refused the write: {info}"), "refused");
                    self.dead_letter(&letter).await;
                    return;
                }
                Err(info) => {
                    // A conditional put is kept too: landing late on an item its row's later
                    // delete removed, its guard lets it in (the item has no version to be
                    // newer). A conditional delete landing late removes nothing newer.
                    let put = matches!(op.op, ItemOp::Put { .. });
                    if info.unsure && (!conditional || put) {
                        self.unsure.lost([op]);
                    }
                    if count_retry(&info) {
                        warn!(error = %info, key = %op.op.key(), "write failed; retrying");
                    }
                    tokio::time::sleep(backoff.next().unwrap_or(self.max_backoff)).await;
                }
            }
        }
    }

    /// Writes again, guarded, the latest state of an item whose plain write had an unknown
    /// outcome (see `unsure.rs`): restored where that write landed over a newer one, nothing
    /// written where it did not (the condition fails). Retried until answered; an unknown
    /// outcome again keeps it for another window.
    async fn recheck_one(&self, recheck: &super::unsure::Recheck) {
        let op = &recheck.op;
        let condition = match op.op {
            ItemOp::Put { .. } if recheck.absent_ok => GUARD,
            _ => OLDER,
        };
        let mut backoff = self.backoff();
        loop {
            if !self.leased().await {
                return;
            }
            let outcome = match self.send_single(op, Some(condition)).await {
                Ok(Outcome::Written) => "restored",
                Ok(Outcome::Stale) => "unchanged",
                Ok(Outcome::Refused(info)) if info.is_table_wide() => {
                    self.hold(&op.op.key().table, &info);
                    tokio::time::sleep(backoff.next().unwrap_or(self.max_backoff)).await;
                    continue;
                }
                Ok(Outcome::Refused(info)) => {
                    warn!(error = %info, key = %op.op.key(), "writing again an item whose write had an unknown outcome: refused");
                    "refused"
                }
                Err(info) if info.unsure => {
                    self.unsure.lost_again(recheck);
                    return;
                }
                Err(info) => {
                    if count_retry(&info) {
                        warn!(error = %info, key = %op.op.key(), "writing again an item whose write had an unknown outcome failed; retrying");
                    }
                    tokio::time::sleep(backoff.next().unwrap_or(self.max_backoff)).await;
                    continue;
                }
            };
            if outcome != "refused" {
                self.resumed(&op.op.key().table);
            }
            if outcome == "restored" {
                Self::count_written(op);
                warn!(key = %op.op.key(), version = %op.version, "a write of unknown outcome had landed late, over a newer one: the item is written again with its latest state");
            }
            metrics()
                .rechecked_writes
                .with_label_values(&[outcome])
                .inc();
            return;
        }
    }

    /// `Err` is a transient failure. `condition`: the version guard of a conditional write
    /// (`#v` the version, `:v` the op's), `None` for a plain one; removals and restores have
    /// guards of their own.
    async fn send_single(
        &self,
        op: &WriteOp,
        condition: Option<&'static str>,
    ) -> Result<Outcome, SdkErrorInfo> {
        let result = match &op.op {
            ItemOp::Delete { key } if op.mark_removal => {
                match remove_marked(&self.client, key, RemovalGuard::UpTo(op.version)).await {
                    Ok(true) => Ok(()),
                    Ok(false) => return Ok(Outcome::Stale),
                    Err(info) => Err(info),
                }
            }
            ItemOp::Put { key, item } if op.restore => restore(&self.client, key, item, op).await,
            ItemOp::Put { key, item } => {
                let mut request = self
                    .client
                    .put_item()
                    .table_name(&*key.table)
                    .set_item(Some(encode_item(item, op.version, &op.view)));
                if let Some(condition) = condition {
                    request = request
                        .condition_expression(condition)
                        .expression_attribute_names("#v", VERSION_ATTRIBUTE)
                        .expression_attribute_values(":v", types_value(op.version));
                }
                request
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify_sdk_error(&e))
            }
            ItemOp::Delete { key } => {
                let mut request = self
                    .client
                    .delete_item()
                    .table_name(&*key.table)
                    .set_key(Some(encode_key(key)));
                if let Some(condition) = condition {
                    request = request
                        .condition_expression(condition)
                        .expression_attribute_names("#v", VERSION_ATTRIBUTE)
                        .expression_attribute_values(":v", types_value(op.version));
                }
                request
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify_sdk_error(&e))
            }
        };
        match result {
            Ok(()) => Ok(Outcome::Written),
            Err(info) if is_condition_failure(&info) => Ok(Outcome::Stale),
            Err(info) if info.class == ErrorClass::Definite => Ok(Outcome::Refused(info)),
            Err(info) => Err(info),
        }
    }
}

/// A restore: the item written again from its row, at any version of the source transaction
/// it was read in (the application's rejected change kept the item's version), and never over
/// a newer one. Write-back tells the restore's record from an application's update at the same
/// version by its `_restored` mark moving forward (`writeback/inverse.rs`), so the mark is put
/// above the item's: the clock's microseconds, or one more than the item's mark where the clock
/// is not ahead of it (a clock behind the last restore's host after a failover). Before
/// 2026-12-07 it was the clock's alone, and such a restore's record was taken for an
/// application's update of the item to SQL's state (found by a review;
/// `tests/writeback_safety.rs`, seen failing). A mark that cannot be ordered (not a number,
/// or one past what a mark can be: an application's) is written over as before, on the
/// version's condition alone. `Err` with a condition failure: a newer version is there, or no
/// item (stale: nothing to undo), or the mark lost three races (logged).
async fn restore(
    client: &Client,
    key: &crate::view::ItemKey,
    item: &crate::view::project::Item,
    op: &WriteOp,
) -> Result<(), SdkErrorInfo> {
    let version = op.version | u128::from(u32::MAX);
    let mut mark = u128::from(crate::util::now_micros());
    if crate::util::failpoint::fails("restore.clock_behind") {
        mark -= 3_600_000_000;
    }
    let mut ordered = true;
    let mut refused = None;
    for _ in 0..3 {
        let mut encoded = encode_item(item, version, &op.view);
        encoded.insert(RESTORED_ATTRIBUTE.to_string(), types_value(mark));
        // At the version written here, not the op's (`with_origin` in the project stage).
        let origin = crate::dynamo::origin(&key.pk, key.sk.as_deref(), version);
        encoded.insert(ORIGIN_ATTRIBUTE.to_string(), to_attribute_value(&origin));
        let mut request = client
            .put_item()
            .table_name(&*key.table)
            .set_item(Some(encoded))
            .expression_attribute_names("#v", VERSION_ATTRIBUTE)
            .expression_attribute_values(":v", types_value(version));
        request = if ordered {
            request
                .condition_expression(
                    "(attribute_not_exists(#v) OR #v <= :v) AND (attribute_not_exists(#r) OR #r < :r)",
                )
                .expression_attribute_names("#r", RESTORED_ATTRIBUTE)
                .expression_attribute_values(":r", types_value(mark))
        } else {
            request.condition_expression("attribute_not_exists(#v) OR #v <= :v")
        };
        let info = match request.send().await {
            Ok(_) => return Ok(()),
            Err(error) => classify_sdk_error(&error),
        };
        if !is_condition_failure(&info) {
            return Err(info);
        }
        // Which part did not hold: a newer version (stale), or a mark at or above this one.
        let stored = stored_marks(client, key, info.clone()).await?;
        // Gone meanwhile (its removal's record follows), or newer: nothing to undo.
        if stored.is_empty() || item_version(&stored).is_some_and(|stored| stored > version) {
            return Err(info);
        }
        match stored.get(RESTORED_ATTRIBUTE).map(next_mark) {
            Some(Some(next)) => mark = mark.max(next),
            Some(None) => ordered = false,
            None => {}
        }
        refused = Some(info);
    }
    warn!(key = %key, "a restore's _restored mark lost three races with other writes of the item: not written (the item may keep the rejected change until its row changes)");
    Err(refused.expect("tried"))
}

/// The version and `_restored` mark of a restore's item whose condition failed (`refused`).
/// `Err`: what the restore answers — `refused` (taken as stale) where the item cannot be read
/// (no `dynamodb:GetItem` allowed, say: a restore never stops the table's writes), the read's
/// error where a retry may fix it (throttled, a server error, a timeout: the restore is tried
/// again whole, its put refused, not applied; before 2026-12-07 taken as stale, and the
/// rejected change stayed in the item: found by a review, `tests/services.rs`, seen failing).
async fn stored_marks(
    client: &Client,
    key: &crate::view::ItemKey,
    refused: SdkErrorInfo,
) -> Result<HashMap<String, AttributeValue>, SdkErrorInfo> {
    let stored = client
        .get_item()
        .table_name(&*key.table)
        .set_key(Some(encode_key(key)))
        .consistent_read(true)
        .projection_expression("#v, #r")
        .expression_attribute_names("#v", VERSION_ATTRIBUTE)
        .expression_attribute_names("#r", RESTORED_ATTRIBUTE)
        .send()
        .await;
    match stored {
        Ok(read) => Ok(read.item.unwrap_or_default()),
        Err(error) => {
            let read = classify_sdk_error(&error);
            if read.class == ErrorClass::Transient && !read.is_table_wide() {
                return Err(SdkErrorInfo {
                    unsure: false,
                    ..read
                });
            }
            warn!(key = %key, error = %read, "a restore's condition failed and the item could not be read to tell why (is dynamodb:GetItem allowed on the view table? see docs/iam.md): taken as stale");
            Err(refused)
        }
    }
}

/// One above a stored `_restored` mark; `None` for one that cannot be ordered: not a number
/// rowcast writes (digits, under 37 of them), an application's.
fn next_mark(stored: &AttributeValue) -> Option<u128> {
    match stored {
        AttributeValue::N(n) if n.len() < 37 && n.bytes().all(|b| b.is_ascii_digit()) => {
            n.parse::<u128>().ok().map(|m| m + 1)
        }
        _ => None,
    }
}

/// The tables of the last BatchWriteItem sent: those with unprocessed items left when there
/// were some, else all of the batch's.
fn sent_tables<'a>(
    left: &'a Option<HashMap<String, Vec<WriteRequest>>>,
    all: &'a std::collections::BTreeSet<&str>,
) -> Vec<&'a str> {
    match left {
        Some(left) => left.keys().map(String::as_str).collect(),
        None => all.iter().copied().collect(),
    }
}

/// Which of `ops` DynamoDB left unprocessed, in their order; `None` when an unprocessed request
/// is none of `ops`' (the batch's outcome cannot be told then).
pub(super) fn unprocessed_positions(
    ops: &[WriteOp],
    unprocessed: &HashMap<String, Vec<WriteRequest>>,
) -> Option<Vec<bool>> {
    let asked = Asked::new(ops);
    let mut left = vec![false; ops.len()];
    for (table, requests) in unprocessed {
        for request in requests {
            let attributes = match (&request.put_request, &request.delete_request) {
                (Some(put), _) => &put.item,
                (None, Some(delete)) => &delete.key,
                (None, None) => return None,
            };
            left[asked.position(table, attributes)?] = true;
        }
    }
    Some(left)
}

/// Counts a request whose items (or keys) DynamoDB left unprocessed: throttling in all but name.
pub(super) fn count_unprocessed() {
    metrics()
        .write_retries
        .with_label_values(&["unprocessed"])
        .inc();
    metrics().throttles.inc();
    crate::metrics::note_pushback();
}

/// Counts a transient write failure before its retry; `true` when it was not throttling (an
/// error the caller logs).
fn count_retry(info: &SdkErrorInfo) -> bool {
    crate::metrics::note_pushback();
    if info.throttled {
        metrics().throttles.inc();
        metrics()
            .write_retries
            .with_label_values(&["throttled"])
            .inc();
    } else {
        metrics().write_retries.with_label_values(&["error"]).inc();
    }
    !info.throttled
}

/// A BatchWriteItem's requests.
enum BatchRequest {
    /// The first attempt's: the body written from the ops, and their tables.
    Body { tables: Vec<String>, body: Vec<u8> },
    /// A retry's: the requests DynamoDB left unprocessed, as it returned them.
    Typed(HashMap<String, Vec<WriteRequest>>),
}

/// The body of a BatchWriteItem of `ops`, whose tables are `tables`: each table's requests
/// together, in the order of `ops`.
fn batch_body(ops: &[WriteOp], tables: &std::collections::BTreeSet<&str>) -> Vec<u8> {
    let mut body = BatchBody::with_capacity(ops.len() * 256);
    for table in tables {
        body.table(table);
        for op in ops.iter().filter(|op| &*op.op.key().table == *table) {
            match &op.op {
                ItemOp::Put { item, .. } => body.put(item, op.version, &op.view),
                ItemOp::Delete { key } => body.delete(key),
            }
        }
    }
    body.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_mark_goes_one_above_a_mark_rowcast_could_have_written() {
        let n = |text: &str| AttributeValue::N(text.into());
        assert_eq!(next_mark(&n("1796606802897000")), Some(1796606802897001));
        for unordered in [
            n("1E+50"),
            n("1.5"),
            n(&"9".repeat(38)),
            AttributeValue::S("x".into()),
        ] {
            assert_eq!(next_mark(&unordered), None, "{unordered:?}");
        }
    }
    use crate::sink::test_ops::{delete, put};

    /// Written items are counted per view and kind, one lookup per run of them.
    #[test]
    fn written_items_are_counted_by_view_and_kind() {
        let count = |view: &str, kind: &str| metrics().items.with_label_values(&[view, kind]).get();
        let ops = [
            put("count-a", "1", 1),
            put("count-a", "2", 1),
            delete("count-a", "3", 1),
            put("count-b", "4", 1),
            put("count-a", "5", 1),
        ];
        Writer::count_written_all(&ops);
        Writer::count_written(&ops[2]);
        assert_eq!(count("count-a", "put"), 3);
        assert_eq!(count("count-a", "delete"), 2);
        assert_eq!(count("count-b", "put"), 1);
        assert_eq!(count("count-b", "delete"), 0);
    }
}
