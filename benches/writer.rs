//! The write path alone: windows of small items (an `accounts` row's item) delivered through
//! rowcast's own writer and DynamoDB client (BatchWriteItem of 25, `LANES` windows at a time)
//! to DynamoDB Local, and this process's CPU time per item. No MariaDB, no projection: what
//! the e2e bench's CPU per row spends in the writer, the AWS SDK, HTTP and the runtime.
//!
//! `cargo bench --bench writer` (ROWCAST_BENCH_WRITER_ITEMS, default 50,000). DynamoDB Local
//! must run (`deploy/local-services.sh start`). Under `cargo test` it does nothing.
//!
//! The same run under `valgrind --tool=callgrind` counts instructions, which a busy machine does
//! not move: the README gives the command.

use std::sync::Arc;
use std::time::Instant;

use rowcast::config::WriteMode;
use rowcast::control::deadletter::DeadLetterStore;
use rowcast::pipeline::{Position, WriteOp};
use rowcast::sink::lane::{Deliver, Delivery};
use rowcast::sink::writer::Writer;
use rowcast::view::project::{Item, ItemKey, ItemOp, Name};
use rowcast::view::value::Attr;

mod support;

/// As many windows in flight as the e2e bench's daemon has lanes.
const LANES: usize = 8;
/// The daemon's default `writer.max_window_items`.
const WINDOW: usize = 100;

#[global_allocator]
static ALLOCATOR: rowcast::util::alloc::Mimalloc = rowcast::util::alloc::Mimalloc;

fn op(table: &Name, view: &Name, id: usize, origin: &Arc<Position>) -> WriteOp {
    let key = ItemKey {
        table: table.clone(),
        pk_attribute: Name::interned("pk"),
        pk: format!("OWNER#{}", id % 1000),
        sk_attribute: Some(Name::interned("sk")),
        sk: Some(format!("ACC#{id:08}")),
    };
    let mut item = Item::new();
    item.insert("pk", Attr::S(key.pk.clone()));
    item.insert("sk", Attr::S(key.sk.clone().unwrap_or_default()));
    item.insert("id", Attr::N(id.to_string()));
    item.insert("balance", Attr::N(id.to_string()));
    item.insert("state", Attr::S("open".into()));
    WriteOp {
        view: view.clone(),
        op: ItemOp::Put { key, item },
        version: (id as u128) << 32,
        seq: id as u64,
        guard: false,
        mark_removal: false,
        restore: false,
        write_back: false,
        origin: origin.clone(),
    }
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("writer: skipped (run with `cargo bench --bench writer`)");
        return;
    }
    let items = support::env_usize("ROWCAST_BENCH_WRITER_ITEMS", 50_000);
    let client = support::dynamodb_client().await;
    let table = format!("bench_writer_{}", std::process::id());
    support::create_pk_sk_table(&client, &table, "create writer table").await;
    let dir = std::env::temp_dir().join(format!("rowcast-writer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let writer = Arc::new(Writer {
        // As the daemon's lanes: each request sent once, retried by the writer.
        client: rowcast::dynamo::sending_once(&client),
        dead_letters: DeadLetterStore::file(dir.join("dead.jsonl")),
        max_backoff: std::time::Duration::from_millis(200),
        held: Default::default(),
        check_versions: false,
        lease: rowcast::control::Lease::unowned(),
        abandoned: Default::default(),
        unsure: rowcast::sink::unsure::Unsure::new(std::time::Duration::from_secs(60), 1),
    });
    // Interned, as the daemon's view names and tables are.
    let table = Name::interned(&table);
    let view = Name::interned("accounts");
    let origin = Arc::new(Position {
        file: "bench-bin.000001".into(),
        pos: 4,
        gtid: None,
    });
    let windows = |range: std::ops::Range<usize>| -> Vec<Vec<WriteOp>> {
        range
            .collect::<Vec<_>>()
            .chunks(WINDOW)
            .map(|ids| {
                ids.iter()
                    .map(|&id| op(&table, &view, id, &origin))
                    .collect()
            })
            .collect()
    };
    // DynamoDB Local's JVM and the client's connections warm up first.
    deliver_all(&writer, windows(0..5_000)).await;
    let prepared = windows(5_000..5_000 + items);
    let pid = std::process::id();
    let cpu_before = support::cpu_seconds(pid);
    let started = Instant::now();
    deliver_all(&writer, prepared).await;
    let secs = started.elapsed().as_secs_f64();
    let cpu = support::cpu_seconds(pid) - cpu_before;
    println!(
        "writer: {items} items in {secs:.2}s = {:.0} items/s; this process's CPU {:.1} µs per item (writer, SDK, HTTP, runtime; the items made before the clock started)",
        items as f64 / secs,
        cpu * 1e6 / items as f64,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every window delivered, `LANES` at a time, as the lanes would.
async fn deliver_all(writer: &Arc<Writer>, windows: Vec<Vec<WriteOp>>) {
    let queue = Arc::new(std::sync::Mutex::new(windows.into_iter()));
    let mut tasks = Vec::new();
    for _ in 0..LANES {
        let (writer, queue) = (writer.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue").next();
                let Some(ops) = next else { break };
                let delivery = Delivery {
                    ops,
                    dead: Vec::new(),
                };
                writer.deliver(delivery, WriteMode::Auto).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("lane");
    }
}
