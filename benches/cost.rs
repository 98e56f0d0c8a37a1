//! Cost as work grows (issue 13 goal 8), against the real services (start them with
//! `deploy/local-services.sh start`; restart DynamoDB Local first for fair numbers):
//!
//! 1. views: 1, 10 and 50 views of one source table (each its own key prefix, all in one
//!    DynamoDB table); about ROWCAST_BENCH_COST_ITEMS (40,000) items in all, so 40,000 rows for
//!    one view and 800 for fifty, committed 500 rows an INSERT;
//! 2. item size: one view of a table whose rows carry a 100 B, 10 KB or 100 KB text attribute;
//! 3. one transaction of ROWCAST_BENCH_TXN_ROWS (1,000,000) rows through one view.
//!
//! Each case has a fresh daemon, source table and view table; it prints rows/s (committed
//! until every item is acknowledged), items/s, rowcast's CPU time per row (process CPU ÷ rows
//! over the case) and the daemon's peak RSS. Backfill memory at 1,000,000 rows is
//! `benches/memory.rs`'s. `cargo bench --bench cost`; under `cargo test` it does nothing.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

mod support;

use support::{cpu_seconds, env_usize, metric_sum, peak_rss_mb, start_daemon};

/// What one case measured.
struct Cost {
    rows_per_sec: f64,
    items_per_sec: f64,
    cpu_us_per_row: f64,
    peak_mb: f64,
}

/// A daemon started on a case's directory, measured from `start` to `finish`.
struct Run {
    daemon: support::Daemon,
    port: u16,
    cpu_before: f64,
    started: Instant,
}

impl Run {
    async fn start(dir: &std::path::Path, server_id: u32) -> Run {
        let (daemon, port, _) = start_daemon(dir, server_id, "").await;
        // Started and tailing (the views' tables are empty: nothing to backfill).
        tokio::time::sleep(Duration::from_secs(2)).await;
        Run {
            cpu_before: cpu_seconds(daemon.0.id()),
            daemon,
            port,
            started: Instant::now(),
        }
    }

    /// Waits until `items` puts are acknowledged; `rows` were committed.
    async fn finish(self, rows: usize, items: usize) -> Cost {
        let put = "rowcast_items_written_total{op=\"put\"";
        while metric_sum(self.port, put).await < items as f64 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let secs = self.started.elapsed().as_secs_f64();
        let pid = self.daemon.0.id();
        Cost {
            rows_per_sec: rows as f64 / secs,
            items_per_sec: items as f64 / secs,
            cpu_us_per_row: (cpu_seconds(pid) - self.cpu_before) * 1e6 / rows as f64,
            peak_mb: peak_rss_mb(pid),
        }
    }
}

fn print(case: &str, rows: usize, cost: &Cost) {
    println!(
        "{case}: {rows} rows, {:.0} rows/s, {:.0} items/s, rowcast CPU {:.1} µs per row, peak RSS {:.0} MB",
        cost.rows_per_sec, cost.items_per_sec, cost.cpu_us_per_row, cost.peak_mb
    );
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("cost: skipped (run with `cargo bench --bench cost`)");
        return;
    }
    let tag = std::process::id();
    let total_items = env_usize("ROWCAST_BENCH_COST_ITEMS", 40_000);
    let db = format!("rc_cost_{tag}");
    let mut conn = support::accounts_database(&db).await;
    let base = std::env::temp_dir().join(format!("rowcast-cost-{tag}"));
    let mut server_id = 60_000 + tag % 10_000;

    // 1. Views per source table.
    for views in [1usize, 10, 50] {
        let source = format!("accounts_v{views}");
        conn.query_drop(format!("CREATE TABLE {source} LIKE accounts"))
            .await
            .expect("table");
        let dir = base.join(format!("views{views}"));
        let table = format!("bench_cost_v{views}_{tag}");
        for n in 0..views {
            let name = format!("v{views}_{n}");
            let prefix = format!("V{n}");
            support::write_accounts_view(
                &dir,
                &name,
                &table,
                &format!("{db}.{source}"),
                &prefix,
                None,
            );
        }
        let rows = total_items / views;
        server_id += 1;
        let run = Run::start(&dir, server_id).await;
        support::insert_accounts(&mut conn, &source, 0..rows).await;
        let cost = run.finish(rows, rows * views).await;
        print(&format!("{views} view(s) of one table"), rows, &cost);
    }

    // 2. Item size.
    for (label, size, rows) in [
        ("100 B", 100usize, 20_000usize),
        ("10 KB", 10_240, 2_000),
        ("100 KB", 102_400, 300),
    ] {
        let source = format!("blobs_{size}");
        conn.query_drop(format!("CREATE TABLE {source} (id INT PRIMARY KEY, owner INT NOT NULL, payload MEDIUMTEXT NOT NULL)"))
            .await
            .expect("table");
        let dir = base.join(format!("size{size}"));
        std::fs::create_dir_all(dir.join("views")).expect("dir");
        std::fs::write(
            dir.join("views/blobs.toml"),
            format!("name = \"blobs_{size}\"\ntable = \"bench_cost_s{size}_{tag}\"\nsource = \"{db}.{source}\"\n[key]\npk = \"OWNER#{{owner}}\"\nsk = \"BLOB#{{id:08}}\"\n[attributes]\npayload = \"payload\"\n"),
        )
        .expect("view");
        // About 1 MB of rows per INSERT.
        let per_insert = (1 << 20) / size;
        server_id += 1;
        let run = Run::start(&dir, server_id).await;
        {
            let mut first = 1;
            while first <= rows {
                let last = (first + per_insert - 1).min(rows);
                conn.query_drop(format!(
                    "INSERT INTO {source} SELECT seq, seq % 1000, REPEAT('x', {size}) FROM seq_{first}_to_{last}"
                ))
                .await
                .expect("insert");
                first = last + 1;
            }
        }
        let cost = run.finish(rows, rows).await;
        print(&format!("items of {label}"), rows, &cost);
    }

    // 3. One large transaction.
    let rows = env_usize("ROWCAST_BENCH_TXN_ROWS", 1_000_000);
    let dir = base.join("txn");
    let table = format!("bench_cost_txn_{tag}");
    support::write_accounts_view(
        &dir,
        "txn",
        &table,
        &format!("{db}.accounts"),
        "OWNER",
        None,
    );
    server_id += 1;
    let run = Run::start(&dir, server_id).await;
    conn.query_drop(format!(
        "INSERT INTO accounts SELECT seq, seq % 1000, seq, 'open' FROM seq_1_to_{rows}"
    ))
    .await
    .expect("insert");
    let cost = run.finish(rows, rows).await;
    print("one transaction", rows, &cost);

    conn.query_drop(format!("DROP DATABASE {db}"))
        .await
        .expect("drop");
}
