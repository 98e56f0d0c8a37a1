//! Every value type of VIEWS.md's table, decoded from the real binlog and written to DynamoDB
//! Local, compared with a golden file of typed DynamoDB JSON (`UPDATE_GOLDEN=1` rewrites it;
//! review the diff against VIEWS.md before committing).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{eventually, Env};
use serde_json::{json, Value};

const SCHEMA: &str = "
CREATE TABLE types (
  id INT PRIMARY KEY,
  t_tiny TINYINT, t_tiny_u TINYINT UNSIGNED, t_small SMALLINT, t_small_u SMALLINT UNSIGNED,
  t_med MEDIUMINT, t_med_u MEDIUMINT UNSIGNED, t_int INT, t_int_u INT UNSIGNED,
  t_big BIGINT, t_big_u BIGINT UNSIGNED,
  t_dec DECIMAL(12,6), t_dec0 DECIMAL(5,0), t_float FLOAT, t_double DOUBLE,
  t_char CHAR(5), t_varchar VARCHAR(20), t_text TEXT, t_enum ENUM('small','medium','large'),
  t_set SET('a','b','c'), t_binary BINARY(4), t_varbinary VARBINARY(8), t_blob BLOB, t_bit BIT(10),
  t_date DATE, t_datetime DATETIME, t_datetime3 DATETIME(3), t_datetime6 DATETIME(6),
  t_timestamp TIMESTAMP(3) NULL, t_timestamp0 TIMESTAMP NULL, t_time TIME, t_time2 TIME(3), t_year YEAR,
  t_time_c TIME(2), t_time_d TIME(1),
  t_json JSON, t_latin1 VARCHAR(10) CHARACTER SET latin1,
  t_virtual INT AS (t_int * 2) VIRTUAL
)";

const ROWS: &str = "
SET time_zone = '+00:00';
SET sql_mode = '';
INSERT INTO types (id, t_tiny, t_tiny_u, t_small, t_small_u, t_med, t_med_u, t_int, t_int_u, t_big, t_big_u,
  t_dec, t_dec0, t_float, t_double, t_char, t_varchar, t_text, t_enum, t_set, t_binary, t_varbinary, t_blob, t_bit,
  t_date, t_datetime, t_datetime3, t_datetime6, t_timestamp, t_timestamp0, t_time, t_time2, t_year, t_json, t_latin1,
  t_time_c, t_time_d)
VALUES
 (1, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
  123456.5, 99999, 3.14, 0.1, 'ab', 'héllo wörld', 'text', 'medium', 'a,c', X'01', X'DEADBEEF', X'000102', b'1010101010',
  '2024-02-29', '2024-02-29 13:14:15', '2024-02-29 13:14:15.123', '2024-02-29 13:14:15.123456',
  '2024-02-29 13:14:15.123', '2024-02-29 13:14:15', '838:59:59', '-01:02:03.5', 2024,
  '{\"a\": [1, 2.5, \"x\", true, null], \"b\": {\"c\": -7}, \"big\": 12345678901234567890}', 'café',
  '-01:02:03.45', '-600:30:00.5'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
  -0.000001, -99999, -1.5e-10, -1.5e100, '', '', '', '', '', X'00000000', X'', X'', b'0',
  '1000-01-01', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999', '1970-01-01 00:00:00.000001',
  '1970-01-01 00:00:01.000', '2038-01-19 03:14:07', '-838:59:59', '00:00:00', 1901,
  'null', '', '-00:00:00.01', '-624:59:59.9'),
 (4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'x', 'y', 'z', 'large', 'b', X'61620000', X'00', X'00', b'1111111111',
  '0000-00-00', '0000-00-00 00:00:00', '2000-01-01 00:00:00', '2000-01-01 00:00:00', NULL, NULL, '12:00:00', '23:59:59.99', 0,
  '[]', NULL, '838:59:59.99', '-00:00:01.0');
INSERT INTO types (id, t_int, t_double) VALUES (5, 5, 1.7976931348623157e300);
";

const NATIVE_VIEW: &str = r#"
name = "types_native"
table = "TABLE"
source = "{DB}.types"
[key]
pk = "T#{id}"
sk = "NATIVE"
"#;

const CONVERTED_VIEW: &str = r#"
name = "types_converted"
table = "TABLE"
source = "{DB}.types"
[key]
pk = "T#{id}"
sk = "CONVERTED#{t_int:05}"
[attributes]
big_u = { column = "t_big_u", as = "string" }
dec = { column = "t_dec", as = "string" }
dbl = { column = "t_double", as = "string" }
flt = { column = "t_float", as = "string" }
set = { column = "t_set", as = "string" }
date_s = { column = "t_date", as = "string" }
ts_s = { column = "t_timestamp", as = "string" }
time_s = { column = "t_time2", as = "string" }
enum_s = { column = "t_enum", as = "string" }
varchar_n = { column = "t_dec0", as = "number" }
year_n = { column = "t_year", as = "number" }
bit_n = { column = "t_bit", as = "number" }
date_epoch = { column = "t_date", as = "epoch_seconds" }
dt_epoch_ms = { column = "t_datetime3", as = "epoch_millis" }
dt6_epoch = { column = "t_datetime6", as = "epoch_seconds" }
ts_epoch_ms = { column = "t_timestamp", as = "epoch_millis" }
json_s = { column = "t_json", as = "json_string" }
"#;

fn typed(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => {
            json!({"B": b.as_ref().iter().map(|x| format!("{x:02x}")).collect::<String>()})
        }
        AttributeValue::Ss(v) => {
            let mut v = v.clone();
            v.sort();
            json!({"SS": v})
        }
        AttributeValue::M(m) => {
            json!({"M": m.iter().map(|(k, v)| (k.clone(), typed(v))).collect::<BTreeMap<_, _>>()})
        }
        AttributeValue::L(l) => json!({"L": l.iter().map(typed).collect::<Vec<_>>()}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(_) => json!({"NULL": true}),
        other => json!({"?": format!("{other:?}")}),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_value_type_matches_the_golden_file() {
    let env = Env::new("values").await;
    let table = env.table("views");
    env.sql(SCHEMA).await;
    env.write_view("native.toml", &NATIVE_VIEW.replace("TABLE", &table));
    env.write_view("converted.toml", &CONVERTED_VIEW.replace("TABLE", &table));
    env.write_config("[dead_letter]\npath = \"dead.jsonl\"\n");
    env.create_tables();
    let daemon = env.start().await;
    env.sql(ROWS).await;

    // Row 5's DOUBLE 1.79e300 is beyond DynamoDB's range: that row's native item is a dead
    // letter, its converted item (as = "string") is fine. Row 2 has a NULL key column in the
    // converted view: no item.
    let scan = || async {
        let out = env
            .ddb
            .scan()
            .table_name(&table)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.items()
            .iter()
            .map(|item| {
                item.iter()
                    .filter(|(k, _)| !k.starts_with('_'))
                    .map(|(k, v)| (k.clone(), typed(v)))
                    .collect()
            })
            .collect::<Vec<BTreeMap<String, Value>>>()
    };
    eventually("8 items", Duration::from_secs(20), || async {
        scan().await.len() == 8
    })
    .await;
    let mut items = scan().await;
    items.sort_by_key(|i| format!("{}{}", i["pk"], i["sk"]));
    let actual = serde_json::to_string_pretty(&items).unwrap() + "\n";
    let golden_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/types.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &actual).unwrap();
    }
    let golden =
        std::fs::read_to_string(&golden_path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(actual, golden, "items differ from tests/golden/types.json");

    let dead = std::fs::read_to_string(env.dir.join("dead.jsonl")).unwrap_or_default();
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert!(
        dead.contains("t_double") && dead.contains("outside what DynamoDB can hold"),
        "{dead}"
    );
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(
        metrics.contains("rowcast_zero_dates_total{view=\"types_native\"} 2"),
        "{metrics}"
    );
    assert!(daemon.terminate().success());
}

/// MariaDB's `UUID`, `INET4` and `INET6` columns: the binlog carries their stored bytes, SQL
/// their text. Rows copied by the backfill and rows changed afterwards (inserts, updates, a key
/// move, a delete, a filter reading one) must make the items SQL's text makes, keys included.
#[tokio::test(flavor = "multi_thread")]
async fn uuid_and_inet_columns_make_the_text_sql_gives_from_the_binlog_and_from_sql() {
    let env = Env::new("addresses").await;
    let table = env.table("views");
    env.sql("CREATE TABLE addrs (u UUID PRIMARY KEY, v4 INET4 NOT NULL, v6 INET6, n INT)")
        .await;
    env.write_view(
        "addresses.toml",
        &format!(
            r#"
name = "addresses"
table = "{table}"
source = "{{DB}}.addrs"
filter = "v4 <> '10.9.8.7'"
[key]
pk = "ADDR#{{u}}"
[attributes]
u = "u"
v4 = "v4"
v6 = "v6"
n = "n"
"#
        ),
    );
    let config = env.write_config("[dead_letter]\npath = \"dead.jsonl\"\n");
    env.create_tables();
    // Every UUID version and variant nibble MariaDB takes; the INET6 forms whose text has a rule
    // of its own (the first longest run of zero groups, a lone zero group compressed too,
    // IPv4-compatible and -mapped forms and their near misses), each in a backfilled row and in
    // a streamed one; INET4 values whose stored bytes end in zeros (the binlog leaves trailing
    // zero bytes of a fixed-length binary value out).
    const INET6: [&str; 21] = [
        "1:2:3:4:5:6:7:0",
        "0:0:0:0:0:0:1:0",
        "0:0:0:0:0:ffff:0:1",
        "::fffe:1:2",
        "0:0:0:0:1:ffff:1:2",
        "::",
        "::1",
        "::1.2.3.4",
        "::ffff:1.2.3.4",
        "::102",
        "fe80::1:0:0:2",
        "0:0:1::",
        "1:0:0:2:0:0:3:4",
        "1:0:1:0:1:0:1:0",
        "2001:db8::",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "::ffff:0.0.0.0",
        "::ffff:0:102",
        "1::",
        "0:1::",
        "::1:0:0:0",
    ];
    const INET4: [&str; 5] = [
        "0.0.0.0",
        "255.255.255.255",
        "10.0.0.0",
        "1.0.0.0",
        "192.168.1.10",
    ];
    let rows = |from: usize| -> String {
        (from..from + INET6.len())
            .map(|i| {
                let v6 = if i == 5 {
                    "NULL".to_string()
                } else {
                    format!("'{}'", INET6[i - from])
                };
                format!(
                    "('{:08x}-89ab-{:x}def-{:x}123-456789abcd{:02x}', '{}', {v6}, {i})",
                    i * 0x0101_0101,
                    i % 16,
                    // MariaDB refuses versions 8 to f with a variant nibble below 8.
                    if i % 16 >= 8 {
                        8 + (i * 7) % 8
                    } else {
                        (i * 7) % 16
                    },
                    i,
                    INET4[i % 5]
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    env.sql(&format!("INSERT INTO addrs VALUES {}", rows(0)))
        .await;
    let daemon = env.start().await;
    env.sql(&format!("INSERT INTO addrs VALUES {}", rows(INET6.len())))
        .await;
    env.sql(
        "UPDATE addrs SET v6 = '1:2:3:4:5:6:7:8' WHERE n = 1; \
         UPDATE addrs SET v4 = '10.9.8.7' WHERE n = 2; \
         DELETE FROM addrs WHERE n = 3; \
         UPDATE addrs SET u = 'ffffffff-0000-e000-0000-00000000000a' WHERE n = 4; \
         UPDATE addrs SET v4 = '0.0.0.1', v6 = '::ffff:9.8.7.6' WHERE n = 25; \
         UPDATE addrs SET u = '00000000-0000-0000-0000-000000000000' WHERE n = 26; \
         DELETE FROM addrs WHERE n = 27",
    )
    .await;
    let expected: Vec<Value> = env
        .query::<(String, String, Option<String>, i64)>(
            "SELECT CAST(u AS CHAR), CAST(v4 AS CHAR), CAST(v6 AS CHAR), n FROM addrs \
             WHERE v4 <> '10.9.8.7'",
        )
        .await
        .into_iter()
        .map(|(u, v4, v6, n)| {
            let mut item = json!({"pk": format!("ADDR#{u}"), "u": u, "v4": v4, "n": n});
            if let Some(v6) = v6 {
                item["v6"] = json!(v6);
            }
            item
        })
        .collect();
    assert_eq!(expected.len(), 2 * INET6.len() - 3);
    env.converge(&table, expected, Duration::from_secs(30))
        .await;
    let dead = std::fs::read_to_string(env.dir.join("dead.jsonl")).unwrap_or_default();
    assert_eq!(dead, "", "no dead letters");
    // Verification reads the rows from SQL and finds every item as it should be.
    let out = env.rowcast(&["verify", "--config", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(daemon.terminate().success());
}

/// Events written before an `ALTER … MODIFY c UUID` read after it (rowcast was down across
/// the ALTER): `information_schema` says UUID, the events' table map says CHAR(36). Found by a
/// review: every such event failed to decode (36 bytes for a 16-byte UUID), which stops the
/// reader at that event on every restart. They are read as the text they hold.
#[tokio::test(flavor = "multi_thread")]
async fn events_from_before_a_column_became_a_uuid_are_read_as_their_old_type() {
    let env = Env::new("addrretype").await;
    let table = env.table("views");
    env.sql("CREATE TABLE devs (id INT PRIMARY KEY, u CHAR(36) NOT NULL, v6 VARCHAR(39) NULL)")
        .await;
    env.write_view(
        "devs.toml",
        &format!(
            "name = \"devs\"\ntable = \"{table}\"\nsource = \"{{DB}}.devs\"\n[key]\npk = \"D#{{id}}\"\n[attributes]\nu = \"u\"\nv6 = \"v6\"\n"
        ),
    );
    env.write_config("[checkpoint]\npath = \"checkpoint.json\"\ninterval_ms = 200\n");
    env.create_tables();
    let daemon = env.start().await;
    assert!(daemon.terminate().success());
    // While rowcast is down: rows in the old types, the ALTER, rows in the new ones.
    env.sql(
        "INSERT INTO devs VALUES (1, '01234567-89ab-1def-8123-456789abcdef', '::1'), \
           (2, '11234567-89ab-4def-8123-456789abcdef', 'fe80::1:0:0:2'); \
         UPDATE devs SET v6 = '1::2' WHERE id = 2; \
         ALTER TABLE devs MODIFY u UUID NOT NULL, MODIFY v6 INET6 NULL; \
         INSERT INTO devs VALUES (3, '21234567-89ab-7def-8123-456789abcdef', '::ffff:1.2.3.4'); \
         UPDATE devs SET v6 = '1:0:1:0:1:0:1:0' WHERE id = 1",
    )
    .await;
    let daemon = env.start().await;
    let expected: Vec<Value> = env
        .query::<(i64, String, Option<String>)>(
            "SELECT id, CAST(u AS CHAR), CAST(v6 AS CHAR) FROM devs",
        )
        .await
        .into_iter()
        .map(|(id, u, v6)| json!({"pk": format!("D#{id}"), "u": u, "v6": v6}))
        .collect();
    env.converge(&table, expected, Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
}

/// A spatial column before text and binary columns: MariaDB counts it in the table map's
/// charset list (it has the binary charset), so the columns after it must take the charsets
/// after its own. Rows streamed from the binlog must make the items rows read by SQL make.
#[tokio::test(flavor = "multi_thread")]
async fn text_after_a_spatial_column_keeps_its_charset() {
    let env = Env::new("spatial").await;
    let table = env.table("views");
    env.sql(
        "CREATE TABLE shops (id INT PRIMARY KEY, loc POINT NOT NULL, name VARCHAR(40) CHARACTER SET utf8mb4 NOT NULL, code VARBINARY(4) NOT NULL, city VARCHAR(20) CHARACTER SET latin1 NOT NULL);
         INSERT INTO shops VALUES (1, POINT(1, 2), 'Café', x'00ff', 'Köln')",
    )
    .await;
    env.write_view(
        "shops.toml",
        &format!("name = \"shops\"\ntable = \"{table}\"\nsource = \"{{DB}}.shops\"\n[key]\npk = \"S#{{id}}\"\nsk = \"{{name}}\"\n[attributes]\nname = \"name\"\ncode = \"code\"\ncity = \"city\"\n"),
    );
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;
    env.sql("INSERT INTO shops VALUES (2, POINT(3, 4), 'Bäckerei', x'0102', 'Zürich')")
        .await;
    let item = |id: i64, name: &str, code: &str, city: &str| json!({"pk": {"S": format!("S#{id}")}, "sk": {"S": name}, "name": {"S": name}, "code": {"B": code}, "city": {"S": city}});
    let expected = vec![
        item(1, "Café", "00ff", "Köln"),
        item(2, "Bäckerei", "0102", "Zürich"),
    ];
    let stored = || async {
        let scan = env.ddb.scan().table_name(&table).send().await.unwrap();
        let mut items: Vec<Value> = scan
            .items()
            .iter()
            .map(|item| {
                Value::Object(
                    item.iter()
                        .filter(|(name, _)| !name.starts_with('_'))
                        .map(|(name, value)| (name.clone(), typed(value)))
                        .collect(),
                )
            })
            .collect();
        items.sort_by_key(|v| v.to_string());
        items
    };
    let mut want = expected.clone();
    want.sort_by_key(|v| v.to_string());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stored().await != want && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(stored().await, want);
    assert!(daemon.terminate().success());
}

/// rowcast reads a rows event's images itself (`source/image.rs`): on the real binlog events of
/// every value type above — inserts, updates (both images) and deletes, NULLs and extremes —
/// it gives exactly the rows mysql_common's own iterator gives. The schema cache keeps a layout
/// by table id for the table map it was made of only: a table map of the same table whose
/// column changed width (same name, column count and type codes, as after a restart reusing the
/// id) does not find it.
#[tokio::test(flavor = "multi_thread")]
async fn row_images_read_in_place_are_the_rows_mysql_commons_iterator_gives() {
    use futures_util::StreamExt;
    use mysql_async::binlog::events::EventData;
    use rowcast::source::{decode, image};

    let env = Env::new("images").await;
    env.sql(SCHEMA).await;
    env.sql("CREATE TABLE widths (id INT PRIMARY KEY, v VARCHAR(60))")
        .await;
    let (file, pos) = env.binlog_end().await;
    env.sql(ROWS).await;
    env.sql(
        "UPDATE types SET t_int = IFNULL(t_int, 0) DIV 2, t_varchar = 'changed' WHERE id < 5;
         DELETE FROM types WHERE id = 3;
         INSERT INTO widths VALUES (1, 'a');
         ALTER TABLE widths MODIFY v VARCHAR(100);
         INSERT INTO widths VALUES (2, 'b');",
    )
    .await;
    let mut stream = env
        .admin
        .get_conn()
        .await
        .unwrap()
        .get_binlog_stream(
            mysql_async::BinlogStreamRequest::new(env.server_id ^ 0x1000_0000)
                .with_filename(file.as_bytes())
                .with_pos(pos),
        )
        .await
        .unwrap();
    let types = rowcast::view::spec::TableRef::parse(&format!("{}.types", env.db)).unwrap();
    let extras = rowcast::sql::fetch_extras(&env.admin, &types)
        .await
        .unwrap();
    let (mut compared, mut images) = (0, 0);
    let mut widths = Vec::new();
    while widths.len() < 2 || compared < 4 {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("binlog events")
            .unwrap()
            .unwrap();
        let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() else {
            continue;
        };
        let tme = stream.get_tme(rows.table_id()).unwrap();
        let layout = image::Layout::of(tme).unwrap();
        if tme.table_name() != "types" {
            widths.push((rows.table_id(), tme.clone().into_owned()));
            continue;
        }
        let schema =
            std::sync::Arc::new(decode::schema_from_table_map(tme, &extras, true).unwrap());
        let charsets = decode::column_charsets(tme, true).unwrap();
        assert!(image::plain(&rows, &layout), "a full image, no shared one");
        let ours: Vec<_> = image::rows(&rows, &layout, &schema, &charsets)
            .map(|r| r.unwrap())
            .collect();
        let theirs: Vec<_> = rows
            .rows(tme)
            .map(|r| {
                let (before, after) = r.unwrap();
                let decode = |i: Option<mysql_async::binlog::row::BinlogRow>| {
                    i.map(|i| decode::decode_row(&schema, &i, &charsets).unwrap())
                };
                (decode(before), decode(after))
            })
            .collect();
        assert!(!ours.is_empty());
        assert_eq!(ours, theirs);
        images += ours
            .iter()
            .map(|(b, a)| usize::from(b.is_some()) + usize::from(a.is_some()))
            .sum::<usize>();
        compared += 1;
    }
    // The inserts (two events: 4 rows and 1), the update (4 rows, two images each) and the
    // delete: 5 + 8 + 1 images.
    assert_eq!(images, 14);
    let [(id, before), (_, after)] = <[_; 2]>::try_from(widths).unwrap();
    assert_eq!(before.columns_count(), after.columns_count());
    let mut cache = rowcast::source::schema::SchemaCache::new(env.admin.clone());
    cache.load(id, &before).await.unwrap();
    assert!(cache.cached(id, &before).is_some());
    assert!(
        cache.cached(id, &after).is_none(),
        "a table map of other column widths found the layout kept for the id"
    );
}
