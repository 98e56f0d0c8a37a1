//! The command line against VIEWS.md: `check` lists every problem with file and field and exits
//! non-zero; `check --connect` adds the server checks; `tables create` is idempotent; `run`
//! refuses a bad config.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Env;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn check_lists_every_problem_with_file_and_field() {
    let env = Env::new("clibad").await;
    env.write_view(
        "bad.toml",
        r#"
name = "Bad Name"
table = "x"
source = "no_dot"
filter = "a = 1 AND (b > 'x'"
surprise = true
[key]
pk = "A#{id:x}"
"#,
    );
    env.write_view(
        "bad2.toml",
        r#"
name = "second"
table = "second_table"
source = "db.t"
[key]
pk = "A#{id}"
[attributes]
_hidden = "x"
pk = "y"
when = { column = "created", as = "fortnights" }
[[embed]]
attribute = "lines"
from = "db.lines"
on = { order_id = "id" }
order_by = "line_no sideways"
"#,
    );
    let config = env
        .write_config("[writer]\nlanes = 0\n")
        .to_str()
        .unwrap()
        .to_string();
    // The [writer] section appears twice now: TOML rejects that. Write a clean one instead.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[writer]\nflush_interval_ms = 5\n", "");
    std::fs::write(
        &config,
        text.replace(
            "views = [\"views/*.toml\"]",
            "views = [\"views/*.toml\", \"missing/*.toml\"]",
        ),
    )
    .unwrap();
    let out = env.rowcast(&["check", "--config", &config]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    // The first file fails to parse (unknown field): one problem for it, with its name.
    assert!(
        err.contains("bad.toml") && err.contains("surprise"),
        "{err}"
    );
    for (file, field) in [
        ("rowcast.toml", "views[1]"),
        ("rowcast.toml", "writer.lanes"),
        ("bad2.toml", "attributes._hidden"),
        ("bad2.toml", "attributes.pk"),
        ("bad2.toml", "attributes.when.as"),
        ("bad2.toml", "embed[0].order_by"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(file) && l.contains(&format!(": {field}:"))),
            "{file} {field} missing in:\n{err}"
        );
    }
    // Fix the parse error: its semantic problems are listed too.
    env.write_view(
        "bad.toml",
        r#"
name = "Bad Name"
table = "x"
source = "no_dot"
filter = "a = 1 AND (b > 'x'"
[key]
pk = "A#{id:x}"
"#,
    );
    let out = env.rowcast(&["check", "--config", &config]);
    let err = stderr(&out);
    for field in ["name", "table", "source", "filter", "key.pk"] {
        assert!(
            err.lines()
                .any(|l| l.contains("bad.toml") && l.contains(&format!(": {field}:"))),
            "{field} missing in:\n{err}"
        );
    }
    assert!(
        err.contains("filter: column 19"),
        "filter errors name the column: {err}"
    );
    let out = env.rowcast(&["run", "--config", &config]);
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn check_connect_verifies_the_servers() {
    let env = Env::new("cliconnect").await;
    env.sql("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(6,2), created DATETIME)").await;
    let table = env.table("views");
    env.write_view(
        "items.toml",
        &r#"
name = "items"
table = "TABLE"
source = "{DB}.items"
filter = "price > 'cheap'"
[key]
pk = "ITEM#{name:04}"
[attributes]
name = "name"
missing = "no_such_column"
price = { column = "price", as = "epoch_millis" }
created = { column = "created", as = "epoch_millis" }
"#
        .replace("TABLE", &table),
    );
    let config = env.write_config("").to_str().unwrap().to_string();
    let out = env.rowcast(&["check", "--config", &config]);
    assert!(
        out.status.success(),
        "without --connect no I/O: {}",
        stderr(&out)
    );
    let out = env.rowcast(&["check", "--connect", "--config", &config]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    for needle in [
        "filter: column price is numeric",
        "key.pk: {name:0N} needs an integer column",
        "attributes.missing: column no_such_column is not in",
        "attributes.price.as: conversion EpochMillis does not apply to a decimal column",
        "does not exist (run `rowcast tables create`)",
    ] {
        assert!(err.contains(needle), "{needle:?} missing in:\n{err}");
    }
    assert!(!err.contains("attributes.created"), "{err}");

    // tables create is idempotent and then the DynamoDB side checks out.
    let out = env.rowcast(&["tables", "--config", &config, "create"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("created {table}")));
    let out = env.rowcast(&["tables", "--config", &config, "create"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("exists {table}: left as it is"))
    );
    let out = env.rowcast(&["check", "--connect", "--config", &config]);
    assert!(!stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_connect_verifies_joins() {
    let env = Env::new("clijoins").await;
    env.sql(
        "CREATE TABLE customers (id INT PRIMARY KEY, region VARCHAR(5), name VARCHAR(20), UNIQUE KEY (region, name));
         CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, region VARCHAR(5),
           CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE RESTRICT);
         CREATE TABLE order_lines (id INT PRIMARY KEY, order_id INT, sku VARCHAR(10),
           CONSTRAINT lines_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE ON UPDATE SET NULL);",
    )
    .await;
    let table = env.table("views");
    env.write_view(
        "orders.toml",
        &r#"
name = "orders"
table = "TABLE"
source = "{DB}.orders"
[key]
pk = "ORDER#{id}"
[[lookup]]
from = "{DB}.customers"
on = { region = "region" }
attributes = { customer = "name" }
[[lookup]]
from = "{DB}.customers"
on = { id = "customer_id" }
attributes = { region = "region" }
[[embed]]
attribute = "lines"
from = "{DB}.order_lines"
on = { order_id = "id" }
order_by = "position"
[[aggregate]]
attribute = "sku_total"
from = "{DB}.order_lines"
on = { order_id = "nope" }
function = "sum:sku"
[[aggregate]]
attribute = "n"
from = "{DB}.missing"
on = { order_id = "id" }
function = "count"
"#
        .replace("TABLE", &table),
    );
    env.write_view(
        "regions.toml",
        &r#"
name = "regions"
table = "TABLE"
source = "{DB}.orders"
[key]
pk = "REGION#{region}"
sk = "CUSTOMER#{customer_id}"
[attributes]
order_id = "id"
gone = "no_such"
[writeback]
enabled = true
attributes = ["order_id", "gone"]
"#
        .replace("TABLE", &env.table("regions")),
    );
    let config = env.write_config("").to_str().unwrap().to_string();
    let out = env.rowcast(&["check", "--config", &config]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.rowcast(&["check", "--connect", "--config", &config]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    for needle in [
        "writeback.enabled: the key templates name no unique key of",
        "writeback.attributes[1]: column no_such is not in",
        "lookup[0].on: (region) is not a unique key of",
        "lookup[1]: attribute region is also a column of",
        "embed[0].order_by: column position is not in",
        "aggregate[0].on.order_id: column nope is not in",
        "aggregate[0].function: sum needs a numeric column; sku is varchar",
        "aggregate[1].from: table",
        // Cascades are not in the binlog: reported on every view field that reads the child.
        "embed[0].from: foreign key lines_order of",
        "ON DELETE CASCADE ON UPDATE SET NULL: the server does not log the rows a cascade changes",
        "aggregate[0].from: foreign key lines_order",
    ] {
        assert!(err.contains(needle), "{needle:?} missing in:\n{err}");
    }
    assert!(!err.contains("lookup[1].on"), "{err}");
    assert!(
        !err.contains("orders_customer"),
        "RESTRICT is no cascade: {err}"
    );
}

/// `rowcast query` reads one partition with Query, page by page in sort-key order, as an
/// application would (the demo reads a menu channel so).
#[tokio::test(flavor = "multi_thread")]
async fn query_pages_through_one_partition_in_sort_key_order() {
    let env = Env::new("cliquery").await;
    env.sql("CREATE TABLE entries (id INT PRIMARY KEY, grp INT NOT NULL, body VARCHAR(20))")
        .await;
    let table = env.table("entries");
    env.write_view(
        "entries.toml",
        &format!("name = \"entries\"\ntable = \"{table}\"\nsource = \"{{DB}}.entries\"\n[key]\npk = \"G#{{grp}}\"\nsk = \"L#{{id:04}}\"\n"),
    );
    let config = env.write_config("").to_str().unwrap().to_string();
    env.create_tables();
    env.sql("INSERT INTO entries VALUES (3, 1, 'c'), (1, 1, 'a'), (2, 1, 'b'), (4, 2, 'other')")
        .await;
    let daemon = env.start().await;
    let out = env.rowcast(&[
        "query",
        "--config",
        &config,
        "--table",
        &table,
        "--pk",
        "G#1",
        "--page-size",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let pages: Vec<&str> = text.lines().filter(|l| l.starts_with("# page")).collect();
    assert_eq!(
        pages,
        ["# page 1 (2 items)", "# page 2 (1 items)"],
        "{text}"
    );
    let sks: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["sk"].to_string())
        .collect();
    assert_eq!(sks, ["\"L#0001\"", "\"L#0002\"", "\"L#0003\""], "{text}");
    assert!(daemon.terminate().success());
}

/// A table made without streams (as an S3 import makes it) gets them from `tables create` when
/// a write-back view needs them.
#[tokio::test(flavor = "multi_thread")]
async fn tables_create_turns_streams_on_for_write_back() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        StreamViewType,
    };
    let env = Env::new("clistreams").await;
    env.sql("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(40))")
        .await;
    let table = env.table("notes");
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    env.ddb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .unwrap();
    env.write_view(
        "notes.toml",
        &format!("name = \"notes\"\ntable = \"{table}\"\nsource = \"{{DB}}.notes\"\n[key]\npk = \"N#{{id}}\"\nsk = \"NOTE\"\n[attributes]\nbody = \"body\"\n[writeback]\nenabled = true\nattributes = [\"body\"]\n"),
    );
    let config = env.write_config("").to_str().unwrap().to_string();
    let out = env.rowcast(&["tables", "--config", &config, "create"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", stderr(&out));
    assert!(
        stdout.contains(&format!("enabled streams (NEW_AND_OLD_IMAGES) on {table}")),
        "{stdout}"
    );
    let described = env
        .ddb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let spec = described.table().unwrap().stream_specification().unwrap();
    assert_eq!(
        spec.stream_view_type(),
        Some(&StreamViewType::NewAndOldImages)
    );
    let out = env.rowcast(&["tables", "--config", &config, "create"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("left as it is"));
}

/// A log written to a file or a pipe (a container's log, a collector) is plain text: no
/// terminal colour codes around the level, the target and every field name.
#[tokio::test(flavor = "multi_thread")]
async fn a_log_that_is_not_a_terminal_has_no_colour_codes() {
    let (env, _table) = common::accounts::setup("plainlog", "").await;
    let daemon = env.start().await;
    assert!(daemon.terminate().success());
    let log = std::fs::read_to_string(env.dir.join("rowcast.log")).unwrap();
    assert!(log.contains("ready"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in the log: {log}");
    assert!(log.contains(" INFO "), "{log}");
}

/// MariaDB's UUID, INET4 and INET6 columns come from the binlog as bytes but from SQL as text.
/// Until 2026-12-04 a view that read one was refused by `check --connect` and at start (exit
/// 3); the binlog's bytes are now read as the same text (`tests/values.rs` compares them), so
/// `check --connect` passes such a view.
#[tokio::test(flavor = "multi_thread")]
async fn views_reading_uuid_and_inet_columns_pass_the_connected_check() {
    let env = Env::new("cliuuid").await;
    let table = env.table("views");
    env.sql(
        "CREATE TABLE devices (id UUID PRIMARY KEY, address INET6 NULL, name VARCHAR(20) NOT NULL)",
    )
    .await;
    env.write_view(
        "devices.toml",
        &format!("name = \"devices\"\ntable = \"{table}\"\nsource = \"{{DB}}.devices\"\nfilter = \"address <> '::1'\"\n[key]\npk = \"D#{{id}}\"\n[attributes]\nname = \"name\"\naddress = \"address\"\n"),
    );
    let config = env.write_config("").to_str().unwrap().to_string();
    env.create_tables();
    let out = env.rowcast(&["check", "--connect", "--config", &config]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("uuid") && !err.contains("inet6"), "{err}");
}

/// A checkpoint file rowcast cannot write (here: its directory would be inside a file; a
/// read-only volume or a directory of another user, which root here cannot be kept out of, are
/// the same error class): `run` stops at once naming it, and `check --connect` reports it. On
/// the code before, check said ok and `run` retried for ever, logging "servers not reachable
/// yet". A directory that does not exist yet is made (as before).
#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_file_that_cannot_be_written_is_a_clear_error() {
    let env = Env::new("cpunwritable").await;
    env.notes_view().await;
    let config = env.write_config(&format!(
        "[checkpoint]\npath = \"{}\"\n",
        env.dir
            .join("no-such-dir")
            .join("checkpoint.json")
            .display()
    ));
    env.create_tables();
    let check = || env.rowcast(&["check", "--connect", "--config", config.to_str().unwrap()]);
    let out = check();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !env.dir.join("no-such-dir").exists(),
        "check made the directory"
    );
    let inside_a_file = env.config_path().join("checkpoint.json");
    env.write_config(&format!(
        "[checkpoint]\npath = \"{}\"\n",
        inside_a_file.display()
    ));
    let out = check();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("checkpoint") && err.contains("rowcast.toml"),
        "{err}"
    );
    let mut daemon = env.spawn();
    let status = daemon.exited(Duration::from_secs(60)).await;
    assert!(!status.success());
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(log.contains("Not a directory"), "{log}");
    assert!(!log.contains("servers not reachable yet"), "{log}");
}
