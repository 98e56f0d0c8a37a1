//! The snapshot worker: every SQL read of rows that enters the change stream, in its own task,
//! one at a time, handed to the merge stage (see `pipeline::snapshot` for the protocol):
//!
//! 1. fills on miss (the API) and restores (write-back), first: someone waits for them;
//! 2. join refreshes: batches of marked roots the merge stage hands over when they are due;
//! 3. backfill chunks, until every eager view is filled (and views asked to fill again).
//!
//! Failures: a transient one (the server away) is retried with backoff, the read's place kept;
//! a definite one stops what cannot go on — the backfill (its views stay incomplete, logged), a
//! view whose joins cannot be read (halted, reported to the merge stage) — while the rest goes
//! on. A fill that fails is answered with the reason.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{error, warn};

use super::driver::Driver;
use super::join::read_roots;
use super::refresh::RefreshRead;
use crate::error::{chain, Classify, RetryPolicy};
use crate::metrics::Health;
use crate::pipeline::snapshot::{Read, ReadFailure, ReadKind, SnapshotEvent, WorkerMsg};
use crate::pipeline::FillRequest;
use crate::sql::{keyset_tail, matching_condition, SqlError, TableCache};
use crate::view::spec::View;

/// The merge stage went away: the stream is drained (or failed, which the merge stage says).
struct MergeGone;

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
}

/// What to read next.
enum Work {
    Fill(FillRequest),
    Refresh,
    Backfill,
}

/// What the worker keeps between reads.
#[derive(Default)]
struct Queue {
    fills: VecDeque<FillRequest>,
    refresh: Option<RefreshRead>,
    /// A transient failure: the next refresh or backfill read waits until then.
    pause_until: Option<tokio::time::Instant>,
}

impl Worker {
    /// Runs until the merge stage goes away (the stream is drained).
    pub async fn run(mut self) {
        let _ = self.work().await;
    }

    async fn work(&mut self) -> Result<(), MergeGone> {
        let mut queue = Queue::default();
        let mut backoff = self.retry.backoff();
        loop {
            let now = tokio::time::Instant::now();
            let paused = queue.pause_until.is_some_and(|until| until > now);
            if let Some(work) = self.next_work(&mut queue, paused) {
                let transient = self.perform(work, &mut queue).await?;
                queue.pause_until = transient.then(|| {
                    tokio::time::Instant::now() + backoff.next().unwrap_or(self.retry.max)
                });
                if !transient {
                    backoff = self.retry.backoff();
                }
                continue;
            }
            let until = queue.pause_until.filter(|_| paused);
            tokio::select! {
                message = self.inbox.recv() => match message {
                    Some(message) => self.on_message(message, &mut queue),
                    None => return Ok(()),
                },
                Some(fill) = self.fills.recv() => queue.fills.push_back(fill),
                Some(view) = self.requests.recv() => self.request(&view),
                _ = sleep_until(until), if until.is_some() => queue.pause_until = None,
            }
        }
    }

    fn next_work(&self, queue: &mut Queue, paused: bool) -> Option<Work> {
        if let Some(fill) = queue.fills.pop_front() {
            return Some(Work::Fill(fill));
        }
        if paused {
            return None;
        }
        if queue.refresh.is_some() {
            return Some(Work::Refresh);
        }
        self.driver
            .as_ref()
            .is_some_and(Driver::wants_chunk)
            .then_some(Work::Backfill)
    }

    fn on_message(&mut self, message: WorkerMsg, queue: &mut Queue) {
        match message {
            WorkerMsg::Merged => {}
            WorkerMsg::Refresh(batch) => match self.views.iter().find(|v| v.name == batch.view) {
                Some(view) => queue.refresh = Some(RefreshRead::new(batch, view.clone())),
                None => warn!(view = %batch.view, "refresh batch of an unknown view"),
            },
            WorkerMsg::Backfill(view) => self.request(&view),
            WorkerMsg::Ddl => self.tables.clear(),
        }
    }

    fn request(&mut self, name: &str) {
        let Some(driver) = self.driver.as_mut() else {
            warn!(view = %name, "backfill requested, but the backfill stopped earlier");
            return;
        };
        if let Some(view) = self.views.iter().find(|v| v.name == name) {
            driver.request(view);
            self.health.set_filling(driver.filling());
        }
    }

    /// One read, announced, handed over and merged (or given up). `true` after a transient
    /// failure of a refresh or backfill read (it is retried after a pause).
    async fn perform(&mut self, work: Work, queue: &mut Queue) -> Result<bool, MergeGone> {
        self.send(SnapshotEvent::Begin).await?;
        let (outcome, transient) = match work {
            Work::Fill(fill) => (self.fill(fill).await, false),
            Work::Refresh => self.refresh(queue).await,
            Work::Backfill => self.backfill().await,
        };
        self.send(outcome).await?;
        self.wait_merged(queue).await?;
        Ok(transient)
    }

    async fn fill(&mut self, fill: FillRequest) -> SnapshotEvent {
        let (answer, event) = match self.read_fill(&fill).await {
            Ok(Some(read)) => (Ok(true), SnapshotEvent::Read(read)),
            Ok(None) => (Ok(false), SnapshotEvent::Failed(ReadFailure::default())),
            Err(error) => (
                Err(chain(&error)),
                SnapshotEvent::Failed(ReadFailure::default()),
            ),
        };
        let _ = fill.reply.send(answer);
        event
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
        let tail = keyset_tail(&table, matching_condition(&fill.columns), None, 100);
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
        if read.rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(Read {
            table: view.source.clone(),
            views: vec![view.name.clone()],
            rows: read.rows,
            joined: read.joined,
            position: read.position,
            kind: ReadKind::Fill {
                restore: fill.restore,
            },
        }))
    }

    async fn refresh(&mut self, queue: &mut Queue) -> (SnapshotEvent, bool) {
        let Some(reading) = queue.refresh.as_mut() else {
            return (SnapshotEvent::Failed(ReadFailure::default()), false);
        };
        match reading.read_next(&mut self.tables, self.chunk_rows).await {
            Ok(read) => {
                if matches!(read.kind, ReadKind::Refresh { last: true }) {
                    queue.refresh = None;
                }
                (SnapshotEvent::Read(read), false)
            }
            Err(error) if error.is_transient() => {
                // The marks stay; the read is tried again after a pause.
                warn!(error = %chain(&error), "join refresh read failed; retrying");
                (SnapshotEvent::Failed(ReadFailure::default()), true)
            }
            Err(error) => {
                let view = reading.view.name.clone();
                error!(view = %view, error = %chain(&error), "join refresh read failed for good");
                queue.refresh = None;
                let failure = ReadFailure {
                    halted_view: Some(view),
                    backfill_stopped: false,
                };
                (SnapshotEvent::Failed(failure), false)
            }
        }
    }

    async fn backfill(&mut self) -> (SnapshotEvent, bool) {
        let Some(driver) = self.driver.as_mut() else {
            return (SnapshotEvent::Failed(ReadFailure::default()), false);
        };
        let result = driver.read_next(&mut self.tables).await;
        self.health.set_filling(driver.filling());
        match result {
            Ok(Some(read)) => (SnapshotEvent::Read(read), false),
            Ok(None) => (SnapshotEvent::Failed(ReadFailure::default()), false),
            Err(error) if error.is_transient() => {
                warn!(error = %chain(&error), "backfill read failed; retrying");
                (SnapshotEvent::Failed(ReadFailure::default()), true)
            }
            Err(error) => {
                error!(error = %chain(&error), views = ?driver.filling(), "backfill stopped; these views stay incomplete");
                self.driver = None;
                let failure = ReadFailure {
                    halted_view: None,
                    backfill_stopped: true,
                };
                (SnapshotEvent::Failed(failure), false)
            }
        }
    }

    /// Waits until the merge stage has merged (or given up) the read just handed over, taking
    /// in what arrives meanwhile.
    async fn wait_merged(&mut self, queue: &mut Queue) -> Result<(), MergeGone> {
        loop {
            tokio::select! {
                message = self.inbox.recv() => match message {
                    Some(WorkerMsg::Merged) => return Ok(()),
                    Some(message) => self.on_message(message, queue),
                    None => return Err(MergeGone),
                },
                Some(fill) = self.fills.recv() => queue.fills.push_back(fill),
                Some(view) = self.requests.recv() => self.request(&view),
            }
        }
    }

    async fn send(&self, event: SnapshotEvent) -> Result<(), MergeGone> {
        self.out.send(event).await.map_err(|_| MergeGone)
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
