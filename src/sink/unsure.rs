//! Plain writes whose outcome is unknown, written again later with the version guard.
//!
//! A plain write (BatchWriteItem, or a PutItem/DeleteItem without a condition) that fails
//! without DynamoDB's answer that it did nothing (a timeout, a connection lost after the request
//! went out, a server error) may have been applied, and may still be applied later: a request
//! delayed in the network, or one DynamoDB finishes after the client gave up on it. The lane
//! retries it and goes on, and a later write of the same item can then land *before* the lost
//! one, which moves the item back to the older state for good (nothing else writes it again
//! until its row changes). Its version cannot stop it: the lost request carries no condition.
//!
//! So the items of such a request are kept here, each with the latest write of its item that
//! the lanes deliver after it, and written again `writer.recheck_after_ms` after the last
//! unknown outcome, as conditional writes (`attribute_not_exists(#v) OR #v < :v`): where the lost
//! request landed late, its older version is replaced with the latest state; elsewhere the
//! condition fails and nothing is written. A request that lands later than that window can
//! still move an item back (see the README's Known limitations), as could one lost just before
//! a crash (this list is in memory) — but the restart's replay writes the item again: while
//! anything is kept or being written again the lanes hold their acknowledgements
//! ([`Unsure::holding`]), so the checkpoint stays before the lost write and a restart after a
//! crash, a drain or a reload replays it, guarded (`writer.mode = "auto"` guards what it
//! replays). Memory is bounded: past [`MAX_KEYS`] items or [`MAX_BYTES`]
//! of them, further ones are counted (`rowcast_rechecked_writes_total{outcome="untracked"}`)
//! and not kept.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::metrics::metrics;
use crate::pipeline::WriteOp;
use crate::view::{ItemKey, ItemOp};

/// Items kept at most.
pub const MAX_KEYS: usize = 100_000;
/// Bytes of kept items at most (DynamoDB's count of names and values).
pub const MAX_BYTES: usize = 64 << 20;

pub struct Unsure {
    after: Duration,
    /// Whether anything is kept: the lanes' common path reads only this.
    tracking: AtomicBool,
    /// Writes taken to be written again whose write has not finished yet.
    rechecking: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<ItemKey, Entry>,
    /// The entries by when they are due (and a number that tells entries of one instant apart).
    due: BTreeMap<(Instant, u64), ItemKey>,
    next: u64,
    bytes: usize,
    /// Whether the bound was met and said so (one warning per episode).
    full: bool,
}

struct Entry {
    at: (Instant, u64),
    op: WriteOp,
    bytes: usize,
}

fn size(op: &WriteOp) -> usize {
    match &op.op {
        ItemOp::Put { item, .. } => crate::dynamo::item_size(item, &op.view),
        ItemOp::Delete { key } => key.pk.len() + key.sk.as_ref().map_or(0, String::len),
    }
}

impl Unsure {
    pub fn new(after: Duration) -> Unsure {
        Unsure {
            after,
            tracking: AtomicBool::new(false),
            rechecking: AtomicUsize::new(0),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writes of a request whose outcome is unknown: written again after the window (an
    /// item already kept starts its window again).
    pub fn lost<'a>(&self, ops: impl IntoIterator<Item = &'a WriteOp>) {
        let due = Instant::now() + self.after;
        let mut state = self.state();
        for op in ops {
            metrics().unsure_writes.inc();
            let key = op.op.key();
            let id = state.next;
            state.next += 1;
            let bytes = size(op);
            if let Some(mut entry) = state.entries.remove(key) {
                state.due.remove(&entry.at);
                entry.at = (due, id);
                if op.version >= entry.op.version {
                    state.bytes = state.bytes - entry.bytes + bytes;
                    entry.op = op.clone();
                    entry.bytes = bytes;
                }
                state.due.insert(entry.at, key.clone());
                state.entries.insert(key.clone(), entry);
                continue;
            }
            if state.entries.len() >= MAX_KEYS || state.bytes + bytes > MAX_BYTES {
                metrics()
                    .rechecked_writes
                    .with_label_values(&["untracked"])
                    .inc();
                if !state.full {
                    state.full = true;
                    warn!(
                        keys = state.entries.len(),
                        bytes = state.bytes,
                        "too many writes of unknown outcome to keep: further ones will not be written again (a late landing of one can leave its item older until its row changes, or `rowcast verify --repair`)"
                    );
                }
                continue;
            }
            state.bytes += bytes;
            state.due.insert((due, id), key.clone());
            state.entries.insert(
                key.clone(),
                Entry {
                    at: (due, id),
                    op: op.clone(),
                    bytes,
                },
            );
        }
        self.tracking
            .store(!state.entries.is_empty(), Ordering::SeqCst);
    }

    /// A later write of an item kept here: the state it is written again with.
    pub fn follow(&self, op: &WriteOp) {
        if !self.tracking.load(Ordering::SeqCst) {
            return;
        }
        let mut state = self.state();
        let bytes = size(op);
        let Some(entry) = state.entries.get_mut(op.op.key()) else {
            return;
        };
        if op.version < entry.op.version {
            return;
        }
        let before = std::mem::replace(&mut entry.bytes, bytes);
        entry.op = op.clone();
        state.bytes = state.bytes - before + bytes;
    }

    /// When the first kept write is due.
    pub fn next_due(&self) -> Option<Instant> {
        if !self.tracking.load(Ordering::SeqCst) {
            return None;
        }
        self.state().due.keys().next().map(|(at, _)| *at)
    }

    /// Whether a write of unknown outcome is kept or being written again: the lanes hold their
    /// acknowledgements meanwhile, so that the checkpoint stays before the lost write and a
    /// restart (after a crash, a drain, a reload) replays it with the version guard.
    pub fn holding(&self) -> bool {
        self.tracking.load(Ordering::SeqCst) || self.rechecking.load(Ordering::SeqCst) > 0
    }

    /// The writes [`Unsure::take_due`] gave are written (or given up): `count` of them.
    pub fn finished(&self, count: usize) {
        let _ = self
            .rechecking
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(count))
            });
    }

    /// The kept writes that are due (every one when `everything`), no longer kept; the caller
    /// writes them and then calls [`Unsure::finished`].
    pub fn take_due(&self, everything: bool) -> Vec<WriteOp> {
        if !self.tracking.load(Ordering::SeqCst) {
            return Vec::new();
        }
        let now = Instant::now();
        let mut state = self.state();
        let mut due = Vec::new();
        while let Some(entry) = state.due.first_entry() {
            if !everything && entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            if let Some(entry) = state.entries.remove(&key) {
                state.bytes -= entry.bytes;
                due.push(entry.op);
            }
        }
        // Counted before `tracking` clears, so that `holding` never reads false in between.
        self.rechecking.fetch_add(due.len(), Ordering::SeqCst);
        if state.entries.is_empty() {
            state.full = false;
            self.tracking.store(false, Ordering::SeqCst);
        }
        due
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.state().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::test_ops::delete;

    /// A lost write is due after the window, with the latest write of its item delivered since;
    /// an older one does not take its place; a write of another item is not kept.
    #[test]
    fn a_lost_write_is_due_after_the_window_with_its_items_latest_state() {
        let unsure = Unsure::new(Duration::from_millis(40));
        assert_eq!(unsure.next_due(), None);
        assert!(!unsure.holding());
        unsure.follow(&delete("v", "a", 9)); // nothing kept: nothing to follow
        unsure.lost([&delete("v", "a", 5), &delete("v", "b", 5)]);
        unsure.follow(&delete("v", "a", 7));
        unsure.follow(&delete("v", "a", 6)); // older than the one followed
        unsure.follow(&delete("v", "c", 8)); // not kept
        assert_eq!(unsure.kept(), 2);
        assert!(unsure.take_due(false).is_empty(), "due before the window");
        let due = unsure.next_due().expect("a due time");
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let mut versions: Vec<(String, u128)> = unsure
            .take_due(false)
            .iter()
            .map(|op| (op.op.key().pk.clone(), op.version))
            .collect();
        versions.sort();
        assert_eq!(versions, [("a".to_string(), 7), ("b".to_string(), 5)]);
        assert_eq!(unsure.next_due(), None);
        assert_eq!(unsure.kept(), 0);
        assert!(unsure.holding(), "held until they are written");
        unsure.finished(1);
        assert!(unsure.holding());
        unsure.finished(1);
        assert!(!unsure.holding());
    }

    /// A write lost again starts its window again; `everything` takes what is not due yet.
    #[test]
    fn a_write_lost_again_waits_a_new_window() {
        let unsure = Unsure::new(Duration::from_secs(3600));
        unsure.lost([&delete("v", "a", 5)]);
        let first = unsure.next_due().expect("due");
        unsure.lost([&delete("v", "a", 6)]);
        assert!(unsure.next_due().expect("due") >= first);
        assert_eq!(unsure.kept(), 1);
        assert!(unsure.take_due(false).is_empty());
        let all = unsure.take_due(true);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].version, 6);
        assert_eq!(unsure.next_due(), None);
    }
}
