//! A server that writes no binlog checksums (`binlog_checksum = NONE`): the binlog file names
//! rowcast reads are intact, so the checkpoint names a real file and a restart resumes from it.
//! Alone in its test binary: it changes a global setting of the shared test server (and puts it
//! back, pass or fail).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::accounts::{expected, setup, workload};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_binlog_checksums_is_followed_across_a_restart() {
    let (env, table) = setup(
        "nochecksum",
        "[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 100\n",
    )
    .await;
    let env = Arc::new(env);
    env.sql("SET GLOBAL binlog_checksum = 'NONE'").await;
    let run = {
        let env = env.clone();
        tokio::spawn(async move {
            let daemon = env.start().await;
            workload(&env, 7, 100).await;
            env.converge(&table, expected(&env).await, Duration::from_secs(30))
                .await;
            assert!(daemon.terminate().success());
            let checkpoint: Value = serde_json::from_str(
                &std::fs::read_to_string(env.dir.join("checkpoint.json")).unwrap(),
            )
            .unwrap();
            let file = checkpoint["position"]["file"].as_str().unwrap().to_string();
            let files: Vec<(String, u64)> = env.query("SHOW BINARY LOGS").await;
            assert!(
                files.iter().any(|(name, _)| *name == file),
                "the checkpoint names {file:?}, the server has {files:?}"
            );
            workload(&env, 8, 100).await;
            let daemon = env.start().await;
            env.converge(&table, expected(&env).await, Duration::from_secs(30))
                .await;
            assert!(daemon.terminate().success());
        })
    };
    let outcome = run.await;
    env.sql("SET GLOBAL binlog_checksum = 'CRC32'").await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}
