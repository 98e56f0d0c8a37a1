//! Harness of the integration tests: a database and DynamoDB tables of their own per test, the
//! real `rowcast` binary, and helpers to poll until the views converge.
//!
//! The services come from `deploy/local-services.sh start` (the README's test command runs it):
//! MariaDB on 127.0.0.1:3306 and DynamoDB Local on 127.0.0.1:8000, overridable with
//! ROWCAST_TEST_MYSQL_URL (an account allowed to create databases) and ROWCAST_TEST_DYNAMODB.
#![allow(dead_code, clippy::unwrap_used)]

pub mod accounts;
pub mod app;
pub mod mariadb;
mod ports;
pub mod shop;
pub mod staff;

#[allow(unused_imports)] // each test binary uses its own subset of the harness
pub use ports::{free_port, free_ports};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use mysql_async::prelude::Queryable;
use mysql_async::Pool;
use serde_json::Value;

pub fn mysql_admin_url() -> String {
    std::env::var("ROWCAST_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://rowcast_admin:rowcast@127.0.0.1:3306".into())
}

pub fn dynamodb_url() -> String {
    std::env::var("ROWCAST_TEST_DYNAMODB").unwrap_or_else(|_| "http://127.0.0.1:8000".into())
}

/// The CDC account the daemon uses (least privileges), see deploy/local-services.sh.
pub const SOURCE_URL: &str = "mysql://rowcast:rowcast@127.0.0.1:3306";

/// A command's exit code and its standard output and error, one after the other.
pub fn code_and_output(out: &std::process::Output) -> (Option<i32>, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

pub struct Env {
    pub name: String,
    pub db: String,
    pub dir: PathBuf,
    pub admin: Pool,
    pub ddb: Client,
    pub ddb_url: String,
    pub server_id: u32,
    /// The metrics listener (`/metrics`, `/healthz`, `/readyz`).
    pub port: u16,
    /// The API listener (`/v1/...`).
    pub api_port: u16,
    /// This test's turn on the servers (see [`Env::alone`]).
    pub turn: Turn,
}

/// The tests of one binary run at once on the same servers, each in a database and tables of
/// its own. A prepared XA transaction is the exception: it is the server's, and every daemon
/// sees it — one started while it is prepared backfills its views again when it commits (its
/// backfill could not see the rows, and `XA RECOVER` does not say which tables it changed). A
/// test that prepares one therefore runs alone ([`Env::alone`]): it waits until no other test
/// of its binary has an environment, and no other starts until it ends. Binaries run one after
/// the other.
struct Sharing {
    active: usize,
    alone: bool,
}

static SHARING: std::sync::Mutex<Sharing> = std::sync::Mutex::new(Sharing {
    active: 0,
    alone: false,
});

pub struct Turn {
    alone: bool,
}

impl Turn {
    async fn take(alone: bool) -> Turn {
        loop {
            {
                let mut sharing = SHARING.lock().unwrap_or_else(|e| e.into_inner());
                if !sharing.alone && (!alone || sharing.active == 0) {
                    if alone {
                        sharing.alone = true;
                    } else {
                        sharing.active += 1;
                    }
                    return Turn { alone };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut sharing = SHARING.lock().unwrap_or_else(|e| e.into_inner());
        if self.alone {
            sharing.alone = false;
        } else {
            sharing.active -= 1;
        }
    }
}

impl Env {
    /// A fresh database `rc_<name>`, a fresh folder, and DynamoDB names prefixed by the test.
    pub async fn new(name: &str) -> Env {
        Self::with_dynamodb(name, &dynamodb_url()).await
    }

    /// [`Env::new`] for a test that prepares XA transactions: it runs alone (see [`Sharing`]).
    pub async fn alone(name: &str) -> Env {
        let turn = Turn::take(true).await;
        Self::made(name, &dynamodb_url(), turn).await
    }

    pub async fn with_dynamodb(name: &str, ddb_url: &str) -> Env {
        let turn = Turn::take(false).await;
        Self::made(name, ddb_url, turn).await
    }

    async fn made(name: &str, ddb_url: &str, turn: Turn) -> Env {
        let db = format!("rc_{name}");
        let admin = Pool::new(mysql_admin_url().as_str());
        let mut conn = admin
            .get_conn()
            .await
            .expect("MariaDB reachable (run deploy/local-services.sh start)");
        conn.query_drop(format!("DROP DATABASE IF EXISTS {db}"))
            .await
            .unwrap();
        conn.query_drop(format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        drop(conn);
        let dir = std::env::temp_dir().join(format!("rowcast-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("views")).unwrap();
        let ddb_config = rowcast::config::DynamoConfig {
            endpoint_url: Some(ddb_url.to_string()),
            region: Some("us-east-1".into()),
        };
        let ddb = rowcast::dynamo::client(&ddb_config).await;
        let server_id = 10_000
            + (name
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
                % 50_000);
        let ports = free_ports();
        Env {
            name: name.to_string(),
            db,
            dir,
            admin,
            ddb,
            ddb_url: ddb_url.to_string(),
            server_id,
            port: ports.0,
            api_port: ports.1,
            turn,
        }
    }

    /// A DynamoDB table name of this test.
    pub fn table(&self, suffix: &str) -> String {
        format!("{}_{}_{}", self.name, std::process::id(), suffix)
    }

    pub async fn sql(&self, statements: &str) {
        let mut conn = self.admin.get_conn().await.unwrap();
        conn.query_drop(format!("USE {}", self.db)).await.unwrap();
        conn.query_drop(statements)
            .await
            .unwrap_or_else(|e| panic!("{statements}: {e}"));
    }

    /// Statements sent as these bytes, one after the other on one connection (text in a
    /// character set other than UTF-8, after a `SET NAMES`).
    pub async fn sql_bytes(&self, statements: &[&[u8]]) {
        let mut conn = self.admin.get_conn().await.unwrap();
        conn.query_drop(format!("USE {}", self.db)).await.unwrap();
        for statement in statements {
            conn.query_drop(*statement)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(statement)));
        }
    }

    /// The binlog's end: its current file and offset.
    pub async fn binlog_end(&self) -> (String, u64) {
        let current: Vec<(String, u64, String, String)> = self.query("SHOW MASTER STATUS").await;
        (current[0].0.clone(), current[0].1)
    }

    /// Purges every binlog file but the current one. MariaDB keeps a file until its binlog
    /// checkpoint moves on (asynchronously after a flush): purged until it is gone.
    pub async fn purge_older_binlogs(&self) {
        let (current, _) = self.binlog_end().await;
        eventually(
            "the older binlogs purged",
            Duration::from_secs(30),
            || async {
                self.sql(&format!("PURGE BINARY LOGS TO '{current}'")).await;
                let files: Vec<(String, u64)> = self.query("SHOW BINARY LOGS").await;
                files.len() == 1
            },
        )
        .await;
    }

    pub async fn query<T: mysql_async::prelude::FromRow + Send + 'static>(
        &self,
        query: &str,
    ) -> Vec<T> {
        let mut conn = self.admin.get_conn().await.unwrap();
        conn.query_drop(format!("USE {}", self.db)).await.unwrap();
        conn.query(query)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    pub fn write_view(&self, file: &str, text: &str) {
        std::fs::write(
            self.dir.join("views").join(file),
            text.replace("{DB}", &self.db),
        )
        .unwrap();
    }

    /// Writes `rowcast.toml`; `extra` is appended (more sections). The checkpoint goes to a
    /// control table of this test unless `extra` says otherwise.
    pub fn write_config(&self, extra: &str) -> PathBuf {
        let checkpoint = if extra.contains("[checkpoint]") {
            String::new()
        } else {
            format!(
                "[checkpoint]\ntable = \"{}\"\ninterval_ms = 200\n",
                self.table("control")
            )
        };
        let writer = if extra.contains("[writer]") {
            ""
        } else {
            "[writer]\nflush_interval_ms = 5\n\n"
        };
        let api = if extra.contains("[api]") {
            String::new()
        } else {
            format!("[api]\nlisten = \"127.0.0.1:{}\"\n\n", self.api_port)
        };
        let text = format!(
            "views = [\"views/*.toml\"]\n\n[source]\nurl = \"{SOURCE_URL}\"\nserver_id = {}\nheartbeat_interval_ms = 500\nmax_backoff_ms = 1000\n\n[dynamodb]\nendpoint_url = \"{}\"\nregion = \"us-east-1\"\n\n[metrics]\nlisten = \"127.0.0.1:{}\"\n\n{api}{writer}{checkpoint}{extra}\n",
            self.server_id, self.ddb_url, self.port
        );
        let path = self.dir.join("rowcast.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("rowcast.toml")
    }

    /// A table `notes (id, body)` and a view `notes` of it (`N#{id}` / `NOTE`, every column)
    /// in the DynamoDB table it returns.
    pub async fn notes_view(&self) -> String {
        self.sql("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(40))")
            .await;
        let table = self.table("notes");
        self.write_view(
            "notes.toml",
            &format!(
                "name = \"notes\"\ntable = \"{table}\"\nsource = \"{{DB}}.notes\"\n[key]\npk = \"N#{{id}}\"\nsk = \"NOTE\"\n"
            ),
        );
        table
    }

    /// `notes_view` with rows 1, 2 and 3 (`one`, `two`, `three`), the default config, a
    /// daemon started and its items converged: the view's table and the daemon.
    pub async fn three_notes(&self) -> (String, Daemon) {
        let table = self.notes_view().await;
        self.write_config("");
        self.create_tables();
        self.sql("INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')")
            .await;
        let daemon = self.start().await;
        self.converge(
            &table,
            Self::notes(&[(1, "one"), (2, "two"), (3, "three")]),
            Duration::from_secs(30),
        )
        .await;
        (table, daemon)
    }

    /// The items `notes_view` makes of these rows.
    pub fn notes(rows: &[(i64, &str)]) -> Vec<Value> {
        rows.iter()
            .map(|(id, body)| {
                serde_json::json!({"pk": format!("N#{id}"), "sk": "NOTE", "id": id, "body": body})
            })
            .collect()
    }

    /// `rowcast snapshot --view VIEW` against the running daemon; it must be accepted. Its
    /// standard output.
    pub fn snapshot(&self, view: &str) -> String {
        let config = self.config_path();
        let out = self.rowcast(&[
            "snapshot",
            "--config",
            config.to_str().unwrap(),
            "--view",
            view,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn rowcast(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_rowcast"))
            .args(args)
            .output()
            .unwrap()
    }

    /// `rowcast export` of this test's config into `to`, with `args` (views, options): the exit
    /// code and output.
    pub fn export(&self, to: &Path, args: &[&str]) -> (Option<i32>, String) {
        let config = self.config_path();
        let mut all = vec!["export", "--config", config.to_str().unwrap()];
        all.extend(["--to", to.to_str().unwrap()]);
        all.extend_from_slice(args);
        code_and_output(&self.rowcast(&all))
    }

    pub fn create_tables(&self) {
        let config = self.config_path();
        let out = self.rowcast(&["tables", "--config", config.to_str().unwrap(), "create"]);
        assert!(
            out.status.success(),
            "tables create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the daemon and waits for `/readyz` and the end of every backfill.
    pub async fn start(&self) -> Daemon {
        let daemon = self.spawn();
        daemon.wait_ready().await;
        daemon
    }

    /// Starts the daemon and waits for `/readyz` only (backfills may still run).
    pub async fn start_filling(&self) -> Daemon {
        let daemon = self.spawn();
        daemon.wait_until(|status, _| status == 200).await;
        daemon
    }

    pub fn spawn(&self) -> Daemon {
        self.spawn_with(&[])
    }

    /// Starts a second instance with the same configuration (same checkpoint, same server id)
    /// but its own metrics port and log file (`rowcast-2.log`).
    pub fn spawn_second(&self) -> Daemon {
        let (port, api_port) = free_ports();
        let text = std::fs::read_to_string(self.config_path())
            .unwrap()
            .replace(
                &format!("127.0.0.1:{}", self.port),
                &format!("127.0.0.1:{port}"),
            )
            .replace(
                &format!("127.0.0.1:{}", self.api_port),
                &format!("127.0.0.1:{api_port}"),
            );
        let config = self.dir.join("rowcast-2.toml");
        std::fs::write(&config, text).unwrap();
        let mut daemon = self.spawn_config(&config, "rowcast-2.log", &[]);
        daemon.port = port;
        daemon.api_port = api_port;
        daemon
    }

    /// Starts the daemon with more environment variables (e.g. `ROWCAST_FAILPOINTS`).
    pub fn spawn_with(&self, vars: &[(&str, &str)]) -> Daemon {
        self.spawn_config(&self.config_path(), "rowcast.log", vars)
    }

    fn spawn_config(&self, config: &Path, log_name: &str, vars: &[(&str, &str)]) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(log_name))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rowcast"))
            .args(["run", "--config", config.to_str().unwrap()])
            .env("ROWCAST_LOG", "info,rowcast=debug,aws=warn")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon {
            child,
            port: self.port,
            api_port: self.api_port,
            log: self.dir.join(log_name),
        }
    }

    pub async fn scan(&self, table: &str) -> Vec<Value> {
        rowcast::dynamo::tables::scan_plain(&self.ddb, table)
            .await
            .unwrap_or_else(|e| panic!("scan {table}: {e}"))
    }

    /// The table's items without rowcast's metadata attributes, sorted.
    pub async fn items(&self, table: &str) -> Vec<Value> {
        let mut items: Vec<Value> = self
            .scan(table)
            .await
            .into_iter()
            .map(|item| canonical(strip_metadata(item)))
            .collect();
        items.sort_by_key(|v| v.to_string());
        items
    }

    /// Polls until the table's items equal `expected` (sorted, metadata stripped).
    pub async fn converge(&self, table: &str, expected: Vec<Value>, timeout: Duration) {
        let mut expected: Vec<Value> = expected.into_iter().map(canonical).collect();
        expected.sort_by_key(|v| v.to_string());
        let deadline = Instant::now() + timeout;
        loop {
            let items = self.items(table).await;
            if items == expected {
                return;
            }
            if Instant::now() > deadline {
                let dump = |v: &Vec<Value>| {
                    v.iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                let _ = std::fs::write(self.dir.join("converge-items.txt"), dump(&items));
                let _ = std::fs::write(self.dir.join("converge-expected.txt"), dump(&expected));
                let missing: Vec<&Value> = expected
                    .iter()
                    .filter(|e| !items.contains(e))
                    .take(5)
                    .collect();
                let extra: Vec<&Value> = items
                    .iter()
                    .filter(|i| !expected.contains(i))
                    .take(5)
                    .collect();
                panic!(
                    "{table} did not converge in {timeout:?}: {} items, {} expected\nmissing (first 5): {missing:#?}\nunexpected (first 5): {extra:#?}\nlog: {}",
                    items.len(),
                    expected.len(),
                    self.dir.join("rowcast.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The same value with every object's keys in sorted order, so that equal items print alike.
pub fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

pub fn strip_metadata(item: Value) -> Value {
    match item {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .collect(),
        ),
        other => other,
    }
}

pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub api_port: u16,
    pub log: PathBuf,
}

impl Daemon {
    /// `GET path` from the listener that serves it: `/v1/...` from the API, the rest from the
    /// metrics listener.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let port = if path.starts_with("/v1/") {
            self.api_port
        } else {
            self.port
        };
        http_get(port, path).await
    }

    /// Waits for `/readyz`, and for every eager view to be backfilled, so that a test's later
    /// changes are not also read by the backfill.
    pub async fn wait_ready(&self) {
        self.wait_until(|status, body| status == 200 && !body.contains("backfilling"))
            .await;
    }

    pub async fn wait_until(&self, ready: impl Fn(u16, &str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((status, body)) = try_http_get(self.port, "/readyz").await {
                if ready(status, &body) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "rowcast not ready in 60 s; log: {}",
                tail(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many times the log (which goes on from one daemon of a test to the next) holds
    /// `text`.
    pub fn logged(&self, text: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(text)
            .count()
    }

    /// Waits until `n` cleanups are logged (counted over the test's log). A new view's first
    /// pass ends with one, which removes the view's items below the pass's first version: a
    /// test that plants such items waits for it first.
    pub async fn cleanups_done(&self, n: usize) {
        eventually("the cleanup", Duration::from_secs(30), || async {
            self.logged("cleanup done") >= n
        })
        .await;
    }

    /// The process's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Asserts that the peak resident memory grew by less than `mib` MiB from `baseline`
    /// (KiB, [`Daemon::peak_rss_kib`] before), and prints both with `what`.
    pub fn assert_grew_less_than(&self, baseline: u64, mib: u64, what: &str) {
        let peak = self.peak_rss_kib();
        println!("peak RSS {baseline} KiB at start, {peak} KiB after {what}");
        assert!(
            peak < baseline + mib * 1024,
            "peak RSS grew from {baseline} KiB to {peak} KiB after {what}"
        );
    }

    /// Waits until the process exits by itself.
    pub async fn exited(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "rowcast did not exit in {timeout:?}; log: {}",
                tail(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends the process a signal (`"-STOP"`, `"-CONT"`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {name}");
    }

    /// Resumes a stopped instance that was taken over meanwhile and waits until it is fenced
    /// and exits (non-zero), and a moment more: anything it sent has landed then.
    pub async fn resume_until_fenced(&mut self) {
        self.signal("-CONT");
        let status = self.exited(Duration::from_secs(30)).await;
        assert!(
            !status.success(),
            "the fenced instance exited with {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "rowcast did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `body`, then `decide` whatever happened in it (a failed assertion included), then gives
/// `body`'s value or goes on failing. A test that prepared an XA transaction decides it in
/// `decide`: one left prepared outlives the test's connection and blocks the next run.
pub async fn deciding<T>(
    body: impl std::future::Future<Output = T>,
    decide: impl std::future::Future<Output = ()>,
) -> T {
    let result = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body)).await;
    decide.await;
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

pub async fn try_http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    try_http(port, "GET", path).await
}

/// `POST path` with no body: the status and the body.
pub async fn http_post(port: u16, path: &str) -> (u16, String) {
    try_http(port, "POST", path)
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

async fn try_http(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    try_http_get(port, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The sum of the samples of every metric line starting with `prefix` (name and labels).
pub fn metric(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `check` until it returns true.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A decimal as DynamoDB gives it back (trailing fraction zeros dropped), as JSON.
pub fn dec(text: &str) -> Value {
    let normal = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    };
    serde_json::from_str(normal).unwrap()
}

impl Env {
    /// The same test environment with a fresh MariaDB pool (after a server restart).
    pub fn reconnect(self) -> Env {
        Env {
            admin: Pool::new(mysql_admin_url().as_str()),
            ..self
        }
    }
}
