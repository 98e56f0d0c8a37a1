//! A column dropped during a backfill, seen first by a snapshot read. In a test binary of its
//! own: cargo runs test binaries one after the other, and any DDL another test writes into the
//! shared binlog meanwhile would make the snapshot worker read every schema again and close the
//! window this test needs.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{eventually, metric, Env};
use serde_json::json;

/// A column dropped during a backfill, seen first by a snapshot read (the reader is held before
/// it passes the DDL on): the read fails on the unknown column, the table is read again and the
/// read retried, and the backfill completes instead of stopping for good.
#[tokio::test(flavor = "multi_thread")]
async fn a_column_dropped_during_a_backfill_is_read_again() {
    let env = Env::new("ddlbackfill").await;
    let table = env.table("views");
    env.sql("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, spare INT)")
        .await;
    // Enough rows, written slowly enough (each lane's window held 200 ms below), that the
    // backfill is still running when the DROP comes and for the 4 s the reader holds it back:
    // at most 8 lanes × 100 items per 200 ms, so 60,000 rows take at least 15 s. Without the
    // hold, a daemon on one worker thread finished 60,000 rows before the DROP.
    let rows = 60_000;
    env.sql(&format!(
        "INSERT INTO items SELECT seq, CONCAT('n', seq), seq FROM seq_1_to_{rows}"
    ))
    .await;
    env.write_view(
        "items.toml",
        &"name = \"items\"\ntable = \"TABLE\"\nsource = \"{DB}.items\"\n[key]\npk = \"I#{id}\"\n[attributes]\nname = \"name\"\n"
            .replace("TABLE", &table),
    );
    env.write_config("[backfill]\nchunk_rows = 50\n");
    env.create_tables();
    // Every DDL: other tests running at the same time write DDL into the same binlog.
    let daemon = env.spawn_with(&[(
        "ROWCAST_FAILPOINTS",
        "source.before_ddl=sleep4000@*,lane.before_write=sleep200@*",
    )]);
    daemon.wait_until(|status, _| status == 200).await;
    // The backfill has read rows (with the schema it cached, `spare` in it) before the DROP:
    // healthy alone did not say so, and a backfill that first read the table after the DROP
    // never saw the column go (seen twice on a loaded machine).
    eventually(
        "the backfill to copy rows",
        Duration::from_secs(60),
        || async {
            metric(
                &daemon.get("/metrics").await.1,
                "rowcast_backfill_rows_total",
            ) > 0.0
        },
    )
    .await;
    env.sql("ALTER TABLE items DROP COLUMN spare").await;
    let expected = (1..=rows)
        .map(|id| json!({"pk": format!("I#{id}"), "name": format!("n{id}")}))
        .collect();
    env.converge(&table, expected, Duration::from_secs(180))
        .await;
    let log = std::fs::read_to_string(env.dir.join("rowcast.log")).unwrap();
    assert!(
        log.contains("changed under a snapshot read"),
        "no snapshot read saw the column go: the test proves nothing"
    );
    assert!(daemon.terminate().success());
}
