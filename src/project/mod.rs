//! The projector stage: row changes in, item writes out, routed to the lane that owns each key.
//!
//! Views halt here: one whose schema became incompatible (a column it needs is gone), one whose
//! joins cannot be read, the views of a table changed by a statement the binlog does not
//! describe row by row. A halted view gets a log line and `rowcast_view_halted`; the other views
//! carry on. Its progress is held: every later barrier restarts no later than the transaction
//! that halted it and carries the view's backfill progress as of the halt, so after a restart
//! the change is read again (and halts the view again until the cause is fixed) and nothing past
//! it is taken for written. Barriers go to every lane, at most one per few milliseconds when the
//! input is busy (a later barrier implies the earlier ones).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use tokio::sync::mpsc;
use tracing::{error, info};

use crate::metrics::metrics;
use crate::pipeline::lane_of;
use crate::pipeline::version_of;
use crate::pipeline::Position;
use crate::pipeline::{
    BackfillState, Barrier, DeadLetter, Halt, HaltTarget, LaneMsg, Progress, Restart, RowChange,
    SnapshotRows, StreamEvent, WriteOp,
};
use crate::pipeline::{ByteBudget, LANE_BYTES};
use crate::util::now_millis;
use crate::view::name::Name;
use crate::view::project::{project, project_snapshot, removals, Projection};
use crate::view::spec::{TableRef, View};
use crate::view::ItemOp;

/// Where a projection's writes come from.
struct Origin<'a> {
    seq: u64,
    version: u128,
    guard: bool,
    restore: bool,
    position: &'a Arc<Position>,
}

/// A view of a source table, as the projector holds it.
struct ViewEntry {
    view: Arc<View>,
    /// The view's name as the lanes carry it: interned, copied into each write without a count.
    name: Name,
    /// Its `rows` counters (insert, update, delete), looked up once rather than for every row.
    rows: [IntCounter; 3],
}

const BARRIER_EVERY: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("writer lane {0} stopped")]
    LaneGone(usize),
}

impl crate::error::Classify for ProjectError {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Definite
    }
}

/// A halted view's progress as of its halt, marked halted (`Progress::halted`).
struct Held {
    restart: Restart,
    backfill: Option<Progress>,
}

/// Where the projector starts: the start point, and the backfill progress it carries.
pub struct ProjectStart {
    pub restart: Restart,
    pub backfill: Arc<BackfillState>,
}

pub struct Projector {
    views: HashMap<TableRef, Vec<ViewEntry>>,
    rx: mpsc::Receiver<StreamEvent>,
    lanes: Vec<mpsc::Sender<LaneMsg>>,
    halted: HashMap<String, Held>,
    /// The last barrier passed on, as it came in: where the transaction under way starts.
    last: ProjectStart,
    /// The latest `since` of `last`'s progress: a change at or after it is older than no pass,
    /// which spares [`Projector::superseded`] its lookup on every row read live.
    newest_pass: u64,
    last_read_seq: Arc<AtomicU64>,
    /// The writes of one row change, kept between changes so that its room is not allocated
    /// for every change.
    spare: Vec<(usize, LaneMsg)>,
    /// The lanes' byte budget (see [`ByteBudget`]).
    bytes: ByteBudget,
    /// Each write's share of a batch's room, kept between batches (see `send_all`).
    /// (A mutex only for `send_all`'s `&self`; never contended.)
    shares: std::sync::Mutex<Vec<usize>>,
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The latest transaction a view's current pass began after.
fn newest_pass(start: &ProjectStart) -> u64 {
    start
        .backfill
        .values()
        .filter_map(|p| p.since)
        .max()
        .unwrap_or(0)
}

impl Projector {
    pub fn new(
        views: &[Arc<View>],
        rx: mpsc::Receiver<StreamEvent>,
        lanes: Vec<mpsc::Sender<LaneMsg>>,
        last_read_seq: Arc<AtomicU64>,
        start: ProjectStart,
    ) -> Self {
        let mut by_table: HashMap<TableRef, Vec<ViewEntry>> = HashMap::new();
        for view in views {
            metrics()
                .view_halted
                .with_label_values(&[&view.name])
                .set(0);
            by_table
                .entry(view.source.clone())
                .or_default()
                .push(ViewEntry {
                    view: view.clone(),
                    name: Name::interned(&view.name),
                    rows: ["insert", "update", "delete"]
                        .map(|op| metrics().rows.with_label_values(&[&view.name, op])),
                });
        }
        let mut projector = Projector {
            views: by_table,
            rx,
            lanes,
            halted: HashMap::new(),
            newest_pass: newest_pass(&start),
            last: start,
            last_read_seq,
            spare: Vec::new(),
            bytes: ByteBudget::new(LANE_BYTES),
            shares: std::sync::Mutex::new(Vec::new()),
        };
        // Halted before the restart: halted again at once, wherever the change that halted
        // them is (the checkpoint they held is at or before it).
        let kept: Vec<(String, String)> = views
            .iter()
            .filter_map(|view| {
                let progress = projector.last.backfill.get(&view.name)?;
                Some((view.name.clone(), progress.halted.clone()?))
            })
            .collect();
        let restart = projector.last.restart.clone();
        for (view, reason) in kept {
            projector.halt(view, &restart, &reason, true);
        }
        projector
    }

    /// Runs until its input closes (then the lanes' inputs close too); fails when a lane has
    /// gone away.
    pub async fn run(mut self) -> Result<(), ProjectError> {
        let mut pending: Option<Barrier> = None;
        let mut last_sent = Instant::now();
        // The gauge's handle, looked up once: this loop turns for every event.
        let depth = metrics().queue_depth.with_label_values(&["project"]);
        while let Some(event) = self.rx.recv().await {
            match event {
                StreamEvent::Rows(batch) => {
                    // Its permits go back when it is dropped, after the rows' writes are sent.
                    for change in batch.rows {
                        self.handle_row(change).await?;
                    }
                }
                StreamEvent::Snapshot(rows) => self.handle_snapshot(*rows).await?,
                StreamEvent::Halt(halt) => self.on_halt(halt),
                StreamEvent::Commit(barrier) => {
                    self.last_read_seq.store(barrier.seq, Ordering::Relaxed);
                    pending = Some(self.hold(barrier));
                }
            }
            depth.set(self.rx.len() as i64);
            if pending.is_some() && (self.rx.is_empty() || last_sent.elapsed() >= BARRIER_EVERY) {
                if let Some(barrier) = pending.take() {
                    self.broadcast(barrier).await?;
                    last_sent = Instant::now();
                }
            }
        }
        if let Some(barrier) = pending.take() {
            self.broadcast(barrier).await?;
        }
        Ok(())
    }

    /// A barrier as the halted views allow it: restarting no later than the earliest halt, with
    /// each halted view's backfill progress as of its halt.
    fn hold(&mut self, mut barrier: Barrier) -> Barrier {
        self.unmark_rebuilt(&mut barrier);
        self.last = ProjectStart {
            // The barrier's own restart when it has one (join marks, an XA commit under way):
            // a halt here must be read again from there.
            restart: barrier.restart.clone().unwrap_or_else(|| Restart {
                seq: barrier.seq,
                position: barrier.position.clone(),
            }),
            backfill: barrier.backfill.clone(),
        };
        self.newest_pass = newest_pass(&self.last);
        if self.halted.is_empty() {
            return barrier;
        }
        for held in self.halted.values() {
            let (seq, position) = barrier
                .restart
                .as_ref()
                .map_or((barrier.seq, &barrier.position), |r| (r.seq, &r.position));
            // By position too: a barrier with no transaction since the halt (a rotation's)
            // moved the checkpoint past the halting event, into the next file, and a restart
            // never read it again (the view went on as if nothing was lost).
            let earlier = held.restart.seq < seq
                || (held.restart.seq == seq
                    && crate::pipeline::position_before(&held.restart.position, position));
            if earlier {
                barrier.restart = Some(held.restart.clone());
            }
        }
        let backfill = Arc::make_mut(&mut barrier.backfill);
        for (view, held) in &self.halted {
            match &held.backfill {
                Some(progress) => backfill.insert(view.clone(), progress.clone()),
                None => backfill.remove(view),
            };
        }
        barrier
    }

    /// A barrier's progress marks exactly the views halted here (a mark the merge stage kept
    /// from the checkpoint of a view rebuilt since goes).
    fn unmark_rebuilt(&self, barrier: &mut Barrier) {
        let stale = |(view, progress): (&String, &Progress)| {
            progress.halted.is_some() && !self.halted.contains_key(view)
        };
        if !barrier.backfill.iter().any(stale) {
            return;
        }
        for (view, progress) in Arc::make_mut(&mut barrier.backfill).iter_mut() {
            if !self.halted.contains_key(view) {
                progress.halted = None;
            }
        }
    }

    /// Halts the views `halt` names (once each: the first halt holds the earliest progress).
    fn on_halt(&mut self, halt: Halt) {
        let names: Vec<String> = match &halt.target {
            HaltTarget::View(view) => vec![view.clone()],
            HaltTarget::Table(table) => self
                .views
                .values()
                .flatten()
                .map(|entry| &entry.view)
                .filter(|view| view.reads_table(table))
                .map(|view| view.name.clone())
                .collect(),
        };
        let restart = halt.restart.unwrap_or_else(|| self.last.restart.clone());
        // The transaction before the halting change: older than the pass when before the
        // transaction it began after.
        let before = halt.before.unwrap_or(restart.seq);
        for view in names {
            if self.superseded(&view, before, None) {
                // Read again after a restart, but the view was backfilled after it (a rebuild).
                let since = self.last.backfill.get(&view).and_then(|p| p.since);
                info!(view = %view, before, ?since, "a halting change older than the view's backfill pass: superseded, not halted");
                continue;
            }
            self.halt(view, &restart, &halt.reason, halt.kept);
        }
    }

    /// `kept`: the halt goes into the checkpoint with the view's progress (`Halt::kept`).
    fn halt(&mut self, view: String, restart: &Restart, reason: &str, kept: bool) {
        if self.halted.contains_key(&view) {
            return;
        }
        error!(view = %view, restart = %restart.position, "view halted, its progress held: {reason}");
        metrics().view_halted.with_label_values(&[&view]).set(1);
        let held = Held {
            restart: restart.clone(),
            backfill: self.last.backfill.get(&view).map(|progress| Progress {
                halted: kept.then(|| kept_reason(reason)),
                ..progress.clone()
            }),
        };
        self.halted.insert(view, held);
    }

    async fn broadcast(&self, barrier: Barrier) -> Result<(), ProjectError> {
        for lane in 0..self.lanes.len() {
            self.send(lane, LaneMsg::Barrier(barrier.clone())).await?;
        }
        Ok(())
    }

    async fn send(&self, lane: usize, message: LaneMsg) -> Result<(), ProjectError> {
        self.lanes[lane]
            .send(message)
            .await
            .map_err(|_| ProjectError::LaneGone(lane))
    }

    /// A projection's counters, dead letters and writes, each write to the lane of its key.
    fn route(
        &self,
        view: &View,
        name: &Name,
        projection: Projection,
        origin: &Origin<'_>,
        outgoing: &mut Vec<(usize, LaneMsg)>,
    ) {
        if projection.null_keys > 0 {
            metrics()
                .null_key_rows
                .with_label_values(&[name])
                .inc_by(u64::from(projection.null_keys));
        }
        if projection.zero_dates > 0 {
            metrics()
                .zero_dates
                .with_label_values(&[name])
                .inc_by(u64::from(projection.zero_dates));
        }
        for dead in projection.dead {
            let lane = dead
                .key
                .as_ref()
                .map_or(0, |k| lane_of(k, self.lanes.len()));
            let letter = DeadLetter {
                view: view.name.clone(),
                key: dead.key.as_ref().map(ToString::to_string),
                pk: dead.key.as_ref().map(|k| k.pk.clone()),
                sk: dead.key.as_ref().and_then(|k| k.sk.clone()),
                reason_kind: if dead.key.is_none() {
                    "bad_key"
                } else {
                    "bad_value"
                },
                reason: dead.reason,
                position: (**origin.position).clone(),
                seq: origin.seq,
                at_ms: now_millis(),
                record: None,
            };
            outgoing.push((lane, LaneMsg::Dead(Box::new(letter))));
        }
        for mut op in projection.ops {
            if view.mark_removals {
                with_origin(&mut op, origin.version);
            }
            let lane = lane_of(op.key(), self.lanes.len());
            let mark_removal = view.mark_removals && matches!(op, ItemOp::Delete { .. });
            let write = WriteOp {
                view: name.clone(),
                mark_removal,
                restore: origin.restore && matches!(op, ItemOp::Put { .. }),
                write_back: view.mark_removals,
                op,
                version: origin.version,
                seq: origin.seq,
                guard: origin.guard,
                origin: origin.position.clone(),
            };
            outgoing.push((lane, LaneMsg::Write(write, None)));
        }
    }

    /// Snapshot rows (backfill, fill on miss, join refresh): each is the row's state at the
    /// snapshot position, with its related rows for a view with joins, written as a put.
    async fn handle_snapshot(&mut self, chunk: SnapshotRows) -> Result<(), ProjectError> {
        if chunk.restore {
            crate::util::failpoint::delay("project.before_restore").await;
        }
        let Some(views) = self.views.get(&chunk.table) else {
            return Ok(());
        };
        let mut outgoing = Vec::new();
        let mut newly_halted = Vec::new();
        let mut projected = 0usize;
        for ViewEntry { view, name, .. } in views {
            if !chunk.views.contains(&view.name) {
                continue;
            }
            if self.halted.contains_key(&view.name)
                && !rebuild(&mut self.halted, &view.name, &chunk)
            {
                continue;
            }
            for (i, row) in chunk.rows.iter().enumerate() {
                let joined = chunk.joined.as_ref().and_then(|j| j.get(i));
                if view.has_joins() && joined.is_none() {
                    error!(view = %view.name, "snapshot rows without their related rows; skipped");
                    break;
                }
                let projection = match project_snapshot(view, row, joined) {
                    Ok(mut projection) if chunk.refresh => {
                        projection.null_keys = 0;
                        projection
                    }
                    Ok(projection) => projection,
                    Err(incompatible) => {
                        newly_halted.push((view.name.clone(), incompatible.to_string()));
                        break;
                    }
                };
                let origin = Origin {
                    seq: chunk.seq,
                    version: version_of(chunk.seq, chunk.first_index.saturating_add(i as u32)),
                    guard: chunk.guard,
                    restore: chunk.restore,
                    position: &chunk.origin,
                };
                self.route(view, name, projection, &origin, &mut outgoing);
                // Sent row by row, as the lanes take them: a chunk's writes gathered whole
                // held a chunk's items at once (up to `chunk_rows` × views) in a vector grown
                // by copying, 4 % of a backfill's CPU in page faults alone (`perf`).
                self.send_all(&mut outgoing).await?;
                projected += 1;
                if projected.is_multiple_of(YIELD_EVERY) {
                    // `run` has one worker thread: a chunk of up to 100,000 rows × its views
                    // must not hold up the lanes, the checkpoint tracker and the probes.
                    tokio::task::yield_now().await;
                }
            }
            if let Some(key) = &chunk.remove {
                let index = u32::try_from(chunk.rows.len()).unwrap_or(u32::MAX);
                let origin = Origin {
                    seq: chunk.seq,
                    version: version_of(chunk.seq, chunk.first_index.saturating_add(index)),
                    guard: chunk.guard,
                    restore: false,
                    position: &chunk.origin,
                };
                let removal = Projection {
                    ops: vec![ItemOp::Delete { key: key.clone() }],
                    ..Projection::default()
                };
                self.route(view, name, removal, &origin, &mut outgoing);
            }
        }
        self.halt_incompatible(newly_halted, false);
        self.send_all(&mut outgoing).await
    }

    /// Sends `outgoing`'s writes in order, leaving it empty (its room kept), once the lanes'
    /// byte budget has room for them: each write carries its share.
    async fn send_all(&self, outgoing: &mut Vec<(usize, LaneMsg)>) -> Result<(), ProjectError> {
        let mut shares = std::mem::take(&mut *lock(&self.shares));
        shares.clear();
        shares.extend(outgoing.iter().map(|(_, message)| match message {
            LaneMsg::Write(write, _) => self.bytes.units(write.weight()),
            _ => 0,
        }));
        let mut left = shares.iter().filter(|units| **units > 0).count();
        let mut room = match shares.iter().sum() {
            0 => None,
            units => Some(self.bytes.hold(units).await),
        };
        for ((lane, mut message), units) in outgoing.drain(..).zip(shares.iter()) {
            if let LaneMsg::Write(_, share) = &mut message {
                left = left.saturating_sub(1);
                // The last write takes what is left (the whole budget is the most a batch
                // holds), the others their own share.
                *share = match (left, room.as_mut()) {
                    (0, _) => room.take(),
                    (_, Some(all)) => all.split((*units).min(all.num_permits())),
                    (_, None) => None,
                };
            }
            self.send(lane, message).await?;
        }
        *lock(&self.shares) = shares;
        Ok(())
    }

    /// Whether a change (of transaction `seq`, at `version` for a row change) is older than
    /// `view`'s backfill pass: read again after a restart from a checkpoint held back (a halted view, a join
    /// refresh, a prepared XA transaction) while the checkpoint's progress of the view says that
    /// a pass began later. The pass read every row after it, so it holds what the change did;
    /// and where the pass's cleanup removed the item since (a TRUNCATE read, rows gone, rows of
    /// a transaction rolled back), the change would make it again for good, since no later
    /// change of the row comes to remove it. Told by the pass's first version (its first row
    /// comes after every row change of the transaction it began after, that one included); by
    /// its transaction in a checkpoint of an older version. The progress comes from a barrier
    /// every lane acknowledged: everything before it is written.
    fn superseded(&self, view: &str, seq: u64, version: Option<u128>) -> bool {
        if seq > self.newest_pass {
            return false;
        }
        let Some(progress) = self.last.backfill.get(view) else {
            return false;
        };
        match (progress.since, progress.from_version, version) {
            (Some(_), Some(first), Some(version)) => version < first,
            (Some(since), _, _) => seq < since,
            _ => false,
        }
    }

    /// Views that do not fit their table any more (a column they need is gone).
    fn halt_incompatible(&mut self, views: Vec<(String, String)>, kept: bool) {
        let restart = self.last.restart.clone();
        for (view, error) in views {
            let reason = format!(
                "incompatible schema change ({error}); fix the view or the table and restart"
            );
            self.halt(view, &restart, &reason, kept);
        }
    }

    async fn handle_row(&mut self, change: RowChange) -> Result<(), ProjectError> {
        let Some(views) = self.views.get(&change.table) else {
            return Ok(());
        };
        let op = match (&change.before, &change.after) {
            (None, Some(_)) => 0,    // insert
            (Some(_), Some(_)) => 1, // update
            _ => 2,                  // delete
        };
        let mut outgoing = std::mem::take(&mut self.spare);
        let mut newly_halted = Vec::new();
        for ViewEntry { view, name, rows } in views {
            let version = version_of(change.seq, change.index);
            if self.superseded(&view.name, change.seq, Some(version)) {
                continue;
            }
            let halted = self.halted.contains_key(&view.name);
            if !halted {
                rows[op].inc();
            }
            let projection = if halted {
                // Only removals, so that a rebuild later leaves no item of a row gone meanwhile.
                let ops = removals(view, change.before.as_ref(), change.after.as_ref());
                if ops.is_empty() {
                    continue;
                }
                Ok(Projection {
                    ops,
                    ..Projection::default()
                })
            } else {
                project(view, change.before.as_ref(), change.after.as_ref())
            };
            let projection = match projection {
                Ok(projection) => projection,
                Err(incompatible) => {
                    newly_halted.push((view.name.clone(), incompatible.to_string()));
                    continue;
                }
            };
            let origin = Origin {
                seq: change.seq,
                version: version_of(change.seq, change.index),
                guard: change.guard,
                restore: false,
                position: &change.origin,
            };
            self.route(view, name, projection, &origin, &mut outgoing);
        }
        self.halt_incompatible(newly_halted, true);
        self.send_all(&mut outgoing).await?;
        self.spare = outgoing;
        Ok(())
    }
}

/// Snapshot rows projected between two yields to the runtime: about a quarter of a millisecond
/// of narrow rows, a few milliseconds of wide ones.
const YIELD_EVERY: usize = 256;

/// An item of a table with a write-back view carries the `_origin` of its key and version
/// (`dynamo::origin`): write-back takes a put for rowcast's only where it does (before
/// 2026-12-07's seventh stop an application's copy of another item, its `_version` with it, was
/// taken for rowcast's write and never reached SQL). Here, where a put gets its version, so
/// that every write of it (batched, conditional, written again after an unknown outcome) sends
/// the same; a restore, written at another version, and a marked removal set their own.
fn with_origin(op: &mut ItemOp, version: u128) {
    if let ItemOp::Put { key, item } = op {
        let origin = crate::dynamo::origin(&key.pk, key.sk.as_deref(), version);
        item.insert(Name::Interned(crate::dynamo::ORIGIN_ATTRIBUTE), origin);
    }
}

/// A halt's reason as the checkpoint keeps it: its first 200 characters (the whole is logged),
/// so that many halted views keep the checkpoint item far below DynamoDB's 400 KB.
fn kept_reason(reason: &str) -> String {
    match reason.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &reason[..end]),
        None => reason.to_string(),
    }
}

/// A halted view backfilled again (`rowcast snapshot --view`) is rebuilt from the first
/// chunk of the pass on: the chunks are read after the change that halted it, so they
/// supersede it, and later changes are projected again. `false`: not such a chunk.
fn rebuild(halted: &mut HashMap<String, Held>, view: &str, chunk: &SnapshotRows) -> bool {
    if !chunk.pass_starts.iter().any(|v| v == view) {
        return false;
    }
    halted.remove(view);
    metrics().view_halted.with_label_values(&[view]).set(0);
    info!(view = %view, position = %chunk.origin, "halted view rebuilt from a backfill pass: it follows the binlog again");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_reason_is_cut_at_200_characters() {
        assert_eq!(kept_reason("short"), "short");
        let long = "é".repeat(300);
        let kept = kept_reason(&long);
        assert_eq!(kept.chars().count(), 201);
        assert!(kept.ends_with('…'));
    }
    use crate::view::row::{ColumnKind, ColumnSchema, Row, TableSchema};
    use crate::view::value::Cell;

    const VIEW: &str = r#"
name = "accounts"
table = "accounts_view"
source = "shop.accounts"
[key]
pk = "ACC#{id}"
[attributes]
id = "id"
"#;

    fn chunk(rows: usize) -> SnapshotRows {
        let schema = Arc::new(TableSchema::new(
            TableRef::parse("shop.accounts").expect("valid"),
            vec![ColumnSchema {
                name: "id".into(),
                kind: ColumnKind::Int { unsigned: true },
                is_virtual: false,
            }],
        ));
        SnapshotRows {
            table: schema.table.clone(),
            views: vec!["accounts".into()],
            rows: (0..rows as u64)
                .map(|id| Row {
                    schema: schema.clone(),
                    cells: vec![Cell::UInt(id)],
                })
                .collect(),
            joined: None,
            refresh: false,
            pass_starts: Vec::new(),
            restore: false,
            remove: None,
            seq: 1,
            first_index: 0,
            origin: Arc::new(Position {
                file: "bin.000001".into(),
                pos: 4,
                gtid: None,
            }),
            guard: false,
            hold: None,
        }
    }

    /// On one thread, another task runs while a large snapshot chunk is still being projected,
    /// not only once all of it is: `rowcast run` has a single worker, which the lanes, the
    /// checkpoint tracker and the probes share. Also when its rows make no write (filtered out):
    /// sends to a lane give way by themselves after a while (tokio's budget), rows that send
    /// nothing only by the projector's own yields.
    #[test]
    fn a_large_snapshot_chunk_lets_other_tasks_run_while_it_is_projected() {
        let rows = 4 * YIELD_EVERY;
        let (sent, written) = other_task_during_a_chunk(VIEW, rows);
        assert!(
            sent.is_some_and(|sent| sent <= YIELD_EVERY),
            "{sent:?} writes sent first"
        );
        assert_eq!(written, rows);
        let filtered = VIEW.replace("[key]", &format!("filter = \"id > {rows}\"\n[key]"));
        let (sent, written) = other_task_during_a_chunk(&filtered, rows);
        assert_eq!(sent, Some(0), "the other task ran only after the chunk");
        assert_eq!(written, 0);
    }

    /// Projects a chunk of `rows` rows of `view` on one thread while another task waits to
    /// run: the writes already sent to the lane when it ran (`None`: it had not run when the
    /// chunk was done), and the writes sent in all.
    fn other_task_during_a_chunk(view: &str, rows: usize) -> (Option<usize>, usize) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let view = crate::config::compile_view(std::path::Path::new("v.toml"), view)
                .expect("valid view");
            let (lane, mut lane_rx) = mpsc::channel(rows + 1);
            let (_events, rx) = mpsc::channel(1);
            let start = ProjectStart {
                restart: Restart {
                    seq: 0,
                    position: Position {
                        file: "bin.000001".into(),
                        pos: 4,
                        gtid: None,
                    },
                },
                backfill: Arc::new(BackfillState::new()),
            };
            let mut projector = Projector::new(
                &[Arc::new(view)],
                rx,
                vec![lane.clone()],
                Arc::new(AtomicU64::new(0)),
                start,
            );
            let sent_when_other_ran = Arc::new(AtomicU64::new(u64::MAX));
            let seen = sent_when_other_ran.clone();
            let other = tokio::spawn(async move {
                let sent = lane.max_capacity() - lane.capacity();
                seen.store(sent as u64, Ordering::SeqCst);
            });
            projector
                .handle_snapshot(chunk(rows))
                .await
                .expect("projects");
            let sent = sent_when_other_ran.load(Ordering::SeqCst);
            other.await.expect("ran");
            let mut written = 0;
            while let Ok(message) = lane_rx.try_recv() {
                written += usize::from(matches!(message, LaneMsg::Write(..)));
            }
            (
                usize::try_from(sent).ok().filter(|_| sent != u64::MAX),
                written,
            )
        })
    }
}
