//! What `/healthz` and `/readyz` answer: readiness (the start position fixed, write-back
//! following its streams), backfills in progress, binlog progress, and failed stages.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::waits::{DELIVERED_MS, PUSHBACK_MS, SNAPSHOT_READS};
use crate::util::now_millis;

/// Liveness and readiness, shared by the stages and the HTTP server.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    /// Tables whose write-back consumer does not follow its stream yet.
    writeback_starting: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Per table with write-back: a time (`util::monotonic_millis`) before which every
    /// application change in the table's stream was handled (see
    /// [`Health::writeback_reached`]).
    writeback_reached: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    last_progress_ms: AtomicU64,
    filling: std::sync::Mutex<Vec<String>>,
    /// The first stage that failed, and why: `/healthz` fails from then on.
    failed: std::sync::Mutex<Option<String>>,
    /// The last transaction the binlog reader read, the last one every lane acknowledged, and
    /// when that last moved: a pipeline holding transactions it read without acknowledging any
    /// is stalled (unless DynamoDB is pushing back, see [`note_pushback`]).
    read_seq: AtomicU64,
    acked_seq: AtomicU64,
    acked_moved_ms: AtomicU64,
    /// When transactions began to wait (the read went past the acknowledged, from idle).
    pending_since_ms: AtomicU64,
    /// When the binlog reader began the transaction it is reading (0: between transactions).
    /// A transaction of millions of rows is read, written and acknowledged for minutes before
    /// its commit is read: the lag counts from here meanwhile (see
    /// [`Health::reading_since_ms`]).
    reading_since_ms: AtomicU64,
    /// Whether the binlog reader holds a connection, and when it last tried to get one: a
    /// reader that keeps trying is alive, however long the source is away.
    connected: AtomicBool,
    last_attempt_ms: AtomicU64,
    /// How long without a sign of life (or acknowledgement) before `/healthz` fails; set from
    /// each generation's configuration.
    stall_limit_ms: AtomicU64,
    /// Whether a generation was ever ready (the lag is shown from then on, reloads included).
    was_ready: AtomicBool,
}

impl Health {
    /// A reload starts the pipeline again from its checkpoint: the counters of the stages that
    /// drained, and the write-back consumers they waited for, are forgotten.
    pub fn new_generation(&self) {
        // Ready again once the next generation's start position is fixed; the reader is away
        // until then (a start that keeps failing shows as the source disconnected and a lag that
        // rises, not as the last generation's figures frozen).
        self.ready.store(false, Ordering::SeqCst);
        self.source_connection(false);
        self.read_seq.store(0, Ordering::Relaxed);
        self.acked_seq.store(0, Ordering::Relaxed);
        self.acked_moved_ms.store(now_millis(), Ordering::Relaxed);
        self.reading_since_ms.store(0, Ordering::Relaxed);
        if let Ok(mut starting) = self.writeback_starting.lock() {
            starting.clear();
        }
        if let Ok(mut reached) = self.writeback_reached.lock() {
            reached.clear();
        }
    }

    /// The configuration's limit: max(6 × the idle timeout, 3 × the longest backoff), so that
    /// it outlasts the reader's longest pause between two connection attempts.
    pub fn set_stall_limit(
        &self,
        idle_timeout: std::time::Duration,
        max_backoff: std::time::Duration,
    ) {
        let limit = (idle_timeout * 6).max(max_backoff * 3);
        self.stall_limit_ms
            .store(limit.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn stall_limit(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.stall_limit_ms.load(Ordering::Relaxed).max(1000))
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
        self.was_ready.store(true, Ordering::SeqCst);
        self.acked_moved_ms.store(now_millis(), Ordering::Relaxed);
        self.progress();
    }

    /// The binlog reader read transaction `seq`.
    pub fn transaction_read(&self, seq: u64) {
        let before = self.read_seq.fetch_max(seq, Ordering::Relaxed);
        if before <= self.acked_seq.load(Ordering::Relaxed) && seq > before {
            // Nothing was waiting: the wait starts now, not at the last acknowledgement.
            self.pending_since_ms.store(now_millis(), Ordering::Relaxed);
        }
    }

    /// The binlog reader began a transaction (`true`) or ended one (its commit or rollback
    /// read). A transaction begun again after a reconnection keeps its first beginning, so
    /// that a transaction whose connection keeps being lost shows its whole wait.
    pub fn reading_transaction(&self, reading: bool) {
        if reading {
            let now = now_millis().max(1);
            let _ = self.reading_since_ms.compare_exchange(
                0,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        } else {
            self.reading_since_ms.store(0, Ordering::Relaxed);
        }
    }

    /// When the binlog reader began the transaction it is still reading, if it is reading one.
    pub fn reading_since_ms(&self) -> Option<u64> {
        Some(self.reading_since_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0)
    }

    /// Every lane acknowledged the writes up to transaction `seq`.
    pub fn acknowledged(&self, seq: u64) {
        if self.acked_seq.fetch_max(seq, Ordering::Relaxed) < seq {
            self.acked_moved_ms.store(now_millis(), Ordering::Relaxed);
        }
    }

    /// How long the pipeline has held transactions it read without acknowledging any more or
    /// writing anything, while DynamoDB did not push back; `None` when it is idle.
    pub fn stalled_for(&self) -> Option<std::time::Duration> {
        let read = self.read_seq.load(Ordering::Relaxed);
        let acked = self.acked_seq.load(Ordering::Relaxed);
        if !self.is_ready() || read <= acked || SNAPSHOT_READS.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let since = self
            .acked_moved_ms
            .load(Ordering::Relaxed)
            .max(PUSHBACK_MS.load(Ordering::Relaxed))
            .max(DELIVERED_MS.load(Ordering::Relaxed))
            .max(self.pending_since_ms.load(Ordering::Relaxed));
        Some(std::time::Duration::from_millis(
            now_millis().saturating_sub(since),
        ))
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The write-back consumer of `table` is starting: not ready until it follows its stream.
    pub fn writeback_starting(&self, table: &str) {
        if let Ok(mut starting) = self.writeback_starting.lock() {
            starting.insert(table.to_string());
        }
    }

    /// The write-back consumer of `table` follows its stream: every application change from
    /// now on is read.
    pub fn writeback_following(&self, table: &str) {
        if let Ok(mut starting) = self.writeback_starting.lock() {
            starting.remove(table);
        }
    }

    /// The write-back consumer of `table` has handled every record its stream held at `ms`
    /// (`None`: not known, a shard not read to its end yet).
    pub fn note_writeback_reached(&self, table: &str, ms: Option<u64>) {
        if let Ok(mut reached) = self.writeback_reached.lock() {
            match ms {
                Some(ms) => reached.insert(table.to_string(), ms),
                None => reached.remove(table),
            };
        }
    }

    /// How far each table's write-back consumer has read (see
    /// [`Health::note_writeback_reached`]): `verify` waits for it before it takes a
    /// write-back item that differs from its row for a difference, since an application's
    /// change read later would still reach SQL.
    pub fn writeback_reached(&self) -> std::collections::BTreeMap<String, u64> {
        self.writeback_reached
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Tables whose write-back consumer does not follow its stream yet.
    pub fn writeback_pending(&self) -> Vec<String> {
        self.writeback_starting
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The source read an event or heartbeat.
    pub fn progress(&self) {
        self.last_progress_ms.store(now_millis(), Ordering::Relaxed);
    }

    /// The binlog reader tries to connect (`connected: false`) or follows the stream (`true`).
    pub fn source_connection(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        self.last_attempt_ms.store(now_millis(), Ordering::Relaxed);
        super::metrics()
            .process
            .source_connected
            .set(i64::from(connected));
    }

    pub fn source_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Since when the binlog reader has shown no sign of life: no event, no heartbeat, no
    /// connection attempt (a reader retrying an absent source is alive), and nothing holding it
    /// back.
    pub fn millis_since_alive(&self) -> u64 {
        // A reader held by back-pressure (a slow or refusing DynamoDB, a snapshot read the
        // stream waits for, windows of a long transaction being written) is alive too.
        if SNAPSHOT_READS.load(Ordering::Relaxed) > 0 {
            return 0;
        }
        let last = self
            .last_progress_ms
            .load(Ordering::Relaxed)
            .max(self.last_attempt_ms.load(Ordering::Relaxed))
            .max(PUSHBACK_MS.load(Ordering::Relaxed))
            .max(DELIVERED_MS.load(Ordering::Relaxed));
        now_millis().saturating_sub(last)
    }

    /// Sets the gauges that change with time alone, before a scrape: the age of the last binlog
    /// event, and a replication lag that keeps rising while the source is not read (the
    /// checkpoint's lag alone would read 0: nothing read is unacknowledged) — disconnected, a
    /// reload's next start failing, or the reader held longer than the stall limit (a snapshot
    /// read waiting on the server: an idle source still sends heartbeats). Before 2026-12-05
    /// the last two left the lag at its last figure (found by a review).
    pub fn refresh_gauges(&self) {
        let metrics = super::metrics();
        let since_ms = self.millis_since_progress();
        let since = since_ms as f64 / 1000.0;
        metrics.process.source_last_event_age.set(since);
        let unread = !self.source_connected()
            || since_ms > self.stall_limit_ms.load(Ordering::Relaxed).max(1000);
        if self.was_ready.load(Ordering::SeqCst) && unread {
            let lag = metrics.replication_lag.get().max(since);
            metrics.replication_lag.set(lag);
        }
    }

    /// Eager views whose backfill is not finished.
    pub fn set_filling(&self, views: Vec<String>) {
        if let Ok(mut filling) = self.filling.lock() {
            *filling = views;
        }
    }

    pub fn filling(&self) -> Vec<String> {
        self.filling.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// A stage failed (the daemon is stopping): `/healthz` says so until it exits.
    pub fn set_failed(&self, stage: &str, cause: &str) {
        if let Ok(mut failed) = self.failed.lock() {
            failed.get_or_insert_with(|| format!("stage {stage} failed: {cause}"));
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    pub fn millis_since_progress(&self) -> u64 {
        now_millis().saturating_sub(self.last_progress_ms.load(Ordering::Relaxed))
    }
}
