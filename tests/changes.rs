//! Row changes reach the views: inserts, updates, deletes, key moves, filter exits, multi-row and
//! multi-table transactions, rollbacks, NULL keys, dead letters, and the metrics they raise.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{eventually, metric, Env};
use serde_json::{json, Value};

const ORDERS_VIEW: &str = r#"
name = "orders"
table = "TABLE"
source = "{DB}.orders"
filter = "status <> 'cancelled'"

[key]
pk = "CUSTOMER#{customer_id}"
sk = "ORDER#{id:06}"

[attributes]
status = "status"
total = "total"
note = { column = "note", as = "string" }
"#;

const CUSTOMERS_VIEW: &str = r#"
name = "customers"
table = "TABLE"
source = "{DB}.customers"

[key]
pk = "CUSTOMER#{id}"
sk = "PROFILE"
"#;

/// id, customer_id, status, total, note
type OrderRow = (i64, Option<i64>, String, String, Option<String>);

/// The orders view evaluated independently over the source table.
async fn expected_orders(env: &Env) -> Vec<Value> {
    let rows: Vec<OrderRow> = env
        .query("SELECT id, customer_id, status, CAST(total AS CHAR), note FROM orders")
        .await;
    rows.into_iter()
        .filter(|(_, customer, status, _, _)| customer.is_some() && status != "cancelled")
        .map(|(id, customer, status, total, note)| {
            let mut item = json!({
                "pk": format!("CUSTOMER#{}", customer.unwrap()),
                "sk": format!("ORDER#{id:06}"),
                "status": status,
                "total": common::dec(&total),
            });
            if let Some(note) = note {
                item["note"] = json!(note);
            }
            item
        })
        .collect()
}

async fn expected_customers(env: &Env) -> Vec<Value> {
    let rows: Vec<(i64, String)> = env.query("SELECT id, name FROM customers").await;
    rows.into_iter().map(|(id, name)| json!({"pk": format!("CUSTOMER#{id}"), "sk": "PROFILE", "id": id, "name": name})).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_reach_the_views() {
    let env = Env::new("changes").await;
    let table = env.table("views");
    env.sql(
        "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NULL, status VARCHAR(20) NOT NULL, total DECIMAL(10,2) NOT NULL, note VARCHAR(50) NULL);
         CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL);
         CREATE TABLE unrelated (id INT PRIMARY KEY);",
    )
    .await;
    env.write_view("orders.toml", &ORDERS_VIEW.replace("TABLE", &table));
    env.write_view("customers.toml", &CUSTOMERS_VIEW.replace("TABLE", &table));
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;

    // Inserts, one per transaction and several per transaction; an unrelated table.
    env.sql("INSERT INTO orders VALUES (1, 10, 'placed', 12.50, NULL)")
        .await;
    env.sql("INSERT INTO orders VALUES (2, 10, 'placed', 3.00, 'gift'), (3, 11, 'paid', 99.99, ''), (4, NULL, 'placed', 1.00, NULL)").await;
    env.sql("INSERT INTO unrelated VALUES (1)").await;
    env.sql("INSERT INTO customers VALUES (10, 'Ada'), (11, 'Alan')")
        .await;
    let mut expected = expected_orders(&env).await;
    expected.extend(expected_customers(&env).await);
    assert_eq!(expected.len(), 5, "order 4 has a NULL key column: no item");
    env.converge(&table, expected, Duration::from_secs(20))
        .await;

    // Update in place, key move, filter exit, filter re-entry, delete.
    env.sql("UPDATE orders SET status = 'paid', total = 13.75 WHERE id = 1")
        .await;
    env.sql("UPDATE orders SET customer_id = 11 WHERE id = 2")
        .await;
    env.sql("UPDATE orders SET status = 'cancelled' WHERE id = 3")
        .await;
    env.sql("UPDATE orders SET customer_id = 12 WHERE id = 4")
        .await;
    env.sql("DELETE FROM customers WHERE id = 10").await;
    // A multi-table transaction, with the same row changed several times.
    env.sql(
        "START TRANSACTION;
         INSERT INTO orders VALUES (5, 12, 'placed', 5.00, NULL);
         UPDATE orders SET status = 'paid' WHERE id = 5;
         UPDATE orders SET total = 6.00 WHERE id = 5;
         INSERT INTO customers VALUES (12, 'Grace');
         UPDATE customers SET name = 'Alan T.' WHERE id = 11;
         COMMIT;",
    )
    .await;
    // A rolled-back transaction changes nothing.
    env.sql("START TRANSACTION; INSERT INTO orders VALUES (6, 10, 'placed', 1.00, NULL); UPDATE orders SET status='x' WHERE id = 1; ROLLBACK;").await;
    env.sql("UPDATE orders SET status = 'placed' WHERE id = 3")
        .await;
    env.sql("UPDATE orders SET status = 'cancelled' WHERE id = 3")
        .await;
    let mut expected = expected_orders(&env).await;
    expected.extend(expected_customers(&env).await);
    env.converge(&table, expected, Duration::from_secs(20))
        .await;
    let items = env.items(&table).await;
    assert!(
        !items.iter().any(|i| i["sk"] == "ORDER#000006"),
        "rolled back"
    );
    assert!(
        items
            .iter()
            .any(|i| i["sk"] == "ORDER#000002" && i["pk"] == "CUSTOMER#11"),
        "moved"
    );

    // Versions come from the transaction counter: later transactions have larger versions.
    let raw = env.scan(&table).await;
    let version = |sk: &str| {
        raw.iter()
            .find(|i| i["sk"] == sk)
            .map(|i| i["_version"].to_string().parse::<u128>().unwrap())
            .unwrap()
    };
    assert!(version("ORDER#000005") > version("ORDER#000001"));

    let (status, metrics) = daemon.get("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "rowcast_rows_total{op=\"insert\",view=\"orders\"}",
        "rowcast_rows_total{op=\"update\",view=\"orders\"}",
        "rowcast_rows_total{op=\"delete\",view=\"customers\"}",
        "rowcast_items_written_total{op=\"put\",view=\"orders\"}",
        "rowcast_items_written_total{op=\"delete\",view=\"orders\"}",
        "rowcast_null_key_rows_total{view=\"orders\"} 1",
        "rowcast_replication_lag_seconds",
        "rowcast_batch_write_duration_seconds_bucket",
        "rowcast_checkpoint_age_seconds",
        "rowcast_queue_depth",
        "rowcast_binlog_events_total{type=\"xid\"}",
    ] {
        assert!(
            metrics.contains(name),
            "metric {name} missing from:\n{metrics}"
        );
    }
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.starts_with("rowcast_") || line.starts_with("process_"),
            "unexpected metric {line}"
        );
    }
    assert_eq!(daemon.get("/healthz").await.0, 200);
    let status = daemon.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rows_go_to_dead_letters_and_the_rest_flows() {
    let env = Env::new("deadletters").await;
    let table = env.table("views");
    env.sql("CREATE TABLE docs (id INT PRIMARY KEY, k VARCHAR(20) NOT NULL, body LONGTEXT NOT NULL, amount DOUBLE NULL)").await;
    env.write_view(
        "docs.toml",
        &r#"
name = "docs"
table = "TABLE"
source = "{DB}.docs"
[key]
pk = "{k}"
sk = "DOC#{id}"
"#
        .replace("TABLE", &table),
    );
    env.write_config("[dead_letter]\npath = \"dead.jsonl\"\n");
    env.create_tables();
    let daemon = env.start().await;
    let big = "x".repeat(500 * 1024);
    env.sql(&format!(
        "INSERT INTO docs VALUES (1, 'a', 'small', 1.5);
         INSERT INTO docs VALUES (2, '', 'empty key', NULL);
         INSERT INTO docs VALUES (3, 'b', '{big}', NULL);
         INSERT INTO docs VALUES (4, 'c', 'out of range', 1e300);
         INSERT INTO docs VALUES (5, 'd', 'after', NULL);"
    ))
    .await;
    let expected = vec![
        json!({"pk": "a", "sk": "DOC#1", "id": 1, "k": "a", "body": "small", "amount": 1.5}),
        json!({"pk": "d", "sk": "DOC#5", "id": 5, "k": "d", "body": "after"}),
    ];
    env.converge(&table, expected, Duration::from_secs(20))
        .await;
    let dead_path = env.dir.join("dead.jsonl");
    eventually("three dead letters", Duration::from_secs(10), || async {
        std::fs::read_to_string(&dead_path)
            .map(|t| t.lines().count() == 3)
            .unwrap_or(false)
    })
    .await;
    let letters: Vec<Value> = std::fs::read_to_string(&dead_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<&str> = letters
        .iter()
        .map(|l| l["reason_kind"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"bad_key"), "{letters:#?}");
    assert!(reasons.contains(&"too_large"), "{letters:#?}");
    assert!(reasons.contains(&"bad_value"), "{letters:#?}");
    for letter in &letters {
        assert_eq!(letter["view"], "docs");
        assert!(
            letter["position"]["file"]
                .as_str()
                .unwrap()
                .starts_with("binlog."),
            "{letter}"
        );
        assert!(letter["position"]["pos"].as_u64().unwrap() > 4);
    }
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(
        metrics.contains("rowcast_dead_letters_total{reason=\"too_large\",view=\"docs\"} 1"),
        "{metrics}"
    );
    assert!(daemon.terminate().success());
}

/// A table `name (id, payload KIND)`, a view of it with `attributes`, and a daemon whose lanes
/// hold each window `hold_ms` before they write it (a slow DynamoDB).
async fn slow_lanes(
    env: &Env,
    name: &str,
    kind: &str,
    attributes: &str,
    hold_ms: u64,
) -> common::Daemon {
    env.sql(&format!(
        "CREATE TABLE {name} (id INT PRIMARY KEY, payload {kind} NOT NULL)"
    ))
    .await;
    env.write_view(
        &format!("{name}.toml"),
        &format!(
            "name = \"{name}\"\ntable = \"{}\"\nsource = \"{{DB}}.{name}\"\n[key]\npk = \"R#{{id}}\"\n[attributes]\n{attributes}\n",
            env.table("views")
        ),
    );
    env.write_config("");
    env.create_tables();
    let failpoint = format!("lane.before_write=sleep{hold_ms}@*");
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", &failpoint)]);
    daemon.wait_ready().await;
    daemon
}

/// Waits until `rows` puts of `view` are written.
async fn all_written(daemon: &common::Daemon, view: &str, rows: usize) {
    let written = format!("rowcast_items_written_total{{op=\"put\",view=\"{view}\"}} {rows}");
    common::eventually("all rows in DynamoDB", Duration::from_secs(300), || async {
        daemon.get("/metrics").await.1.contains(&written)
    })
    .await;
}

/// A transaction of many rows streams through: peak memory stays far below what buffering the
/// transaction would take, and every row arrives.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_transaction_streams_with_bounded_memory() {
    let env = Env::new("bigtxn").await;
    let table = env.table("views");
    env.sql("CREATE TABLE big (id INT PRIMARY KEY, payload VARCHAR(2000) NOT NULL)")
        .await;
    env.write_view(
        "big.toml",
        &"name = \"big\"\ntable = \"TABLE\"\nsource = \"{DB}.big\"\n[key]\npk = \"B#{id}\"\n[attributes]\nn = \"id\"\n".replace("TABLE", &table),
    );
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;
    let baseline = daemon.peak_rss_kib();
    // 20,000 rows of ~2 KB in one transaction: ~40 MB of row images in the binlog.
    let rows = 20_000;
    env.sql(&format!(
        "INSERT INTO big SELECT seq, REPEAT('x', 2000) FROM seq_1_to_{rows}"
    ))
    .await;
    all_written(&daemon, "big", rows).await;
    // Buffering the transaction's row images alone would take ~40 MB more than the start.
    daemon.assert_grew_less_than(baseline, 30, &format!("a {rows}-row transaction"));
    assert_eq!(env.items(&table).await.len(), rows);
    assert!(daemon.terminate().success());
}

/// The same with wide items and a slow DynamoDB (each window held 50 ms): the queues between
/// the stages fill, and what they hold is bounded in bytes, not only in items. Before
/// 2026-12-07 only items were counted (1,024 per lane channel, 8 lanes, and 1,024 rows from
/// the reader): 8,000 rows of 20 KB piled up whole in the lanes, about 200 MB (found by a
/// review: a container limit of 256 MiB killed the daemon mid-transaction, again at every
/// restart).
#[tokio::test(flavor = "multi_thread")]
async fn a_large_transaction_of_wide_rows_streams_with_bounded_memory() {
    let env = Env::new("bigwide").await;
    let daemon = slow_lanes(&env, "wide", "MEDIUMTEXT", "body = \"payload\"", 50).await;
    let baseline = daemon.peak_rss_kib();
    // 8,000 rows of 20 KB in one transaction: 160 MB of items.
    let rows = 8_000;
    env.sql(&format!(
        "INSERT INTO wide SELECT seq, REPEAT('x', 20000) FROM seq_1_to_{rows}"
    ))
    .await;
    all_written(&daemon, "wide", rows).await;
    daemon.assert_grew_less_than(
        baseline,
        100,
        &format!("a {rows}-row transaction of 20 KB rows"),
    );
    assert!(daemon.terminate().success());
}

/// One transaction of many rows, written slowly (each window held 300 ms): while it is read and
/// written, the replication lag rises, counted from when the reader began it, and so does the
/// checkpoint's age. Before 2026-12-07 both read 0 until its commit was read, at its end: a
/// transaction of millions of rows kept every lag alert quiet for its whole length (found by a
/// review).
#[tokio::test(flavor = "multi_thread")]
async fn the_lag_rises_while_a_long_transaction_is_written() {
    let env = Env::new("biglag").await;
    let daemon = slow_lanes(&env, "big", "VARCHAR(20)", "n = \"id\"", 300).await;
    let rows = 50_000;
    env.sql(&format!(
        "INSERT INTO big SELECT seq, 'x' FROM seq_1_to_{rows}"
    ))
    .await;
    // The highest lag and checkpoint age seen while at most half the rows are written (the
    // commit is read only once most rows are through the reader: from then on the lag counts
    // from the transaction before, with the code before too).
    let (lag, age) = (std::cell::Cell::new(0.0f64), std::cell::Cell::new(0.0f64));
    let written = "rowcast_items_written_total{op=\"put\",view=\"big\"}";
    eventually(
        "half the rows written",
        Duration::from_secs(300),
        || async {
            let (_, text) = daemon.get("/metrics").await;
            let half = metric(&text, written) >= f64::from(rows / 2);
            if !half {
                lag.set(
                    lag.get()
                        .max(metric(&text, "rowcast_replication_lag_seconds ")),
                );
                age.set(
                    age.get()
                        .max(metric(&text, "rowcast_checkpoint_age_seconds ")),
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            half
        },
    )
    .await;
    let (lag, age) = (lag.get(), age.get());
    assert!(
        lag >= 4.0,
        "the lag rose to {lag} s at most while the transaction was written"
    );
    assert!(age >= 4.0, "the checkpoint's age rose to {age} s at most");
    assert!(daemon.terminate().success());
}

/// A dead-letter file that cannot be written (its directory is a regular file here; a full or
/// read-only volume in production): the letter is logged and counted as unstored, and the
/// lane goes on. On the code before, the lane retried the file for ever, so its items and
/// every view's checkpoint stopped (found by a review).
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_file_that_cannot_be_written_does_not_wedge_the_lanes() {
    let env = Env::new("deadunwritable").await;
    let table = env.table("views");
    env.sql("CREATE TABLE docs (id INT PRIMARY KEY, k VARCHAR(20) NOT NULL)")
        .await;
    env.write_view(
        "docs.toml",
        &"name = \"docs\"\ntable = \"TABLE\"\nsource = \"{DB}.docs\"\n[key]\npk = \"{k}\"\nsk = \"DOC#{id}\"\n"
            .replace("TABLE", &table),
    );
    std::fs::write(env.dir.join("blocker"), "a file, not a directory").unwrap();
    env.write_config("[dead_letter]\npath = \"blocker/dead.jsonl\"\n");
    env.create_tables();
    let daemon = env.start().await;
    // An empty key: a dead letter, in whichever lane; then rows in every lane.
    env.sql("INSERT INTO docs VALUES (1, '')").await;
    let values: Vec<String> = (2..=60).map(|id| format!("({id}, 'k{id}')")).collect();
    env.sql(&format!("INSERT INTO docs VALUES {}", values.join(", ")))
        .await;
    let expected: Vec<Value> = (2..=60)
        .map(|id| json!({"pk": format!("k{id}"), "sk": format!("DOC#{id}"), "id": id, "k": format!("k{id}")}))
        .collect();
    env.converge(&table, expected, Duration::from_secs(30))
        .await;
    eventually(
        "the letter counted as unstored",
        Duration::from_secs(30),
        || async {
            let (_, metrics) = daemon.get("/metrics").await;
            metric(
                &metrics,
                "rowcast_dead_letters_unstored_total{view=\"docs\"}",
            ) == 1.0
        },
    )
    .await;
    assert!(daemon.terminate().success());
}
