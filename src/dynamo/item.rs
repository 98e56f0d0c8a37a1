//! Items as DynamoDB takes them: attribute values, keys, sizes, and the metadata attributes
//! rowcast adds for its own use (names beginning with `_`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::view::project::Item;
use crate::view::value::Attr;
use crate::view::{ItemKey, View};

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
/// DynamoDB's limit on one item, names and values included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

pub fn to_attribute_value(attr: &Attr) -> AttributeValue {
    match attr {
        Attr::S(s) => AttributeValue::S(s.clone()),
        Attr::N(n) => AttributeValue::N(n.clone()),
        Attr::B(b) => AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b.clone())),
        Attr::Ss(items) => AttributeValue::Ss(items.clone()),
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
        AttributeValue::Ss(items) => Attr::Ss(items.clone()),
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
    item.iter().map(|(k, v)| k.len() + v.size()).sum::<usize>()
        + VERSION_ATTRIBUTE.len()
        + 21
        + VIEW_ATTRIBUTE.len()
        + view.len()
}

/// DynamoDB's longest partition key value, of a table or of an index, in bytes of UTF-8.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// DynamoDB's longest sort key value, of a table or of an index.
pub const MAX_SORT_KEY_BYTES: usize = 1024;

/// Why DynamoDB would refuse the put of `item`, made by `view` under `key`, told without
/// sending it: over 400 KB, or a key value of the table or of one of the view's indexes longer
/// than DynamoDB takes. `None` when nothing here says it would.
pub fn refusal(item: &Item, view: &View, key: &ItemKey) -> Option<String> {
    let size = item_size(item, &view.name);
    if size > MAX_ITEM_BYTES {
        return Some(format!(
            "item {key} is {size} bytes, over DynamoDB's 400 KB limit"
        ));
    }
    let long = |what: String, value: &str, limit: usize| {
        (value.len() > limit)
            .then(|| format!("{what} is {} bytes, over DynamoDB's {limit}", value.len()))
    };
    let attribute = |name: &str| match item.get(name) {
        Some(Attr::S(value)) => Some(value.as_str()),
        _ => None,
    };
    long("partition key".into(), &key.pk, MAX_PARTITION_KEY_BYTES)
        .or_else(|| {
            let sk = key.sk.as_deref()?;
            long("sort key".into(), sk, MAX_SORT_KEY_BYTES)
        })
        .or_else(|| {
            view.indexes.iter().find_map(|index| {
                let pk = attribute(&index.pk_attribute).and_then(|value| {
                    let what = format!("index {} partition key", index.name);
                    long(what, value, MAX_PARTITION_KEY_BYTES)
                });
                pk.or_else(|| {
                    let value = attribute(index.sk_attribute.as_deref()?)?;
                    let what = format!("index {} sort key", index.name);
                    long(what, value, MAX_SORT_KEY_BYTES)
                })
            })
        })
}

/// A version as a number attribute.
pub fn types_value(version: u128) -> AttributeValue {
    // `itoa`: a u128 through `fmt` divides digit by digit (one per written item).
    AttributeValue::N(itoa::Buffer::new().format(version).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys of exactly DynamoDB's lengths pass; a byte more, of the table's keys or an
    /// index's, is refused.
    #[test]
    fn keys_longer_than_dynamodb_takes_are_refused() {
        let view = crate::config::compile_view(
            std::path::Path::new("v.toml"),
            "name = \"v\"\ntable = \"tab\"\nsource = \"d.s\"\n[key]\npk = \"{a}\"\nsk = \"{b}\"\n\
             [[index]]\nname = \"idx\"\npk = \"{c}\"\nsk = \"{d}\"\n",
        )
        .expect("a valid view");
        let index = &view.indexes[0];
        let refusal_of = |pk: usize, sk: usize, ipk: usize, isk: usize| {
            let key = ItemKey {
                table: "tab".into(),
                pk_attribute: "pk".into(),
                pk: "p".repeat(pk),
                sk_attribute: Some("sk".into()),
                sk: Some("s".repeat(sk)),
            };
            let item: Item = [
                (index.pk_attribute.to_string(), Attr::S("x".repeat(ipk))),
                (
                    index.sk_attribute.as_deref().unwrap().to_string(),
                    Attr::S("y".repeat(isk)),
                ),
            ]
            .into_iter()
            .collect();
            refusal(&item, &view, &key)
        };
        assert_eq!(refusal_of(2048, 1024, 2048, 1024), None);
        for (sizes, what) in [
            ((2049, 1, 1, 1), "partition key is 2049 bytes"),
            ((1, 1025, 1, 1), "sort key is 1025 bytes"),
            ((1, 1, 2049, 1), "index idx partition key is 2049 bytes"),
            ((1, 1, 1, 1025), "index idx sort key is 1025 bytes"),
        ] {
            let reason = refusal_of(sizes.0, sizes.1, sizes.2, sizes.3).expect("refused");
            assert!(reason.starts_with(what), "{reason}");
        }
    }

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
}
