//! The merge stage: snapshot rows enter the change stream at their binlog position.
//!
//! The binlog reader sends row changes and transaction boundaries; the snapshot worker sends
//! rows it read in a consistent snapshot at a position P (backfill chunks, fills on miss, join
//! refreshes). A snapshot row is the row's state at P, so it goes into the stream right after
//! the last transaction before P and before any transaction after P: it can neither overwrite a
//! newer change nor bring back a deleted row. Since P is only known once the read has begun,
//! the worker announces each read first; from then on no binlog event passes until P is known,
//! and none after P until the rows are merged (`pipeline::snapshot`).
//!
//! This stage also completes every barrier: a generation that grows with every barrier of the
//! process, the backfill progress as of the last merged chunk, and the restart point of the
//! oldest join mark not yet refreshed (see `marks.rs`): the checkpoint never passes a change
//! whose effects are not merged yet. It marks the roots of views with joins as row changes go
//! by, and hands batches of marks to the snapshot worker when they are due.
//!
//! It ends when the binlog reader's channel closes (the stream is drained), or with an error
//! when the projector or the snapshot worker has gone away.

pub mod marks;
pub mod recent;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use self::marks::{MarkedBy, Marks};
use self::recent::{row_key, Recent, MAX_READS_AGAIN, UNKEYED_PAUSE};
use crate::error::{chain, Classify, ErrorClass, RetryPolicy};
use crate::metrics::metrics;
use crate::pipeline::snapshot::{
    Read, ReadFailure, ReadKind, SnapshotEvent, WorkerMsg, READ_AGAIN_PAUSE,
};
use crate::pipeline::version_of;
use crate::pipeline::{
    position_before, BackfillState, Barrier, Halt, HaltTarget, Position, Progress, Restart,
    RowBatch, RowChange, SnapshotRows, SourceEvent, StreamEvent, SNAPSHOT_INDEX_BASE,
};
use crate::sql::SqlTable;
use crate::sql::TableCache;
use crate::view::spec::{Attributes, FillMode, View};
use crate::view::Row;
use crate::view::TableRef;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("the projector stopped")]
    ProjectorGone,
    #[error("the snapshot worker stopped")]
    WorkerGone,
    #[error("marking the roots of views with joins")]
    Marks(#[source] crate::sql::SqlError),
    #[error("reading the primary key of a view's table")]
    Table(#[source] crate::sql::SqlError),
}

impl Classify for MergeError {
    fn class(&self) -> ErrorClass {
        match self {
            MergeError::ProjectorGone | MergeError::WorkerGone => ErrorClass::Definite,
            MergeError::Marks(error) | MergeError::Table(error) => error.class(),
        }
    }
}

/// Where the merge stage starts.
pub struct MergeStart {
    /// The checkpoint's position (the resume point of the first barriers).
    pub position: Position,
    /// Counter of the last transaction before the start.
    pub seq: u64,
    /// Snapshot reads before this position may already have been written by an earlier run.
    pub replay_end: Option<Position>,
    /// Backfill progress as of the start.
    pub backfill: Arc<BackfillState>,
}

/// A snapshot read under way; `after`: the end of the last transaction the stream had passed
/// when the read was announced (the read must not be older).
enum Hold {
    /// Announced; its position is not known yet. `inside`: where the first row change of the
    /// transaction the stream stood inside of ends, when some of its rows had passed.
    Begun {
        after: Position,
        inside: Option<Arc<Position>>,
    },
    /// Read at `read.position`, waiting for the stream to get there.
    Read { read: Read },
}

pub struct Merge {
    pub source: mpsc::Receiver<SourceEvent>,
    pub snapshots: mpsc::Receiver<SnapshotEvent>,
    pub worker: mpsc::Sender<WorkerMsg>,
    pub out: mpsc::Sender<StreamEvent>,
    pub views: Vec<Arc<View>>,
    pub marks: Marks,
    /// Tables as SQL reads them (primary keys of roots for the marks), forgotten on DDL.
    pub tables: TableCache,
    pub retry: RetryPolicy,
    /// Counts the DDL statements read; the snapshot worker forgets its tables when it moves.
    pub ddl: Arc<AtomicU64>,
    /// Fires at shutdown: an announced read is then given up, so that the stream drains.
    pub drain: CancellationToken,
    /// Views whose stale items were removed after a pass (its `since`) with a cleanup pending.
    pub cleaned: mpsc::Receiver<(String, u128)>,
    /// The checkpoint tracker's acknowledged barrier generations (see `pipeline::WrittenAt`).
    pub acked: tokio::sync::watch::Receiver<u64>,
}

/// Where the stream stands.
struct Cursor {
    /// End of the last transaction: where a restart would resume.
    resume: Position,
    /// The last transaction boundary (a commit, or the reader standing between transactions).
    boundary: Position,
    /// The transaction whose row changes passed since the last boundary, if any: its counter,
    /// and where its first row change ends in the binlog (a snapshot at or before it was taken
    /// before the transaction).
    transaction: Option<(u64, Arc<Position>)>,
    /// Counter of the last transaction passed.
    seq: u64,
    generation: u64,
    backfill: Arc<BackfillState>,
    /// Views backfilled again after their join marks overflowed: progress of chunks read before
    /// that is not theirs any more (see `Merge::apply_progress`).
    resetting: HashSet<String>,
    /// Snapshot rows merged since the last transaction: the next ones' version indexes count on.
    merged_rows: u32,
    /// The commit time of the last transaction read (`None` before the first): a barrier
    /// without a transaction carries it, so that the replication lag counts from the last
    /// commit, not from when rows were merged or an XA hold released (the review of the
    /// release barrier found `rowcast_replication_lag_seconds` read 0 behind a backlog).
    commit_ts: Option<u32>,
    /// Per transaction counter, where snapshot rows merged after it must start (see
    /// [`snapshot_floors`]).
    floors: BTreeMap<u64, u32>,
    replay_end: Option<Position>,
    /// Prepared XA transactions not decided yet, by XID: where a restart must read them again.
    holds: BTreeMap<String, Restart>,
    /// XA transactions of tables no view reads whose PREPARE the reader read (those of
    /// watched tables are in `holds`): a pass need not wait for them, their XA COMMIT is read.
    /// At most the transactions prepared on the server.
    known_xa: BTreeSet<String>,
    /// While a backfill chunk waits for the stream to reach its position: the XA transactions
    /// its views list (`xa_pending`) not decided yet. A pass's first chunk keeps only those
    /// still undecided at its position and not known to the reader (see `apply_progress`).
    undecided_in_read: Option<Vec<String>>,
    /// XA transactions whose XA COMMIT the reader could not read, the latest last (at most
    /// [`RECENTLY_UNREAD`]). MariaDB writes the XA COMMIT of a prepared transaction to the
    /// binlog before InnoDB commits it, so a snapshot at a later binlog position may still miss
    /// its rows while `XA RECOVER` lists it: a backfill read that lists one of these is read
    /// again, and so is one that lists a transaction committed so before its position.
    recently_unread: std::collections::VecDeque<String>,
    /// An XA COMMIT the reader could not read came while the backfill read under way listed
    /// its transaction: the read is read again rather than merged.
    unread_in_read: bool,
    /// The keys of the latest changes of tables being backfilled (see `recent`).
    recent: Recent,
    /// The tables whose changes go to `recent`, worked out for the backfill progress it holds:
    /// roots of eager views without joins whose pass is not done, and roots of views that
    /// take fills (lazy ones, and any with write-back, which restores).
    tracked: (Arc<BackfillState>, HashSet<TableRef>),
    /// When the read under way was announced.
    read_begun: Option<Instant>,
    /// How many times the read under way was read again for a change of its rows.
    reads_again: u32,
    /// Tables `recent` cannot key (no primary key, or their schema unreadable), and since when.
    unkeyed: HashMap<TableRef, Instant>,
}

/// How many of the latest unread XA COMMITs are remembered (see `Cursor::recently_unread`).
const RECENTLY_UNREAD: usize = 64;

/// Most XA transactions a pass lists by name; more are kept as [`ANY_XA`].
const MAX_XA_PENDING: usize = 8;
/// A pass that waits for more than [`MAX_XA_PENDING`] XA transactions waits for any: the next
/// XA COMMIT the reader cannot read backfills the view again.
const ANY_XA: &str = "*";

impl Cursor {
    /// `change` has passed: the transaction it is of is open, if none was.
    fn passed(&mut self, change: &RowChange) {
        if self.transaction.is_none() {
            self.transaction = Some((change.seq, change.origin.clone()));
        }
    }

    /// Where the snapshot rows merged after transaction `seq` count their version indexes from
    /// (see [`snapshot_floors`]).
    fn snapshot_start(&self, seq: u64) -> u32 {
        self.floors.get(&seq).copied().unwrap_or(0)
    }

    /// The earliest of the restart points barriers must carry (join marks, XA holds).
    fn floor(&self, marks: &Marks) -> Option<Restart> {
        marks
            .floor()
            .into_iter()
            .chain(self.holds.values().cloned())
            .min_by_key(|restart| restart.seq)
    }

    /// Where a restart reads the transaction under way again.
    fn restart(&self) -> Restart {
        Restart {
            seq: self.seq,
            position: self.resume.clone(),
        }
    }
}

impl Merge {
    pub async fn run(mut self, start: MergeStart) -> Result<(), MergeError> {
        let floors = snapshot_floors(&start.backfill);
        let mut cursor = Cursor {
            resume: start.position.clone(),
            boundary: start.position,
            transaction: None,
            seq: start.seq,
            generation: 0,
            backfill: start.backfill,
            resetting: HashSet::new(),
            merged_rows: 0,
            commit_ts: None,
            floors,
            replay_end: start.replay_end,
            holds: BTreeMap::new(),
            known_xa: BTreeSet::new(),
            undecided_in_read: None,
            recently_unread: std::collections::VecDeque::new(),
            unread_in_read: false,
            recent: Recent::default(),
            tracked: (Arc::default(), HashSet::new()),
            read_begun: None,
            reads_again: 0,
            unkeyed: HashMap::new(),
        };
        cursor.merged_rows = cursor.snapshot_start(cursor.seq);
        let mut hold: Option<Hold> = None;
        // The gauge's handle, looked up once: this loop turns for every event.
        let depth = metrics().queue_depth.with_label_values(&["merge"]);
        loop {
            self.send_due_batch().await?;
            let stream_open = !matches!(hold, Some(Hold::Begun { .. }));
            let due = self.marks.due_at();
            let draining = self.drain.is_cancelled();
            tokio::select! {
                biased;
                _ = self.drain.cancelled(), if !draining && hold.is_some() => {
                    // Shutdown: what is read of the binlog drains; a read under way is dropped
                    // (it is read again after the restart).
                    hold = None;
                }
                event = self.snapshots.recv() => {
                    let Some(event) = event else {
                        return Err(MergeError::WorkerGone);
                    };
                    hold = self.on_snapshot(event, hold, &mut cursor).await?;
                }
                Some((view, from)) = self.cleaned.recv() => self.cleaned(&view, from, &mut cursor),
                event = self.source.recv(), if stream_open => {
                    let Some(event) = event else {
                        return Ok(());
                    };
                    self.on_source(event, &mut cursor).await?;
                }
                _ = sleep_until(due), if due.is_some() => continue,
            }
            hold = self.merge_if_reached(hold, &mut cursor).await?;
            if hold.is_none() {
                cursor.undecided_in_read = None;
            }
            depth.set(self.source.len() as i64);
        }
    }

    async fn on_snapshot(
        &mut self,
        event: SnapshotEvent,
        hold: Option<Hold>,
        cursor: &mut Cursor,
    ) -> Result<Option<Hold>, MergeError> {
        if self.drain.is_cancelled() {
            // Draining: nothing more is merged.
            return Ok(None);
        }
        match (event, hold) {
            (SnapshotEvent::Begin, _) => {
                cursor.read_begun = Some(Instant::now());
                Ok(Some(Hold::Begun {
                    after: cursor.resume.clone(),
                    inside: cursor.transaction.as_ref().map(|(_, first)| first.clone()),
                }))
            }
            (SnapshotEvent::Read(read), Some(Hold::Begun { after, inside })) => {
                // The snapshot missed a commit the stream already passed (written to the
                // binlog before it was visible): its rows would undo it. So it does when the
                // stream stands inside a transaction and the snapshot is from before it (not
                // after its first row: the first transaction of a binlog file starts after the
                // file's header, where MariaDB may report a snapshot): the transaction's rows
                // passed already, and the read would be merged after it.
                let missed = position_before(&read.position, &after)
                    || inside
                        .as_deref()
                        .is_some_and(|first| position_before(&read.position, first));
                if missed {
                    warn!(snapshot = %read.position, passed = %after, inside = inside.is_some(), "snapshot older than the stream; reading it again");
                    // Its chunk permit is free before the worker reads again.
                    drop(read);
                    self.tell_worker(WorkerMsg::Again(READ_AGAIN_PAUSE)).await?;
                    return Ok(None);
                }
                // The stream is held from the read's announcement, which the worker sent before
                // its `XA RECOVER`; what was decided since, before the read's position, is in
                // the snapshot (an unread commit excepted: `Cursor::recently_unread`). One
                // decided between the query and the announcement stays listed: at worst a pass
                // waits for an XID that is never read unknown again.
                if let ReadKind::Backfill { state } = &read.kind {
                    let listed: BTreeSet<&String> = (read.views.iter())
                        .filter_map(|view| state.get(view))
                        .flat_map(|progress| &progress.xa_pending)
                        .collect();
                    if listed
                        .iter()
                        .any(|xid| cursor.recently_unread.contains(*xid))
                    {
                        debug!("a backfill read lists an XA transaction already committed (not yet in InnoDB when listed): reading it again");
                        drop(read);
                        self.tell_worker(WorkerMsg::Again(READ_AGAIN_PAUSE)).await?;
                        return Ok(None);
                    }
                    cursor.unread_in_read = false;
                    cursor.undecided_in_read =
                        (!listed.is_empty()).then(|| listed.into_iter().cloned().collect());
                }
                Ok(Some(Hold::Read { read }))
            }
            (SnapshotEvent::Read(_), _) => {
                warn!("snapshot rows without an announced read; ignored");
                cursor.reads_again = 0;
                self.tell_worker(WorkerMsg::Merged).await?;
                Ok(None)
            }
            (SnapshotEvent::Failed(failure), _) => {
                cursor.reads_again = 0;
                if let Some(halt) = self.on_failure(failure, cursor) {
                    self.emit(StreamEvent::Halt(halt)).await?;
                }
                self.tell_worker(WorkerMsg::Merged).await?;
                Ok(None)
            }
        }
    }

    /// What a failed read means for the stream: a view whose joins cannot be read halts, its
    /// progress held where its oldest outstanding mark was made.
    fn on_failure(&mut self, failure: ReadFailure, cursor: &mut Cursor) -> Option<Halt> {
        if !failure.backfill_done.is_empty() {
            let state = Arc::make_mut(&mut cursor.backfill);
            for view in failure.backfill_done {
                let previous = state.get(&view).cloned().unwrap_or_default();
                state.insert(
                    view,
                    Progress {
                        done: true,
                        cleanup: false,
                        ..previous.restarted()
                    },
                );
            }
        }
        let view = failure.halted_view?;
        let restart = cursor
            .floor(&self.marks)
            .unwrap_or_else(|| cursor.restart());
        self.marks.drop_view(&view);
        Some(Halt {
            target: HaltTarget::View(view),
            reason: "its joins cannot be read (see the error logged before); fix the view or the tables and restart".into(),
            restart: Some(restart),
            kept: false,
            before: None,
        })
    }

    async fn on_source(
        &mut self,
        event: SourceEvent,
        cursor: &mut Cursor,
    ) -> Result<(), MergeError> {
        match event {
            SourceEvent::Rows(batch) => self.on_rows(batch, cursor).await,
            SourceEvent::Commit(mut barrier) => {
                cursor.transaction = None;
                cursor.commit_ts = Some(barrier.commit_ts);
                cursor.merged_rows = cursor.snapshot_start(barrier.seq);
                cursor.seq = barrier.seq;
                cursor.resume = barrier.position.clone();
                cursor.boundary = barrier.position.clone();
                cursor.generation += 1;
                barrier.generation = cursor.generation;
                barrier.backfill = cursor.backfill.clone();
                barrier.restart = cursor.floor(&self.marks);
                self.emit(StreamEvent::Commit(barrier)).await
            }
            SourceEvent::At(position) => {
                if cursor.transaction.is_some() || !position_before(&cursor.boundary, &position) {
                    return Ok(());
                }
                cursor.boundary = position.clone();
                if position.file == cursor.resume.file {
                    return Ok(());
                }
                // A rotation with no transaction after it yet: the checkpoint moves to the new
                // file, so that purging the old one on an idle server does not strand it. The
                // GTID state is the last transaction's.
                cursor.resume = Position {
                    gtid: cursor.resume.gtid.clone(),
                    ..position
                };
                self.progress_barrier(cursor).await
            }
            SourceEvent::Halt(halt) => self.halt(halt, cursor).await,
            SourceEvent::TableGone(halt) => self.table_gone(halt, cursor).await,
            SourceEvent::Hold { key, restart } => {
                // The merge's own resume point: it may have moved past the reader's (an idle
                // rotation), and a checkpoint must never go back to a file already left.
                let restart = Restart {
                    seq: restart.seq.min(cursor.seq),
                    position: cursor.resume.clone(),
                };
                cursor.recently_unread.retain(|x| *x != key);
                cursor.holds.insert(key, restart);
                Ok(())
            }
            SourceEvent::Release(key) => self.release(&key, cursor).await,
            SourceEvent::XaPrepared(xid) => {
                // An XID used again: this one's commit is read.
                cursor.recently_unread.retain(|x| *x != xid);
                cursor.known_xa.insert(xid);
                Ok(())
            }
            SourceEvent::XaUnread(xid) => self.xa_unread(&xid, cursor).await,
            SourceEvent::Ddl => {
                self.tables.clear();
                // A table may have its primary key now (keys noted before name their columns).
                cursor.unkeyed.clear();
                // A key dropped again after the view was rebuilt halts it again.
                self.marks.forget_unkeyed();
                self.ddl.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            SourceEvent::Truncated(table) => self.resync(&table, cursor).await,
            SourceEvent::Altered {
                table,
                moved,
                added,
            } => self.altered(&table, (&moved, &added), cursor).await,
            SourceEvent::Retyped(table) => self.resync(&table, cursor).await,
        }
    }

    /// The views that read `table`, as their root or in a join.
    fn views_of(&self, table: &TableRef) -> Vec<Arc<View>> {
        self.views
            .iter()
            .filter(|v| v.reads_table(table))
            .cloned()
            .collect()
    }

    /// Views halt, their progress held no later than the oldest change still to come.
    async fn halt(&mut self, mut halt: Halt, cursor: &mut Cursor) -> Result<(), MergeError> {
        let earliest = cursor
            .floor(&self.marks)
            .filter(|floor| floor.seq < cursor.seq)
            .unwrap_or_else(|| cursor.restart());
        halt.restart.get_or_insert(earliest);
        // `earliest` may be older than a pass begun since (a join mark or a prepared XA
        // transaction holds it back); the halting change is not, and the projector compares
        // the pass with it (found by a review: such halts were dropped as covered by the pass).
        halt.before.get_or_insert(cursor.seq);
        self.emit(StreamEvent::Halt(halt)).await
    }

    /// A watched table dropped or renamed away: its eager views halt (kept) until a table of
    /// that name is back and their pass rebuilds them. A lazy view has no pass to rebuild it,
    /// so a halt would never lift: it is not halted, and its items are removed by a cleanup as
    /// after a TRUNCATE (a table back later cleans up again; later fills stay).
    async fn table_gone(&mut self, halt: Halt, cursor: &mut Cursor) -> Result<(), MergeError> {
        let HaltTarget::Table(table) = &halt.target else {
            return self.halt(halt, cursor).await;
        };
        let views = self.views_of(table);
        for view in views {
            if view.fill != FillMode::Lazy {
                let target = HaltTarget::View(view.name.clone());
                self.halt(
                    Halt {
                        target,
                        ..halt.clone()
                    },
                    cursor,
                )
                .await?;
            } else if !Self::pass_after(cursor, &view.name) {
                info!(view = %view.name, table = %table, "the lazy view's table is gone: its items are removed (made again as rows change or on a miss)");
                lazy_pass(&view, cursor);
            }
        }
        Ok(())
    }

    /// A table emptied without row events (or back after a DROP or RENAME, or its columns
    /// retyped, which rewrites every row without row events): every eager view
    /// that reads it goes back to "not filled, cleanup pending" in the very next barrier and is
    /// backfilled again; a lazy view (never backfilled) gets its cleanup alone (its items older
    /// than this transaction are removed, fills made later stay); a view whose root has no
    /// primary key cannot be backfilled and halts.
    async fn resync(&mut self, table: &TableRef, cursor: &mut Cursor) -> Result<(), MergeError> {
        let views = self.views_of(table);
        for view in views {
            self.resync_view(&view, table, cursor).await?;
        }
        Ok(())
    }

    /// [`Self::resync`] for one view.
    async fn resync_view(
        &mut self,
        view: &View,
        table: &TableRef,
        cursor: &mut Cursor,
    ) -> Result<(), MergeError> {
        if Self::pass_after(cursor, &view.name) {
            return Ok(());
        }
        let keyed = match self.tables.get(&view.source).await {
            Ok(root) => !root.primary_key.is_empty(),
            // The server away: the stage starts again from the checkpoint and reads this
            // change again, rather than halt the view for what may pass.
            Err(error) if error.is_transient() => return Err(MergeError::Table(error)),
            Err(_) => false,
        };
        if !keyed && view.fill != FillMode::Lazy {
            let reason = format!("{table} was emptied, replaced or retyped, and the root of this view has no primary key (or cannot be read): it cannot be backfilled again. Remedy: remove the view's items, then restart");
            let halt = Halt {
                target: HaltTarget::View(view.name.clone()),
                reason,
                restart: Some(cursor.restart()),
                kept: false,
                before: None,
            };
            self.emit(StreamEvent::Halt(halt)).await?;
            return Ok(());
        }
        if view.fill == FillMode::Lazy {
            lazy_pass(view, cursor);
        } else {
            self.restart_pass(&view.name, true, cursor).await?;
        }
        Ok(())
    }

    /// `view` goes back to "not filled" in the very next barrier (so no checkpoint says it
    /// filled while its items are not made good), keeping its definition and any cleanup
    /// pending (`cleanup`: one is pending from now), and the snapshot worker backfills it again.
    /// A view the checkpoint says halted gets a cleanup too: only a pass with one rebuilds it
    /// (see [`Merge::merge`]).
    async fn restart_pass(
        &mut self,
        view: &str,
        cleanup: bool,
        cursor: &mut Cursor,
    ) -> Result<(), MergeError> {
        let state = Arc::make_mut(&mut cursor.backfill);
        let previous = state.get(view).cloned().unwrap_or_default();
        let progress = Progress {
            cleanup: previous.cleanup || cleanup || previous.halted.is_some(),
            ..previous.restarted()
        };
        state.insert(view.to_string(), progress);
        cursor.resetting.insert(view.to_string());
        self.tell_worker(WorkerMsg::Backfill(view.to_string()))
            .await
    }

    /// The hold of an XA transaction's PREPARE ends: its COMMIT or ROLLBACK was read. The
    /// commit's barrier still carried the hold (the release comes after it): a barrier without
    /// it follows, so that an idle source's checkpoint passes the commit. Before 2026-12-07 it
    /// stayed at the PREPARE until the next transaction, and the checkpoint's age grew
    /// (`tests/edges.rs` `an_xa_commit_on_an_idle_source_moves_the_checkpoint_past_it`, seen
    /// failing; found by a review).
    async fn release(&mut self, key: &str, cursor: &mut Cursor) -> Result<(), MergeError> {
        let held = cursor.holds.remove(key).is_some();
        Self::forget_xa(key, cursor);
        if held && cursor.transaction.is_none() {
            return self.progress_barrier(cursor).await;
        }
        Ok(())
    }

    /// An XA transaction whose PREPARE the reader never read commits: each view whose backfill
    /// began while it was prepared has none of its rows (its snapshots did not see them, and
    /// the stream cannot bring them), so it is backfilled again from the next barrier on, and
    /// then its items no row makes are removed (the transaction may have deleted rows).
    async fn xa_unread(&mut self, xid: &str, cursor: &mut Cursor) -> Result<(), MergeError> {
        if (cursor.undecided_in_read.as_deref())
            .is_some_and(|listed| listed.iter().any(|x| x == xid))
        {
            cursor.unread_in_read = true;
        }
        cursor.recently_unread.push_back(xid.to_string());
        if cursor.recently_unread.len() > RECENTLY_UNREAD {
            cursor.recently_unread.pop_front();
        }
        // Eager views only: a lazy view has no pass (its fills are not made again).
        let missed: Vec<String> = (cursor.backfill.iter())
            .filter(|(_, progress)| (progress.xa_pending.iter()).any(|p| p == xid || p == ANY_XA))
            .map(|(view, _)| view.clone())
            .filter(|view| (self.views.iter()).any(|v| v.name == *view && v.fill != FillMode::Lazy))
            .collect();
        for view in missed {
            warn!(view = %view, xid = %xid, "an XA transaction prepared before this view's backfill began, and before where rowcast reads the binlog from, committed: the view is backfilled again, then its items no row makes are removed");
            self.restart_pass(&view, true, cursor).await?;
        }
        Self::forget_xa(xid, cursor);
        Ok(())
    }

    /// An XA transaction is decided: no pass waits for it any more.
    fn forget_xa(xid: &str, cursor: &mut Cursor) {
        cursor.known_xa.remove(xid);
        if let Some(undecided) = cursor.undecided_in_read.as_mut() {
            undecided.retain(|x| x != xid);
        }
        let waits = |p: &Progress| p.xa_pending.iter().any(|x| x == xid);
        if !cursor.backfill.values().any(waits) {
            return;
        }
        for progress in Arc::make_mut(&mut cursor.backfill).values_mut() {
            progress.xa_pending.retain(|x| x != xid);
        }
    }

    /// Whether `view`'s current backfill pass began after the transaction being read (a DDL read
    /// again after a restart, whose re-backfill already happened): nothing to do again.
    fn pass_after(cursor: &Cursor, view: &str) -> bool {
        cursor
            .backfill
            .get(view)
            .and_then(|p| p.since)
            .is_some_and(|since| since > cursor.seq)
    }

    /// A table's columns changed: each view that takes every column of it (its root with
    /// implicit attributes, or an embed of every column) is backfilled again from the next
    /// barrier on, so that every item has the columns the table has now, not only the items of
    /// rows that change afterwards; a lazy view's items made before are removed (its cleanup),
    /// to be filled again on a miss. Before 2026-12-07 a lazy view was left out, and its items
    /// kept the table's old columns until their rows changed (found by a review;
    /// `tests/backfill.rs` `a_lazy_view_of_every_column_follows_a_column_added`, seen failing).
    async fn refill_every_column(
        &mut self,
        table: &TableRef,
        resynced: &[String],
        cursor: &mut Cursor,
    ) -> Result<(), MergeError> {
        let views: Vec<Arc<View>> = self
            .views
            .iter()
            .filter(|v| {
                v.source == *table && v.attributes == Attributes::Implicit
                    || v.joins
                        .iter()
                        .any(|j| j.from == *table && j.reads_every_column())
            })
            .filter(|v| !Self::pass_after(cursor, &v.name) && !resynced.contains(&v.name))
            .cloned()
            .collect();
        for view in views {
            info!(view = %view.name, table = %table, "the table's columns changed: the view takes every column, so it is backfilled again (a lazy view: its items are removed, to be filled again)");
            if view.fill == FillMode::Lazy {
                lazy_pass(&view, cursor);
            } else {
                self.restart_pass(&view.name, false, cursor).await?;
            }
        }
        Ok(())
    }

    /// Columns of `table` dropped or renamed away (`moved`): every view whose items are made
    /// from one of them, or from every column of `table` (lazy ones too), is resynced like
    /// after a retype — backfilled again, then its items not written again
    /// removed (a lazy view: its cleanup). Its pass reads the table as it is then: where the
    /// column is gone for good the view halts at the pass's first row, at once rather than at
    /// the row's next change; where a column of that name is back (added again, two names
    /// swapped) its items get the new values instead of keeping the old ones for good.
    /// The names of the views resynced.
    async fn columns_moved(
        &mut self,
        table: &TableRef,
        moved: &[String],
        cursor: &mut Cursor,
    ) -> Result<Vec<String>, MergeError> {
        if moved.is_empty() {
            return Ok(Vec::new());
        }
        let mut views = self.views_of(table);
        views.retain(|v| {
            v.columns_read(table)
                .is_none_or(|read| read.iter().any(|c| moved.contains(c)))
        });
        for view in &views {
            info!(view = %view.name, table = %table, columns = ?moved, "a column the view reads was dropped or renamed: it is backfilled again");
            self.resync_view(view, table, cursor).await?;
        }
        Ok(views.iter().map(|v| v.name.clone()).collect())
    }

    /// `table`'s columns changed: columns `moved` (dropped, renamed away) and `added` (or
    /// renamed to).
    async fn altered(
        &mut self,
        table: &TableRef,
        (moved, added): (&[String], &[String]),
        cursor: &mut Cursor,
    ) -> Result<(), MergeError> {
        let mut resynced = self.columns_moved(table, moved, cursor).await?;
        let missed = self.columns_added(table, added, &resynced, cursor).await?;
        resynced.extend(missed);
        self.refill_every_column(table, &resynced, cursor).await
    }

    /// Columns of `table` added or renamed to (`added`): every view (lazy ones too) that names
    /// one of them, other than those in `resynced` already, is resynced like after a drop. It
    /// was missing the column: halted by a `DROP` of it just before (by the pass the `DROP`
    /// began, which read the table between the two statements, or by a row changed between
    /// them), and no pass would otherwise rebuild it before `rowcast snapshot --view` or a
    /// restart. The names of the views resynced.
    async fn columns_added(
        &mut self,
        table: &TableRef,
        added: &[String],
        resynced: &[String],
        cursor: &mut Cursor,
    ) -> Result<Vec<String>, MergeError> {
        let mut views = self.views_of(table);
        views.retain(|v| {
            !resynced.contains(&v.name)
                && v.columns_read(table)
                    .is_some_and(|read| read.iter().any(|c| added.contains(c)))
        });
        for view in &views {
            info!(view = %view.name, table = %table, columns = ?added, "a column the view reads was added: it is backfilled again (it may have halted without it)");
            self.resync_view(view, table, cursor).await?;
        }
        Ok(views.iter().map(|v| v.name.clone()).collect())
    }

    /// The stale items of `view` were removed after the pass whose first row was at version
    /// `from` (`verify::cleanup`): its progress says so from the next barrier on, unless another
    /// pass began meanwhile (its cleanup is still to come).
    fn cleaned(&mut self, view: &str, from: u128, cursor: &mut Cursor) {
        let state = Arc::make_mut(&mut cursor.backfill);
        if let Some(progress) = state
            .get_mut(view)
            .filter(|p| p.done && p.from_version == Some(from))
        {
            progress.cleanup = false;
        }
    }

    /// Row changes of one transaction: passed on as they came when no view has joins (nothing
    /// to mark, nothing to halt between them), else row by row.
    async fn on_rows(
        &mut self,
        mut batch: RowBatch,
        cursor: &mut Cursor,
    ) -> Result<(), MergeError> {
        self.note_recent(&batch.rows, cursor).await;
        if self.marks.is_empty() {
            if let Some(first) = batch.rows.first() {
                cursor.passed(first);
            }
            return self.emit(StreamEvent::Rows(batch)).await;
        }
        // The batch keeps its permits until its last row is passed on.
        for change in std::mem::take(&mut batch.rows) {
            self.on_row(change, cursor).await?;
        }
        Ok(())
    }

    /// A row change: join marks (restarting at an XA prepare for the rows of its commit), then
    /// on to the projector.
    async fn on_row(&mut self, change: RowChange, cursor: &mut Cursor) -> Result<(), MergeError> {
        cursor.passed(&change);
        if !self.marks.is_empty() {
            // Rows of an XA transaction being committed restart at its prepare.
            let held = cursor.holds.values().min_by_key(|r| r.seq).cloned();
            let by = match &held {
                Some(hold) if hold.seq < change.seq => MarkedBy {
                    seq: hold.seq + 1,
                    restart: &hold.position,
                },
                _ => MarkedBy {
                    seq: change.seq,
                    restart: &cursor.resume,
                },
            };
            for view in self.mark(&change, by).await? {
                // Halted before this change reaches the projector, its progress held at it: a
                // restart with the key back reads it again (`kept: false`, as for a join read
                // that failed).
                let reason = format!("the root table {} of this view has no primary key (dropped while rowcast ran?): its joins cannot be refreshed. Remedy: give the table its primary key back, then restart", change.table);
                let halt = Halt {
                    target: HaltTarget::View(view),
                    reason,
                    restart: None,
                    kept: false,
                    before: None,
                };
                self.halt(halt, cursor).await?;
            }
            self.backfill_overflowed(cursor).await?;
            self.pass_unmarkable(cursor).await?;
        }
        self.emit(StreamEvent::Rows(RowBatch::one(change))).await
    }

    /// Marks what a row change may change in views with joins; what SQL must say of the root
    /// tables (their primary keys) is read again after a transient failure.
    async fn mark(
        &mut self,
        change: &RowChange,
        by: MarkedBy<'_>,
    ) -> Result<Vec<String>, MergeError> {
        let images = (change.before.as_ref(), change.after.as_ref());
        let mut backoff = self.retry.backoff();
        loop {
            let marked = self
                .marks
                .mark(&mut self.tables, &change.table, images, by)
                .await;
            match marked {
                Ok(unkeyed) => return Ok(unkeyed),
                Err(error) if error.is_transient() => {
                    warn!(error = %chain(&error), "reading a root table for the join marks failed; retrying");
                    tokio::time::sleep(backoff.next().unwrap_or(self.retry.max)).await;
                }
                Err(error) => return Err(MergeError::Marks(error)),
            }
        }
    }

    /// Notes the keys of `changes` of tables being backfilled or filled (see `recent`). A
    /// change of a key-moving update notes both keys.
    async fn note_recent(&mut self, changes: &[RowChange], cursor: &mut Cursor) {
        if !Arc::ptr_eq(&cursor.tracked.0, &cursor.backfill) {
            let backfilling = |v: &View| {
                v.joins.is_empty() && cursor.backfill.get(&v.name).is_some_and(|p| !p.done)
            };
            let filled = |v: &View| v.fill == FillMode::Lazy || v.writeback_enabled;
            let tables = (self.views.iter())
                .filter(|v| backfilling(v) || filled(v))
                .map(|v| v.source.clone())
                .collect();
            cursor.tracked = (cursor.backfill.clone(), tables);
        }
        let now = Instant::now();
        let mut last: Option<&TableRef> = None;
        for change in changes {
            if last != Some(&change.table) {
                cursor.recent.touch(&change.table, change.seq, now);
                last = Some(&change.table);
            }
        }
        if cursor.tracked.1.is_empty() {
            return;
        }
        for change in changes {
            if !cursor.tracked.1.contains(&change.table) {
                continue;
            }
            let Some(table) = self.keyed_table(&change.table, cursor).await else {
                continue;
            };
            let key_of = |row: &Row| row_key(&change.table, &table.primary_key, row);
            let after = change.after.as_ref().and_then(key_of);
            let before = (change.before.as_ref().and_then(key_of)).filter(|b| after != Some(*b));
            for key in [before, after].into_iter().flatten() {
                cursor.recent.push(key, change.seq, now);
            }
        }
    }

    /// `table` as SQL has it, if it has a primary key: what `recent` identifies its rows by. A
    /// table without one, or whose schema cannot be read, is not asked for again for
    /// [`UNKEYED_PAUSE`] (every change of it would ask).
    async fn keyed_table(
        &mut self,
        table: &TableRef,
        cursor: &mut Cursor,
    ) -> Option<Arc<SqlTable>> {
        if (cursor.unkeyed.get(table)).is_some_and(|at| at.elapsed() < UNKEYED_PAUSE) {
            return None;
        }
        match self.tables.get(table).await {
            Ok(sql) if !sql.primary_key.is_empty() => Some(sql),
            _ => {
                cursor.unkeyed.insert(table.clone(), Instant::now());
                None
            }
        }
    }

    /// The rows of a backfill chunk that a change the stream delivered since its views' passes
    /// began supersedes (see `recent`), taken out of `read`: how many. Only where every view of
    /// the chunk is without joins (a root's change of a view with joins is written by the
    /// refresh it marks) and past its pass's first chunk (the pass begins after the changes
    /// before it), and where the chunk was read by the primary key `recent`'s keys are of (SQL's
    /// schema is read as it is now, which may be ahead of the stream).
    async fn drop_superseded(
        &mut self,
        read: &mut Read,
        chunk_rows: u64,
        cursor: &mut Cursor,
    ) -> u64 {
        let ReadKind::Backfill { state } = &read.kind else {
            return 0;
        };
        if read.joined.is_some() || cursor.recent.is_empty() {
            return 0;
        }
        let mut since = 0;
        for name in &read.views {
            let plain = (self.views.iter()).any(|v| v.name == *name && v.joins.is_empty());
            let first = state.get(name).is_none_or(|p| p.rows == chunk_rows);
            let began = cursor.backfill.get(name).and_then(|p| p.since);
            match began {
                Some(began) if plain && !first && !cursor.resetting.contains(name) => {
                    since = since.max(began);
                }
                _ => return 0,
            }
        }
        let Some(table) = self.keyed_table(&read.table, cursor).await else {
            return 0;
        };
        if table.primary_key != read.key {
            return 0;
        }
        let before = read.rows.len();
        read.rows.retain(|row| {
            let key = row_key(&read.table, &table.primary_key, row);
            let latest = key.and_then(|key| cursor.recent.latest(key));
            latest.is_none_or(|latest| latest.seq <= since)
        });
        let dropped = (before - read.rows.len()) as u64;
        if dropped > 0 {
            debug!(table = %read.table, dropped, "backfill rows superseded by changes the stream delivered");
            for view in &read.views {
                metrics()
                    .backfill_superseded
                    .with_label_values(&[view])
                    .inc_by(dropped);
            }
        }
        dropped
    }

    /// For a fill (also a restore or a repair), or a pass's first backfill chunk of views
    /// without joins, that may have missed a change (`recent::Latest::at_risk`: of the last
    /// transactions before its position, passed just before it was announced or since): how
    /// long to wait before reading it again (see `recent`).
    /// A fill, by a change of a row it read; a first chunk, or a repair that found no row, by
    /// any change of the table (the row a missed insert makes is not among the rows read: its
    /// item, written at a version below the pass's first, would go at the pass's cleanup; a
    /// first chunk cannot leave rows out either, its pass begins after the changes before it).
    /// Read again at most [`MAX_READS_AGAIN`] times, then merged as it is.
    async fn read_again(&mut self, read: &Read, cursor: &mut Cursor) -> Option<Duration> {
        let rows = read.rows.len() as u64;
        let (kind, whole_table) = match &read.kind {
            ReadKind::Fill { remove, .. } => ("fill", remove.is_some()),
            ReadKind::Backfill { state }
                if read.joined.is_none()
                    && (read.views.iter())
                        .any(|v| state.get(v).is_some_and(|p| p.rows == rows)) =>
            {
                ("backfill", true)
            }
            _ => return None,
        };
        if cursor.reads_again >= MAX_READS_AGAIN {
            return None;
        }
        let begun = cursor.read_begun?;
        let last = cursor.seq;
        let settled = if whole_table {
            cursor
                .recent
                .table_changed(&read.table)?
                .at_risk(last, begun)?
        } else {
            let table = self.keyed_table(&read.table, cursor).await?;
            (read.rows.iter())
                .filter_map(|row| row_key(&read.table, &table.primary_key, row))
                .filter_map(|key| cursor.recent.latest(key)?.at_risk(last, begun))
                .max()?
        };
        metrics().reads_again.with_label_values(&[kind]).inc();
        Some(settled.saturating_duration_since(Instant::now()))
    }

    /// Merges the held read once the stream has reached its position.
    async fn merge_if_reached(
        &mut self,
        hold: Option<Hold>,
        cursor: &mut Cursor,
    ) -> Result<Option<Hold>, MergeError> {
        let read = match hold {
            Some(Hold::Read { read, .. })
                if cursor.transaction.is_none()
                    && !position_before(&cursor.boundary, &read.position) =>
            {
                read
            }
            other => return Ok(other),
        };
        if cursor.unread_in_read && matches!(read.kind, ReadKind::Backfill { .. }) {
            // One of the XA transactions it listed committed before its position, unread: the
            // snapshot may or may not have its rows (see `Cursor::recently_unread`).
            debug!("an XA transaction a backfill read listed committed before its position: reading it again");
            cursor.unread_in_read = false;
            drop(read);
            self.tell_worker(WorkerMsg::Again(READ_AGAIN_PAUSE)).await?;
            return Ok(None);
        }
        if let Some(pause) = self.read_again(&read, cursor).await {
            debug!(table = %read.table, ?pause, "a row of a fill or a first chunk changed just before its read: reading it again once the change is visible");
            cursor.reads_again += 1;
            drop(read);
            self.tell_worker(WorkerMsg::Again(pause)).await?;
            return Ok(None);
        }
        cursor.reads_again = 0;
        crate::util::failpoint::hit("merge.before_merge");
        self.merge(read, cursor).await?;
        self.tell_worker(WorkerMsg::Merged).await?;
        Ok(None)
    }

    /// Whether the writes of `read` are guarded by the version.
    fn guarded(&self, read: &Read, cursor: &Cursor) -> bool {
        let writeback = self
            .views
            .iter()
            .any(|v| v.writeback_enabled && read.views.contains(&v.name));
        // At the binlog's end at start too (an idle server): an earlier run's read at the same
        // place may have been merged at higher indexes of the same transaction's versions.
        let replayed = cursor
            .replay_end
            .as_ref()
            .is_some_and(|end| !position_before(end, &read.position));
        // A snapshot read after a restart may get the version an earlier run gave a read at the
        // same place; for a write-back view an unconditional rewrite with an equal version
        // would look like an application's change (the version rule) and flow back to SQL.
        // A fill is always guarded: the item may have been written meanwhile by a read of its own.
        let fill = matches!(read.kind, ReadKind::Fill { .. });
        fill || writeback || replayed
    }

    async fn merge(&mut self, mut read: Read, cursor: &mut Cursor) -> Result<(), MergeError> {
        let guard = self.guarded(&read, cursor);
        let views = read.views.clone();
        // Counted and judged before any row is dropped: the pass's progress counts rows read.
        let chunk_rows = read.rows.len() as u64;
        let pass_starts = Self::pass_starts(&read, &views, cursor);
        self.drop_superseded(&mut read, chunk_rows, cursor).await;
        let first_index = SNAPSHOT_INDEX_BASE.saturating_add(cursor.merged_rows);
        let remove = match &read.kind {
            ReadKind::Fill { remove, .. } => remove.as_deref().cloned(),
            _ => None,
        };
        // A removal takes the version after the rows'.
        let versions = read.rows.len() + usize::from(remove.is_some());
        cursor.merged_rows = cursor
            .merged_rows
            .saturating_add(u32::try_from(versions).unwrap_or(u32::MAX));
        let rows = SnapshotRows {
            pass_starts,
            table: read.table,
            views: read.views,
            rows: read.rows,
            joined: read.joined,
            refresh: matches!(read.kind, ReadKind::Refresh { .. }),
            restore: matches!(
                read.kind,
                ReadKind::Fill {
                    restore: Some(_),
                    ..
                }
            ),
            remove,
            seq: cursor.seq,
            first_index,
            origin: Arc::new(read.position),
            guard,
            hold: read.hold,
        };
        self.emit(StreamEvent::Snapshot(Box::new(rows))).await?;
        match read.kind {
            // A restore: a barrier behind its writes, which write-back waits for before it
            // saves the position of the record that asked (see `pipeline::WrittenAt`).
            ReadKind::Fill { restore: None, .. } => return Ok(()),
            ReadKind::Fill {
                restore: Some(written),
                ..
            } => written.merged(cursor.generation + 1, self.acked.clone()),
            ReadKind::Backfill { state } => {
                let first_version = version_of(cursor.seq, first_index);
                Self::apply_progress(cursor, &views, &state, (chunk_rows, first_version))
            }
            ReadKind::Refresh { last } => {
                if last {
                    self.marks.finish_batch();
                }
            }
        }
        // Progress without a commit: lets the checkpoint pass the merged rows.
        self.progress_barrier(cursor).await
    }

    /// The views whose backfill pass begins with this chunk (`read`, of `views`) and may rebuild
    /// them if halted.
    fn pass_starts(read: &Read, views: &[String], cursor: &Cursor) -> Vec<String> {
        let chunk_rows = read.rows.len() as u64;
        // The first chunk of a backfill pass: every row it copies is read after anything the
        // stream held before, so it can rebuild a view that halted earlier, if the pass also
        // removes the items it does not write (its cleanup): the change that halted the view
        // may have deleted rows, or moved them away, and their items are no row's now. A pass
        // without one (after an `ADD COLUMN`, a marks overflow) leaves the view halted: before
        // 2026-12-07 it rebuilt it, and such items stayed for good (found by a review;
        // `tests/edges.rs` `a_halt_is_lifted_only_by_a_pass_that_removes_what_it_did_not_write`,
        // seen failing). A new view's first pass has a cleanup (`snapshot::driver`), so that a
        // halt read before its first chunk is lifted too (`tests/edges.rs`
        // `a_view_added_while_another_of_its_table_is_halted_is_filled`).
        match &read.kind {
            ReadKind::Backfill { state } => views
                .iter()
                .filter(|view| {
                    state.get(*view).is_some_and(|p| {
                        let cleans =
                            p.cleanup || cursor.backfill.get(*view).is_some_and(|p| p.cleanup);
                        p.rows == chunk_rows && cleans
                    })
                })
                .cloned()
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A barrier without a transaction (merged snapshot rows, a binlog rotation).
    async fn progress_barrier(&mut self, cursor: &mut Cursor) -> Result<(), MergeError> {
        cursor.generation += 1;
        let barrier = Barrier {
            seq: cursor.seq,
            generation: cursor.generation,
            backfill: cursor.backfill.clone(),
            position: cursor.resume.clone(),
            restart: cursor.floor(&self.marks),
            commit_ts: (cursor.commit_ts).unwrap_or((crate::util::now_millis() / 1000) as u32),
            read_at: Instant::now(),
        };
        self.emit(StreamEvent::Commit(barrier)).await
    }

    /// The progress a merged backfill chunk carries, for the views it was read for. A view being
    /// backfilled again after an overflow takes it only from the first chunk of the new pass on
    /// (a chunk read before may carry the old pass's progress).
    fn apply_progress(
        cursor: &mut Cursor,
        views: &[String],
        state: &BackfillState,
        (rows, first_version): (u64, u128),
    ) {
        let backfill = Arc::make_mut(&mut cursor.backfill);
        for view in views {
            let Some(progress) = state.get(view) else {
                continue;
            };
            // A pass's first chunk: the rows copied so far are all in it.
            let first = progress.rows == rows;
            if cursor.resetting.contains(view) {
                if !first {
                    continue;
                }
                cursor.resetting.remove(view);
            }
            let since = if first {
                Some(cursor.seq)
            } else {
                backfill.get(view).and_then(|p| p.since)
            };
            // A cleanup pending here (a TRUNCATE read) stays pending through the pass.
            let cleanup = progress.cleanup || backfill.get(view).is_some_and(|p| p.cleanup);
            let from_version = if first {
                Some(first_version)
            } else {
                backfill.get(view).and_then(|p| p.from_version)
            };
            // The XA transactions prepared before the pass, from its first chunk (less those
            // decided before its position); later, what is left of them.
            let xa_pending = if first {
                let undecided = cursor.undecided_in_read.as_deref().unwrap_or_default();
                let waits: Vec<String> = (progress.xa_pending.iter())
                    .filter(|xid| undecided.contains(xid))
                    .filter(|xid| {
                        !cursor.holds.contains_key(*xid) && !cursor.known_xa.contains(*xid)
                    })
                    .cloned()
                    .collect();
                if waits.len() > MAX_XA_PENDING {
                    vec![ANY_XA.to_string()]
                } else {
                    waits
                }
            } else {
                backfill
                    .get(view)
                    .map(|p| p.xa_pending.clone())
                    .unwrap_or_default()
            };
            backfill.insert(
                view.clone(),
                Progress {
                    since,
                    cleanup,
                    from_version,
                    xa_pending,
                    ..progress.clone()
                },
            );
        }
    }

    /// Views whose marks overflowed: their progress goes back to "not filled" in the very next
    /// barrier (so no checkpoint says them filled while their dropped marks are not made good),
    /// and the snapshot worker backfills them again.
    async fn backfill_overflowed(&mut self, cursor: &mut Cursor) -> Result<(), MergeError> {
        for name in self.marks.take_overflowed() {
            match self.views.iter().find(|v| v.name == name) {
                // Never backfilled: its items (some may have missed a refresh) are removed,
                // and filled again on a miss.
                Some(view) if view.fill == FillMode::Lazy => lazy_pass(view, cursor),
                _ => self.restart_pass(&name, false, cursor).await?,
            }
        }
        Ok(())
    }

    /// Views a change could not be marked for (see `merge::marks`, `unmarkable`): backfilled
    /// again (a lazy view: its items removed), unless a pass that covers the change is pending
    /// (restarted, its first chunk not merged yet: every chunk of it is read after this change)
    /// or began after the change's transaction (a replay from a checkpoint held before it).
    /// The review of the first version found a pass restarted at every such change of a replay,
    /// and at every restart that read them again.
    async fn pass_unmarkable(&mut self, cursor: &mut Cursor) -> Result<(), MergeError> {
        for name in self.marks.take_unmarkable() {
            if cursor.resetting.contains(&name) || Self::pass_after(cursor, &name) {
                continue;
            }
            self.marks.drop_marks_of(&name);
            match self.views.iter().find(|v| v.name == name) {
                Some(view) if view.fill == FillMode::Lazy => lazy_pass(view, cursor),
                _ => self.restart_pass(&name, false, cursor).await?,
            }
        }
        Ok(())
    }

    /// Hands a batch of marks to the snapshot worker when one is due.
    async fn send_due_batch(&mut self) -> Result<(), MergeError> {
        if self.marks.due_at().is_none_or(|at| at > Instant::now()) {
            return Ok(());
        }
        if let Some(batch) = self.marks.next_batch() {
            self.tell_worker(WorkerMsg::Refresh(batch)).await?;
        }
        Ok(())
    }

    async fn tell_worker(&self, message: WorkerMsg) -> Result<(), MergeError> {
        self.worker.send(message).await.map_err(|_| {
            warn!("the snapshot worker is gone");
            MergeError::WorkerGone
        })
    }

    async fn emit(&self, event: StreamEvent) -> Result<(), MergeError> {
        self.out
            .send(event)
            .await
            .map_err(|_| MergeError::ProjectorGone)
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// A lazy view's items made before now are removed (its cleanup), to be filled again on a
/// miss: when rows of the transaction being read passed already, those too (rows of a
/// transaction rolled back are older than the cleanup), but not a fill merged after it.
fn lazy_pass(view: &View, cursor: &mut Cursor) {
    let progress = match &cursor.transaction {
        Some((seq, _)) => Progress::lazy_cleanup_after(*seq, view.fingerprint()),
        None => Progress::lazy_cleanup(cursor.seq + 1, view.fingerprint()),
    };
    Arc::make_mut(&mut cursor.backfill).insert(view.name.clone(), progress);
}

/// Where snapshot rows merged after each transaction must start, from the passes an earlier run
/// began (their first versions, in the checkpoint's progress). Snapshot rows take the versions
/// after their transaction's, counted from [`SNAPSHOT_INDEX_BASE`] within the run; a run that
/// starts again with no transaction since (a quiet source) would count from there again, and
/// a resumed pass would write its rows below its own first version: its cleanup would remove
/// them as stale (found by a review; `tests/crash_points.rs`). They start above every first
/// version of that transaction instead. The earlier run's rows above it and not in the
/// checkpoint are of the same source state (no transaction came in between).
fn snapshot_floors(backfill: &BackfillState) -> BTreeMap<u64, u32> {
    let mut floors = BTreeMap::new();
    for version in backfill.values().filter_map(|p| p.from_version) {
        let (seq, index) = crate::pipeline::version_parts(version);
        if let Some(rows) = index.checked_sub(SNAPSHOT_INDEX_BASE) {
            let floor = floors.entry(seq).or_insert(0u32);
            *floor = (*floor).max(rows.saturating_add(1));
        }
    }
    floors
}
