//! Removals that write-back can tell for rowcast's (see `remove_marked`).

use aws_sdk_dynamodb::Client;

use super::{
    classify_sdk_error, encode_key, is_condition_failure, to_attribute_value, types_value,
    SdkErrorInfo, ORIGIN_ATTRIBUTE, REMOVAL_ATTRIBUTE, VERSION_ATTRIBUTE,
};
use crate::view::value::Attr;
use crate::view::ItemKey;

/// The number or binary set a list of numbers or of binaries may have been read from (the
/// stream's sets are read as lists: `Attr` has no such sets). Before 2026-12-07 the guard
/// compared such a set with the list only, and a rejected new item holding one was never
/// removed (found by a review; `tests/writeback_safety.rs`, seen failing).
fn as_set(value: &Attr) -> Option<aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue;
    let Attr::L(items) = value else {
        return None;
    };
    let numbers: Option<Vec<String>> = (items.iter())
        .map(|item| match item {
            Attr::N(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    let binaries: Option<Vec<Blob>> = (items.iter())
        .map(|item| match item {
            Attr::B(b) => Some(Blob::new(b.clone())),
            _ => None,
        })
        .collect();
    match (numbers, binaries) {
        _ if items.is_empty() => None,
        (Some(numbers), _) => Some(AttributeValue::Ns(numbers)),
        (_, Some(binaries)) => Some(AttributeValue::Bs(binaries)),
        _ => None,
    }
}

/// The mark of rowcast's removal at a version: the version, the mark, and the `_origin` of
/// the key at that version (a removal's mark is a write of rowcast's: `writeback/inverse.rs`).
const MARK: &str = "SET #v = :m, #r = :m, #o = :o";

/// Which items [`remove_marked`] may remove.
#[derive(Debug, Clone, Copy)]
pub enum RemovalGuard<'a> {
    /// rowcast's delete at version `v`: items with no version or a version up to `v` (the same
    /// delete replayed after a restart marks the item again). The mark sets the version too.
    UpTo(u128),
    /// An application's item that rowcast never wrote, e.g. a new item whose write-back was
    /// rejected, that still holds these attributes (keys and metadata aside) and the image's
    /// `_version`: none, or the one an application's copy of another item brought (before
    /// 2026-12-07's seventh stop only an item without one was removed, and such a rejected
    /// copy stayed: found by a review, `tests/writeback_safety.rs`, seen failing). A put the
    /// application made since, or a write of rowcast's, is left alone.
    Rejected(&'a std::collections::BTreeMap<String, Attr>),
}

/// Removes an item so that its stream record says the removal is rowcast's: an UpdateItem first
/// marks it (`_removing`), then a DeleteItem removes it on condition that the mark is still the
/// one just set. `Ok(false)`: the item is absent, newer, or was replaced in between (nothing
/// removed). This costs one more write per removal, only for views with write-back.
pub async fn remove_marked(
    client: &Client,
    key: &ItemKey,
    guard: RemovalGuard<'_>,
) -> Result<bool, SdkErrorInfo> {
    let mut request = client
        .update_item()
        .table_name(&*key.table)
        .set_key(Some(encode_key(key)))
        .expression_attribute_names("#k", &*key.pk_attribute)
        .expression_attribute_names("#v", VERSION_ATTRIBUTE)
        .expression_attribute_names("#r", REMOVAL_ATTRIBUTE);
    let mark = match guard {
        RemovalGuard::UpTo(version) => {
            let origin = super::origin(&key.pk, key.sk.as_deref(), version);
            request = request
                .update_expression(MARK)
                .expression_attribute_names("#o", ORIGIN_ATTRIBUTE)
                .expression_attribute_values(":o", to_attribute_value(&origin))
                .condition_expression(
                    "attribute_exists(#k) AND (attribute_not_exists(#v) OR #v <= :m)",
                );
            version
        }
        RemovalGuard::Rejected(image) => {
            let mut condition = String::from("attribute_exists(#k) AND ");
            match image.get(VERSION_ATTRIBUTE) {
                Some(version) => {
                    condition.push_str("#v = :cv");
                    request =
                        request.expression_attribute_values(":cv", to_attribute_value(version));
                }
                None => condition.push_str("attribute_not_exists(#v)"),
            }
            let values = image.iter().filter(|(name, _)| is_value(key, name));
            for (i, (name, value)) in values.enumerate() {
                request = request
                    .expression_attribute_names(format!("#a{i}"), name)
                    .expression_attribute_values(format!(":a{i}"), to_attribute_value(value));
                match as_set(value) {
                    // A stream's number or binary set is read as a list: the item holds either.
                    Some(set) => {
                        condition.push_str(&format!(" AND (#a{i} = :a{i} OR #a{i} = :s{i})"));
                        request = request.expression_attribute_values(format!(":s{i}"), set);
                    }
                    None => condition.push_str(&format!(" AND #a{i} = :a{i}")),
                }
            }
            request = request
                .update_expression("SET #r = :m")
                .condition_expression(condition);
            u128::from(crate::util::now_micros())
        }
    };
    let request = request.expression_attribute_values(":m", types_value(mark));
    let marked = match request.clone().send().await {
        Ok(_) => Ok(true),
        Err(error) => match classify_sdk_error(&error) {
            info if is_condition_failure(&info) => Ok(false),
            info if matches!(guard, RemovalGuard::UpTo(_)) && is_size_refusal(&info) => {
                mark_emptied(client, key, request, info).await
            }
            info => Err(info),
        },
    };
    if !marked? {
        return Ok(false);
    }
    delete_if_equal(client, key, REMOVAL_ATTRIBUTE, mark).await
}

/// Whether attribute `name` of `key`'s item is a value: neither a key attribute nor metadata.
fn is_value(key: &ItemKey, name: &str) -> bool {
    !name.starts_with('_')
        && *name != *key.pk_attribute
        && Some(name) != key.sk_attribute.as_deref()
}

/// DynamoDB's refusal of an update that would take the item past 400 KB.
fn is_size_refusal(info: &SdkErrorInfo) -> bool {
    info.code.as_deref() == Some("ValidationException")
        && info.message.contains("Item size to update has exceeded")
}

/// The mark of an item within a few bytes of DynamoDB's 400 KB limit, which the mark's
/// attributes would take past it: the same update, which also removes the item's largest
/// values, [`MARK_ROOM`] bytes of them at least (its key, metadata and other values stay), so
/// that it fits; a few names, so the expression stays far below DynamoDB's 4 KB. Write-back
/// takes it for rowcast's as it takes any mark (its mark moved forward, its version kept or
/// moved forward: `writeback/inverse.rs`, unit tested there), whatever else changed; readers
/// see the item without those values until the delete that follows. Only under
/// [`RemovalGuard::UpTo`] (rowcast's deletes, cleanups, repairs): an
/// [`RemovalGuard::Rejected`] item is told by its values, which must stay. Before
/// 2026-12-07's fifth stop the refused mark was a dead letter and the deleted row's item
/// stayed (`tests/writeback_safety.rs`, seen failing). `refused`: the first answer, returned
/// when there is nothing to remove.
async fn mark_emptied(
    client: &Client,
    key: &ItemKey,
    request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    refused: SdkErrorInfo,
) -> Result<bool, SdkErrorInfo> {
    let read = client
        .get_item()
        .table_name(&*key.table)
        .set_key(Some(encode_key(key)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| classify_sdk_error(&e))?;
    let Some(item) = read.item else {
        return Ok(false);
    };
    let values = largest_values(&item, key);
    if values.is_empty() {
        return Err(refused);
    }
    let mut update = format!("{MARK} REMOVE ");
    let mut request = request;
    for (i, name) in values.into_iter().enumerate() {
        if i > 0 {
            update.push_str(", ");
        }
        update.push_str(&format!("#x{i}"));
        request = request.expression_attribute_names(format!("#x{i}"), name);
    }
    match request.update_expression(update).send().await {
        Ok(_) => Ok(true),
        Err(error) => match classify_sdk_error(&error) {
            info if is_condition_failure(&info) => Ok(false),
            info => Err(info),
        },
    }
}

/// What [`mark_emptied`] frees at least: far more than the mark takes (about 30 bytes).
const MARK_ROOM: usize = 1024;

/// The names of `item`'s largest values (not key, not metadata) that hold [`MARK_ROOM`] bytes
/// together, or all of them if they hold less; a value of a type rowcast does not read counts
/// as large.
fn largest_values<'a>(
    item: &'a std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    key: &ItemKey,
) -> Vec<&'a String> {
    let mut values: Vec<(&String, usize)> = item
        .iter()
        .filter(|(name, _)| is_value(key, name))
        .map(|(name, value)| {
            let size = super::from_attribute_value(value).map_or(usize::MAX, |v| v.size());
            (name, size.saturating_add(name.len()))
        })
        .collect();
    values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut freed = 0usize;
    values
        .into_iter()
        .take_while(|(_, size)| {
            let more = freed < MARK_ROOM;
            freed = freed.saturating_add(*size);
            more
        })
        .map(|(name, _)| name)
        .collect()
}

/// Removes an item only if it still holds version `version` (a plain conditional DeleteItem):
/// `Ok(false)` when it is absent or was written since.
pub async fn remove_at_version(
    client: &Client,
    key: &ItemKey,
    version: u128,
) -> Result<bool, SdkErrorInfo> {
    delete_if_equal(client, key, VERSION_ATTRIBUTE, version).await
}

/// DeleteItem on condition that the number attribute `name` holds `value`: `Ok(false)` when
/// it does not (or the item is absent).
async fn delete_if_equal(
    client: &Client,
    key: &ItemKey,
    name: &str,
    value: u128,
) -> Result<bool, SdkErrorInfo> {
    let deleted = client
        .delete_item()
        .table_name(&*key.table)
        .set_key(Some(encode_key(key)))
        .condition_expression("#a = :a")
        .expression_attribute_names("#a", name)
        .expression_attribute_values(":a", types_value(value))
        .send()
        .await
        .map_err(|e| classify_sdk_error(&e));
    match deleted {
        Ok(_) => Ok(true),
        Err(info) if is_condition_failure(&info) => Ok(false),
        Err(info) => Err(info),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    /// The largest values holding [`MARK_ROOM`] bytes, never a key or metadata attribute.
    #[test]
    fn an_emptied_mark_removes_the_largest_values_that_free_enough_room() {
        let key = ItemKey::for_test("a");
        let text = |n: usize| AttributeValue::S("x".repeat(n));
        let mut item: HashMap<String, AttributeValue> = HashMap::new();
        item.insert(key.pk_attribute.to_string(), text(5000));
        item.insert(VERSION_ATTRIBUTE.into(), AttributeValue::N("7".into()));
        item.insert("_other".into(), text(5000));
        item.insert("small".into(), text(10));
        item.insert("body".into(), text(2000));
        item.insert("note".into(), text(600));
        item.insert("more".into(), text(600));
        assert_eq!(largest_values(&item, &key), ["body"]);
        item.remove("body");
        let two = largest_values(&item, &key);
        assert_eq!(two, ["more", "note"], "600 + 4 bytes each: both needed");
        item.remove("more");
        item.remove("note");
        assert_eq!(largest_values(&item, &key), ["small"], "all there is");
        item.remove("small");
        assert!(largest_values(&item, &key).is_empty());
    }
}
