//! `rowcast export` against the real services: the shop's three views (joins included) read at
//! one consistent point while a workload keeps committing, written as gzip DynamoDB JSON with a
//! manifest; the files loaded into DynamoDB Local the way an S3 import would; then `rowcast run`
//! resumes at the export's checkpoint and applies what was committed during and after the
//! export, none lost, nothing backfilled again.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use common::{canonical, code_and_output, shop, strip_metadata, Env};
use serde_json::Value;

/// The shop's three views (`common::shop`), as export arguments.
const SHOP_VIEWS: [&str; 6] = [
    "--view",
    "order_summary",
    "--view",
    "order_lines",
    "--view",
    "customer_orders",
];

/// A DynamoDB JSON value (`{"S": "…"}`, …) as the SDK's.
fn attribute(value: &Value) -> AttributeValue {
    let (kind, inner) = value.as_object().unwrap().iter().next().unwrap();
    match kind.as_str() {
        "S" => AttributeValue::S(inner.as_str().unwrap().into()),
        "N" => AttributeValue::N(inner.as_str().unwrap().into()),
        "B" => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(inner.as_str().unwrap())
                .unwrap();
            AttributeValue::B(bytes.into())
        }
        "SS" => AttributeValue::Ss(
            inner
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().into())
                .collect(),
        ),
        "BOOL" => AttributeValue::Bool(inner.as_bool().unwrap()),
        "NULL" => AttributeValue::Null(true),
        "L" => AttributeValue::L(inner.as_array().unwrap().iter().map(attribute).collect()),
        "M" => AttributeValue::M(
            inner
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), attribute(v)))
                .collect(),
        ),
        other => panic!("unexpected type {other}"),
    }
}

type Item = HashMap<String, AttributeValue>;

/// Every item of the table's data files listed in the manifest.
fn exported_items(dir: &Path, manifest: &Value, table: &str) -> Vec<Item> {
    let entry = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .unwrap();
    let mut items = Vec::new();
    for file in entry["files"].as_array().unwrap() {
        let mut text = String::new();
        let raw = std::fs::File::open(dir.join(file["path"].as_str().unwrap())).unwrap();
        flate2::read::GzDecoder::new(raw)
            .read_to_string(&mut text)
            .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as u64, file["items"].as_u64().unwrap());
        for line in lines {
            let parsed: Value = serde_json::from_str(line).unwrap();
            let item = parsed["Item"].as_object().unwrap();
            items.push(
                item.iter()
                    .map(|(k, v)| (k.clone(), attribute(v)))
                    .collect(),
            );
        }
    }
    items
}

/// Items as the tests compare them: plain values, metadata stripped, sorted.
fn plain(items: &[Item]) -> Vec<Value> {
    let mut out: Vec<Value> = items
        .iter()
        .map(|item| {
            let map = item
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        rowcast::dynamo::from_attribute_value(v).unwrap().to_json(),
                    )
                })
                .collect();
            canonical(strip_metadata(Value::Object(map)))
        })
        .collect();
    out.sort_by_key(|v| v.to_string());
    out
}

/// What an S3 import does with the files, into the existing (empty) table.
async fn load(env: &Env, table: &str, items: Vec<Item>) {
    for chunk in items.chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        while !requests.is_empty() {
            let out = env
                .ddb
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await
                .unwrap();
            requests = out
                .unprocessed_items
                .and_then(|mut u| u.remove(table))
                .unwrap_or_default();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_loaded_and_resumed_converges_with_changes_during_and_after_it() {
    let env = Env::new("export").await;
    let table = shop::setup(&env, "").await;
    shop::workload(&env, 11, 300).await;
    let at_export = shop::expected(&env).await;
    let config = env.config_path().to_str().unwrap().to_string();
    let out_dir = env.dir.join("export");
    let out = out_dir.to_str().unwrap().to_string();

    // The export takes its snapshot and waits there (failpoint) while the workload commits
    // more: those commits are after its position, so not in the files.
    let log = env.dir.join("export.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rowcast"))
        .args(["export", "--config", &config, "--to", &out, "--checkpoint"])
        .args(SHOP_VIEWS)
        .env("ROWCAST_FAILPOINTS", "export.after_snapshot=sleep2000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    common::eventually("the export's snapshot", Duration::from_secs(30), || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("snapshot taken")
    })
    .await;
    shop::workload(&env, 12, 150).await;
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "rowcast-export/1");
    assert!(manifest["position"]["file"].is_string(), "{manifest}");
    let items = exported_items(&out_dir, &manifest, &table);
    assert_eq!(plain(&items), {
        let mut expected: Vec<Value> = at_export.into_iter().map(canonical).collect();
        expected.sort_by_key(|v| v.to_string());
        expected
    });
    let per_view: u64 = manifest["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["items"].as_u64().unwrap())
        .sum();
    assert_eq!(per_view, items.len() as u64);
    let command = manifest["tables"][0]["import_command"].as_str().unwrap();
    assert!(
        command.contains("--input-format DYNAMODB_JSON --input-compression-type GZIP"),
        "{command}"
    );
    let version = manifest["version"].as_str().unwrap();
    assert!(items
        .iter()
        .all(|i| i["_version"].as_n().unwrap() == version));

    // A second export into the same directory is refused; so is a second --checkpoint.
    let (code, text) = env.export(&out_dir, &["--view", "order_lines"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not empty"), "{text}");
    let again = env.dir.join("export-2");
    let (code, text) = env.export(&again, &["--view", "order_lines", "--checkpoint"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("already holds a checkpoint"), "{text}");

    // The import, then the daemon: it resumes at the export's position (no backfill) and applies
    // the workload committed during the export and one committed after.
    load(&env, &table, items).await;
    let daemon = env.start().await;
    shop::workload(&env, 13, 150).await;
    env.converge(&table, shop::expected(&env).await, Duration::from_secs(90))
        .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(
        !metrics.contains("rowcast_backfill_rows_total{"),
        "the exported views were marked filled, nothing is copied again:\n{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("rowcast_backfill"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let _ = daemon.terminate();
}

/// The `moto` server (S3 and DynamoDB's ImportTable), installed by `deploy/test.sh` into
/// `target/moto-venv`, on a port of its own; killed when dropped.
struct Moto {
    child: std::process::Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Moto {
    let server = std::env::var("ROWCAST_TEST_MOTO_SERVER").unwrap_or_else(|_| {
        format!(
            "{}/target/moto-venv/bin/moto_server",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let port = common::free_port();
    let child = Command::new(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{server}: {e} (deploy/test.sh installs moto[server])"));
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    common::eventually("moto_server", Duration::from_secs(60), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    moto
}

const BLOBS_VIEW: &str = r#"
name = "blobs"
table = "TABLE"
source = "{DB}.blobs"
[key]
pk = "BLOB#{id:08}"
[[index]]
name = "by_kind"
pk = "KIND#{kind}"
sk = "BLOB#{id:08}"
projection = "keys_only"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn an_export_to_s3_is_imported_by_import_table_and_matches_the_source() {
    let moto = moto().await;
    // DynamoDB is moto's too: the import creates the tables there.
    let env = Env::with_dynamodb("exports3", &moto.url).await;
    let table = env.table("shop");
    let blobs = env.table("blobs");
    env.sql(shop::SCHEMA).await;
    // 12,000 rows of 1 KB of hex: more than 5 MiB compressed, so the blobs file is uploaded
    // in two parts or more.
    env.sql(
        "CREATE TABLE blobs (id INT PRIMARY KEY, kind VARCHAR(8) NULL, body TEXT NOT NULL);
         INSERT INTO blobs SELECT seq, IF(seq % 3 = 0, NULL, CONCAT('k', seq % 4)),
           CONCAT(SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512),
                  SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512))
           FROM seq_1_to_12000;",
    )
    .await;
    for (file, text, name) in [
        ("order_summary.toml", shop::ORDER_VIEW, &table),
        ("order_lines.toml", shop::LINES_VIEW, &table),
        ("customer_orders.toml", shop::CUSTOMER_ORDERS_VIEW, &table),
        ("blobs.toml", BLOBS_VIEW, &blobs),
    ] {
        env.write_view(file, &text.replace("TABLE", name));
    }
    let checkpoint = env.dir.join("checkpoint.json");
    let config = env.write_config(&format!(
        "[checkpoint]\npath = \"{}\"\n",
        checkpoint.display()
    ));
    shop::workload(&env, 21, 300).await;
    let expected = shop::expected(&env).await;

    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "x", "x", None, None, "t",
        ))
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .endpoint_url(&moto.url)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket("rowcast-export")
        .send()
        .await
        .unwrap();
    let mut args = vec!["--import", "--checkpoint"];
    args.extend(SHOP_VIEWS);
    args.extend(["--view", "blobs"]);
    let (code, text) = export_to_s3(&config, &moto.url, "run1", &args);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("imported 12000 items into {blobs}")),
        "{text}"
    );

    // The manifest is in S3, and the blobs file went up in several parts (multipart ETag "-N").
    let manifest = s3
        .get_object()
        .bucket("rowcast-export")
        .key("run1/manifest.json")
        .send()
        .await
        .unwrap();
    let manifest: Value =
        serde_json::from_slice(&manifest.body.collect().await.unwrap().into_bytes()).unwrap();
    let head = s3
        .head_object()
        .bucket("rowcast-export")
        .key(format!("run1/{blobs}/data/part-00000.json.gz"))
        .send()
        .await
        .unwrap();
    let etag = head.e_tag().unwrap().trim_matches('"').to_string();
    let parts: u32 = etag.rsplit_once('-').map_or(1, |(_, n)| n.parse().unwrap());
    assert!(parts >= 2, "ETag {etag}: one part");
    assert!(
        manifest["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["import_command"]
                .as_str()
                .unwrap()
                .contains("S3Bucket=rowcast-export,S3KeyPrefix=run1/")),
        "{manifest}"
    );

    // The imported tables hold exactly what the source makes.
    env.converge(&table, expected, Duration::from_secs(10))
        .await;
    let imported = env.scan(&blobs).await;
    assert_eq!(imported.len(), 12_000);
    let rows: Vec<(i64, Option<String>, String)> = env
        .query("SELECT id, kind, body FROM blobs WHERE id IN (1, 2, 3, 11999)")
        .await;
    for (id, kind, body) in rows {
        let item = imported
            .iter()
            .find(|i| i["pk"] == format!("BLOB#{id:08}"))
            .unwrap();
        assert_eq!(item["body"], body.as_str());
        assert_eq!(
            item["by_kind_pk"].as_str(),
            kind.map(|k| format!("KIND#{k}")).as_deref()
        );
    }
    // With the GSI the views declare.
    let described = env
        .ddb
        .describe_table()
        .table_name(&blobs)
        .send()
        .await
        .unwrap();
    let indexes = described.table().unwrap().global_secondary_indexes();
    assert_eq!(indexes.len(), 1);
    assert_eq!(indexes[0].index_name(), Some("by_kind"));
    // And the checkpoint is the export's position, the views filled.
    let saved: Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    assert_eq!(saved["position"], manifest["position"]);
    assert_eq!(saved["backfill"]["blobs"]["done"], true);
    // The manifest in S3 seeds the same checkpoint (`rowcast checkpoint --from-manifest`),
    // once the one the export saved is gone.
    std::fs::remove_file(&checkpoint).unwrap();
    let (code, text) = rowcast_s3(
        &["checkpoint", "--config", config.to_str().unwrap()],
        &[
            "--from-manifest",
            "s3://rowcast-export/run1",
            "--s3-endpoint-url",
            &moto.url,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{text}");
    let seeded: Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    assert_eq!(seeded["position"], saved["position"]);
    assert_eq!(seeded["seq"], saved["seq"]);
    assert_eq!(seeded["backfill"]["blobs"], saved["backfill"]["blobs"]);

    // The export gave its claim of the prefix up; a prefix another export claims is refused.
    let claim = |prefix: &str| {
        s3.head_object()
            .bucket("rowcast-export")
            .key(format!("{prefix}/export.claim"))
            .send()
    };
    assert!(claim("run1").await.is_err(), "the claim is left");
    s3.put_object()
        .bucket("rowcast-export")
        .key("run2/export.claim")
        .body(Vec::from(&b"{}"[..]).into())
        .send()
        .await
        .unwrap();
    let (code, text) = export_to_s3(&config, &moto.url, "run2", &["--view", "blobs"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("another export is writing here"), "{text}");

    // The endpoint in `AWS_ENDPOINT_URL_S3` rather than `--s3-endpoint-url`. The SDK addresses
    // an IP address by path whatever rowcast asks; that an endpoint at a host name gets
    // path-style addressing this way too (it did not before) is checked by `export::s3`'s unit
    // tests, without a network.
    let mut args = vec!["--to", "s3://rowcast-export/run3"];
    args.extend(SHOP_VIEWS);
    let (code, text) = rowcast_s3(
        &["export", "--config", config.to_str().unwrap()],
        &args,
        &[("AWS_ENDPOINT_URL_S3", &moto.url)],
    );
    assert_eq!(code, Some(0), "{text}");
    s3.head_object()
        .bucket("rowcast-export")
        .key("run3/manifest.json")
        .send()
        .await
        .unwrap();

    // An import into tables that exist (the first one made them) is refused before anything is
    // exported: ImportTable refuses them. Before, the whole export ran first (here 12 MB of
    // blobs) and only then the import failed.
    let (code, text) = export_to_s3(&config, &moto.url, "run4", &["--import", "--view", "blobs"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("and {blobs} exists")), "{text}");
    let written = s3
        .list_objects_v2()
        .bucket("rowcast-export")
        .prefix("run4/")
        .send()
        .await
        .unwrap();
    assert_eq!(written.key_count(), Some(0), "{written:?}");
}

/// An export made without `--checkpoint` (or whose checkpoint could not be saved) seeds the
/// checkpoint later from its manifest (`rowcast checkpoint --from-manifest`): the daemon then
/// resumes at the export's position, so a row deleted after the export loses its imported item.
/// Without the command (before 2026-12-06 nothing read a manifest), `rowcast run` started with
/// no checkpoint: it backfilled the view again and kept the deleted row's item. The seed is
/// refused for a view whose definition changed since the export, and where a checkpoint exists.
#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_seeds_the_checkpoint_of_an_export_made_without_one() {
    let env = Env::new("export_seed").await;
    env.sql(
        "CREATE TABLE notes (id INT PRIMARY KEY, title VARCHAR(20));
         INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three');",
    )
    .await;
    let notes = env.table("notes");
    let view = format!("name = \"notes\"\ntable = \"{notes}\"\nsource = \"{{DB}}.notes\"\n[key]\npk = \"N#{{id}}\"\n");
    env.write_view("notes.toml", &view);
    let config = env.write_config("");
    env.create_tables();
    let out_dir = env.dir.join("export");
    let (code, text) = env.export(&out_dir, &["--view", "notes"]);
    assert_eq!(code, Some(0), "{text}");
    env.sql("DELETE FROM notes WHERE id = 2; UPDATE notes SET title = 'changed' WHERE id = 1; INSERT INTO notes VALUES (4, 'four')")
        .await;
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    load(&env, &notes, exported_items(&out_dir, &manifest, &notes)).await;
    let expected = || async {
        let rows: Vec<(i64, String)> = env.query("SELECT id, title FROM notes").await;
        rows.into_iter()
            .map(|(id, title)| serde_json::json!({"pk": format!("N#{id}"), "id": id, "title": title}))
            .collect::<Vec<_>>()
    };
    let seed = || {
        code_and_output(&env.rowcast(&[
            "checkpoint",
            "--config",
            config.to_str().unwrap(),
            "--from-manifest",
            out_dir.to_str().unwrap(),
        ]))
    };

    // A view changed since the export: its items were made by the definition before.
    env.write_view(
        "notes.toml",
        &view.replace("[key]", "filter = \"id > 0\"\n[key]"),
    );
    let (code, text) = seed();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("its definition changed since the export"),
        "{text}"
    );
    env.write_view("notes.toml", &view);
    // A position whose GTID state is not the server's there (another server, a reset binlog).
    let forged = env.dir.join("forged");
    std::fs::create_dir_all(&forged).unwrap();
    let mut other = manifest.clone();
    other["position"]["gtid"] = Value::String("0-1-1".into());
    std::fs::write(forged.join("manifest.json"), other.to_string()).unwrap();
    let (code, text) = code_and_output(&env.rowcast(&[
        "checkpoint",
        "--config",
        config.to_str().unwrap(),
        "--from-manifest",
        forged.to_str().unwrap(),
    ]));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("is not in this server's binlog as the export read it"),
        "{text}"
    );

    let (code, text) = seed();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("checkpoint set at"), "{text}");
    let (code, text) = seed();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("already holds a checkpoint"), "{text}");
    let daemon = env.start().await;
    env.converge(&notes, expected().await, Duration::from_secs(60))
        .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(
        !metrics.contains("rowcast_backfill_rows_total{"),
        "the seeded view was marked filled, nothing is copied again"
    );
    assert!(daemon.terminate().success());
}

/// An export that fails part way leaves nothing an import could take for complete: no
/// manifest, no partial file.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_export_leaves_no_manifest_and_no_partial_file() {
    let env = Env::new("exportfail").await;
    env.notes_view().await;
    // 20,000 notes of ~150 bytes of JSON each: three files at --file-mb 1, two of them complete
    // when the export fails.
    env.sql("INSERT INTO notes SELECT seq, REPEAT('x', 40) FROM seq_1_to_20000; CREATE TABLE nokey (id INT, body TEXT); INSERT INTO nokey VALUES (1, 'x')")
        .await;
    let table = env.table("nokey");
    env.write_view(
        "zz_nokey.toml",
        &format!("name = \"nokey\"\ntable = \"{table}\"\nsource = \"{{DB}}.nokey\"\n[key]\npk = \"K#{{id}}\"\n"),
    );
    env.write_config("");
    let out = env.dir.join("out-fail");
    let args = ["--view", "notes", "--view", "nokey", "--file-mb", "1"];
    let (code, text) = env.export(&out, &args);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("has no primary key"), "{text}");
    let mut left = Vec::new();
    let mut dirs = vec![out.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.path().is_dir() {
                true => dirs.push(entry.path()),
                false => left.push(entry.path()),
            }
        }
    }
    assert!(left.is_empty(), "left behind: {left:?}");
    // The README promises that a retry into the same destination is not refused: the failed
    // run's directories (empty) do not make it "not empty". On the code before, it was.
    std::fs::remove_file(env.dir.join("views").join("zz_nokey.toml")).unwrap();
    let (code, text) = env.export(&out, &["--view", "notes", "--file-mb", "1"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(out.join("manifest.json").exists(), "{text}");
}

/// Items DynamoDB would refuse for a key too long (a sort key over 1,024 bytes, a partition key
/// over 2,048, an index key over those) are dead letters of the export, not lines of its files:
/// an import with one of them fails whole, and without `--import` the item would be missing with
/// nothing to say so.
#[tokio::test(flavor = "multi_thread")]
async fn an_export_leaves_items_with_keys_dynamodb_refuses_to_its_dead_letters() {
    let env = Env::new("export_keys").await;
    env.sql(
        "CREATE TABLE notes (id INT PRIMARY KEY, title VARCHAR(3000), tag VARCHAR(3000));
         INSERT INTO notes VALUES (1, 'short', 'a'), (2, REPEAT('t', 1100), 'b'),
                                  (3, 'fine', REPEAT('g', 2100))",
    )
    .await;
    let (by_title, by_tag) = (env.table("by_title"), env.table("by_tag"));
    env.write_view(
        "by_title.toml",
        &format!(
            "name = \"by_title\"\ntable = \"{by_title}\"\nsource = \"{{DB}}.notes\"\n[key]\npk = \"N#{{id}}\"\nsk = \"T#{{title}}\"\n[[index]]\nname = \"tags\"\npk = \"TAG#{{tag}}\"\n"
        ),
    );
    env.write_view(
        "by_tag.toml",
        &format!(
            "name = \"by_tag\"\ntable = \"{by_tag}\"\nsource = \"{{DB}}.notes\"\n[key]\npk = \"G#{{tag}}\"\nsk = \"N#{{id}}\"\n"
        ),
    );
    env.write_config("");
    env.create_tables();
    let out_dir = env.dir.join("export");
    let (code, text) = env.export(&out_dir, &["--view", "by_title", "--view", "by_tag"]);
    assert_eq!(code, Some(0), "{text}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    let ids = |table: &str| -> Vec<String> {
        let mut ids: Vec<String> = exported_items(&out_dir, &manifest, table)
            .iter()
            .map(|item| item["id"].as_n().unwrap().clone())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&by_title), ["1"], "{manifest}");
    assert_eq!(ids(&by_tag), ["1", "2"], "{manifest}");
    let letters = std::fs::read_to_string(out_dir.join("dead-letters.jsonl")).unwrap();
    let letters: Vec<Value> = letters
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let mut found: Vec<(String, String)> = letters
        .iter()
        .map(|l| {
            let pk = l["pk"].as_str().unwrap();
            (
                l["view"].as_str().unwrap().to_string(),
                pk[..pk.len().min(4)].to_string(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("by_tag".to_string(), "G#gg".to_string()),
            ("by_title".to_string(), "N#2".to_string()),
            ("by_title".to_string(), "N#3".to_string()),
        ],
        "{letters:?}"
    );
    for letter in &letters {
        let reason = letter["reason"].as_str().unwrap();
        assert!(reason.contains("bytes"), "{reason}");
    }
}

/// An item whose maps and lists nest deeper than DynamoDB's 32 levels (here a JSON column of
/// 30 levels in an embedded list of maps: 32) is a dead letter of the export, not a line an
/// import then fails on. A JSON column alone cannot be that deep (MariaDB takes 31 levels).
#[tokio::test(flavor = "multi_thread")]
async fn an_export_leaves_items_nested_deeper_than_dynamodb_takes_to_its_dead_letters() {
    let env = Env::new("export_nesting").await;
    env.sql(
        "CREATE TABLE boxes (id INT PRIMARY KEY);
         CREATE TABLE parts (id INT PRIMARY KEY, box_id INT NOT NULL, doc JSON, KEY (box_id));
         INSERT INTO boxes VALUES (1), (2);
         INSERT INTO parts VALUES
           (1, 1, CONCAT(REPEAT('[', 29), '1', REPEAT(']', 29))),
           (2, 2, CONCAT(REPEAT('[', 30), '1', REPEAT(']', 30)));",
    )
    .await;
    let boxes = env.table("boxes");
    env.write_view(
        "boxes.toml",
        &format!(
            "name = \"boxes\"\ntable = \"{boxes}\"\nsource = \"{{DB}}.boxes\"\n[key]\npk = \"BOX#{{id}}\"\n[[embed]]\nattribute = \"parts\"\nfrom = \"{{DB}}.parts\"\non = {{ box_id = \"id\" }}\norder_by = \"id\"\nattributes = {{ doc = \"doc\" }}\n"
        ),
    );
    env.write_config("");
    env.create_tables();
    let out_dir = env.dir.join("export");
    let (code, text) = env.export(&out_dir, &["--view", "boxes"]);
    assert_eq!(code, Some(0), "{text}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    let ids: Vec<String> = exported_items(&out_dir, &manifest, &boxes)
        .iter()
        .map(|item| item["id"].as_n().unwrap().clone())
        .collect();
    assert_eq!(ids, ["1"], "{manifest}");
    let letters = std::fs::read_to_string(out_dir.join("dead-letters.jsonl")).unwrap();
    let letters: Vec<Value> = letters
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["pk"], "BOX#2", "{letters:?}");
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(reason.contains("attribute parts nests"), "{reason}");
}

/// Two exports started into one directory at once (a retried Job whose first pod still runs)
/// both found it empty: one claims it and writes its export, the other is refused, saying
/// why. On the code before, both wrote the same file names over each other and both exited 0.
/// Both wait after their snapshot (a failpoint), so both have opened the directory before
/// either writes a file.
#[tokio::test(flavor = "multi_thread")]
async fn two_exports_into_one_directory_at_once_one_is_refused() {
    let env = Env::new("export_claim").await;
    env.sql(
        "CREATE TABLE notes (id INT PRIMARY KEY, title VARCHAR(20));
         INSERT INTO notes VALUES (1, 'one'), (2, 'two');",
    )
    .await;
    let notes = env.table("notes");
    env.write_view(
        "notes.toml",
        &format!("name = \"notes\"\ntable = \"{notes}\"\nsource = \"{{DB}}.notes\"\n[key]\npk = \"N#{{id}}\"\n"),
    );
    let config = env.write_config("");
    let out_dir = env.dir.join("export");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_rowcast"))
            .args(["export", "--config", config.to_str().unwrap()])
            .args(["--to", out_dir.to_str().unwrap(), "--view", "notes"])
            .env("ROWCAST_FAILPOINTS", "export.after_snapshot=sleep3000")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outcomes: Vec<(Option<i32>, String)> = [first, second]
        .into_iter()
        .map(|child| code_and_output(&child.wait_with_output().unwrap()))
        .collect();
    let refused: Vec<&(Option<i32>, String)> = outcomes
        .iter()
        .filter(|(code, _)| *code != Some(0))
        .collect();
    assert_eq!(refused.len(), 1, "{outcomes:?}");
    assert!(
        refused[0].1.contains("another export is writing here"),
        "{outcomes:?}"
    );
    // The one that went on wrote a whole export, and gave its claim up.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(exported_items(&out_dir, &manifest, &notes).len(), 2);
    assert!(!out_dir.join("export.claim").exists());
}

/// `rowcast export` of `config` to `s3://rowcast-export/PREFIX` on the moto server at `url`,
/// with `args`: the exit code and output.
fn export_to_s3(config: &Path, url: &str, prefix: &str, args: &[&str]) -> (Option<i32>, String) {
    let to = format!("s3://rowcast-export/{prefix}");
    let mut all = vec!["--to", &to, "--s3-endpoint-url", url];
    all.extend(args);
    rowcast_s3(&["export", "--config", config.to_str().unwrap()], &all, &[])
}

/// `rowcast` with `command` and `args`, moto's credentials and `vars` in its environment: the
/// exit code and output.
fn rowcast_s3(command: &[&str], args: &[&str], vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rowcast"))
        .args(command)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    code_and_output(&out)
}
