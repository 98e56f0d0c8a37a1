//! Peak memory of an online backfill as the table grows: the daemon backfills a 1:1 view of
//! ROWCAST_BENCH_MEMORY_ROWS (200,000 and 1,000,000 by default, comma-separated) rows, each
//! size with a fresh view table and a fresh daemon, and reports its peak RSS (VmHWM) and rate.
//! The goal: the same peak at every size (the backfill reads no further ahead of the writers
//! than two chunks).
//!
//! `cargo bench --bench memory` with the services running (`deploy/local-services.sh start`;
//! a fresh DynamoDB Local: it holds every item in its JVM). Under `cargo test` it does nothing.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use support::{metric_sum, peak_rss_mb};

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("memory: skipped (run with `cargo bench --bench memory`)");
        return;
    }
    let sizes: Vec<usize> = std::env::var("ROWCAST_BENCH_MEMORY_ROWS")
        .unwrap_or_else(|_| "200000,1000000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let tag = std::process::id();
    let db = format!("rc_memory_{tag}");
    let mut conn = support::accounts_database(&db).await;
    let mut loaded = 0;
    for (n, rows) in sizes.iter().copied().enumerate() {
        if rows > loaded {
            conn.query_drop(format!(
                "INSERT INTO accounts SELECT seq, seq % 1000, seq, 'open' FROM seq_{}_to_{rows}",
                loaded + 1
            ))
            .await
            .expect("rows");
            loaded = rows;
        }
        let dir = std::env::temp_dir().join(format!("rowcast-memory-{tag}-{n}"));
        let view_table = format!("bench_memory_{tag}_{n}");
        let source = format!("{db}.accounts");
        support::write_accounts_view(&dir, "accounts", &view_table, &source, "OWNER", None);
        let (daemon, port, started) = support::start_daemon(
            &dir,
            45_000 + tag % 10_000 + n as u32,
            &support::extra_writer(),
        )
        .await;
        let written = "rowcast_items_written_total{op=\"put\",view=\"accounts\"}";
        while metric_sum(port, written).await < loaded as f64 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        let peak = peak_rss_mb(daemon.0.id());
        println!(
            "backfill of {loaded} rows: peak RSS {peak:.0} MB, {secs:.0} s = {:.0} rows/s (process start included)",
            loaded as f64 / secs
        );
        drop(daemon);
    }
    conn.query_drop(format!("DROP DATABASE {db}"))
        .await
        .expect("drop");
}
