//! A record kept beside the checkpoint: in the control table, an item next to the checkpoint's
//! (its `pk`, a `sk` of its own, the text in one string attribute); with a file checkpoint, a
//! file beside it (`<path>.<extension>`, replaced whole).

use std::path::{Path, PathBuf};

use aws_sdk_dynamodb::types::AttributeValue;

use super::{write_durably, CheckpointError, CheckpointStore, CONTROL_PK, CONTROL_SK};
use crate::dynamo::classify_sdk_error;

pub struct Beside {
    pub sort_key: &'static str,
    pub attribute: &'static str,
    pub extension: &'static str,
    /// What the record holds, for the error when it does not parse.
    pub what: &'static str,
}

impl Beside {
    pub fn file(&self, checkpoint: &Path) -> PathBuf {
        checkpoint.with_extension(self.extension)
    }

    fn dynamo_error(table: &str) -> impl Fn(crate::dynamo::SdkErrorInfo) -> CheckpointError + '_ {
        move |info| CheckpointError::Dynamo {
            table: table.to_string(),
            info,
        }
    }

    /// The record's text, if there is one.
    async fn read(&self, store: &CheckpointStore) -> Result<Option<String>, CheckpointError> {
        match store {
            CheckpointStore::File(path) => match tokio::fs::read_to_string(self.file(path)).await {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(CheckpointError::File {
                    path: self.file(path),
                    source,
                }),
            },
            CheckpointStore::Table {
                client, table, id, ..
            } => {
                let out = client
                    .get_item()
                    .table_name(table)
                    .key(CONTROL_PK, AttributeValue::S(id.clone()))
                    .key(CONTROL_SK, AttributeValue::S(self.sort_key.into()))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| Self::dynamo_error(table)(classify_sdk_error(&e)))?;
                Ok(
                    match out.item.as_ref().and_then(|i| i.get(self.attribute)) {
                        Some(AttributeValue::S(text)) => Some(text.clone()),
                        _ => None,
                    },
                )
            }
        }
    }

    /// The record read as JSON, if there is one.
    pub async fn load<T: serde::de::DeserializeOwned>(
        &self,
        store: &CheckpointStore,
    ) -> Result<Option<T>, CheckpointError> {
        let Some(text) = self.read(store).await? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| CheckpointError::Malformed {
                table: store.describe(),
                reason: format!("{}: {e}", self.what),
            })
    }

    /// Replaces the record with `text`; `None` removes it.
    pub async fn write(
        &self,
        store: &CheckpointStore,
        text: Option<String>,
    ) -> Result<(), CheckpointError> {
        match (store, text) {
            (CheckpointStore::File(path), None) => {
                match tokio::fs::remove_file(self.file(path)).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(CheckpointError::File {
                            path: self.file(path),
                            source: e,
                        })
                    }
                    _ => Ok(()),
                }
            }
            (CheckpointStore::File(path), Some(text)) => {
                write_durably(&self.file(path), text.into_bytes())
                    .await
                    .map_err(|source| CheckpointError::File {
                        path: self.file(path),
                        source,
                    })
            }
            (
                CheckpointStore::Table {
                    client, table, id, ..
                },
                text,
            ) => {
                let sent = match text {
                    None => client
                        .delete_item()
                        .table_name(table)
                        .key(CONTROL_PK, AttributeValue::S(id.clone()))
                        .key(CONTROL_SK, AttributeValue::S(self.sort_key.into()))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| classify_sdk_error(&e)),
                    Some(text) => client
                        .put_item()
                        .table_name(table)
                        .item(CONTROL_PK, AttributeValue::S(id.clone()))
                        .item(CONTROL_SK, AttributeValue::S(self.sort_key.into()))
                        .item(self.attribute, AttributeValue::S(text))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| classify_sdk_error(&e)),
                };
                sent.map_err(Self::dynamo_error(table))
            }
        }
    }
}
