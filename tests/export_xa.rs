//! `rowcast export` refuses while an XA transaction is prepared. In a test binary of its own:
//! the prepared transaction is server-wide, and would fail the other exports running beside it.
#![allow(clippy::unwrap_used)]

mod common;

use common::Env;

/// A transaction prepared (XA) before the snapshot and committed after it would be in neither
/// the files nor the stream a daemon resumes from: the export refuses while one is prepared.
#[tokio::test(flavor = "multi_thread")]
async fn an_export_refuses_while_an_xa_transaction_is_prepared() {
    use mysql_async::prelude::Queryable;
    let env = Env::alone("exportxa").await;
    env.notes_view().await;
    env.write_config("");
    let mut xa = env.admin.get_conn().await.unwrap();
    // A prepared XA transaction outlives its connection: one a failed run left is rolled back.
    rollback_leftovers(&mut xa).await;
    xa.query_drop(format!(
        "USE {}; XA START 'rowcast_export_xa'; INSERT INTO notes VALUES (1, 'prepared'); XA END 'rowcast_export_xa'; XA PREPARE 'rowcast_export_xa'",
        env.db
    ))
    .await
    .unwrap();
    let out = env.dir.join("out-xa");
    let (code, text) = env.export(&out, &["--view", "notes"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("XA transaction(s) prepared"), "{text}");
    xa.query_drop("XA COMMIT 'rowcast_export_xa'")
        .await
        .unwrap();
    let (code, text) = env.export(&out, &["--view", "notes"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("exported view notes: 1 rows read, 1 items"),
        "{text}"
    );
}

/// The case the two `XA RECOVER`s leave: a transaction prepared after the first and before the
/// snapshot, committed after the snapshot and before the second. Neither lists it, the snapshot
/// lacks its rows, and a daemon resuming at the export's position never reads its PREPARE. The
/// export finds its XA COMMIT in the binlog read since the first check and takes its snapshot
/// again. On the code before, the export succeeded without the transaction's row ("1 rows
/// read").
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore)]
async fn an_xa_transaction_prepared_before_the_snapshot_and_committed_during_it_is_exported() {
    use mysql_async::prelude::Queryable;
    let env = Env::alone("exportxawindow").await;
    env.notes_view().await;
    env.sql("INSERT INTO notes VALUES (1, 'before'); CREATE TABLE pad (n INT PRIMARY KEY)")
        .await;
    let config = env.write_config("");
    let mut xa = env.admin.get_conn().await.unwrap();
    rollback_leftovers(&mut xa).await;
    let mut export = HeldExport::spawn(&env, &config, "gap", 6000);
    export.logged("taking the snapshot").await;
    xa.query_drop(format!(
        "USE {}; XA START 'rowcast_export_gap'; INSERT INTO notes VALUES (2, 'prepared'); XA END 'rowcast_export_gap'; XA PREPARE 'rowcast_export_gap'",
        env.db
    ))
    .await
    .unwrap();
    export.logged("snapshot begun").await;
    // Committed in the next binlog file, past the first page (500 events) of its events: the
    // binlog is read across a rotation and page by page (300 transactions of another table).
    env.sql("FLUSH BINARY LOGS").await;
    env.sql(
        &(0..300)
            .map(|n| format!("INSERT INTO pad VALUES ({n});"))
            .collect::<String>(),
    )
    .await;
    // Committed, and its XID used again at once by a transaction prepared and committed after
    // the snapshot: that one's PREPARE does not cover the first's commit (found by a review:
    // the first commit was taken as covered by the later PREPARE).
    xa.query_drop(format!(
        "XA COMMIT 'rowcast_export_gap'; XA START 'rowcast_export_gap'; INSERT INTO {}.notes VALUES (3, 'again'); XA END 'rowcast_export_gap'; XA PREPARE 'rowcast_export_gap'; XA COMMIT 'rowcast_export_gap'",
        env.db
    ))
    .await
    .unwrap();
    // A statement whose text is not UTF-8 (latin1 "été"), which the binlog shows as it came
    // (found by a review: reading such an event's text as a String panicked).
    let mut latin = env.admin.get_conn().await.unwrap();
    latin.query_drop("SET NAMES latin1").await.unwrap();
    let mut insert = format!("INSERT INTO {}.notes VALUES (4, '", env.db).into_bytes();
    insert.extend_from_slice(b"\xE9t\xE9')");
    latin.query_drop(insert.as_slice()).await.unwrap();
    let (status, text) = export.finished();
    assert!(status.success(), "{text}");
    assert!(
        text.contains("exported view notes: 4 rows read, 4 items")
            && text.contains("committed around it; taking the snapshot again"),
        "{text}"
    );
}

/// A source account without `BINLOG MONITOR` cannot see the binlog (`SHOW MASTER STATUS`, `SHOW
/// BINLOG EVENTS`): the export warns that it checks only the lists of prepared transactions,
/// and exports. Before, MariaDB's refusal of `SHOW MASTER STATUS` was replaced by the error of
/// MySQL 8.4's `SHOW BINARY LOG STATUS` tried after it (a syntax error on MariaDB), which was
/// taken for an unreadable binlog: every such export stopped with an error (seen failing).
#[tokio::test(flavor = "multi_thread")]
async fn an_export_by_an_account_that_cannot_see_the_binlog_warns_and_exports() {
    let env = Env::alone("exportblind").await;
    rollback_leftovers(&mut env.admin.get_conn().await.unwrap()).await;
    env.notes_view().await;
    env.sql("INSERT INTO notes VALUES (1, 'one'), (2, 'two')")
        .await;
    let user = "rc_exportblind";
    env.sql(&format!(
        "DROP USER IF EXISTS '{user}'@'127.0.0.1'; CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'pw'; GRANT SELECT ON {}.* TO '{user}'@'127.0.0.1'",
        env.db
    ))
    .await;
    let config = env.write_config("");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        common::SOURCE_URL,
        &format!("mysql://{user}:pw@127.0.0.1:3306"),
    );
    std::fs::write(&config, text).unwrap();
    let (code, text) = env.export(&env.dir.join("out-blind"), &["--view", "notes"]);
    env.sql(&format!("DROP USER '{user}'@'127.0.0.1'")).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("exported view notes: 2 rows read, 2 items")
            && text.contains("the server does not show its binlog"),
        "{text}"
    );
}

/// The binlog between the first list and the snapshot purged before the export reads it: the
/// snapshot cannot be checked, so it is taken again, and the transaction prepared before the
/// first snapshot and committed during it is in the export.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore)]
async fn an_export_whose_binlog_is_purged_around_its_snapshot_takes_it_again() {
    use mysql_async::prelude::Queryable;
    // Its XID is this test's alone: a transaction a failed run left prepared is rolled back
    // before `Env::alone` drops the database, which would wait for that transaction's locks.
    let mut leftover = mysql_async::Conn::from_url(common::mysql_admin_url())
        .await
        .unwrap();
    let _ = leftover
        .query_drop("XA ROLLBACK 'rowcast_export_purged'")
        .await;
    drop(leftover);
    let env = Env::alone("exportpurged").await;
    env.notes_view().await;
    env.sql("INSERT INTO notes VALUES (1, 'before')").await;
    let config = env.write_config("");
    let mut xa = env.admin.get_conn().await.unwrap();
    rollback_leftovers(&mut xa).await;
    let mut export = HeldExport::spawn(&env, &config, "purged", 10_000);
    export.logged("taking the snapshot").await;
    xa.query_drop(format!(
        "USE {}; XA START 'rowcast_export_purged'; INSERT INTO notes VALUES (2, 'prepared'); XA END 'rowcast_export_purged'; XA PREPARE 'rowcast_export_purged'",
        env.db
    ))
    .await
    .unwrap();
    export.logged("snapshot begun").await;
    let begun = std::time::Instant::now();
    env.sql("FLUSH BINARY LOGS").await;
    xa.query_drop("XA COMMIT 'rowcast_export_purged'")
        .await
        .unwrap();
    // The file the export's read starts in, with the PREPARE, is gone before the export reads.
    env.purge_older_binlogs().await;
    let purged_after = begun.elapsed();
    let (status, text) = export.finished();
    assert!(
        purged_after < std::time::Duration::from_secs(9),
        "the purge took {purged_after:?}, past the export's check 10 s after its snapshot: the test's premise failed\n{text}"
    );
    assert!(status.success(), "{text}");
    assert!(
        text.contains("exported view notes: 2 rows read, 2 items")
            && text
                .contains("cannot read the binlog around the snapshot; taking the snapshot again"),
        "{text}"
    );
}

/// `rowcast export --view notes` in the background, held 3 s before its snapshot and
/// `in_snapshot_ms` in it (failpoints), its log and output in the test's folder.
struct HeldExport {
    child: std::process::Child,
    log: std::path::PathBuf,
    out: std::path::PathBuf,
}

impl HeldExport {
    fn spawn(env: &Env, config: &std::path::Path, name: &str, in_snapshot_ms: u64) -> HeldExport {
        let log = env.dir.join(format!("export-{name}.log"));
        let out = env.dir.join(format!("export-{name}.out"));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_rowcast"))
            .args(["export", "--config", config.to_str().unwrap()])
            .args(["--view", "notes", "--to"])
            .arg(env.dir.join(format!("out-{name}")))
            .env(
                "ROWCAST_FAILPOINTS",
                format!(
                    "export.before_snapshot=sleep3000,export.in_snapshot=sleep{in_snapshot_ms}"
                ),
            )
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        HeldExport { child, log, out }
    }

    /// Waits until the export's log has `line`.
    async fn logged(&self, line: &str) {
        common::eventually(line, std::time::Duration::from_secs(30), || async {
            std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .contains(line)
        })
        .await;
    }

    /// Its exit status, and its log and output.
    fn finished(&mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        let text = std::fs::read_to_string(&self.log).unwrap()
            + &std::fs::read_to_string(&self.out).unwrap();
        (status, text)
    }
}

impl Drop for HeldExport {
    /// A test that fails midway leaves no export running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rolls back what a failed run of any test here left prepared: a prepared XA transaction
/// outlives its connection and would make every export refuse. Called once the test runs
/// alone (no other test of this binary has one prepared then).
async fn rollback_leftovers(conn: &mut mysql_async::Conn) {
    use mysql_async::prelude::Queryable;
    for xid in [
        "rowcast_export_xa",
        "rowcast_export_gap",
        "rowcast_export_purged",
    ] {
        let _ = conn.query_drop(format!("XA ROLLBACK '{xid}'")).await;
    }
}
