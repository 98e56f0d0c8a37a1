//! A transaction in the binlog before it is visible to a snapshot: with semi-synchronous
//! replication waiting `AFTER_SYNC` (and no replica to answer), MariaDB writes a commit to the
//! binlog, rowcast reads its rows, and the engine makes it visible only seconds later. A join
//! refresh read in that gap sees the state before the transaction; merged after it, that read
//! would undo it. Alone in its own binary: the setting is the server's, and slows every commit
//! for as long as it is on.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::shop::{expected, setup};
use common::Env;

/// The server's semi-synchronous settings as they were (this test's own, or the defaults).
const SEMISYNC_OFF: &str = "SET GLOBAL rpl_semi_sync_master_enabled = OFF, rpl_semi_sync_master_wait_point = AFTER_COMMIT, rpl_semi_sync_master_timeout = 10000";

/// One transaction changes 20,000 order lines of 5,000 orders: rowcast reads its rows (each
/// marks its order's joined items), and a batch of refreshes is read while the stream is in
/// the middle of it — before the transaction is visible. On the code before: that read, taken
/// at the position before the transaction, was accepted and merged after it, and hundreds of
/// order items kept the quantities from before the transaction for good.
#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_read_before_a_transaction_it_is_inside_of_is_visible_is_read_again() {
    let env = Env::new("semisync").await;
    env.sql(SEMISYNC_OFF).await;
    let table = setup(&env, "").await;
    env.sql("INSERT INTO customers SELECT seq, CONCAT('c', seq), NULL, 'std' FROM seq_1_to_50")
        .await;
    env.sql("INSERT INTO orders SELECT seq, seq MOD 50 + 1, 'open', NULL FROM seq_1_to_5000")
        .await;
    env.sql("INSERT INTO order_items SELECT seq, (seq - 1) DIV 4 + 1, (seq - 1) MOD 4 + 1, CONCAT('sku', seq), 1, '1.00' FROM seq_1_to_20000")
        .await;
    let daemon = env.start().await;
    env.converge(&table, expected(&env).await, Duration::from_secs(180))
        .await;
    // The update is the first transaction of a new binlog file: MariaDB reports a snapshot
    // taken before it at the end of the file's header, not at its start (the stream's place).
    env.sql("FLUSH BINARY LOGS").await;
    // Commits wait up to 3 s for a replica's answer after they are in the binlog, before the
    // engine makes them visible; no replica answers.
    env.sql("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC, rpl_semi_sync_master_timeout = 3000, rpl_semi_sync_master_wait_no_slave = ON, rpl_semi_sync_master_enabled = ON")
        .await;
    let changed = tokio::time::timeout(
        Duration::from_secs(60),
        env.sql("UPDATE order_items SET quantity = quantity + 1"),
    )
    .await;
    env.sql(SEMISYNC_OFF).await;
    changed.expect("the update ends once the wait times out");
    env.converge(&table, expected(&env).await, Duration::from_secs(120))
        .await;
    assert!(daemon.terminate().success());
}
