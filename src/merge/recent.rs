//! The keys of the latest row changes the merge stage passed, so that a backfill chunk does not
//! write a row older than a change the stream already delivered.
//!
//! A chunk's rows go into the stream right after the last transaction before the snapshot's
//! position P, on the promise that the snapshot sees every commit before P. MariaDB 10.11 breaks
//! it now and then (a commit written to the binlog before P, not yet visible to the snapshot:
//! see `sql/snapshot.rs`), and such a row would be written as it was before that commit, at a
//! version above the commit's, for good where the row does not change again. A row the stream
//! changed after the view's pass began is not needed from the chunk at all: every change of it
//! up to P passed the merge stage before the chunk is merged, and the last of them made the
//! item of the row as it is at P. So a chunk's row whose key is among the recent changes'
//! (after its views' passes began) is dropped, whether or not the snapshot saw the change.
//!
//! A fill on miss (or a write-back restore, a repair) is another matter: its view may be lazy,
//! whose item a change writes, but which an application or a TTL may remove again, so its row
//! is not dropped; a fill whose row changed less than [`SETTLE`] before its read began is read
//! again once that time has passed, when the change is visible.
//!
//! Bounded: the keys of the latest [`CAPACITY`] changes, hashed. A change pushed out of them
//! (more than that many changes since, on a busy server many seconds ago) is long visible to a
//! snapshot; a key not found only leaves the chunk's row as before.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::Instant;

use crate::view::join::JoinValue;
use crate::view::TableRef;

/// Changes remembered: 8 bytes each in the queue, about 60 in the map (at most about 5 MiB).
/// At 30,000 changes a second, two seconds of them.
pub const CAPACITY: usize = 65_536;

/// How long after a change passed the merge stage a snapshot is taken to see it. The lag seen
/// (a commit in the binlog, not yet visible) spans a commit or two, milliseconds.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// A read is read again at most this many times for changes of its rows (a row that changes
/// all the time gets a change after the read soon anyway).
pub const MAX_READS_AGAIN: u32 = 2;

/// How long a table `recent` cannot key (no primary key, its schema unreadable) is left out
/// before its schema is asked for again.
pub const UNKEYED_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);

/// A row's identity for [`Recent`]: its table and primary key values, hashed. Two different
/// keys share a hash with odds of one in 2^64 per pair; such a collision would drop a chunk's row
/// the stream never delivered.
pub fn key_hash(table: &TableRef, key: &[JoinValue]) -> u64 {
    let mut hasher = DefaultHasher::new();
    table.hash(&mut hasher);
    key.hash(&mut hasher);
    hasher.finish()
}

/// The keys of the latest changes, oldest first, and the latest of each.
pub struct Recent {
    capacity: usize,
    order: VecDeque<u64>,
    latest: HashMap<u64, Latest>,
}

/// The latest remembered change of a key.
#[derive(Debug, Clone, Copy)]
pub struct Latest {
    /// Counter of its transaction.
    pub seq: u64,
    /// When it passed the merge stage.
    pub at: Instant,
    /// The key's changes in `order`.
    count: u32,
}

impl Default for Recent {
    fn default() -> Self {
        Recent::with_capacity(CAPACITY)
    }
}

impl Recent {
    pub fn with_capacity(capacity: usize) -> Self {
        Recent {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            latest: HashMap::new(),
        }
    }

    /// A change of the row `key` in transaction `seq` passed at `at` (transactions pass in
    /// order).
    pub fn push(&mut self, key: u64, seq: u64, at: Instant) {
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                if let Some(entry) = self.latest.get_mut(&old) {
                    entry.count -= 1;
                    if entry.count == 0 {
                        self.latest.remove(&old);
                    }
                }
            }
        }
        self.order.push_back(key);
        let entry = self
            .latest
            .entry(key)
            .or_insert(Latest { seq, at, count: 0 });
        entry.seq = entry.seq.max(seq);
        entry.at = entry.at.max(at);
        entry.count += 1;
    }

    /// The latest remembered change of `key`.
    pub fn latest(&self, key: u64) -> Option<Latest> {
        self.latest.get(&key).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Forgets every change (a DDL may have changed a table's primary key).
    pub fn clear(&mut self) {
        self.order.clear();
        self.latest.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(table: &str, id: i64) -> u64 {
        key_hash(
            &TableRef {
                database: "shop".into(),
                table: table.into(),
            },
            &[JoinValue::Number(id.to_string())],
        )
    }

    #[test]
    fn the_latest_change_of_a_key_is_found_until_it_is_pushed_out() {
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(5);
        let mut recent = Recent::with_capacity(3);
        let seq = |recent: &Recent, table, id| recent.latest(key(table, id)).map(|l| l.seq);
        recent.push(key("a", 1), 10, t0);
        recent.push(key("a", 1), 11, t1);
        recent.push(key("a", 2), 12, t1);
        assert_eq!(seq(&recent, "a", 1), Some(11));
        assert_eq!(recent.latest(key("a", 1)).map(|l| l.at), Some(t1));
        assert_eq!(seq(&recent, "b", 1), None, "another table's row");
        // The first change of key 1 goes; its later one stays.
        recent.push(key("a", 3), 13, t1);
        assert_eq!(seq(&recent, "a", 1), Some(11));
        recent.push(key("a", 4), 14, t1);
        assert_eq!(seq(&recent, "a", 1), None);
        assert_eq!(seq(&recent, "a", 2), Some(12));
        recent.clear();
        assert!(recent.is_empty());
        assert_eq!(seq(&recent, "a", 4), None);
    }
}
