//! Crashes and restarts of rowcast: SIGTERM drains and resumes; `kill -9` under a write load,
//! twice, then restart, and the whole view equals an independent evaluation over MariaDB; a
//! checkpoint whose binlog is gone stops rowcast with a clear error instead of skipping data.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::accounts::{expected, setup, workload};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn kill9_under_load_then_restart_converges() {
    let (env, table) = setup("kill9", "").await;
    let mut daemon = env.start().await;
    let env = std::sync::Arc::new(env);
    let load = {
        let env = env.clone();
        tokio::spawn(async move { workload(&env, 0x5eed_1234, 1500).await })
    };
    for pause_ms in [700u64, 1100] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        daemon.kill9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        daemon = env.start().await;
    }
    load.await.unwrap();
    env.converge(&table, expected(&env).await, Duration::from_secs(60))
        .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(
        metrics.contains("rowcast_checkpoint_commits_total"),
        "{metrics}"
    );
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_restart_resumes_from_the_file_checkpoint() {
    let (env, table) = setup(
        "sigterm",
        "[checkpoint]\npath = \"state/checkpoint.json\"\ninterval_ms = 200\n",
    )
    .await;
    let daemon = env.start().await;
    workload(&env, 42, 200).await;
    env.converge(&table, expected(&env).await, Duration::from_secs(30))
        .await;
    let status = daemon.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    let checkpoint: Value = serde_json::from_str(
        &std::fs::read_to_string(env.dir.join("state/checkpoint.json")).unwrap(),
    )
    .unwrap();
    assert!(
        checkpoint["position"]["pos"].as_u64().unwrap() > 4,
        "{checkpoint}"
    );
    // Changes while rowcast is down arrive after the restart, across a binlog rotation.
    workload(&env, 43, 100).await;
    env.sql("FLUSH BINARY LOGS").await;
    workload(&env, 44, 100).await;
    let daemon = env.start().await;
    env.converge(&table, expected(&env).await, Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn purged_checkpoint_position_is_a_clear_error() {
    let (env, _table) = setup("purged", "[checkpoint]\npath = \"checkpoint.json\"\n").await;
    std::fs::write(
        env.dir.join("checkpoint.json"),
        r#"{"position": {"file": "binlog.000000", "pos": 4}, "seq": 10, "updated_ms": 0}"#,
    )
    .unwrap();
    let out = env.rowcast(&["run", "--config", env.config_path().to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("binlog.000000:4") && stderr.contains("no longer on the server"),
        "{stderr}"
    );
    assert!(stderr.contains("oldest binlog: binlog."), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_by_gtid_needs_no_binlog_file_name() {
    let (env, table) = setup(
        "gtid",
        "[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 200\n",
    )
    .await;
    let config = env.config_path();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "max_backoff_ms = 1000\n",
        "max_backoff_ms = 1000\nresume = \"gtid\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let daemon = env.start().await;
    workload(&env, 77, 100).await;
    env.converge(&table, expected(&env).await, Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
    // Pretend the checkpoint was taken on another server: its file name means nothing here.
    let path = env.dir.join("checkpoint.json");
    let mut checkpoint: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let gtid = checkpoint["position"]["gtid"].as_str().unwrap().to_string();
    assert!(
        gtid.split(',').all(|g| g.split('-').count() == 3),
        "MariaDB GTID state: {gtid}"
    );
    checkpoint["position"]["file"] = "elsewhere-bin.000042".into();
    checkpoint["position"]["pos"] = 4.into();
    std::fs::write(&path, checkpoint.to_string()).unwrap();
    workload(&env, 78, 100).await;
    let daemon = env.start().await;
    env.converge(&table, expected(&env).await, Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn purged_position_with_rebackfill_starts_over_and_fills_again() {
    let (env, table) = setup("purgedfill", "[checkpoint]\npath = \"checkpoint.json\"\n").await;
    rebackfill_on_purged(&env);
    workload(&env, 99, 150).await;
    std::fs::write(
        env.dir.join("checkpoint.json"),
        r#"{"position": {"file": "binlog.000000", "pos": 4}, "seq": 10, "updated_ms": 0, "backfill": {"accounts": {"done": true, "rows": 0}}}"#,
    )
    .unwrap();
    let daemon = env.start().await;
    workload(&env, 100, 50).await;
    env.converge(&table, expected(&env).await, Duration::from_secs(60))
        .await;
    assert!(daemon.terminate().success());
    let checkpoint: Value =
        serde_json::from_str(&std::fs::read_to_string(env.dir.join("checkpoint.json")).unwrap())
            .unwrap();
    assert!(
        checkpoint["seq"].as_u64().unwrap() > 10,
        "versions keep counting up: {checkpoint}"
    );
    assert_eq!(
        checkpoint["backfill"]["accounts"]["done"], true,
        "{checkpoint}"
    );
}

/// A purged checkpoint with `on_purged = "rebackfill"` while the items already hold versions
/// past the checkpoint's counter (an earlier run wrote transactions after its last checkpoint):
/// the new counter starts above them, or the backfill's writes would be dropped as stale.
#[tokio::test(flavor = "multi_thread")]
async fn rebackfill_versions_start_above_everything_written() {
    let (env, table) = setup(
        "purgedversions",
        "[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 100\n",
    )
    .await;
    rebackfill_on_purged(&env);
    // An older checkpoint of the same run, whose binlog is gone since.
    written_then_purged(&env, &table, 5, 50).await;
    // Updates only: every item stays, so each one's version can be compared (deletes, moves and
    // filter exits in a purged binlog: `rebackfill_removes_what_the_purged_binlog_would_have_removed`).
    env.sql("UPDATE accounts SET balance = balance + 7, state = 'moved'")
        .await;
    let before = versions(&env, &table).await;
    let daemon = env.start().await;
    env.converge(&table, expected(&env).await, Duration::from_secs(60))
        .await;
    assert!(daemon.terminate().success());
    // Observed as DynamoDB Streams would: no item's version went down.
    let after = versions(&env, &table).await;
    for (key, version) in &before {
        if let Some(now) = after.get(key) {
            assert!(now > version, "{key}: version {version} then {now}");
        }
    }
}

/// A purged checkpoint with `on_purged = "rebackfill"` after rows were deleted, moved to
/// another key and filtered out while rowcast was down: changes only the purged binlog held. The
/// eager view is filled again and then loses the items no row makes any more; the lazy view
/// (items made as rows change) loses every item written before the purge, since any of them may
/// be stale, and is filled again as rows change or on a miss.
#[tokio::test(flavor = "multi_thread")]
async fn rebackfill_removes_what_the_purged_binlog_would_have_removed() {
    let (env, table) = setup(
        "purgedstale",
        "[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 100\n",
    )
    .await;
    let lazy = lazy_view_purged(&env, &table, 21).await;
    // While rowcast is down, in a binlog it will never read: deletes, key moves, filter exits.
    env.sql("DELETE FROM accounts WHERE id % 3 = 0").await;
    env.sql("UPDATE accounts SET owner = owner + 100 WHERE id % 3 = 1")
        .await;
    env.sql("UPDATE accounts SET state = 'closed' WHERE id % 5 = 2")
        .await;
    let stale = |items: &[Value], expected: &[Value]| {
        items.iter().filter(|item| !expected.contains(item)).count()
    };
    let now = expected(&env).await;
    let lazy_items = env.items(&lazy).await;
    assert!(
        stale(&env.items(&table).await, &now) > 0 && stale(&lazy_items, &now) > 0,
        "the changes while down left items no row makes"
    );
    let daemon = env.start().await;
    env.converge(&table, expected(&env).await, Duration::from_secs(60))
        .await;
    // The lazy view: nothing left that no row makes (its cleanup follows within a second or two).
    no_stale_items(&env, &lazy, Duration::from_secs(30)).await;
    // And it goes on being made as rows change.
    env.sql("UPDATE accounts SET balance = balance + 1 WHERE id % 3 = 1")
        .await;
    env.converge(&lazy, expected_moved(&env).await, Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
    let log = std::fs::read_to_string(env.dir.join("rowcast.log")).unwrap();
    let cleaned: Vec<&str> = log.lines().filter(|l| l.contains("cleanup done")).collect();
    for view in ["view=accounts ", "view=lazyaccounts "] {
        assert!(
            cleaned.iter().any(|line| line.contains(view)),
            "no cleanup of {view}: {cleaned:?}"
        );
    }
}

/// The view's items of the rows `id % 3 = 1` (those the lazy test changes after its restart).
async fn expected_moved(env: &common::Env) -> Vec<Value> {
    expected(env)
        .await
        .into_iter()
        .filter(|item| {
            let sk = item["sk"].as_str().unwrap();
            sk[4..].parse::<u64>().unwrap() % 3 == 1
        })
        .collect()
}

/// After a purged start, a lazy view's fill made before the first new transaction is read
/// (an idle server) is one of the new items: the view's sweep of the items from before the purge
/// (held here until the fill is made) leaves it.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn rebackfill_keeps_a_lazy_fill_made_before_the_first_transaction() {
    let (env, table) = setup(
        "purgedfillfirst",
        "[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 100\n",
    )
    .await;
    let lazy = lazy_view_purged(&env, &table, 22).await;
    // A row no item of the lazy view has (inserted in the purged binlog): reading it fills.
    env.sql("INSERT INTO accounts VALUES (1000, 7, 70, 'open')")
        .await;
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "cleanup.before_sweep=sleep3000@*")]);
    daemon.wait_ready().await;
    let (status, body) = daemon
        .get("/v1/views/lazyaccounts/item?pk=OWNER%237&sk=ACC%23001000")
        .await;
    assert_eq!(status, 200, "{body}");
    let log = env.dir.join("rowcast.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .any(|l| l.contains("cleanup done") && l.contains("view=lazyaccounts "))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no cleanup of the lazy view"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let filled =
        serde_json::json!({"pk": "OWNER#7", "sk": "ACC#001000", "balance": 70, "state": "open"});
    assert_eq!(env.items(&lazy).await, vec![filled]);
    assert!(daemon.terminate().success());
}

/// A lazy view's cleanup pending after a purged start stays due when the view's definition
/// changes before the sweep ran (here the daemon is killed while the sweep is held): the next
/// run sweeps it.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn a_pending_lazy_cleanup_survives_a_definition_change() {
    let (env, table) = setup(
        "purgedredefined",
        "[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 100\n",
    )
    .await;
    let lazy = lazy_view_purged(&env, &table, 23).await;
    env.sql("DELETE FROM accounts WHERE id % 2 = 0").await;
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "cleanup.before_sweep=sleep60000@*")]);
    daemon.wait_ready().await;
    daemon.kill9();
    let path = env.dir.join("views/lazy.toml");
    let view = std::fs::read_to_string(&path).unwrap();
    let redefined = view.replace(
        "filter = \"state <> 'closed'\"",
        "filter = \"state <> 'closed' AND balance >= 0\"",
    );
    assert_ne!(view, redefined);
    std::fs::write(&path, redefined).unwrap();
    let daemon = env.start().await;
    no_stale_items(&env, &lazy, Duration::from_secs(60)).await;
    assert!(daemon.terminate().success());
}

/// Adds a lazy view of the accounts (`lazyaccounts`, in its own table, returned) and
/// `on_purged = "rebackfill"`, then runs workload `seed` and purges the checkpoint's binlog
/// (`written_then_purged`).
async fn lazy_view_purged(env: &common::Env, table: &str, seed: u64) -> String {
    let lazy = env.table("lazy");
    let view = std::fs::read_to_string(env.dir.join("views/accounts.toml")).unwrap();
    env.write_view(
        "lazy.toml",
        &format!(
            "{}[fill]\nmode = \"lazy\"\n",
            view.replace("name = \"accounts\"", "name = \"lazyaccounts\"")
                .replace(table, &lazy)
        ),
    );
    rebackfill_on_purged(env);
    env.create_tables();
    written_then_purged(env, table, seed, 0).await;
    lazy
}

/// Polls until `table` holds no item that no row makes (a lazy view: fewer items are fine).
async fn no_stale_items(env: &common::Env, table: &str, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let now = expected(env).await;
        let items = env.items(table).await;
        let left = items.iter().filter(|item| !now.contains(item)).count();
        if left == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} stale items stay in {table}; log: {}",
            env.dir.join("rowcast.log").display()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn rebackfill_on_purged(env: &common::Env) {
    let config = env.config_path();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "max_backoff_ms = 1000\n",
        "max_backoff_ms = 1000\non_purged = \"rebackfill\"\n",
    );
    std::fs::write(&config, text).unwrap();
}

/// Runs the daemon through workload `seed` until the view holds it and stops it; then its
/// checkpoint names a binlog the server does not have, its counter `behind` transactions back.
async fn written_then_purged(env: &common::Env, table: &str, seed: u64, behind: u64) {
    let daemon = env.start().await;
    workload(env, seed, 150).await;
    env.converge(table, expected(env).await, Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
    let path = env.dir.join("checkpoint.json");
    let mut checkpoint: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    checkpoint["position"]["file"] = "binlog.000000".into();
    checkpoint["position"]["pos"] = 4.into();
    checkpoint["seq"] = (checkpoint["seq"].as_u64().unwrap() - behind).into();
    std::fs::write(&path, checkpoint.to_string()).unwrap();
}

/// Item key → the version rowcast wrote it at.
async fn versions(env: &common::Env, table: &str) -> std::collections::HashMap<String, u128> {
    let scan = env.ddb.scan().table_name(table).send().await.unwrap();
    scan.items()
        .iter()
        .map(|item| {
            let key = format!(
                "{} {}",
                item["pk"].as_s().unwrap(),
                item["sk"].as_s().unwrap()
            );
            let version = item["_version"].as_n().unwrap().parse().unwrap();
            (key, version)
        })
        .collect()
}

/// `writer.mode = "conditional"` keeps the version guard while writing in batches: an item
/// holding a newer version is left alone by puts and deletes, absent and older items are
/// written, the same changes replayed (equal versions) change nothing — and the guarded
/// writes take far fewer requests than one per item.
#[tokio::test(flavor = "multi_thread")]
async fn conditional_mode_keeps_the_guard_in_few_requests() {
    let (env, table, first_checkpoint) = written_then_overtaken("guarded").await;
    let daemon = env.start().await;
    // 317 guarded writes at most: 100 refused by the stored versions (and the delete of
    // 95..=100 too, unless a window coalesced it with the update).
    let metrics = newer_items_stay(&env, &table, &daemon).await;
    let (conditional, checks) = (
        requests(&metrics, "conditional"),
        requests(&metrics, "check"),
    );
    assert!(stale(&metrics) <= 106.0, "{metrics}");
    assert!(checks > 0.0, "no version check: {metrics}");
    assert!(
        conditional + checks <= 100.0,
        "{conditional} conditional writes and {checks} version checks for 300 guarded writes"
    );
    assert!(daemon.terminate().success());
    let written = versions(&env, &table).await;
    // The same changes again, from the first checkpoint: equal versions, nothing changes (the
    // rows deleted in SQL come back with their replayed update, and go with their delete).
    let seq = |item: &Item| item["seq"].as_n().unwrap().parse::<u64>().unwrap();
    let end = seq(&checkpoint(&env).await);
    env.ddb
        .put_item()
        .table_name(env.table("control"))
        .set_item(Some(first_checkpoint))
        .send()
        .await
        .unwrap();
    let daemon = env.start().await;
    common::eventually("the replay is written", Duration::from_secs(60), || async {
        seq(&checkpoint(&env).await) >= end
    })
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(stale(&metrics) >= 289.0, "{metrics}");
    env.converge(&table, want(expected(&env).await), Duration::from_secs(60))
        .await;
    assert_eq!(versions(&env, &table).await, written);
    assert!(daemon.terminate().success());
}

/// A conditional-mode pipeline (control-table checkpoint) that wrote 300 accounts and stopped,
/// and its checkpoint then; since, [`newer_and_gone_items`], and in SQL every balance changed and
/// 17 rows deleted, for the next run to write.
async fn written_then_overtaken(name: &str) -> (common::Env, String, Item) {
    let (env, table) = setup(
        name,
        "[writer]\nmode = \"conditional\"\nflush_interval_ms = 5\n",
    )
    .await;
    let rows: Vec<String> = (1..=300)
        .map(|id| format!("({id}, {}, {id}, 'open')", id % 7))
        .collect();
    env.sql(&format!("INSERT INTO accounts VALUES {}", rows.join(",")))
        .await;
    let daemon = env.start().await;
    env.converge(&table, expected(&env).await, Duration::from_secs(60))
        .await;
    assert!(daemon.terminate().success());
    let first_checkpoint = checkpoint(&env).await;
    newer_and_gone_items(&env, &table).await;
    env.sql("UPDATE accounts SET balance = balance + 1000")
        .await;
    env.sql("DELETE FROM accounts WHERE id BETWEEN 95 AND 100 OR id BETWEEN 290 AND 300")
        .await;
    (env, table, first_checkpoint)
}

/// The run after [`written_then_overtaken`] converges to [`want`] and counts at least the 100
/// writes the newer items refuse as stale; its metrics then.
async fn newer_items_stay(env: &common::Env, table: &str, daemon: &common::Daemon) -> String {
    env.converge(table, want(expected(env).await), Duration::from_secs(60))
        .await;
    common::eventually("100 stale writes", Duration::from_secs(30), || async {
        stale(&daemon.get("/metrics").await.1) >= 100.0
    })
    .await;
    daemon.get("/metrics").await.1
}

fn stale(metrics: &str) -> f64 {
    common::metric(metrics, "rowcast_stale_writes_total{view=\"accounts\"}")
}

/// Requests of `kind` (batch, check, conditional) the writer made.
fn requests(metrics: &str, kind: &str) -> f64 {
    common::metric(
        metrics,
        &format!("rowcast_batch_write_duration_seconds_count{{kind=\"{kind}\"}}"),
    )
}

/// Items 1..=100 of the accounts view hold a newer version than anything the next run writes (as
/// if written later, balance -1); items 101..=150 are gone.
async fn newer_and_gone_items(env: &common::Env, table: &str) {
    let newer = (u128::from(u64::MAX) << 32).to_string();
    for id in 1..=150i64 {
        let key = common::app::key(&[
            ("pk", &format!("OWNER#{}", id % 7)),
            ("sk", &format!("ACC#{id:06}")),
        ]);
        if id <= 100 {
            env.ddb
                .update_item()
                .table_name(table)
                .set_key(Some(key))
                .update_expression("SET #v = :v, balance = :b")
                .expression_attribute_names("#v", "_version")
                .expression_attribute_values(":v", common::app::n(&newer))
                .expression_attribute_values(":b", common::app::n("-1"))
                .send()
                .await
                .unwrap();
        } else {
            common::app::delete(env, table, key).await;
        }
    }
}

/// The view after [`newer_and_gone_items`] and more changes in SQL: the newer items stay as they
/// are (even where the row is deleted); the rest follows SQL (`expected`).
fn want(expected: Vec<Value>) -> Vec<Value> {
    let mut want: Vec<Value> = expected
        .into_iter()
        .filter(|item| item["sk"].as_str().unwrap() > "ACC#000100")
        .collect();
    want.extend((1..=100).map(|id: i64| {
        serde_json::json!({"pk": format!("OWNER#{}", id % 7), "sk": format!("ACC#{id:06}"), "balance": -1, "state": "open"})
    }));
    want
}

/// Keys a version check leaves unread (DynamoDB returned them as unprocessed; here failpoint
/// `writer.check_unprocessed` makes every other key of every check so) are neither absent nor
/// stored: they go as conditional single writes, so the newer items among them are left alone
/// and deletes of them are not skipped as deletes of absent items.
#[tokio::test(flavor = "multi_thread")]
async fn keys_a_check_leaves_unread_go_as_conditional_writes() {
    let (env, table, _) = written_then_overtaken("guardunread").await;
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "writer.check_unprocessed=error@*")]);
    daemon.wait_ready().await;
    let metrics = newer_items_stay(&env, &table, &daemon).await;
    assert!(
        requests(&metrics, "check") > 0.0,
        "no version check: {metrics}"
    );
    // About half of the 317 guarded writes were left unread.
    assert!(requests(&metrics, "conditional") >= 100.0, "{metrics}");
    assert!(
        common::metric(
            &metrics,
            "rowcast_write_retries_total{reason=\"unprocessed\"}"
        ) > 0.0,
        "{metrics}"
    );
    assert!(daemon.terminate().success());
}

/// Guarded writes fall back to conditional single writes where a check cannot be used: with a
/// file checkpoint (no owner fences another instance) and when DynamoDB refuses the check
/// (failpoint `writer.check`, as a policy without `dynamodb:BatchGetItem` would) — the views
/// still converge, nothing stalls.
#[tokio::test(flavor = "multi_thread")]
async fn guarded_writes_fall_back_to_conditional_single_writes() {
    let file = "[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 100\n";
    for (name, checkpoint, failpoints) in [
        ("guardfile", file, ""),
        ("guardrefused", "", "writer.check=error@*"),
    ] {
        let extra =
            format!("[writer]\nmode = \"conditional\"\nflush_interval_ms = 5\n\n{checkpoint}");
        let (env, table) = setup(name, &extra).await;
        let rows: Vec<String> = (1..=200)
            .map(|id| format!("({id}, {}, {id}, 'open')", id % 7))
            .collect();
        env.sql(&format!("INSERT INTO accounts VALUES {}", rows.join(",")))
            .await;
        let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", failpoints)]);
        daemon.wait_ready().await;
        env.sql("UPDATE accounts SET balance = balance + 1000 WHERE id <= 100")
            .await;
        env.converge(&table, expected(&env).await, Duration::from_secs(60))
            .await;
        // Each of the 200 rows written at least once, one conditional write each (a row's
        // backfill and its update may be coalesced); the count moves after the view does.
        common::eventually(
            "200 conditional writes",
            Duration::from_secs(30),
            || async { requests(&daemon.get("/metrics").await.1, "conditional") >= 200.0 },
        )
        .await;
        let (_, metrics) = daemon.get("/metrics").await;
        assert_eq!(requests(&metrics, "check"), 0.0, "{name}: {metrics}");
        assert!(daemon.terminate().success());
    }
}

type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// The checkpoint item of the test's pipeline in its control table.
async fn checkpoint(env: &common::Env) -> Item {
    let key = common::app::key(&[
        ("pk", &format!("checkpoint#{}", env.server_id)),
        ("sk", "stream"),
    ]);
    let got = env
        .ddb
        .get_item()
        .table_name(env.table("control"))
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    got.item.expect("a checkpoint")
}
