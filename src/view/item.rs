//! An item as projected: its attributes in name order, each name once.
//!
//! A sorted vector rather than a `BTreeMap<String, _>`: an item is built once from a row, read
//! in order (encoded, sized, hashed) and dropped, and its names are the view's own, shared by a
//! reference count. A map's nodes and a copy of every name cost about a fifth of the CPU path of
//! `benches/cpu.rs` (callgrind, issue 13).

use super::value::Attr;

/// An attribute name, shared with the view's spec.
pub use super::name::Name;

#[derive(Clone, Default, PartialEq)]
pub struct Item {
    /// Sorted by name; every name once.
    entries: Vec<(Name, Attr)>,
}

/// `a < b`, told by the first bytes where they differ there (most names of one item do) without
/// the call to `memcmp` a comparison of strings makes (callgrind, `benches/cpu.rs`).
#[inline]
fn name_before(a: &str, b: &str) -> bool {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a < b,
    }
}

impl Item {
    pub fn new() -> Item {
        Item::default()
    }

    /// An item of these attributes in any order, a later one of a name replacing an earlier one
    /// (as inserting them one by one would).
    pub fn from_entries(mut entries: Vec<(Name, Attr)>) -> Item {
        if !entries.is_sorted_by(|a, b| name_before(&a.0, &b.0)) {
            entries.sort_by(|a, b| a.0.cmp(&b.0)); // stable: one name's entries stay in order
            entries.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    std::mem::swap(later, kept); // the later one wins
                }
                same
            });
        }
        Item { entries }
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(known, _)| (**known).cmp(name))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Attr> {
        self.find(name).ok().map(|at| &self.entries[at].1)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Attr> {
        self.find(name).ok().map(|at| &mut self.entries[at].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets an attribute; the value it replaces, if any.
    pub fn insert(&mut self, name: impl Into<Name>, attr: Attr) -> Option<Attr> {
        let name = name.into();
        match self.find(&name) {
            Ok(at) => Some(std::mem::replace(&mut self.entries[at].1, attr)),
            Err(at) => {
                self.entries.insert(at, (name, attr));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<Attr> {
        self.find(name).ok().map(|at| self.entries.remove(at).1)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut Attr) -> bool) {
        self.entries.retain_mut(|(name, attr)| keep(name, attr));
    }

    /// The attributes in name order.
    pub fn iter(&self) -> Iter<'_> {
        self.entries.iter().map(|(name, attr)| (&**name, attr))
    }

    /// The names in order, as shared.
    pub fn names(&self) -> impl Iterator<Item = &Name> {
        self.entries.iter().map(|(name, _)| name)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| &**name)
    }

    pub fn values(&self) -> impl Iterator<Item = &Attr> {
        self.entries.iter().map(|(_, attr)| attr)
    }
}

pub type Iter<'a> =
    std::iter::Map<std::slice::Iter<'a, (Name, Attr)>, fn(&(Name, Attr)) -> (&str, &Attr)>;

impl<'a> IntoIterator for &'a Item {
    type Item = (&'a str, &'a Attr);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Item {
    type Item = (Name, Attr);
    type IntoIter = std::vec::IntoIter<(Name, Attr)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K: Into<Name>> FromIterator<(K, Attr)> for Item {
    fn from_iter<I: IntoIterator<Item = (K, Attr)>>(entries: I) -> Item {
        Item::from_entries(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl<K: Into<Name>> Extend<(K, Attr)> for Item {
    fn extend<I: IntoIterator<Item = (K, Attr)>>(&mut self, entries: I) {
        for (name, attr) in entries {
            self.insert(name, attr);
        }
    }
}

/// As a map prints (`{"pk": S("A#1"), …}`).
impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl std::ops::Index<&str> for Item {
    type Output = Attr;

    fn index(&self, name: &str) -> &Attr {
        self.get(name)
            .unwrap_or_else(|| panic!("item has no attribute {name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Names compare as strings do: empty ones, shared first bytes, and first bytes of
        /// characters of several bytes among them.
        #[test]
        fn names_compare_as_strings(a in "(?s).{0,3}|[aé😀_]{0,3}", b in "(?s).{0,3}|[aé😀_]{0,3}") {
            prop_assert_eq!(name_before(&a, &b), a < b);
        }
    }

    proptest! {
        /// Built at once, inserted one by one, or removed from: the item is the map a
        /// `BTreeMap` would be, in the same order.
        #[test]
        fn an_item_behaves_as_a_sorted_map(
            entries in proptest::collection::vec(("[a-d]{1,2}", 0u8..10), 0..12),
            removed in "[a-d]{1,2}",
        ) {
            let attr = |n: u8| Attr::N(n.to_string());
            let map: BTreeMap<String, Attr> =
                entries.iter().map(|(k, v)| (k.clone(), attr(*v))).collect();
            let built: Item = entries.iter().map(|(k, v)| (k.as_str(), attr(*v))).collect();
            let mut inserted = Item::new();
            for (k, v) in &entries {
                inserted.insert(k.as_str(), attr(*v));
            }
            let pairs = |item: &Item| -> Vec<(String, Attr)> {
                item.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
            };
            let expected: Vec<(String, Attr)> = map.clone().into_iter().collect();
            prop_assert_eq!(pairs(&built), expected.clone());
            prop_assert_eq!(pairs(&inserted), expected);
            prop_assert_eq!(built.len(), map.len());
            for (k, v) in &map {
                prop_assert_eq!(built.get(k), Some(v));
            }
            let mut map = map;
            prop_assert_eq!(inserted.remove(&removed), map.remove(&removed));
            prop_assert_eq!(inserted.contains_key(&removed), false);
            prop_assert_eq!(inserted.len(), map.len());
        }
    }
}
