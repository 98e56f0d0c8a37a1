//! `manifest.json` of an export: where it was read (binlog position, transaction counter, item
//! version), each view (fingerprint, rows read, items, dead letters), each table (its files and
//! what an S3 import needs to create it: key schema, GSIs, and the `aws dynamodb import-table`
//! command).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::files::{DataFile, TableFiles};
use super::{Destination, Export};
use crate::dynamo::indexes::IndexNeed;
use crate::dynamo::tables::{view_tables, TableNeed};
use crate::pipeline::Position;
use crate::view::spec::IndexProjection;
use crate::view::View;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const FORMAT: &str = "rowcast-export/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub created_ms: u64,
    /// The binlog position of the snapshot: every commit before it is in the items, none after.
    pub position: Position,
    /// The transaction counter the versions derive from (the checkpoint's, with `--checkpoint`).
    pub seq: u64,
    /// The `_version` every item carries, as text (a 128-bit number).
    pub version: String,
    pub views: Vec<ViewEntry>,
    pub tables: Vec<TableEntry>,
    /// `dead-letters.jsonl` when some items cannot be imported (see each view's count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewEntry {
    pub name: String,
    pub table: String,
    pub fingerprint: String,
    pub rows: u64,
    pub items: u64,
    pub dead_letters: u64,
}

impl ViewEntry {
    pub fn new(view: &View) -> Self {
        ViewEntry {
            name: view.name.clone(),
            table: view.table.to_string(),
            fingerprint: view.fingerprint(),
            rows: 0,
            items: 0,
            dead_letters: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    pub table: String,
    /// The prefix of its files under the export's root (an import's `S3KeyPrefix` below the
    /// destination's).
    pub prefix: String,
    pub items: u64,
    pub files: Vec<DataFile>,
    /// ImportTable's `TableCreationParameters` (the AWS CLI's JSON shape).
    pub table_creation_parameters: Value,
    /// The command that imports the files into a new table, once they are in S3.
    pub import_command: String,
}

impl Manifest {
    pub(super) fn new(
        export: &Export,
        position: Position,
        views: Vec<ViewEntry>,
        files: &BTreeMap<String, TableFiles>,
    ) -> Manifest {
        let needs = view_tables(&export.views);
        let tables = needs
            .iter()
            .map(|(table, need)| {
                let files = files
                    .get(table)
                    .map(|f| f.files.clone())
                    .unwrap_or_default();
                let parameters = creation_parameters(table, need);
                let prefix = TableFiles::prefix(table);
                TableEntry {
                    table: table.clone(),
                    import_command: import_command(&export.dest, &prefix, &parameters),
                    prefix,
                    items: files.iter().map(|f| f.items).sum(),
                    files,
                    table_creation_parameters: parameters,
                }
            })
            .collect();
        let dead = views.iter().any(|v| v.dead_letters > 0);
        Manifest {
            format: FORMAT.into(),
            created_ms: crate::util::now_millis(),
            position,
            seq: export.seq,
            version: super::export_version(export.seq).to_string(),
            views,
            tables,
            dead_letters: dead.then(|| super::DEAD_LETTERS_FILE.to_string()),
        }
    }
}

fn key_schema(pk: &str, sk: Option<&str>) -> Value {
    let mut keys = vec![json!({"AttributeName": pk, "KeyType": "HASH"})];
    keys.extend(sk.map(|sk| json!({"AttributeName": sk, "KeyType": "RANGE"})));
    Value::Array(keys)
}

fn index_definition(index: &IndexNeed) -> Value {
    let projection = match &index.projection {
        IndexProjection::All => json!({"ProjectionType": "ALL"}),
        IndexProjection::KeysOnly => json!({"ProjectionType": "KEYS_ONLY"}),
        IndexProjection::Include(names) => {
            json!({"ProjectionType": "INCLUDE", "NonKeyAttributes": names})
        }
    };
    json!({
        "IndexName": index.name,
        "KeySchema": key_schema(&index.pk, index.sk.as_deref()),
        "Projection": projection,
    })
}

/// The table as `tables create` would make it (streams aside: an import cannot enable them;
/// `tables create` does afterwards for write-back views).
pub fn creation_parameters(table: &str, need: &TableNeed) -> Value {
    let definitions: Vec<Value> = need
        .key_attributes()
        .iter()
        .map(|n| json!({"AttributeName": n, "AttributeType": "S"}))
        .collect();
    let mut parameters = json!({
        "TableName": table,
        "AttributeDefinitions": definitions,
        "KeySchema": key_schema(&need.pk, need.sk.as_deref()),
        "BillingMode": "PAY_PER_REQUEST",
    });
    if !need.indexes.is_empty() {
        let indexes: Vec<Value> = need.indexes.iter().map(index_definition).collect();
        parameters["GlobalSecondaryIndexes"] = Value::Array(indexes);
    }
    parameters
}

/// `aws dynamodb import-table …` for one table's files; for a directory export the bucket and
/// prefix it will be copied to are placeholders.
fn import_command(dest: &Destination, prefix: &str, parameters: &Value) -> String {
    let (bucket, key_prefix) = match dest.s3_location() {
        Some((bucket, root)) => (bucket.to_string(), format!("{root}{prefix}")),
        None => ("BUCKET".to_string(), format!("PREFIX/{prefix}")),
    };
    format!(
        "aws dynamodb import-table --s3-bucket-source S3Bucket={bucket},S3KeyPrefix={key_prefix} \
         --input-format DYNAMODB_JSON --input-compression-type GZIP \
         --table-creation-parameters '{parameters}'"
    )
}
