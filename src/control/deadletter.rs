//! The dead-letter store: items DynamoDB can never accept (over 400 KB, an empty key, a value out
//! of DynamoDB's range) are recorded with the view, key, reason and source position, and the
//! rest keeps flowing. Records go to the control table (`pk = "deadletter#<view>"`,
//! `sk = "<seq>#<n>"`) or to a JSON-lines file. Each record also raises
//! `rowcast_dead_letters_total` and is logged once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use tracing::warn;

use super::{CONTROL_PK, CONTROL_SK};
use crate::dynamo::{classify_sdk_error, SdkErrorInfo};
use crate::metrics::metrics;
use crate::pipeline::DeadLetter;

pub enum DeadLetterStore {
    Table {
        client: Client,
        table: String,
        counter: AtomicU64,
    },
    File {
        path: PathBuf,
        lock: Mutex<()>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("dead-letter file {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dead-letter table {table}: {info}")]
    Dynamo { table: String, info: SdkErrorInfo },
}

impl crate::error::Classify for DeadLetterError {
    fn class(&self) -> crate::error::ErrorClass {
        match self {
            DeadLetterError::File { .. } => crate::error::ErrorClass::Transient,
            DeadLetterError::Dynamo { info, .. } => info.class,
        }
    }
}

impl DeadLetterStore {
    pub fn table(client: Client, table: String) -> Self {
        DeadLetterStore::Table {
            client,
            table,
            counter: AtomicU64::new(0),
        }
    }

    /// The store the daemon config names.
    pub fn from_config(config: &crate::config::DeadLetterConfig, client: &Client) -> Self {
        match config {
            crate::config::DeadLetterConfig::Table(table) => {
                Self::table(client.clone(), table.clone())
            }
            crate::config::DeadLetterConfig::File(path) => Self::file(path.clone()),
        }
    }

    pub fn file(path: PathBuf) -> Self {
        DeadLetterStore::File {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Records one dead letter (the caller retries transient failures).
    pub async fn record(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let json = serde_json::to_string(letter).expect("a dead letter always serialises");
        match self {
            DeadLetterStore::File { path, lock } => {
                let _guard = lock.lock().await;
                let io = |source| DeadLetterError::File {
                    path: path.clone(),
                    source,
                };
                if let Some(dir) = path.parent() {
                    tokio::fs::create_dir_all(dir).await.map_err(io)?;
                }
                let mut file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(io)?;
                file.write_all(format!("{json}\n").as_bytes())
                    .await
                    .map_err(io)?;
                file.sync_data().await.map_err(io)?;
            }
            DeadLetterStore::Table {
                client,
                table,
                counter,
            } => {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                client
                    .put_item()
                    .table_name(table)
                    .item(
                        CONTROL_PK,
                        AttributeValue::S(format!("deadletter#{}", letter.view)),
                    )
                    .item(
                        CONTROL_SK,
                        AttributeValue::S(format!("{:020}#{}#{n}", letter.seq, letter.at_ms)),
                    )
                    .item("record", AttributeValue::S(json))
                    .send()
                    .await
                    .map_err(|e| DeadLetterError::Dynamo {
                        table: table.clone(),
                        info: classify_sdk_error(&e),
                    })?;
            }
        }
        metrics()
            .dead_letters
            .with_label_values(&[&letter.view, letter.reason_kind])
            .inc();
        warn!(view = %letter.view, key = ?letter.key, reason = %letter.reason, position = %letter.position, "item sent to the dead-letter store");
        Ok(())
    }
}
