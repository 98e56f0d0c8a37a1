//! What the end-to-end benches share: the daemon as a child process, its metrics, percentiles
//! and peak memory.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

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

#[path = "../../tests/common/ports.rs"]
mod ports;
pub use ports::free_ports;

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
    start_daemon_at(dir, server_id, writer, &dynamodb_url(), FILE_CHECKPOINT).await
}

/// The `[checkpoint]` lines of a local file checkpoint: no owner fences a second instance, so
/// guarded writes go as conditional single writes (see `src/sink/checked.rs`).
pub const FILE_CHECKPOINT: &str = "path = \"checkpoint.json\"";

/// The `[checkpoint]` lines of a DynamoDB control table, as production runs it: the owner
/// fence lets guarded writes be checked, then batched.
pub fn control_table_checkpoint(table: &str) -> String {
    format!("table = \"{table}\"")
}

/// Writes `dir/rowcast.toml` (views in `dir/views`, the given `[checkpoint]` lines); returns its path and
/// the metrics port.
pub fn write_config(
    dir: &std::path::Path,
    server_id: u32,
    writer: &str,
    ddb_url: &str,
    checkpoint: &str,
) -> (std::path::PathBuf, u16) {
    let (port, api_port) = free_ports();
    let config = dir.join("rowcast.toml");
    std::fs::write(
        &config,
        format!("views = [\"views/*.toml\"]\n[source]\nurl = \"mysql://rowcast:rowcast@127.0.0.1:3306\"\nserver_id = {server_id}\n[dynamodb]\nendpoint_url = \"{ddb_url}\"\n[checkpoint]\n{checkpoint}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n[writer]\n{writer}"),
    )
    .expect("config");
    (config, port)
}

/// [`start_daemon`] with DynamoDB at `ddb_url` (e.g. a [`delay_proxy`]) and the given
/// `[checkpoint]` lines.
pub async fn start_daemon_at(
    dir: &std::path::Path,
    server_id: u32,
    writer: &str,
    ddb_url: &str,
    checkpoint: &str,
) -> (Daemon, u16, Instant) {
    let (config, port) = write_config(dir, server_id, writer, ddb_url, checkpoint);
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
    let mut command = Command::new(bin);
    command.args(["run", "--config", config]).stderr(log);
    // ROWCAST_BENCH_DAEMON_THREADS: the daemon's tokio worker threads (`rowcast run` has one by
    // default, see `RUN_WORKER_THREADS` in src/main.rs).
    if let Ok(threads) = std::env::var("ROWCAST_BENCH_DAEMON_THREADS") {
        command.env("TOKIO_WORKER_THREADS", threads);
    }
    let daemon = Daemon(command.spawn().expect("spawn"));
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (daemon, port, spawned)
}

/// ROWCAST_BENCH_WRITER: more lines for `[writer]` (e.g. "linger_ms = 5"; a literal `\n` between lines).
pub fn extra_writer() -> String {
    std::env::var("ROWCAST_BENCH_WRITER")
        .unwrap_or_default()
        .replace("\\n", "\n")
}

/// What the reference programs of `benches/reference` need from PyPI (pinned).
pub const SCRIPT_PACKAGES: [&str; 2] = ["mysql-replication==1.0.17", "boto3==1.44.5"];

/// The reference programs' virtualenv (`target/bench-venv`), made and filled on first use;
/// `None` when pip fails.
pub fn script_python() -> Option<std::path::PathBuf> {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-venv");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import pymysqlreplication, boto3"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ready {
        return Some(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    let installed = made
        && Command::new(venv.join("bin/pip"))
            .args(["install", "-q"])
            .args(SCRIPT_PACKAGES)
            .status()
            .is_ok_and(|s| s.success());
    installed.then_some(python)
}

/// A TCP proxy on 127.0.0.1 to `target` that holds every response `delay` before passing it on
/// (requests go straight through; each chunk of a response waits `delay` from its own arrival,
/// so answers on one connection do not add up): DynamoDB a network away. Returns its port.
pub async fn delay_proxy(target: std::net::SocketAddr, delay: Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("proxy port");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(relay(inbound, target, delay));
        }
    });
    port
}

async fn relay(inbound: tokio::net::TcpStream, target: std::net::SocketAddr, delay: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let (held, mut due) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let up = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = server_read.read(&mut buf).await {
            if held
                .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    };
    let pass = async {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if client_write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down, pass);
}

/// A table keyed `pk`/`sk` (strings), without a stream; `what` names it in the panic.
pub async fn create_pk_sk_table(client: &aws_sdk_dynamodb::Client, table: &str, what: &str) {
    let need = rowcast::dynamo::tables::TableNeed {
        indexes: Vec::new(),
        pk: "pk".into(),
        sk: Some("sk".into()),
        streams: false,
        users: vec![],
    };
    rowcast::dynamo::tables::create_table(client, table, &need)
        .await
        .expect(what);
}

/// Commits rows `ids` of an `accounts`-shaped `table` (owner id % 1000, balance id, open), 500
/// rows an INSERT.
pub async fn insert_accounts(
    conn: &mut mysql_async::Conn,
    table: &str,
    ids: std::ops::Range<usize>,
) {
    use mysql_async::prelude::Queryable;
    for chunk in ids.collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| format!("({i}, {}, {i}, 'open')", i % 1000))
            .collect();
        conn.query_drop(format!("INSERT INTO {table} VALUES {}", values.join(",")))
            .await
            .expect("insert");
    }
}

/// BatchWriteItem of small items (an accounts row's item), 25 a request, `lanes` requests at
/// a time: DynamoDB Local's raw write ceiling.
pub async fn raw_writes(
    client: &aws_sdk_dynamodb::Client,
    raw_table: &str,
    ids: std::ops::Range<usize>,
    lanes: usize,
) {
    let chunks: Vec<Vec<usize>> = ids
        .collect::<Vec<_>>()
        .chunks(25)
        .map(<[usize]>::to_vec)
        .collect();
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let client = client.clone();
        let table = raw_table.to_string();
        let mine: Vec<Vec<usize>> = chunks.iter().skip(lane).step_by(lanes).cloned().collect();
        tasks.push(tokio::spawn(async move {
            for chunk in mine {
                let mut pending: HashMap<String, Vec<WriteRequest>> = HashMap::new();
                let requests = chunk
                    .iter()
                    .map(|i| {
                        let item = HashMap::from([
                            (
                                "pk".to_string(),
                                AttributeValue::S(format!("OWNER#{}", i % 1000)),
                            ),
                            ("sk".to_string(), AttributeValue::S(format!("ACC#{i:08}"))),
                            ("balance".to_string(), AttributeValue::N(i.to_string())),
                            ("state".to_string(), AttributeValue::S("open".into())),
                            ("_version".to_string(), AttributeValue::N("1".into())),
                        ]);
                        WriteRequest::builder()
                            .put_request(
                                PutRequest::builder()
                                    .set_item(Some(item))
                                    .build()
                                    .expect("item"),
                            )
                            .build()
                    })
                    .collect();
                pending.insert(table.clone(), requests);
                while !pending.is_empty() {
                    let out = client
                        .batch_write_item()
                        .set_request_items(Some(pending.clone()))
                        .send()
                        .await
                        .expect("batch");
                    pending = out
                        .unprocessed_items
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|(_, v)| !v.is_empty())
                        .collect();
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("raw writer");
    }
}
