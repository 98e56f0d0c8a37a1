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
//! is not dropped; a fill whose row changed less than [`SETTLE`] before its read began (by
//! when the change was committed, about: a stream behind the server passes old changes) is
//! read again once that time has passed, when the change is visible. So is a pass's first
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

use crate::view::join::JoinValue;
use crate::view::TableRef;

/// Changes (keys) and transactions remembered: 8 bytes per key in the queue, about 40 in the
/// map, 24 per transaction (at most about 6 MiB). At 30,000 changes a second, two seconds of
/// them.
pub const CAPACITY: usize = 65_536;

/// How long after its commit a snapshot is taken to see a change. The lag seen (a commit in
/// the binlog, not yet visible) spans a commit or two, milliseconds.
pub const SETTLE: Duration = Duration::from_millis(100);

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
pub fn key_hash(table: &TableRef, columns: &[String], key: &[JoinValue]) -> u64 {
    let mut hasher = DefaultHasher::new();
    table.hash(&mut hasher);
    columns.hash(&mut hasher);
    key.hash(&mut hasher);
    hasher.finish()
}

/// The keys of the latest changes, oldest first, and the latest transaction of each; the
/// latest transaction of each table; and when the latest transactions were committed.
pub struct Recent {
    capacity: usize,
    order: VecDeque<u64>,
    /// Key hash → (counter of its latest change's transaction, its changes in `order`).
    latest: HashMap<u64, (u64, u32)>,
    tables: HashMap<TableRef, u64>,
    /// (counter, when committed, about) of the latest transactions, oldest first.
    commits: VecDeque<(u64, Instant)>,
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
            commits: VecDeque::new(),
        }
    }

    /// When a transaction that passes now was committed, about, its commit `lag_s` whole
    /// seconds before now by the server's clock: less one second for the rounding. A stream
    /// far behind the server passes changes long visible to any snapshot; they must not look
    /// recent.
    pub fn committed_at(now: Instant, lag_s: u64) -> Instant {
        let behind = Duration::from_secs(lag_s.saturating_sub(1));
        now.checked_sub(behind).unwrap_or(now)
    }

    /// Transaction `seq`, whose changes passed before, passes now, committed at `commit_ts`
    /// (seconds since the epoch, by the server's clock): see [`Recent::committed_at`].
    pub fn commit_at_server(&mut self, seq: u64, commit_ts: u32) {
        let now_s = crate::util::now_millis() / 1000;
        let lag_s = now_s.saturating_sub(u64::from(commit_ts));
        self.commit(seq, Recent::committed_at(Instant::now(), lag_s));
    }

    /// Transaction `seq`, whose changes passed before, was committed at `at`, about.
    pub fn commit(&mut self, seq: u64, at: Instant) {
        if self.commits.len() == self.capacity {
            self.commits.pop_front();
        }
        self.commits.push_back((seq, at));
    }

    /// When transaction `seq` was committed, about: `None` when it is older than those
    /// remembered (long visible); now when its commit has not passed yet.
    pub fn committed(&self, seq: u64) -> Option<Instant> {
        match self.commits.back() {
            Some((last, _)) if seq <= *last => {}
            _ => return Some(Instant::now()),
        }
        let found = self.commits.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        Some(self.commits[found].1)
    }

    /// A change of `table` in transaction `seq` passed (any table, keyed or not).
    pub fn touch(&mut self, table: &TableRef, seq: u64) {
        match self.tables.get_mut(table) {
            Some(latest) => *latest = (*latest).max(seq),
            None => {
                self.tables.insert(table.clone(), seq);
            }
        }
    }

    /// The transaction of `table`'s latest change that passed.
    pub fn table_changed(&self, table: &TableRef) -> Option<u64> {
        self.tables.get(table).copied()
    }

    /// A change of the row `key` in transaction `seq` passed (transactions pass in order).
    pub fn push(&mut self, key: u64, seq: u64) {
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                if let Some(entry) = self.latest.get_mut(&old) {
                    entry.1 -= 1;
                    if entry.1 == 0 {
                        self.latest.remove(&old);
                    }
                }
            }
        }
        self.order.push_back(key);
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
        let mut recent = Recent::with_capacity(3);
        assert!(recent.is_empty());
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
    fn a_transaction_is_known_by_its_commit_until_pushed_out() {
        let t0 = Instant::now();
        let mut recent = Recent::with_capacity(2);
        recent.commit(10, t0);
        recent.commit(12, t0 + Duration::from_millis(5));
        assert_eq!(recent.committed(10), Some(t0));
        assert_eq!(recent.committed(11), None, "no change of it was noted");
        assert!(recent.committed(13).is_some(), "not committed yet: now");
        recent.commit(13, t0);
        assert_eq!(recent.committed(10), None, "older than those remembered");
        recent.touch(&table("a"), 12);
        recent.touch(&table("a"), 11);
        assert_eq!(recent.table_changed(&table("a")), Some(12));
        assert_eq!(recent.table_changed(&table("b")), None);
    }

    #[test]
    fn a_stream_behind_the_server_passes_changes_committed_long_before() {
        let now = Instant::now() + Duration::from_secs(100);
        assert_eq!(Recent::committed_at(now, 0), now);
        assert_eq!(Recent::committed_at(now, 1), now, "a second's rounding");
        assert_eq!(Recent::committed_at(now, 30), now - Duration::from_secs(29));
    }
}
