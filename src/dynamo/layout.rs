//! Items encoded without hashing their attribute names: each thread keeps, per view, a map of
//! every attribute name the view's items had, its values blank, and clones it for each item.
//!
//! The SDK takes an item as a `HashMap<String, AttributeValue>` with the standard library's
//! SipHash, and inserting an item's dozen names into one hashes each: about a tenth of the CPU
//! path of `benches/cpu.rs` (callgrind, issue 13). A clone of a map copies its table as it is,
//! without hashing, and keeps the order its entries iterate in; so the clone's entries are filled
//! in that order from where each name sits in the item. The order is checked once per layout
//! (a clone that iterated otherwise would leave the layout unused); names the item lacks (a NULL
//! column) are removed from the clone. An item with a name the layout lacks is encoded plainly
//! and the layout remade with it: a view's layout grows to the names its items have, no further.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{encode_plain, to_attribute_value, types_value};
use super::{VERSION_ATTRIBUTE, VIEW_ATTRIBUTE};
use crate::view::project::{Item, Name};
use crate::view::value::Attr;

/// Layouts of at most this many names: once a view's items on a thread have had more between
/// them (layouts grow, never shrink), that view's items are encoded plainly on that thread.
const MAX_NAMES: usize = 64;
/// Layouts kept per thread: past it (views renamed by many reloads) all are dropped and remade.
const MAX_VIEWS: usize = 1024;
const VERSION_SLOT: usize = usize::MAX;
const VIEW_SLOT: usize = usize::MAX - 1;

thread_local! {
    static LAYOUTS: RefCell<Vec<Layout>> = const { RefCell::new(Vec::new()) };
}

/// The item as sent, through the thread's layout of `view` (the same map [`encode_plain`]
/// makes).
pub(super) fn encode(item: &Item, version: u128, view: &str) -> HashMap<String, AttributeValue> {
    LAYOUTS
        .try_with(|layouts| {
            let mut layouts = layouts.try_borrow_mut().ok()?;
            Some(encode_with(&mut layouts, item, version, view))
        })
        .ok()
        .flatten()
        // The thread's layouts being dropped (the thread ends): plainly.
        .unwrap_or_else(|| encode_plain(item, version, view))
}

fn encode_with(
    layouts: &mut Vec<Layout>,
    item: &Item,
    version: u128,
    view: &str,
) -> HashMap<String, AttributeValue> {
    let index = match layouts.iter().position(|layout| layout.view == view) {
        Some(index) => index,
        None => {
            if layouts.len() >= MAX_VIEWS {
                layouts.clear();
            }
            layouts.push(Layout::new(view, names_with(&[], item)));
            layouts.len() - 1
        }
    };
    if let Some(out) = layouts[index].encode(item, version, view) {
        return out;
    }
    // A name the layout lacks: remade with it (metadata names stay out of layouts: an item with
    // one goes plainly every time, as the version and view then overwrite it).
    let layout = &mut layouts[index];
    let names = names_with(&layout.names, item);
    if names.len() > layout.names.len() {
        *layout = Layout::new(view, names);
    }
    encode_plain(item, version, view)
}

/// `known` (sorted) and the item's names other than the metadata ones, sorted.
fn names_with(known: &[Name], item: &Item) -> Vec<Name> {
    let mut names: Vec<Name> = item
        .names()
        .filter(|name| ***name != *VERSION_ATTRIBUTE && ***name != *VIEW_ATTRIBUTE)
        .filter(|name| known.binary_search(name).is_err())
        .cloned()
        .collect();
    names.extend_from_slice(known);
    names.sort_unstable();
    names
}

/// The attribute names a view's items had on this thread, as a map to clone.
struct Layout {
    view: String,
    /// Sorted, as an item's names are; no metadata names. The item's own (shared with its
    /// view's spec), so that a name is most often found by its address.
    names: Vec<Name>,
    /// `names` and the metadata attributes, every value NULL; `None` when there are too many
    /// names or a clone does not iterate in the same order (then items are encoded plainly).
    blank: Option<HashMap<String, AttributeValue>>,
    /// For each entry of `blank` in iteration order: its index in `names`, or a metadata slot.
    slots: Vec<usize>,
}

impl Layout {
    fn new(view: &str, names: Vec<Name>) -> Layout {
        let mut layout = Layout {
            view: view.to_owned(),
            names,
            blank: None,
            slots: Vec::new(),
        };
        if layout.names.len() > MAX_NAMES {
            return layout;
        }
        let mut blank = HashMap::with_capacity(layout.names.len() + 2);
        for name in layout
            .names
            .iter()
            .map(|name| &**name)
            .chain([VERSION_ATTRIBUTE, VIEW_ATTRIBUTE])
        {
            blank.insert(name.to_owned(), AttributeValue::Null(true));
        }
        let slots: Option<Vec<usize>> = blank
            .keys()
            .map(|name| match name.as_str() {
                VERSION_ATTRIBUTE => Some(VERSION_SLOT),
                VIEW_ATTRIBUTE => Some(VIEW_SLOT),
                name => layout
                    .names
                    .binary_search_by(|known| (**known).cmp(name))
                    .ok(),
            })
            .collect();
        // Every key is one of `names` or a metadata name, and a clone iterates in the same
        // order; where either were not so, the layout would stay unused.
        if let Some(slots) = slots.filter(|_| blank.clone().keys().eq(blank.keys())) {
            layout.slots = slots;
            layout.blank = Some(blank);
        }
        layout
    }

    /// `None` when the item has a name this layout lacks.
    fn encode(
        &self,
        item: &Item,
        version: u128,
        view: &str,
    ) -> Option<HashMap<String, AttributeValue>> {
        let Some(blank) = &self.blank else {
            return Some(encode_plain(item, version, view));
        };
        // Where each of the item's values sits among the layout's names (both are in order).
        let mut values: [Option<&Attr>; MAX_NAMES] = [None; MAX_NAMES];
        let mut next = 0;
        for (name, attr) in item {
            loop {
                let known = self.names.get(next)?;
                next += 1;
                if std::ptr::eq(&**known, name) {
                    break; // the same shared name
                }
                match (**known).cmp(name) {
                    Ordering::Less => continue,
                    Ordering::Equal => break,
                    Ordering::Greater => return None,
                }
            }
            values[next - 1] = Some(attr);
        }
        let mut out = blank.clone();
        for (value, &slot) in out.values_mut().zip(&self.slots) {
            *value = match slot {
                VERSION_SLOT => types_value(version),
                VIEW_SLOT => AttributeValue::S(view.to_owned()),
                index => match values[index] {
                    Some(attr) => to_attribute_value(attr),
                    None => continue, // removed below
                },
            };
        }
        if item.len() < self.names.len() {
            for (name, value) in self.names.iter().zip(values) {
                if value.is_none() {
                    out.remove(&**name);
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn attr() -> impl Strategy<Value = Attr> {
        prop_oneof![
            "[a-z]{0,6}".prop_map(Attr::S),
            (0u32..1000).prop_map(|n| Attr::N(n.to_string())),
            any::<bool>().prop_map(Attr::Bool),
            Just(Attr::Null),
            prop::collection::vec("[a-z]{1,3}", 1..3).prop_map(|items: Vec<String>| Attr::Ss(
                items.into_iter().map(Into::into).collect()
            )),
        ]
    }

    /// Items of one view drawn from a pool of names (a few metadata-named), so that the layout
    /// is made, hit, missed and grown, and names go missing.
    fn items() -> impl Strategy<Value = Vec<(Item, u128)>> {
        let name = prop_oneof![
            8 => "[a-h]".prop_map(String::from),
            1 => Just(VERSION_ATTRIBUTE.to_string()),
            1 => Just(VIEW_ATTRIBUTE.to_string()),
        ];
        let item = prop::collection::btree_map(name, attr(), 0..10).prop_map(Item::from_iter);
        prop::collection::vec((item, any::<u128>()), 1..40)
    }

    proptest! {
        /// Every item encodes to the map the plain encoding makes, whatever came before it.
        #[test]
        fn encodes_as_the_plain_encoding(items in items(), views in 1usize..3) {
            let mut layouts = Vec::new();
            for (i, (item, version)) in items.iter().enumerate() {
                let view = format!("view{}", i % views);
                prop_assert_eq!(
                    encode_with(&mut layouts, item, *version, &view),
                    encode_plain(item, *version, &view)
                );
            }
        }
    }

    fn item(names: &[&str]) -> Item {
        names
            .iter()
            .map(|name| (name.to_string(), Attr::S(format!("value of {name}"))))
            .collect()
    }

    /// A view's first item makes its layout; the next go through it (a clone of the blank
    /// map), also with a name missing; a new name remakes the layout with both.
    #[test]
    fn a_view_s_items_go_through_its_layout() {
        let mut layouts = Vec::new();
        let first = item(&["pk", "sk", "total"]);
        encode_with(&mut layouts, &first, 7, "orders");
        assert_eq!(
            layouts[0].names.iter().map(|n| &**n).collect::<Vec<_>>(),
            ["pk", "sk", "total"]
        );
        let layout = &layouts[0];
        assert!(
            layout.blank.is_some(),
            "a clone iterates as the map it was cloned from"
        );
        assert_eq!(
            layout.encode(&first, 7, "orders"),
            Some(encode_plain(&first, 7, "orders"))
        );
        let fewer = item(&["pk", "total"]);
        assert_eq!(
            layout.encode(&fewer, 8, "orders"),
            Some(encode_plain(&fewer, 8, "orders"))
        );
        let more = item(&["note", "pk", "total"]);
        assert_eq!(layout.encode(&more, 9, "orders"), None);
        encode_with(&mut layouts, &more, 9, "orders");
        assert_eq!(
            layouts[0].names.iter().map(|n| &**n).collect::<Vec<_>>(),
            ["note", "pk", "sk", "total"]
        );
    }

    /// More names than a layout holds: items are encoded plainly, and the layout stays.
    #[test]
    fn a_view_with_too_many_names_is_encoded_plainly() {
        let names: Vec<String> = (0..=MAX_NAMES).map(|i| format!("a{i:03}")).collect();
        let wide = item(&names.iter().map(String::as_str).collect::<Vec<_>>());
        let mut layouts = Vec::new();
        for version in 0..3 {
            assert_eq!(
                encode_with(&mut layouts, &wide, version, "wide"),
                encode_plain(&wide, version, "wide")
            );
        }
        assert_eq!(layouts.len(), 1);
        assert!(layouts[0].blank.is_none());
    }
}
