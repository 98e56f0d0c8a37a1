//! The services fail under rowcast: DynamoDB Local stops and comes back (its own instance, with
//! its data on disk, on another port), MariaDB restarts. rowcast retries, reconnects, and the
//! view ends equal to the source. The tests here run one at a time: they stop shared servers.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::accounts::{expected, setup_in, workload};
use common::Env;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

fn services(action: &str, envs: &[(&str, &str)]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/local-services.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(action)
        .envs(envs.iter().copied())
        .status()
        .unwrap();
    assert!(status.success(), "local-services.sh {action} failed");
}

const DDB_PORT: &str = "8011";
const DDB_ENV: [(&str, &str); 2] = [("ROWCAST_DDB_PORT", DDB_PORT), ("ROWCAST_DDB_PERSIST", "1")];

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_local_stops_and_returns_mid_stream() {
    let _serial = SERIAL.lock().await;
    services("start-dynamodb", &DDB_ENV);
    let env = Env::with_dynamodb("ddbrestart", &format!("http://127.0.0.1:{DDB_PORT}")).await;
    let (env, table) = setup_in(env, "").await;
    let daemon = env.start().await;
    workload(&env, 7, 150).await;
    services("stop-dynamodb", &DDB_ENV);
    // Writes while DynamoDB is away queue up and are retried.
    workload(&env, 8, 150).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    services("start-dynamodb", &DDB_ENV);
    workload(&env, 9, 100).await;
    env.converge(&table, expected(&env).await, Duration::from_secs(60))
        .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(
        metrics.contains("rowcast_write_retries_total{reason=\"error\"}"),
        "{metrics}"
    );
    assert!(daemon.terminate().success());
    services("stop-dynamodb", &DDB_ENV);
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_restarts_mid_stream() {
    let _serial = SERIAL.lock().await;
    let (env, table) = setup_in(Env::new("dbrestart").await, "").await;
    let daemon = env.start().await;
    workload(&env, 11, 150).await;
    env.converge(&table, expected(&env).await, Duration::from_secs(30))
        .await;
    services("stop-mariadb", &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    services("start-mariadb", &[]);
    // The test's own pool may hold dead connections: use a fresh one.
    let env = env.reconnect();
    workload(&env, 12, 150).await;
    env.converge(&table, expected(&env).await, Duration::from_secs(60))
        .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(
        metrics.contains("rowcast_source_reconnects_total"),
        "{metrics}"
    );
    assert_eq!(daemon.get("/healthz").await.0, 200);
    assert!(daemon.terminate().success());
}
