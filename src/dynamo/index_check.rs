//! `check --connect` and `tables create` compare the indexes of a table with what its views
//! declare: each exists, with the key schema and projection the views need, and is active.

use std::path::PathBuf;

use aws_sdk_dynamodb::types::{
    GlobalSecondaryIndexDescription, IndexStatus, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableDescription,
};
use aws_sdk_dynamodb::Client;

use super::indexes::{describe, IndexNeed};
use crate::dynamo::SdkErrorInfo;

/// What [`check_indexes`] found about one index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexProblem {
    pub file: PathBuf,
    pub field: String,
    pub message: String,
    /// DynamoDB would refuse every item of the view (an index key attribute typed other than
    /// S): `run` stops on it; the other problems only leave the index unusable meanwhile.
    pub refuses_items: bool,
}

fn describe_key(keys: &[KeySchemaElement]) -> String {
    let find = |kt: KeyType| {
        keys.iter()
            .find(|k| *k.key_type() == kt)
            .map(|k| k.attribute_name().to_string())
    };
    match (find(KeyType::Hash), find(KeyType::Range)) {
        (Some(pk), Some(sk)) => format!("{pk}/{sk}"),
        (Some(pk), None) => pk,
        _ => "none".into(),
    }
}

fn describe_projection(projection: Option<&Projection>) -> String {
    let Some(projection) = projection else {
        return "none".into();
    };
    match projection.projection_type() {
        Some(ProjectionType::KeysOnly) => "keys_only".into(),
        Some(ProjectionType::Include) => {
            let mut names = projection.non_key_attributes().to_vec();
            names.sort();
            format!("[{}]", names.join(", "))
        }
        _ => "all".into(),
    }
}

/// The differences between what `need` asks of an index and what `found` is; empty when it fits.
fn compare(need: &IndexNeed, found: &GlobalSecondaryIndexDescription) -> Vec<String> {
    let mut out = Vec::new();
    let wanted = describe_key(&need.key_schema());
    let has = describe_key(found.key_schema());
    if wanted != has {
        out.push(format!(
            "index {} has the key {has}, the views need {wanted} (an index's key cannot change: delete the index, then run `rowcast tables create`)",
            need.name
        ));
    }
    let wanted = need.projection.to_string();
    let has = describe_projection(found.projection());
    if wanted != has {
        out.push(format!(
            "index {} projects {has}, the views ask for {wanted}",
            need.name
        ));
    }
    match found.index_status() {
        Some(IndexStatus::Active) | None => {}
        Some(status) => out.push(format!(
            "index {} is {} (not yet active)",
            need.name,
            status.as_str()
        )),
    }
    out
}

/// Every declaration of every index of `table` that does not fit the table as described.
pub fn check_indexes(table: &TableDescription, needs: &[IndexNeed]) -> Vec<IndexProblem> {
    let mut problems = Vec::new();
    for need in needs {
        let found = table
            .global_secondary_indexes()
            .iter()
            .find(|g| g.index_name() == Some(need.name.as_str()));
        let mut messages: Vec<(String, bool)> = match found {
            None => vec![format!(
                "index {} does not exist in table {} (run `rowcast tables create`)",
                need.name,
                table.table_name().unwrap_or("?")
            )],
            Some(found) => compare(need, found),
        }
        .into_iter()
        .map(|m| (m, false))
        .collect();
        for def in table.attribute_definitions() {
            let name = def.attribute_name();
            if need.attributes().any(|a| a == name)
                && *def.attribute_type() != ScalarAttributeType::S
            {
                let message = format!("index key attribute {name} is not a string (S): DynamoDB refuses every item that carries it");
                messages.push((message, true));
            }
        }
        for (file, field) in &need.users {
            problems.extend(messages.iter().map(|(message, refuses)| IndexProblem {
                file: file.clone(),
                field: field.clone(),
                message: message.clone(),
                refuses_items: *refuses,
            }));
        }
    }
    problems
}

/// [`check_indexes`] against the table as it is now; nothing when the table does not exist
/// (the table check says so) or needs no index.
pub async fn check_table_indexes(
    client: &Client,
    table: &str,
    needs: &[IndexNeed],
) -> Result<Vec<IndexProblem>, SdkErrorInfo> {
    if needs.is_empty() {
        return Ok(Vec::new());
    }
    match describe(client, table).await {
        Ok(description) => Ok(check_indexes(&description, needs)),
        Err(info) if info.code.as_deref() == Some("ResourceNotFoundException") => Ok(Vec::new()),
        Err(info) => Err(info),
    }
}
