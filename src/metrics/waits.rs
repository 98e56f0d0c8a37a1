//! What makes a pipeline wait without being stalled, noted by the stages for `/healthz`: snapshot
//! reads the stream waits for, DynamoDB pushing back, windows delivered of a long transaction.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::util::now_millis;

/// Snapshot reads under way (a backfill chunk, a fill, a join refresh): the stream waits for
/// them at their position, which is MySQL working, not a stall.
pub(super) static SNAPSHOT_READS: AtomicU64 = AtomicU64::new(0);

/// A snapshot read begins (`true`) or is merged or given up (`false`).
pub fn note_snapshot_read(begins: bool) {
    if begins {
        SNAPSHOT_READS.fetch_add(1, Ordering::Relaxed);
    } else {
        let _ =
            SNAPSHOT_READS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// When DynamoDB last pushed back (a retried or held write, throttling), for every stage: a
/// slow or refusing DynamoDB keeps the pipeline waiting, which is not a stall.
pub(super) static PUSHBACK_MS: AtomicU64 = AtomicU64::new(0);

/// DynamoDB pushed back just now (the writer retries, holds or was throttled).
pub fn note_pushback() {
    PUSHBACK_MS.store(now_millis(), Ordering::Relaxed);
}

/// When a lane last delivered a window: a transaction too large to be acknowledged within the
/// stall limit is still progressing while its windows are written.
pub(super) static DELIVERED_MS: AtomicU64 = AtomicU64::new(0);

/// A lane delivered a window to DynamoDB just now.
pub fn note_delivery() {
    DELIVERED_MS.store(now_millis(), Ordering::Relaxed);
}
