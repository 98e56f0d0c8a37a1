//! DynamoDB's ImportTable from S3 (`rowcast export --import`): a new table made from the
//! export's files, with the key schema and GSIs `tables create` would give it, started with a
//! client token derived from the export (asking again for the same export names the same
//! import) and waited for until it ends; any failed item fails it.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    BillingMode, ImportStatus, InputCompressionType, InputFormat, S3BucketSource,
    TableCreationParameters,
};
use aws_sdk_dynamodb::Client;

use super::classify_sdk_error;
use super::tables::TableNeed;

/// Where an import reads: every object under `key_prefix` in `bucket`.
pub struct ImportSource<'a> {
    pub bucket: &'a str,
    pub key_prefix: String,
    /// Idempotency token (1–64 characters).
    pub token: String,
}

/// Imports into the new table `table`; returns the items imported.
pub async fn import_table(
    client: &Client,
    table: &str,
    need: &TableNeed,
    source: ImportSource<'_>,
    progress: &dyn Fn(&str),
) -> Result<i64, String> {
    let parameters = TableCreationParameters::builder()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(need.key_schema()))
        .set_attribute_definitions(Some(need.attribute_definitions()))
        .set_global_secondary_indexes(need.index_definitions())
        .build()
        .map_err(|e| format!("table creation parameters: {e}"))?;
    let bucket_source = S3BucketSource::builder()
        .s3_bucket(source.bucket)
        .s3_key_prefix(&source.key_prefix)
        .build()
        .map_err(|e| format!("S3 source: {e}"))?;
    let started = client
        .import_table()
        .client_token(&source.token)
        .s3_bucket_source(bucket_source)
        .input_format(InputFormat::DynamodbJson)
        .input_compression_type(InputCompressionType::Gzip)
        .table_creation_parameters(parameters)
        .send()
        .await
        .map_err(|e| format!("ImportTable: {}", classify_sdk_error(&e)))?;
    let arn = started
        .import_table_description()
        .and_then(|d| d.import_arn())
        .ok_or("ImportTable answered without an import ARN")?
        .to_string();
    progress(&format!("import of {table} started: {arn}"));
    wait_import(client, table, &arn, progress).await
}

/// Polls the import until it ends: the items imported, or why it failed.
async fn wait_import(
    client: &Client,
    table: &str,
    arn: &str,
    progress: &dyn Fn(&str),
) -> Result<i64, String> {
    let since = Instant::now();
    let mut told = Instant::now();
    loop {
        let out = client
            .describe_import()
            .import_arn(arn)
            .send()
            .await
            .map_err(|e| format!("DescribeImport {arn}: {}", classify_sdk_error(&e)))?;
        let Some(description) = out.import_table_description() else {
            return Err(format!("DescribeImport {arn}: no description"));
        };
        match description.import_status() {
            Some(ImportStatus::Completed) if description.error_count() == 0 => {
                return Ok(description.imported_item_count())
            }
            Some(ImportStatus::Completed) => {
                return Err(format!(
                    "import {arn} into {table} completed with {} item(s) in error (see its CloudWatch log group {})",
                    description.error_count(),
                    description.cloud_watch_log_group_arn().unwrap_or("?")
                ))
            }
            Some(ImportStatus::InProgress) | None => {}
            Some(other) => {
                return Err(format!(
                    "import {arn} into {table} ended {}: {} {}",
                    other.as_str(),
                    description.failure_code().unwrap_or(""),
                    description.failure_message().unwrap_or("")
                ))
            }
        }
        if told.elapsed() >= Duration::from_secs(30) {
            told = Instant::now();
            progress(&format!(
                "import of {table}: {} items processed after {} s",
                description.processed_item_count(),
                since.elapsed().as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
