//! Commit-to-visible latency at a low, steady load, rowcast against the program a user would
//! write instead (`benches/reference/naive_sync.py`: python-mysql-replication + boto3, one put
//! per row event), in one run on the same workload: one single-row INSERT per commit at
//! ROWCAST_BENCH_RATE (20) commits/s, ROWCAST_BENCH_LATENCY_ROWS (200) of them, each polled
//! with GetItem every millisecond until visible. rowcast runs with its default `[writer]`.
//!
//! `cargo bench --bench latency` with the services running (`deploy/local-services.sh start`).
//! The reference script is installed by the bench into `target/bench-venv` (PyPI:
//! mysql-replication, boto3); when that fails it is reported as not run. Under `cargo test` it
//! does nothing.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use mysql_async::prelude::Queryable;
use support::{dynamodb_client, dynamodb_url, env_usize, ms, percentile, Daemon};

use support::{script_python, SCRIPT_PACKAGES};

/// When the item of row `id` is visible in `table` (GetItem every millisecond).
async fn visible(client: &aws_sdk_dynamodb::Client, table: &str, id: usize) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = client
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S("OWNER#5".into()))
            .key("sk", AttributeValue::S(format!("ACC#{id:08}")))
            .send()
            .await
            .expect("get");
        if out.item.is_some() {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "row {id} not visible in {table} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One row per commit at `rate` commits/s; for each table, the commit-to-visible time of each
/// row, sorted. Every table is polled at once, so the followers are measured under the same
/// conditions (the same DynamoDB Local load, the same moment).
async fn measure(
    conn: &mut mysql_async::Conn,
    client: &aws_sdk_dynamodb::Client,
    tables: &[String],
    ids: std::ops::Range<usize>,
    rate: usize,
) -> Vec<Vec<Duration>> {
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let mut latencies = vec![Vec::with_capacity(ids.len()); tables.len()];
    for id in ids {
        let tick = Instant::now();
        conn.query_drop(format!(
            "INSERT INTO accounts VALUES ({id}, 5, {id}, 'open')"
        ))
        .await
        .expect("insert");
        let committed = Instant::now();
        let seen =
            futures_util::future::join_all(tables.iter().map(|table| visible(client, table, id)))
                .await;
        for (at, list) in seen.into_iter().zip(latencies.iter_mut()) {
            list.push(at - committed);
        }
        if let Some(rest) = period.checked_sub(tick.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    for list in latencies.iter_mut() {
        list.sort();
    }
    latencies
}

fn report(who: &str, latencies: &[Duration]) -> (f64, f64) {
    let (p50, p99) = (
        ms(percentile(latencies, 0.5)),
        ms(percentile(latencies, 0.99)),
    );
    println!(
        "{who}: commit-to-visible over {} single-row commits: p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
        latencies.len(),
        ms(*latencies.last().expect("some"))
    );
    (p50, p99)
}

/// Starts the reference script into a table of its own; the process (stopped when dropped) and
/// the table.
async fn start_script(
    client: &aws_sdk_dynamodb::Client,
    python: std::path::PathBuf,
    db: &str,
    tag: u32,
) -> (Daemon, String) {
    let table = format!("bench_latency_script_{tag}");
    support::create_pk_sk_table(client, &table, "create the script's table").await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference/naive_sync.py");
    let server_id = (50_000 + tag % 10_000).to_string();
    let child = Command::new(python)
        .arg(script)
        .args([
            "127.0.0.1",
            "3306",
            "rowcast",
            "rowcast",
            db,
            "accounts",
            &server_id,
        ])
        .arg(dynamodb_url())
        .arg(&table)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the reference script");
    // It follows from the binlog end it finds once connected.
    tokio::time::sleep(Duration::from_secs(2)).await;
    (Daemon(child), table)
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("latency: skipped (run with `cargo bench --bench latency`)");
        return;
    }
    let rows = env_usize("ROWCAST_BENCH_LATENCY_ROWS", 200);
    let rate = env_usize("ROWCAST_BENCH_RATE", 20).max(1);
    let warmup = 20;
    let client = dynamodb_client().await;
    let tag = std::process::id();
    let db = format!("rc_latency_{tag}");
    let mut conn = support::accounts_database(&db).await;

    // rowcast, default writer settings.
    let dir = std::env::temp_dir().join(format!("rowcast-latency-{tag}"));
    let view_table = format!("bench_latency_{tag}");
    let source = format!("{db}.accounts");
    support::write_accounts_view(&dir, "accounts", &view_table, &source, "OWNER", None);
    // ROWCAST_BENCH_WRITER: lines for `[writer]` (e.g. "linger_ms = 20", how lanes waited
    // before they wrote at once when idle).
    let writer = std::env::var("ROWCAST_BENCH_WRITER")
        .unwrap_or_default()
        .replace("\\n", "\n");
    let (daemon, _port, _) = support::start_daemon(&dir, 40_000 + tag % 10_000, &writer).await;
    let mut tables = vec![view_table];

    // The reference script follows the same binlog at the same time, into its own table.
    let script = match script_python() {
        Some(python) => Some(start_script(&client, python, &db, tag).await),
        None => {
            println!("reference script: not run (could not install {SCRIPT_PACKAGES:?} into target/bench-venv)");
            None
        }
    };
    if let Some((_, table)) = &script {
        tables.push(table.clone());
    }
    // Until both follow (the script from the binlog end it finds) and DynamoDB Local is warm.
    measure(&mut conn, &client, &tables, 0..warmup, rate).await;
    let cpu_before = support::cpu_seconds(daemon.0.id());
    let measured = measure(&mut conn, &client, &tables, warmup..warmup + rows, rate).await;
    let cpu = support::cpu_seconds(daemon.0.id()) - cpu_before;
    drop(daemon);
    drop(script);
    println!(
        "rowcast: CPU {:.0} µs per commit (process CPU time / commits, idle time between commits included)",
        1e6 * cpu / rows as f64
    );
    let who = if writer.is_empty() {
        "rowcast (default config)".to_string()
    } else {
        format!("rowcast ([writer] {})", writer.replace('\n', "; "))
    };
    let (ours_p50, ours_p99) = report(&who, &measured[0]);
    if let Some(theirs) = measured.get(1) {
        let (their_p50, their_p99) = report(
            "reference script (python-mysql-replication + boto3, one put per row)",
            theirs,
        );
        println!(
            "rowcast / script: p50 {:.2}x, p99 {:.2}x (below 1: rowcast is faster)",
            ours_p50 / their_p50,
            ours_p99 / their_p99
        );
    }
    conn.query_drop(format!("DROP DATABASE {db}"))
        .await
        .expect("drop");
}
