//! `rowcast verify` against the real services (start them with `deploy/local-services.sh
//! start`): a 1:1 view and a view with a lookup join, ROWCAST_BENCH_VERIFY_ROWS (200,000) items
//! each, backfilled by a running daemon; then, in the same run, the raw rate of a parallel
//! Scan of the 1:1 view's table (4 segments, strongly consistent, as verify reads it) and the
//! verify rate of each view (items checked per second, wall time of the command) with its peak
//! memory (VmHWM of the verify process).
//!
//! `cargo bench --bench verify` (the raw Scan is run twice, the first to warm DynamoDB Local
//! up). Under `cargo test` it does nothing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

mod support;

use support::metric_sum;

fn rss_mb(pid: u32) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
}

/// Runs `rowcast verify --view view`; its wall time, peak memory and summary line.
fn verify(bin: &str, config: &str, view: &str) -> (f64, f64, String) {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["verify", "--config", config, "--view", view])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("verify");
    let pid = child.id();
    let mut peak = 0.0f64;
    while child.try_wait().expect("wait").is_none() {
        if let Some(mb) = rss_mb(pid) {
            peak = peak.max(mb);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = started.elapsed().as_secs_f64();
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (secs, peak, text.lines().last().unwrap_or("").to_string())
}

async fn raw_scan(client: &aws_sdk_dynamodb::Client, table: &str, segments: i32) -> (u64, f64) {
    let started = Instant::now();
    let counts = futures_util::future::join_all((0..segments).map(|segment| async move {
        let mut start = None;
        let mut count = 0u64;
        loop {
            let page = client
                .scan()
                .table_name(table)
                .segment(segment)
                .total_segments(segments)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("scan");
            count += page.items.map_or(0, |i| i.len() as u64);
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return count,
            }
        }
    }))
    .await;
    (counts.iter().sum(), started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("verify: skipped (run with `cargo bench --bench verify`)");
        return;
    }
    let rows: usize = std::env::var("ROWCAST_BENCH_VERIFY_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mysql_url = std::env::var("ROWCAST_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://rowcast_admin:rowcast@127.0.0.1:3306".into());
    let ddb_url =
        std::env::var("ROWCAST_TEST_DYNAMODB").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    let client = rowcast::dynamo::client(&rowcast::config::DynamoConfig {
        endpoint_url: Some(ddb_url.clone()),
        region: Some("us-east-1".into()),
    })
    .await;
    let tag = std::process::id();
    let db = format!("rc_vbench_{tag}");
    let pool = mysql_async::Pool::new(mysql_url.as_str());
    let mut conn = pool.get_conn().await.expect("MariaDB");
    conn.query_drop(format!("CREATE DATABASE {db}"))
        .await
        .expect("db");
    conn.query_drop(format!("USE {db}")).await.expect("use");
    conn.query_drop("CREATE TABLE owners (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL)")
        .await
        .expect("owners");
    conn.query_drop("CREATE TABLE items (id INT PRIMARY KEY, owner INT NOT NULL, balance BIGINT NOT NULL, state VARCHAR(10) NOT NULL, KEY by_owner (owner))")
        .await
        .expect("items");
    conn.query_drop("INSERT INTO owners SELECT seq, CONCAT('owner ', seq) FROM seq_0_to_999")
        .await
        .expect("fill owners");
    conn.query_drop(format!(
        "INSERT INTO items SELECT seq, seq % 1000, seq * 3, IF(seq % 7 = 0, 'closed', 'open') FROM seq_1_to_{rows}"
    ))
    .await
    .expect("fill items");

    let dir = std::env::temp_dir().join(format!("rowcast-vbench-{tag}"));
    std::fs::create_dir_all(dir.join("views")).expect("dir");
    let (flat_table, joined_table) = (format!("vb_flat_{tag}"), format!("vb_joined_{tag}"));
    std::fs::write(
        dir.join("views/flat.toml"),
        format!("name = \"flat\"\ntable = \"{flat_table}\"\nsource = \"{db}.items\"\n[key]\npk = \"ITEM#{{id}}\"\n[attributes]\nowner = \"owner\"\nbalance = \"balance\"\nstate = \"state\"\n"),
    )
    .expect("view");
    std::fs::write(
        dir.join("views/joined.toml"),
        format!("name = \"joined\"\ntable = \"{joined_table}\"\nsource = \"{db}.items\"\n[key]\npk = \"OWNER#{{owner}}\"\nsk = \"ITEM#{{id:08}}\"\n[attributes]\nbalance = \"balance\"\nstate = \"state\"\n[[lookup]]\nfrom = \"{db}.owners\"\non = {{ id = \"owner\" }}\nattributes = {{ owner_name = \"name\" }}\n"),
    )
    .expect("view");
    let (port, api_port) = support::free_ports();
    let config = dir.join("rowcast.toml");
    std::fs::write(
        &config,
        format!("views = [\"views/*.toml\"]\n[source]\nurl = \"mysql://rowcast:rowcast@127.0.0.1:3306\"\nserver_id = {}\n[dynamodb]\nendpoint_url = \"{ddb_url}\"\n[checkpoint]\npath = \"checkpoint.json\"\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n", 30_000 + tag % 10_000),
    )
    .expect("config");
    let config = config.to_str().expect("utf8").to_string();
    let bin = env!("CARGO_BIN_EXE_rowcast");
    let status = Command::new(bin)
        .args(["tables", "--config", &config, "create"])
        .stdout(Stdio::null())
        .status()
        .expect("tables");
    assert!(status.success());
    let log = std::fs::File::create(dir.join("rowcast.log")).expect("log");
    let mut daemon = Command::new(bin)
        .args(["run", "--config", &config])
        .stderr(log)
        .spawn()
        .expect("daemon");
    let started = Instant::now();
    for view in ["flat", "joined"] {
        let metric = format!("rowcast_items_written_total{{op=\"put\",view=\"{view}\"}}");
        while metric_sum(port, &metric).await < rows as f64 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    println!(
        "backfilled 2 x {rows} items in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // The first Scan warms DynamoDB Local's JVM up; the second is the figure.
    raw_scan(&client, &flat_table, 4).await;
    let (scanned, scan_secs) = raw_scan(&client, &flat_table, 4).await;
    let raw_rate = scanned as f64 / scan_secs;
    println!("raw Scan (4 segments, consistent): {scanned} items in {scan_secs:.2}s = {raw_rate:.0} items/s");
    for view in ["flat", "joined"] {
        let (secs, peak, summary) = verify(bin, &config, view);
        let rate = rows as f64 / secs;
        println!(
            "verify {view}: {secs:.2}s = {rate:.0} items/s ({:.0}% of the raw Scan rate), peak memory {peak:.0} MB; {summary}",
            100.0 * rate / raw_rate
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();
    conn.query_drop(format!("DROP DATABASE {db}"))
        .await
        .expect("drop");
}
