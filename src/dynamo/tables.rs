//! `rowcast tables create` and the table checks of the preflight.
//!
//! View tables get string key attributes named by the views, on-demand billing, and streams
//! (NEW_AND_OLD_IMAGES) when a view on them writes back. The control table (checkpoints, dead
//! letters) has string keys `pk` and `sk`. Existing tables are left as they are.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use aws_sdk_dynamodb::Client;

use super::indexes::IndexNeed;
use super::{classify_sdk_error, SdkErrorInfo};
use std::sync::Arc;

use crate::config::{CheckpointStoreConfig, Config, DeadLetterConfig};
use crate::view::View;

/// The key schema and stream setting a table needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNeed {
    pub pk: String,
    pub sk: Option<String>,
    pub streams: bool,
    /// Views (or "control") that need it, for messages.
    pub users: Vec<String>,
    /// Its global secondary indexes (`[[index]]` of its views), by name.
    pub indexes: Vec<IndexNeed>,
}

/// The partition key attribute of the control table (checkpoints, write-back positions, dead
/// letters; see `control`).
pub const CONTROL_PK: &str = "pk";
/// The sort key attribute of the control table.
pub const CONTROL_SK: &str = "sk";

impl TableNeed {
    /// The table's key schema: `pk` (HASH), `sk` (RANGE) if any.
    pub fn key_schema(&self) -> Vec<KeySchemaElement> {
        key_schema(&self.pk, self.sk.as_deref())
    }

    /// Every key attribute of the table and its GSIs, each once, as strings (S).
    pub fn attribute_definitions(&self) -> Vec<AttributeDefinition> {
        self.key_attributes().into_iter().map(attr_def).collect()
    }

    /// The GSIs of a CreateTable or ImportTable request (`None` when there are none).
    pub fn index_definitions(&self) -> Option<Vec<aws_sdk_dynamodb::types::GlobalSecondaryIndex>> {
        let indexes: Vec<_> = self.indexes.iter().map(IndexNeed::definition).collect();
        (!indexes.is_empty()).then_some(indexes)
    }

    /// Every key attribute of the table and its indexes, each once: the table's key first.
    pub fn key_attributes(&self) -> Vec<&str> {
        let mut names: Vec<&str> = std::iter::once(self.pk.as_str())
            .chain(self.sk.as_deref())
            .collect();
        for name in self.indexes.iter().flat_map(IndexNeed::attributes) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

pub fn needed_tables(config: &Config) -> BTreeMap<String, TableNeed> {
    let mut tables = view_tables(&config.views);
    let control = match (&config.checkpoint, &config.dead_letter) {
        (CheckpointStoreConfig::Table(t), _) | (_, DeadLetterConfig::Table(t)) => Some(t.clone()),
        _ => None,
    };
    if let Some(table) = control {
        tables.entry(table).or_insert_with(|| TableNeed {
            pk: CONTROL_PK.into(),
            sk: Some(CONTROL_SK.into()),
            streams: false,
            users: vec!["checkpoints".into()],
            indexes: Vec::new(),
        });
    }
    tables
}

/// The tables `views` write to, with their keys, streams and indexes.
pub fn view_tables(views: &[Arc<View>]) -> BTreeMap<String, TableNeed> {
    let mut tables: BTreeMap<String, TableNeed> = BTreeMap::new();
    for view in views {
        let need = tables
            .entry(view.table.to_string())
            .or_insert_with(|| TableNeed {
                pk: view.key.pk_attribute.to_string(),
                sk: view.key.sk_attribute.as_deref().map(str::to_string),
                streams: false,
                users: Vec::new(),
                indexes: Vec::new(),
            });
        need.streams |= view.writeback_enabled;
        need.users.push(view.name.clone());
        for (i, index) in view.indexes.iter().enumerate() {
            let user = (view.file.clone(), format!("index[{i}]"));
            match need.indexes.iter_mut().find(|n| n.name == index.name) {
                // Views sharing an index agree on its keys and projection (`config::index`).
                Some(known) => known.users.push(user),
                None => need.indexes.push(IndexNeed {
                    name: index.name.clone(),
                    pk: index.pk_attribute.to_string(),
                    sk: index.sk_attribute.as_deref().map(str::to_owned),
                    projection: index.projection.clone(),
                    users: vec![user],
                }),
            }
        }
    }
    tables
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    Exists,
}

pub async fn create_table(
    client: &Client,
    name: &str,
    need: &TableNeed,
) -> Result<CreateOutcome, SdkErrorInfo> {
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(need.attribute_definitions()))
        .set_key_schema(Some(need.key_schema()))
        .set_global_secondary_indexes(need.index_definitions());
    if need.streams {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("stream_enabled is set"),
        );
    }
    match request.send().await {
        Ok(_) => Ok(CreateOutcome::Created),
        Err(error) => {
            let info = classify_sdk_error(&error);
            if info.code.as_deref() == Some("ResourceInUseException") {
                Ok(CreateOutcome::Exists)
            } else {
                Err(info)
            }
        }
    }
}

pub(super) fn attr_def(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type are set")
}

/// `pk` as HASH and `sk`, if any, as RANGE (a table's or a GSI's key).
pub(super) fn key_schema(pk: &str, sk: Option<&str>) -> Vec<KeySchemaElement> {
    let mut keys = vec![key_elem(pk, KeyType::Hash)];
    keys.extend(sk.map(|sk| key_elem(sk, KeyType::Range)));
    keys
}

pub(super) fn key_elem(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .expect("name and type are set")
}

/// The problem [`check_table`] reports for a write-back table without the right stream.
pub const STREAMS_NEEDED: &str = "streams with NEW_AND_OLD_IMAGES are needed for write-back";

/// Turns streams (NEW_AND_OLD_IMAGES) on for an existing table of write-back views that has
/// none, e.g. one made by an S3 import, which cannot enable them. `Ok(true)` when it did; a
/// table with streams of another view type is left for [`check_table`] to report (they must
/// be turned off before another type can be set).
pub async fn enable_streams(
    client: &Client,
    name: &str,
    need: &TableNeed,
) -> Result<bool, SdkErrorInfo> {
    if !need.streams {
        return Ok(false);
    }
    let enabled = super::indexes::describe(client, name)
        .await?
        .stream_specification()
        .is_some_and(|s| s.stream_enabled());
    if enabled {
        return Ok(false);
    }
    client
        .update_table()
        .table_name(name)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("stream_enabled is set"),
        )
        .send()
        .await
        .map_err(|e| classify_sdk_error(&e))?;
    super::indexes::wait_table_active(client, name).await?;
    Ok(true)
}

/// Checks an existing table against what the views need: `Ok` lists the problems found (empty
/// when the table is right); `Err` is a failure to ask.
/// The table's latest stream (DescribeTable still names one disabled); `None` when it never
/// had one.
pub async fn latest_stream_arn(
    client: &Client,
    table: &str,
) -> Result<Option<String>, SdkErrorInfo> {
    let described = super::indexes::describe(client, table).await?;
    Ok(described.latest_stream_arn.filter(|arn| !arn.is_empty()))
}

pub async fn check_table(
    client: &Client,
    name: &str,
    need: &TableNeed,
) -> Result<Vec<String>, SdkErrorInfo> {
    let out = match client.describe_table().table_name(name).send().await {
        Ok(out) => out,
        Err(error) => {
            let info = classify_sdk_error(&error);
            if info.code.as_deref() == Some("ResourceNotFoundException") {
                return Ok(vec![
                    "table does not exist (run `rowcast tables create`)".to_string()
                ]);
            }
            return Err(info);
        }
    };
    let Some(table) = out.table else {
        return Ok(vec!["no table description".into()]);
    };
    let keys = table.key_schema();
    let find = |kt: KeyType| {
        keys.iter()
            .find(|k| *k.key_type() == kt)
            .map(|k| k.attribute_name().to_string())
    };
    let mut problems = Vec::new();
    if find(KeyType::Hash).as_deref() != Some(need.pk.as_str()) {
        problems.push(format!(
            "partition key is {:?}, the views need {:?}",
            find(KeyType::Hash),
            need.pk
        ));
    }
    if find(KeyType::Range) != need.sk {
        problems.push(format!(
            "sort key is {:?}, the views need {:?}",
            find(KeyType::Range),
            need.sk
        ));
    }
    for def in table.attribute_definitions() {
        let is_key =
            def.attribute_name() == need.pk || Some(def.attribute_name()) == need.sk.as_deref();
        if is_key && *def.attribute_type() != ScalarAttributeType::S {
            problems.push(format!(
                "key attribute {} is not a string (S)",
                def.attribute_name()
            ));
        }
    }
    if need.streams {
        let view_type = table
            .stream_specification()
            .and_then(|s| s.stream_view_type().cloned());
        if view_type != Some(StreamViewType::NewAndOldImages) {
            problems.push(STREAMS_NEEDED.into());
        }
    }
    Ok(problems)
}

/// The items of partition `pk` (attribute `pk_attribute`) of `table`, in sort-key order, read
/// consistently one Query page at a time (`page_size` items, or DynamoDB's 1 MB, per page).
pub async fn query_partition(
    client: &Client,
    table: &str,
    pk_attribute: &str,
    pk: &str,
    page_size: Option<i32>,
) -> Result<Vec<Vec<std::collections::HashMap<String, AttributeValue>>>, SdkErrorInfo> {
    query_partition_of(client, (table, None), pk_attribute, pk, page_size).await
}

/// [`query_partition`] of a global secondary index `(table, Some(index))` too; an index is read
/// eventually consistently (DynamoDB offers nothing else on a GSI).
pub async fn query_partition_of(
    client: &Client,
    (table, index): (&str, Option<&str>),
    pk_attribute: &str,
    pk: &str,
    page_size: Option<i32>,
) -> Result<Vec<Vec<std::collections::HashMap<String, AttributeValue>>>, SdkErrorInfo> {
    let mut pages = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .query()
            .table_name(table)
            .set_index_name(index.map(str::to_string))
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", pk_attribute)
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
            .consistent_read(index.is_none())
            .set_limit(page_size)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e))?;
        pages.push(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(pages),
        }
    }
}

/// [`query_partition`] as plain JSON values, page by page (`rowcast query`).
pub async fn query_pages(
    client: &Client,
    place: (&str, Option<&str>),
    pk_attribute: &str,
    pk: &str,
    page_size: i32,
) -> Result<Vec<Vec<serde_json::Value>>, SdkErrorInfo> {
    let pages = query_partition_of(client, place, pk_attribute, pk, Some(page_size)).await?;
    Ok(pages
        .iter()
        .map(|page| page.iter().map(plain).collect())
        .collect())
}

/// An item as plain JSON values.
fn plain(item: &std::collections::HashMap<String, AttributeValue>) -> serde_json::Value {
    serde_json::Value::Object(
        item.iter()
            .filter_map(|(k, v)| Some((k.clone(), super::from_attribute_value(v)?.to_json())))
            .collect(),
    )
}

pub async fn scan_plain(
    client: &Client,
    table: &str,
) -> Result<Vec<serde_json::Value>, SdkErrorInfo> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e))?;
        items.extend(out.items().iter().map(plain));
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    items.sort_by_key(|item| item.to_string());
    Ok(items)
}
