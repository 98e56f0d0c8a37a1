//! The API off the scraped port: the metrics listener serves `/metrics`, `/healthz` and
//! `/readyz` and nothing else; reads and commands answer on `[api] listen`, only to requests
//! with the bearer token of `[api] token_file`; a snapshot request for a view that is
//! backfilling already is coalesced.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{eventually, Env};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "t0ken-for-the-api";

/// `method path` on `port` with these extra header lines; the status.
async fn request(port: u16, method: &str, path: &str, headers: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_has_its_own_listener_and_wants_the_token() {
    let env = Env::new("apiport").await;
    env.notes_view().await;
    env.sql("INSERT INTO notes SELECT seq, 'x' FROM seq_1_to_2000")
        .await;
    std::fs::write(env.dir.join("api-token"), format!("{TOKEN}\n")).unwrap();
    // A slow backfill (about 8 s), so that a second snapshot request finds it running.
    env.write_config(&format!(
        "[api]\nlisten = \"127.0.0.1:{}\"\ntoken_file = \"api-token\"\n\n[backfill]\nchunk_rows = 100\nmax_items_per_second = 250\n",
        env.api_port
    ));
    env.create_tables();
    let daemon = env.start_filling().await;
    let item = "/v1/views/notes/item?pk=N%231&sk=NOTE";
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");

    // The scraped port: metrics and probes, no API.
    assert_eq!(request(env.port, "GET", "/metrics", "").await, 200);
    assert_eq!(request(env.port, "GET", "/readyz", "").await, 200);
    assert_eq!(request(env.port, "GET", item, &bearer).await, 404);
    assert_eq!(request(env.port, "POST", "/v1/reload", &bearer).await, 404);

    // The API: no token, a wrong one, a prefix of the right one: 401; the token: the item.
    assert_eq!(request(env.api_port, "GET", item, "").await, 401);
    let wrong = "Authorization: Bearer t0ken-for-the-apX\r\n";
    assert_eq!(request(env.api_port, "GET", item, wrong).await, 401);
    let prefix = "Authorization: Bearer t0ken\r\n";
    assert_eq!(request(env.api_port, "GET", item, prefix).await, 401);
    assert_eq!(request(env.api_port, "GET", item, &bearer).await, 200);
    // The scheme's name in any case (RFC 7235).
    let lower = format!("Authorization: bearer {TOKEN}\r\n");
    assert_eq!(request(env.api_port, "GET", item, &lower).await, 200);
    let snapshot = "/v1/views/notes/snapshot";
    assert_eq!(request(env.api_port, "POST", snapshot, "").await, 401);

    // The first backfill still runs: a snapshot request is coalesced into it (200, not queued).
    let (_, ready) = daemon.get("/readyz").await;
    assert!(ready.contains("backfilling: notes"), "{ready}");
    assert_eq!(request(env.api_port, "POST", snapshot, &bearer).await, 200);
    // The CLI reads the address and the token from the config.
    assert!(env.snapshot("notes").contains("coalesced"));
    eventually(
        "the backfill to finish",
        Duration::from_secs(60),
        || async { !daemon.get("/readyz").await.1.contains("backfilling") },
    )
    .await;
    // Once it has finished, a request starts a backfill again.
    assert_eq!(request(env.api_port, "POST", snapshot, &bearer).await, 202);
    assert!(daemon.terminate().success());
}

/// Fills are bounded: with every fill held (a failpoint sleeps before each read), the queue of
/// the snapshot worker and the channel in front of it fill up, and further misses are answered
/// 503 at once instead of all waiting on the source: every 503 comes before the first answer
/// that waited for a fill (an order, which a loaded machine keeps, rather than a time).
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
async fn a_full_queue_of_fills_answers_503_at_once() {
    let env = Env::new("apifills").await;
    env.notes_view().await;
    let view = std::fs::read_to_string(env.dir.join("views/notes.toml")).unwrap();
    env.write_view("notes.toml", &format!("{view}[fill]\nmode = \"lazy\"\n"));
    env.write_config("");
    env.create_tables();
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "snapshot.before_fill=sleep6000@*")]);
    daemon.wait_until(|status, _| status == 200).await;
    let port = env.api_port;
    let requests: Vec<_> = (0..200)
        .map(|n| {
            tokio::spawn(async move {
                let path = format!("/v1/views/notes/item?pk=N%23{}&sk=NOTE", 1000 + n);
                let started = std::time::Instant::now();
                let status = request(port, "GET", &path, "").await;
                (status, started.elapsed())
            })
        })
        .collect();
    let mut refused = Vec::new();
    let mut filled = Vec::new();
    for answer in requests {
        let (status, took) = answer.await.unwrap();
        if status == 503 {
            refused.push(took);
        } else {
            filled.push(took);
        }
    }
    // 64 queued in the worker and 64 in the channel at most: the rest is refused.
    assert!(refused.len() >= 50, "{} of 200 refused", refused.len());
    let last_refusal = refused.iter().max().unwrap();
    let first_fill = filled.iter().min().unwrap();
    assert!(
        last_refusal < first_fill,
        "a 503 after {last_refusal:?}, a fill answered after {first_fill:?}"
    );
    daemon.kill9();
}

/// Two views of one table whose keys one's templates parse as the other's (`O#{id}` reads
/// `O#5#LINE#1` with `id = 5#LINE#1`, and MariaDB compares `'5#LINE#1'` with the integer 5):
/// a repair or a read through one view of the other's key neither removes nor returns the
/// other view's item. On the code before, the repair removed the line's item (no row of
/// `orders` renders that key) and the read returned it as an order.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_of_another_view_is_neither_repaired_nor_read_through_this_one() {
    let env = Env::new("apiowner").await;
    let table = env.table("views");
    env.sql(
        "CREATE TABLE orders (id INT PRIMARY KEY, c INT NOT NULL);
         CREATE TABLE order_lines (order_id INT, n INT, c INT NOT NULL, PRIMARY KEY (order_id, n));
         INSERT INTO orders VALUES (5, 1);
         INSERT INTO order_lines VALUES (5, 1, 1);",
    )
    .await;
    env.write_view(
        "orders.toml",
        &format!("name = \"orders\"\ntable = \"{table}\"\nsource = \"{{DB}}.orders\"\n[key]\npk = \"C#{{c}}\"\nsk = \"O#{{id}}\"\n"),
    );
    env.write_view(
        "lines.toml",
        &format!("name = \"lines\"\ntable = \"{table}\"\nsource = \"{{DB}}.order_lines\"\n[key]\npk = \"C#{{c}}\"\nsk = \"O#{{order_id}}#LINE#{{n}}\"\n"),
    );
    env.write_config(&format!("[api]\nlisten = \"127.0.0.1:{}\"\n", env.api_port));
    env.create_tables();
    let daemon = env.start().await;
    let items = vec![
        serde_json::json!({"pk": "C#1", "sk": "O#5", "id": 5, "c": 1}),
        serde_json::json!({"pk": "C#1", "sk": "O#5#LINE#1", "order_id": 5, "n": 1, "c": 1}),
    ];
    env.converge(&table, items.clone(), Duration::from_secs(30))
        .await;
    let (status, body) = common::http_post(
        env.api_port,
        "/v1/views/orders/repair?pk=C%231&sk=O%235%23LINE%231",
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = common::http_get(
        env.api_port,
        "/v1/views/orders/item?pk=C%231&sk=O%235%23LINE%231",
    )
    .await;
    assert_eq!(status, 409, "{body}");
    // Nothing removed meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.converge(&table, items, Duration::from_secs(5)).await;
    assert!(daemon.terminate().success());
}
