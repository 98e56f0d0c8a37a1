//! Snapshot reads and their merge into the change stream: what the snapshot worker and the
//! merge stage tell each other.
//!
//! A snapshot read happens at a binlog position P that is only known once the read has begun,
//! and P is never behind what the merge stage has let through (the server cannot have written
//! what it has not committed yet). So the worker first announces a read (`Begin`): the merge
//! stage then lets no binlog event through until it knows P (`Read`), lets the stream run up to
//! P, merges the rows there, and tells the worker (`Merged`) that the next read may begin. One
//! read is under way at a time.

use std::sync::Arc;

use mysql_async::Value;

use super::{BackfillState, Position};
use crate::view::join::Joined;
use crate::view::spec::TableRef;
use crate::view::Row;

/// Rows read in one consistent snapshot at `position`, waiting to be merged there.
#[derive(Debug)]
pub struct Read {
    pub table: TableRef,
    /// The views the rows are for.
    pub views: Vec<String>,
    pub rows: Vec<Row>,
    /// The related rows of each row, for a view with joins (`views` is then that view alone).
    pub joined: Option<Vec<Joined>>,
    pub position: Position,
    /// The root table's primary key columns as the read found them (it read by them), for a
    /// backfill chunk and a fill; empty for a refresh.
    pub key: Vec<String>,
    pub kind: ReadKind,
    /// A backfill chunk holds one of the worker's chunk permits until the projector has handed
    /// its writes to the lanes: the backfill reads no further ahead of the writers than that.
    pub hold: Option<tokio::sync::OwnedSemaphorePermit>,
}

#[derive(Debug, Clone)]
pub enum ReadKind {
    /// A backfill chunk; `state`: the backfill progress once it is merged.
    Backfill { state: Arc<BackfillState> },
    /// A fill on miss; `restore`: asked by write-back after it rejected an application's change
    /// (told where its writes are acknowledged); `remove`: a repair (`rowcast verify --repair`) of an item no row read makes, removed at
    /// the read's position.
    Fill {
        restore: Option<super::WrittenAt>,
        remove: Option<Box<crate::view::ItemKey>>,
    },
    /// A chunk of a join refresh batch; `last`: the batch is read to its end with it.
    Refresh { last: bool },
}

/// Snapshot worker → merge.
#[derive(Debug)]
pub enum SnapshotEvent {
    /// A snapshot read begins: the stream must not pass its position, not known yet.
    Begin,
    /// What the read announced by the last `Begin` found.
    Read(Read),
    /// The read announced by the last `Begin` failed: nothing to merge.
    Failed(ReadFailure),
}

#[derive(Debug, Default)]
pub struct ReadFailure {
    /// A refresh of this view failed definitely (a view that does not fit its tables): the
    /// view halts and its marks stop holding the checkpoint.
    pub halted_view: Option<String>,
    /// Views whose backfill ended without rows to merge (a root table without primary key).
    pub backfill_done: Vec<String>,
}

/// The pause before a read the merge stage found older than the stream is read again: a moment
/// for the commit it missed and for the stream.
pub const READ_AGAIN_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Merge → snapshot worker.
#[derive(Debug)]
pub enum WorkerMsg {
    /// The last read is merged (or given up): the next one may begin.
    Merged,
    /// The last read may not have seen changes the stream had already passed (a commit written
    /// to the binlog before it was visible to snapshots): read it again after this pause.
    Again(std::time::Duration),
    /// Read these marked roots of a view with joins again.
    Refresh(RefreshBatch),
    /// Backfill this view again (more keys waited for a refresh than it may hold).
    Backfill(String),
}

/// Marked roots of one view with joins: the values of `columns` for each key.
#[derive(Debug, Clone)]
pub struct RefreshBatch {
    pub view: String,
    pub columns: Vec<String>,
    pub keys: Vec<Vec<Value>>,
}
