//! Items as DynamoDB takes them: attribute values, keys, sizes, and the metadata attributes
//! rowcast adds for its own use (names beginning with `_`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::view::project::Item;
use crate::view::value::Attr;
use crate::view::ItemKey;

/// Metadata attribute holding the item version (the source transaction counter).
pub const VERSION_ATTRIBUTE: &str = "_version";
/// Metadata attribute naming the view that made the item: `rowcast verify` tells a view's items
/// by it in a table several views share, also an item whose key an older definition of the view
/// made (one the current key templates no longer parse).
pub const VIEW_ATTRIBUTE: &str = "_view";
/// Metadata attribute that marks an item of a write-back view that rowcast is about to remove:
/// the stream record of the removal carries it in its old image, which is how write-back tells
/// rowcast's removals from an application's DeleteItem (see `writeback/inverse.rs`).
pub const REMOVAL_ATTRIBUTE: &str = "_removing";
/// Metadata attribute of an item rewritten from SQL after write-back rejected an application's
/// change of it: a fresh value on every such write, which is how write-back tells that write
/// (made at the version the item already holds) from an application's.
pub const RESTORED_ATTRIBUTE: &str = "_restored";
/// Metadata attribute of the items of a table with a write-back view: [`origin`] of the item's
/// key and `_version`. It binds the version rowcast wrote to the key it wrote it under, which is
/// how write-back tells rowcast's write from an application's copy of another item (a `GetItem`,
/// then a `PutItem` under a new key) that carries that item's `_version`
/// (`writeback/inverse.rs`).
pub const ORIGIN_ATTRIBUTE: &str = "_origin";
/// What `_origin` adds to an item's size at most, as [`item_size`] counts it (20 digits).
pub const ORIGIN_BYTES: usize = ORIGIN_ATTRIBUTE.len() + 12;
/// DynamoDB's limit on one item, names and values included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

pub fn to_attribute_value(attr: &Attr) -> AttributeValue {
    match attr {
        Attr::S(s) => AttributeValue::S(s.clone()),
        Attr::N(n) => AttributeValue::N(n.clone()),
        Attr::B(b) => AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b.clone())),
        Attr::Ss(items) => AttributeValue::Ss(items.iter().map(|s| String::from(&**s)).collect()),
        Attr::M(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), to_attribute_value(v)))
                .collect(),
        ),
        Attr::L(items) => AttributeValue::L(items.iter().map(to_attribute_value).collect()),
        Attr::Bool(b) => AttributeValue::Bool(*b),
        Attr::Null => AttributeValue::Null(true),
    }
}

pub fn from_attribute_value(value: &AttributeValue) -> Option<Attr> {
    Some(match value {
        AttributeValue::S(s) => Attr::S(s.clone()),
        AttributeValue::N(n) => Attr::N(n.clone()),
        AttributeValue::B(b) => Attr::B(b.as_ref().to_vec()),
        AttributeValue::Ss(items) => Attr::Ss(items.iter().map(|s| s.as_str().into()).collect()),
        AttributeValue::M(map) => Attr::M(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), from_attribute_value(v)?)))
                .collect(),
        ),
        AttributeValue::L(items) => {
            Attr::L(items.iter().filter_map(from_attribute_value).collect())
        }
        AttributeValue::Bool(b) => Attr::Bool(*b),
        AttributeValue::Null(_) => Attr::Null,
        _ => return None,
    })
}

/// The item as sent: the view's attributes plus the version and the view's name. Built through
/// the view's layout on this thread, which hashes no attribute name (`dynamo/layout.rs`).
pub fn encode_item(item: &Item, version: u128, view: &str) -> HashMap<String, AttributeValue> {
    super::layout::encode(item, version, view)
}

/// [`encode_item`] by inserting each attribute.
pub(super) fn encode_plain(
    item: &Item,
    version: u128,
    view: &str,
) -> HashMap<String, AttributeValue> {
    let mut out: HashMap<String, AttributeValue> = HashMap::with_capacity(item.len() + 2);
    out.extend(
        item.iter()
            .map(|(k, v)| (k.to_owned(), to_attribute_value(v))),
    );
    out.insert(VERSION_ATTRIBUTE.to_string(), types_value(version));
    out.insert(
        VIEW_ATTRIBUTE.to_string(),
        AttributeValue::S(view.to_string()),
    );
    out
}

pub fn encode_key(key: &ItemKey) -> HashMap<String, AttributeValue> {
    // `String::from(&*…)`: an `Arc<str>`'s `to_string` goes through `fmt` and grows its buffer.
    let mut out = HashMap::with_capacity(2);
    out.insert(
        String::from(&*key.pk_attribute),
        AttributeValue::S(key.pk.clone()),
    );
    if let (Some(name), Some(sk)) = (&key.sk_attribute, &key.sk) {
        out.insert(String::from(&**name), AttributeValue::S(sk.clone()));
    }
    out
}

/// Size of the item as DynamoDB counts it (attribute names plus values), version and view name
/// included.
pub fn item_size(item: &Item, view: &str) -> usize {
    sized(item, view, Attr::size)
}

/// [`item_size`] when it is over `limit`, else `None`: decided by [`Attr::size_bound`] where
/// that is enough (most items), counted exactly only past it.
pub fn size_over(item: &Item, view: &str, limit: usize) -> Option<usize> {
    if sized(item, view, Attr::size_bound) <= limit {
        return None;
    }
    Some(item_size(item, view)).filter(|&size| size > limit)
}

/// An item's size with each value's as `size` gives it, version and view name included.
fn sized(item: &Item, view: &str, size: fn(&Attr) -> usize) -> usize {
    item.iter().map(|(k, v)| k.len() + size(v)).sum::<usize>()
        + VERSION_ATTRIBUTE.len()
        + 21
        + VIEW_ATTRIBUTE.len()
        + view.len()
}

/// A version as a number attribute.
/// The `_version` a stored item carries (`None`: none, or not a number rowcast writes).
pub fn item_version(item: &HashMap<String, AttributeValue>) -> Option<u128> {
    match item.get(VERSION_ATTRIBUTE) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

/// The `_origin` of the item of key `pk`/`sk` at `version`: the first 8 bytes of a SHA-256 of
/// them, as a decimal number. Stable across releases and hosts (write-back computes it again
/// from a stream record's keys and version); a check against copies, not a secret: an
/// application that writes a matching one on purpose is taken for rowcast.
pub fn origin(pk: &str, sk: Option<&str>, version: u128) -> Attr {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"rowcast-origin-1\0");
    hash.update(version.to_be_bytes());
    hash.update((pk.len() as u64).to_be_bytes()); // the same on every host
    hash.update(pk.as_bytes());
    if let Some(sk) = sk {
        hash.update(b"\x01");
        hash.update(sk.as_bytes());
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Attr::N(
        itoa::Buffer::new()
            .format(u64::from_be_bytes(first))
            .to_owned(),
    )
}

pub fn types_value(version: u128) -> AttributeValue {
    // `itoa`: a u128 through `fmt` divides digit by digit (one per written item).
    AttributeValue::N(itoa::Buffer::new().format(version).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version's text is its decimal digits, from 0 to the largest u128.
    #[test]
    fn versions_are_written_as_their_decimal_digits() {
        for version in [
            0,
            1,
            9,
            10,
            u128::from(u64::MAX),
            1 << 64,
            (7 << 32) | 3,
            u128::MAX,
        ] {
            assert_eq!(types_value(version), AttributeValue::N(version.to_string()));
        }
    }

    /// `_origin` is computed again by write-back from stream records an earlier process (or
    /// release) wrote: the same key and version give the same value for good. A change here
    /// would make every item written before it look like an application's copy.
    #[test]
    fn origins_are_the_same_across_releases() {
        let origin = |pk, sk, version| match super::origin(pk, sk, version) {
            Attr::N(text) => text,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            origin("ACC#1", Some("NOTE"), 7 << 32),
            "12816256561771506885"
        );
        assert_ne!(
            origin("ACC#1", Some("NOTE"), 7 << 32),
            origin("ACC#1", None, 7 << 32)
        );
        assert_ne!(
            origin("ACC#1", Some("NOTE"), 7 << 32),
            origin("ACC#2", Some("NOTE"), 7 << 32)
        );
        assert_ne!(
            origin("ACC#1", Some("NOTE"), 7 << 32),
            origin("ACC#1", Some("NOTE"), 8 << 32)
        );
        // The pk's length is part of the hash: a pk/sk split elsewhere is another key.
        assert_ne!(origin("A", Some("BC"), 1), origin("AB", Some("C"), 1));
    }
}
