//! `rowcast export` measured against the backfill and the raw DynamoDB Local write ceiling, in
//! one run: ROWCAST_BENCH_EXPORT_ROWS (500,000 by default) rows of the accounts table, exported
//! as gzip DynamoDB JSON to a temporary directory (rows/s and the export process's peak RSS),
//! then backfilled by a fresh daemon into a fresh table (rows/s, process start included), and
//! the raw ceiling: BatchWriteItem of the same items from this process (8 requests at a time).
//!
//! `cargo bench --bench export` with the services running (`deploy/local-services.sh start`,
//! a fresh DynamoDB Local). Under `cargo test` it does nothing.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use support::{env_usize, metric_sum, peak_rss_mb};

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("export: skipped (run with `cargo bench --bench export`)");
        return;
    }
    let rows = env_usize("ROWCAST_BENCH_EXPORT_ROWS", 500_000);
    let tag = std::process::id();
    let db = format!("rc_export_{tag}");
    let mut conn = support::accounts_database(&db).await;
    conn.query_drop(format!(
        "INSERT INTO accounts SELECT seq, seq % 1000, seq, 'open' FROM seq_1_to_{rows}"
    ))
    .await
    .expect("rows");
    let dir = std::env::temp_dir().join(format!("rowcast-export-bench-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    let view_table = format!("bench_export_{tag}");
    let source = format!("{db}.accounts");
    support::write_accounts_view(&dir, "accounts", &view_table, &source, "OWNER", None);
    let (config, _) = support::write_config(
        &dir,
        46_000 + tag % 10_000,
        "",
        &support::dynamodb_url(),
        support::FILE_CHECKPOINT,
    );
    let bin = env!("CARGO_BIN_EXE_rowcast");

    // 1. The export, its peak memory sampled while it runs (VmHWM only grows).
    let out = dir.join("out");
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["export", "--config", config.to_str().expect("utf8")])
        .args(["--view", "accounts", "--to", out.to_str().expect("utf8")])
        .stdout(Stdio::null())
        .spawn()
        .expect("export");
    let mut peak: f64 = 0.0;
    let status = loop {
        peak = peak.max(peak_rss_mb(child.id()));
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let export_secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "export failed");
    let gz: u64 = std::fs::read_dir(out.join(&view_table).join("data"))
        .expect("data")
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .sum();
    let export_rate = rows as f64 / export_secs;
    println!(
        "export of {rows} rows: {export_secs:.2} s = {export_rate:.0} rows/s (process start included), peak RSS {peak:.0} MB, {:.1} MB of gzip",
        gz as f64 / 1e6
    );

    // 2. The backfill of the same rows by a fresh daemon.
    let (daemon, port, spawned) = support::start_daemon(&dir, 47_000 + tag % 10_000, "").await;
    let written = "rowcast_items_written_total{op=\"put\",view=\"accounts\"}";
    while metric_sum(port, written).await < rows as f64 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let backfill_rate = rows as f64 / spawned.elapsed().as_secs_f64();
    drop(daemon);
    println!("backfill of {rows} rows: {backfill_rate:.0} rows/s (process start included)");

    // 3. The raw ceiling: the same number of items, BatchWriteItem from here.
    let client = support::dynamodb_client().await;
    let raw_table = format!("bench_export_raw_{tag}");
    support::create_pk_sk_table(&client, &raw_table, "raw table").await;
    let started = Instant::now();
    support::raw_writes(&client, &raw_table, 0..rows, 8).await;
    let raw_rate = rows as f64 / started.elapsed().as_secs_f64();
    println!("raw BatchWriteItem ceiling: {raw_rate:.0} items/s (8 requests at a time)");
    println!(
        "export = {:.1}× the backfill, {:.1}× the raw ceiling (an S3 import then loads the files without DynamoDB write capacity)",
        export_rate / backfill_rate,
        export_rate / raw_rate
    );
    conn.query_drop(format!("DROP DATABASE {db}"))
        .await
        .expect("drop");
    let _ = std::fs::remove_dir_all(&dir);
}
