//! The snapshot worker: every SQL read of rows that enters the change stream, in its own task,
//! one at a time, handed to the merge stage (see `pipeline::snapshot` for the protocol):
//! fills on miss (the API) and restores (write-back), join refreshes (batches of marked roots
//! the merge stage hands over when they are due), and backfill chunks until every eager view is
//! filled. They take turns — a fill, then a refresh or backfill read if one waits — so no kind
//! starves the others.
//!
//! Nothing moves on until a read is merged: a backfill or a refresh batch advances, and a fill
//! is answered, only when the merge stage says the rows are in the stream. A read the merge
//! stage finds older than the stream (`Again`) is read again from the same place.
//!
//! Failures: a transient one (the server away) is retried after a pause, the read's place kept;
//! a definite one stops what cannot go on — the backfill (its views stay incomplete, logged), a
//! view whose joins cannot be read (halted, reported to the merge stage) — while the rest goes
//! on. A fill that fails is answered with the reason.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{error, warn};

use super::driver::{ChunkEnd, Driver, NextRead};
use super::refresh::RefreshRead;
use crate::error::{chain, Classify, RetryPolicy};
use crate::metrics::Health;
use crate::pipeline::snapshot::{Read, ReadFailure, ReadKind, SnapshotEvent, WorkerMsg};
use crate::pipeline::FillRequest;
use crate::sql::join::read_roots;
use crate::sql::{keyset_tail, matching_condition, SqlError, TableCache};
use crate::view::spec::View;

/// Rows a fill (or a repair) reads for one key: a key's columns are usually the primary key.
const FILL_ROWS: usize = 100;

/// Fills waiting at most; a full queue leaves the rest in the channel (the API then answers
/// 503 when that is full too).
const MAX_QUEUED_FILLS: usize = 64;

pub struct Worker {
    /// From the merge stage: reads merged, refresh batches, views to backfill again.
    pub inbox: mpsc::Receiver<WorkerMsg>,
    pub out: mpsc::Sender<SnapshotEvent>,
    /// Fills on miss (API) and restores (write-back).
    pub fills: mpsc::Receiver<FillRequest>,
    /// Views to backfill again (`POST /v1/views/{view}/snapshot`).
    pub requests: mpsc::Receiver<String>,
    pub views: Vec<Arc<View>>,
    /// The backfill plan; `None` once it stopped for good.
    pub driver: Option<Driver>,
    pub tables: TableCache,
    pub health: Arc<Health>,
    pub chunk_rows: usize,
    pub retry: RetryPolicy,
    /// Counts the DDL statements the merge stage has seen: the tables are read again after one.
    pub ddl: Arc<AtomicU64>,
    /// `[backfill] max_items_per_second`.
    pub budget: Budget,
    /// Backfill chunks read and not yet handed to the lanes, at most [`CHUNKS_AHEAD`]: the
    /// backfill's memory does not grow with the table when the writers are slower than reads.
    pub chunks: Arc<tokio::sync::Semaphore>,
    /// The same for join refresh chunks, apart so that a refresh never waits behind a backfill.
    pub refresh_chunks: Arc<tokio::sync::Semaphore>,
    /// Since when join refreshes have been refused a table or column (see
    /// [`crate::sql::access_denied`]), while none has succeeded since.
    pub refresh_denied_since: Option<std::time::Instant>,
    /// The same for backfill reads: apart, so that backfill chunks of another table read
    /// meanwhile do not keep a refused refresh waiting past the minute.
    pub backfill_denied_since: Option<std::time::Instant>,
}

/// How long reads refused a table or column are retried before the read is given up (the
/// refresh's view halts, the backfill stops): a grant taken away and given again within it
/// costs a pause, not a halt until a restart.
const DENIED_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Backfill chunks between the worker and the lanes at most (one being merged or projected,
/// one read ahead).
pub const CHUNKS_AHEAD: usize = 2;

/// A write budget for backfills: chunks are read no faster than `per_second` items (rows × the
/// views they fill) on average; fills, refreshes and the change stream are never held by it.
#[derive(Debug, Default)]
pub struct Budget {
    per_second: Option<f64>,
    start: Option<tokio::time::Instant>,
    items: f64,
}

impl Budget {
    pub fn new(per_second: Option<u32>) -> Self {
        let limit = per_second.map_or(0, i64::from);
        crate::metrics::metrics().backfill_budget.set(limit);
        Budget {
            per_second: per_second.filter(|&r| r > 0).map(f64::from),
            ..Budget::default()
        }
    }

    /// `items` were just read.
    fn charge(&mut self, items: usize) {
        let Some(rate) = self.per_second else {
            return;
        };
        let now = tokio::time::Instant::now();
        // After a pause (no backfill) the budget starts afresh: no burst to catch up.
        if self.next_at(rate).is_none_or(|at| at < now) {
            self.start = Some(now);
            self.items = 0.0;
        }
        self.items += items as f64;
    }

    fn next_at(&self, rate: f64) -> Option<tokio::time::Instant> {
        Some(self.start? + std::time::Duration::from_secs_f64(self.items / rate))
    }

    /// When the next chunk may be read (`None`: now).
    fn wait_until(&self) -> Option<tokio::time::Instant> {
        let at = self.next_at(self.per_second?)?;
        (at > tokio::time::Instant::now()).then_some(at)
    }
}

/// What to read next.
enum Work {
    Fill(FillRequest),
    Refresh,
    Backfill,
}

/// What a read brings, kept until it is merged.
enum Pending {
    /// A fill and whether a row makes its item (`false`: a repair's removal).
    Fill(FillRequest, bool),
    Refresh(super::refresh::RefreshEnd, bool),
    Backfill(ChunkEnd),
    Nothing,
}

/// What the worker keeps between reads.
#[derive(Default)]
struct Queue {
    fills: VecDeque<FillRequest>,
    refresh: Option<RefreshRead>,
    /// Backfill requests, applied between reads (never while a chunk is being merged).
    /// Views to backfill again; `true`: then remove the items no row makes (asked for by
    /// `rowcast snapshot`, a rebuild).
    backfills: Vec<(String, bool)>,
    /// A fill went last: a refresh or backfill read waiting goes next.
    fill_went_last: bool,
    /// After a transient failure: refresh and backfill reads wait until then.
    pause_until: Option<tokio::time::Instant>,
}

/// The merge stage went away: the stream is drained (or failed, which the merge stage says).
struct MergeGone;

/// How the merge stage answered a read.
enum Merged {
    Yes,
    /// Read again, after this pause.
    ReadAgain(std::time::Duration),
}

/// Whether `error` refuses a table or column and such refusals began (`since`) less than
/// [`DENIED_PATIENCE`] ago: retried as if transient.
fn denied_a_while(since: &mut Option<std::time::Instant>, error: &SqlError) -> bool {
    if !crate::sql::access_denied(error) {
        return false;
    }
    let since = *since.get_or_insert_with(std::time::Instant::now);
    since.elapsed() < DENIED_PATIENCE
}

impl Worker {
    /// Runs until the merge stage goes away (the stream is drained).
    pub async fn run(mut self) {
        let _ = self.work().await;
    }

    async fn work(&mut self) -> Result<(), MergeGone> {
        let mut queue = Queue::default();
        let mut backoff = self.retry.backoff();
        let mut ddl_seen = self.ddl.load(Ordering::Relaxed);
        loop {
            for (view, cleanup) in std::mem::take(&mut queue.backfills) {
                // A busy worker: the backfill asked for starts late.
                crate::util::failpoint::delay("snapshot.before_backfill").await;
                self.request(&view, cleanup);
            }
            let now = tokio::time::Instant::now();
            let paused = queue.pause_until.is_some_and(|until| until > now);
            if let Some(work) = self.next_work(&mut queue, paused) {
                let ddl = self.ddl.load(Ordering::Relaxed);
                if ddl != ddl_seen {
                    ddl_seen = ddl;
                    self.tables.clear();
                }
                let transient = self.perform(work, &mut queue).await?;
                queue.pause_until = transient.then(|| {
                    tokio::time::Instant::now() + backoff.next().unwrap_or(self.retry.max)
                });
                if !transient {
                    backoff = self.retry.backoff();
                }
                continue;
            }
            let budget = self
                .budget
                .wait_until()
                .filter(|_| self.driver.as_ref().is_some_and(Driver::wants_chunk));
            let until = queue.pause_until.filter(|_| paused).or(budget);
            let room = queue.fills.len() < MAX_QUEUED_FILLS;
            let chunk_waits = self.driver.as_ref().is_some_and(Driver::wants_chunk)
                && self.chunks.available_permits() == 0;
            let refresh_waits =
                queue.refresh.is_some() && self.refresh_chunks.available_permits() == 0;
            let (chunks, refresh_chunks) = (self.chunks.clone(), self.refresh_chunks.clone());
            tokio::select! {
                // A chunk handed to the lanes: the next may be read.
                _ = chunks.acquire(), if chunk_waits => {}
                _ = refresh_chunks.acquire(), if refresh_waits => {}
                message = self.inbox.recv() => match message {
                    Some(message) => self.on_message(message, &mut queue),
                    None => return Ok(()),
                },
                Some(fill) = self.fills.recv(), if room => queue.fills.push_back(fill),
                Some(view) = self.requests.recv() => queue.backfills.push((view, true)),
                _ = sleep_until(until), if until.is_some() => {
                    if paused {
                        queue.pause_until = None;
                    }
                }
            }
        }
    }

    /// Fills first, but not twice in a row while a refresh or backfill read waits.
    fn next_work(&self, queue: &mut Queue, paused: bool) -> Option<Work> {
        // A fill whose asker has gone is not read.
        queue.fills.retain(|fill| !fill.reply.is_closed());
        let other = if paused {
            None
        } else if queue.refresh.is_some() && self.refresh_chunks.available_permits() > 0 {
            Some(Work::Refresh)
        } else if self.driver.as_ref().is_some_and(Driver::wants_chunk)
            && self.budget.wait_until().is_none()
            && self.chunks.available_permits() > 0
        {
            Some(Work::Backfill)
        } else {
            None
        };
        if other.is_none() || !queue.fill_went_last {
            if let Some(fill) = queue.fills.pop_front() {
                queue.fill_went_last = true;
                return Some(Work::Fill(fill));
            }
        }
        queue.fill_went_last = false;
        other
    }

    fn on_message(&mut self, message: WorkerMsg, queue: &mut Queue) {
        match message {
            WorkerMsg::Merged | WorkerMsg::Again(_) => {}
            WorkerMsg::Refresh(batch) => match self.views.iter().find(|v| v.name == batch.view) {
                Some(view) => queue.refresh = Some(RefreshRead::new(batch, view.clone())),
                None => warn!(view = %batch.view, "refresh batch of an unknown view"),
            },
            WorkerMsg::Backfill(view) => queue.backfills.push((view, false)),
        }
    }

    fn request(&mut self, name: &str, cleanup: bool) {
        let Some(driver) = self.driver.as_mut() else {
            warn!(view = %name, "backfill requested, but the backfill stopped earlier");
            return;
        };
        if let Some(view) = self.views.iter().find(|v| v.name == name) {
            driver.request(view, cleanup);
            self.health.set_filling(driver.filling());
        }
    }

    /// One read, announced, handed over, and merged (or given up), read again as long as the
    /// merge stage asks. `true` after a transient failure of a refresh or backfill read (it is
    /// retried after a pause).
    async fn perform(&mut self, work: Work, queue: &mut Queue) -> Result<bool, MergeGone> {
        let refresh = matches!(work, Work::Refresh);
        let mut fill = match work {
            Work::Fill(fill) => Some(fill),
            _ => None,
        };
        loop {
            self.send(SnapshotEvent::Begin).await?;
            crate::metrics::note_snapshot_read(true);
            let (event, pending, transient) = match fill.take() {
                Some(request) => self.fill(request).await,
                None if refresh => self.refresh(queue).await,
                None => self.backfill().await,
            };
            let sent = self.send(event).await;
            let merged = match sent {
                Ok(()) => self.wait_merged(queue).await,
                Err(gone) => Err(gone),
            };
            crate::metrics::note_snapshot_read(false);
            match merged? {
                Merged::Yes => {
                    self.done(pending, queue);
                    return Ok(transient);
                }
                Merged::ReadAgain(pause) => {
                    if let Pending::Fill(request, _) = pending {
                        fill = Some(request);
                    }
                    // The commit it missed is in the binlog, not yet visible (semi-synchronous
                    // replication waiting for a replica, a slow engine commit): a moment for
                    // it and for the stream, rather than reading again at once (how long: the
                    // merge stage's call).
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// A merged read: what it brought takes effect.
    fn done(&mut self, pending: Pending, queue: &mut Queue) {
        match pending {
            Pending::Fill(request, made) => {
                let _ = request.reply.send(Ok(made));
            }
            Pending::Refresh(end, last) => {
                if let Some(reading) = queue.refresh.as_mut() {
                    reading.merged(end, self.chunk_rows);
                }
                if last {
                    queue.refresh = None;
                }
            }
            Pending::Backfill(end) => {
                if let Some(driver) = self.driver.as_mut() {
                    driver.merged(end);
                    self.health.set_filling(driver.filling());
                }
            }
            Pending::Nothing => {}
        }
    }

    async fn fill(&mut self, request: FillRequest) -> (SnapshotEvent, Pending, bool) {
        crate::util::failpoint::delay("snapshot.before_fill").await;
        match self.read_fill(&request).await {
            Ok(Some(read)) => {
                let made = !matches!(
                    &read.kind,
                    ReadKind::Fill {
                        remove: Some(_),
                        ..
                    }
                );
                let pending = Pending::Fill(request, made);
                (SnapshotEvent::Read(read), pending, false)
            }
            Ok(None) => {
                let _ = request.reply.send(Ok(false));
                (failed(ReadFailure::default()), Pending::Nothing, false)
            }
            Err(error) => {
                let _ = request.reply.send(Err(chain(&error)));
                (failed(ReadFailure::default()), Pending::Nothing, false)
            }
        }
    }

    /// The rows behind a fill-on-miss key, read in a snapshot; `None` when no row makes the
    /// asked item.
    async fn read_fill(&mut self, fill: &FillRequest) -> Result<Option<Read>, SqlError> {
        let Some(view) = self.views.iter().find(|v| v.name == fill.view).cloned() else {
            return Err(SqlError::Schema(format!("no view {}", fill.view)));
        };
        let table = self.tables.get(&view.source).await?;
        let mut conn = self
            .tables
            .pool()
            .get_conn()
            .await
            .map_err(SqlError::Connect)?;
        // Every reading of the key: a value holding a literal of its template could have been
        // split elsewhere, and only the row behind one of them makes the item.
        let Some(readings) = crate::view::key_readings(&view, &fill.key) else {
            return Err(SqlError::Schema(format!(
                "key {} parses back in more than {} ways: not looked up",
                fill.key,
                crate::view::project::MAX_KEY_READINGS
            )));
        };
        let tail = keyset_tail(
            &table,
            matching_condition(&table, &readings),
            None,
            FILL_ROWS,
        );
        let makes_item =
            |row: &crate::view::Row| crate::view::item_key(&view, row).as_ref() == Some(&fill.key);
        let read = read_roots(
            &mut conn,
            &mut self.tables,
            &table,
            Some(&view),
            tail,
            &makes_item,
        )
        .await?;
        if read.rows.is_empty() && read.fetched == FILL_ROWS {
            // Rows past the limit may make the item: neither "no row" nor removed on a partial
            // read (before 2026-12-05 a fill answered "no row" here).
            return Err(SqlError::Schema(format!(
                "more than {FILL_ROWS} rows share the columns of key {} and none of them makes the item: not looked up further",
                fill.key
            )));
        }
        if read.rows.is_empty() && !fill.repair {
            return Ok(None);
        }
        let remove = (fill.repair && read.rows.is_empty()).then(|| Box::new(fill.key.clone()));
        Ok(Some(Read {
            table: view.source.clone(),
            views: vec![view.name.clone()],
            rows: read.rows,
            joined: read.joined,
            position: read.position,
            key: table.primary_key.clone(),
            kind: ReadKind::Fill {
                restore: fill.restore.clone(),
                remove,
            },
            hold: None,
        }))
    }

    async fn refresh(&mut self, queue: &mut Queue) -> (SnapshotEvent, Pending, bool) {
        let Some(reading) = queue.refresh.as_ref() else {
            return (failed(ReadFailure::default()), Pending::Nothing, false);
        };
        let hold = self.refresh_chunks.clone().try_acquire_owned().ok();
        match reading.read_next(&mut self.tables, self.chunk_rows).await {
            Ok((mut read, end)) => {
                self.refresh_denied_since = None;
                read.hold = hold;
                let last = matches!(read.kind, ReadKind::Refresh { last: true });
                let pending = Pending::Refresh(end, last);
                (SnapshotEvent::Read(read), pending, false)
            }
            Err(error)
                if error.is_transient()
                    || denied_a_while(&mut self.refresh_denied_since, &error) =>
            {
                // The marks stay; the read is tried again after a pause.
                warn!(error = %chain(&error), "join refresh read failed; retrying");
                (failed(ReadFailure::default()), Pending::Nothing, true)
            }
            Err(error) => {
                let view = reading.view.name.clone();
                error!(view = %view, error = %chain(&error), "join refresh read failed for good");
                queue.refresh = None;
                let failure = ReadFailure {
                    halted_view: Some(view),
                    ..ReadFailure::default()
                };
                (failed(failure), Pending::Nothing, false)
            }
        }
    }

    async fn backfill(&mut self) -> (SnapshotEvent, Pending, bool) {
        let Some(driver) = self.driver.as_mut() else {
            return (failed(ReadFailure::default()), Pending::Nothing, false);
        };
        // Taken before the read (`next_work` saw one free; the worker alone takes them).
        let hold = self.chunks.clone().try_acquire_owned().ok();
        let result = driver.read_next(&mut self.tables).await;
        self.health.set_filling(driver.filling());
        match result {
            Ok(NextRead::Chunk(chunk)) => {
                let (mut read, end) = *chunk;
                read.hold = hold;
                self.backfill_denied_since = None;
                self.budget.charge(read.rows.len() * read.views.len());
                (SnapshotEvent::Read(read), Pending::Backfill(end), false)
            }
            Ok(NextRead::Nothing) => (failed(ReadFailure::default()), Pending::Nothing, false),
            Ok(NextRead::Skipped(views)) => {
                let failure = ReadFailure {
                    backfill_done: views,
                    ..ReadFailure::default()
                };
                (failed(failure), Pending::Nothing, false)
            }
            Err(error)
                if error.is_transient()
                    || denied_a_while(&mut self.backfill_denied_since, &error) =>
            {
                warn!(error = %chain(&error), "backfill read failed; retrying");
                (failed(ReadFailure::default()), Pending::Nothing, true)
            }
            Err(error) => {
                // Only this table's views: the others' backfills go on.
                let views = driver.give_up_first();
                error!(error = %chain(&error), views = ?views, "backfill of these views stopped; they stay incomplete until the table can be read and they are asked for again (`rowcast snapshot --view`, or the table created again)");
                self.health.set_filling(driver.filling());
                (failed(ReadFailure::default()), Pending::Nothing, false)
            }
        }
    }

    /// Waits until the merge stage has merged (or given up, or wants read again) the read just
    /// handed over, taking in what arrives meanwhile.
    async fn wait_merged(&mut self, queue: &mut Queue) -> Result<Merged, MergeGone> {
        loop {
            let room = queue.fills.len() < MAX_QUEUED_FILLS;
            tokio::select! {
                message = self.inbox.recv() => match message {
                    Some(WorkerMsg::Merged) => return Ok(Merged::Yes),
                    Some(WorkerMsg::Again(pause)) => return Ok(Merged::ReadAgain(pause)),
                    Some(message) => self.on_message(message, queue),
                    None => return Err(MergeGone),
                },
                Some(fill) = self.fills.recv(), if room => queue.fills.push_back(fill),
                Some(view) = self.requests.recv() => queue.backfills.push((view, true)),
            }
        }
    }

    async fn send(&self, event: SnapshotEvent) -> Result<(), MergeGone> {
        self.out.send(event).await.map_err(|_| MergeGone)
    }
}

fn failed(failure: ReadFailure) -> SnapshotEvent {
    SnapshotEvent::Failed(failure)
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
