//! Keeping views with joins exact: a row change marks the root rows whose items it may change,
//! and the marked items are read again — root rows and related rows together, in one consistent
//! snapshot at a binlog position P — and merged into the stream at P, like a backfill chunk.
//!
//! Why queries at a known position rather than an index kept by rowcast: the source already
//! holds every related row, indexed, and a snapshot read gives the join over one state of the
//! database, so an item is never a mix of two moments, and nothing of the source is copied into
//! rowcast's memory or the checkpoint. The cost is SQL reads: one snapshot per batch of marked
//! keys (up to [`KEYS_PER_QUERY`] of them, `chunk_rows` root rows), with one SELECT for the root
//! rows and one per join. Marks are deduplicated and gather for one window (the writer's
//! `flush_interval_ms`, or until a batch is full), so a burst of changes to one hot parent costs
//! one refresh per window, not one per change.
//!
//! What marks what (for view V with root table R):
//! - a change of a row of R marks that row (by primary key); its deletes and key moves are
//!   written from the binlog directly, as for any view;
//! - a change of a related row marks the roots whose `on` columns equal the related row's, for
//!   its before and its after image (a row moving between parents refreshes both), unless the
//!   change leaves every column the join reads as it was.
//!
//! Crash safety: a mark is in memory only, so the checkpoint must not pass the transaction that
//! made it until its refresh is acknowledged. Barriers carry the restart point of the oldest
//! transaction with a mark outstanding ([`Refresher::floor`]); after a crash the binlog is read
//! again from there, the marks are made again and the refresh happens. Memory is bounded: a view
//! with more than `max_dirty` keys waiting is backfilled again instead (its rows are all read
//! again, chunk by chunk), and its marks are dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::{Pool, Value};
use tracing::{debug, error, warn};

use super::driver::Injection;
use super::join::{cell_param, in_condition, read_roots, KEYS_PER_QUERY};
use super::read::keyset_tail;
use crate::checkpoint::Position;
use crate::metrics::metrics;
use crate::source::schema::SchemaCache;
use crate::source::SourceError;
use crate::view::join::{row_join_key, JoinValue};
use crate::view::spec::{TableRef, View};
use crate::view::Row;

/// Where a restart must read from so that a mark is made again: the counter of the transaction
/// before the marking one, and the position the marking one starts at.
#[derive(Debug, Clone, PartialEq)]
pub struct Restart {
    pub seq: u64,
    pub position: Position,
}

/// One marked key: the root columns' values.
#[derive(Debug, Clone)]
struct Mark {
    params: Vec<Value>,
    /// Counter of the first transaction that marked it since its last refresh.
    seq: u64,
}

/// Marked keys of one view over one list of root columns.
#[derive(Debug, Default)]
struct DirtySet {
    marks: BTreeMap<Vec<JoinValue>, Mark>,
}

/// A batch being refreshed: read chunk by chunk when it matches more than `chunk_rows` roots.
struct Batch {
    view: usize,
    columns: Vec<String>,
    marks: Vec<Mark>,
    after: Option<Vec<Value>>,
}

struct Waiting {
    injection: Injection,
    finished: bool,
}

pub struct Refresher {
    views: Vec<Arc<View>>,
    /// Per view, per root-column list.
    dirty: Vec<BTreeMap<Vec<String>, DirtySet>>,
    /// Outstanding marks by the transaction that made them, with its restart point.
    floor: BTreeMap<u64, (usize, Position)>,
    batch: Option<Batch>,
    waiting: Option<Waiting>,
    /// Next view to serve (round robin).
    turn: usize,
    chunk_rows: usize,
    max_dirty: usize,
    /// How long marks gather before a read (a burst on one parent is read once per window).
    window: Duration,
    /// When the oldest waiting mark was made.
    first_mark_at: Option<Instant>,
    /// Views to backfill again (too many marks); the reader hands them to the backfill driver.
    overflowed: Vec<String>,
    /// Views whose root table turned out to have no primary key (reported once).
    warned_no_key: Vec<usize>,
    /// Whether a backfill can replace the marks of a view that has too many.
    overflow_allowed: bool,
}

impl Refresher {
    /// `views`: every view; only those with joins are kept.
    pub fn new(
        views: &[Arc<View>],
        chunk_rows: usize,
        max_dirty: usize,
        window: Duration,
    ) -> Refresher {
        let views: Vec<Arc<View>> = views.iter().filter(|v| v.has_joins()).cloned().collect();
        for view in &views {
            metrics().join_dirty.with_label_values(&[&view.name]).set(0);
        }
        Refresher {
            dirty: views.iter().map(|_| BTreeMap::new()).collect(),
            views,
            floor: BTreeMap::new(),
            batch: None,
            waiting: None,
            turn: 0,
            chunk_rows: chunk_rows.max(1),
            max_dirty: max_dirty.max(1),
            window,
            first_mark_at: None,
            overflowed: Vec::new(),
            warned_no_key: Vec::new(),
            overflow_allowed: true,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// Tables whose changes matter to joins (related tables; roots are followed anyway).
    pub fn tables(&self) -> Vec<TableRef> {
        self.views
            .iter()
            .flat_map(|v| v.joins.iter().map(|j| j.from.clone()))
            .collect()
    }

    /// The restart point of the oldest transaction whose marks are not refreshed yet.
    pub fn floor(&self) -> Option<Restart> {
        self.floor
            .iter()
            .next()
            .map(|(seq, (_, position))| Restart {
                seq: seq.saturating_sub(1),
                position: position.clone(),
            })
    }

    /// Whether overflowing views may be backfilled again (the backfill driver still runs).
    pub fn allow_overflow(&mut self, allowed: bool) {
        self.overflow_allowed = allowed;
    }

    /// Views that overflowed since the last call.
    pub fn take_overflowed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.overflowed)
    }

    /// Marks what the change of a row of `table` in transaction `seq` may change. `restart` is
    /// where that transaction starts (the end of the one before, counter `seq - 1`).
    pub async fn mark(
        &mut self,
        schemas: &mut SchemaCache,
        table: &TableRef,
        before: Option<&Row>,
        after: Option<&Row>,
        (seq, restart): (u64, &Position),
    ) -> Result<(), SourceError> {
        for v in 0..self.views.len() {
            let view = self.views[v].clone();
            if view.source != *table && !view.joins.iter().any(|j| j.from == *table) {
                continue;
            }
            let root = schemas.sql_table(&view.source).await?;
            let primary_key = &root.primary_key;
            if primary_key.is_empty() {
                // `check --connect` reports it; the other views carry on.
                if !self.warned_no_key.contains(&v) {
                    error!(view = %view.name, table = %view.source, "the root table has no primary key: this view's joins cannot be refreshed");
                    metrics()
                        .view_halted
                        .with_label_values(&[&view.name])
                        .set(1);
                    self.warned_no_key.push(v);
                }
                continue;
            }
            if view.source == *table {
                if let Some(row) = after {
                    let columns: Vec<&str> = primary_key.iter().map(String::as_str).collect();
                    self.add(v, &columns, &columns, row, (seq, restart), "root");
                }
            }
            for join in view.joins.iter().filter(|j| j.from == *table) {
                if let (Some(old), Some(new)) = (before, after) {
                    let unchanged = if join.reads_every_column() {
                        old.cells == new.cells
                    } else {
                        join.from_columns().iter().all(|c| old.get(c) == new.get(c))
                    };
                    if unchanged {
                        continue;
                    }
                }
                let from_columns: Vec<&str> = join.on.iter().map(|(f, _)| f.as_str()).collect();
                let root_columns: Vec<&str> = join.on.iter().map(|(_, r)| r.as_str()).collect();
                for image in [before, after].into_iter().flatten() {
                    self.add(
                        v,
                        &root_columns,
                        &from_columns,
                        image,
                        (seq, restart),
                        "related",
                    );
                }
            }
        }
        Ok(())
    }

    fn add(
        &mut self,
        view: usize,
        root_columns: &[&str],
        image_columns: &[&str],
        image: &Row,
        (seq, restart): (u64, &Position),
        cause: &str,
    ) {
        let Some(key) = row_join_key(image, image_columns.iter().copied()) else {
            return;
        };
        let params: Option<Vec<Value>> = image_columns
            .iter()
            .map(|c| image.get(c).and_then(cell_param))
            .collect();
        let Some(params) = params else { return };
        let name = self.views[view].name.clone();
        let name = name.as_str();
        metrics().join_marks.with_label_values(&[name, cause]).inc();
        let set = self.dirty[view]
            .entry(root_columns.iter().map(|c| c.to_string()).collect())
            .or_default();
        if set.marks.contains_key(&key) {
            return;
        }
        set.marks.insert(key, Mark { params, seq });
        self.first_mark_at.get_or_insert_with(Instant::now);
        let entry = self
            .floor
            .entry(seq)
            .or_insert_with(|| (0, restart.clone()));
        entry.0 += 1;
        let waiting: usize = self.dirty[view].values().map(|s| s.marks.len()).sum();
        metrics()
            .join_dirty
            .with_label_values(&[name])
            .set(waiting as i64);
        if waiting > self.max_dirty && self.overflow_allowed {
            warn!(view = %name, waiting, max = self.max_dirty, "too many keys waiting for a refresh; the view is backfilled again instead");
            metrics().join_overflows.with_label_values(&[name]).inc();
            let dropped: Vec<u64> = self.dirty[view]
                .values()
                .flat_map(|s| s.marks.values().map(|m| m.seq))
                .collect();
            self.dirty[view].clear();
            if self.dirty_count() == 0 {
                self.first_mark_at = None;
            }
            for seq in dropped {
                self.release(seq);
            }
            metrics().join_dirty.with_label_values(&[name]).set(0);
            self.overflowed.push(name.to_string());
        }
    }

    fn release(&mut self, seq: u64) {
        if let Some(entry) = self.floor.get_mut(&seq) {
            entry.0 = entry.0.saturating_sub(1);
            if entry.0 == 0 {
                self.floor.remove(&seq);
            }
        }
    }

    fn dirty_count(&self) -> usize {
        self.dirty
            .iter()
            .flat_map(|d| d.values())
            .map(|s| s.marks.len())
            .sum()
    }

    /// Whether a refresh read is due now: a batch is half read, or marks have gathered for a
    /// window (or fill a batch already).
    pub fn wants_read(&self) -> bool {
        if self.waiting.is_some() {
            return false;
        }
        if self.batch.is_some() {
            return true;
        }
        let count = self.dirty_count();
        count > 0
            && (count >= KEYS_PER_QUERY
                || self
                    .first_mark_at
                    .is_none_or(|at| at.elapsed() >= self.window))
    }

    /// When gathered marks become due, if some wait for their window.
    pub fn due_at(&self) -> Option<Instant> {
        if self.waiting.is_some() || self.batch.is_some() {
            return None;
        }
        self.first_mark_at.map(|at| at + self.window)
    }

    pub fn waiting_position(&self) -> Option<&Position> {
        self.waiting.as_ref().map(|w| &w.injection.position)
    }

    fn next_batch(&mut self) -> Option<Batch> {
        let count = self.views.len();
        for step in 0..count {
            let v = (self.turn + step) % count;
            let Some((columns, set)) = self.dirty[v].iter_mut().find(|(_, s)| !s.marks.is_empty())
            else {
                continue;
            };
            let columns = columns.clone();
            let mut marks = Vec::new();
            while marks.len() < KEYS_PER_QUERY {
                let Some((_, mark)) = set.marks.pop_first() else {
                    break;
                };
                marks.push(mark);
            }
            self.turn = (v + 1) % count;
            if self.dirty_count() == 0 {
                self.first_mark_at = None;
            }
            let waiting: usize = self.dirty[v].values().map(|s| s.marks.len()).sum();
            metrics()
                .join_dirty
                .with_label_values(&[&self.views[v].name])
                .set(waiting as i64);
            return Some(Batch {
                view: v,
                columns,
                marks,
                after: None,
            });
        }
        None
    }

    /// Reads the next chunk of marked roots with their related rows, in one snapshot; it waits
    /// for the stream to reach the snapshot's position.
    pub async fn read_next(
        &mut self,
        pool: &Pool,
        schemas: &mut SchemaCache,
    ) -> Result<(), SourceError> {
        if self.waiting.is_some() {
            return Ok(());
        }
        if self.batch.is_none() {
            self.batch = self.next_batch();
        }
        let Some(batch) = self.batch.as_ref() else {
            return Ok(());
        };
        let view = self.views[batch.view].clone();
        let root = schemas.sql_table(&view.source).await?;
        let columns: Vec<&str> = batch.columns.iter().map(String::as_str).collect();
        let keys: Vec<Vec<Value>> = batch.marks.iter().map(|m| m.params.clone()).collect();
        let condition = in_condition(&columns, &keys);
        let (tail, params) = keyset_tail(
            &root,
            Some(condition),
            batch.after.as_deref(),
            self.chunk_rows,
        );
        let mut conn = pool.get_conn().await.map_err(SourceError::Query)?;
        let read = read_roots(
            &mut conn,
            schemas,
            &root,
            Some(&view),
            (tail, params),
            &|_| true,
        )
        .await?;
        let (rows, last_key, joined, position) =
            (read.rows, read.last_key, read.joined, read.position);
        let name = view.name.as_str();
        metrics()
            .join_refresh_reads
            .with_label_values(&[name])
            .inc();
        metrics()
            .join_refresh_rows
            .with_label_values(&[name])
            .inc_by(rows.len() as u64);
        let finished = rows.len() < self.chunk_rows;
        debug!(view = %name, keys = keys.len(), rows = rows.len(), %position, "join refresh read");
        if let (Some(batch), Some(last)) = (self.batch.as_mut(), last_key) {
            batch.after = Some(last);
        }
        self.waiting = Some(Waiting {
            injection: Injection {
                table: view.source.clone(),
                views: vec![view.name.clone()],
                rows,
                joined,
                position,
            },
            finished,
        });
        Ok(())
    }

    /// The waiting read once the stream has reached its position; the marks it covers are
    /// released when its last chunk is taken.
    pub fn take_if_reached(&mut self, at: &Position) -> Option<Injection> {
        let position = self.waiting_position()?;
        if crate::source::position_before(at, position) {
            return None;
        }
        let waiting = self.waiting.take()?;
        if waiting.finished {
            if let Some(batch) = self.batch.take() {
                for mark in batch.marks {
                    self.release(mark.seq);
                }
            }
        }
        Some(waiting.injection)
    }

    /// The view of the batch being read (after a failed read).
    pub fn failing_view(&self) -> Option<String> {
        self.batch.as_ref().map(|b| self.views[b.view].name.clone())
    }

    /// Forgets a view (halted by a definite error): its marks no longer hold the checkpoint.
    pub fn drop_view(&mut self, name: &str) {
        let Some(v) = self.views.iter().position(|view| view.name == name) else {
            return;
        };
        let mut seqs: Vec<u64> = self.dirty[v]
            .values()
            .flat_map(|s| s.marks.values().map(|m| m.seq))
            .collect();
        self.dirty[v].clear();
        if self.batch.as_ref().is_some_and(|b| b.view == v) {
            if let Some(batch) = self.batch.take() {
                seqs.extend(batch.marks.iter().map(|m| m.seq));
            }
            self.waiting = None;
        }
        for seq in seqs {
            self.release(seq);
        }
    }
}
