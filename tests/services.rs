//! The services fail under rowcast: DynamoDB Local stops and comes back (its own instance, with
//! its data on disk, on another port), MariaDB restarts. rowcast retries, reconnects, and the
//! view ends equal to the source. The tests here run one at a time: they stop shared servers.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::accounts::{expected, setup_in, workload};
use common::{metric, Env};
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

/// The source away for longer than the stall limit (6 × idle_timeout = 6 s here): rowcast stays
/// alive (`/healthz` 200: the reader keeps trying, restarting it would not help), the metrics
/// say so (connected 0, the age of the last event and the lag rising), and it catches up when
/// the source returns. On the code before, `/healthz` failed after 6 s ("no binlog progress").
#[tokio::test(flavor = "multi_thread")]
async fn the_source_away_is_a_metric_not_a_restart() {
    let _serial = SERIAL.lock().await;
    let (env, table) = setup_in(Env::new("srcaway").await, "").await;
    let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
        "heartbeat_interval_ms = 500",
        "heartbeat_interval_ms = 500\nidle_timeout_ms = 1000",
    );
    std::fs::write(env.config_path(), text).unwrap();
    let daemon = env.start().await;
    workload(&env, 21, 50).await;
    env.converge(&table, expected(&env).await, Duration::from_secs(30))
        .await;
    let (_, text) = daemon.get("/metrics").await;
    assert_eq!(metric(&text, "rowcast_source_connected "), 1.0, "{text}");
    assert_eq!(metric(&text, "rowcast_build_info{"), 1.0, "{text}");
    services("stop-mariadb", &[]);
    let away = Instant::now();
    while away.elapsed() < Duration::from_secs(10) {
        let (status, body) = daemon.get("/healthz").await;
        assert_eq!(status, 200, "after {:?} away: {body}", away.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, text) = daemon.get("/metrics").await;
    assert_eq!(metric(&text, "rowcast_source_connected "), 0.0, "{text}");
    assert!(
        metric(&text, "rowcast_source_last_event_age_seconds ") >= 9.0,
        "{text}"
    );
    assert!(
        metric(&text, "rowcast_replication_lag_seconds ") >= 9.0,
        "{text}"
    );
    services("start-mariadb", &[]);
    let env = env.reconnect();
    workload(&env, 22, 50).await;
    env.converge(&table, expected(&env).await, Duration::from_secs(60))
        .await;
    let (_, text) = daemon.get("/metrics").await;
    assert_eq!(metric(&text, "rowcast_source_connected "), 1.0, "{text}");
    assert!(
        metric(&text, "rowcast_source_last_event_age_seconds ") < 9.0,
        "{text}"
    );
    assert_eq!(daemon.get("/healthz").await.0, 200);
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn write_back_waits_for_mariadb_to_return() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let _serial = SERIAL.lock().await;
    let env = Env::new("wbrestart").await;
    let table = env.table("views");
    env.sql("CREATE TABLE notes (id INT PRIMARY KEY, note VARCHAR(20) NOT NULL); INSERT INTO notes VALUES (1, 'start');")
        .await;
    env.write_view(
        "notes.toml",
        &"name = \"notes\"\ntable = \"TABLE\"\nsource = \"{DB}.notes\"\n[key]\npk = \"NOTE#{id}\"\n[attributes]\nnote = \"note\"\n[writeback]\nenabled = true\nattributes = [\"note\"]\n"
            .replace("TABLE", &table),
    );
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;
    env.converge(
        &table,
        vec![serde_json::json!({"pk": "NOTE#1", "note": "start"})],
        Duration::from_secs(30),
    )
    .await;
    services("stop-mariadb", &[]);
    // An application's change while MariaDB is down waits, retried, and is applied once it is
    // back; the echo then comes through the binlog and the view settles.
    env.ddb
        .update_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("NOTE#1".into()))
        .update_expression("SET note = :n")
        .expression_attribute_values(":n", AttributeValue::S("while-down".into()))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    services("start-mariadb", &[]);
    let env = env.reconnect();
    common::eventually(
        "the change to reach MariaDB",
        Duration::from_secs(60),
        || async {
            let rows: Vec<String> = env.query("SELECT note FROM notes WHERE id = 1").await;
            rows == ["while-down"]
        },
    )
    .await;
    env.converge(
        &table,
        vec![serde_json::json!({"pk": "NOTE#1", "note": "while-down"})],
        Duration::from_secs(30),
    )
    .await;
    assert!(daemon.terminate().success());
}

/// Forwards connections on its own port to `target` (a port of 127.0.0.1); `switch` points it
/// at another port and cuts the connections open at the time, as an address moving to another
/// server does.
struct Proxy {
    port: u16,
    target: std::sync::Arc<std::sync::atomic::AtomicU16>,
    open: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(target));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (to, tasks) = (target.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = to.load(std::sync::atomic::Ordering::SeqCst);
                let task = tokio::spawn(async move {
                    if let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(task);
            }
        });
        Proxy { port, target, open }
    }

    fn switch(&self, target: u16) {
        self.target
            .store(target, std::sync::atomic::Ordering::SeqCst);
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// The source address moves to another server while rowcast runs (a proxy switched to a second
/// MariaDB with another server_id): the reader's reconnection finds another server and the
/// daemon stops with a clear message instead of reading that server's binlog at this one's
/// positions.
#[tokio::test(flavor = "multi_thread")]
async fn a_source_address_that_moves_to_another_server_stops_the_reader() {
    let _serial = SERIAL.lock().await;
    let state = format!("/var/tmp/rowcast-moved-{}", std::process::id());
    let other_port = common::free_port().to_string();
    let other = [
        ("ROWCAST_STATE", state.as_str()),
        ("ROWCAST_MYSQL_PORT", other_port.as_str()),
        ("ROWCAST_MYSQL_SERVER_ID", "2"),
    ];
    let _ = std::fs::remove_dir_all(&state);
    services("start-mariadb", &other);
    // Stopped and removed however the test ends.
    struct Second(Vec<(String, String)>);
    impl Drop for Second {
        fn drop(&mut self) {
            let envs: Vec<(&str, &str)> = self
                .0
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            services("stop-mariadb", &envs);
            let _ = std::fs::remove_dir_all(&self.0[0].1);
        }
    }
    let _second = Second(
        other
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let proxy = Proxy::start(3306).await;
    let env = Env::new("srcmoved").await;
    let table = env.notes_view().await;
    env.write_config("");
    let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
        "mysql://rowcast:rowcast@127.0.0.1:3306",
        &format!("mysql://rowcast:rowcast@127.0.0.1:{}", proxy.port),
    );
    std::fs::write(env.config_path(), text).unwrap();
    env.create_tables();
    let mut daemon = env.start().await;
    env.sql("INSERT INTO notes VALUES (1, 'one')").await;
    env.converge(&table, Env::notes(&[(1, "one")]), Duration::from_secs(30))
        .await;
    proxy.switch(other_port.parse().unwrap());
    let status = daemon.exited(Duration::from_secs(60)).await;
    assert!(!status.success());
    let log = std::fs::read_to_string(env.dir.join("rowcast.log")).unwrap();
    assert!(
        log.contains("the source address now reaches another server (server_id 2"),
        "{}",
        common::tail(&env.dir.join("rowcast.log"))
    );
}
