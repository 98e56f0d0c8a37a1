//! Guarded writes in batches: the version guard checked by one consistent read of the stored
//! versions (BatchGetItem, 100 keys), then the writes that pass sent as BatchWriteItems.
//!
//! `BatchWriteItem` takes no condition, and a conditional PutItem is one request per item:
//! DynamoDB Local on 2 cores answers about 2,100 of them per second whatever the concurrency,
//! a quarter of the batched rate. Reading the versions first costs one request per 100 items.
//!
//! The check and the write are two requests, so the guard holds only if nobody writes a
//! *newer version* of the item in between. Nobody can: within this process a key belongs to
//! one lane, which has one window in flight and puts a key in a window once; an older instance
//! is fenced and its last requests waited out (see `control::checkpoint`); write-back's
//! restoring writes and rowcast's marked removals go through the lanes too and stay
//! conditional single writes (below). An application's own write in between carries no newer
//! version (it keeps or drops `_version`), and the conditional write it replaces would have
//! overwritten it too. So the outcome is the conditional write's in every case: written when
//! the stored item is absent, unversioned or older; dropped and counted as stale otherwise.
//! A delete of an absent item sends nothing (a conditional DeleteItem would have succeeded
//! without removing anything).

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use futures_util::future::join_all;
use tracing::{debug, warn};

use super::writer::{Writer, BATCH_LIMIT};
use crate::dynamo::{classify_sdk_error, encode_key, SdkErrorInfo, VERSION_ATTRIBUTE};
use crate::error::ErrorClass;
use crate::metrics::metrics;
use crate::pipeline::WriteOp;
use crate::view::{ItemKey, ItemOp};

/// Keys per BatchGetItem (DynamoDB's limit).
const CHECK_LIMIT: usize = 100;
/// Below this many guarded writes, conditional single writes take no more requests than a
/// check and a batch (two), and need no read.
pub const CHECK_MIN: usize = 3;

/// What the consistent read found under a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Absent,
    /// An item without `_version` (written by an application).
    Unversioned,
    /// An item with this version. A `_version` that rowcast did not write (another type, or a
    /// number in another form) reads as the greatest version: that item is left alone.
    At(u128),
}

/// What to do with a guarded write, given what is stored: the conditional write's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Write,
    /// The stored item is newer or the same version: dropped, counted as stale.
    Stale,
    /// A delete of an absent item: nothing to send.
    AlreadyGone,
}

pub fn verdict(op: &ItemOp, version: u128, stored: Stored) -> Verdict {
    match (op, stored) {
        (ItemOp::Delete { .. }, Stored::Absent) => Verdict::AlreadyGone,
        (_, Stored::At(at)) if at >= version => Verdict::Stale,
        _ => Verdict::Write,
    }
}

/// The stored item's identity: table, partition key, sort key.
type KeyId = (String, String, Option<String>);

fn key_id(key: &ItemKey) -> KeyId {
    (key.table.clone(), key.pk.clone(), key.sk.clone())
}

fn stored_of(item: &HashMap<String, AttributeValue>) -> Stored {
    match item.get(VERSION_ATTRIBUTE) {
        None => Stored::Unversioned,
        Some(AttributeValue::N(n)) => Stored::At(n.parse().unwrap_or(u128::MAX)),
        Some(_) => Stored::At(u128::MAX),
    }
}

impl Writer {
    /// Writes guarded `ops` (distinct keys): checked in groups of 100, the passing ones in
    /// batches of 25. A check DynamoDB refuses (e.g. a key it cannot take) falls back to
    /// conditional single writes of its group, which narrow the refusal down to its item.
    pub async fn write_checked(&self, ops: &[WriteOp]) {
        join_all(ops.chunks(CHECK_LIMIT).map(|group| async move {
            let stored = match self.read_versions(group).await {
                Ok(stored) => stored,
                Err(info) => {
                    warn!(error = %info, items = group.len(), "version check refused; writing its items one by one, conditionally");
                    for op in group {
                        self.write_single(op, true).await;
                    }
                    return;
                }
            };
            let mut passing = Vec::with_capacity(group.len());
            for (op, stored) in group.iter().zip(stored) {
                match verdict(&op.op, op.version, stored) {
                    Verdict::Write => passing.push(op.clone()),
                    Verdict::Stale => metrics().stale_writes.with_label_values(&[&op.view]).inc(),
                    Verdict::AlreadyGone => Writer::count_written(op),
                }
            }
            join_all(
                passing
                    .chunks(BATCH_LIMIT)
                    .map(|chunk| self.write_batch(chunk, true)),
            )
            .await;
        }))
        .await;
    }

    /// The stored versions of `ops`' keys (at most 100), in their order; retried until read.
    /// `Err`: DynamoDB refused the read as invalid.
    async fn read_versions(&self, ops: &[WriteOp]) -> Result<Vec<Stored>, SdkErrorInfo> {
        let mut request = check_request(ops)?;
        let key_names: HashMap<&str, (&str, Option<&str>)> = ops
            .iter()
            .map(|op| {
                let key = op.op.key();
                let names = (key.pk_attribute.as_str(), key.sk_attribute.as_deref());
                (key.table.as_str(), names)
            })
            .collect();
        let mut found: HashMap<KeyId, Stored> = HashMap::with_capacity(ops.len());
        let mut backoff = self.backoff();
        loop {
            let started = Instant::now();
            let result = self
                .client
                .batch_get_item()
                .set_request_items(Some(request.clone()))
                .send()
                .await;
            metrics()
                .batch_duration
                .with_label_values(&["check"])
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(out) => {
                    for (table, items) in out.responses.unwrap_or_default() {
                        let Some((pk_name, sk_name)) = key_names.get(table.as_str()) else {
                            continue;
                        };
                        for item in items {
                            let text = |name: &str| match item.get(name) {
                                Some(AttributeValue::S(s)) => Some(s.clone()),
                                _ => None,
                            };
                            let Some(pk) = text(pk_name) else { continue };
                            let sk = sk_name.and_then(text);
                            found.insert((table.clone(), pk, sk), stored_of(&item));
                        }
                    }
                    let left: HashMap<String, KeysAndAttributes> = out
                        .unprocessed_keys
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|(_, keys)| !keys.keys.is_empty())
                        .collect();
                    if left.is_empty() {
                        break;
                    }
                    metrics()
                        .write_retries
                        .with_label_values(&["unprocessed"])
                        .inc();
                    metrics().throttles.inc();
                    crate::metrics::note_pushback();
                    debug!(
                        left = left.len(),
                        "unprocessed keys in a version check; retrying them"
                    );
                    request = left;
                }
                Err(error) => {
                    let info = classify_sdk_error(&error);
                    if info.is_table_wide() {
                        for table in request.keys() {
                            self.hold(table, &info);
                        }
                    } else if info.class == ErrorClass::Definite {
                        return Err(info);
                    } else if info.throttled {
                        metrics().throttles.inc();
                        crate::metrics::note_pushback();
                        metrics()
                            .write_retries
                            .with_label_values(&["throttled"])
                            .inc();
                    } else {
                        metrics().write_retries.with_label_values(&["error"]).inc();
                        crate::metrics::note_pushback();
                        warn!(error = %info, "version check failed; retrying");
                    }
                }
            }
            tokio::time::sleep(backoff.next().unwrap_or(self.max_backoff)).await;
        }
        Ok(ops
            .iter()
            .map(|op| {
                let id = key_id(op.op.key());
                found.get(&id).copied().unwrap_or(Stored::Absent)
            })
            .collect())
    }
}

/// The BatchGetItem request of `ops`' keys: consistent reads of the keys and `_version` only.
fn check_request(ops: &[WriteOp]) -> Result<HashMap<String, KeysAndAttributes>, SdkErrorInfo> {
    let mut by_table: HashMap<&str, Vec<&ItemKey>> = HashMap::new();
    for op in ops {
        let key = op.op.key();
        by_table.entry(key.table.as_str()).or_default().push(key);
    }
    let mut request = HashMap::with_capacity(by_table.len());
    for (table, keys) in by_table {
        let first = keys[0];
        let mut names = KeysAndAttributes::builder()
            .consistent_read(true)
            .expression_attribute_names("#p", &first.pk_attribute)
            .expression_attribute_names("#v", VERSION_ATTRIBUTE);
        names = match &first.sk_attribute {
            Some(sk) => names
                .expression_attribute_names("#s", sk)
                .projection_expression("#p, #s, #v"),
            None => names.projection_expression("#p, #v"),
        };
        for key in keys {
            names = names.keys(encode_key(key));
        }
        let built = names.build().map_err(|e| SdkErrorInfo {
            class: ErrorClass::Definite,
            code: None,
            message: e.to_string(),
            throttled: false,
        })?;
        request.insert(table.to_string(), built);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ItemKey {
        ItemKey {
            table: "t".into(),
            pk_attribute: "pk".into(),
            pk: "A".into(),
            sk_attribute: None,
            sk: None,
        }
    }

    #[test]
    fn the_verdict_is_the_conditional_writes_outcome() {
        let put = ItemOp::Put {
            key: key(),
            item: Default::default(),
        };
        let delete = ItemOp::Delete { key: key() };
        for (op, stored, expected) in [
            (&put, Stored::Absent, Verdict::Write),
            (&put, Stored::Unversioned, Verdict::Write),
            (&put, Stored::At(9), Verdict::Write),
            (&put, Stored::At(10), Verdict::Stale),
            (&put, Stored::At(11), Verdict::Stale),
            (&delete, Stored::Absent, Verdict::AlreadyGone),
            (&delete, Stored::Unversioned, Verdict::Write),
            (&delete, Stored::At(9), Verdict::Write),
            (&delete, Stored::At(10), Verdict::Stale),
            (&delete, Stored::At(u128::MAX), Verdict::Stale),
        ] {
            assert_eq!(verdict(op, 10, stored), expected, "{op:?} over {stored:?}");
        }
    }

    #[test]
    fn a_version_that_is_not_a_whole_number_is_never_overwritten() {
        let item = |v: AttributeValue| HashMap::from([(VERSION_ATTRIBUTE.to_string(), v)]);
        assert_eq!(
            stored_of(&item(AttributeValue::N("42".into()))),
            Stored::At(42)
        );
        assert_eq!(
            stored_of(&item(AttributeValue::N("4.2E+1".into()))),
            Stored::At(u128::MAX)
        );
        assert_eq!(
            stored_of(&item(AttributeValue::S("42".into()))),
            Stored::At(u128::MAX)
        );
        assert_eq!(stored_of(&HashMap::new()), Stored::Unversioned);
    }
}
