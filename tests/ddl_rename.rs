//! A table renamed away while its view is backfilled. In a test binary of its own, as
//! `tests/ddl_backfill.rs`: its DDL, read by a daemon of another test running at the same time,
//! would make that daemon's snapshot worker read every schema again.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{eventually, metric, Env};
use serde_json::json;

/// A table renamed away while its view is backfilled: that view's backfill stops (the table
/// cannot be read) and halts the view, while the backfill of another table's view goes on; the
/// table renamed back is backfilled again, which lifts the halt. On the code before: the failed
/// read stopped every view's backfill for the life of the process, so the other view was never
/// filled, and the table back was never backfilled.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_renamed_away_during_its_backfill_stops_only_its_views() {
    let env = Env::new("ddlrename").await;
    let table = env.table("views");
    env.sql("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL); CREATE TABLE others (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)")
        .await;
    env.sql("INSERT INTO items SELECT seq, CONCAT('n', seq) FROM seq_1_to_5000; INSERT INTO others VALUES (1, 'one'), (2, 'two')")
        .await;
    // Groups go in file order: `a_items` first.
    for (file, name, source, prefix) in [
        ("a_items.toml", "a_items", "items", "I"),
        ("b_others.toml", "b_others", "others", "O"),
    ] {
        env.write_view(
            file,
            &format!("name = \"{name}\"\ntable = \"{table}\"\nsource = \"{{DB}}.{source}\"\n[key]\npk = \"{prefix}#{{id}}\"\n[attributes]\nname = \"name\"\n"),
        );
    }
    env.write_config("[backfill]\nchunk_rows = 50\n");
    env.create_tables();
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "lane.before_write=sleep200@*")]);
    daemon.wait_until(|status, _| status == 200).await;
    let metrics = || async { daemon.get("/metrics").await.1 };
    eventually(
        "the backfill to copy rows",
        Duration::from_secs(60),
        || async { metric(&metrics().await, "rowcast_backfill_rows_total") > 0.0 },
    )
    .await;
    env.sql("RENAME TABLE items TO items_away").await;
    eventually(
        "the other table's view to be filled",
        Duration::from_secs(60),
        || async {
            let items = env.items(&table).await;
            ["O#1", "O#2"].iter().all(|pk| {
                items.contains(&json!({"pk": pk, "name": if *pk == "O#1" { "one" } else { "two" }}))
            })
        },
    )
    .await;
    env.sql("RENAME TABLE items_away TO items").await;
    eventually(
        "the renamed view's halt to be lifted",
        Duration::from_secs(60),
        || async { metric(&metrics().await, "rowcast_view_halted{view=\"a_items\"}") == 0.0 },
    )
    .await;
    // Backfilled again: every row of both tables has its item.
    let mut expected: Vec<serde_json::Value> = (1..=5000)
        .map(|id| json!({"pk": format!("I#{id}"), "name": format!("n{id}")}))
        .collect();
    expected.push(json!({"pk": "O#1", "name": "one"}));
    expected.push(json!({"pk": "O#2", "name": "two"}));
    env.converge(&table, expected, Duration::from_secs(120))
        .await;
    assert!(daemon.terminate().success());
}
