//! Server settings that change what the binlog holds, against the real MariaDB: a binlog event
//! larger than the session's `max_allowed_packet`, an INCIDENT event (the server lost events),
//! compressed events (`log_bin_compress`), and temporal columns in MariaDB 5.3's format
//! (`mysql56_temporal_format=OFF`), table names folded to lowercase (`lower_case_table_names`,
//! on a server of the test's own). In their own binary: the settings are the server's, global,
//! and would change what the other tests' binlogs and tables hold (the two tests here change
//! them only while no table of the other is made).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{eventually, metric, Env};
use mysql_async::prelude::Queryable;
use serde_json::json;

/// A view `name` of table `name`: key `{prefix}#{id}`, the attribute `n` only.
fn view(env: &Env, name: &str, table: &str, prefix: &str) {
    env.write_view(
        &format!("{name}.toml"),
        &format!("name = \"{name}\"\ntable = \"{table}\"\nsource = \"{{DB}}.{name}\"\n[key]\npk = \"{prefix}#{{id}}\"\n[attributes]\nn = \"n\"\n"),
    );
}

/// The tests here run one at a time: an INCIDENT event halts every view of every rowcast
/// reading the binlog at that moment, and one test needs no transaction between its INCIDENT
/// and a rotation.
static INCIDENTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// On the code before: the 5 MB event stalled the stream for good (each reconnect refused it
/// again), and the INCIDENT and the compressed event were skipped silently (their views went on
/// as if nothing was lost). Now: the large event is read, and the two others halt their views.
#[tokio::test(flavor = "multi_thread")]
async fn large_lost_and_compressed_binlog_events_are_read_or_halt_their_views() {
    let _alone = INCIDENTS.lock().await;
    let env = Env::new("serversettings").await;
    let table = env.table("views");
    env.sql("CREATE TABLE big (id INT PRIMARY KEY, n INT NOT NULL, a LONGTEXT, b LONGTEXT, c LONGTEXT); CREATE TABLE lost (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL, body LONGTEXT) ENGINE=MyISAM; CREATE TABLE packed (id INT PRIMARY KEY, n INT NOT NULL, body LONGTEXT)")
        .await;
    view(&env, "big", &table, "B");
    view(&env, "lost", &table, "L");
    view(&env, "packed", &table, "P");
    env.write_config("");
    env.create_tables();
    let mut admin = env.admin.get_conn().await.unwrap();
    admin.query_drop(format!("USE {}", env.db)).await.unwrap();
    let (packet, cache): (u64, u64) = admin
        .query_first("SELECT @@GLOBAL.max_allowed_packet, @@GLOBAL.max_binlog_stmt_cache_size")
        .await
        .unwrap()
        .unwrap();
    let restore = format!("SET GLOBAL max_allowed_packet = {packet}, max_binlog_stmt_cache_size = {cache}, log_bin_compress = OFF");

    // rowcast's connections are made while packets of 1 MB are the server's default.
    admin
        .query_drop("SET GLOBAL max_allowed_packet = 1048576")
        .await
        .unwrap();
    let daemon = env.start().await;
    let halted = |view: &'static str| {
        let daemon = &daemon;
        async move {
            let (_, metrics) = daemon.get("/metrics").await;
            metric(&metrics, &format!("rowcast_view_halted{{view=\"{view}\"}}")) == 1.0
        }
    };
    // A row of 2.7 MB: its update event, both images, is over 5 MB.
    admin
        .query_drop("INSERT INTO big VALUES (1, 0, REPEAT('a', 900000), REPEAT('b', 900000), REPEAT('c', 900000)); UPDATE big SET n = 1 WHERE id = 1; INSERT INTO big VALUES (2, 0, 'x', 'y', 'z')")
        .await
        .unwrap();
    // Waited for with the setting still on (every reconnect gets it), then put back whatever
    // happened: the next tests' server is as it was.
    let mut want = vec![json!({"pk": "B#1", "n": 1}), json!({"pk": "B#2", "n": 0})];
    want.sort_by_key(|v| v.to_string());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut items = env.items(&table).await;
    while items != want && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        items = env.items(&table).await;
    }
    admin.query_drop(&restore).await.unwrap();
    assert_eq!(items, want, "the large event was not read");

    // A compressed rows event.
    admin
        .query_drop("SET GLOBAL log_bin_compress = ON")
        .await
        .unwrap();
    let mut small = env.admin.get_conn().await.unwrap();
    small.query_drop(format!("USE {}", env.db)).await.unwrap();
    let packed = small
        .query_drop("INSERT INTO packed VALUES (1, 1, REPEAT('z', 1000))")
        .await;
    let config = env.config_path();
    let check = env.rowcast(&["check", "--config", config.to_str().unwrap(), "--connect"]);
    admin.query_drop(&restore).await.unwrap();
    packed.unwrap();
    eventually(
        "the view of the table with a compressed event to halt",
        Duration::from_secs(30),
        || halted("packed"),
    )
    .await;
    let stdout = String::from_utf8_lossy(&check.stdout);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        !check.status.success() && format!("{stdout}{stderr}").contains("log_bin_compress"),
        "{stdout}\n{stderr}"
    );
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(!halted("big").await, "a view of another table halted");
    assert_eq!(
        metric(
            &metrics,
            &format!(
                "rowcast_unreadable_changes_total{{cause=\"compressed\",table=\"{}.packed\"}}",
                env.db
            )
        ),
        1.0,
        "{metrics}"
    );

    // A non-transactional change too large for the statement cache: the binlog holds an
    // INCIDENT instead of its rows (the client is told so; the rows are in the table). Which
    // tables lost changes is not said: every view halts.
    lose_events(&env).await;
    eventually(
        "the view of the table with lost events to halt",
        Duration::from_secs(30),
        || halted("lost"),
    )
    .await;

    assert!(daemon.terminate().success());
    leave_incidents_behind(&env).await;
}

/// A binlog file of its own for the tests after these: a resume by GTID state (after a
/// failover, which tests simulate) reads the file that holds the state from its start, and an
/// INCIDENT there halts the views.
async fn leave_incidents_behind(env: &Env) {
    env.sql("FLUSH BINARY LOGS").await;
}

/// A table made while `mysql56_temporal_format` was OFF keeps MariaDB 5.3's TIME, DATETIME and
/// TIMESTAMP format, whose binlog values rowcast does not read right. On the code before, its
/// view was accepted (`check --connect` exited 0), and a view of all its columns wrote a
/// DATETIME(3) `2024-01-02 03:04:05.678` as `16712-19-95T31:77:60` (tried once by hand). Now
/// every view of it is refused, also one that reads none of those columns, at start too; the
/// table rebuilt in the current format is accepted.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_with_temporal_columns_in_the_old_format_is_refused() {
    let _alone = INCIDENTS.lock().await;
    let env = Env::new("oldtemporal").await;
    let table = env.table("views");
    let mut admin = env.admin.get_conn().await.unwrap();
    admin.query_drop(format!("USE {}", env.db)).await.unwrap();
    admin
        .query_drop("SET GLOBAL mysql56_temporal_format = OFF")
        .await
        .unwrap();
    let made = admin
        .query_drop("CREATE TABLE shifts (id INT PRIMARY KEY, n INT NOT NULL, started DATETIME(3) NULL, took TIME(2) NULL, note VARCHAR(20) NULL)")
        .await;
    admin
        .query_drop("SET GLOBAL mysql56_temporal_format = ON")
        .await
        .unwrap();
    made.unwrap();
    // An ENUM label that reads like the format's comment is not one (found by a review).
    env.sql("CREATE TABLE plain (id INT PRIMARY KEY, n INT NOT NULL, started DATETIME(3) NULL, kind ENUM('a /* mariadb-5.3 */', 'b') NULL)")
        .await;
    view(&env, "shifts", &table, "S");
    view(&env, "plain", &table, "P");
    // A view of the plain table that looks shifts up: its changes are read from the binlog too.
    env.write_view(
        "looked.toml",
        &format!("name = \"looked\"\ntable = \"{table}\"\nsource = \"{{DB}}.plain\"\n[key]\npk = \"L#{{id}}\"\n[attributes]\nn = \"n\"\n[[lookup]]\nfrom = \"{{DB}}.shifts\"\non = {{ id = \"id\" }}\nattributes = {{ shift_note = \"note\" }}\n"),
    );
    let config = env.write_config("").to_str().unwrap().to_string();
    env.create_tables();
    let check = || env.rowcast(&["check", "--connect", "--config", &config]);
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("shifts.toml")
            && err.contains("columns started, took of")
            && err.contains("MariaDB 5.3"),
        "{err}"
    );
    assert!(!err.contains("plain.toml"), "{err}");
    assert!(
        err.contains("looked.toml") && err.contains("lookup[0].from"),
        "{err}"
    );
    let mut daemon = env.spawn();
    assert_eq!(daemon.exited(Duration::from_secs(60)).await.code(), Some(3));
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(log.contains("columns started, took of"), "{log}");

    admin.query_drop("ALTER TABLE shifts FORCE").await.unwrap();
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// An INCIDENT event (the server lost events) with `max_binlog_stmt_cache_size` small for a
/// moment: a MyISAM change too large for the statement cache.
async fn lose_events(env: &Env) {
    let mut admin = env.admin.get_conn().await.unwrap();
    let cache: u64 = admin
        .query_first("SELECT @@GLOBAL.max_binlog_stmt_cache_size")
        .await
        .unwrap()
        .unwrap();
    admin
        .query_drop("SET GLOBAL max_binlog_stmt_cache_size = 4096")
        .await
        .unwrap();
    // A connection made after the setting (not one from the pool): each takes its cache size
    // when it is made.
    let url = mysql_async::Opts::from_url(&common::mysql_admin_url()).unwrap();
    let mut small = mysql_async::Conn::new(url).await.unwrap();
    let lost = small
        .query_drop(format!(
            "INSERT INTO {}.lost VALUES (NULL, 1, 'a'), (NULL, 1, REPEAT('b', 200000))",
            env.db
        ))
        .await;
    admin
        .query_drop(format!("SET GLOBAL max_binlog_stmt_cache_size = {cache}"))
        .await
        .unwrap();
    assert!(lost.is_err(), "the server did not report the lost events");
}

/// Waits for the view `kept` to halt.
async fn kept_halts(daemon: &common::Daemon) {
    eventually("the view to halt", Duration::from_secs(30), || async {
        let (_, metrics) = daemon.get("/metrics").await;
        metric(&metrics, "rowcast_view_halted{view=\"kept\"}") == 1.0
    })
    .await;
}

/// Resuming by GTID, MariaDB sends the binlog file that holds the checkpoint's GTID state from
/// its start, leaving out the transactions the state holds but not an INCIDENT, which belongs
/// to none. On the code before, an INCIDENT written before the checkpoint (here even before
/// rowcast's first start) halted every view again at every restart. It is now placed against
/// the checkpoint's state (`BINLOG_GTID_POS` at the event): one before it is passed over, one
/// after it still halts the views.
#[tokio::test(flavor = "multi_thread")]
async fn an_incident_before_the_checkpoint_halts_nothing_when_resumed_by_gtid() {
    let _alone = INCIDENTS.lock().await;
    let env = Env::new("oldincident").await;
    let table = env.table("views");
    env.sql("CREATE TABLE lost (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL, body LONGTEXT) ENGINE=MyISAM; CREATE TABLE kept (id INT PRIMARY KEY, n INT NOT NULL)")
        .await;
    view(&env, "kept", &table, "K");
    let config = env.write_config("[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 200\n");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "max_backoff_ms = 1000\n",
        "max_backoff_ms = 1000\nresume = \"gtid\"\n",
    );
    std::fs::write(&config, text).unwrap();
    env.create_tables();
    lose_events(&env).await;
    let kept = |n: i64| {
        let mut items: Vec<_> = (1..=n)
            .map(|i| json!({"pk": format!("K#{i}"), "n": i}))
            .collect();
        items.sort_by_key(|v| v.to_string());
        items
    };
    let daemon = env.start().await;
    env.sql("INSERT INTO kept VALUES (1, 1)").await;
    env.converge(&table, kept(1), Duration::from_secs(30)).await;
    assert!(daemon.terminate().success());

    for restart in 2..=3 {
        let daemon = env.start().await;
        env.sql(&format!("INSERT INTO kept VALUES ({restart}, {restart})"))
            .await;
        env.converge(&table, kept(restart), Duration::from_secs(30))
            .await;
        let (_, metrics) = daemon.get("/metrics").await;
        assert_eq!(
            metric(&metrics, "rowcast_view_halted{view=\"kept\"}"),
            0.0,
            "{}",
            common::tail(&daemon.log)
        );
        assert!(daemon.terminate().success());
    }

    // Events lost after the checkpoint halt the views, also after a restart when the binlog
    // rotated right after the INCIDENT (no transaction after it in its file): resumed by GTID
    // alone, the server started at the next file, whose GTID list is the checkpoint's state,
    // and the INCIDENT was never read again (found by a review; seen failing on 73200a6).
    let daemon = env.start().await;
    lose_events(&env).await;
    env.sql("FLUSH BINARY LOGS").await;
    kept_halts(&daemon).await;
    // Stopped before any transaction: the last barrier is the rotation's.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(daemon.terminate().success());
    let daemon = env.start().await;
    kept_halts(&daemon).await;
    assert!(daemon.terminate().success());

    // The binlog that holds the INCIDENT purged while the view is halted: the checkpoint's GTID
    // state is found in the next file, so the start goes on, and the halt is kept in the
    // checkpoint (before, it was found again only by reading the INCIDENT again: lost here).
    env.sql("FLUSH BINARY LOGS").await;
    env.purge_older_binlogs().await;
    let daemon = env.start().await;
    kept_halts(&daemon).await;
    env.sql("INSERT INTO kept VALUES (10, 10)").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(daemon.terminate().success());
    let daemon = env.start().await;
    kept_halts(&daemon).await;
    assert!(daemon.terminate().success());
    leave_incidents_behind(&env).await;
}

/// A change written while `binlog_row_metadata` was not FULL (set back to the default by a
/// server restart whose configuration file lacks it, or read after a failover to a server
/// without it): its table map names no columns, so rowcast cannot tell them apart. That
/// table's views halt (kept, so a restart halts them again until they are rebuilt) and every
/// other view goes on. On the code before, the decoding error stopped the whole daemon (exit
/// 1), and again at every restart, since the checkpoint stays before that change.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_logged_without_column_names_halts_its_views_not_the_daemon() {
    let _alone = INCIDENTS.lock().await;
    let (env, table) = unnamed_and_named("nonames").await;
    let daemon = env.start().await;
    env.converge(
        &table,
        vec![json!({"pk": "N#1", "n": 1}), json!({"pk": "U#1", "n": 1})],
        Duration::from_secs(30),
    )
    .await;
    let mut admin = env.admin.get_conn().await.unwrap();
    admin.query_drop(format!("USE {}", env.db)).await.unwrap();
    admin
        .query_drop("SET GLOBAL binlog_row_metadata = 'MINIMAL'")
        .await
        .unwrap();
    let written = admin.query_drop("INSERT INTO unnamed VALUES (2, 2)").await;
    admin
        .query_drop("SET GLOBAL binlog_row_metadata = 'FULL'")
        .await
        .unwrap();
    written.unwrap();
    only_unnamed_halts(&env, &table, daemon, "no_column_names").await;
    leave_incidents_behind(&env).await;
}

/// A row of a watched table that cannot be decoded (failpoint `reader.decode_row`: a value of a
/// type rowcast does not read, such as MySQL's partial JSON updates) halts that table's views,
/// kept, and every other view goes on. On the code before, as for a table map without column
/// names, the decoding error stopped the daemon, and again at every start (found by a review of
/// that fix).
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn a_row_that_cannot_be_decoded_halts_its_views_not_the_daemon() {
    // Alone as the others (a CI run of 2026-12-05 saw another test's INCIDENT halt `named`).
    let _alone = INCIDENTS.lock().await;
    let (env, table) = unnamed_and_named("badrow").await;
    // The backfill reads SQL; the first row the reader decodes is the next insert's.
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "reader.decode_row=error@1")]);
    daemon.wait_ready().await;
    env.sql("INSERT INTO unnamed VALUES (2, 2)").await;
    only_unnamed_halts(&env, &table, daemon, "unreadable_row").await;
}

/// Tables `unnamed` and `named` with a view each and a row each.
async fn unnamed_and_named(name: &str) -> (Env, String) {
    let env = Env::new(name).await;
    let table = env.table("views");
    env.sql("CREATE TABLE unnamed (id INT PRIMARY KEY, n INT NOT NULL); CREATE TABLE named (id INT PRIMARY KEY, n INT NOT NULL)")
        .await;
    view(&env, "unnamed", &table, "U");
    view(&env, "named", &table, "N");
    env.write_config("");
    env.create_tables();
    env.sql("INSERT INTO unnamed VALUES (1, 1); INSERT INTO named VALUES (1, 1)")
        .await;
    (env, table)
}

/// After an unreadable `INSERT INTO unnamed VALUES (2, 2)`: `named` goes on, `unnamed` halts
/// (counted with `cause`), the daemon stays up, the halt is kept across a restart, and a
/// rebuild reads the table.
async fn only_unnamed_halts(env: &Env, table: &str, daemon: common::Daemon, cause: &str) {
    env.sql("INSERT INTO named VALUES (2, 2)").await;
    let mut items = vec![
        json!({"pk": "N#1", "n": 1}),
        json!({"pk": "N#2", "n": 2}),
        json!({"pk": "U#1", "n": 1}),
    ];
    env.converge(table, items.clone(), Duration::from_secs(30))
        .await;
    eventually(
        "only the view of that table to halt",
        Duration::from_secs(30),
        || unnamed_halted(&daemon),
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    let counted = format!(
        "rowcast_unreadable_changes_total{{cause=\"{cause}\",table=\"{}.unnamed\"}}",
        env.db
    );
    assert_eq!(metric(&metrics, &counted), 1.0, "{metrics}");
    assert!(daemon.terminate().success(), "the daemon stopped");

    let daemon = env.start().await;
    env.sql("INSERT INTO named VALUES (3, 3)").await;
    items.push(json!({"pk": "N#3", "n": 3}));
    env.converge(table, items.clone(), Duration::from_secs(30))
        .await;
    eventually("the view to halt again", Duration::from_secs(30), || {
        unnamed_halted(&daemon)
    })
    .await;
    env.snapshot("unnamed");
    items.push(json!({"pk": "U#2", "n": 2}));
    env.converge(table, items, Duration::from_secs(30)).await;
    assert!(daemon.terminate().success());
}

/// Whether the view `unnamed` is halted and `named` is not.
async fn unnamed_halted(daemon: &common::Daemon) -> bool {
    let (_, metrics) = daemon.get("/metrics").await;
    metric(&metrics, "rowcast_view_halted{view=\"unnamed\"}") == 1.0
        && metric(&metrics, "rowcast_view_halted{view=\"named\"}") == 0.0
}

/// On a server that compares table names lowercased (`lower_case_table_names = 1`, which RDS
/// parameter groups often set), a view whose `source` spells its table `Notes` reads the rows
/// the binlog names `notes` (the server stores names lowercased). On the code before, row
/// events were matched by exact name: the backfill (SQL, which folds the name) filled the
/// view, and no later change ever reached it.
#[tokio::test(flavor = "multi_thread")]
async fn a_view_spelling_its_table_in_another_case_reads_its_changes_where_the_server_folds_names()
{
    // Alone too: its database is made on the shared server first (`Env::new`), a transaction
    // there that the purge of another test here would take from under a held checkpoint.
    let _alone = INCIDENTS.lock().await;
    // A MariaDB of its own: the setting is fixed when its data directory is made.
    let server = common::mariadb::OwnMariaDb::start(
        "folding",
        &[
            ("ROWCAST_MYSQL_SERVER_ID", "5"),
            ("ROWCAST_MYSQL_LOWER_CASE_TABLE_NAMES", "1"),
        ],
    );
    let mut env = Env::new("foldednames").await;
    // Made on the shared server by `Env::new`; this test's is on its own.
    env.sql(&format!("DROP DATABASE {}", env.db)).await;
    env.admin = server.admin();
    let mut conn = env.admin.get_conn().await.unwrap();
    let folds: u8 = conn
        .query_first("SELECT @@lower_case_table_names")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(folds, 1);
    conn.query_drop(format!("CREATE DATABASE {}", env.db))
        .await
        .unwrap();
    drop(conn);
    let table = env.table("views");
    env.sql(
        "CREATE TABLE Notes (id INT PRIMARY KEY, n INT NOT NULL); INSERT INTO Notes VALUES (1, 10)",
    )
    .await;
    env.write_view(
        "notes.toml",
        &format!("name = \"notes\"\ntable = \"{table}\"\nsource = \"{{DB}}.Notes\"\n[key]\npk = \"N#{{id}}\"\n[attributes]\nn = \"n\"\n"),
    );
    env.write_config("");
    let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
        &format!("url = \"{}\"", common::SOURCE_URL),
        &format!(
            "url = \"mysql://rowcast:rowcast@127.0.0.1:{}\"",
            server.port
        ),
    );
    std::fs::write(env.config_path(), text).unwrap();
    env.create_tables();
    let daemon = env.start().await;
    let expected = |rows: &[(i64, i64)]| -> Vec<serde_json::Value> {
        rows.iter()
            .map(|(id, n)| json!({"pk": format!("N#{id}"), "n": n}))
            .collect()
    };
    env.converge(&table, expected(&[(1, 10)]), Duration::from_secs(30))
        .await;
    env.sql("INSERT INTO notes VALUES (2, 20); UPDATE NOTES SET n = 11 WHERE id = 1")
        .await;
    env.converge(
        &table,
        expected(&[(1, 11), (2, 20)]),
        Duration::from_secs(30),
    )
    .await;
    // A transaction the binlog logs with its ROLLBACK (it creates a temporary table) is undone
    // row by row, not read again from SQL: the table's engine is known under either spelling
    // (found by a review: the schema cache knew it by the binlog's, and the undo gave up).
    env.sql("BEGIN; INSERT INTO NOTES VALUES (700, 70); CREATE TEMPORARY TABLE scratch (a INT); UPDATE Notes SET n = 99 WHERE id = 1; ROLLBACK; DROP TEMPORARY TABLE scratch")
        .await;
    env.sql("INSERT INTO notes VALUES (3, 30)").await;
    env.converge(
        &table,
        expected(&[(1, 11), (2, 20), (3, 30)]),
        Duration::from_secs(30),
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(
        (
            metric(&metrics, "rowcast_rolled_back_changes_total{"),
            metric(&metrics, "rowcast_unreadable_changes_total{"),
        ),
        (2.0, 0.0),
        "{}",
        common::tail(&daemon.log)
    );
    assert!(daemon.terminate().success());

    // Two views spelling the table two ways: the reader would give its changes to one of them
    // only, so `check --connect` refuses them, naming both spellings.
    env.write_view(
        "lower.toml",
        &format!("name = \"lower\"\ntable = \"{table}\"\nsource = \"{{DB}}.notes\"\n[key]\npk = \"L#{{id}}\"\n"),
    );
    let config = env.config_path();
    let out = env.rowcast(&["check", "--connect", "--config", config.to_str().unwrap()]);
    let (code, text) = common::code_and_output(&out);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("name one table on this server"), "{text}");
    // And `run` stops on them (its reader checks them at each connection).
    let mut daemon = env.spawn();
    assert!(!daemon.exited(Duration::from_secs(60)).await.success());
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(log.contains("name one table on this server"), "{log}");
}
