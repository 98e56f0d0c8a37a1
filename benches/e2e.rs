//! End-to-end driver against the real services (start them with
//! `deploy/local-services.sh start`; a fresh DynamoDB Local gives fair numbers):
//!
//! 1. the raw ceiling: BatchWriteItem of small items straight to DynamoDB Local, from this
//!    process, with as many concurrent requests as rowcast has lanes;
//! 2. throughput: rows committed to MariaDB as fast as one connection can (multi-row inserts),
//!    timed from the first commit until rowcast has acknowledged every item;
//! 3. latency: one row per commit at a steady low rate, commit-to-visible (GetItem polling)
//!    p50 / p99;
//! 4. joins: a customer rename fanning out to ROWCAST_BENCH_FANOUT (10,000) items, a stream of
//!    order-line inserts into an embed + aggregates view, a burst on one hot order;
//! 5. write-back: UpdateItem → MariaDB row latency, and ROWCAST_BENCH_WRITEBACK (2,000) updates
//!    at once.
//!
//! Beside them: the bulk loader a user would write (`benches/reference/bulk_loader.py`) on the
//! backfilled rows, rowcast's CPU time per row in the backfill and in part 2, and the throughput of part 2
//! again with DynamoDB 10 ms away (a delay proxy) and in conditional mode.
//!
//! `cargo bench --bench e2e` (ROWCAST_BENCH_ROWS, ROWCAST_BENCH_LATENCY_ROWS, ROWCAST_BENCH_WARMUP to resize;
//! ROWCAST_BENCH_SHARED_TABLE=1 puts the backfilled and the streamed view in one table). Under
//! `cargo test` it does nothing.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use mysql_async::prelude::Queryable;

mod support;

use support::{cpu_seconds, env_usize, metric_sum, peak_rss_mb, percentile, start_daemon};

const LANES: usize = 8;
/// How often the bench reads rowcast's `/metrics` while it waits for a phase to end, at most
/// and at least: each read costs the daemon CPU that its CPU per row counts (a connection, the
/// gathering of every metric, `/proc` read for the process collector: every 20 ms it was 5 % of
/// a profile, every 50 ms 3 % of the user time and more of the kernel's), and the time between
/// the phase's end and the read that sees it is counted in the phase. [`wait_metric`] reads
/// again after half the time the rate seen so far says is left: a few reads per phase, the last
/// few milliseconds apart.
const METRICS_POLL_MAX: Duration = Duration::from_millis(100);
const METRICS_POLL_MIN: Duration = Duration::from_millis(5);
/// The longest [`wait_metric`] waits.
const WAIT_LIMIT: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("e2e: skipped (run with `cargo bench --bench e2e`)");
        return;
    }
    let rows = env_usize("ROWCAST_BENCH_ROWS", 20_000);
    let mode = std::env::var("ROWCAST_BENCH_MODE").unwrap_or_else(|_| "auto".into());
    let latency_rows = env_usize("ROWCAST_BENCH_LATENCY_ROWS", 200);
    let client = support::dynamodb_client().await;
    let tag = std::process::id();

    // 1. Raw ceiling.
    let raw_table = format!("bench_raw_{tag}");
    support::create_pk_sk_table(&client, &raw_table, "create raw table").await;
    // DynamoDB Local's JVM needs a warm-up before its numbers mean anything: a fresh one
    // writes about 3,900 items/s, and its pace was still rising after 80,000 items (backfills
    // of 20,000, 20,000, 40,000 and 40,000 rows one after the other: 3,851, 7,274, 8,605, 9,676
    // rows/s). Every phase below is measured after a warm-up of that size, so that the phases
    // that come later (rowcast's, after the loader's) gain less from coming later.
    let warmup = env_usize("ROWCAST_BENCH_WARMUP", 100_000);
    support::raw_writes(&client, &raw_table, 0..warmup, LANES).await;
    let started = Instant::now();
    support::raw_writes(&client, &raw_table, warmup..warmup + rows, LANES).await;
    let raw_secs = started.elapsed().as_secs_f64();
    println!("raw BatchWriteItem ceiling: {rows} items in {raw_secs:.2}s = {:.0} items/s ({LANES} concurrent requests)", rows as f64 / raw_secs);

    // 2. rowcast throughput.
    let db = format!("rc_bench_{tag}");
    let mut conn = support::accounts_database(&db).await;
    // Rows that exist before rowcast starts: the eager view `preloaded` is backfilled.
    conn.query_drop("CREATE TABLE preloaded (id INT PRIMARY KEY, owner INT NOT NULL, balance BIGINT NOT NULL, state VARCHAR(10) NOT NULL)").await.expect("table");
    conn.query_drop(format!(
        "INSERT INTO preloaded SELECT seq, seq % 1000, seq, 'open' FROM seq_1_to_{rows}"
    ))
    .await
    .expect("preload");
    let loader = bulk_loader(&client, &db, rows, tag).await;
    let dir = std::env::temp_dir().join(format!("rowcast-bench-{tag}"));
    let view_table = format!("bench_views_{tag}");
    // The two views in tables of their own (ROWCAST_BENCH_SHARED_TABLE=1: in one, as before
    // 2026-12-07's sixth stop). A new view's first pass ends with a cleanup, a Scan of its
    // table: in one table, `accounts`' (its pass is over at once, no rows) ran beside the
    // backfill being measured and read the items it wrote, on a DynamoDB Local whose CPU those
    // writes need (real DynamoDB reads and writes on separate capacity).
    let stream_table = match env_usize("ROWCAST_BENCH_SHARED_TABLE", 0) {
        1 => view_table.clone(),
        _ => format!("{view_table}_stream"),
    };
    let preloaded = format!("{db}.preloaded");
    support::write_accounts_view(&dir, "preloaded", &view_table, &preloaded, "PRE", None);
    let accounts = format!("{db}.accounts");
    let open = Some("state <> 'closed'");
    support::write_accounts_view(&dir, "accounts", &stream_table, &accounts, "OWNER", open);
    let (_daemon, port, backfill_started) = start_daemon(
        &dir,
        20_000 + tag % 10_000,
        &format!(
            "lanes = {LANES}\nmode = \"{mode}\"\n{}",
            support::extra_writer()
        ),
    )
    .await;
    wait_metric(
        port,
        "rowcast_items_written_total{op=\"put\",view=\"preloaded\"}",
        rows as f64,
    )
    .await;
    let backfill_secs = backfill_started.elapsed().as_secs_f64();
    let pid = _daemon.0.id();
    let backfill_cpu = cpu_seconds(pid);
    println!(
        "backfill: {rows} preloaded rows in DynamoDB {backfill_secs:.2}s after start = {:.0} rows/s ({:.0}% of the raw ceiling{}); rowcast CPU {:.1} µs per row (process start included)",
        rows as f64 / backfill_secs,
        100.0 * (rows as f64 / backfill_secs) / (rows as f64 / raw_secs),
        loader.map_or(String::new(), |rate| format!(", {:.2}× the 4-process loader", rows as f64 / backfill_secs / rate)),
        backfill_cpu * 1e6 / rows as f64,
    );
    // A new view's first pass ends with a cleanup: one Scan of the view's table for the items
    // the pass did not write. Part 2 is measured after both views' cleanups (before 2026-12-07's
    // fifth stop it ran beside the Scan of `preloaded`'s 20,000 items), and the cleanup alone.
    let cpu_after_backfill = cpu_seconds(pid);
    wait_metric(port, "rowcast_cleanups_total", 2.0).await;
    println!(
        "cleanup of the new views after their first pass: done {:.2}s after the backfill, rowcast CPU {:.1} µs per item of the table",
        backfill_started.elapsed().as_secs_f64() - backfill_secs,
        (cpu_seconds(pid) - cpu_after_backfill) * 1e6 / rows as f64,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_before = cpu_seconds(pid);
    // Every write request rowcast sends (BatchWriteItem, single and conditional writes).
    let requests = "rowcast_batch_write_duration_seconds_count";
    let requests_before = metric_sum(port, requests).await;
    let started = Instant::now();
    support::insert_accounts(&mut conn, "accounts", 0..rows).await;
    let committed = started.elapsed().as_secs_f64();
    wait_metric(
        port,
        "rowcast_items_written_total{op=\"put\",view=\"accounts\"}",
        rows as f64,
    )
    .await;
    let total = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    let sent = metric_sum(port, requests).await - requests_before;
    println!(
        "rowcast throughput ({mode} mode): {rows} rows committed in {committed:.2}s, all in DynamoDB after {total:.2}s = {:.0} rows/s ({:.0}% of the raw ceiling{}); rowcast CPU {:.1} µs per row; {sent:.0} write requests, {:.1} items each",
        rows as f64 / total,
        100.0 * (rows as f64 / total) / (rows as f64 / raw_secs),
        loader.map_or(String::new(), |rate| format!(", {:.2}× the 4-process loader", rows as f64 / total / rate)),
        cpu * 1e6 / rows as f64,
        rows as f64 / sent.max(1.0),
    );

    // 3. Commit-to-visible latency at a steady low rate (one row per commit, ~50 commits/s).
    let mut latencies = Vec::with_capacity(latency_rows);
    for n in 0..latency_rows {
        let id = rows + n;
        let tick = Instant::now();
        conn.query_drop(format!(
            "INSERT INTO accounts VALUES ({id}, 5, {id}, 'open')"
        ))
        .await
        .expect("insert");
        let committed_at = Instant::now();
        loop {
            let out = client
                .get_item()
                .table_name(&stream_table)
                .key("pk", AttributeValue::S("OWNER#5".into()))
                .key("sk", AttributeValue::S(format!("ACC#{id:08}")))
                .send()
                .await
                .expect("get");
            if out.item.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(committed_at.elapsed());
        if let Some(rest) = Duration::from_millis(20).checked_sub(tick.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    latencies.sort();
    println!(
        "commit-to-visible latency over {latency_rows} single-row commits: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().expect("some").as_secs_f64() * 1000.0
    );
    drop(_daemon);
    delayed(&mut conn, &db, rows, tag, &mode).await;
    joins(&mut conn, &client, &dir, tag).await;
    conn.query_drop(format!("DROP DATABASE {db}"))
        .await
        .expect("drop");
}

/// The user's alternative to a backfill (`benches/reference/bulk_loader.py`: 4 processes, boto3
/// BatchWriteItem of 25) on the rows of `preloaded`, into a table of its own; its rows/s.
async fn bulk_loader(
    client: &aws_sdk_dynamodb::Client,
    db: &str,
    rows: usize,
    tag: u32,
) -> Option<f64> {
    let Some(python) = support::script_python() else {
        println!(
            "4-process bulk loader: not run (could not install {:?} into target/bench-venv)",
            support::SCRIPT_PACKAGES
        );
        return None;
    };
    let table = format!("bench_loader_{tag}");
    support::create_pk_sk_table(client, &table, "create loader table").await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/reference/bulk_loader.py"
    );
    let out = std::process::Command::new(python)
        .args([
            script,
            "127.0.0.1",
            "3306",
            "rowcast",
            "rowcast",
            db,
            "preloaded",
        ])
        .args([&support::dynamodb_url(), &table])
        .output()
        .expect("loader");
    let text = String::from_utf8_lossy(&out.stdout);
    let Some((written, secs)) = text.split_once(' ').and_then(|(w, s)| {
        Some((
            w.trim().parse::<usize>().ok()?,
            s.trim().parse::<f64>().ok()?,
        ))
    }) else {
        println!(
            "4-process bulk loader: failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    };
    assert_eq!(written, rows, "the loader wrote every row");
    let rate = rows as f64 / secs;
    println!("4-process bulk loader (python, boto3 BatchWriteItem of 25): {rows} rows in {secs:.2}s = {rate:.0} rows/s");
    Some(rate)
}

/// Throughput with DynamoDB 10 ms away and in conditional mode (issue 13 goals 6 and 4): the
/// same `rows` committed as in part 2, straight to DynamoDB Local, through
/// [`support::delay_proxy`], and straight with `writer.mode = "conditional"`, each with a fresh
/// daemon, source table and view table, back to back.
async fn delayed(conn: &mut mysql_async::Conn, db: &str, rows: usize, tag: u32, mode: &str) {
    let target: std::net::SocketAddr = support::dynamodb_url()
        .trim_start_matches("http://")
        .parse()
        .expect("DynamoDB Local at an address");
    let mut rates = Vec::new();
    let runs = [(0u64, mode), (10, mode), (0, "conditional")];
    for (n, (delay_ms, mode)) in runs.into_iter().enumerate() {
        let name = format!("accounts_run{n}");
        conn.query_drop(format!("CREATE TABLE {name} LIKE accounts"))
            .await
            .expect("table");
        let dir = std::env::temp_dir().join(format!("rowcast-bench-{tag}-run{n}"));
        let table = format!("bench_run{n}_{tag}");
        support::write_accounts_view(&dir, &name, &table, &format!("{db}.{name}"), "OWNER", None);
        let endpoint = if delay_ms == 0 {
            support::dynamodb_url()
        } else {
            let port = support::delay_proxy(target, Duration::from_millis(delay_ms)).await;
            format!("http://127.0.0.1:{port}")
        };
        let (daemon, port, _) = support::start_daemon_at(
            &dir,
            30_000 + tag % 10_000 + n as u32,
            &format!(
                "lanes = {LANES}\nmode = \"{mode}\"\n{}",
                support::extra_writer()
            ),
            &endpoint,
            &support::control_table_checkpoint(&format!("bench_checkpoints_{tag}_run{n}")),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        wait_metric(port, "rowcast_cleanups_total", 1.0).await;
        let started = Instant::now();
        support::insert_accounts(conn, &name, 0..rows).await;
        let written = format!("rowcast_items_written_total{{op=\"put\",view=\"{name}\"}}");
        wait_metric(port, &written, rows as f64).await;
        let rate = rows as f64 / started.elapsed().as_secs_f64();
        println!("throughput ({mode} mode) with DynamoDB {delay_ms} ms away (each response held {delay_ms} ms by a proxy): {rows} rows = {rate:.0} rows/s");
        rates.push(rate);
        drop(daemon);
    }
    println!(
        "throughput 10 ms away / straight: {:.2}; conditional mode / {mode} mode: {:.2}",
        rates[1] / rates[0],
        rates[2] / rates[0]
    );
}

/// Write-back (part 5): UpdateItem → the MariaDB row, one at a time (latency) and many at
/// once (records/s).
async fn writeback(
    conn: &mut mysql_async::Conn,
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    port: u16,
) {
    let items = env_usize("ROWCAST_BENCH_WRITEBACK", 2_000);
    wait_metric(
        port,
        "rowcast_items_written_total{op=\"put\",view=\"notes\"}",
        items as f64,
    )
    .await;
    let update = |id: usize, note: String| {
        client
            .update_item()
            .table_name(table)
            .key("pk", AttributeValue::S(format!("NOTE#{id}")))
            .update_expression("SET note = :n")
            .expression_attribute_values(":n", AttributeValue::S(note))
            .send()
    };
    // One at a time, twice: each update sent right after the last one reached its row (so it
    // lands just after the consumer's read that found the last one: the worst moment), then each
    // after a pause of 0-250 ms (pseudo-random, fixed seed), as an application's updates come
    // at moments unrelated to the consumer's reads.
    let mut runs = Vec::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for unsynchronized in [false, true] {
        let mut latencies = Vec::new();
        for n in 0..100usize {
            if unsynchronized {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                tokio::time::sleep(Duration::from_millis(seed % 250)).await;
            }
            let id = 1 + n;
            let note = format!("single-{unsynchronized}-{n}");
            let sent = Instant::now();
            update(id, note.clone()).await.expect("update");
            loop {
                let found: Option<String> = conn
                    .exec_first("SELECT note FROM notes WHERE id = ?", (id,))
                    .await
                    .expect("select");
                if found.as_deref() == Some(note.as_str()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            latencies.push(sent.elapsed());
        }
        latencies.sort();
        runs.push(latencies);
    }
    let started = Instant::now();
    let mut pending = futures_util::stream::FuturesUnordered::new();
    for id in 1..=items {
        pending.push(update(id, "bulk".into()));
        if pending.len() >= LANES {
            use futures_util::StreamExt;
            pending.next().await.expect("some").expect("update");
        }
    }
    {
        use futures_util::StreamExt;
        while let Some(done) = pending.next().await {
            done.expect("update");
        }
    }
    let sent = started.elapsed().as_secs_f64();
    loop {
        let done: Option<u64> = conn
            .query_first("SELECT COUNT(*) FROM notes WHERE note = 'bulk'")
            .await
            .expect("count");
        if done == Some(items as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed().as_secs_f64();
    let ms = |run: &[Duration], p: f64| percentile(run, p).as_secs_f64() * 1000.0;
    println!(
        "write-back: UpdateItem to MariaDB row, 100 one at a time: sent right after the last was applied p50 {:.0} ms, p99 {:.0} ms; sent after a 0-250 ms pause p50 {:.0} ms, p99 {:.0} ms; {items} UpdateItems sent in {sent:.2}s, all in MariaDB after {total:.2}s = {:.0} records/s",
        ms(&runs[0], 0.5),
        ms(&runs[0], 0.99),
        ms(&runs[1], 0.5),
        ms(&runs[1], 0.99),
        items as f64 / total
    );
}

/// Waits until the metrics of `prefix` sum to `at_least`, reading them as [`METRICS_POLL_MAX`]
/// says; panics after [`WAIT_LIMIT`] (a phase that never ends, e.g. a cleanup that keeps
/// failing, stops the bench with its name instead of hanging it).
async fn wait_metric(port: u16, prefix: &str, at_least: f64) {
    let began = Instant::now();
    let mut seen = (Instant::now(), metric_sum(port, prefix).await);
    let mut pause = METRICS_POLL_MAX;
    while seen.1 < at_least {
        assert!(
            began.elapsed() < WAIT_LIMIT,
            "{prefix} summed to {} after {WAIT_LIMIT:?}, not {at_least}",
            seen.1
        );
        tokio::time::sleep(pause).await;
        let now = (Instant::now(), metric_sum(port, prefix).await);
        let rate = (now.1 - seen.1) / now.0.duration_since(seen.0).as_secs_f64();
        // Half the time left at that rate, within the bounds; no progress (or a failed read,
        // which sums to 0) reads again after the longest pause. Clamped before it is made a
        // `Duration`, which a negative or NaN number of seconds would panic.
        let left = (at_least - now.1) / rate / 2.0;
        pause = if rate > 0.0 && !left.is_nan() {
            let (min, max) = (
                METRICS_POLL_MIN.as_secs_f64(),
                METRICS_POLL_MAX.as_secs_f64(),
            );
            Duration::from_secs_f64(left.clamp(min, max))
        } else {
            METRICS_POLL_MAX
        };
        seen = now;
    }
}

/// Joins (part 4): a fan-out of 10,000 items from one customer rename (with the latency of an
/// unrelated change made during it), a stream of order-line changes into an embed + aggregates
/// view, and a burst on one hot order; SQL queries per change from rowcast's own counters.
async fn joins(
    conn: &mut mysql_async::Conn,
    client: &aws_sdk_dynamodb::Client,
    dir: &std::path::Path,
    tag: u32,
) {
    let fan_out = env_usize("ROWCAST_BENCH_FANOUT", 10_000);
    let line_changes = env_usize("ROWCAST_BENCH_LINE_CHANGES", 2_000);
    let db = format!("rc_bench_{tag}");
    for statement in [
        "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL)".to_string(),
        "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, status VARCHAR(10) NOT NULL, KEY (customer_id))".into(),
        "CREATE TABLE order_items (id INT PRIMARY KEY AUTO_INCREMENT, order_id INT NOT NULL, sku VARCHAR(10) NOT NULL, qty INT NOT NULL, price DECIMAL(10,2) NOT NULL, KEY (order_id))".into(),
        "CREATE TABLE pings (id INT PRIMARY KEY)".into(),
        "CREATE TABLE notes (id INT PRIMARY KEY, note VARCHAR(40) NOT NULL)".into(),
        format!("INSERT INTO notes SELECT seq, 'start' FROM seq_1_to_{}", env_usize("ROWCAST_BENCH_WRITEBACK", 2_000)),
        "INSERT INTO customers SELECT seq, CONCAT('customer ', seq) FROM seq_1_to_100".into(),
        format!("INSERT INTO orders SELECT seq, IF(seq <= {fan_out}, 1, 2 + seq % 99), 'open' FROM seq_1_to_{}", fan_out + 1000),
    ] {
        conn.query_drop(statement).await.expect("joins schema");
    }
    let jdir = dir.join("joins");
    std::fs::create_dir_all(jdir.join("views")).expect("dir");
    let table = format!("bench_joins_{tag}");
    std::fs::write(
        jdir.join("views/customer_orders.toml"),
        format!("name = \"customer_orders\"\ntable = \"{table}\"\nsource = \"{db}.orders\"\n[key]\npk = \"CUSTOMER#{{customer_id}}\"\nsk = \"ORDER#{{id:08}}\"\n[attributes]\nstatus = \"status\"\n[[lookup]]\nfrom = \"{db}.customers\"\non = {{ id = \"customer_id\" }}\nattributes = {{ customer_name = \"name\" }}\n"),
    )
    .expect("view");
    std::fs::write(
        jdir.join("views/order_summary.toml"),
        format!("name = \"order_summary\"\ntable = \"{table}\"\nsource = \"{db}.orders\"\n[key]\npk = \"ORDER#{{id}}\"\nsk = \"META\"\n[attributes]\nstatus = \"status\"\n[[embed]]\nattribute = \"lines\"\nfrom = \"{db}.order_items\"\non = {{ order_id = \"id\" }}\nattributes = {{ sku = \"sku\", qty = \"qty\" }}\n[[aggregate]]\nattribute = \"line_count\"\nfrom = \"{db}.order_items\"\non = {{ order_id = \"id\" }}\nfunction = \"count\"\n[[aggregate]]\nattribute = \"amount\"\nfrom = \"{db}.order_items\"\non = {{ order_id = \"id\" }}\nfunction = \"sum:price\"\n"),
    )
    .expect("view");
    std::fs::write(
        jdir.join("views/notes.toml"),
        format!("name = \"notes\"\ntable = \"{table}_wb\"\nsource = \"{db}.notes\"\n[key]\npk = \"NOTE#{{id}}\"\n[attributes]\nnote = \"note\"\n[writeback]\nenabled = true\nattributes = [\"note\"]\n"),
    )
    .expect("view");
    std::fs::write(
        jdir.join("views/pings.toml"),
        format!("name = \"pings\"\ntable = \"{table}\"\nsource = \"{db}.pings\"\n[key]\npk = \"PING#{{id}}\"\nsk = \"PING\"\n"),
    )
    .expect("view");
    let (daemon, port, _) = start_daemon(
        &jdir,
        30_000 + tag % 10_000,
        &format!("lanes = {LANES}\n{}", support::extra_writer()),
    )
    .await;
    let pid = daemon.0.id();
    let orders = (fan_out + 1000) as f64;
    wait_metric(
        port,
        "rowcast_items_written_total{op=\"put\",view=\"order_summary\"}",
        orders,
    )
    .await;
    wait_metric(
        port,
        "rowcast_items_written_total{op=\"put\",view=\"customer_orders\"}",
        orders,
    )
    .await;
    let rss_before = peak_rss_mb(pid);

    // Fan-out: one rename, `fan_out` items to rewrite; a ping committed right after it.
    let puts = "rowcast_items_written_total{op=\"put\",view=\"customer_orders\"}";
    let before = metric_sum(port, puts).await;
    let queries_before = metric_sum(port, "rowcast_join_queries_total").await;
    let started = Instant::now();
    conn.query_drop("UPDATE customers SET name = 'renamed' WHERE id = 1")
        .await
        .expect("rename");
    conn.query_drop("INSERT INTO pings VALUES (1)")
        .await
        .expect("ping");
    let pinged = Instant::now();
    let mut ping_visible = None;
    loop {
        if ping_visible.is_none() {
            let out = client
                .get_item()
                .table_name(&table)
                .key("pk", AttributeValue::S("PING#1".into()))
                .key("sk", AttributeValue::S("PING".into()))
                .send()
                .await
                .expect("get");
            if out.item.is_some() {
                ping_visible = Some(pinged.elapsed());
            }
        }
        if metric_sum(port, puts).await >= before + fan_out as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let fan_secs = started.elapsed().as_secs_f64();
    let queries = metric_sum(port, "rowcast_join_queries_total").await - queries_before;
    println!(
        "join fan-out: 1 customer rename -> {fan_out} items rewritten in {fan_secs:.2}s = {:.0} items/s, {queries:.0} SQL queries; an unrelated change committed meanwhile was visible after {:.0} ms; peak RSS {rss_before:.0} -> {:.0} MB",
        fan_out as f64 / fan_secs,
        ping_visible.unwrap_or_default().as_secs_f64() * 1000.0,
        peak_rss_mb(pid)
    );

    // Line changes: one line added per transaction, to random orders.
    let summary_puts = "rowcast_items_written_total{op=\"put\",view=\"order_summary\"}";
    let before = metric_sum(port, summary_puts).await;
    let queries_before = metric_sum(port, "rowcast_join_queries_total").await;
    let marks_before = metric_sum(port, "rowcast_join_marks_total").await;
    let started = Instant::now();
    let mut next = 0x2545_f491u64;
    let mut touched = std::collections::HashSet::new();
    for _ in 0..line_changes {
        next ^= next << 13;
        next ^= next >> 7;
        next ^= next << 17;
        let order = 1 + next % (fan_out as u64 + 1000);
        touched.insert(order);
        conn.query_drop(format!(
            "INSERT INTO order_items (order_id, sku, qty, price) VALUES ({order}, 'sku', 1, 9.99)"
        ))
        .await
        .expect("line");
    }
    let committed = started.elapsed().as_secs_f64();
    // Every changed order is written at least once more.
    wait_metric(port, summary_puts, before + touched.len() as f64).await;
    let total = started.elapsed().as_secs_f64();
    let queries = metric_sum(port, "rowcast_join_queries_total").await - queries_before;
    let marks = metric_sum(port, "rowcast_join_marks_total").await - marks_before;
    let written = metric_sum(port, summary_puts).await - before;
    println!(
        "join line changes: {line_changes} one-row transactions committed in {committed:.2}s, views settled after {total:.2}s = {:.0} changes/s; {written:.0} order items written; {:.2} SQL queries per change ({marks:.0} marks)",
        line_changes as f64 / total,
        queries / line_changes as f64
    );

    // A burst on one hot order: many transactions, far fewer writes of its item.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = metric_sum(port, summary_puts).await;
    let burst = 500;
    let started = Instant::now();
    for _ in 0..burst {
        conn.query_drop(
            "INSERT INTO order_items (order_id, sku, qty, price) VALUES (7, 'hot', 1, 1.00)",
        )
        .await
        .expect("hot");
    }
    let committed = started.elapsed().as_secs_f64();
    let lines: Vec<u64> = conn
        .query("SELECT COUNT(*) FROM order_items WHERE order_id = 7")
        .await
        .expect("count");
    loop {
        let out = client
            .get_item()
            .table_name(&table)
            .key("pk", AttributeValue::S("ORDER#7".into()))
            .key("sk", AttributeValue::S("META".into()))
            .send()
            .await
            .expect("get");
        let count = out
            .item
            .and_then(|i| i.get("line_count").and_then(|v| v.as_n().ok().cloned()));
        if count.as_deref() == Some(lines[0].to_string().as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let written = metric_sum(port, summary_puts).await - before;
    println!("join hot order: {burst} one-line transactions on one order in {committed:.2}s -> its item written {written:.0} times, final state visible {:.0} ms after the last commit", (started.elapsed().as_secs_f64() - committed) * 1000.0);
    // Commit-to-visible through a join: one line per commit, until the order's count shows it.
    let mut latencies = Vec::new();
    for _ in 0..100 {
        conn.query_drop(
            "INSERT INTO order_items (order_id, sku, qty, price) VALUES (8, 'lat', 1, 1.00)",
        )
        .await
        .expect("line");
        let committed = Instant::now();
        let lines: Vec<u64> = conn
            .query("SELECT COUNT(*) FROM order_items WHERE order_id = 8")
            .await
            .expect("count");
        let want = lines[0].to_string();
        loop {
            let out = client
                .get_item()
                .table_name(&table)
                .key("pk", AttributeValue::S("ORDER#8".into()))
                .key("sk", AttributeValue::S("META".into()))
                .send()
                .await
                .expect("get");
            let count = out
                .item
                .and_then(|i| i.get("line_count").and_then(|v| v.as_n().ok().cloned()));
            if count.as_deref() == Some(want.as_str()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(committed.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    println!(
        "join commit-to-visible (a line added, its order's embed and count rewritten), 100 commits: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
    writeback(conn, client, &format!("{table}_wb"), port).await;
    drop(daemon);
}
