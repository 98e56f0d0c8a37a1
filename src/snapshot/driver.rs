//! The backfill plan the snapshot worker works through: groups of eager views that share a root
//! table and a resume point, one chunk at a time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use mysql_async::Value;
use tracing::{error, info, warn};

use crate::metrics::metrics;
use crate::pipeline::snapshot::{Read, ReadKind};
use crate::pipeline::{BackfillState, KeyValue, Progress};
use crate::sql::join::{read_roots, SnapshotRead};
use crate::sql::keyset_tail;
use crate::sql::{SqlError, TableCache};
use crate::view::join::Joined;
use crate::view::spec::{FillMode, TableRef, View};
use crate::view::Row;

/// Views of one table at the same resume point.
struct Group {
    table: TableRef,
    /// A view with joins is backfilled alone: its rows need its related rows.
    joined_view: Option<Arc<View>>,
    views: Vec<String>,
    after: Option<Vec<Value>>,
    /// Its first chunk was read (estimated, logged); each chunk reads the table as it is now.
    started: bool,
    estimated: u64,
    done_rows: u64,
    /// XA transactions prepared when the pass began (`XA RECOVER` before its first chunk; see
    /// [`Progress::xa_pending`]). The merge stage takes them from the pass's first chunk only.
    xa_pending: Vec<String>,
    /// Rows the next chunk asks for (see [`chunk_limit`]).
    limit: usize,
}

/// What a backfill chunk's rows may take, about, in bytes: two chunks are in flight at most.
pub const CHUNK_BYTES: usize = 4 << 20;

/// Rows a group's first chunk asks for, before it knows how wide its rows are (a join
/// refresh's too, `refresh.rs`): [`FIRST_CHUNK_ROWS`], `chunk_rows` at most.
pub(super) fn first_chunk(chunk_rows: usize) -> usize {
    chunk_rows.clamp(1, FIRST_CHUNK_ROWS)
}

const FIRST_CHUNK_ROWS: usize = 64;

/// Rows the next chunk asks for: as many as [`CHUNK_BYTES`] holds of rows as wide as the last
/// chunk's (their related rows included), between 1 and `chunk_rows`. Before 2026-12-07 every
/// chunk asked for `chunk_rows` (1,000 by default): rows of 400 KB made chunks of 400 MB.
pub(super) fn chunk_limit(chunk_rows: usize, rows: usize, weight: usize) -> usize {
    if rows == 0 {
        return chunk_rows;
    }
    let per_row = (weight / rows).max(1);
    (CHUNK_BYTES / per_row).clamp(1, chunk_rows)
}

/// About what a read's rows take in memory, their related rows included (see [`Row::weight`]).
pub(super) fn read_weight(rows: &[Row], joined: Option<&[Joined]>) -> usize {
    rows.iter().map(Row::weight).sum::<usize>()
        + joined
            .into_iter()
            .flatten()
            .map(Joined::weight)
            .sum::<usize>()
}

pub struct Driver {
    groups: VecDeque<Group>,
    state: Arc<BackfillState>,
    chunk_rows: usize,
    started: Instant,
    last_log: Instant,
    copied_since_start: u64,
}

/// The definition recorded for a view no longer configured: nothing keeps its items current,
/// so if it comes back its definition reads as changed (backfilled again, stale items removed).
pub const REMOVED: &str = "(removed)";

/// Views in `state` that are not configured any more (removed by a reload or between runs):
/// their progress is forgotten except for the mark that they were removed.
fn forget_removed(views: &[Arc<View>], state: &mut BackfillState) {
    for (name, progress) in state.iter_mut() {
        if views.iter().any(|v| v.name == *name) || progress.definition.as_deref() == Some(REMOVED)
        {
            continue;
        }
        info!(view = %name, "the view is not configured any more: its items stay as they are; if it comes back it is backfilled again");
        // Its gauges would go on saying what they last said (a halt alert firing forever).
        let _ = metrics().backfill_state.remove_label_values(&[name]);
        let _ = metrics().view_halted.remove_label_values(&[name]);
        *progress = Progress {
            definition: Some(REMOVED.to_string()),
            ..Progress::default()
        };
    }
}

pub const STATE_PENDING: i64 = 0;
pub const STATE_FILLING: i64 = 1;
pub const STATE_DONE: i64 = 2;
pub const STATE_LAZY: i64 = 3;

impl Driver {
    /// The eager views not yet filled according to `state` (a view missing from it is new).
    pub fn new(views: &[Arc<View>], state: &BackfillState, chunk_rows: usize) -> Driver {
        let mut state = state.clone();
        forget_removed(views, &mut state);
        let mut groups: Vec<Group> = Vec::new();
        for view in views {
            let gauge = metrics().backfill_state.with_label_values(&[&view.name]);
            if view.fill == FillMode::Lazy {
                gauge.set(STATE_LAZY);
                // A lazy view's entry only carries a cleanup pending (after a TRUNCATE).
                if !state.get(&view.name).is_some_and(|p| p.cleanup) {
                    state.remove(&view.name);
                }
                continue;
            }
            let new = !state.contains_key(&view.name);
            let progress = state.entry(view.name.clone()).or_default();
            if !redefine(view, progress) {
                // A new view, or progress from before fingerprints: made with this definition.
                progress.definition = Some(view.fingerprint());
            }
            // A new view's first pass removes what it did not write, as any pass that rebuilds
            // a halted view must (see `merge::Merge::pass_starts`): a change read before its
            // first chunk may halt it (a view added while another of its table is halted, the
            // checkpoint held at the halting change; a lazy view made eager). It removes
            // nothing else: every item of it is the pass's or later. Its cost is one Scan of
            // the view's table once the pass is done. The reviews of 2026-12-07 found each
            // narrower rule (a pass judged the view's first from its progress, or from the
            // checkpoint as loaded) lifting a halt without a cleanup, or never lifting it.
            if new {
                progress.cleanup = true;
            }
            let progress = progress.clone();
            if progress.done {
                gauge.set(STATE_DONE);
                continue;
            }
            gauge.set(STATE_PENDING);
            let after: Option<Vec<Value>> = progress
                .after
                .as_ref()
                .map(|k| k.iter().map(KeyValue::to_value).collect());
            match groups.iter_mut().find(|g| {
                g.table == view.source
                    && g.after == after
                    && g.joined_view.is_none()
                    && !view.has_joins()
            }) {
                Some(group) => group.views.push(view.name.clone()),
                None => groups.push(Group {
                    table: view.source.clone(),
                    joined_view: view.has_joins().then(|| view.clone()),
                    views: vec![view.name.clone()],
                    after,
                    started: false,
                    estimated: 0,
                    done_rows: progress.rows,
                    xa_pending: Vec::new(),
                    limit: first_chunk(chunk_rows),
                }),
            }
        }
        Driver {
            groups: groups.into(),
            state: Arc::new(state),
            chunk_rows: chunk_rows.max(1),
            started: Instant::now(),
            last_log: Instant::now(),
            copied_since_start: 0,
        }
    }

    /// Backfill `view` again from its first row (on demand, to repair drift; after a join
    /// overflow); `cleanup`: then remove the items no row makes (`verify::cleanup`).
    pub fn request(&mut self, view: &View, cleanup: bool) {
        for group in self.groups.iter_mut() {
            group.views.retain(|v| *v != view.name);
        }
        self.groups.retain(|g| !g.views.is_empty());
        let state = Arc::make_mut(&mut self.state);
        let previous = state.get(&view.name).cloned().unwrap_or_default();
        let progress = Progress {
            cleanup: previous.cleanup || cleanup,
            ..previous.restarted()
        };
        state.insert(view.name.clone(), progress);
        metrics()
            .backfill_state
            .with_label_values(&[&view.name])
            .set(STATE_PENDING);
        match self.groups.iter_mut().find(|g| {
            g.table == view.source
                && g.after.is_none()
                && !g.started
                && g.joined_view.is_none()
                && !view.has_joins()
        }) {
            Some(group) => group.views.push(view.name.clone()),
            None => self.groups.push_back(Group {
                table: view.source.clone(),
                joined_view: view.has_joins().then(|| Arc::new(view.clone())),
                views: vec![view.name.clone()],
                after: None,
                started: false,
                estimated: 0,
                done_rows: 0,
                xa_pending: Vec::new(),
                limit: first_chunk(self.chunk_rows),
            }),
        }
        info!(view = %view.name, "backfill requested");
    }

    pub fn state(&self) -> Arc<BackfillState> {
        self.state.clone()
    }

    /// The first group is given up (a definite failure reading its table): its views stay
    /// unfilled until asked for again (`request`: a snapshot, the table back after a DROP),
    /// and the other groups go on. Its views.
    pub fn give_up_first(&mut self) -> Vec<String> {
        let views = self.groups.pop_front().map(|g| g.views).unwrap_or_default();
        for view in &views {
            metrics()
                .backfill_state
                .with_label_values(&[view])
                .set(STATE_PENDING);
        }
        views
    }

    /// Views still filling, for `/readyz`.
    pub fn filling(&self) -> Vec<String> {
        self.groups
            .iter()
            .flat_map(|g| g.views.iter().cloned())
            .collect()
    }

    pub fn wants_chunk(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Reads the next chunk of the first group (a short consistent-snapshot read), with the
    /// backfill progress it brings once merged. Nothing advances until [`Driver::merged`]: a
    /// read the merge stage asks to read again is read again from the same place.
    pub async fn read_next(&mut self, tables: &mut TableCache) -> Result<NextRead, SqlError> {
        let Some(group) = self.groups.front_mut() else {
            return Ok(NextRead::Nothing);
        };
        let mut conn = tables.pool().get_conn().await.map_err(SqlError::Connect)?;
        // As the table is now (the cache is emptied after a DDL or a stale read): a pass goes
        // on with the columns the table has, not those of its start.
        let sql = tables.get(&group.table).await?;
        // A table information_schema shows no column of is gone (dropped, renamed) or hidden
        // (no SELECT privilege): its views are not filled — never taken for filled with no row.
        if sql.schema.columns.is_empty() {
            return Err(SqlError::Schema(format!(
                "table {} does not exist or is not readable (SELECT privilege)",
                group.table
            )));
        }
        if !group.started {
            let estimate: Option<u64> = mysql_async::prelude::Queryable::exec_first(
                &mut conn,
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&group.table.database, &group.table.table),
            )
            .await
            .map_err(SqlError::Query)?;
            group.estimated = estimate.unwrap_or(0);
            if sql.primary_key.is_empty() {
                warn!(table = %group.table, views = ?group.views, "backfill needs a primary key; these views are not backfilled");
                let stale: Vec<&String> = (group.views.iter())
                    .filter(|v| self.state.get(*v).is_some_and(|p| p.cleanup))
                    .collect();
                if !stale.is_empty() {
                    // Its definition changed or its binlog was purged: no pass rewrites its items.
                    error!(table = %group.table, views = ?stale, "these views' items may be stale (a definition change or a purged binlog) and cannot be filled again without a primary key. Remedy: remove the views' items, give the table a primary key, then restart");
                }
                let views = std::mem::take(&mut group.views);
                self.groups.pop_front();
                let state = Arc::make_mut(&mut self.state);
                for view in &views {
                    let previous = state.get(view).cloned().unwrap_or_default();
                    state.insert(
                        view.clone(),
                        Progress {
                            done: true,
                            cleanup: false,
                            ..previous.restarted()
                        },
                    );
                }
                return Ok(NextRead::Skipped(views));
            }
            info!(table = %group.table, views = ?group.views, estimated_rows = group.estimated, "backfill starts");
            for view in &group.views {
                metrics()
                    .backfill_state
                    .with_label_values(&[view])
                    .set(STATE_FILLING);
            }
            group.started = true;
        }
        // Every attempt at a pass's first chunk lists them again (a read retried, or read again
        // because its snapshot was older than the stream).
        if group.after.is_none() {
            group.xa_pending = prepared_before_pass(&mut conn, &group.table).await?;
        }
        let read = read_roots(
            &mut conn,
            tables,
            &sql,
            group.joined_view.as_deref(),
            keyset_tail(&sql, None, group.after.as_deref(), group.limit),
            &|_| true,
        )
        .await?;
        Ok(NextRead::Chunk(Box::new(
            self.chunk(read, &sql.primary_key),
        )))
    }

    /// The chunk as a read to merge, with the progress its views will have once it is merged.
    fn chunk(&self, read: SnapshotRead, key: &[String]) -> (Read, ChunkEnd) {
        let group = self.groups.front().expect("a chunk was read from it");
        let weight = read_weight(&read.rows, read.joined.as_deref());
        let end = ChunkEnd {
            rows: read.rows.len(),
            last_key: read.last_key,
            limit: group.limit,
            weight,
        };
        let finished = end.rows < end.limit;
        let done_rows = group.done_rows + end.rows as u64;
        let after = end.last_key.clone().or_else(|| group.after.clone());
        let mut state = (*self.state).clone();
        for view in &group.views {
            let previous = state.get(view).cloned().unwrap_or_default();
            let progress = Progress {
                done: finished,
                after: after
                    .as_ref()
                    .map(|k| k.iter().map(KeyValue::from_value).collect()),
                rows: done_rows,
                xa_pending: group.xa_pending.clone(),
                ..previous.restarted()
            };
            state.insert(view.clone(), progress);
        }
        let merged = Read {
            table: group.table.clone(),
            views: group.views.clone(),
            rows: read.rows,
            joined: read.joined,
            position: read.position,
            key: key.to_vec(),
            kind: ReadKind::Backfill {
                state: Arc::new(state),
            },
            hold: None,
        };
        (merged, end)
    }

    /// The chunk that ended so is merged into the stream: the backfill moves past it.
    pub fn merged(&mut self, end: ChunkEnd) {
        let Some(group) = self.groups.front_mut() else {
            return;
        };
        let count = end.rows as u64;
        let finished = end.rows < end.limit;
        group.limit = chunk_limit(self.chunk_rows, end.rows, end.weight);
        group.done_rows += count;
        self.copied_since_start += count;
        if let Some(key) = end.last_key {
            group.after = Some(key);
        }
        let state = Arc::make_mut(&mut self.state);
        for view in &group.views {
            let previous = state.get(view).cloned().unwrap_or_default();
            state.insert(
                view.clone(),
                Progress {
                    done: finished,
                    after: group
                        .after
                        .as_ref()
                        .map(|k| k.iter().map(KeyValue::from_value).collect()),
                    rows: group.done_rows,
                    xa_pending: group.xa_pending.clone(),
                    ..previous.restarted()
                },
            );
            metrics()
                .backfill_rows
                .with_label_values(&[view])
                .inc_by(count);
            metrics().backfill_chunks.with_label_values(&[view]).inc();
            if finished {
                metrics()
                    .backfill_state
                    .with_label_values(&[view])
                    .set(STATE_DONE);
            }
        }
        if finished {
            info!(table = %group.table, views = ?group.views, rows = group.done_rows, "backfill done");
            self.groups.pop_front();
        } else if self.last_log.elapsed().as_secs() >= 5 {
            self.last_log = Instant::now();
            let rate =
                self.copied_since_start as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            let left = group.estimated.saturating_sub(group.done_rows);
            info!(
                table = %group.table,
                rows = group.done_rows,
                estimated_total = group.estimated,
                rows_per_second = rate as u64,
                eta_seconds = (left as f64 / rate.max(1.0)) as u64,
                "backfill progress"
            );
        }
    }
}

/// The XA transactions prepared before a pass's first snapshot: their rows are in none of its
/// snapshots (one prepared later is read by the reader, which started before it; the merge
/// stage keeps only those the reader cannot read). A pass resumed after a restart needs none:
/// it was begun in a pipeline that had its views, which held the checkpoint at the PREPARE of
/// any XA transaction of its tables, so the reader knows those. A failed query fails the read
/// (retried); a server that refuses it (MySQL 8 without `XA_RECOVER_ADMIN`) is warned about.
async fn prepared_before_pass(
    conn: &mut mysql_async::Conn,
    table: &TableRef,
) -> Result<Vec<String>, SqlError> {
    match crate::sql::prepared_xids(conn).await {
        Err(SqlError::Query(mysql_async::Error::Server(server)))
            if ACCESS_DENIED.contains(&server.code) =>
        {
            warn!(table = %table, error = %server.message, "cannot list prepared XA transactions (XA RECOVER is refused): one prepared before this backfill and committed after it, if rowcast never read its PREPARE, would be missing from the views until `rowcast verify --repair`");
            Ok(Vec::new())
        }
        other => other,
    }
}

/// ER_SPECIFIC_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR.
const ACCESS_DENIED: [u16; 3] = [1227, 1044, 1142];

/// What a backfill read found.
pub enum NextRead {
    /// Nothing left to fill.
    Nothing,
    /// Views that cannot be backfilled (their root has no primary key): marked filled.
    Skipped(Vec<String>),
    /// A chunk to merge, and where it ends (for [`Driver::merged`]).
    Chunk(Box<(Read, ChunkEnd)>),
}

/// Where a chunk ends: its rows, and the primary key of its last row.
pub struct ChunkEnd {
    rows: usize,
    last_key: Option<Vec<Value>>,
    /// The rows the chunk asked for: fewer read, the pass is done.
    limit: usize,
    /// About what its rows held (see [`chunk_limit`]).
    weight: usize,
}

/// An eager view's progress made with another definition than `view`'s: reset for a new pass
/// under `view`'s (backfilled again, then the items only the old definition made are removed),
/// logged; whether it was. At start (`app::prepare`, which saves it with the counter's move) and
/// when a pipeline's views are read.
pub fn redefine(view: &View, progress: &mut Progress) -> bool {
    let definition = view.fingerprint();
    if progress
        .definition
        .as_deref()
        .is_none_or(|made| made == definition)
    {
        return false;
    }
    info!(view = %view.name, "the view's definition changed: it is backfilled again, then the items only the old definition made are removed");
    *progress = Progress::redefined(definition);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks ask for as many rows as `CHUNK_BYTES` holds of rows as wide as the last chunk's,
    /// never more than `chunk_rows` nor fewer than one.
    #[test]
    fn chunks_follow_the_width_of_the_rows() {
        // Narrow rows: the configured size.
        assert_eq!(chunk_limit(1000, 64, 64 * 200), 1000);
        // 20 KB rows: about 200 of them.
        assert_eq!(chunk_limit(1000, 64, 64 * 20_000), CHUNK_BYTES / 20_000);
        // Rows wider than the whole chunk's bytes: one at a time.
        assert_eq!(chunk_limit(1000, 3, 3 * (CHUNK_BYTES + 1)), 1);
        // An empty chunk (the table's end) tells nothing.
        assert_eq!(chunk_limit(1000, 0, 0), 1000);
    }
}
