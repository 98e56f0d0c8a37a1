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
    let _ = xa.query_drop("XA ROLLBACK 'rowcast_export_xa'").await;
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
