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
//! is not dropped; a fill whose row changed in one of the last [`AT_RISK_TRANSACTIONS`] before
//! its position, and less than [`SETTLE`] before its read began (or while it was held), is
//! read again once that time has passed, when the change is visible. Neither test reads a
//! clock of the server's: a transaction's time in the binlog is when its statement began,
//! and a replica keeps its primary's. So is a pass's first
//! chunk (its pass begins after the changes before it, so it cannot leave rows out) and a
//! repair that found no row, for a change of any row of their table (a missed insert leaves
//! no row to tell it by).
//!
//! Bounded: the keys of the latest [`CAPACITY`] changes, hashed. A change pushed out of them
//! (more than that many changes since, on a busy server many seconds ago) is long visible to a
//! snapshot; a key not found only leaves the chunk's row as before.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use crate::view::join::{row_join_key, JoinValue};
use crate::view::Row;
use crate::view::TableRef;

/// Changes (keys) remembered: 8 bytes each in the queue, about 50 in the map (at most about
/// 4 MiB). At 30,000 changes a second, two seconds of them.
pub const CAPACITY: usize = 65_536;

/// How long after it passed the merge stage a change is taken to be visible to a snapshot.
/// The lag seen (a commit in the binlog, not yet visible) spans a commit or two, milliseconds.
pub const SETTLE: Duration = Duration::from_millis(100);

/// Only a change of the last this many transactions before a snapshot's position can be one
/// the snapshot does not see: a commit is visible in InnoDB once its group's engine commit is
/// done, in binlog order, and only so many can be written to the binlog meanwhile (a group or
/// two, of at most one transaction per session committing). A change passed by a stream
/// behind the server is older than that, and its read need not be made again (reasoned, not
/// measured under lag).
pub const AT_RISK_TRANSACTIONS: u64 = 1_000;

/// A read is read again at most this many times for changes of its rows (a row that changes
/// all the time gets a change after the read soon anyway).
pub const MAX_READS_AGAIN: u32 = 2;

/// How long a table `recent` cannot key (no primary key, its schema unreadable) is left out
/// before its schema is asked for again.
pub const UNKEYED_PAUSE: Duration = Duration::from_secs(5);

/// A row's identity for [`Recent`]: its table, the primary key's columns (so that keys noted
/// before a DDL changed the key never match rows read by the new one) and their values, hashed.
/// Two different keys share a hash with odds of one in 2^64 per pair; such a collision would
/// drop a chunk's row the stream never delivered.
fn key_hash(table: &TableRef, columns: &[String], key: &[JoinValue]) -> u64 {
    let mut hasher = DefaultHasher::new();
    table.hash(&mut hasher);
    columns.hash(&mut hasher);
    key.hash(&mut hasher);
    hasher.finish()
}

/// The identity of `row` of `table` for [`Recent`] by its primary key `columns` (`None` when
/// the row lacks one of them).
pub fn row_key(table: &TableRef, columns: &[String], row: &Row) -> Option<u64> {
    let key = row_join_key(row, columns.iter().map(String::as_str))?;
    Some(key_hash(table, columns, &key))
}

/// The keys of the latest changes, oldest first, and the latest change of each; and the latest
/// change of each table.
pub struct Recent {
    capacity: usize,
    order: VecDeque<u64>,
    latest: HashMap<u64, Latest>,
    tables: HashMap<TableRef, Latest>,
}

/// The latest remembered change of a key or a table.
#[derive(Debug, Clone, Copy)]
pub struct Latest {
    /// Counter of its transaction.
    pub seq: u64,
    /// When it passed the merge stage (later than it was committed).
    pub at: Instant,
    /// The key's changes in `order`.
    count: u32,
}

impl Latest {
    fn new(seq: u64, at: Instant) -> Latest {
        Latest { seq, at, count: 0 }
    }

    fn note(&mut self, seq: u64, at: Instant) {
        self.seq = self.seq.max(seq);
        self.at = self.at.max(at);
    }

    /// Whether the read it concerns, announced at `begun` and at a position after transaction
    /// `last` (the last before it), may have missed it: it is of one of the last
    /// [`AT_RISK_TRANSACTIONS`] before that position, and it passed less than [`SETTLE`]
    /// before the read was announced, or since. `Some` (the time from which it is surely
    /// visible) when it may.
    pub fn at_risk(&self, last: u64, begun: Instant) -> Option<Instant> {
        let settled = self.at + SETTLE;
        (self.seq.saturating_add(AT_RISK_TRANSACTIONS) > last && settled > begun).then_some(settled)
    }
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
            tables: HashMap::new(),
        }
    }

    /// A change of `table` in transaction `seq` passed at `at` (any table, keyed or not).
    pub fn touch(&mut self, table: &TableRef, seq: u64, at: Instant) {
        match self.tables.get_mut(table) {
            Some(latest) => latest.note(seq, at),
            None => {
                self.tables.insert(table.clone(), Latest::new(seq, at));
            }
        }
    }

    /// The latest change of `table` that passed.
    pub fn table_changed(&self, table: &TableRef) -> Option<Latest> {
        self.tables.get(table).copied()
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
        let entry = self.latest.entry(key).or_insert(Latest::new(seq, at));
        entry.note(seq, at);
        entry.count += 1;
    }

    /// The latest remembered change of `key`.
    pub fn latest(&self, key: u64) -> Option<Latest> {
        self.latest.get(&key).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> TableRef {
        TableRef {
            database: "shop".into(),
            table: name.into(),
        }
    }

    fn key(name: &str, id: i64) -> u64 {
        let id = [JoinValue::Number(id.to_string())];
        key_hash(&table(name), &["id".to_string()], &id)
    }

    #[test]
    fn the_latest_change_of_a_key_is_found_until_it_is_pushed_out() {
        let t = Instant::now();
        let mut recent = Recent::with_capacity(3);
        let seq = |recent: &Recent, name, id| recent.latest(key(name, id)).map(|l| l.seq);
        assert!(recent.is_empty());
        recent.push(key("a", 1), 10, t);
        recent.push(key("a", 1), 11, t);
        recent.push(key("a", 2), 12, t);
        assert_eq!(seq(&recent, "a", 1), Some(11));
        assert_eq!(seq(&recent, "b", 1), None, "another table's row");
        // The first change of key 1 goes; its later one stays.
        recent.push(key("a", 3), 13, t);
        assert_eq!(seq(&recent, "a", 1), Some(11));
        recent.push(key("a", 4), 14, t);
        assert_eq!(seq(&recent, "a", 1), None);
        assert_eq!(seq(&recent, "a", 2), Some(12));
    }

    #[test]
    fn a_key_of_other_columns_is_another_key() {
        let five = [JoinValue::Number("5".into())];
        assert_ne!(
            key_hash(&table("a"), &["id".to_string()], &five),
            key_hash(&table("a"), &["user_id".to_string()], &five)
        );
    }

    #[test]
    fn a_change_is_at_risk_only_just_before_the_read_and_its_position() {
        let begun = Instant::now() + Duration::from_secs(10);
        let mut recent = Recent::default();
        recent.touch(&table("a"), 5_000, begun - Duration::from_millis(30));
        recent.touch(&table("a"), 4_000, begun - Duration::from_secs(5));
        let latest = recent.table_changed(&table("a")).expect("changed");
        assert_eq!(latest.seq, 5_000);
        assert_eq!(
            latest.at_risk(5_100, begun),
            Some(begun + Duration::from_millis(70)),
            "30 ms before the read, 100 transactions before its position"
        );
        assert_eq!(
            latest.at_risk(5_000 + AT_RISK_TRANSACTIONS, begun),
            None,
            "too many transactions before the position: long visible (a stream behind)"
        );
        let old = Latest::new(5_000, begun - SETTLE);
        assert_eq!(
            old.at_risk(5_001, begun),
            None,
            "passed long before the read"
        );
        let during = Latest::new(5_000, begun + Duration::from_secs(3));
        assert!(
            during.at_risk(5_001, begun).is_some(),
            "passed while the read was held"
        );
        assert_eq!(recent.table_changed(&table("b")).map(|l| l.seq), None);
    }
}
