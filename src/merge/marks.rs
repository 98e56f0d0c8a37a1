//! Keeping views with joins exact: a row change marks the root rows whose items it may change,
//! and the marked roots are read again by the snapshot worker — root rows and related rows
//! together, in one consistent snapshot at a binlog position P — and merged into the stream at
//! P, like a backfill chunk.
//!
//! Why queries at a known position rather than an index kept by rowcast: the source already
//! holds every related row, indexed, and a snapshot read gives the join over one state of the
//! database, so an item is never a mix of two moments, and nothing of the source is copied into
//! rowcast's memory or the checkpoint. The cost is SQL reads: one snapshot per batch of marked
//! keys (up to [`KEYS_PER_QUERY`] of them), with one SELECT for the root rows and one per join.
//! Marks are deduplicated and gather for one window (the writer's `flush_interval_ms`, or until
//! a batch is full), so a burst of changes to one hot parent costs one refresh per window.
//!
//! What marks what (for view V with root table R):
//! - a change of a row of R marks that row (by primary key); its deletes and key moves are
//!   written from the binlog directly, as for any view;
//! - a change of a related row marks the roots whose `on` columns equal the related row's, for
//!   its before and its after image (a row moving between parents refreshes both), unless the
//!   change leaves every column the join reads as it was.
//!
//! Crash safety: a mark is in memory only, so the checkpoint must not pass the transaction that
//! made it until its refresh is merged and acknowledged. Barriers carry the restart point of the
//! oldest transaction with a mark outstanding ([`Marks::floor`]); after a crash the binlog is
//! read again from there, the marks are made again and the refresh happens. Memory is bounded:
//! a view with more than `max_dirty` keys waiting is backfilled again instead (its rows are all
//! read again, chunk by chunk), and its marks are dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::Value;
use tracing::warn;

use crate::metrics::metrics;
use crate::pipeline::snapshot::RefreshBatch;
use crate::pipeline::{Position, Restart};
use crate::sql::{cell_param, SqlError, TableCache, KEYS_PER_QUERY};
use crate::view::join::{row_join_key, JoinValue};
use crate::view::spec::{JoinKind, TableRef, View};
use crate::view::Row;

/// One marked key: the root columns' values.
#[derive(Debug, Clone)]
struct Mark {
    params: Vec<Value>,
    /// Counter of the first transaction that marked it since its last refresh.
    seq: u64,
}

/// Marked keys of one view over one list of root columns, read oldest first: a mark waits for
/// at most the marks made before it, whatever its key, so a steady flow of new marks never
/// keeps an old one (which holds the checkpoint) from its refresh.
#[derive(Debug, Default)]
struct DirtySet {
    marks: BTreeMap<Vec<JoinValue>, Mark>,
    /// The same keys by the counter of the transaction that marked them.
    by_age: BTreeSet<(u64, Vec<JoinValue>)>,
}

impl DirtySet {
    /// Adds `key` unless it is marked already (its older mark stands).
    fn insert(&mut self, key: Vec<JoinValue>, mark: Mark) -> bool {
        if self.marks.contains_key(&key) {
            return false;
        }
        self.by_age.insert((mark.seq, key.clone()));
        self.marks.insert(key, mark);
        true
    }

    fn pop_oldest(&mut self) -> Option<Mark> {
        let (_, key) = self.by_age.pop_first()?;
        self.marks.remove(&key)
    }

    fn oldest(&self) -> Option<u64> {
        self.by_age.first().map(|(seq, _)| *seq)
    }
}

/// The batch the snapshot worker is reading.
struct InFlight {
    view: usize,
    marks: Vec<Mark>,
}

/// Who made a mark: the transaction's counter, and where it starts (the end of the one before).
#[derive(Clone, Copy)]
pub struct MarkedBy<'a> {
    pub seq: u64,
    pub restart: &'a Position,
}

pub struct Marks {
    views: Vec<Arc<View>>,
    /// Per view, per root-column list.
    dirty: Vec<BTreeMap<Vec<String>, DirtySet>>,
    /// Outstanding marks by the transaction that made them, with its restart point.
    floor: BTreeMap<u64, (usize, Position)>,
    in_flight: Option<InFlight>,
    /// Next view to serve (round robin).
    turn: usize,
    max_dirty: usize,
    /// How long marks gather before a read (a burst on one parent is read once per window).
    window: Duration,
    /// When the oldest waiting mark was made.
    first_mark_at: Option<Instant>,
    /// Views to backfill again (too many marks).
    overflowed: Vec<String>,
    /// Views whose root table turned out to have no primary key (halted once).
    warned_no_key: Vec<usize>,
    /// Views a change without a column their joins need was logged for (once until the next
    /// DDL: a replay reads many).
    warned_unmarkable: Vec<usize>,
    /// Views such a change was read for since the last call of [`Marks::take_unmarkable`].
    unmarkable: Vec<String>,
}

impl Marks {
    /// `views`: every view; only those with joins are kept.
    pub fn new(views: &[Arc<View>], max_dirty: usize, window: Duration) -> Marks {
        let views: Vec<Arc<View>> = views.iter().filter(|v| v.has_joins()).cloned().collect();
        for view in &views {
            metrics().join_dirty.with_label_values(&[&view.name]).set(0);
        }
        Marks {
            dirty: views.iter().map(|_| BTreeMap::new()).collect(),
            views,
            floor: BTreeMap::new(),
            in_flight: None,
            turn: 0,
            max_dirty: max_dirty.max(1),
            window,
            first_mark_at: None,
            overflowed: Vec::new(),
            warned_no_key: Vec::new(),
            warned_unmarkable: Vec::new(),
            unmarkable: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// Tables whose changes matter to joins (related tables; roots are followed anyway).
    pub fn tables(views: &[Arc<View>]) -> Vec<TableRef> {
        views
            .iter()
            .filter(|v| v.has_joins())
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

    /// Forgets which views were found without a primary key on their root (after DDL, which may
    /// have given it back: one found without it again is halted again).
    pub fn forget_unkeyed(&mut self) {
        self.warned_no_key.clear();
        self.warned_unmarkable.clear();
    }

    /// Views that overflowed since the last call.
    pub fn take_overflowed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.overflowed)
    }

    /// Views a change could not be marked for since the last call (see `unmarkable`).
    pub fn take_unmarkable(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unmarkable)
    }

    /// Marks what the change of a row of `table` may change. Returns the views this change
    /// found without a primary key on their root (a key dropped while rowcast runs), once
    /// each: their items cannot be refreshed, and the caller halts them at this change.
    pub async fn mark(
        &mut self,
        tables: &mut TableCache,
        table: &TableRef,
        (before, after): (Option<&Row>, Option<&Row>),
        by: MarkedBy<'_>,
    ) -> Result<Vec<String>, SqlError> {
        let mut unkeyed = Vec::new();
        for v in 0..self.views.len() {
            let view = self.views[v].clone();
            if !view.reads_table(table) {
                continue;
            }
            let root = tables.get(&view.source).await?;
            let primary_key = &root.primary_key;
            if primary_key.is_empty() {
                // `check --connect` reports it; the other views carry on. Once until the next
                // DDL (`forget_unkeyed`): a key dropped again after a rebuild halts again.
                if !self.warned_no_key.contains(&v) {
                    self.warned_no_key.push(v);
                    unkeyed.push(view.name.clone());
                }
                continue;
            }
            if view.source == *table {
                if let Some(row) = after {
                    let columns: Vec<&str> = primary_key.iter().map(String::as_str).collect();
                    self.add(v, (&columns, &columns), row, by, ("root", true));
                }
            }
            for join in view.joins.iter().filter(|j| j.from == *table) {
                if let (Some(old), Some(new)) = (before, after) {
                    let unchanged = if join.reads_every_column() {
                        old.cells == new.cells
                    } else {
                        // An embedded list is ordered by the related table's primary key
                        // last, and an aggregate folds its rows in that order (a sum of
                        // floating-point values depends on it): a change of only that key may
                        // reorder either.
                        let related = match join.kind {
                            JoinKind::Embed { .. } | JoinKind::Aggregate { .. } => {
                                Some(tables.get(table).await?)
                            }
                            _ => None,
                        };
                        let ordering_key = related.iter().flat_map(|t| &t.primary_key);
                        join.from_columns()
                            .into_iter()
                            .chain(ordering_key.map(String::as_str))
                            .all(|c| old.get(c) == new.get(c))
                    };
                    if unchanged {
                        continue;
                    }
                }
                let from_columns: Vec<&str> = join.on.iter().map(|(f, _)| f.as_str()).collect();
                let root_columns: Vec<&str> = join.on.iter().map(|(_, r)| r.as_str()).collect();
                // A join column the table no longer has (dropped: the view is resynced and
                // halts for it elsewhere) is no reason to backfill the view at each change.
                // SQL's table is asked only when an image lacks one (not for every change).
                let images = [before, after].into_iter().flatten();
                let current = columns_current(tables, table, images.clone(), &from_columns).await?;
                for image in images {
                    self.add(
                        v,
                        (&root_columns, &from_columns),
                        image,
                        by,
                        ("related", current),
                    );
                }
            }
        }
        Ok(unkeyed)
    }

    /// Marks the root whose `root_columns` equal the `image_columns` of `image`.
    fn add(
        &mut self,
        view: usize,
        (root_columns, image_columns): (&[&str], &[&str]),
        image: &Row,
        by: MarkedBy<'_>,
        // What the mark is for; whether SQL's table has every one of `image_columns` now.
        (cause, current): (&str, bool),
    ) {
        let Some(key) = row_join_key(image, image_columns.iter().copied()) else {
            if current {
                self.unmarkable(view, image_columns, image);
            }
            return;
        };
        let params: Option<Vec<Value>> = image_columns
            .iter()
            .map(|c| image.get(c).and_then(cell_param))
            .collect();
        let Some(params) = params else {
            if current {
                self.unmarkable(view, image_columns, image);
            }
            return;
        };
        let name = self.views[view].name.clone();
        metrics()
            .join_marks
            .with_label_values(&[&name, cause])
            .inc();
        let set = self.dirty[view]
            .entry(root_columns.iter().map(|c| c.to_string()).collect())
            .or_default();
        let mark = Mark {
            params,
            seq: by.seq,
        };
        if !set.insert(key, mark) {
            return;
        }
        self.first_mark_at.get_or_insert_with(Instant::now);
        let entry = self
            .floor
            .entry(by.seq)
            .or_insert_with(|| (0, by.restart.clone()));
        entry.0 += 1;
        let waiting = self.waiting(view);
        metrics()
            .join_dirty
            .with_label_values(&[&name])
            .set(waiting as i64);
        if waiting > self.max_dirty {
            warn!(view = %name, waiting, max = self.max_dirty, "too many keys waiting for a refresh; the view is backfilled again instead");
            metrics().join_overflows.with_label_values(&[&name]).inc();
            self.drop_marks(view);
            self.overflowed.push(name);
        }
    }

    /// A row image that has no column of that name among `image_columns` (a NULL in one marks
    /// nothing: no root row joins it): the root's key or a join column as SQL has them now is
    /// not in the table the change was made to (an `ALTER` after it, read again by a replay
    /// from an older checkpoint or by a reader far behind). Which items the change makes
    /// cannot be told, so the merge stage backfills the view again (`take_unmarkable`), unless
    /// a pass that covers the change is pending or began after it. Before
    /// 2026-12-07 the change marked nothing, without a word, and its items stayed as they were
    /// (found by a review; `tests/joins.rs`
    /// `changes_read_after_their_root_tables_key_changed_reach_the_views`, seen failing).
    fn unmarkable(&mut self, view: usize, image_columns: &[&str], image: &Row) {
        let Some(column) = image_columns.iter().find(|c| image.get(c).is_none()) else {
            return;
        };
        let name = self.views[view].name.clone();
        if !self.warned_unmarkable.contains(&view) {
            self.warned_unmarkable.push(view);
            warn!(view = %name, %column, "a row change has no column the view's joins need (its table changed after the change was made): the view is backfilled again");
        }
        if !self.unmarkable.contains(&name) {
            self.unmarkable.push(name);
        }
    }

    /// Drops the waiting marks of view `name`: a pass that begins now covers them.
    pub fn drop_marks_of(&mut self, name: &str) {
        if let Some(v) = self.views.iter().position(|view| view.name == name) {
            self.drop_marks(v);
        }
    }

    fn waiting(&self, view: usize) -> usize {
        self.dirty[view].values().map(|s| s.marks.len()).sum()
    }

    fn dirty_count(&self) -> usize {
        (0..self.views.len()).map(|v| self.waiting(v)).sum()
    }

    /// Forgets the waiting marks of a view (they no longer hold the checkpoint).
    fn drop_marks(&mut self, view: usize) {
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
        metrics()
            .join_dirty
            .with_label_values(&[&self.views[view].name])
            .set(0);
    }

    fn release(&mut self, seq: u64) {
        if let Some(entry) = self.floor.get_mut(&seq) {
            entry.0 = entry.0.saturating_sub(1);
            if entry.0 == 0 {
                self.floor.remove(&seq);
            }
        }
    }

    /// When the gathered marks are due for a read, if there are some and no batch is being
    /// read: at once when a batch is full, else one window after the oldest mark.
    pub fn due_at(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        let first = self.first_mark_at?;
        if self.dirty_count() >= KEYS_PER_QUERY {
            return Some(first);
        }
        Some(first + self.window)
    }

    /// The next batch of marked roots to read (round robin over the views; in a view, the
    /// oldest marks first), kept in flight until [`Marks::finish_batch`].
    pub fn next_batch(&mut self) -> Option<RefreshBatch> {
        if self.in_flight.is_some() {
            return None;
        }
        let count = self.views.len();
        for step in 0..count {
            let v = (self.turn + step) % count;
            // The list of root columns with the oldest mark, its oldest marks first.
            let Some((columns, set)) = self.dirty[v]
                .iter_mut()
                .filter_map(|(columns, set)| Some((set.oldest()?, columns, set)))
                .min_by_key(|(oldest, _, _)| *oldest)
                .map(|(_, columns, set)| (columns, set))
            else {
                continue;
            };
            let columns = columns.clone();
            let mut marks = Vec::new();
            while marks.len() < KEYS_PER_QUERY {
                let Some(mark) = set.pop_oldest() else {
                    break;
                };
                marks.push(mark);
            }
            self.turn = (v + 1) % count;
            if self.dirty_count() == 0 {
                self.first_mark_at = None;
            }
            metrics()
                .join_dirty
                .with_label_values(&[&self.views[v].name])
                .set(self.waiting(v) as i64);
            let batch = RefreshBatch {
                view: self.views[v].name.clone(),
                columns,
                keys: marks.iter().map(|m| m.params.clone()).collect(),
            };
            self.in_flight = Some(InFlight { view: v, marks });
            return Some(batch);
        }
        None
    }

    /// The batch in flight is merged to its end: its marks stop holding the checkpoint.
    pub fn finish_batch(&mut self) {
        if let Some(batch) = self.in_flight.take() {
            for mark in batch.marks {
                self.release(mark.seq);
            }
        }
    }

    /// Forgets a view (halted by a definite error): its marks no longer hold the checkpoint.
    pub fn drop_view(&mut self, name: &str) {
        let Some(v) = self.views.iter().position(|view| view.name == name) else {
            return;
        };
        self.drop_marks(v);
        if self.in_flight.as_ref().is_some_and(|b| b.view == v) {
            self.finish_batch();
        }
    }
}

/// Whether SQL's `table` has every one of `columns` now, asked only when one of `images` lacks
/// one (otherwise the answer does not matter: only an image lacking one goes unmarked).
async fn columns_current<'a>(
    tables: &mut TableCache,
    table: &TableRef,
    mut images: impl Iterator<Item = &'a Row>,
    columns: &[&str],
) -> Result<bool, SqlError> {
    if !images.any(|image| columns.iter().any(|c| image.get(c).is_none())) {
        return Ok(true);
    }
    let related = tables.get(table).await?;
    Ok(columns.iter().all(|c| related.schema.position(c).is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::row::{ColumnKind, ColumnSchema, TableSchema};
    use crate::view::value::Cell;

    fn view() -> Arc<View> {
        let text = "name = \"lines\"\ntable = \"shop_views\"\nsource = \"shop.lines\"\n[key]\npk = \"LINE#{id}\"\n[attributes]\nzone = \"zone_id\"\n[[lookup]]\nfrom = \"shop.zones\"\non = { id = \"zone_id\" }\n[lookup.attributes]\nzone_name = \"name\"\n";
        Arc::new(crate::config::compile_view(std::path::Path::new("lines.toml"), text).unwrap())
    }

    fn row(table: &str, columns: &[&str], cells: Vec<Cell>) -> Row {
        let columns = columns
            .iter()
            .map(|name| ColumnSchema {
                name: (*name).into(),
                kind: ColumnKind::Int { unsigned: false },
                is_virtual: false,
            })
            .collect();
        Row {
            schema: Arc::new(TableSchema::new(TableRef::parse(table).unwrap(), columns)),
            cells,
        }
    }

    /// A zone's change marks its lines (root column `zone_id`); then a steady flow of new lines
    /// (root column `id`, which sorts first) keeps coming while each batch is read. The zone's
    /// mark is read in the second batch; before, the set that sorted first was always taken,
    /// and the zone's mark (holding the checkpoint) waited as long as the flow lasted.
    #[test]
    fn an_old_mark_is_read_before_a_steady_flow_of_newer_ones() {
        let mut marks = Marks::new(&[view()], 100_000, Duration::from_millis(1));
        let restart = Position {
            file: "binlog.000001".into(),
            pos: 4,
            gtid: None,
        };
        let by = |seq| MarkedBy {
            seq,
            restart: &restart,
        };
        let line = |id: i64| {
            row(
                "shop.lines",
                &["id", "zone_id"],
                vec![Cell::Int(id), Cell::Int(7)],
            )
        };
        let zone = row(
            "shop.zones",
            &["id", "name"],
            vec![Cell::Int(7), Cell::Int(0)],
        );
        marks.add(0, (&["id"], &["id"]), &line(1), by(1), ("root", true));
        marks.add(0, (&["zone_id"], &["id"]), &zone, by(2), ("related", true));
        let mut next_id = 2;
        let mut batches = Vec::new();
        for seq in 3..40 {
            for _ in 0..(KEYS_PER_QUERY + 10) {
                marks.add(
                    0,
                    (&["id"], &["id"]),
                    &line(next_id),
                    by(seq),
                    ("root", true),
                );
                next_id += 1;
            }
            let batch = marks.next_batch().expect("a batch");
            batches.push(batch.columns.clone());
            marks.finish_batch();
        }
        let zone_at = batches
            .iter()
            .position(|c| c == &vec!["zone_id".to_string()]);
        assert_eq!(zone_at, Some(1), "{batches:?}");
        // Within a list, by age: the first line (seq 1) came first, before the newer ones.
        assert!(
            marks.floor().is_some_and(|r| r.seq >= 2),
            "the oldest marks are read"
        );
    }
}
