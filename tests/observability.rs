//! Dashboards and alerts against the real tools: the alert rules pass `promtool check rules`
//! and their unit tests (`promtool test rules`), and a real Prometheus scraping a running
//! rowcast returns data for the lag and throughput queries of the Grafana dashboard.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::accounts::{setup, workload};
use common::{eventually, free_port, http_get};
use serde_json::Value;

fn deploy(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
        .to_str()
        .unwrap()
        .to_string()
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool (deploy/test.sh installs Debian's prometheus package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_check_out_and_pass_their_unit_tests() {
    let text = promtool(&["check", "rules", &deploy("prometheus/rowcast-rules.yml")]);
    assert!(text.contains("SUCCESS: 10 rules found"), "{text}");
    let text = promtool(&[
        "test",
        "rules",
        &deploy("prometheus/rowcast-rules.test.yml"),
    ]);
    assert!(text.contains("SUCCESS"), "{text}");
}

/// The dashboard's queries of the panel titled `title`, for every instance.
fn panel_queries(title: &str) -> Vec<String> {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/rowcast-dashboard.json")).unwrap(),
    )
    .unwrap();
    let panel = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("no panel {title:?}"));
    panel["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["expr"].as_str().unwrap().replace("$instance", ".*"))
        .collect()
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The series a PromQL query returns now.
async fn query(port: u16, promql: &str) -> Vec<Value> {
    let path = format!(
        "/api/v1/query?query={}",
        rowcast::util::http::query_value(promql)
    );
    let (status, body) = http_get(port, &path).await;
    assert_eq!(status, 200, "{promql}: {body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_gets_the_dashboards_lag_and_throughput() {
    let (env, _table) = setup("promscrape", "").await;
    let daemon = env.start().await;
    let prom_port = free_port();
    let dir = env.dir.join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rowcast\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            env.port
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let _prometheus = Prometheus(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (deploy/test.sh installs Debian's prometheus package)"),
    );
    // Changes flow while Prometheus scrapes every second.
    let writer = {
        let env = std::sync::Arc::new(env);
        let writer_env = env.clone();
        (
            tokio::spawn(async move {
                for round in 0..20 {
                    workload(&writer_env, 0x9000 + round, 20).await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }),
            env,
        )
    };
    eventually(
        "Prometheus to scrape rowcast",
        Duration::from_secs(60),
        || async {
            common::try_http_get(prom_port, "/-/ready")
                .await
                .is_ok_and(|(s, _)| s == 200)
                && query(prom_port, "up{job=\"rowcast\"} == 1").await.len() == 1
        },
    )
    .await;
    let lag = panel_queries("Replication lag");
    let throughput = panel_queries("Throughput");
    assert_eq!(throughput.len(), 2);
    eventually(
        "the dashboard's lag and throughput queries to return data",
        Duration::from_secs(60),
        || async {
            let lag_series = query(prom_port, &lag[0]).await;
            let items = query(prom_port, &throughput[0]).await;
            let transactions = query(prom_port, &throughput[1]).await;
            let positive = |series: &[Value]| {
                series.iter().any(|s| {
                    s["value"][1]
                        .as_str()
                        .and_then(|v| v.parse::<f64>().ok())
                        .is_some_and(|v| v > 0.0)
                })
            };
            !lag_series.is_empty() && positive(&items) && positive(&transactions)
        },
    )
    .await;
    // Every panel's queries parse and evaluate (Prometheus answers 200 to each).
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/rowcast-dashboard.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$instance", ".*");
            query(prom_port, &expr).await;
        }
    }
    let (task, _env) = writer;
    task.await.unwrap();
    assert!(daemon.terminate().success());
}
