//! Crashes at named points of the pipeline (`src/util/failpoint.rs`, built with the `failpoints`
//! feature that the test command enables): the process is aborted exactly there — as `kill -9`
//! would, no drain, no final checkpoint — then started again without the crash point, and the
//! views must equal the source:
//! - after a window is written and before its barrier is acknowledged;
//! - between a snapshot read (a backfill chunk) and its merge into the stream;
//! - between a checkpoint save and the next barrier;
//! - between a write-back statement's commit and the save of its stream position;
//! - a write-back consumer that panics is started again (counted) and then applies changes;
//! - right after a join overflow, before the backfill that replaces the dropped marks starts.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::accounts::{expected, setup, workload};
use common::app::{dead_letters, key, s, update};
use common::{eventually, metric, shop, Env};
use serde_json::json;

/// Runs `transactions` of the accounts workload while rowcast crashes at `point`, then starts
/// it again and checks that the view converges.
async fn crash_under_load(name: &str, point: &str, extra_config: &str, transactions: usize) {
    let (env, table) = setup(name, extra_config).await;
    let env = Arc::new(env);
    let mut daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", point)]);
    daemon.wait_until(|status, _| status == 200).await;
    let load = {
        let env = env.clone();
        tokio::spawn(async move { workload(&env, 0xfa11, transactions).await })
    };
    let status = daemon.exited(Duration::from_secs(60)).await;
    assert!(!status.success(), "{status:?}");
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    let name = point.split('=').next().unwrap();
    assert!(log.contains(&format!("failpoint {name}: abort")), "{log}");
    let daemon = env.start().await;
    load.await.unwrap();
    workload(&env, 0xfa12, 50).await;
    env.converge(&table, expected(&env).await, Duration::from_secs(60))
        .await;
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn crash_after_a_window_is_written_before_its_acknowledgement() {
    // The 20th window: a busy shared DynamoDB Local makes windows larger and fewer.
    crash_under_load("cpafterwrite", "lane.after_write=abort@20", "", 600).await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn crash_between_a_checkpoint_save_and_the_next_barrier() {
    crash_under_load(
        "cpaftersave",
        "checkpoint.after_save=abort@4",
        "[checkpoint]\npath = \"state/checkpoint.json\"\ninterval_ms = 100\n",
        600,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn crash_between_a_snapshot_read_and_its_merge() {
    let (env, table) = setup("cpbeforemerge", "[backfill]\nchunk_rows = 300\n").await;
    env.sql("INSERT INTO accounts SELECT seq, seq % 20, seq * 7, IF(seq % 9 = 0, 'closed', 'open') FROM seq_1_to_3000")
        .await;
    let mut daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "merge.before_merge=abort@4")]);
    let status = daemon.exited(Duration::from_secs(60)).await;
    assert!(!status.success(), "{status:?}");
    // Changes while rowcast is down, some to rows the backfill had not copied yet.
    workload(&env, 0xbac, 200).await;
    let daemon = env.start().await;
    env.converge(&table, expected(&env).await, Duration::from_secs(60))
        .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(
        metric(&metrics, "rowcast_backfill_rows_total") < 3000.0,
        "the backfill started over instead of resuming: {metrics}"
    );
    assert!(daemon.terminate().success());
}

const NOTES: &str = "name = \"notes\"\ntable = \"TABLE\"\nsource = \"{DB}.notes\"\n[key]\npk = \"NOTE#{id}\"\n[attributes]\nnote = \"note\"\n[writeback]\nenabled = true\nattributes = [\"note\"]\n";

async fn notes(name: &str) -> (Env, String) {
    let env = Env::new(name).await;
    let table = env.table("views");
    env.sql("CREATE TABLE notes (id INT PRIMARY KEY, note VARCHAR(40) NOT NULL); INSERT INTO notes VALUES (1, 'one'), (2, 'two')")
        .await;
    env.write_view("notes.toml", &NOTES.replace("TABLE", &table));
    env.write_config("[dead_letter]\npath = \"dead.jsonl\"\n");
    env.create_tables();
    (env, table)
}

async fn note(env: &Env, id: i64) -> String {
    let found: Vec<String> = env
        .query(&format!("SELECT note FROM notes WHERE id = {id}"))
        .await;
    found.into_iter().next().unwrap()
}

async fn expected_notes(env: &Env) -> Vec<serde_json::Value> {
    let rows: Vec<(i64, String)> = env.query("SELECT id, note FROM notes").await;
    rows.into_iter()
        .map(|(id, note)| json!({"pk": format!("NOTE#{id}"), "note": note}))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn crash_between_a_write_back_statement_and_its_position() {
    let (env, table) = notes("cpafterapply").await;
    let mut daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "writeback.after_apply=abort@1")]);
    daemon.wait_ready().await;
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    update(
        &env,
        &table,
        key(&[("pk", "NOTE#1")]),
        "SET note = :n",
        &[(":n", s("from-app"))],
    )
    .await;
    let status = daemon.exited(Duration::from_secs(30)).await;
    assert!(!status.success(), "{status:?}");
    assert_eq!(
        note(&env, 1).await,
        "from-app",
        "the statement was committed"
    );
    // Restarted, the record is read again: applied once more without harm.
    let daemon = env.start().await;
    update(
        &env,
        &table,
        key(&[("pk", "NOTE#2")]),
        "SET note = :n",
        &[(":n", s("after"))],
    )
    .await;
    eventually("the next change", Duration::from_secs(30), || async {
        note(&env, 2).await == "after"
    })
    .await;
    assert_eq!(note(&env, 1).await, "from-app");
    env.converge(&table, expected_notes(&env).await, Duration::from_secs(30))
        .await;
    assert!(dead_letters(&env).is_empty(), "{:?}", dead_letters(&env));
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn a_write_back_consumer_that_panics_is_started_again() {
    let (env, table) = notes("cpwbpanic").await;
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "writeback.follow=panic@1")]);
    daemon.wait_ready().await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "rowcast_writeback_restarts_total"),
        1.0,
        "{metrics}"
    );
    update(
        &env,
        &table,
        key(&[("pk", "NOTE#1")]),
        "SET note = :n",
        &[(":n", s("after-restart"))],
    )
    .await;
    eventually(
        "the change to reach SQL",
        Duration::from_secs(30),
        || async { note(&env, 1).await == "after-restart" },
    )
    .await;
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(log.contains("failpoint writeback.follow"), "{log}");
    assert!(daemon.terminate().success());
}

/// `kill -9` right after a commit whose join marks overflowed (the marks dropped, the backfill
/// that replaces them not begun), with changes made while rowcast is down: the views converge.
/// The overflow is in the barrier of its own transaction (the view's progress reset), and the
/// marks still waiting hold the checkpoint; this passed before and after the review of issue
/// 10, and guards the combination.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn kill9_after_a_join_overflow_converges() {
    let env = Env::new("overflowkill").await;
    let table = shop::setup(
        &env,
        "[backfill]\njoin_max_dirty_keys = 20\nchunk_rows = 50\n[checkpoint]\npath = \"state/checkpoint.json\"\ninterval_ms = 100\n",
    )
    .await;
    env.sql("INSERT INTO customers VALUES (1, 'only', NULL, 'std')")
        .await;
    env.sql(
        "INSERT INTO orders (id, customer_id, status) SELECT seq, 1, 'open' FROM seq_1_to_2000",
    )
    .await;
    env.sql("INSERT INTO order_items SELECT seq, seq, 1, 'sku', 1, 1.00 FROM seq_1_to_300")
        .await;
    // The backfill replacing the marks starts 3 s late: rowcast dies before it begins.
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "snapshot.before_backfill=sleep3000@*")]);
    daemon.wait_until(|status, _| status == 200).await;
    env.converge(&table, shop::expected(&env).await, Duration::from_secs(120))
        .await;
    // One line of each of 300 orders changes in one transaction: far more orders are marked
    // than a view may hold (20), however many refresh batches go out meanwhile.
    env.sql("UPDATE order_items SET quantity = 5").await;
    // rowcast dies as soon as the overflow shows, before the backfill that replaces the
    // dropped marks begins.
    eventually("the overflow", Duration::from_secs(60), || async {
        let (_, metrics) = daemon.get("/metrics").await;
        metric(&metrics, "rowcast_join_overflows_total") >= 1.0
    })
    .await;
    daemon.kill9();
    // The reader is behind when it comes back (a few changes, not enough to overflow again).
    env.sql("UPDATE orders SET status = 'shipped' WHERE id IN (100, 200, 300)")
        .await;
    let daemon = env.start().await;
    env.converge(&table, shop::expected(&env).await, Duration::from_secs(180))
        .await;
    assert!(daemon.terminate().success());
}

/// `/healthz` tells a stalled pipeline from a slow one: a lane that hangs (transactions read,
/// none acknowledged, DynamoDB not pushing back) makes it answer 503 with the cause within the
/// stall limit (6 × the idle timeout, 30 s here), while the binlog reader itself keeps reading.
/// On the code before, it answered 200 for as long as the binlog moved.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn a_hung_lane_fails_healthz() {
    let (env, _table) = setup("cphung", "").await;
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "lane.before_write=sleep600000@*")]);
    daemon.wait_until(|status, _| status == 200).await;
    workload(&env, 0x4a6, 20).await;
    eventually(
        "/healthz to report the stall",
        Duration::from_secs(90),
        || async {
            let (status, body) = daemon.get("/healthz").await;
            status == 503 && body.contains("pipeline stalled")
        },
    )
    .await;
    daemon.kill9();
}

/// A view's definition change moves the transaction counter 2^32 on, above every version an
/// earlier run may have written. The move is saved before anything is written: a run killed
/// after its first write, then started with the old definition again (a configuration rolled
/// back, a standby still on it), counts on from above that write. On the code before, the move
/// lived in memory only: the rolled-back start counted from the checkpoint again, 2^32 below
/// the dead run's write, and every guarded write of that item was dropped as stale for good
/// (found by a review).
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn a_definition_change_keeps_its_counter_move_through_a_crash_and_a_rollback() {
    let env = Env::new("cpredefine").await;
    let table = env.table("views");
    env.sql("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(20) NOT NULL)")
        .await;
    let view = |name: &str, prefix: &str, filter: &str| {
        format!("name = \"{name}\"\ntable = \"{table}\"\nsource = \"{{DB}}.notes\"\n{filter}\n[key]\npk = \"{prefix}#{{id}}\"\n[attributes]\nbody = \"body\"\n")
    };
    env.write_view("kept.toml", &view("kept", "K", ""));
    env.write_view("shaped.toml", &view("shaped", "S", ""));
    env.write_config("[writer]\nmode = \"conditional\"\nflush_interval_ms = 5\n");
    env.create_tables();
    env.sql("INSERT INTO notes VALUES (1, 'one')").await;
    let items = |body: &str| {
        vec![
            json!({"pk": "K#1", "body": body}),
            json!({"pk": "S#1", "body": body}),
        ]
    };
    let daemon = env.start().await;
    env.converge(&table, items("one"), Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());

    // A new definition of `shaped` (same items), and a run that dies after its first write.
    env.write_view("shaped.toml", &view("shaped", "S", "filter = \"id > 0\""));
    env.sql("UPDATE notes SET body = 'two' WHERE id = 1").await;
    let mut dying = env.spawn_with(&[("ROWCAST_FAILPOINTS", "lane.after_write=abort@1")]);
    let status = dying.exited(Duration::from_secs(60)).await;
    assert!(!status.success(), "{status:?}");

    // The old definition again.
    env.write_view("shaped.toml", &view("shaped", "S", ""));
    let daemon = env.start().await;
    env.sql("UPDATE notes SET body = 'three' WHERE id = 1")
        .await;
    env.converge(&table, items("three"), Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
}

/// Two passes with a cleanup, one after the other, on a source with no commit meanwhile (a
/// definition change of both views): the second pass's first version is above the first
/// pass's rows. rowcast dies in the second pass and starts again with no commit in between.
/// The resumed chunks must still be written above that first version, or the cleanup at the
/// pass's end takes their items for stale and removes them. On the code before, a restart
/// merged snapshot rows from the first index of the transaction again, below it: the items
/// of hundreds of live rows were removed.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn a_pass_resumed_with_no_commit_between_keeps_its_items_through_the_cleanup() {
    let env = Env::new("cpquietpass").await;
    let table = env.table("views");
    env.sql(
        "CREATE TABLE alphas (id INT PRIMARY KEY, body VARCHAR(20) NOT NULL);
         CREATE TABLE betas (id INT PRIMARY KEY, body VARCHAR(20) NOT NULL);
         INSERT INTO alphas SELECT seq, CONCAT('a', seq) FROM seq_1_to_1200;
         INSERT INTO betas SELECT seq, CONCAT('b', seq) FROM seq_1_to_1200;",
    )
    .await;
    let view = |name: &str, prefix: &str, filter: &str| {
        format!("name = \"{name}\"\ntable = \"{table}\"\nsource = \"{{DB}}.{name}\"\n{filter}\n[key]\npk = \"{prefix}#{{id}}\"\n[attributes]\nbody = \"body\"\n")
    };
    env.write_view("alphas.toml", &view("alphas", "A", ""));
    env.write_view("betas.toml", &view("betas", "B", ""));
    // Two chunks a second: each chunk's progress is saved before the next is merged.
    env.write_config("[backfill]\nchunk_rows = 150\nmax_items_per_second = 300\n");
    env.create_tables();
    let items = || {
        let mut items = Vec::new();
        for id in 1..=1200 {
            items.push(json!({"pk": format!("A#{id}"), "body": format!("a{id}")}));
            items.push(json!({"pk": format!("B#{id}"), "body": format!("b{id}")}));
        }
        items
    };
    let daemon = env.start().await;
    env.converge(&table, items(), Duration::from_secs(60)).await;
    assert!(daemon.terminate().success());
    // The new views' first passes have a cleanup too (see `snapshot::driver`).
    let cleanups = || {
        std::fs::read_to_string(env.dir.join("rowcast.log"))
            .unwrap_or_default()
            .matches("cleanup done")
            .count()
    };
    let before = cleanups();

    // Both definitions change (same items): two passes with a cleanup. Dies before merging the
    // third chunk of the second pass.
    env.write_view("alphas.toml", &view("alphas", "A", "filter = \"id > 0\""));
    env.write_view("betas.toml", &view("betas", "B", "filter = \"id > 0\""));
    let mut dying = env.spawn_with(&[("ROWCAST_FAILPOINTS", "merge.before_merge=abort@11")]);
    let status = dying.exited(Duration::from_secs(60)).await;
    assert!(!status.success(), "{status:?}");
    let log = std::fs::read_to_string(&dying.log).unwrap();
    assert!(log.contains("failpoint merge.before_merge: abort"), "{log}");

    let daemon = env.start().await;
    eventually("both cleanups done", Duration::from_secs(60), || async {
        cleanups() >= before + 2
    })
    .await;
    env.converge(&table, items(), Duration::from_secs(30)).await;
    assert!(daemon.terminate().success());
}
