//! The failure edges of binlog → DynamoDB (issue 10), against MariaDB and DynamoDB Local: a
//! huge bad value is a short dead letter and the rest flows; a view's table deleted and created
//! again mid-stream holds the writes instead of losing them; DML the binlog carries as a
//! statement or as partial row images halts the table's views (never silently ignored, never a
//! crash loop) while the other views flow, and holds their progress; an idle binlog rotation is
//! checkpointed.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::app::dead_letters;
use common::{eventually, http_post, metric, Env};
use serde_json::{json, Value};

const NOTES: &str = r#"
name = "notes"
table = "TABLE"
source = "{DB}.notes"
[key]
pk = "NOTE#{id}"
[attributes]
body = "body"
amount = { column = "amount", as = "number" }
"#;

async fn notes(name: &str, extra: &str) -> (Env, String) {
    notes_in(Env::new(name).await, extra).await
}

/// [`notes`] in `env` (one made by [`Env::alone`] for a test that prepares XA transactions).
async fn notes_in(env: Env, extra: &str) -> (Env, String) {
    let table = env.table("views");
    env.sql(
        "CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(40) NOT NULL, amount LONGTEXT NULL)",
    )
    .await;
    env.write_view("notes.toml", &NOTES.replace("TABLE", &table));
    env.write_config(extra);
    env.create_tables();
    (env, table)
}

/// The checkpoint of a `[checkpoint] path = "checkpoint.json"` config, as saved last (`None`
/// before the first save, or while it is being written).
fn saved_checkpoint(env: &Env) -> Option<Value> {
    let text = std::fs::read_to_string(env.dir.join("checkpoint.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Waits for the cleanup of a new view's first pass (see `snapshot::driver`) and for a
/// checkpoint that says so (a barrier after it: a binlog rotation, then a few saves): until
/// then, a pass restarted without a cleanup of its own carries that one.
async fn first_cleanup_done(env: &Env, daemon: &common::Daemon) {
    daemon.cleanups_done(1).await;
    env.sql("FLUSH BINARY LOGS").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

/// `rowcast_view_halted` of `view`: 1 while it is halted.
async fn halted(daemon: &common::Daemon, view: &str) -> f64 {
    let (_, metrics) = daemon.get("/metrics").await;
    metric(&metrics, &format!("rowcast_view_halted{{view=\"{view}\"}}"))
}

/// Waits until `view`'s halt gauge reads `value` (1: halted, 0: lifted).
async fn halt_reads(daemon: &common::Daemon, view: &str, value: f64) {
    eventually(
        &format!("{view}'s halt gauge at {value}"),
        Duration::from_secs(30),
        || async { halted(daemon, view).await == value },
    )
    .await;
}

async fn expected_notes(env: &Env) -> Vec<Value> {
    let rows: Vec<(i64, String, Option<String>)> =
        env.query("SELECT id, body, amount FROM notes").await;
    rows.into_iter()
        .filter(|(_, _, amount)| amount.as_deref().is_none_or(|a| a.parse::<f64>().is_ok()))
        .map(|(id, body, amount)| {
            let mut item = json!({"pk": format!("NOTE#{id}"), "body": body});
            if let Some(amount) = amount {
                item["amount"] = serde_json::from_str(&amount).unwrap();
            }
            item
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_bad_value_is_a_short_dead_letter_and_the_rest_flows() {
    // Dead letters in the control table (the default): a record must fit in an item.
    let (env, table) = notes("edgehugeletter", "").await;
    let daemon = env.start().await;
    let huge = "x".repeat(500 * 1024);
    env.sql(&format!(
        "INSERT INTO notes VALUES (1, 'before', '1.5'); INSERT INTO notes VALUES (2, 'bad', '{huge}'); INSERT INTO notes VALUES (3, 'after', '7')"
    ))
    .await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    // The bad row's lane may store its letter after the other lane wrote row 3's item.
    eventually(
        "the dead letter counted",
        Duration::from_secs(30),
        || async {
            let (_, metrics) = daemon.get("/metrics").await;
            metric(&metrics, "rowcast_dead_letters_total{reason=\"bad_value\"") >= 1.0
        },
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "rowcast_dead_letters_total{reason=\"bad_value\""),
        1.0,
        "{metrics}"
    );
    let control = env.table("control");
    let scan = env.ddb.scan().table_name(&control).send().await.unwrap();
    let letter = scan
        .items()
        .iter()
        .find(|i| i["pk"].as_s().unwrap().starts_with("deadletter#"))
        .expect("the dead letter is stored");
    let record: Value = serde_json::from_str(letter["record"].as_s().unwrap()).unwrap();
    let reason = record["reason"].as_str().unwrap();
    assert!(reason.len() < 1024, "reason of {} bytes", reason.len());
    assert!(reason.contains("512000"), "the length is kept: {reason}");
    assert!(daemon.terminate().success());
}

/// Changes of one item gathered in one lane window (written while an earlier write of the item
/// is in flight) keep only the last; when that last is an item over 400 KB, a dead letter, the
/// change before it is still written: row 1 deleted and inserted again too large ends with no
/// item, row 2 updated and then grown too large keeps its update. On the code before: the
/// oversized put replaced them in the window and was dead-lettered, so item 1 stayed (a ghost
/// of the deleted row) and item 2 lost its update. Writes are held 1.5 s (failpoint) so that
/// the window gathers.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn a_change_before_an_oversized_item_in_one_window_is_still_written() {
    let env = Env::new("edgebigwindow").await;
    let table = env.table("docs");
    env.sql("CREATE TABLE docs (id INT PRIMARY KEY, body LONGTEXT NOT NULL)")
        .await;
    env.write_view(
        "docs.toml",
        &format!("name = \"docs\"\ntable = \"{table}\"\nsource = \"{{DB}}.docs\"\n[key]\npk = \"DOC#{{id}}\"\n[attributes]\nbody = \"body\"\n"),
    );
    env.write_config("[dead_letter]\npath = \"dead.jsonl\"\n");
    env.create_tables();
    env.sql("INSERT INTO docs VALUES (1, 'one'), (2, 'two')")
        .await;
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "lane.before_write=sleep1500@*")]);
    daemon.wait_ready().await;
    let docs = |rows: &[(i64, &str)]| -> Vec<Value> {
        rows.iter()
            .map(|(id, body)| json!({"pk": format!("DOC#{id}"), "body": body}))
            .collect()
    };
    env.converge(
        &table,
        docs(&[(1, "one"), (2, "two")]),
        Duration::from_secs(60),
    )
    .await;
    // Writes of both items in flight (held), then one transaction whose changes of them gather
    // in the next windows.
    env.sql("UPDATE docs SET body = 'held' WHERE id IN (1, 2)")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.sql(
        "BEGIN; DELETE FROM docs WHERE id = 1; INSERT INTO docs VALUES (1, REPEAT('x', 500000)); \
         UPDATE docs SET body = 'dos' WHERE id = 2; UPDATE docs SET body = REPEAT('y', 500000) WHERE id = 2; COMMIT",
    )
    .await;
    env.sql("INSERT INTO docs VALUES (3, 'three')").await;
    env.converge(
        &table,
        docs(&[(2, "dos"), (3, "three")]),
        Duration::from_secs(60),
    )
    .await;
    let letters = dead_letters(&env);
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(
        letters.iter().all(|l| l["reason_kind"] == "too_large"),
        "{letters:?}"
    );
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_view_table_deleted_mid_stream_holds_the_writes() {
    let (env, table) = notes("edgetablegone", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1'), (2, 'two', '2')")
        .await;
    let daemon = env.start().await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    env.ddb
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    // Changes while the table is gone: none may be lost or dead-lettered.
    env.sql("UPDATE notes SET body = 'one-changed' WHERE id = 1; INSERT INTO notes VALUES (3, 'three', '3')")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(
        metric(&metrics, "rowcast_write_held_total") >= 1.0,
        "the lane does not say it is held: {metrics}"
    );
    // rowcast is killed while the writes are held, the table comes back, rowcast starts
    // again: the checkpoint did not pass the held changes, so they are read again.
    daemon.kill9();
    env.create_tables();
    let daemon = env.spawn();
    eventually(
        "the held changes to land",
        Duration::from_secs(60),
        || async {
            let items = env.items(&table).await;
            items.contains(&json!({"amount": 1, "body": "one-changed", "pk": "NOTE#1"}))
                && items.contains(&json!({"amount": 3, "body": "three", "pk": "NOTE#3"}))
        },
    )
    .await;
    assert!(dead_letters(&env).is_empty(), "{:?}", dead_letters(&env));
    drop(daemon);
}

const OTHER: &str = r#"
name = "others"
table = "TABLE"
source = "{DB}.others"
[key]
pk = "OTHER#{id}"
"#;

/// `notes` (the view that must halt) and `others` (a view that must keep flowing).
async fn two_views(name: &str) -> (Env, String, String) {
    let (env, notes_table) = notes(name, "").await;
    let others_table = env.table("others");
    env.sql("CREATE TABLE others (id INT PRIMARY KEY, v INT NOT NULL)")
        .await;
    env.write_view("others.toml", &OTHER.replace("TABLE", &others_table));
    env.create_tables();
    (env, notes_table, others_table)
}

async fn others_expected(env: &Env) -> Vec<Value> {
    let rows: Vec<(i64, i64)> = env.query("SELECT id, v FROM others").await;
    rows.into_iter()
        .map(|(id, v)| json!({"pk": format!("OTHER#{id}"), "id": id, "v": v}))
        .collect()
}

/// The session setting `setting` makes one UPDATE of `notes` unreadable for rowcast: the
/// notes view halts with a message naming the cause, `others` keeps flowing, the daemon stays
/// up, and after a restart it halts again at the same place rather than skipping the change;
/// `rowcast snapshot --view notes` rebuilds it, and it stays rebuilt across a restart.
async fn unreadable_update_halts_its_views(name: &str, setting: &str, cause: &str) {
    unreadable_change_halts_its_views(
        name,
        setting,
        "UPDATE notes SET body = 'changed' WHERE id = 1",
        cause,
    )
    .await;
}

async fn unreadable_change_halts_its_views(name: &str, setting: &str, change: &str, cause: &str) {
    let (env, notes_table, others_table) = two_views(name).await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1'), (2, 'two', '2'); INSERT INTO others VALUES (1, 1)")
        .await;
    let daemon = env.start().await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(30),
    )
    .await;
    // For a `LOAD DATA INFILE`: a file the server can read.
    std::fs::write(env.dir.join("load.csv"), "9,nine,9\n").unwrap();
    let change = change.replace("{DIR}", &env.dir.display().to_string());
    env.sql(&format!("SET SESSION {setting}; {change}")).await;
    env.sql("INSERT INTO others VALUES (2, 2); UPDATE others SET v = 10 WHERE id = 1")
        .await;
    env.converge(
        &others_table,
        others_expected(&env).await,
        Duration::from_secs(30),
    )
    .await;
    eventually(
        "the notes view to halt",
        Duration::from_secs(30),
        || async {
            let (_, metrics) = daemon.get("/metrics").await;
            metric(&metrics, "rowcast_view_halted{view=\"notes\"}") == 1.0
        },
    )
    .await;
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(log.contains(cause), "{}", common::tail(&daemon.log));
    let (status, _) = daemon.get("/healthz").await;
    assert_eq!(
        status, 200,
        "one halted view does not make the daemon unhealthy"
    );
    // Not skipped: a restart reads it again and halts again (the view's progress is held).
    assert!(daemon.terminate().success());
    let daemon = env.start().await;
    eventually(
        "the notes view to halt again",
        Duration::from_secs(30),
        || async {
            let (_, metrics) = daemon.get("/metrics").await;
            metric(&metrics, "rowcast_view_halted{view=\"notes\"}") == 1.0
        },
    )
    .await;
    env.sql("INSERT INTO others VALUES (3, 3)").await;
    env.converge(
        &others_table,
        others_expected(&env).await,
        Duration::from_secs(30),
    )
    .await;
    // The remedy: the setting fixed, the view is backfilled again; that rebuilds it (the halt
    // is lifted at the pass's first chunk) and it follows the binlog again, across a restart.
    env.snapshot("notes");
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(30),
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(metric(&metrics, "rowcast_view_halted{view=\"notes\"}"), 0.0);
    env.sql(
        "INSERT INTO notes VALUES (3, 'three', '3'); UPDATE notes SET body = 'deux' WHERE id = 2",
    )
    .await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(30),
    )
    .await;
    assert!(daemon.terminate().success());
    let daemon = env.start().await;
    env.sql("INSERT INTO notes VALUES (4, 'four', '4')").await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(30),
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(metric(&metrics, "rowcast_view_halted{view=\"notes\"}"), 0.0);
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_format_update_halts_its_views() {
    unreadable_update_halts_its_views(
        "edgestatement",
        "binlog_format = 'STATEMENT'",
        "statement format",
    )
    .await;
}

/// `LOAD DATA` in statement format is logged as an `Execute_load_query` event, not a query:
/// before 2026-12-05 it was skipped and its rows never reached the views, with no halt (found
/// by a review).
#[tokio::test(flavor = "multi_thread")]
async fn a_statement_format_load_data_halts_its_views() {
    let name = "edgeload";
    unreadable_change_halts_its_views(
        name,
        "binlog_format = 'STATEMENT'",
        "LOAD DATA INFILE '{DIR}/load.csv' INTO TABLE notes FIELDS TERMINATED BY ','",
        "statement format",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minimal_row_image_update_halts_its_views() {
    unreadable_update_halts_its_views(
        "edgeminimal",
        "binlog_row_image = 'MINIMAL'",
        "binlog_row_image",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_binlog_rotation_is_checkpointed() {
    let (env, table) = notes(
        "edgerotation",
        "[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 100\n",
    )
    .await;
    let daemon = env.start().await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    // No transaction after the rotation: the checkpoint must still move to the new file, or
    // purging the old file on an idle server strands it.
    env.sql("FLUSH BINARY LOGS").await;
    let current: Vec<(String, u64, String, String)> = env.query("SHOW MASTER STATUS").await;
    let newest = current[0].0.clone();
    let number = |file: &str| -> u64 { file.rsplit('.').next().unwrap().parse().unwrap() };
    let path = env.dir.join("checkpoint.json");
    eventually(
        "the checkpoint to reach the new binlog file",
        Duration::from_secs(20),
        || async {
            let Ok(text) = std::fs::read_to_string(&path) else {
                return false;
            };
            let checkpoint: Value = serde_json::from_str(&text).unwrap();
            number(checkpoint["position"]["file"].as_str().unwrap()) >= number(&newest)
        },
    )
    .await;
    assert!(daemon.terminate().success());
    // And a restart resumes from there.
    env.sql("INSERT INTO notes VALUES (2, 'two', '2')").await;
    let daemon = env.start().await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
}

/// Snapshot reads see the commits before their position and none after, whatever isolation
/// level the server or the session defaults to (READ COMMITTED would see later commits).
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_is_repeatable_read_whatever_the_session_default() {
    use mysql_async::prelude::Queryable;
    let (env, _table) = notes("edgeisolation", "").await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1')").await;
    let mut conn = env.admin.get_conn().await.unwrap();
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .unwrap();
    conn.query_drop(format!("USE {}", env.db)).await.unwrap();
    rowcast::sql::begin_snapshot(&mut conn).await.unwrap();
    let before: Option<i64> = conn
        .query_first("SELECT COUNT(*) FROM notes")
        .await
        .unwrap();
    env.sql("INSERT INTO notes VALUES (2, 'two', '2')").await;
    let after: Option<i64> = conn
        .query_first("SELECT COUNT(*) FROM notes")
        .await
        .unwrap();
    rowcast::sql::end_snapshot(&mut conn).await;
    assert_eq!(
        (before, after),
        (Some(1), Some(1)),
        "a later commit leaked into the snapshot"
    );
}

/// XA transactions: the binlog carries an XA transaction's rows at XA PREPARE and its decision
/// later, with other commits in between. Rolled back, nothing of it is applied; committed, it is
/// applied at its commit; prepared when rowcast is killed and committed while it is down, it is
/// applied after the restart (the checkpoint never passed the prepare).
#[tokio::test(flavor = "multi_thread")]
async fn xa_transactions_apply_at_commit_and_never_at_rollback() {
    use mysql_async::prelude::Queryable;
    let (env, table) = notes_in(
        Env::alone("edgexa").await,
        "[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 100\n",
    )
    .await;
    let daemon = env.start().await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1')").await;
    let mut xa = env.admin.get_conn().await.unwrap();
    xa.query_drop(format!("USE {}", env.db)).await.unwrap();
    let prepare = |xid: &'static str, body: &'static str| {
        format!("XA START '{xid}'; {body}; XA END '{xid}'; XA PREPARE '{xid}'")
    };
    xa.query_drop(prepare(
        "rolledback",
        "INSERT INTO notes VALUES (10, 'never', '10')",
    ))
    .await
    .unwrap();
    xa.query_drop("XA ROLLBACK 'rolledback'").await.unwrap();
    xa.query_drop(prepare(
        "committed",
        "INSERT INTO notes VALUES (11, 'eleven', '11'); UPDATE notes SET body = 'uno' WHERE id = 1",
    ))
    .await
    .unwrap();
    env.sql("INSERT INTO notes VALUES (2, 'two', '2')").await;
    xa.query_drop("XA COMMIT 'committed'").await.unwrap();
    env.sql("INSERT INTO notes VALUES (3, 'three', '3')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;

    // Prepared, then rowcast dies while other commits are checkpointed past it.
    xa.query_drop(prepare(
        "pending",
        "INSERT INTO notes VALUES (12, 'twelve', '12'); UPDATE notes SET body = 'dos' WHERE id = 2",
    ))
    .await
    .unwrap();
    let held = async {
        env.sql("INSERT INTO notes VALUES (4, 'four', '4')").await;
        env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
            .await;
        let (_, metrics) = daemon.get("/metrics").await;
        assert_eq!(metric(&metrics, "rowcast_xa_prepared"), 1.0, "{metrics}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        daemon.kill9();
    };
    // Committed while rowcast is down.
    common::deciding(held, async {
        xa.query_drop("XA COMMIT 'pending'").await.unwrap()
    })
    .await;
    env.sql("INSERT INTO notes VALUES (5, 'five', '5')").await;
    let daemon = env.start().await;
    let expected = expected_notes(&env).await;
    assert_eq!(expected.len(), 7, "{expected:?}");
    env.converge(&table, expected, Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
    drop(xa);
    // The connection that re-reads a prepare group has its own replica id: the server never
    // dropped the main connection for it.
    let log = std::fs::read_to_string(env.dir.join("rowcast.log")).unwrap();
    assert!(
        !log.contains("same server_uuid/server_id"),
        "{}",
        common::tail(&env.dir.join("rowcast.log"))
    );
}

/// An XA transaction prepared before rowcast's first start and committed after its backfill:
/// the backfill's snapshot could not see the prepared rows and the reader starts after the
/// PREPARE, so only a second pass brings them (and removes the item of the row it deletes).
/// On the code before: the commit was logged and counted (`xa_prepared_before_start`), and the
/// view kept N#1 'one', N#2, and no N#20, for good.
#[tokio::test(flavor = "multi_thread")]
async fn an_xa_transaction_prepared_before_the_first_start_reaches_the_view() {
    xa_prepared_before_the_first_start("edgexafirst", false).await;
}

/// The same with rowcast killed (`kill -9`) after its backfill and started again before the
/// XA COMMIT: the pass is done, and the checkpoint alone remembers what it waits for.
#[tokio::test(flavor = "multi_thread")]
async fn an_xa_transaction_prepared_before_the_first_start_reaches_the_view_across_a_kill9() {
    xa_prepared_before_the_first_start("edgexafirstkill", true).await;
}

async fn xa_prepared_before_the_first_start(name: &str, kill: bool) {
    use mysql_async::prelude::Queryable;
    let (env, table) = notes_in(Env::alone(name).await, "").await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1'), (2, 'two', '2'), (3, 'three', '3')")
        .await;
    let mut xa = env.admin.get_conn().await.unwrap();
    xa.query_drop(format!("USE {}", env.db)).await.unwrap();
    xa.query_drop(
        "XA START 'first'; INSERT INTO notes VALUES (20, 'twenty', '20'); \
         UPDATE notes SET body = 'uno' WHERE id = 1; DELETE FROM notes WHERE id = 2; \
         XA END 'first'; XA PREPARE 'first'",
    )
    .await
    .unwrap();
    let started = async {
        let mut daemon = env.start().await;
        let before = expected_notes(&env).await;
        assert_eq!(before.len(), 3, "{before:?}");
        env.converge(&table, before, Duration::from_secs(60)).await;
        if kill {
            // Checkpointed (interval 200 ms) with the pass done.
            tokio::time::sleep(Duration::from_millis(1000)).await;
            daemon.kill9();
            daemon = env.start().await;
        }
        daemon
    };
    let daemon = common::deciding(started, async {
        xa.query_drop("XA COMMIT 'first'").await.unwrap()
    })
    .await;
    env.sql("INSERT INTO notes VALUES (4, 'four', '4')").await;
    let after = expected_notes(&env).await;
    assert_eq!(after.len(), 4, "{after:?}");
    env.converge(&table, after, Duration::from_secs(60)).await;
    drop(xa);
    assert!(daemon.terminate().success());
}

/// More XA transactions prepared before rowcast's first start than a pass lists by name (8):
/// the pass waits for any ("*"), so the first unread commit backfills the view again, whose new
/// pass lists the rest by name, and so on. The checkpoint shows the pass waiting for any, and
/// every transaction's rows reach the view. Covers the cap of `merge::MAX_XA_PENDING`,
/// untested before (checked: with the cap taking the first 8 names instead, the checkpoint
/// test fails).
#[tokio::test(flavor = "multi_thread")]
async fn more_xa_transactions_prepared_before_the_first_start_than_a_pass_names_all_reach_the_view()
{
    use mysql_async::prelude::Queryable;
    let (env, table) = notes_in(
        Env::alone("edgexamany").await,
        "[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 100\n",
    )
    .await;
    let checkpoint = env.dir.join("checkpoint.json");
    let pending = move || -> Value {
        let text = std::fs::read_to_string(&checkpoint).unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or_default();
        value["backfill"]["notes"]["xa_pending"].clone()
    };
    env.sql("INSERT INTO notes VALUES (1, 'one', '1')").await;
    let mut conns = Vec::new();
    for i in 0..9 {
        let mut xa = env.admin.get_conn().await.unwrap();
        xa.query_drop(format!("USE {}", env.db)).await.unwrap();
        xa.query_drop(format!(
            "XA START 'many{i}'; INSERT INTO notes VALUES ({}, 'prepared', '{i}'); XA END 'many{i}'; XA PREPARE 'many{i}'",
            30 + i
        ))
        .await
        .unwrap();
        conns.push(xa);
    }
    let started = async {
        let daemon = env.start().await;
        let before = expected_notes(&env).await;
        assert_eq!(before.len(), 1, "{before:?}");
        env.converge(&table, before, Duration::from_secs(60)).await;
        eventually(
            "the pass to wait for any",
            Duration::from_secs(20),
            || async { pending() == json!(["*"]) },
        )
        .await;
        daemon
    };
    let decide = async {
        for (i, xa) in conns.iter_mut().enumerate() {
            xa.query_drop(format!("XA COMMIT 'many{i}'")).await.unwrap();
        }
    };
    let daemon = common::deciding(started, decide).await;
    env.sql("INSERT INTO notes VALUES (2, 'two', '2')").await;
    let after = expected_notes(&env).await;
    assert_eq!(after.len(), 11, "{after:?}");
    env.converge(&table, after, Duration::from_secs(90)).await;
    eventually(
        "nothing left to wait for",
        Duration::from_secs(20),
        || async { pending().is_null() },
    )
    .await;
    drop(conns);
    assert!(daemon.terminate().success());
}

/// Rows whose transaction the binlog logged although they were rolled back: a transaction that
/// created a temporary table is logged whole and ends with ROLLBACK. Those rows never reach the
/// view: they are read again from the binlog and undone by their inverse changes (a delete for
/// an insert, the update back for an update, a moved key moved back, the insert back for a
/// delete), so no view is read again from SQL. On the code before 2026-12-04 the ghost rows got
/// items and note 1 said 'wrong'; on the code before the undo, the table's views were backfilled
/// again and the lazy view lost L#1, L#4 and L#5 (its items older than the rollback were
/// removed, as after a TRUNCATE).
#[tokio::test(flavor = "multi_thread")]
async fn rows_rolled_back_in_a_logged_transaction_never_reach_the_view() {
    let (env, lazy, daemon) = rolled_back_with("edgerollback", &[]).await;
    let lazy_expected: Vec<Value> = [(1, "one"), (3, "three"), (4, "four"), (5, "five")]
        .iter()
        .map(|(id, body)| json!({"pk": format!("L#{id}"), "body": body}))
        .collect();
    env.converge(&lazy, lazy_expected, Duration::from_secs(60))
        .await;
    // Undone, not read again: no view was backfilled again for the rollback. Undone: the ghost
    // rows 700, 701 and 702, the update of 1, the delete of 4 and the move of 5.
    let counts = RollbackCounts::of(&daemon).await;
    assert_eq!(
        (counts.unreadable, counts.undone),
        (0.0, 6.0),
        "{}",
        common::tail(&env.dir.join("rowcast.log"))
    );
    assert!(daemon.terminate().success());
}

/// The same rollback when the reader cannot undo it (its record of the transaction's changes
/// given up, as for a transaction too large to keep: failpoint `reader.undo`): the table's views
/// are read again from SQL, as after a TRUNCATE, and end equal to the source.
#[tokio::test(flavor = "multi_thread")]
async fn rolled_back_rows_too_many_to_undo_are_read_again_from_sql() {
    let failpoint = [("ROWCAST_FAILPOINTS", "reader.undo=error@*")];
    let (env, _lazy, daemon) = rolled_back_with("edgerollbackfull", &failpoint).await;
    let counts = RollbackCounts::of(&daemon).await;
    assert!(
        counts.unreadable >= 1.0,
        "{}",
        common::tail(&env.dir.join("rowcast.log"))
    );
    assert_eq!(counts.undone, 0.0);
    assert!(daemon.terminate().success());
}

/// The read of a rolled-back transaction's group again fails once (failpoint `undo.reread`):
/// the reader reconnects, reads the transaction again from its start and undoes it then.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_whose_second_read_fails_is_undone_after_a_reconnect() {
    let failpoint = [("ROWCAST_FAILPOINTS", "undo.reread=error@1")];
    let (env, _lazy, daemon) = rolled_back_with("edgerollbackreread", &failpoint).await;
    let counts = RollbackCounts::of(&daemon).await;
    assert_eq!(
        (counts.unreadable, counts.undone),
        (0.0, 6.0),
        "{}",
        common::tail(&env.dir.join("rowcast.log"))
    );
    assert!(counts.reconnects >= 1.0);
    assert!(daemon.terminate().success());
}

/// [`rollback_notes`] with the daemon started (`env`: its environment variables) and
/// [`rolled_back_transaction`] run; the eager view equals the source. Gives the lazy view's
/// table and the daemon.
async fn rolled_back_with(name: &str, env_vars: &[(&str, &str)]) -> (Env, String, common::Daemon) {
    let (env, table, lazy) = rollback_notes(name).await;
    let daemon = env.spawn_with(env_vars);
    daemon.wait_ready().await;
    let expected = rolled_back_transaction(&env, &table).await;
    env.converge(&table, expected, Duration::from_secs(60))
        .await;
    (env, lazy, daemon)
}

/// What the daemon counted of rollbacks.
struct RollbackCounts {
    /// `rowcast_unreadable_changes_total`: rolled-back rows read again from SQL (and any other
    /// change the binlog does not describe row by row).
    unreadable: f64,
    /// `rowcast_rolled_back_changes_total`: row changes undone.
    undone: f64,
    reconnects: f64,
}

impl RollbackCounts {
    async fn of(daemon: &common::Daemon) -> RollbackCounts {
        let (_, metrics) = daemon.get("/metrics").await;
        RollbackCounts {
            unreadable: metric(&metrics, "rowcast_unreadable_changes_total{"),
            undone: metric(&metrics, "rowcast_rolled_back_changes_total{"),
            reconnects: metric(&metrics, "rowcast_source_reconnects_total{"),
        }
    }
}

/// Rows rolled back to a savepoint in a transaction that touched a MyISAM table: MariaDB logs
/// them, then `ROLLBACK TO`. They are not undone one by one (InnoDB frees a row inserted after
/// the savepoint at once, so another transaction may insert its key before this one commits):
/// the table's views are read again from SQL, as after a TRUNCATE. On the code before
/// 2026-12-04 the ghost row N#501 got an item and note 1 said 'wrong'.
#[tokio::test(flavor = "multi_thread")]
async fn rows_rolled_back_to_a_savepoint_never_reach_the_view() {
    use mysql_async::prelude::Queryable;
    let (env, table, lazy) = rollback_notes("edgesavepoint").await;
    let daemon = env.start().await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    let mut conn = env.admin.get_conn().await.unwrap();
    conn.query_drop(format!("USE {}", env.db)).await.unwrap();
    conn.query_drop(
        "BEGIN; INSERT INTO audit VALUES (1); SAVEPOINT sp; INSERT INTO notes VALUES (501, 'ghost', '5'); UPDATE notes SET body = 'wrong' WHERE id = 1; ROLLBACK TO sp; INSERT INTO notes VALUES (2, 'two', '2'); COMMIT",
    )
    .await
    .unwrap();
    env.sql("INSERT INTO notes VALUES (3, 'three', '3')").await;
    let expected = expected_notes(&env).await;
    assert_eq!(expected.len(), 3, "{expected:?}");
    env.converge(&table, expected, Duration::from_secs(60))
        .await;
    // The lazy view's items made up to the end of that transaction are removed (filled again on
    // a miss).
    env.converge(
        &lazy,
        vec![json!({"pk": "L#3", "body": "three"})],
        Duration::from_secs(60),
    )
    .await;
    assert!(RollbackCounts::of(&daemon).await.unreadable >= 1.0);
    assert!(daemon.terminate().success());
}

/// The notes table with a MyISAM table beside it, and a lazy view of notes besides the eager one.
async fn rollback_notes(name: &str) -> (Env, String, String) {
    let (env, table) = notes(name, "").await;
    env.sql("CREATE TABLE audit (a INT) ENGINE=MyISAM").await;
    let lazy = env.table("lazy");
    env.write_view(
        "lazy.toml",
        &format!("name = \"lazy\"\ntable = \"{lazy}\"\nsource = \"{{DB}}.notes\"\n[key]\npk = \"L#{{id}}\"\n[attributes]\nbody = \"body\"\n[fill]\nmode = \"lazy\"\n"),
    );
    env.create_tables();
    (env, table, lazy)
}

/// Commits notes 1, 4 and 5, rolls back a transaction the binlog logs (it creates a temporary
/// table) that inserts, updates, deletes and moves notes, commits note 3, and returns the notes.
async fn rolled_back_transaction(env: &Env, table: &str) -> Vec<Value> {
    use mysql_async::prelude::Queryable;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1'), (4, 'four', '4'), (5, 'five', '5')")
        .await;
    env.converge(table, expected_notes(env).await, Duration::from_secs(30))
        .await;
    let mut conn = env.admin.get_conn().await.unwrap();
    conn.query_drop(format!("USE {}", env.db)).await.unwrap();
    conn.query_drop(
        "BEGIN; INSERT INTO notes VALUES (700, 'ghost', '7'); CREATE TEMPORARY TABLE scratch (a INT); \
         INSERT INTO notes VALUES (701, 'ghost', '7'), (702, 'ghost', '7'); UPDATE notes SET body = 'wrong' WHERE id = 1; \
         DELETE FROM notes WHERE id = 4; UPDATE notes SET id = 905 WHERE id = 5; ROLLBACK; DROP TEMPORARY TABLE scratch",
    )
    .await
    .unwrap();
    env.sql("INSERT INTO notes VALUES (3, 'three', '3')").await;
    let expected = expected_notes(env).await;
    assert_eq!(expected.len(), 4, "{expected:?}");
    expected
}

/// Transactions the binlog logs with ROLLBACK (each creates a temporary table) every quarter of
/// a second while a view is backfilled: the backfill still ends. On the code before, each such
/// rollback began the pass again (its tables' views were read again from SQL), so a pass
/// longer than the time between two rollbacks never ended.
#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_ends_while_transactions_with_temporary_tables_roll_back() {
    use mysql_async::prelude::Queryable;
    let (env, table) = notes(
        "edgerollbackfill",
        "[backfill]\nchunk_rows = 100\nmax_items_per_second = 250\n",
    )
    .await;
    let values: Vec<String> = (1..=1500)
        .map(|id| format!("({id}, 'n{id}', '{id}')"))
        .collect();
    env.sql(&format!("INSERT INTO notes VALUES {}", values.join(",")))
        .await;
    let daemon = env.start_filling().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rollbacks = {
        let stop = stop.clone();
        let pool = env.admin.clone();
        let db = env.db.clone();
        tokio::spawn(async move {
            let mut conn = pool.get_conn().await.unwrap();
            conn.query_drop(format!("USE {db}")).await.unwrap();
            let mut count = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                conn.query_drop(
                    "BEGIN; UPDATE notes SET body = 'ghost' WHERE id = 7; CREATE TEMPORARY TABLE scratch (a INT); ROLLBACK; DROP TEMPORARY TABLE scratch",
                )
                .await
                .unwrap();
                count += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            count
        })
    };
    // 1,500 rows at 250 items/s: a pass lasts at least 6 s, some 24 rollbacks.
    eventually(
        "the backfill to end while transactions roll back",
        Duration::from_secs(60),
        || async {
            let (_, metrics) = daemon.get("/metrics").await;
            metric(&metrics, "rowcast_backfill_state{view=\"notes\"}") == 2.0
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let count = rollbacks.await.unwrap();
    assert!(count >= 10, "only {count} rollbacks");
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(60))
        .await;
    assert!(daemon.terminate().success());
}

/// A transaction of a session in MIXED format that creates a temporary table between row
/// changes: MariaDB logs the CREATE TEMPORARY TABLE inside the transaction's group, which ends
/// at its COMMIT (the rows come as row events: their statements are unsafe for statement
/// logging). On the code before, the reader took that statement for DDL that ends its group: the
/// rows after it were read outside any transaction and dropped (N#11 never came).
#[tokio::test(flavor = "multi_thread")]
async fn rows_after_a_temporary_table_created_in_a_mixed_format_transaction_reach_the_view() {
    use mysql_async::prelude::Queryable;
    let (env, table) = notes("edgemixedtemp", "").await;
    let daemon = env.start().await;
    let mut conn = env.admin.get_conn().await.unwrap();
    conn.query_drop(format!("USE {}", env.db)).await.unwrap();
    conn.query_drop(
        "SET SESSION binlog_format = 'MIXED'; BEGIN; \
         INSERT INTO notes VALUES (10, CONCAT('ten', LEFT(UUID(), 0)), '10'); \
         CREATE TEMPORARY TABLE scratch (a INT); \
         INSERT INTO notes VALUES (11, CONCAT('eleven', LEFT(UUID(), 0)), '11'); \
         UPDATE notes SET body = CONCAT('TEN', LEFT(UUID(), 0)) WHERE id = 10; COMMIT; \
         DROP TEMPORARY TABLE scratch; SET SESSION binlog_format = 'ROW'",
    )
    .await
    .unwrap();
    drop(conn);
    env.sql("INSERT INTO notes VALUES (12, 'twelve', '12')")
        .await;
    let expected = expected_notes(&env).await;
    assert_eq!(expected.len(), 3, "{expected:?}");
    env.converge(&table, expected, Duration::from_secs(30))
        .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(metric(&metrics, "rowcast_view_halted{view=\"notes\"}"), 0.0);
    assert!(daemon.terminate().success());
}

/// Rows rolled back to a savepoint inside an XA transaction: when the transaction changed a
/// MyISAM table, MariaDB logs the rolled-back rows in the prepare group, then `ROLLBACK TO`
/// (seen in `SHOW BINLOG EVENTS`). Read again at the XA COMMIT, those rows never reach the view:
/// the table's views are read again from SQL, as for a plain transaction. On the code before:
/// the ghost row N#501 got an item and note 1 said 'wrong'.
#[tokio::test(flavor = "multi_thread")]
async fn rows_rolled_back_to_a_savepoint_in_an_xa_transaction_never_reach_the_view() {
    use mysql_async::prelude::Queryable;
    let (env, table) = notes_in(Env::alone("edgexasavepoint").await, "").await;
    env.sql("CREATE TABLE audit (a INT) ENGINE=MyISAM").await;
    let daemon = env.start().await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    let mut xa = env.admin.get_conn().await.unwrap();
    xa.query_drop(format!("USE {}", env.db)).await.unwrap();
    xa.query_drop(
        "XA START 'sp'; INSERT INTO audit VALUES (1); SAVEPOINT sp; \
         INSERT INTO notes VALUES (501, 'ghost', '5'); UPDATE notes SET body = 'wrong' WHERE id = 1; \
         ROLLBACK TO sp; INSERT INTO notes VALUES (2, 'two', '2'); XA END 'sp'; XA PREPARE 'sp'",
    )
    .await
    .unwrap();
    xa.query_drop("XA COMMIT 'sp'").await.unwrap();
    env.sql("INSERT INTO notes VALUES (3, 'three', '3')").await;
    let expected = expected_notes(&env).await;
    assert_eq!(expected.len(), 3, "{expected:?}");
    env.converge(&table, expected, Duration::from_secs(60))
        .await;
    assert!(daemon.terminate().success());
}

/// A second instance started on the same checkpoint (same control table, same server id) takes
/// it over; the first one is fenced and stops at once with a non-zero exit, even while idle.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_fences_the_first() {
    let (env, table) = notes("edgefence", "").await;
    let mut first = env.start().await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    let second = env.spawn_second();
    let status = first.exited(Duration::from_secs(30)).await;
    second.wait_ready().await;
    let second_log = std::fs::read_to_string(env.dir.join("rowcast-2.log")).unwrap();
    assert!(
        second_log.contains("did not release it; waiting for it to stop before writing"),
        "{}",
        common::tail(&env.dir.join("rowcast-2.log"))
    );
    assert!(
        !status.success(),
        "the fenced instance exited with {status}"
    );
    let log = std::fs::read_to_string(env.dir.join("rowcast.log")).unwrap();
    assert!(
        log.contains("taken over by another instance") && log.contains("stops at once"),
        "{}",
        common::tail(&env.dir.join("rowcast.log"))
    );
    env.sql("INSERT INTO notes VALUES (2, 'two', '2')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    assert!(second.terminate().success());
    // A clean stop releases the checkpoint: the next start takes it without waiting.
    let third = env.start().await;
    env.sql("INSERT INTO notes VALUES (3, 'three', '3')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    assert!(third.terminate().success());
    let log = std::fs::read_to_string(env.dir.join("rowcast.log")).unwrap();
    assert!(!log.contains("did not release it"), "{log}");
}

/// A checkpoint file has no owner in a table to fence with: a second instance on the same file
/// (a rolling update with the volume on one node, a second deployment by mistake) waits for the
/// first to stop, holding nothing, and goes on from its checkpoint once it has. Before
/// 2026-12-06's eighth stop both ran: two writers of one checkpoint file, the one behind
/// writing older states over newer items and its checkpoint over the other's (found by a
/// review).
#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_on_a_checkpoint_file_waits_for_the_first_to_stop() {
    let (env, table) = notes(
        "edgefileowner",
        "[checkpoint]\npath = \"state/checkpoint.json\"\ninterval_ms = 200\n",
    )
    .await;
    let first = env.start().await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    let mut second = env.spawn_second();
    let log = env.dir.join("rowcast-2.log");
    common::eventually("the second to wait", Duration::from_secs(30), || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("another instance uses the checkpoint file")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        second.child.try_wait().unwrap().is_none(),
        "{}",
        common::tail(&log)
    );
    let (status, _) = second.get("/readyz").await;
    assert_ne!(status, 200, "the waiting instance is not ready");
    let (status, body) = second.get("/healthz").await;
    assert_eq!(status, 200, "the waiting instance is alive: {body}");
    assert!(
        !std::fs::read_to_string(&log).unwrap().contains("binlog"),
        "the waiting instance read the binlog: {}",
        common::tail(&log)
    );
    // The first goes on alone.
    env.sql("INSERT INTO notes VALUES (2, 'two', '2')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    assert!(first.terminate().success());
    second.wait_ready().await;
    env.sql("INSERT INTO notes VALUES (3, 'three', '3')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    assert!(second.terminate().success());
}

/// A second instance takes over while the first one writes: everything the first wrote until
/// it was fenced is before the end of the second's replay window (the binlog's end read after
/// its wait), so the second replays it guarded, and no item ever moves back (checked on the
/// table's stream: no record's new `_version` is below its old one). On the code before: the
/// window ended where the binlog ended before the wait, and the replay of the first's last
/// writes put the item back to older versions.
#[tokio::test(flavor = "multi_thread")]
async fn a_takeover_never_moves_an_item_back() {
    use mysql_async::prelude::Queryable;
    let (env, table) = notes("edgetakeover", "").await;
    let spec = aws_sdk_dynamodb::types::StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
        .build()
        .unwrap();
    env.ddb
        .update_table()
        .table_name(&table)
        .stream_specification(spec)
        .send()
        .await
        .unwrap();
    env.sql("INSERT INTO notes VALUES (1, 'one', '1')").await;
    let mut first = env.start().await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    let (pool, db) = (env.admin.clone(), env.db.clone());
    let writer = tokio::spawn(async move {
        let mut conn = pool.get_conn().await.unwrap();
        conn.query_drop(format!("USE {db}")).await.unwrap();
        for n in 0..600 {
            conn.query_drop(format!("UPDATE notes SET body = 'b{n}' WHERE id = 1"))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = env.spawn_second();
    second.wait_ready().await;
    writer.await.unwrap();
    assert!(!first.exited(Duration::from_secs(30)).await.success());
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(60))
        .await;
    let version = |image: Option<
        &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
    >| {
        image
            .and_then(|i| i.get("_version"))
            .and_then(|v| v.as_n().ok())
            .map(|n| n.parse::<u128>().unwrap())
    };
    let mut modified = 0;
    for (_, record) in common::app::full_stream_records(&env, &table).await {
        let change = record.dynamodb().unwrap();
        if let (Some(old), Some(new)) = (
            version(change.old_image.as_ref()),
            version(change.new_image.as_ref()),
        ) {
            modified += 1;
            assert!(
                new >= old,
                "the item moved back from version {old} to {new}"
            );
        }
    }
    // Changes to the one item coalesce while a write is in flight, so how many reach the stream
    // follows the host's write latency (87 of 600 on a slow CI host, a few hundred here): the
    // bound only says the item was written over and over across the takeover.
    assert!(modified > 20, "{modified} changes in the stream");
    assert!(second.terminate().success());
}

/// An instance that is paused (SIGSTOP here: a stopped or frozen container, a long stall) while
/// it holds an unwritten change, and taken over meanwhile, must not write that change when it
/// resumes: its successor has written newer versions of the item since, and the old write
/// would put the older one back for good (the paused instance is fenced a moment later and
/// never rewrites it). On the code before the write lease, the resumed lane wrote at once,
/// before the ownership check that fences it answered, and the item kept the older value.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_instance_taken_over_meanwhile_writes_nothing_when_it_resumes() {
    paused_instance_writes_nothing("edgepause", false).await;
}

/// The same when the successor has stopped cleanly, releasing the checkpoint, before the paused
/// instance resumes: nobody owns the item then, and that must not read as "still mine". On the
/// code before, a release removed the owner and the resumed instance's check took it back.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_instance_resuming_after_its_successor_released_writes_nothing() {
    paused_instance_writes_nothing("edgepauserel", true).await;
}

async fn paused_instance_writes_nothing(name: &str, successor_stops_first: bool) {
    let (env, table) = notes(name, "").await;
    // Every window waits 3 s before it is written: time to pause the instance while it holds one.
    let mut first = env.spawn_with(&[("ROWCAST_FAILPOINTS", "lane.before_write=sleep3000@*")]);
    first.wait_ready().await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    let read = |metrics: &str| metric(metrics, "rowcast_transactions_total");
    let before = read(&first.get("/metrics").await.1);
    env.sql("UPDATE notes SET body = 'two' WHERE id = 1").await;
    // The first instance has read the change (its lane now waits to write it): pause it.
    eventually(
        "the first instance reads the update",
        Duration::from_secs(10),
        || async { read(&first.get("/metrics").await.1) > before },
    )
    .await;
    first.signal("-STOP");
    let items = env.items(&table).await;
    assert_eq!(
        items[0]["body"], "one",
        "precondition: the paused instance holds the update unwritten"
    );
    // The second instance takes over, replays the update and writes a newer one.
    let second = env.spawn_second();
    second.wait_ready().await;
    env.sql("UPDATE notes SET body = 'three' WHERE id = 1")
        .await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    let second = if successor_stops_first {
        assert!(second.terminate().success());
        None
    } else {
        Some(second)
    };
    first.resume_until_fenced().await;
    assert_eq!(
        env.items(&table).await,
        expected_notes(&env).await,
        "the resumed instance wrote over its successor; its log: {}",
        common::tail(&env.dir.join("rowcast.log"))
    );
    if let Some(second) = second {
        assert!(second.terminate().success());
    }
}

/// Slow ownership confirmations (every checkpoint save and ownership check answered 1.8 s after
/// it was sent: a loaded control table) must not hold a healthy instance's writes once it runs,
/// nor fail its drain. On the code before, the tracker confirmed with one request at a time, so
/// its lease (3.2 s here) ran out between two answers and writes waited, again and again. (At
/// start-up, the first save and the first check go one after the other, so at this latency the
/// lease may still run out once within the first seconds: waits are counted from two answers later.)
#[tokio::test(flavor = "multi_thread")]
async fn slow_ownership_confirmations_hold_no_write() {
    slow_confirmations_hold_no_write("edgeslowcontrol", None, 1_800).await;
}

/// The same with a longer checkpoint interval (3 s: a 6 s lease) and answers 4.5 s late: more
/// checks must be in flight at once than at the default. With at most 4 in flight (the
/// commit before), the keeper skipped a tick and the lease ran out between two answers.
#[tokio::test(flavor = "multi_thread")]
async fn slower_confirmations_with_a_longer_interval_hold_no_write() {
    slow_confirmations_hold_no_write("edgeslowcontrol3s", Some(3_000), 4_500).await;
}

async fn slow_confirmations_hold_no_write(name: &str, interval_ms: Option<u64>, latency_ms: u64) {
    let extra = interval_ms.map_or(String::new(), |ms| {
        format!(
            "[checkpoint]\ntable = \"{name}_{}_control\"\ninterval_ms = {ms}\n",
            std::process::id()
        )
    });
    let (env, table) = notes(name, &extra).await;
    let daemon = env.spawn_with(&[(
        "ROWCAST_FAILPOINTS",
        &format!("checkpoint.before_confirm=sleep{latency_ms}@*"),
    )]);
    daemon.wait_ready().await;
    env.sql("INSERT INTO notes VALUES (0, 'n0', '0')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    // Past the start-up, where the first save and the first check go one after the other.
    tokio::time::sleep(Duration::from_millis(2 * latency_ms + 500)).await;
    let waits = |metrics: &str| metric(metrics, "rowcast_write_lease_waits_total");
    let before = waits(&daemon.get("/metrics").await.1);
    for id in 1..=20 {
        env.sql(&format!("INSERT INTO notes VALUES ({id}, 'n{id}', '{id}')"))
            .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    let after = waits(&daemon.get("/metrics").await.1);
    assert_eq!(after, before, "{}", common::tail(&daemon.log));
    assert!(daemon.terminate().success());
}

/// The control table deleted under a running daemon: the checkpoint tracker fails for good,
/// and with it the write lease that only it renews. The daemon must stop (non-zero) rather
/// than hang with its lanes waiting for a confirmation that cannot come, and must not
/// acknowledge what it did not write. (The first version of the write lease hung here.)
#[tokio::test(flavor = "multi_thread")]
async fn a_control_table_gone_stops_the_daemon_instead_of_hanging_it() {
    let (env, table) = notes("edgenocontrol", "").await;
    // Every window waits 6 s before it is written: longer than the lease (3.2 s here), so the
    // window of the second row is still to be written when the tracker has failed.
    let mut daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "lane.before_write=sleep6000@*")]);
    daemon.wait_ready().await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    // The second row's window is held in its lane before the control table goes (deleted
    // first, the tracker could fail before the row reached a lane: then no write is given up).
    let held = || {
        std::fs::read_to_string(&daemon.log)
            .unwrap()
            .matches("failpoint lane.before_write")
            .count()
    };
    let before = held();
    env.sql("INSERT INTO notes VALUES (2, 'two', '2')").await;
    eventually(
        "the second row's window to be held",
        Duration::from_secs(30),
        || {
            let now = held();
            async move { now > before }
        },
    )
    .await;
    env.ddb
        .delete_table()
        .table_name(env.table("control"))
        .send()
        .await
        .unwrap();
    let status = daemon.exited(Duration::from_secs(60)).await;
    assert!(!status.success(), "exited with {status}");
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(
        log.contains("writes given up"),
        "{}",
        common::tail(&daemon.log)
    );
}

/// The checkpoint item's ownership, store against store on DynamoDB Local: a claim names the
/// predecessor that did not release the item, with the write lease it recorded (its
/// successor waits that out even when its own is shorter); a claim this store made already
/// (a start-up tried again) names no predecessor; a release leaves the item to nobody, so the
/// instance it was taken from is still fenced, by a check and by a save (before, a release
/// removed the owner and a check then confirmed the paused instance's ownership); a claim
/// after a release waits for nobody; and a claim sent again after its answer was lost waits
/// out the predecessor the claim kept (released here: nobody).
#[tokio::test(flavor = "multi_thread")]
async fn the_checkpoint_item_names_its_owner_its_lease_and_a_release() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use rowcast::control::{CheckpointError, CheckpointStore};
    let (env, _) = notes("edgeowner", "").await;
    let store = |ms: u64| {
        CheckpointStore::table(
            env.ddb.clone(),
            env.table("control"),
            "checkpoint#ownership".into(),
            Duration::from_millis(ms),
        )
    };
    let fenced = |result: Result<(), CheckpointError>| {
        assert!(
            matches!(result, Err(CheckpointError::Fenced { .. })),
            "{result:?}"
        );
    };
    let first = store(60_000);
    assert!(!first.lease().is_held(), "no lease before the claim");
    assert!(first.claim().await.unwrap().is_none());
    assert!(first.claim().await.unwrap().is_none());
    first.check_owner().await.unwrap();
    assert!(first.lease().is_held());
    let second = store(3_200);
    let previous = second.claim().await.unwrap().expect("not released");
    assert_eq!(previous.lease_term, Some(Duration::from_secs(60)));
    fenced(first.check_owner().await);
    second.release().await.unwrap();
    assert!(!second.lease().is_held(), "a released store writes nothing");
    fenced(first.check_owner().await);
    let checkpoint = rowcast::pipeline::Checkpoint {
        position: rowcast::pipeline::Position {
            file: "binlog.000001".into(),
            pos: 4,
            gtid: None,
        },
        seq: u64::MAX,
        updated_ms: 0,
        backfill: Default::default(),
    };
    fenced(first.save(&checkpoint).await);
    let third = store(3_200);
    assert!(third.claim().await.unwrap().is_none());
    // A claim that landed but whose answer was lost, sent again (as a second store of the same
    // instance here): the item is the claimer's already; the claim kept whom it took the item
    // from, released here, so there is nothing to wait out (before 2026-12-07 that was
    // unknown, and waited out as if it had not released it).
    let again = CheckpointStore::table_owned_by(
        env.ddb.clone(),
        env.table("control"),
        "checkpoint#ownership".into(),
        Duration::from_millis(3_200),
        third.owner().unwrap().to_string(),
    );
    assert!(again.claim().await.unwrap().is_none());
    // An instance with a long lease, taken over by one with a short lease that dies while it
    // waits the long one out (no release): the next claimer must still wait out the long
    // lease, within which the first may still write. Before, each claim recorded only its own
    // term, and the third waited 3.2 s.
    let long = store(60_000);
    long.claim().await.unwrap();
    let short = store(3_200);
    let previous = short.claim().await.unwrap().expect("not released");
    assert_eq!(previous.lease_term, Some(Duration::from_secs(60)));
    let last = store(3_200);
    let previous = last.claim().await.unwrap().expect("not released");
    assert_eq!(previous.lease_term, Some(Duration::from_secs(60)));
    // The same, the short one dying before it recorded the long lease as the item's (here
    // its record undone by hand): the claim it made kept the long one's term, and the next
    // claimer waits that out. Before 2026-12-07 it waited 3.2 s (found by a review; seen
    // failing).
    let long = store(60_000);
    long.claim().await.unwrap();
    let short = store(3_200);
    short.claim().await.unwrap().expect("not released");
    env.ddb
        .update_item()
        .table_name(env.table("control"))
        .key(
            rowcast::dynamo::CONTROL_PK,
            AttributeValue::S("checkpoint#ownership".into()),
        )
        .key(
            rowcast::dynamo::CONTROL_SK,
            AttributeValue::S("stream".into()),
        )
        .update_expression("SET lease_ms = :short")
        .expression_attribute_values(":short", AttributeValue::N("3200".into()))
        .send()
        .await
        .unwrap();
    let last = store(3_200);
    let previous = last.claim().await.unwrap().expect("not released");
    assert_eq!(previous.lease_term, Some(Duration::from_secs(60)));
}

/// TRUNCATE logs no rows: the table's views are backfilled again and their items without a row
/// removed (the items of the rows there were, deleted or not, never stay), while the other
/// views flow. `kill -9` right after the TRUNCATE is seen, before the cleanup: the restarted
/// daemon still removes them. On the code before, the view halted and every old item stayed.
#[tokio::test(flavor = "multi_thread")]
async fn a_truncate_removes_the_tables_items_also_across_a_kill9() {
    let (env, notes_table, others_table) = two_views("edgetruncate").await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1'), (2, 'two', '2'), (3, 'three', '3'); INSERT INTO others VALUES (1, 1)")
        .await;
    let daemon = env.start().await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(30),
    )
    .await;
    env.sql(
        "TRUNCATE TABLE notes; INSERT INTO notes VALUES (3, 'new three', '3'), (4, 'four', '4')",
    )
    .await;
    env.sql("INSERT INTO others VALUES (2, 2)").await;
    env.converge(
        &others_table,
        others_expected(&env).await,
        Duration::from_secs(30),
    )
    .await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(60),
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(metrics.contains("cause=\"truncate\""), "{metrics}");
    assert_eq!(metric(&metrics, "rowcast_view_halted{view=\"notes\"}"), 0.0);

    // Again, and rowcast dies as soon as it has read the TRUNCATE.
    env.sql("TRUNCATE TABLE notes; INSERT INTO notes VALUES (9, 'nine', '9')")
        .await;
    eventually(
        "the second TRUNCATE read",
        Duration::from_secs(30),
        || async {
            let (_, metrics) = daemon.get("/metrics").await;
            metric(
                &metrics,
                "rowcast_unreadable_changes_total{cause=\"truncate\"",
            ) >= 2.0
        },
    )
    .await;
    daemon.kill9();
    let daemon = env.start().await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(60),
    )
    .await;
    assert!(daemon.terminate().success());
}

/// A checkpoint held back by a halted view still carries the other views' progress: here the
/// `others` view was backfilled again after a TRUNCATE and its old items removed. Replayed
/// after a kill -9 from the held position, an insert older than that pass must not make its
/// item again (nothing later removes it), nor a row of a transaction rolled back (its rows are
/// older than the pass that follows it). On the code before, OTHER#5 came back for good.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_from_a_held_checkpoint_never_brings_back_what_a_later_pass_removed() {
    let (env, notes_table, others_table) = two_views("edgeheldreplay").await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1'); INSERT INTO others VALUES (1, 1)")
        .await;
    let daemon = env.start().await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(30),
    )
    .await;
    env.sql(
        "SET SESSION binlog_format = 'STATEMENT'; UPDATE notes SET body = 'changed' WHERE id = 1",
    )
    .await;
    halt_reads(&daemon, "notes", 1.0).await;
    env.sql("INSERT INTO others VALUES (5, 5)").await;
    env.sql("TRUNCATE TABLE others; INSERT INTO others VALUES (6, 6)")
        .await;
    env.converge(
        &others_table,
        others_expected(&env).await,
        Duration::from_secs(60),
    )
    .await;
    // A row rolled back in a logged transaction: its item is removed by the pass that follows
    // (the transaction's own rows are older than it), and must not come back from the replay
    // either (on the code before that comparison: OTHER#9 came back, its transaction being the
    // one the pass began after).
    env.sql(
        "BEGIN; INSERT INTO others VALUES (9, 9); CREATE TEMPORARY TABLE scratch (a INT); ROLLBACK",
    )
    .await;
    env.converge(
        &others_table,
        others_expected(&env).await,
        Duration::from_secs(60),
    )
    .await;
    // The cleanup is done (converged); a transaction after it carries that in a barrier. A few
    // checkpoints (every 200 ms): their position is held at the halt, their progress of
    // `others` is the pass after the TRUNCATE, its cleanup done.
    env.sql("INSERT INTO others VALUES (8, 8)").await;
    env.converge(
        &others_table,
        others_expected(&env).await,
        Duration::from_secs(30),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    daemon.kill9();
    let daemon = env.start().await;
    env.sql("INSERT INTO others VALUES (7, 7)").await;
    env.converge(
        &others_table,
        others_expected(&env).await,
        Duration::from_secs(60),
    )
    .await;
    // Converged once OTHER#7 is there, after the replay; and it stays so.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    env.converge(
        &others_table,
        others_expected(&env).await,
        Duration::from_secs(5),
    )
    .await;
    assert!(daemon.terminate().success());
}

/// DROP TABLE of a watched table halts its views with a message naming it, while the others
/// flow; a table of that name created again is backfilled and the old items removed, which
/// lifts the halt; RENAME TABLE away and back likewise. On the code before, the view went on
/// silently with the dropped rows' items.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_or_renamed_table_halts_its_views_until_it_is_back() {
    let (env, notes_table, others_table) = two_views("edgedrop").await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1'), (2, 'two', '2'); INSERT INTO others VALUES (1, 1)")
        .await;
    let daemon = env.start().await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(30),
    )
    .await;
    let halted = |expected: f64| {
        let daemon = &daemon;
        async move {
            let (_, metrics) = daemon.get("/metrics").await;
            metric(&metrics, "rowcast_view_halted{view=\"notes\"}") == expected
        }
    };
    env.sql("DROP TABLE notes").await;
    eventually("the notes view to halt", Duration::from_secs(30), || {
        halted(1.0)
    })
    .await;
    env.sql("INSERT INTO others VALUES (2, 2)").await;
    env.converge(
        &others_table,
        others_expected(&env).await,
        Duration::from_secs(30),
    )
    .await;
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(
        log.contains("was dropped or renamed"),
        "{}",
        common::tail(&daemon.log)
    );

    env.sql("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(40) NOT NULL, amount LONGTEXT NULL); INSERT INTO notes VALUES (7, 'seven', '7')")
        .await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(60),
    )
    .await;
    eventually("the halt lifted", Duration::from_secs(30), || halted(0.0)).await;

    env.sql("RENAME TABLE notes TO notes_away").await;
    eventually(
        "the notes view to halt again",
        Duration::from_secs(30),
        || halted(1.0),
    )
    .await;
    env.sql("INSERT INTO notes_away VALUES (8, 'eight', '8'); RENAME TABLE notes_away TO notes")
        .await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(60),
    )
    .await;
    eventually("the halt lifted again", Duration::from_secs(30), || {
        halted(0.0)
    })
    .await;

    // The whole database dropped: its watched tables are gone too (on the code before: no
    // halt, the view kept serving rows that no longer existed). Created again, they are back.
    {
        use mysql_async::prelude::Queryable;
        let mut conn = env.admin.get_conn().await.unwrap();
        conn.query_drop(format!("DROP DATABASE {}", env.db))
            .await
            .unwrap();
        eventually(
            "the notes view to halt with its database",
            Duration::from_secs(30),
            || halted(1.0),
        )
        .await;
        conn.query_drop(format!(
            "CREATE DATABASE {db}; USE {db}; CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(40) NOT NULL, amount LONGTEXT NULL); CREATE TABLE others (id INT PRIMARY KEY, v INT NOT NULL); INSERT INTO notes VALUES (9, 'nine', '9')",
            db = env.db
        ))
        .await
        .unwrap();
    }
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(60),
    )
    .await;
    eventually("the halt lifted once more", Duration::from_secs(30), || {
        halted(0.0)
    })
    .await;
    assert!(daemon.terminate().success());
}

/// A server that tells table names apart by their case (`lower_case_table_names = 0`, the
/// default on Linux) holds `Notes` and `notes` as two tables: a TRUNCATE, an ALTER and a DROP of
/// `Notes` leave the view of `notes` alone. On the code before, DDL named tables whatever their
/// case: each of the three was taken for one of `notes`.
#[tokio::test(flavor = "multi_thread")]
async fn ddl_of_a_table_named_in_another_case_leaves_the_watched_one_alone() {
    let (env, table) = notes("edgenamecase", "").await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1'); CREATE TABLE Notes (id INT PRIMARY KEY, body VARCHAR(40) NOT NULL, amount LONGTEXT NULL); INSERT INTO Notes VALUES (2, 'two', '2')")
        .await;
    let daemon = env.start().await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    env.sql("TRUNCATE TABLE Notes; ALTER TABLE Notes DROP COLUMN amount; DROP TABLE Notes")
        .await;
    env.sql("INSERT INTO notes VALUES (3, 'three', '3')").await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(metric(&metrics, "rowcast_view_halted{view=\"notes\"}"), 0.0);
    // Neither halted nor backfilled again (on the code before: the TRUNCATE and the ALTER each
    // backfilled the view again, and the DROP halted it until the ALTER's pass lifted the halt).
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(
        !log.contains("was dropped or renamed")
            && !log.contains("table truncated")
            && log.matches("backfill starts").count() == 1,
        "{}",
        common::tail(&daemon.log)
    );
    assert!(daemon.terminate().success());
}

/// One change halts two views of a table; only one is rebuilt. The other still holds the
/// checkpoint at the change, so a restart reads it again: the rebuilt view, backfilled after
/// it, stays rebuilt (its pass supersedes the change) while the other halts again.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuilt_view_stays_rebuilt_while_another_halted_view_holds_the_checkpoint() {
    let (env, notes_table) = notes("edgerebuilt", "").await;
    let bodies_table = env.table("bodies");
    env.write_view(
        "bodies.toml",
        &"name = \"bodies\"\ntable = \"TABLE\"\nsource = \"{DB}.notes\"\n[key]\npk = \"BODY#{id}\"\n[attributes]\nbody = \"body\"\n"
            .replace("TABLE", &bodies_table),
    );
    env.create_tables();
    env.sql("INSERT INTO notes VALUES (1, 'one', '1'), (2, 'two', '2')")
        .await;
    let daemon = env.start().await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(30),
    )
    .await;
    env.sql(
        "SET SESSION binlog_format = 'STATEMENT'; UPDATE notes SET body = 'changed' WHERE id = 1",
    )
    .await;
    let halted = |view: &'static str| {
        let daemon = &daemon;
        async move {
            let (_, metrics) = daemon.get("/metrics").await;
            metric(&metrics, &format!("rowcast_view_halted{{view=\"{view}\"}}")) == 1.0
        }
    };
    eventually("both views to halt", Duration::from_secs(30), || async {
        halted("notes").await && halted("bodies").await
    })
    .await;
    env.snapshot("notes");
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(30),
    )
    .await;
    assert!(daemon.terminate().success());
    let daemon = env.start().await;
    env.sql("INSERT INTO notes VALUES (3, 'three', '3')").await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(30),
    )
    .await;
    eventually("bodies to halt again", Duration::from_secs(30), || async {
        let (_, metrics) = daemon.get("/metrics").await;
        metric(&metrics, "rowcast_view_halted{view=\"bodies\"}") == 1.0
    })
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "rowcast_view_halted{view=\"notes\"}"),
        0.0,
        "the rebuilt view halted again"
    );
    assert!(daemon.terminate().success());
}

/// The connection re-reading a prepared XA transaction at its commit fails part-way: the reader
/// reconnects before the XA COMMIT, reads it again, and the transaction is applied whole.
#[tokio::test(flavor = "multi_thread")]
async fn an_xa_commit_whose_reread_fails_is_read_again() {
    use mysql_async::prelude::Queryable;
    let (env, table) = notes_in(Env::alone("edgexareread").await, "").await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1')").await;
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "xa.reread=error@7")]);
    daemon.wait_ready().await;
    let mut xa = env.admin.get_conn().await.unwrap();
    xa.query_drop(format!("USE {}", env.db)).await.unwrap();
    xa.query_drop(
        "XA START 'x'; INSERT INTO notes VALUES (11, 'eleven', '11'); \
         UPDATE notes SET body = 'uno' WHERE id = 1; XA END 'x'; XA PREPARE 'x'",
    )
    .await
    .unwrap();
    xa.query_drop("XA COMMIT 'x'").await.unwrap();
    env.sql("INSERT INTO notes VALUES (2, 'two', '2')").await;
    let expected = expected_notes(&env).await;
    assert_eq!(expected.len(), 3);
    env.converge(&table, expected, Duration::from_secs(30))
        .await;
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(
        log.contains("failpoint xa.reread: error"),
        "the failure was not injected: {}",
        common::tail(&daemon.log)
    );
    assert!(daemon.terminate().success());
}

/// An XA transaction committed on a source that then stays idle: the checkpoint moves past
/// its COMMIT once the hold of its PREPARE is released, as after any transaction. Before
/// 2026-12-07 it stayed at the PREPARE until the next transaction or rotation, and
/// `rowcast_checkpoint_age_seconds` grew on an idle source (`RowcastCheckpointStalled` with no
/// XA transaction prepared; found by a review; seen failing).
#[tokio::test(flavor = "multi_thread")]
async fn an_xa_commit_on_an_idle_source_moves_the_checkpoint_past_it() {
    use mysql_async::prelude::Queryable;
    let (env, table) = notes_in(
        Env::alone("edgexaidle").await,
        "[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 100\n",
    )
    .await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1')").await;
    let daemon = env.start().await;
    let mut xa = env.admin.get_conn().await.unwrap();
    xa.query_drop(format!("USE {}", env.db)).await.unwrap();
    xa.query_drop(
        "XA START 'idle'; INSERT INTO notes VALUES (11, 'eleven', '11'); \
         XA END 'idle'; XA PREPARE 'idle'",
    )
    .await
    .unwrap();
    xa.query_drop("XA COMMIT 'idle'").await.unwrap();
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    let (file, end) = env.binlog_end().await;
    eventually(
        "the checkpoint past the XA COMMIT",
        Duration::from_secs(20),
        || async {
            let Some(checkpoint) = saved_checkpoint(&env) else {
                return false;
            };
            checkpoint["position"]["file"].as_str() == Some(file.as_str())
                && checkpoint["position"]["pos"].as_u64() >= Some(end)
        },
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(metric(&metrics, "rowcast_checkpoint_age_seconds"), 0.0);
    assert!(daemon.terminate().success());
}

/// A replica of the test server registered under `server_id` as a MariaDB replica registers
/// (its host and port), reading from the binlog's end with heartbeats.
async fn replica(env: &Env, server_id: u32) -> mysql_async::BinlogStream {
    use mysql_async::prelude::Queryable;
    let (file, pos) = env.binlog_end().await;
    let mut conn = env.admin.get_conn().await.unwrap();
    conn.query_drop("SET @master_heartbeat_period = 200000000")
        .await
        .unwrap();
    conn.get_binlog_stream(
        mysql_async::BinlogStreamRequest::new(server_id)
            .with_filename(file.as_bytes())
            .with_pos(pos)
            .with_hostname(b"replica-7")
            .with_port(3307),
    )
    .await
    .unwrap()
}

/// Whether the replica still gets the binlog: a commit made now reaches it.
async fn still_replicating(env: &Env, stream: &mut mysql_async::BinlogStream, id: i64) -> bool {
    use futures_util::StreamExt;
    env.sql(&format!("INSERT INTO notes VALUES ({id}, 'r', '1')"))
        .await;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Some(Ok(event))) => {
                if matches!(
                    event.read_data(),
                    Ok(Some(mysql_async::binlog::events::EventData::XidEvent(_)))
                ) {
                    return true;
                }
            }
            _ => return false,
        }
    }
}

/// Another replica with rowcast's `server_id`: the server keeps one binlog connection per id,
/// so rowcast connecting cut the replica off (and the replica, reconnecting, cut rowcast off,
/// in turn: a real replica of the user's database lagging behind for rowcast's misconfigured
/// id). rowcast now does not connect under a replica's id: `check --connect` names it, a start
/// stops (exit 3) before registering, and a rowcast cut off by such a replica waits until it is
/// gone instead of cutting it off in turn. On the code before: rowcast started, and the
/// replica's stream was cut.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_using_rowcasts_server_id_is_never_cut_off() {
    let (env, table) = notes("replicaid", "").await;
    let config = env.config_path();
    let mut stream = replica(&env, env.server_id).await;
    let out = env.rowcast(&["check", "--connect", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("source.server_id") && err.contains("replica-7:3307"),
        "{err}"
    );
    let mut daemon = env.spawn();
    let status = daemon.exited(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(3));
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(
        log.contains("is the id of a replica of this server"),
        "{log}"
    );
    assert!(
        still_replicating(&env, &mut stream, 101).await,
        "the replica was cut off"
    );
    drop(stream);

    // rowcast first; then the replica connects, which cuts rowcast's connection. rowcast
    // waits (reconnecting, checking) instead of cutting the replica off in turn, and follows
    // the binlog again, where it left it, once the replica is gone.
    let replica_gone = || async {
        let hosts: Vec<mysql_async::Row> = env.query("SHOW SLAVE HOSTS").await;
        !hosts
            .iter()
            .any(|row| row.get::<u32, _>(0) == Some(env.server_id))
    };
    eventually("the replica gone", Duration::from_secs(30), replica_gone).await;
    let daemon = env.spawn();
    daemon.wait_ready().await;
    let mut stream = replica(&env, env.server_id).await;
    let log = || std::fs::read_to_string(&daemon.log).unwrap_or_default();
    eventually(
        "rowcast to see the replica",
        Duration::from_secs(30),
        || async {
            log()
                .matches("is the id of a replica of this server")
                .count()
                >= 2
        },
    )
    .await;
    assert!(
        still_replicating(&env, &mut stream, 102).await,
        "the replica was cut off"
    );
    drop(stream);
    env.sql("INSERT INTO notes VALUES (103, 'after', '2')")
        .await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(60))
        .await;
    assert!(daemon.terminate().success());
}

/// A lazy view's table cut over as online schema tools do it (a copy renamed in its place, the
/// old one dropped): the lazy view is not halted — it has no pass that a rebuild would need —
/// but its items from before the cut-over are removed, and later changes write its items as
/// before. On the code before, the gone table's halt lifted only at a backfill pass, which a
/// lazy view never has: it stayed halted for good, wrote no change any more and held the
/// checkpoint (found by a review).
#[tokio::test(flavor = "multi_thread")]
async fn a_lazy_views_table_cut_over_keeps_the_view_going() {
    let (env, table, lazy) = rollback_notes("edgelazycut").await;
    let daemon = env.start().await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1'), (2, 'two', '2')")
        .await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    env.converge(
        &lazy,
        vec![
            json!({"pk": "L#1", "body": "one"}),
            json!({"pk": "L#2", "body": "two"}),
        ],
        Duration::from_secs(30),
    )
    .await;
    env.sql("CREATE TABLE notes_new LIKE notes; INSERT INTO notes_new SELECT * FROM notes; RENAME TABLE notes TO notes_old, notes_new TO notes; DROP TABLE notes_old")
        .await;
    env.sql("UPDATE notes SET body = 'changed' WHERE id = 1")
        .await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(60))
        .await;
    // Item 2 is from before the cut-over: removed (filled again on a miss).
    env.converge(
        &lazy,
        vec![json!({"pk": "L#1", "body": "changed"})],
        Duration::from_secs(30),
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "rowcast_view_halted{view=\"lazy\"}"),
        0.0,
        "{metrics}"
    );
    env.sql("INSERT INTO notes VALUES (3, 'three', '3')").await;
    env.converge(
        &lazy,
        vec![
            json!({"pk": "L#1", "body": "changed"}),
            json!({"pk": "L#3", "body": "three"}),
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(daemon.terminate().success());
}

/// A TRUNCATE of a lazy view's table: the view is not halted (it has no pass a rebuild would
/// need), its items from before the TRUNCATE are removed, and changes after it write items as
/// before; the eager view beside it is backfilled again. (The failure model said such a lazy view
/// halts until a repair; the code, and now this test, say otherwise.)
#[tokio::test(flavor = "multi_thread")]
async fn a_truncate_of_a_lazy_views_table_removes_its_old_items_and_keeps_the_view_going() {
    let (env, table, lazy) = rollback_notes("edgelazytrunc").await;
    let daemon = env.start().await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1'), (2, 'two', '2')")
        .await;
    let lazy_items = |rows: &[(i64, &str)]| -> Vec<Value> {
        rows.iter()
            .map(|(id, body)| json!({"pk": format!("L#{id}"), "body": body}))
            .collect()
    };
    env.converge(
        &lazy,
        lazy_items(&[(1, "one"), (2, "two")]),
        Duration::from_secs(30),
    )
    .await;
    env.sql("TRUNCATE TABLE notes; INSERT INTO notes VALUES (3, 'three', '3')")
        .await;
    env.converge(&lazy, lazy_items(&[(3, "three")]), Duration::from_secs(60))
        .await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(60))
        .await;
    env.sql("INSERT INTO notes VALUES (1, 'one again', '1')")
        .await;
    env.converge(
        &lazy,
        lazy_items(&[(1, "one again"), (3, "three")]),
        Duration::from_secs(30),
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "rowcast_view_halted{view=\"lazy\"}"),
        0.0,
        "{metrics}"
    );
    // The cleanup removed the two items of the rows from before the TRUNCATE, and said so.
    assert_eq!(
        metric(
            &metrics,
            "rowcast_cleanup_removed_items_total{view=\"lazy\"}"
        ),
        2.0,
        "{metrics}"
    );
    assert!(metric(&metrics, "rowcast_cleanups_total{view=\"lazy\"}") >= 1.0);
    assert!(daemon.terminate().success());
}

/// A TRUNCATE from a client whose character set is latin1 (`SET NAMES latin1`, the default of
/// many older clients) of a table whose name is not ASCII: the binlog holds the statement in
/// the client's character set, and rowcast reads it so (the view is backfilled again and the
/// items of the rows from before it removed). Before 2026-12-07's sixth stop it was read as
/// UTF-8 (`caf\u{FFFD}`), taken for no watched table's, and the old items stayed (found by a
/// review of 2026-12-07's third stop; seen failing).
#[tokio::test(flavor = "multi_thread")]
async fn a_truncate_written_in_latin1_of_a_table_named_in_non_ascii_is_seen() {
    let env = Env::new("edgelatin1").await;
    let table = env.table("cafe");
    env.sql("CREATE TABLE `café` (id INT PRIMARY KEY, v INT NOT NULL); INSERT INTO `café` VALUES (1, 1), (2, 2)")
        .await;
    env.write_view(
        "cafe.toml",
        &format!("name = \"cafe\"\ntable = \"{table}\"\nsource = \"{{DB}}.café\"\n[key]\npk = \"C#{{id}}\"\n"),
    );
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;
    let expected = |ids: &[i64]| -> Vec<Value> {
        (ids.iter())
            .map(|id| json!({"pk": format!("C#{id}"), "id": id, "v": id}))
            .collect()
    };
    env.converge(&table, expected(&[1, 2]), Duration::from_secs(30))
        .await;
    env.sql_bytes(&[
        b"SET NAMES latin1",
        b"TRUNCATE TABLE caf\xe9",
        b"INSERT INTO caf\xe9 VALUES (3, 3)",
    ])
    .await;
    env.converge(&table, expected(&[3]), Duration::from_secs(60))
        .await;
    assert!(daemon.terminate().success());
}

/// A TRUNCATE prefixed by `SET STATEMENT … FOR` (per-statement variables) or written inside
/// MariaDB's executable comment `/*M!… */` is logged as written: it is still a TRUNCATE, and the
/// table's old items go. On the code before, both were read as statements of no table, and the
/// items of the rows they removed stayed.
#[tokio::test(flavor = "multi_thread")]
async fn a_truncate_behind_set_statement_in_an_executable_comment_or_with_ansi_quotes_is_seen() {
    let (env, notes_table, _others_table) = two_views("edgetruncwrapped").await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1'), (2, 'two', '2')")
        .await;
    let daemon = env.start().await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(30),
    )
    .await;
    env.sql(
        "SET STATEMENT max_statement_time = 100 FOR TRUNCATE TABLE notes; INSERT INTO notes VALUES (3, 'three', '3')",
    )
    .await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(60),
    )
    .await;
    env.sql("/*M!100100 TRUNCATE TABLE notes */; INSERT INTO notes VALUES (4, 'four', '4')")
        .await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(60),
    )
    .await;
    // Under sql_mode ANSI_QUOTES a double-quoted name is a name (before 2026-12-05 it was read
    // as a string and the TRUNCATE not seen: found by a review).
    env.sql(
        "SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES'); TRUNCATE TABLE \"notes\"; SET SESSION sql_mode = DEFAULT; INSERT INTO notes VALUES (5, 'five', '5')",
    )
    .await;
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(60),
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "rowcast_unreadable_changes_total{cause=\"truncate\""
        ),
        3.0,
        "{metrics}"
    );
    assert!(daemon.terminate().success());
}

/// The remedy for a halted view, `rowcast snapshot --view`, while the view is in the middle of
/// a pass: the request begins a new pass (whose first chunk rebuilds the view), not coalesced
/// into the running one, whose later chunks rebuild nothing. On the code before, the request
/// answered "coalesced" and the view stayed halted after the pass.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_of_a_view_halted_during_its_pass_lifts_the_halt() {
    let (env, notes_table) = notes(
        "edgehaltpass",
        "[backfill]\nchunk_rows = 200\nmax_items_per_second = 1000\n",
    )
    .await;
    env.sql("INSERT INTO notes SELECT seq, CONCAT('n', seq), NULL FROM seq_1_to_8000")
        .await;
    let daemon = env.start_filling().await;
    // In the middle of the pass: after its first chunk (a change read before it is rebuilt at
    // once by that chunk, as a CI run of 2026-12-05 saw).
    eventually("the pass under way", Duration::from_secs(30), || async {
        let (_, metrics) = daemon.get("/metrics").await;
        metric(&metrics, "rowcast_backfill_rows_total{view=\"notes\"}") >= 200.0
    })
    .await;
    env.sql(
        "SET SESSION binlog_format = 'STATEMENT'; UPDATE notes SET body = 'changed' WHERE id = 1",
    )
    .await;
    halt_reads(&daemon, "notes", 1.0).await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "rowcast_backfill_state{view=\"notes\"}"),
        1.0,
        "halted in the middle of its pass"
    );
    let (status, body) = http_post(daemon.api_port, "/v1/views/notes/snapshot").await;
    assert_eq!(status, 202, "{body}");
    env.converge(
        &notes_table,
        expected_notes(&env).await,
        Duration::from_secs(60),
    )
    .await;
    halt_reads(&daemon, "notes", 0.0).await;
    assert!(daemon.terminate().success());
}

/// A view halted by a change it cannot follow (a statement-format DELETE: no row image, so its
/// item cannot be removed) stays halted through a pass that removes nothing (after an `ADD
/// COLUMN` to a table the view takes every column of): such a pass writes the rows there are
/// and leaves the deleted row's item. Before 2026-12-07 that pass lifted the halt, and the
/// item of the deleted row stayed for good with the view shown as following the source (found
/// by a review; seen failing). `rowcast snapshot --view`, whose pass removes what it did not
/// write, rebuilds it.
#[tokio::test(flavor = "multi_thread")]
async fn a_halt_is_lifted_only_by_a_pass_that_removes_what_it_did_not_write() {
    let env = Env::new("edgehaltclean").await;
    let (table, daemon) = env.three_notes().await;
    // Started again once the new view's first pass and its cleanup are done: a pass of this
    // run has no cleanup unless it asks for one.
    first_cleanup_done(&env, &daemon).await;
    assert!(daemon.terminate().success());
    let daemon = env.start().await;
    env.sql("SET SESSION binlog_format = 'STATEMENT'; DELETE FROM notes WHERE id = 2")
        .await;
    halt_reads(&daemon, "notes", 1.0).await;
    env.sql("ALTER TABLE notes ADD COLUMN extra INT NOT NULL DEFAULT 7")
        .await;
    eventually(
        "the pass after the ALTER done",
        Duration::from_secs(60),
        || async { daemon.logged("backfill done") >= 2 },
    )
    .await;
    // The pass's last chunk is merged before it is logged done: a barrier later, projected.
    env.sql("INSERT INTO notes (id, body) VALUES (4, 'four')")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        halted(&daemon, "notes").await,
        1.0,
        "a pass that removes nothing lifted the halt"
    );
    env.snapshot("notes");
    let expected: Vec<Value> = Env::notes(&[(1, "one"), (3, "three"), (4, "four")])
        .into_iter()
        .map(|mut item| {
            item["extra"] = json!(7);
            item
        })
        .collect();
    env.converge(&table, expected, Duration::from_secs(60))
        .await;
    assert_eq!(halted(&daemon, "notes").await, 0.0);
    assert!(daemon.terminate().success());
}

/// A view added by a reload while another view of its table is halted (the checkpoint held at
/// the halting change, which the new pipeline reads again and which halts the new view too,
/// before its first chunk): its first pass rebuilds it, as it has no item that could be stale.
/// The review of the mend above found it halted for good and never filled (seen failing).
#[tokio::test(flavor = "multi_thread")]
async fn a_view_added_while_another_of_its_table_is_halted_is_filled() {
    let (env, table) = notes("edgehaltnew", "").await;
    env.sql("INSERT INTO notes VALUES (1, 'one', '1'), (2, 'two', '2')")
        .await;
    let daemon = env.start().await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    env.sql("SET SESSION binlog_format = 'STATEMENT'; DELETE FROM notes WHERE id = 2")
        .await;
    let halted = |view: &'static str| {
        let daemon = &daemon;
        async move {
            let (_, metrics) = daemon.get("/metrics").await;
            metric(&metrics, &format!("rowcast_view_halted{{view=\"{view}\"}}"))
        }
    };
    eventually("the view to halt", Duration::from_secs(30), || async {
        halted("notes").await == 1.0
    })
    .await;
    let other = env.table("other");
    env.write_view(
        "other.toml",
        &NOTES
            .replace("name = \"notes\"", "name = \"other\"")
            .replace("TABLE", &other),
    );
    env.create_tables();
    let (status, body) = http_post(daemon.api_port, "/v1/reload").await;
    assert_eq!(status, 202, "{body}");
    env.converge(&other, expected_notes(&env).await, Duration::from_secs(60))
        .await;
    assert_eq!(halted("other").await, 0.0);
    assert_eq!(halted("notes").await, 1.0);
    assert!(daemon.terminate().success());
}

/// As above, with the pass the `ADD COLUMN` began saved in the checkpoint before its first
/// chunk, and rowcast stopped there: the statement-format DELETE made while it is stopped halts
/// the view at the restart, and the pass, read after it, still removes nothing, so it must
/// not lift the halt. The review of the first version of "a view's very first pass lifts a
/// halt" found such a saved pass taken for a first one (seen failing: the halt lifted, item 2
/// kept).
#[tokio::test(flavor = "multi_thread")]
async fn a_pass_restarted_and_saved_before_a_stop_does_not_lift_a_halt_after_it() {
    let env = Env::new("edgehaltsaved").await;
    let table = env.notes_view().await;
    env.write_config("[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 100\n");
    env.create_tables();
    env.sql("INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')")
        .await;
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "snapshot.before_backfill=sleep8000")]);
    daemon.wait_ready().await;
    env.converge(
        &table,
        Env::notes(&[(1, "one"), (2, "two"), (3, "three")]),
        Duration::from_secs(30),
    )
    .await;
    first_cleanup_done(&env, &daemon).await;
    env.sql("ALTER TABLE notes ADD COLUMN extra INT NOT NULL DEFAULT 7")
        .await;
    eventually(
        "the restarted pass in the checkpoint",
        Duration::from_secs(20),
        || async {
            saved_checkpoint(&env)
                .is_some_and(|checkpoint| checkpoint["backfill"]["notes"]["done"] != json!(true))
        },
    )
    .await;
    assert!(daemon.terminate().success());
    env.sql("SET SESSION binlog_format = 'STATEMENT'; DELETE FROM notes WHERE id = 2")
        .await;
    let daemon = env.start().await;
    eventually("the pass done", Duration::from_secs(60), || async {
        daemon.logged("backfill done") >= 2
    })
    .await;
    env.sql("INSERT INTO notes (id, body) VALUES (4, 'four')")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "rowcast_view_halted{view=\"notes\"}"),
        1.0,
        "a pass that removes nothing lifted the halt"
    );
    assert!(daemon.terminate().success());
}

/// A lazy view halted by a statement-format DELETE, made eager by a reload: its first pass
/// rebuilds it and removes what it did not write, the item of the deleted row with the rest. A
/// lazy view has no progress to tell, so its first eager pass is a new view's, which has a
/// cleanup. The review of the third round found it lifted without one (the deleted row's item
/// kept; seen failing).
#[tokio::test(flavor = "multi_thread")]
async fn a_halted_lazy_view_made_eager_loses_the_items_of_rows_deleted_meanwhile() {
    let env = Env::new("edgehaltlazy").await;
    env.sql("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(40))")
        .await;
    let table = env.table("notes");
    let view = format!(
        "name = \"notes\"\ntable = \"{table}\"\nsource = \"{{DB}}.notes\"\n[key]\npk = \"N#{{id}}\"\nsk = \"NOTE\"\n"
    );
    env.write_view("notes.toml", &format!("{view}[fill]\nmode = \"lazy\"\n"));
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;
    env.sql("INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')")
        .await;
    env.converge(
        &table,
        Env::notes(&[(1, "one"), (2, "two"), (3, "three")]),
        Duration::from_secs(30),
    )
    .await;
    env.sql("SET SESSION binlog_format = 'STATEMENT'; DELETE FROM notes WHERE id = 2")
        .await;
    halt_reads(&daemon, "notes", 1.0).await;
    env.write_view("notes.toml", &view);
    let (status, body) = http_post(daemon.api_port, "/v1/reload").await;
    assert_eq!(status, 202, "{body}");
    env.converge(
        &table,
        Env::notes(&[(1, "one"), (3, "three")]),
        Duration::from_secs(60),
    )
    .await;
    halt_reads(&daemon, "notes", 0.0).await;
    assert!(daemon.terminate().success());
}
