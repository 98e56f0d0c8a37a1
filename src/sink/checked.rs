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
type KeyId<'a> = (&'a str, &'a str, Option<&'a str>);

/// The keys of a group of writes (distinct), which DynamoDB's answers name: items read, keys
/// or write requests left unprocessed.
pub(super) struct Asked<'a> {
    positions: HashMap<KeyId<'a>, usize>,
    /// Each table's key attribute names (the views of one table name them alike: checked by
    /// the config).
    names: HashMap<&'a str, (&'a str, Option<&'a str>)>,
}

impl<'a> Asked<'a> {
    pub(super) fn new(ops: &'a [WriteOp]) -> Self {
        let mut asked = Self {
            positions: HashMap::with_capacity(ops.len()),
            names: HashMap::new(),
        };
        for (n, op) in ops.iter().enumerate() {
            let key = op.op.key();
            asked
                .positions
                .insert((&key.table, &key.pk, key.sk.as_deref()), n);
            asked
                .names
                .entry(&key.table)
                .or_insert((&key.pk_attribute, key.sk_attribute.as_deref()));
        }
        asked
    }

    /// The position in the group of the write whose key the item (or key) `attributes` of
    /// `table` holds; `None` when it is none of the group's.
    pub(super) fn position(
        &self,
        table: &str,
        attributes: &HashMap<String, AttributeValue>,
    ) -> Option<usize> {
        let (pk_name, sk_name) = self.names.get(table)?;
        let text = |name: &str| match attributes.get(name) {
            Some(AttributeValue::S(s)) => Some(s.as_str()),
            _ => None,
        };
        let pk = text(pk_name)?;
        let sk = sk_name.and_then(text);
        self.positions.get(&(table, pk, sk)).copied()
    }
}

fn stored_of(item: &HashMap<String, AttributeValue>) -> Stored {
    match item.get(VERSION_ATTRIBUTE) {
        None => Stored::Unversioned,
        Some(AttributeValue::N(n)) => Stored::At(n.parse().unwrap_or(u128::MAX)),
        Some(_) => Stored::At(u128::MAX),
    }
}

/// A check refused for a reason that lasts (permissions, a missing table) is logged once.
static REFUSAL_LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A refused check, logged once per process.
fn refused(error: &dyn std::fmt::Display) {
    if !REFUSAL_LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        warn!(%error, "version check refused (is dynamodb:BatchGetItem granted on the view tables?); guarded writes go as conditional single writes while it is");
    }
}

impl Writer {
    /// Writes guarded `ops` (distinct keys): checked in groups of 100, the passing ones in
    /// batches of 25. Whatever the check cannot tell — a refused, throttled or failed read,
    /// keys left unprocessed — goes as conditional single writes, which retry, hold and
    /// dead-letter on their own: a check is never waited for or retried, so it never stalls
    /// the lane (read capacity short, `dynamodb:BatchGetItem` not granted).
    pub async fn write_checked(&self, ops: &[WriteOp]) {
        join_all(ops.chunks(CHECK_LIMIT).map(|group| async move {
            let stored = self.read_versions(group).await;
            let mut passing = Vec::with_capacity(group.len());
            let mut unchecked = Vec::new();
            for (op, stored) in group.iter().zip(stored) {
                let Some(stored) = stored else {
                    unchecked.push(op);
                    continue;
                };
                match verdict(&op.op, op.version, stored) {
                    Verdict::Write => passing.push(op.clone()),
                    Verdict::Stale => metrics().stale_writes.with_label_values(&[&op.view]).inc(),
                    Verdict::AlreadyGone => Writer::count_written(op),
                }
            }
            let batches = join_all(
                passing
                    .chunks(BATCH_LIMIT)
                    .map(|chunk| self.write_batch(chunk, true)),
            );
            tokio::join!(batches, self.write_conditional(unchecked));
        }))
        .await;
    }

    /// The stored versions of `ops`' keys (at most 100), in their order, from one strongly
    /// consistent BatchGetItem; `None` for a key it did not read.
    async fn read_versions(&self, ops: &[WriteOp]) -> Vec<Option<Stored>> {
        let request = match check_request(ops) {
            Ok(request) => request,
            Err(info) => {
                warn!(error = %info, "version check not built; writing conditionally");
                return vec![None; ops.len()];
            }
        };
        if crate::util::failpoint::fails("writer.check") {
            refused(&"failpoint writer.check");
            return vec![None; ops.len()];
        }
        let started = Instant::now();
        let result = self
            .client
            .batch_get_item()
            .set_request_items(Some(request))
            .send()
            .await;
        metrics()
            .batch_duration
            .with_label_values(&["check"])
            .observe(started.elapsed().as_secs_f64());
        let out = match result {
            Ok(out) => out,
            Err(error) => {
                let info = classify_sdk_error(&error);
                if info.throttled {
                    metrics().throttles.inc();
                    crate::metrics::note_pushback();
                    debug!(error = %info, "version check throttled; writing conditionally");
                } else if info.class == ErrorClass::Definite || info.is_table_wide() {
                    refused(&info);
                } else {
                    debug!(error = %info, "version check failed; writing conditionally");
                }
                return vec![None; ops.len()];
            }
        };
        let mut responses = out.responses.unwrap_or_default();
        let mut unprocessed = out.unprocessed_keys.unwrap_or_default();
        if crate::util::failpoint::fails("writer.check_unprocessed") {
            leave_unread(ops, &mut responses, &mut unprocessed);
        }
        let Some(stored) = read_answer(ops, &responses, &unprocessed) else {
            warn!("version check answered for a key it was not asked for; writing conditionally");
            return vec![None; ops.len()];
        };
        if stored.iter().any(Option::is_none) {
            super::writer::count_unprocessed();
        }
        stored
    }
}

/// What a check's answer says of each of `ops`' keys, in their order: what is stored, or `None`
/// for a key DynamoDB left unprocessed (not read: neither found nor absent). `None` for the
/// whole answer when it names an item or key that is not one of `ops`' (it cannot be told from
/// an absent one then, so nothing of it is trusted).
fn read_answer(
    ops: &[WriteOp],
    responses: &HashMap<String, Vec<HashMap<String, AttributeValue>>>,
    unprocessed: &HashMap<String, KeysAndAttributes>,
) -> Option<Vec<Option<Stored>>> {
    let asked = Asked::new(ops);
    let mut stored = vec![Some(Stored::Absent); ops.len()];
    for (table, items) in responses {
        for item in items {
            stored[asked.position(table, item)?] = Some(stored_of(item));
        }
    }
    for (table, keys) in unprocessed {
        for key in &keys.keys {
            stored[asked.position(table, key)?] = None;
        }
    }
    Some(stored)
}

/// Failpoint `writer.check_unprocessed`: the check's answer as if DynamoDB had left every
/// other key of `ops` unprocessed (their items taken out of the responses, their keys listed
/// as DynamoDB lists unprocessed keys).
fn leave_unread(
    ops: &[WriteOp],
    responses: &mut HashMap<String, Vec<HashMap<String, AttributeValue>>>,
    unprocessed: &mut HashMap<String, KeysAndAttributes>,
) {
    let asked = Asked::new(ops);
    for (n, op) in ops.iter().enumerate().skip(1).step_by(2) {
        let key = op.op.key();
        if let Some(items) = responses.get_mut(&*key.table) {
            items.retain(|item| asked.position(&key.table, item) != Some(n));
        }
        match unprocessed.get_mut(&*key.table) {
            Some(entry) => entry.keys.push(encode_key(key)),
            None => {
                let entry = KeysAndAttributes::builder()
                    .keys(encode_key(key))
                    .build()
                    .expect("keys are set");
                unprocessed.insert(key.table.to_string(), entry);
            }
        }
    }
}

/// The BatchGetItem request of `ops`' keys: consistent reads of the keys and `_version` only.
fn check_request(ops: &[WriteOp]) -> Result<HashMap<String, KeysAndAttributes>, SdkErrorInfo> {
    let mut by_table: HashMap<&str, Vec<&ItemKey>> = HashMap::new();
    for op in ops {
        let key = op.op.key();
        by_table.entry(&*key.table).or_default().push(key);
    }
    let mut request = HashMap::with_capacity(by_table.len());
    for (table, keys) in by_table {
        let first = keys[0];
        let mut names = KeysAndAttributes::builder()
            .consistent_read(true)
            .expression_attribute_names("#p", &*first.pk_attribute)
            .expression_attribute_names("#v", VERSION_ATTRIBUTE);
        names = match &first.sk_attribute {
            Some(sk) => names
                .expression_attribute_names("#s", &**sk)
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
            unsure: false,
        })?;
        request.insert(table.to_string(), built);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ItemKey {
        ItemKey::for_test("A")
    }

    fn delete(pk: &str) -> WriteOp {
        WriteOp {
            guard: true,
            ..crate::sink::test_ops::delete("v", pk, 10)
        }
    }

    /// A checked batch's unprocessed items are known by their keys; one that is not the
    /// batch's makes the whole outcome unknown (every item then goes conditionally).
    #[test]
    fn unprocessed_items_are_known_only_when_they_are_the_batchs() {
        use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
        let ops = [delete("A"), delete("B")];
        let request = |pk: &str| {
            let key = HashMap::from([("pk".to_string(), AttributeValue::S(pk.into()))]);
            WriteRequest::builder()
                .delete_request(DeleteRequest::builder().set_key(Some(key)).build().unwrap())
                .build()
        };
        let left = |table: &str, pks: &[&str]| {
            let requests = pks.iter().map(|pk| request(pk)).collect();
            super::super::writer::unprocessed_positions(
                &ops,
                &HashMap::from([(table.to_string(), requests)]),
            )
        };
        assert_eq!(left("t", &["B"]), Some(vec![false, true]));
        assert_eq!(left("t", &["B", "Z"]), None);
        assert_eq!(left("u", &["A"]), None);
    }

    /// The answer for keys A (found at version 7), B (left unprocessed) and C (neither:
    /// absent), and what else it names.
    #[test]
    fn an_answer_is_trusted_only_for_the_keys_asked() {
        let ops = [delete("A"), delete("B"), delete("C")];
        let pk = |pk: &str| HashMap::from([("pk".to_string(), AttributeValue::S(pk.into()))]);
        let mut found = pk("A");
        found.insert(VERSION_ATTRIBUTE.into(), AttributeValue::N("7".into()));
        let unread = |pks: &[&str]| {
            let mut keys = KeysAndAttributes::builder();
            for p in pks {
                keys = keys.keys(pk(p));
            }
            HashMap::from([("t".to_string(), keys.build().unwrap())])
        };
        let responses = HashMap::from([("t".to_string(), vec![found.clone()])]);
        assert_eq!(
            read_answer(&ops, &responses, &unread(&["B"])),
            Some(vec![Some(Stored::At(7)), None, Some(Stored::Absent)])
        );
        // An item or key that was not asked for, or that names no key: nothing is trusted.
        let stranger = HashMap::from([("t".to_string(), vec![found, pk("Z")])]);
        assert_eq!(read_answer(&ops, &stranger, &HashMap::new()), None);
        assert_eq!(read_answer(&ops, &responses, &unread(&["Z"])), None);
        let nameless = HashMap::from([("t".to_string(), vec![HashMap::new()])]);
        assert_eq!(read_answer(&ops, &nameless, &HashMap::new()), None);
        let other_table = HashMap::from([("u".to_string(), vec![pk("A")])]);
        assert_eq!(read_answer(&ops, &other_table, &HashMap::new()), None);
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
