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
//! Bounded: the keys of the latest [`CAPACITY`] changes, hashed. A change pushed out of them
//! (more than that many changes since, on a busy server many seconds ago) is long visible to a
//! snapshot; a key not found only leaves the chunk's row as before.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use crate::view::join::JoinValue;
use crate::view::TableRef;

/// Changes remembered: 16 bytes each in the queue, about 40 in the map (1.5–4 MiB). At 30,000
/// changes a second, two seconds of them.
pub const CAPACITY: usize = 65_536;

/// A row's identity for [`Recent`]: its table and primary key values, hashed. Two different
/// keys share a hash with odds of one in 2^64 per pair; such a collision would drop a chunk's row
/// the stream never delivered.
pub fn key_hash(table: &TableRef, key: &[JoinValue]) -> u64 {
    let mut hasher = DefaultHasher::new();
    table.hash(&mut hasher);
    key.hash(&mut hasher);
    hasher.finish()
}

/// The keys of the latest changes, oldest first, and the latest transaction of each.
pub struct Recent {
    capacity: usize,
    order: VecDeque<(u64, u64)>,
    /// Key hash → (counter of its latest change's transaction, its changes in `order`).
    latest: HashMap<u64, (u64, u32)>,
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

    /// A change of the row `key` in transaction `seq` passed (transactions pass in order).
    pub fn push(&mut self, key: u64, seq: u64) {
        if self.order.len() == self.capacity {
            if let Some((old, _)) = self.order.pop_front() {
                if let Some(entry) = self.latest.get_mut(&old) {
                    entry.1 -= 1;
                    if entry.1 == 0 {
                        self.latest.remove(&old);
                    }
                }
            }
        }
        self.order.push_back((key, seq));
        let entry = self.latest.entry(key).or_insert((seq, 0));
        entry.0 = entry.0.max(seq);
        entry.1 += 1;
    }

    /// The transaction of the latest remembered change of `key`.
    pub fn latest(&self, key: u64) -> Option<u64> {
        self.latest.get(&key).map(|(seq, _)| *seq)
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
        let mut recent = Recent::with_capacity(3);
        recent.push(key("a", 1), 10);
        recent.push(key("a", 1), 11);
        recent.push(key("a", 2), 12);
        assert_eq!(recent.latest(key("a", 1)), Some(11));
        assert_eq!(recent.latest(key("b", 1)), None, "another table's row");
        // The first change of key 1 goes; its later one stays.
        recent.push(key("a", 3), 13);
        assert_eq!(recent.latest(key("a", 1)), Some(11));
        recent.push(key("a", 4), 14);
        assert_eq!(recent.latest(key("a", 1)), None);
        assert_eq!(recent.latest(key("a", 2)), Some(12));
        recent.clear();
        assert!(recent.is_empty());
        assert_eq!(recent.latest(key("a", 4)), None);
    }
}
