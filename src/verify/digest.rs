//! What `rowcast verify` compares: a canonical encoding of an item (its key and attributes,
//! metadata left out), a strong hash of it, and per bucket of keys an order-independent digest.
//!
//! The digest of a bucket is the sum, modulo 2^128, of the SHA-256 (first 128 bits) of each of
//! its items' canonical encodings, with the item count. Unlike a CRC combined with XOR, a sum
//! of strong hashes does not cancel out: two equal items do not vanish, and two different sets
//! collide only by chance (2^-128). Items arrive in any order on either side.
//!
//! The encoding is what DynamoDB keeps, not how it was spelled: numbers by value (`1.50` and
//! `15E-1` are one number), string sets in sorted order, maps by attribute name.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::view::project::Item;
use crate::view::value::Attr;
use crate::view::ItemKey;

/// A number's canonical text: sign, significant digits, exponent (`-15e-1` for `-1.50`).
pub fn canonical_number(text: &str) -> String {
    let t = text.trim();
    let (negative, rest) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => match rest[i + 1..].parse::<i64>() {
            Ok(exponent) => (&rest[..i], exponent),
            Err(_) => return t.to_string(),
        },
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return t.to_string();
    }
    let digits: String = format!("{int}{frac}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return "0".into();
    }
    let trimmed = significant.trim_end_matches('0');
    let trailing = (significant.len() - trimmed.len()) as i64;
    let exponent = exponent
        .saturating_sub(frac.len() as i64)
        .saturating_add(trailing);
    format!("{}{trimmed}e{exponent}", if negative { "-" } else { "" })
}

fn encode_attr(attr: &Attr, out: &mut Vec<u8>) {
    fn bytes(tag: u8, data: &[u8], out: &mut Vec<u8>) {
        out.push(tag);
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(data);
    }
    match attr {
        Attr::S(s) => bytes(b'S', s.as_bytes(), out),
        Attr::N(n) => bytes(b'N', canonical_number(n).as_bytes(), out),
        Attr::B(b) => bytes(b'B', b, out),
        Attr::Ss(items) => {
            let mut sorted: Vec<&str> = items.iter().map(|s| &**s).collect();
            sorted.sort();
            sorted.dedup();
            out.push(b'T');
            out.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
            for item in sorted {
                bytes(b'S', item.as_bytes(), out);
            }
        }
        Attr::M(map) => {
            out.push(b'M');
            out.extend_from_slice(&(map.len() as u64).to_le_bytes());
            for (name, value) in map {
                bytes(b'K', name.as_bytes(), out);
                encode_attr(value, out);
            }
        }
        Attr::L(items) => {
            out.push(b'L');
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                encode_attr(item, out);
            }
        }
        Attr::Bool(b) => out.extend_from_slice(&[b'?', u8::from(*b)]),
        Attr::Null => out.push(b'0'),
    }
}

/// The canonical encoding of one attribute value (for telling which attributes differ).
pub fn encode_value(attr: &Attr) -> Vec<u8> {
    let mut out = Vec::new();
    encode_attr(attr, &mut out);
    out
}

/// The item's hash: SHA-256 (first 128 bits) over its attributes in name order, metadata
/// attributes (`_…`) left out. Key attributes are attributes of the item like any other.
pub fn item_hash(item: &Item) -> u128 {
    pairs_hash(item.iter().filter(|(name, _)| !name.starts_with('_')))
}

/// [`item_hash`] of attributes given in name order, as they are (write-back's delete guard
/// hashes stream images and items through it, filtered as it compares them).
pub fn pairs_hash<'a>(pairs: impl Iterator<Item = (&'a str, &'a Attr)>) -> u128 {
    let mut out = Vec::with_capacity(256);
    for (name, value) in pairs {
        out.extend_from_slice(&(name.len() as u64).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        encode_attr(value, &mut out);
    }
    first_128(&Sha256::digest(&out))
}

fn first_128(hash: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    u128::from_le_bytes(bytes)
}

/// The bucket of a key among `buckets`: by a hash of the key, so that both sides put an item in
/// the same bucket whatever order they read it in.
pub fn bucket_of(key: &ItemKey, buckets: usize) -> usize {
    let mut hasher = Sha256::new();
    hasher.update(key.pk.as_bytes());
    hasher.update([0xff]);
    if let Some(sk) = &key.sk {
        hasher.update(sk.as_bytes());
    }
    (first_128(&hasher.finalize()) % buckets as u128) as usize
}

/// Sum and count of the item hashes in each bucket of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    buckets: Vec<(u128, u64)>,
}

impl Default for Digests {
    fn default() -> Self {
        Digests::new(super::BUCKETS)
    }
}

impl Digests {
    pub fn new(buckets: usize) -> Self {
        Digests {
            buckets: vec![(0, 0); buckets.max(1)],
        }
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub fn add(&mut self, key: &ItemKey, hash: u128) {
        let bucket = bucket_of(key, self.buckets.len());
        let entry = &mut self.buckets[bucket];
        entry.0 = entry.0.wrapping_add(hash);
        entry.1 += 1;
    }

    /// Adds another side's partial digests (of a parallel scan segment).
    pub fn merge(&mut self, other: &Digests) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.0 = mine.0.wrapping_add(theirs.0);
            mine.1 += theirs.1;
        }
    }

    pub fn items(&self) -> u64 {
        self.buckets.iter().map(|b| b.1).sum()
    }

    /// The buckets whose digests differ, with the larger of the two item counts.
    pub fn differing(&self, other: &Digests) -> Vec<(usize, u64)> {
        self.buckets
            .iter()
            .zip(&other.buckets)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| (i, a.1.max(b.1)))
            .collect()
    }
}

/// The names of the attributes (metadata aside) whose values differ or that one side lacks.
pub fn differing_attributes(expected: &Item, actual: &Item) -> Vec<String> {
    let mut names: BTreeMap<&str, ()> = BTreeMap::new();
    for (name, value) in expected.iter().filter(|(n, _)| !n.starts_with('_')) {
        match actual.get(name) {
            Some(other) if encode_value(other) == encode_value(value) => {}
            _ => {
                names.insert(name, ());
            }
        }
    }
    for name in actual.keys().filter(|n| !n.starts_with('_')) {
        if !expected.contains_key(name) {
            names.insert(name, ());
        }
    }
    names.into_keys().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pk: &str) -> ItemKey {
        ItemKey::for_test(pk)
    }

    fn item(pairs: &[(&str, Attr)]) -> Item {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn numbers_compare_by_value() {
        for (a, b) in [
            ("1.50", "1.5"),
            ("15E-1", "1.5"),
            ("-0012.3400", "-12.34"),
            ("100", "1e2"),
            ("0.000", "0"),
            ("-0", "0"),
            ("+7", "7"),
        ] {
            assert_eq!(canonical_number(a), canonical_number(b), "{a} {b}");
        }
        assert_ne!(canonical_number("1.5"), canonical_number("1.05"));
        assert_ne!(canonical_number("10"), canonical_number("1"));
        assert_ne!(canonical_number("-1"), canonical_number("1"));
    }

    #[test]
    fn an_item_hash_ignores_metadata_set_order_and_number_spelling() {
        let a = item(&[
            ("pk", Attr::S("A#1".into())),
            ("n", Attr::N("1.50".into())),
            ("tags", Attr::Ss(vec!["x".into(), "a".into()])),
            ("_version", Attr::N("77".into())),
        ]);
        let b = item(&[
            ("pk", Attr::S("A#1".into())),
            ("n", Attr::N("1.5".into())),
            ("tags", Attr::Ss(vec!["a".into(), "x".into()])),
        ]);
        assert_eq!(item_hash(&a), item_hash(&b));
        let c = item(&[
            ("pk", Attr::S("A#1".into())),
            ("n", Attr::N("1.5".into())),
            ("tags", Attr::Ss(vec!["a".into()])),
        ]);
        assert_ne!(item_hash(&b), item_hash(&c));
        // A string is not a number, a list is not a set.
        let s = item(&[("v", Attr::S("1".into()))]);
        let n = item(&[("v", Attr::N("1".into()))]);
        assert_ne!(item_hash(&s), item_hash(&n));
        assert_eq!(differing_attributes(&b, &c), vec!["tags".to_string()]);
        assert_eq!(differing_attributes(&a, &b), Vec::<String>::new());
    }

    #[test]
    fn digests_differ_where_a_bucket_differs_and_never_cancel() {
        let items: Vec<(ItemKey, Item)> = (0..500)
            .map(|i| {
                let k = key(&format!("K#{i}"));
                (k.clone(), item(&[("pk", Attr::S(k.pk.clone()))]))
            })
            .collect();
        let mut source = Digests::new(64);
        let mut table = Digests::new(64);
        for (k, i) in &items {
            source.add(k, item_hash(i));
        }
        for (k, i) in items.iter().rev() {
            table.add(k, item_hash(i));
        }
        assert!(source.differing(&table).is_empty(), "order does not matter");
        // One item twice and another missing: a XOR of the hashes would not tell.
        let mut twice = Digests::new(64);
        for (k, i) in items.iter().skip(1) {
            twice.add(k, item_hash(i));
        }
        twice.add(&items[1].0, item_hash(&items[1].1));
        let differing = source.differing(&twice);
        assert!(!differing.is_empty());
        // One different item: exactly its bucket.
        let mut changed = Digests::new(64);
        for (n, (k, i)) in items.iter().enumerate() {
            let mut i = i.clone();
            if n == 42 {
                i.insert("x", Attr::Bool(true));
            }
            changed.add(k, item_hash(&i));
        }
        let differing = source.differing(&changed);
        assert_eq!(differing.len(), 1);
        assert_eq!(differing[0].0, bucket_of(&items[42].0, 64));
    }
}
