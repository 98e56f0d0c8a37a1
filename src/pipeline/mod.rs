//! Messages between the stages. Every message carries the source position it covers.

use std::sync::Arc;
use std::time::Instant;

mod backfill;
mod position;
mod route;
pub mod snapshot;

use crate::view::join::Joined;
use crate::view::name::Name;
use crate::view::spec::TableRef;
use crate::view::{ItemOp, Row};
pub use backfill::{BackfillState, KeyValue, Progress, SNAPSHOT_INDEX_BASE};
pub use position::{position_before, Checkpoint, Position, Restart};
pub use route::{lane_of, version_of, version_parts};

/// Source → merge.
#[derive(Debug)]
pub enum SourceEvent {
    /// Row changes of one transaction, in order (of one rows event, or one of a ROLLBACK's).
    Rows(RowBatch),
    /// Transaction `seq` ends at `position`; everything before it has been sent. The merge
    /// stage completes the barrier (generation, backfill progress, restart point).
    Commit(Barrier),
    /// The reader stands at `position` between transactions (a heartbeat, a rotation, …).
    At(Position),
    /// A DDL statement was read: table schemas may have changed.
    Ddl,
    /// A change rowcast cannot read correctly (a statement-format DML, a partial row image) in
    /// the transaction being read: the views it affects halt.
    Halt(Halt),
    /// A watched table dropped or renamed away (the halt's target): its eager views halt as for
    /// `Halt`; a lazy one, which no pass rebuilds, has its items cleaned up instead.
    TableGone(Halt),
    /// Changes read but not applied yet (a prepared XA transaction, applied at its XA COMMIT):
    /// no checkpoint may pass `restart` until the hold of the same key is released.
    Hold {
        key: String,
        restart: Restart,
    },
    Release(String),
    /// An XA transaction of tables no view reads was prepared (those of watched tables send
    /// `Hold`): its XA COMMIT will be read, so a backfill pass begun now need not wait for it.
    XaPrepared(String),
    /// The XA COMMIT of a transaction whose PREPARE the reader never read (it lies before where
    /// the reader started): its rows cannot be read. The views whose backfill began while it
    /// was prepared (their `xa_pending`) are backfilled again; the others never had it to miss
    /// (see `source/reader/xa.rs`).
    XaUnread(String),
    /// A watched table was emptied by TRUNCATE (no row events): the views that read it are
    /// backfilled again from here, and the items no row makes any more removed after that.
    Truncated(crate::view::TableRef),
    /// A watched table's columns changed (`ALTER TABLE`): the views that take every column of it
    /// are backfilled again, so that every item gets the new columns, and so are those that read
    /// a column dropped or renamed away (`moved`, lower case) or one added or renamed to
    /// (`added`: such a view was missing it, and halted without it).
    Altered {
        table: crate::view::TableRef,
        moved: Vec<String>,
        added: Vec<String>,
    },
    /// A watched table's columns changed type or charset (`ALTER TABLE … MODIFY`): the server
    /// rewrote its rows without row events, so every view that reads it is made again as after
    /// a TRUNCATE (values, and keys, may render differently now).
    Retyped(crate::view::TableRef),
}

/// Merge → projector: the change stream with snapshot rows merged in at their positions.
#[derive(Debug)]
pub enum StreamEvent {
    Rows(RowBatch),
    Commit(Barrier),
    /// Rows read at a snapshot whose position the stream has just reached (boxed: one per
    /// chunk, while every row change is moved through the channels at this enum's size).
    Snapshot(Box<SnapshotRows>),
    /// Views halt here, their progress held at `Halt::restart`.
    Halt(Halt),
}

/// Views that cannot follow the source any more. They halt with their progress held: every
/// later barrier restarts no later than `restart`, so the change is read again (and halts
/// again) after a restart, and nothing after it is taken for written.
#[derive(Debug, Clone)]
pub struct Halt {
    pub target: HaltTarget,
    /// The cause and the remedy, for the log: never row data or statement text.
    pub reason: String,
    /// Where a restart must begin to read the change again; set by the merge stage.
    pub restart: Option<Restart>,
    /// Kept in the checkpoint (`Progress::halted`): the cause is a binlog event, which a
    /// restart may not read again (its file purged, a failover). A halt whose cause a restart
    /// looks at again (a join read that failed) is not kept: fixed, a restart lifts it.
    pub kept: bool,
    /// The transaction before the halting change, where `restart` is older (held back by join
    /// marks or a prepared XA transaction): a backfill pass is compared with it, not with
    /// `restart`, to tell a change the pass already covers. `None`: `restart.seq`.
    pub before: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaltTarget {
    /// Every view that reads the table, as its root or in a join.
    Table(TableRef),
    View(String),
}

#[derive(Debug)]
pub struct SnapshotRows {
    pub table: TableRef,
    /// The views being backfilled from this table (others already have these rows).
    pub views: Vec<String>,
    pub rows: Vec<Row>,
    /// The related rows of each row, for a view with joins (`views` is then that view alone).
    pub joined: Option<Vec<Joined>>,
    /// A join refresh: the rows' deletes and NULL keys were already counted from the binlog.
    pub refresh: bool,
    /// Views whose backfill pass starts with these rows (a halted one among them is rebuilt
    /// from here: `rowcast snapshot --view`).
    pub pass_starts: Vec<String>,
    /// Write-back restores these items after rejecting an application's change: they may be
    /// rewritten at the version they hold (see `WriteOp::restore`).
    pub restore: bool,
    /// A repaired item that no row of the read makes: removed, at the version after the rows'.
    pub remove: Option<crate::view::ItemKey>,
    /// Counter of the last transaction before the snapshot position.
    pub seq: u64,
    /// Version index of the first row (then one more per row): snapshot rows merged after the
    /// same transaction count on from one merge to the next, so their versions never repeat and
    /// never go down (see `pipeline::backfill::SNAPSHOT_INDEX_BASE`).
    pub first_index: u32,
    pub origin: Arc<Position>,
    pub guard: bool,
    /// The backfill chunk's permit (see `snapshot::Read::hold`), released when this is dropped.
    pub hold: Option<tokio::sync::OwnedSemaphorePermit>,
}

#[derive(Debug)]
pub struct RowChange {
    pub seq: u64,
    /// Position of the row change within its transaction (0, 1, …), the same on every replay.
    pub index: u32,
    pub table: TableRef,
    pub before: Option<Row>,
    pub after: Option<Row>,
    /// Where the row's event ends in the binlog, for dead letters.
    pub origin: Arc<Position>,
    /// An earlier run may already have written this transaction or a later one: the writes must
    /// be conditional on the version.
    pub guard: bool,
}

impl RowChange {
    /// About what the change holds in memory, in bytes (see [`Row::weight`]).
    pub fn weight(&self) -> usize {
        const OVERHEAD: usize = 128;
        self.before.as_ref().map_or(0, Row::weight)
            + self.after.as_ref().map_or(0, Row::weight)
            + OVERHEAD
    }
}

/// The most row changes one message carries.
pub const ROWS_PER_MESSAGE: usize = 64;

/// Row changes moved between the reader, the merge stage and the projector as one message: one
/// message per row cost those three stages about 0.6 µs of CPU per row in channel hand-offs
/// against 0.04 µs in messages of 64 (README, Performance). In order, all of one transaction.
#[derive(Debug)]
pub struct RowBatch {
    pub rows: Vec<RowChange>,
    /// The batch's share of [`RowPermits`], given back when the batch is dropped (by the
    /// projector, once it has made the rows' writes). `None` for a batch the merge stage passes
    /// on row by row, whose permits the batch it came in holds meanwhile.
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The batch's room in [`RowPermits`]' byte budget, given back with `permit`.
    pub room: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl RowBatch {
    /// One row change, holding no permit.
    pub fn one(change: RowChange) -> RowBatch {
        RowBatch {
            rows: vec![change],
            permit: None,
            room: None,
        }
    }
}

/// The bound of row changes between the reader and the projector (`writer.queue_capacity`):
/// the channels between the stages count messages, and a message may carry up to
/// [`ROWS_PER_MESSAGE`] rows, so each batch takes a permit per row from here as it is sent,
/// and room for its rows' images in a byte budget ([`ROW_BYTES`]): 1,024 rows of 20 KB are
/// 20 MB, of an UPDATE twice that.
#[derive(Debug, Clone)]
pub struct RowPermits {
    semaphore: Arc<tokio::sync::Semaphore>,
    per_batch: usize,
    bytes: ByteBudget,
}

/// What the row images between the reader and the projector may take, in bytes.
pub const ROW_BYTES: usize = 8 << 20;

impl RowPermits {
    pub fn new(capacity: usize) -> RowPermits {
        Self::with_bytes(capacity, ROW_BYTES)
    }

    pub fn with_bytes(capacity: usize, bytes: usize) -> RowPermits {
        let capacity = capacity.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        RowPermits {
            semaphore: Arc::new(tokio::sync::Semaphore::new(capacity)),
            // A batch never needs more permits than there are.
            per_batch: ROWS_PER_MESSAGE.min(capacity),
            bytes: ByteBudget::new(bytes),
        }
    }

    /// The most rows one batch may carry.
    pub fn per_batch(&self) -> usize {
        self.per_batch
    }

    /// `rows` as a batch, once as many permits as rows are free.
    pub async fn batch(&self, rows: Vec<RowChange>) -> RowBatch {
        let count = u32::try_from(rows.len().min(self.per_batch)).unwrap_or(1);
        // The semaphore is never closed.
        let permit = self.semaphore.clone().acquire_many_owned(count).await.ok();
        let weight: usize = rows.iter().map(RowChange::weight).sum();
        let room = Some(self.bytes.hold(self.bytes.units(weight)).await);
        RowBatch { rows, permit, room }
    }
}

#[derive(Debug, Clone)]
pub struct Barrier {
    pub seq: u64,
    /// Grows with every barrier of this process (commits and backfill chunks).
    pub generation: u64,
    /// Backfill progress of every eager view as of this barrier.
    pub backfill: Arc<BackfillState>,
    pub position: Position,
    /// Where a restart must begin when it is before `position`: join refreshes of earlier
    /// transactions are not all acknowledged yet (see `snapshot/refresh.rs`).
    pub restart: Option<Restart>,
    /// Commit time from the binlog event header (seconds since the epoch).
    pub commit_ts: u32,
    pub read_at: Instant,
}

/// Projector → writer lane.
#[derive(Debug)]
pub enum LaneMsg {
    /// A write, with its room in the lanes' byte budget ([`ByteBudget`]), which the lane keeps
    /// with its window until that window is written.
    Write(WriteOp, Room),
    /// Boxed: rare, and the largest (every write is moved at this enum's size).
    Dead(Box<DeadLetter>),
    Barrier(Barrier),
}

/// Room in a [`ByteBudget`] (`None`: none was taken).
pub type Room = Option<tokio::sync::OwnedSemaphorePermit>;

/// What the writes between the projector and DynamoDB may take, in bytes, over every lane: the
/// lanes' channels count messages (`writer.queue_capacity` each), and a write holds a whole
/// item, up to 400 KB. Before 2026-12-07 only messages were counted: 8 lanes of 1,024 writes
/// of 20 KB items held about 200 MB (README, How it works).
pub const LANE_BYTES: usize = 16 << 20;

/// The byte budget's unit: a write holds its size in these, rounded up.
const BYTE_UNIT: usize = 256;

/// A budget of bytes between stages. The lanes' ([`LANE_BYTES`]): the projector takes room for
/// a row change's writes before it sends them, each write carries its share (`LaneMsg::Write`),
/// and the lane gives it back when the window the write went out in is written. The row
/// images' ([`ROW_BYTES`]): see [`RowPermits`].
#[derive(Debug, Clone)]
pub struct ByteBudget {
    semaphore: Arc<tokio::sync::Semaphore>,
    units: usize,
}

impl ByteBudget {
    pub fn new(bytes: usize) -> ByteBudget {
        let units = bytes
            .div_ceil(BYTE_UNIT)
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        ByteBudget {
            semaphore: Arc::new(tokio::sync::Semaphore::new(units)),
            units,
        }
    }

    /// The units `bytes` take (never more than the whole budget, so that one write larger than
    /// it waits for an empty pipeline instead of for ever).
    pub fn units(&self, bytes: usize) -> usize {
        bytes.div_ceil(BYTE_UNIT).clamp(1, self.units)
    }

    /// Room for `units` (at most the whole budget), once it is free.
    pub async fn hold(&self, units: usize) -> tokio::sync::OwnedSemaphorePermit {
        let units = u32::try_from(units.min(self.units)).unwrap_or(u32::MAX);
        self.semaphore
            .clone()
            .acquire_many_owned(units)
            .await
            .expect("the budget's semaphore is never closed")
    }
}

impl WriteOp {
    /// About what the write holds in memory: its item's size as DynamoDB counts it (numbers
    /// bounded from their text), plus a fixed part for its key and bookkeeping.
    pub fn weight(&self) -> usize {
        const OVERHEAD: usize = 192;
        let key = self.op.key();
        let key_bytes = key.pk.len() + key.sk.as_ref().map_or(0, String::len);
        match &self.op {
            ItemOp::Put { item, .. } => {
                item.iter()
                    .map(|(name, value)| name.len() + value.size_bound())
                    .sum::<usize>()
                    + key_bytes
                    + OVERHEAD
            }
            ItemOp::Delete { .. } => key_bytes + OVERHEAD,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WriteOp {
    pub view: Name,
    pub op: ItemOp,
    /// `seq << 32 | index`: grows with every row change in commit order, so two changes of one
    /// item in one transaction are ordered too, and a replay assigns the same numbers.
    pub version: u128,
    pub seq: u64,
    pub guard: bool,
    /// A delete of a write-back view's item: the item is marked before it is removed, so that
    /// write-back knows the removal is rowcast's (see `dynamo::remove_marked`).
    pub mark_removal: bool,
    /// A put that restores an item from SQL after write-back rejected an application's change
    /// of it: written even over an equal version (the application's change kept the version,
    /// and SQL has not changed since), with a fresh `_restored` mark so that write-back knows
    /// the write for rowcast's.
    pub restore: bool,
    /// The item's DynamoDB table has a write-back view: every write of it is a conditional
    /// single write. A plain write that DynamoDB applied late, over a newer one, would look to
    /// write-back like an application's change (its version going down) and be applied to SQL
    /// (`sink::unsure`).
    pub write_back: bool,
    pub origin: Arc<Position>,
}

impl WriteOp {
    /// Written only conditionally, whatever the write mode: a removal marked first, a restore,
    /// a write of a table with write-back. A late landing of one cannot move a version back,
    /// but a put's can bring back an item a later delete removed: such puts with an unknown
    /// outcome are kept and written again like plain ones (`sink::unsure`).
    pub fn always_guarded(&self) -> bool {
        self.mark_removal || self.restore || self.write_back
    }
}

/// The repair endpoint's answer (`POST /v1/views/{view}/repair`) when no row makes the item:
/// its removal is merged (`rowcast deadletters replay` settles the letter then).
pub const REPAIR_REMOVED: &str = "removed: no row makes the item";

/// A record of an item DynamoDB can never accept; the rest keeps flowing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub view: String,
    /// The item key as text (`table[pk/sk]`), for people.
    pub key: Option<String>,
    /// The item key's values, for `rowcast deadletters replay` (absent when no key could be made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sk: Option<String>,
    pub reason: String,
    /// Short bounded label for the metric.
    pub reason_kind: &'static str,
    pub position: Position,
    pub seq: u64,
    pub at_ms: u64,
    /// The stream record a write-back could not apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<serde_json::Value>,
}

/// Longest reason kept in a dead letter.
const MAX_REASON_BYTES: usize = 1024;
/// Longest item key (or key value) kept in a dead letter.
const MAX_KEY_BYTES: usize = 4096;
/// Largest stream record kept in a dead letter written to a log line or an export's file (a
/// record is two item images of up to 400 KB).
const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Largest stream record kept in a letter of the control table (a DynamoDB item holds 400 KB;
/// the rest of a bounded letter takes at most 14 KB).
pub const TABLE_RECORD_BYTES: usize = 360 * 1024;
/// Largest stream record kept in a dead-letter file: any (two images of 400 KB, as JSON).
pub const FILE_RECORD_BYTES: usize = 16 * 1024 * 1024;

impl DeadLetter {
    /// The letter with its reason and record cut to a size every store takes (a DynamoDB item
    /// holds 400 KB): what is cut says how long it was.
    pub fn bounded(&self) -> DeadLetter {
        self.bounded_to(MAX_RECORD_BYTES)
    }

    /// [`DeadLetter::bounded`] with a stream record of up to `max_record` bytes. A larger one
    /// first leaves out its old image, so that the application's change (its new image) is kept
    /// whenever it fits: a write-back letter is the only place where it survives. Before
    /// 2026-12-06's seventh stop any record over 64 KB was cut to its length and sequence, also
    /// in a file: a rejected change of a 70 KB text was lost (found by a review;
    /// `tests/writeback_safety.rs`, seen failing).
    pub fn bounded_to(&self, max_record: usize) -> DeadLetter {
        let mut letter = self.clone();
        cut(&mut letter.reason, MAX_REASON_BYTES);
        // A key DynamoDB takes is at most 2,048 bytes (partition) or 1,024 (sort): one cut here
        // could not be written anyway, nor replayed.
        for key in [&mut letter.key, &mut letter.pk, &mut letter.sk]
            .into_iter()
            .flatten()
        {
            cut(key, MAX_KEY_BYTES);
        }
        let record_bytes = letter.record.as_ref().map_or(0, |r| r.to_string().len());
        if record_bytes > max_record {
            if let Some(record) = letter.record.as_mut().and_then(|r| r.as_object_mut()) {
                if let Some(old) = record.get("old").filter(|old| !old.is_null()) {
                    let old_bytes = old.to_string().len();
                    record.insert(
                        "old".into(),
                        serde_json::json!({"left_out": true, "bytes": old_bytes}),
                    );
                }
            }
        }
        let kept_bytes = letter.record.as_ref().map_or(0, |r| r.to_string().len());
        if kept_bytes > max_record {
            let sequence = letter
                .record
                .as_ref()
                .and_then(|r| r.get("sequence").cloned());
            letter.record = Some(serde_json::json!({
                "truncated": true,
                "bytes": record_bytes,
                "sequence": sequence,
            }));
        }
        letter
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), saying how long it was.
fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let total = text.len();
    *text = format!("{}… ({total} bytes in all)", &text[..end]);
}

/// Writer lane → checkpoint tracker: every write sent to the lane before `barrier` is
/// acknowledged.
#[derive(Debug)]
pub struct Ack {
    pub lane: usize,
    pub barrier: Barrier,
}

/// HTTP fill-on-miss → binlog reader: read the root rows behind `key` and merge them into the
/// stream. The reply says whether a row produces that item.
#[derive(Debug)]
pub struct FillRequest {
    pub view: String,
    /// The item; the rows read are those of every reading of it (`view::key_readings`).
    pub key: crate::view::ItemKey,
    pub reply: tokio::sync::oneshot::Sender<Result<bool, String>>,
    /// Asked by write-back after a rejection (see `SnapshotRows::restore`): told where the
    /// restore's writes are acknowledged once it is merged.
    pub restore: Option<WrittenAt>,
    /// A repair (`rowcast verify --repair`): when no row makes the item, the item is removed at
    /// the read's position instead of the answer being "no row".
    pub repair: bool,
}

/// Where the writes of a merged restore are acknowledged: the merge stage follows them with a
/// barrier and tells its generation, with the checkpoint tracker's acknowledged generations.
/// Write-back saves the position of the record that asked for the restore only once that
/// barrier is acknowledged: a `kill -9` before then reads the record again at the next start,
/// where it used to be lost with the unwritten restore (merged, the fill was answered).
/// Acknowledged means done with, not always written: the rows of a halted view are skipped, and
/// an item refused by DynamoDB is a dead letter.
#[derive(Debug, Clone, Default)]
pub struct WrittenAt(Arc<std::sync::OnceLock<(u64, tokio::sync::watch::Receiver<u64>)>>);

impl WrittenAt {
    /// The merge stage: the restore's writes come before the barrier of `generation`.
    pub fn merged(&self, generation: u64, acked: tokio::sync::watch::Receiver<u64>) {
        let _ = self.0.set((generation, acked));
    }

    /// Whether the restore's writes are acknowledged, waited for: `false` when it was never
    /// merged or the pipeline ended first (the tracker gone, its barrier not acknowledged).
    pub async fn written(&self) -> bool {
        let Some((generation, acked)) = self.0.get() else {
            return false;
        };
        let mut acked = acked.clone();
        let written = acked.wait_for(|done| *done >= *generation).await.is_ok();
        written
    }
}

/// `SIGHUP` or `POST /v1/reload` → the daemon: read the configuration again and apply it.
#[derive(Debug)]
pub struct ReloadRequest {
    pub reply: tokio::sync::oneshot::Sender<ReloadAnswer>,
}

/// What became of a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadAnswer {
    /// The configuration read is the one running: nothing restarts.
    Unchanged,
    /// Valid, checked against the servers, and being applied: the pipeline drains and starts
    /// again from its checkpoint with the new views. The text says what changed.
    Applying(String),
    /// Not applied (the running configuration stays): every problem, one per line.
    Rejected(String),
    /// The servers could not be reached to check it; try again.
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dead letter fits a DynamoDB item (400 KB) whatever its key: an item key of 300 KB (a
    /// key template over a long text column) is cut, as its reason is. Before, only the reason
    /// and the record were: the control table refused the letter, which was then kept in a log
    /// line only.
    #[test]
    fn a_dead_letter_with_a_huge_key_is_cut_to_fit_an_item() {
        let huge = "k".repeat(300 * 1024);
        let letter = DeadLetter {
            view: "v".into(),
            key: Some(format!("t[{huge}/s]")),
            pk: Some(huge.clone()),
            sk: Some(huge),
            reason: "key too long".into(),
            reason_kind: "invalid",
            position: Position {
                file: "binlog.000001".into(),
                pos: 4,
                gtid: None,
            },
            seq: 1,
            at_ms: 0,
            record: None,
        };
        let bounded = letter.bounded();
        let json = serde_json::to_string(&bounded).unwrap();
        assert!(json.len() < 16 * 1024, "{} bytes", json.len());
        assert!(bounded.pk.unwrap().ends_with("(307200 bytes in all)"));
    }

    /// A write-back letter keeps the application's change (the new image) wherever it fits:
    /// whole in a file, without the old image in the control table (an item of 400 KB), cut to
    /// its length in a log line.
    #[test]
    fn a_large_write_back_record_keeps_its_new_image_where_it_fits() {
        let image = |c: &str| serde_json::json!({"pk": "K#1", "body": c.repeat(300 * 1024)});
        let letter = DeadLetter {
            view: "v".into(),
            key: Some("t[K#1]".into()),
            pk: None,
            sk: None,
            reason: "SQL refused it".into(),
            reason_kind: "writeback_rejected",
            position: Position {
                file: "stream:t:shard:1".into(),
                pos: 0,
                gtid: None,
            },
            seq: 0,
            at_ms: 0,
            record: Some(serde_json::json!({
                "sequence": "1", "event": "Modify", "keys": {"pk": "K#1"},
                "old": image("o"), "new": image("n"),
            })),
        };
        let whole = letter.bounded_to(FILE_RECORD_BYTES).record.unwrap();
        assert_eq!(whole, letter.record.clone().unwrap());
        let table = letter.bounded_to(TABLE_RECORD_BYTES);
        let json = serde_json::to_string(&table).unwrap();
        assert!(json.len() < 390 * 1024, "{} bytes", json.len());
        let record = table.record.unwrap();
        assert_eq!(record["new"], image("n"));
        assert_eq!(record["old"]["left_out"], true);
        assert_eq!(record["sequence"], "1");
        let logged = letter.bounded().record.unwrap();
        assert_eq!(logged["truncated"], true);
        assert_eq!(logged["sequence"], "1");
    }

    use futures_util::FutureExt as _;

    fn change(index: u32) -> RowChange {
        RowChange {
            seq: 1,
            index,
            table: TableRef::parse("db.t").expect("a table"),
            before: None,
            after: None,
            origin: Arc::new(Position {
                file: "binlog.000001".into(),
                pos: 4,
                gtid: None,
            }),
            guard: false,
        }
    }

    /// Rows in batches are bounded as rows, not as messages: a batch waits until enough of the
    /// rows sent before it are dropped (by the projector), however few messages those were.
    #[tokio::test]
    async fn batches_wait_for_the_rows_before_them_to_be_dropped() {
        let permits = RowPermits::new(100);
        assert_eq!(permits.per_batch(), ROWS_PER_MESSAGE);
        let rows = |n: u32| (0..n).map(change).collect::<Vec<_>>();
        let first = permits.batch(rows(64)).await;
        let second = permits.batch(rows(36)).await;
        let third = permits.batch(rows(1));
        tokio::pin!(third);
        assert!(
            (&mut third).now_or_never().is_none(),
            "100 rows are in flight: a 101st waits"
        );
        drop(second);
        let third = third.await;
        assert_eq!(third.rows.len(), 1);
        drop((first, third));
        // All given back: a full batch goes at once again.
        let again = permits.batch(rows(64));
        tokio::pin!(again);
        assert!((&mut again).now_or_never().is_some());
    }

    /// Rows are bounded in bytes too: a batch of wide rows waits for room until the rows
    /// before it are dropped, and a change larger than the whole budget only for an empty
    /// pipeline.
    #[tokio::test]
    async fn wide_rows_wait_for_room_in_bytes() {
        let permits = RowPermits::with_bytes(1000, 1 << 20);
        let schema = Arc::new(crate::view::row::TableSchema::new(
            TableRef::parse("db.t").expect("a table"),
            Vec::new(),
        ));
        let wide = |index: u32, bytes: usize| RowChange {
            after: Some(Row {
                schema: schema.clone(),
                cells: vec![crate::view::value::Cell::Text("x".repeat(bytes))],
            }),
            ..change(index)
        };
        let first = permits
            .batch((0..8).map(|i| wide(i, 100_000)).collect())
            .await;
        let second = permits.batch((8..11).map(|i| wide(i, 100_000)).collect());
        tokio::pin!(second);
        assert!(
            (&mut second).now_or_never().is_none(),
            "1.1 MB of rows passed a budget of 1 MiB"
        );
        drop(first);
        let second = second.await;
        let huge = permits.batch(vec![wide(11, 3 << 20)]);
        tokio::pin!(huge);
        assert!((&mut huge).now_or_never().is_none());
        drop(second);
        assert!((&mut huge).now_or_never().is_some(), "waits for ever");
    }

    /// A bound smaller than a batch makes batches that small, so that one batch can always
    /// have its permits.
    #[tokio::test]
    async fn a_small_bound_makes_small_batches() {
        let permits = RowPermits::new(3);
        assert_eq!(permits.per_batch(), 3);
        let batch = permits.batch((0..3).map(change).collect()).await;
        assert_eq!(batch.rows.len(), 3);
        assert_eq!(RowPermits::new(0).per_batch(), 1);
    }
}
