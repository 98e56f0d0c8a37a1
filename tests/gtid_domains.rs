//! GTID domains the reader never sees a transaction of. This binary purges the server's older
//! binlogs, which no other test may need meanwhile: cargo runs test binaries one at a time.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::accounts::{expected, setup, workload};
use serde_json::Value;

/// A view started from the oldest binlog (`start = "beginning"`) whose first file's GTID list
/// names a domain none of the files still on the server has a transaction of (its binlogs were
/// purged), then restarted by GTID: the checkpoint's GTID state must name that domain, or the
/// server looks for the domain's first transaction in the purged files and refuses the resume
/// (error 1236, reported as a purged position) — or, had the files still been there, would send
/// that domain's old transactions again. Before the fix the state held the domains of the
/// transactions the reader saw, and the restart failed.
#[tokio::test(flavor = "multi_thread")]
async fn a_resume_by_gtid_keeps_domains_only_the_first_binlogs_gtid_list_names() {
    let (env, table) = setup(
        "gtiddomain",
        "[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 200\n",
    )
    .await;
    let config = env.config_path();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "max_backoff_ms = 1000\n",
        "max_backoff_ms = 1000\nresume = \"gtid\"\nstart = \"beginning\"\n",
    );
    std::fs::write(&config, text).unwrap();
    // A transaction in a domain of its own, then its binlog purged: the domain is left only in
    // the GTID list at the start of the binlog that is now the oldest.
    env.sql(
        "CREATE TABLE elsewhere (id INT PRIMARY KEY); \
         SET SESSION gtid_domain_id = 4242; INSERT INTO elsewhere VALUES (1); \
         SET SESSION gtid_domain_id = DEFAULT; FLUSH BINARY LOGS",
    )
    .await;
    env.purge_older_binlogs().await;

    let daemon = env.start().await;
    workload(&env, 91, 60).await;
    env.converge(&table, expected(&env).await, Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
    let checkpoint: Value =
        serde_json::from_str(&std::fs::read_to_string(env.dir.join("checkpoint.json")).unwrap())
            .unwrap();
    let gtid = checkpoint["position"]["gtid"].as_str().unwrap_or_default();
    assert!(
        gtid.split(',').any(|g| g.starts_with("4242-")),
        "the checkpoint's GTID state lacks domain 4242: {checkpoint}"
    );

    workload(&env, 92, 60).await;
    let daemon = env.start().await;
    env.converge(&table, expected(&env).await, Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());

    // A checkpoint whose GTID state the purged binlogs held, with on_purged = "rebackfill":
    // the view is filled again. Before, the reader stopped on the server's error 1236
    // whatever on_purged said (only a checkpoint's file name was checked).
    let path = env.dir.join("checkpoint.json");
    let mut checkpoint: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    checkpoint["position"]["gtid"] = "0-1-1,4242-1-1".into();
    std::fs::write(&path, checkpoint.to_string()).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "max_backoff_ms = 1000\n",
        "max_backoff_ms = 1000\non_purged = \"rebackfill\"\n",
    );
    std::fs::write(&config, text).unwrap();
    workload(&env, 93, 60).await;
    let daemon = env.start().await;
    env.converge(&table, expected(&env).await, Duration::from_secs(60))
        .await;
    assert!(daemon.terminate().success());
    let log = std::fs::read_to_string(env.dir.join("rowcast.log")).unwrap();
    assert!(
        log.contains("binlog purged: starting at the oldest binlog"),
        "{}",
        common::tail(&env.dir.join("rowcast.log"))
    );
}
