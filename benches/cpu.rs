//! CPU paths: binlog value decoding, projection of a row change through a view, and item
//! encoding into SDK attribute values. Throughput in rows (elements) per second.
//!
//! `cargo bench --bench cpu`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, Criterion, Throughput};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value;
use rowcast::config::compile_view;
use rowcast::dynamo::BatchBody;
use rowcast::source::decode::decode_value;
use rowcast::view::project::{project, ItemOp};
use rowcast::view::row::{ColumnKind, ColumnSchema, Label, Row, TableSchema};
use rowcast::view::spec::TableRef;
use rowcast::view::value::Cell;

/// The binary's allocator (see `src/main.rs`), so these figures are the daemon's.
#[global_allocator]
static ALLOCATOR: rowcast::util::alloc::Mimalloc = rowcast::util::alloc::Mimalloc;

/// ENUM or SET labels as the daemon reads them from a table map: interned.
fn labels(texts: &[&str]) -> Vec<Label> {
    texts.iter().map(|text| Label::interned(text)).collect()
}

fn schema() -> Arc<TableSchema> {
    let col = |name: &str, kind: ColumnKind| ColumnSchema {
        name: name.into(),
        kind,
        is_virtual: false,
    };
    Arc::new(TableSchema::new(
        TableRef::parse("shop.orders").expect("valid"),
        vec![
            col("id", ColumnKind::Int { unsigned: true }),
            col("customer_id", ColumnKind::Int { unsigned: true }),
            col(
                "status",
                ColumnKind::Enum(labels(&["placed", "paid", "cancelled"])),
            ),
            col("total", ColumnKind::Decimal { scale: 2 }),
            col("note", ColumnKind::Text),
            col("placed_at", ColumnKind::DateTime { fsp: 3 }),
            col("tags", ColumnKind::Set(labels(&["gift", "express"]))),
            col("weight", ColumnKind::Double),
        ],
    ))
}

fn binlog_values() -> Vec<BinlogValue<'static>> {
    vec![
        BinlogValue::Value(Value::UInt(123_456)),
        BinlogValue::Value(Value::UInt(42)),
        BinlogValue::Value(Value::Int(2)),
        BinlogValue::Value(Value::Bytes(b"1234.50".to_vec())),
        BinlogValue::Value(Value::Bytes(b"leave at the door, please".to_vec())),
        BinlogValue::Value(Value::Date(2024, 2, 29, 13, 14, 15, 123_000)),
        BinlogValue::Value(Value::Bytes(vec![3])),
        BinlogValue::Value(Value::Double(2.75)),
    ]
}

fn decoded_row(schema: &Arc<TableSchema>) -> Row {
    let cells: Vec<Cell> = schema
        .columns
        .iter()
        .zip(binlog_values())
        .map(|(c, v)| decode_value(&c.kind, &v, 45).expect("decodes"))
        .collect();
    Row {
        schema: schema.clone(),
        cells,
    }
}

const VIEW: &str = r#"
name = "order_summary"
table = "shop_views"
source = "shop.orders"
filter = "status <> 'cancelled' AND total > 0"
[key]
pk = "CUSTOMER#{customer_id}"
sk = "ORDER#{id:010}"
[attributes]
status = "status"
total = "total"
note = "note"
placed = { column = "placed_at", as = "epoch_millis" }
tags = "tags"
weight = "weight"
"#;

fn benches(c: &mut Criterion) {
    let schema = schema();
    let values = binlog_values();
    let mut group = c.benchmark_group("cpu");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_row_8_columns", |b| {
        b.iter(|| {
            for (column, value) in schema.columns.iter().zip(&values) {
                black_box(decode_value(&column.kind, black_box(value), 45).expect("decodes"));
            }
        })
    });
    let view = compile_view(std::path::Path::new("bench.toml"), VIEW).expect("valid view");
    let before = decoded_row(&schema);
    let mut after = before.clone();
    after.cells[1] = Cell::UInt(43);
    group.bench_function("project_update_with_key_move", |b| {
        b.iter(|| {
            black_box(
                project(&view, Some(black_box(&before)), Some(black_box(&after)))
                    .expect("projects"),
            )
        })
    });
    let projection = project(&view, None, Some(&after)).expect("projects");
    let ItemOp::Put { item, .. } = &projection.ops[0] else {
        panic!("a put")
    };
    group.bench_function("encode_item", |b| {
        b.iter(|| {
            black_box(rowcast::dynamo::encode_item(
                black_box(item),
                VERSION,
                "orders",
            ))
        })
    });
    group.bench_function("batch_body_put", |b| {
        b.iter(|| {
            let mut body = BatchBody::with_capacity(256);
            body.table("shop_views");
            body.put(black_box(item), VERSION, "orders");
            black_box(body.finish())
        })
    });
    // What the merge stage adds to a row change of a table being backfilled or filled (a lazy
    // or written-back view's): its primary key read, hashed and noted among the latest changes
    // (`merge::recent`), here an update in place (one key) into a full ring of 65,536.
    let table = TableRef {
        database: "shop".into(),
        table: "orders".into(),
    };
    let mut recent = rowcast::merge::recent::Recent::default();
    let now = std::time::Instant::now();
    for seq in 0..rowcast::merge::recent::CAPACITY as u64 {
        recent.push(seq, seq, now);
    }
    let mut seq = 1u64 << 40;
    let key_columns = ["id".to_string()];
    group.bench_function("note_recent_change", |b| {
        b.iter(|| {
            seq += 1;
            let key = rowcast::merge::recent::row_key(&table, &key_columns, black_box(&after));
            recent.push(key.expect("a key"), seq, now);
        })
    });
    // The whole CPU path of one row change, as issue 13 goal 3 measures it: both images of the
    // update decoded from binlog values, projected (the key moves: a delete and a put), and the
    // put and the delete written into a BatchWriteItem's body, as the writer sends them.
    let path = WholePath::new();
    group.bench_function("decode_project_encode_update_with_key_move", |b| {
        b.iter(|| path.run())
    });
    group.finish();
}

/// The whole path of one row change, its inputs made once.
struct WholePath {
    schema: Arc<TableSchema>,
    view: rowcast::view::View,
    before: Vec<BinlogValue<'static>>,
    after: Vec<BinlogValue<'static>>,
}

impl WholePath {
    fn new() -> WholePath {
        let mut after = binlog_values();
        after[1] = BinlogValue::Value(Value::UInt(43));
        WholePath {
            schema: schema(),
            view: compile_view(std::path::Path::new("bench.toml"), VIEW).expect("valid view"),
            before: binlog_values(),
            after,
        }
    }

    fn run(&self) {
        let decode = |values: &[BinlogValue<'static>]| Row {
            schema: self.schema.clone(),
            cells: self
                .schema
                .columns
                .iter()
                .zip(values)
                .map(|(c, v)| decode_value(&c.kind, v, 45).expect("decodes"))
                .collect(),
        };
        let before = decode(black_box(&self.before));
        let after = decode(black_box(&self.after));
        let projection = project(&self.view, Some(&before), Some(&after)).expect("projects");
        // As a lane's batch goes (`sink/writer.rs`): its requests written into the body of a
        // BatchWriteItem, here a body of this change's two.
        let mut body = BatchBody::with_capacity(projection.ops.len() * 256);
        body.table(&self.view.table);
        for op in &projection.ops {
            match op {
                ItemOp::Put { item, .. } => body.put(item, VERSION, "orders"),
                ItemOp::Delete { key } => body.delete(key),
            }
        }
        black_box(body.finish());
    }
}

/// A version as the daemon writes them: `seq << 32 | index`, `seq` from the clock in
/// microseconds (about 2^51), so above 2^64.
const VERSION: u128 = 1_796_575_017_250_001 << 32 | 7;

criterion_group!(cpu, benches);

/// `ROWCAST_CPU_ITERATIONS=N`: runs the whole path N times and nothing else. Under
/// `valgrind --tool=callgrind`, two values of N give the instructions of one row change, which a
/// busy shared machine does not move (these VMs have no hardware counters for `perf stat`); the
/// fastest of several runs under `/usr/bin/time` gives its time. See the README.
fn main() {
    if let Ok(iterations) = std::env::var("ROWCAST_CPU_ITERATIONS") {
        let path = WholePath::new();
        for _ in 0..iterations.parse::<u64>().expect("a count") {
            path.run();
        }
        return;
    }
    cpu();
    Criterion::default().configure_from_args().final_summary();
}
