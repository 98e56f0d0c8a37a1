//! Named crash points at the seams of the pipeline, for tests that kill the process exactly
//! there and check that nothing is lost.
//!
//! Compiled in only with the `failpoints` feature (the test command enables it); without it
//! [`hit`] is an empty inline function. Configured by `ROWCAST_FAILPOINTS`, a comma-separated
//! list of `name=action[@n]`: `abort` ends the process at once, as `kill -9` would (no drain,
//! no final checkpoint); `panic` panics the task that hits it; `sleepMS` (e.g. `sleep2000`)
//! holds the task that reaches it for that long, at points passed with [`delay`]; `error` makes
//! the caller fail there with a transient error, at points passed with [`fails`]. `@n` acts on
//! the n-th hit only (default: the first), `@*` on every hit.
//!
//! The points: `lane.after_write` (a window written, its barrier not yet acknowledged),
//! `merge.before_merge` (snapshot rows read, not yet merged into the stream),
//! `checkpoint.after_save` (a checkpoint saved, the next barrier not yet taken),
//! `writeback.after_apply` (a record applied to SQL, its position not yet saved),
//! `writeback.follow` (a write-back consumer starting to follow its stream),
//! `writeback.before_apply` (a delay: a record's statement about to be run in SQL),
//! `writeback.before_commit` (a delay: a record's statement run, its row locked, not committed),
//! `writeback.after_lock` (a delay: a record's row locked by a read, nothing written yet),
//! `writeback.before_position_save` (a delay: a shard position about to be saved),
//! `writeback.position_save` (an error: a try to save a shard position fails),
//! `checkpoint.before_confirm` (a delay: a checkpoint save or ownership check, sent as far as
//! the write lease counts, not yet answered: a slow control table),
//! `source.before_ddl` (a delay: the reader has read a DDL statement, the merge stage and the
//! snapshot reads do not know yet), `xa.reread` (an error: the binlog connection re-reading a
//! prepared XA transaction fails after its first event), `snapshot.before_backfill` (a delay:
//! the snapshot worker is about to start a backfill asked for while running, e.g. after a join
//! overflow), `lane.before_write` (a delay: a lane about to write a window),
//! `snapshot.before_fill` (a delay: the snapshot worker about to read a fill-on-miss),
//! `export.after_snapshot` (a delay: `rowcast export` has its snapshot, no row read yet),
//! `export.before_snapshot` (a delay: its first `XA RECOVER` made, no snapshot yet),
//! `export.in_snapshot` (a delay: its snapshot begun, its second `XA RECOVER` not made),
//! `writer.check` (an error: the version check of guarded writes is refused),
//! `writer.check_unprocessed` (an error: the version check's answer leaves every other key
//! unprocessed), `cleanup.before_sweep` (a delay: a view's cleanup is due, its Scan not begun),
//! `reader.decode_row` (an error: a row of a watched table's rows event cannot be decoded),
//! `project.before_restore` (a delay: the rows of a write-back restore are merged, not yet
//! projected nor written), `restore.clock_behind` (an error: a restore's clock is an hour
//! behind), `writeback.clock_ahead` (an error: the clock a stream's first start is recorded by
//! is five minutes ahead), `writeback.foreign_key_patience` (an error: a record a foreign key
//! refuses waits 2 s instead of a minute), `snapshot.position_late` (an error: a consistent
//! snapshot reports as its position the binlog's end 1.5 s after it began, past the commits
//! of that time, which it does not see: what MariaDB does now and then).

#[cfg(feature = "failpoints")]
mod enabled {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    enum Action {
        Abort,
        Panic,
        Sleep(u64),
        Error,
    }

    struct Point {
        action: Action,
        at: u64,
        hits: AtomicU64,
    }

    fn points() -> &'static HashMap<String, Point> {
        static POINTS: OnceLock<HashMap<String, Point>> = OnceLock::new();
        POINTS.get_or_init(|| {
            let spec = std::env::var("ROWCAST_FAILPOINTS").unwrap_or_default();
            spec.split(',')
                .filter_map(|entry| {
                    let (name, action) = entry.trim().split_once('=')?;
                    let (action, at) = match action.split_once('@') {
                        // `@*`: every hit (kept as 0).
                        Some((action, "*")) => (action, 0),
                        Some((action, at)) => (action, at.parse().ok()?),
                        None => (action, 1),
                    };
                    let action = match action {
                        "abort" => Action::Abort,
                        "panic" => Action::Panic,
                        "error" => Action::Error,
                        _ => Action::Sleep(action.strip_prefix("sleep")?.parse().ok()?),
                    };
                    let point = Point {
                        action,
                        at,
                        hits: AtomicU64::new(0),
                    };
                    Some((name.to_string(), point))
                })
                .collect()
        })
    }

    /// The point's action if this hit is the one it acts on.
    fn reached(name: &str) -> Option<&'static Action> {
        let point = points().get(name)?;
        let hit = point.hits.fetch_add(1, Ordering::SeqCst) + 1;
        (point.at == 0 || hit == point.at).then_some(&point.action)
    }

    pub fn hit(name: &str) {
        match reached(name) {
            Some(Action::Abort) => {
                eprintln!("failpoint {name}: abort");
                std::process::abort()
            }
            Some(Action::Panic) => panic!("failpoint {name}"),
            Some(Action::Sleep(_) | Action::Error) | None => {}
        }
    }

    pub async fn delay(name: &str) {
        if let Some(Action::Sleep(ms)) = reached(name) {
            eprintln!("failpoint {name}: sleep {ms} ms");
            tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
        }
    }

    pub fn fails(name: &str) -> bool {
        let failing = matches!(reached(name), Some(Action::Error));
        if failing {
            eprintln!("failpoint {name}: error");
        }
        failing
    }
}

#[cfg(feature = "failpoints")]
pub use enabled::{delay, fails, hit};

/// A named crash point (see the module's doc); nothing without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// A named delay point (see the module's doc); nothing without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub async fn delay(_name: &str) {}

/// A named error point: `true` when the caller is to fail there (`name=error`); always `false`
/// without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn fails(_name: &str) -> bool {
    false
}
