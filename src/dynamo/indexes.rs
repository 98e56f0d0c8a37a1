//! The global secondary indexes of the views' tables (`[[index]]`): what a table needs, and how
//! `tables create` creates them (with a new table, or one at a time on an existing table,
//! waiting until each is active). `index_check.rs` compares them with the table.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex, GlobalSecondaryIndexUpdate,
    IndexStatus, KeySchemaElement, Projection, ProjectionType, TableDescription, TableStatus,
};
use aws_sdk_dynamodb::Client;

use super::tables::attr_def;
use super::{classify_sdk_error, SdkErrorInfo};
use crate::error::ErrorClass;
use crate::view::spec::IndexProjection;

/// One index a table needs, and the views that declare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexNeed {
    pub name: String,
    pub pk: String,
    pub sk: Option<String>,
    pub projection: IndexProjection,
    /// `(view file, field)` of each declaration, for problems.
    pub users: Vec<(PathBuf, String)>,
}

impl IndexNeed {
    pub(super) fn key_schema(&self) -> Vec<KeySchemaElement> {
        super::tables::key_schema(&self.pk, self.sk.as_deref())
    }

    fn projection(&self) -> Projection {
        let builder = Projection::builder();
        match &self.projection {
            IndexProjection::All => builder.projection_type(ProjectionType::All),
            IndexProjection::KeysOnly => builder.projection_type(ProjectionType::KeysOnly),
            IndexProjection::Include(names) => builder
                .projection_type(ProjectionType::Include)
                .set_non_key_attributes(Some(names.clone())),
        }
        .build()
    }

    pub fn attributes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.pk.as_str()).chain(self.sk.as_deref())
    }

    /// The GSI of a CreateTable request.
    pub fn definition(&self) -> GlobalSecondaryIndex {
        GlobalSecondaryIndex::builder()
            .index_name(&self.name)
            .set_key_schema(Some(self.key_schema()))
            .projection(self.projection())
            .build()
            .expect("name and key schema are set")
    }
}

pub async fn describe(client: &Client, table: &str) -> Result<TableDescription, SdkErrorInfo> {
    let out = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| classify_sdk_error(&e))?;
    Ok(out
        .table
        .unwrap_or_else(|| TableDescription::builder().build()))
}

/// Adds the indexes of `needs` that `table` lacks, one at a time (DynamoDB creates one index
/// per UpdateTable), each waited for until it is active. Returns the names of those created.
/// `progress` is told when one is waited for long.
pub async fn add_missing(
    client: &Client,
    table: &str,
    needs: &[IndexNeed],
    progress: &dyn Fn(&str),
) -> Result<Vec<String>, SdkErrorInfo> {
    let mut created = Vec::new();
    for need in needs {
        // DynamoDB takes one table update at a time: the previous one (streams, an index) first.
        wait_table_active(client, table).await?;
        let description = describe(client, table).await?;
        let exists = description
            .global_secondary_indexes()
            .iter()
            .any(|g| g.index_name() == Some(need.name.as_str()));
        if !exists {
            let action = CreateGlobalSecondaryIndexAction::builder()
                .index_name(&need.name)
                .set_key_schema(Some(need.key_schema()))
                .projection(need.projection())
                .build()
                .expect("name, key schema and projection are set");
            client
                .update_table()
                .table_name(table)
                .set_attribute_definitions(Some(need.attributes().map(attr_def).collect()))
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder().create(action).build(),
                )
                .send()
                .await
                .map_err(|e| classify_sdk_error(&e))?;
            created.push(need.name.clone());
        }
        wait_active(client, table, &need.name, progress).await?;
    }
    Ok(created)
}

/// Polls until the index is active (a backfilling index on a large table takes a while; there
/// is no limit: the operator sees the progress lines and may interrupt).
async fn wait_active(
    client: &Client,
    table: &str,
    index: &str,
    progress: &dyn Fn(&str),
) -> Result<(), SdkErrorInfo> {
    let started = Instant::now();
    let mut told = Instant::now();
    loop {
        let description = describe(client, table).await?;
        let status = description
            .global_secondary_indexes()
            .iter()
            .find(|g| g.index_name() == Some(index))
            .and_then(|g| g.index_status().cloned());
        match status {
            Some(IndexStatus::Active) => return Ok(()),
            None if started.elapsed() >= Duration::from_secs(60) => {
                return Err(SdkErrorInfo {
                    class: ErrorClass::Definite,
                    code: None,
                    message: format!("index {index} of {table} was created but does not appear"),
                    throttled: false,
                    unsure: false,
                })
            }
            _ => {}
        }
        if told.elapsed() >= Duration::from_secs(30) {
            told = Instant::now();
            let status = status.as_ref().map_or("?", |s| s.as_str());
            progress(&format!(
                "index {index} of {table} is {status} after {} s",
                started.elapsed().as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Polls until the table is ACTIVE again after an update.
pub async fn wait_table_active(client: &Client, table: &str) -> Result<(), SdkErrorInfo> {
    loop {
        let status = describe(client, table).await?.table_status().cloned();
        if matches!(status, Some(TableStatus::Active) | None) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
