//! What the end-to-end benches share: the daemon as a child process, its metrics, percentiles
//! and peak memory.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn mysql_url() -> String {
    std::env::var("ROWCAST_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://rowcast_admin:rowcast@127.0.0.1:3306".into())
}

pub fn dynamodb_url() -> String {
    std::env::var("ROWCAST_TEST_DYNAMODB").unwrap_or_else(|_| "http://127.0.0.1:8000".into())
}

pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    rowcast::dynamo::client(&rowcast::config::DynamoConfig {
        endpoint_url: Some(dynamodb_url()),
        region: Some("us-east-1".into()),
    })
    .await
}

/// A fresh database `name` with the `accounts` table (id, owner, balance, state), and a
/// connection using it.
pub async fn accounts_database(name: &str) -> mysql_async::Conn {
    use mysql_async::prelude::Queryable;
    let pool = mysql_async::Pool::new(mysql_url().as_str());
    let mut conn = pool
        .get_conn()
        .await
        .expect("MariaDB (run deploy/local-services.sh start)");
    conn.query_drop(format!("CREATE DATABASE {name}"))
        .await
        .expect("create db");
    conn.query_drop(format!("USE {name}")).await.expect("use");
    conn.query_drop("CREATE TABLE accounts (id INT PRIMARY KEY, owner INT NOT NULL, balance BIGINT NOT NULL, state VARCHAR(10) NOT NULL)").await.expect("table");
    conn
}

/// A view of an `accounts`-shaped table (`source`) into `table`, keyed `{prefix}#{owner}` /
/// `ACC#{id:08}`, with `balance` and `state`, written to `dir/views/{name}.toml`.
pub fn write_accounts_view(
    dir: &std::path::Path,
    name: &str,
    table: &str,
    source: &str,
    prefix: &str,
    filter: Option<&str>,
) {
    std::fs::create_dir_all(dir.join("views")).expect("dir");
    let filter = filter
        .map(|f| format!("filter = \"{f}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        dir.join(format!("views/{name}.toml")),
        format!("name = \"{name}\"\ntable = \"{table}\"\nsource = \"{source}\"\n{filter}[key]\npk = \"{prefix}#{{owner}}\"\nsk = \"ACC#{{id:08}}\"\n[attributes]\nbalance = \"balance\"\nstate = \"state\"\n"),
    )
    .expect("view");
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// A child process stopped (SIGTERM, then waited for) when dropped.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// The sum of the samples of every metric line of rowcast's `/metrics` starting with `prefix`.
pub async fn metric_sum(port: u16, prefix: &str) -> f64 {
    let listener = rowcast::util::http::Api {
        addr: ([127, 0, 0, 1], port).into(),
        token: None,
    };
    match rowcast::util::http::request(&listener, "GET", "/metrics", Duration::from_secs(5)).await {
        Ok((_, text)) => text
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
        Err(_) => 0.0,
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Peak resident memory of a process so far (VmHWM), in MB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User + system CPU time a process has used so far (from /proc), in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the state.
    (ticks(11) + ticks(12)) / 100.0
}

/// Writes `dir/rowcast.toml` (views in `dir/views`), creates the tables, starts `rowcast run`
/// and waits for its listener; returns when it was spawned. `writer` is the `[writer]` section's
/// body (empty: the defaults).
pub async fn start_daemon(
    dir: &std::path::Path,
    server_id: u32,
    writer: &str,
) -> (Daemon, u16, Instant) {
    let (port, api_port) = (free_port(), free_port());
    let config = dir.join("rowcast.toml");
    let ddb_url = dynamodb_url();
    std::fs::write(
        &config,
        format!("views = [\"views/*.toml\"]\n[source]\nurl = \"mysql://rowcast:rowcast@127.0.0.1:3306\"\nserver_id = {server_id}\n[dynamodb]\nendpoint_url = \"{ddb_url}\"\n[checkpoint]\npath = \"checkpoint.json\"\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n[writer]\n{writer}"),
    )
    .expect("config");
    let config = config.to_str().expect("utf8");
    let bin = env!("CARGO_BIN_EXE_rowcast");
    let status = Command::new(bin)
        .args(["tables", "--config", config, "create"])
        .stdout(Stdio::null())
        .status()
        .expect("tables");
    assert!(status.success());
    let log = std::fs::File::create(dir.join("rowcast.log")).expect("log");
    let spawned = Instant::now();
    let daemon = Daemon(
        Command::new(bin)
            .args(["run", "--config", config])
            .stderr(log)
            .spawn()
            .expect("spawn"),
    );
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (daemon, port, spawned)
}
