//! Whether the row behind an item is still the one an application's DeleteItem removed, pure.
//!
//! A stream record of a removal carries the item as the application last saw it (its old
//! image), and nothing else: SQL may have deleted the row and inserted another under the same
//! key, or changed it, before the consumer reads the record. An application's delete removes
//! the row only while the row still makes what the deleted item showed ([`differing`]), or
//! what write-back's own last statement on that row left in it ([`Left`]: a change of the
//! application read just before its delete, which the server completed with values the item
//! never showed — a timestamp `ON UPDATE`, a rounded DECIMAL, a trigger's column). Otherwise
//! the delete is rejected (a dead letter) and the item follows SQL again: refusing a delete
//! loses nothing that cannot be asked again; deleting a row the application never saw loses
//! the row.
//!
//! Compared: the attributes the row makes (key, attributes, index keys), values by what
//! DynamoDB keeps (`1.50` is `1.5`); metadata (`_…`) and joined attributes (read from other
//! tables) are left out. An item rowcast never wrote (no `_version`: an application's new
//! item deleted before its insert came back) is compared on the attributes it has.

use std::collections::{HashMap, VecDeque};

use super::inverse::Image;
use crate::dynamo::VERSION_ATTRIBUTE;
use crate::verify::digest::{encode_value, item_hash};
use crate::view::project::Item;
use crate::view::spec::{JoinKind, View};
use crate::view::{project_snapshot, ItemOp, Row};

/// The item `row` makes through `view`, joins aside; `None` when it makes none.
pub fn made_by(view: &View, row: &Row) -> Option<Item> {
    let projection = project_snapshot(view, row, None).ok()?;
    projection.ops.into_iter().find_map(|op| match op {
        ItemOp::Put { item, .. } => Some(item),
        ItemOp::Delete { .. } => None,
    })
}

/// The first attribute whose value differs between the item the row makes now (`made`) and
/// the deleted item (`seen`), or that one of them lacks; `None` when they agree.
pub fn differing(view: &View, made: &Item, seen: &Image) -> Option<String> {
    let joined = joined_names(view);
    let compared = |name: &str| !name.starts_with('_') && !joined.contains(&name);
    let written = seen.contains_key(VERSION_ATTRIBUTE);
    let same = |name: &str| match (made.get(name), seen.get(name)) {
        (Some(a), Some(b)) => encode_value(a) == encode_value(b),
        (None, None) => true,
        // An item rowcast never wrote holds what the application put: the row may add more.
        (Some(_), None) => !written,
        (None, Some(_)) => false,
    };
    let names = seen.keys().map(String::as_str);
    let names = names.chain(made.keys().filter(|_| written));
    names
        .filter(|name| compared(name))
        .find(|name| !same(name))
        .map(str::to_string)
}

/// Names a view's joins write (lookups' attributes, embedded lists, aggregates).
fn joined_names(view: &View) -> Vec<&str> {
    let mut names = Vec::new();
    for join in &view.joins {
        match &join.kind {
            JoinKind::Lookup { attributes } => names.extend(attributes.iter().map(|a| &*a.name)),
            JoinKind::Embed { attribute, .. } | JoinKind::Aggregate { attribute, .. } => {
                names.push(attribute.as_str())
            }
        }
    }
    names
}

/// How many items' last states [`Left`] keeps: a key (at most about 2 KB) and a hash each.
pub const LEFT_CAPACITY: usize = 4096;

/// What write-back's own last statement left in the rows it changed, by item: the hash of the
/// item the row made just after it (see the module's notes). Bounded: the oldest entries go
/// first. In memory: after a restart a delete read right after its change may be rejected.
#[derive(Debug, Default)]
pub struct Left {
    by_item: HashMap<String, u128>,
    order: VecDeque<String>,
}

impl Left {
    /// Notes that `item` made `made` after write-back's statement.
    pub fn note(&mut self, item: String, made: &Item) {
        let hash = item_hash(made);
        if self.by_item.insert(item.clone(), hash).is_none() {
            self.order.push_back(item);
        }
        while self.order.len() > LEFT_CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.by_item.remove(&oldest);
            }
        }
    }

    /// Whether `made` is what write-back's last statement left behind `item`.
    pub fn is_left(&self, item: &str, made: &Item) -> bool {
        self.by_item.get(item) == Some(&item_hash(made))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::value::Attr;

    fn s(text: &str) -> Attr {
        Attr::S(text.into())
    }

    fn made(pairs: &[(&str, Attr)]) -> Item {
        Item::from_entries(
            pairs
                .iter()
                .map(|(n, a)| ((*n).into(), a.clone()))
                .collect(),
        )
    }

    fn image(pairs: &[(&str, Attr)]) -> Image {
        pairs
            .iter()
            .map(|(n, a)| ((*n).to_string(), a.clone()))
            .collect()
    }

    #[test]
    fn a_row_is_the_deleted_items_while_every_attribute_it_makes_agrees() {
        let spec = "name = \"v\"\ntable = \"views\"\nsource = \"db.t\"\n[key]\npk = \"ACC#{id}\"\n\n[[lookup]]\nfrom = \"db.c\"\non = { id = \"c_id\" }\nattributes = { owner = \"name\" }\n";
        let view = crate::config::compile_view(std::path::Path::new("v.toml"), spec).unwrap();
        let row = made(&[
            ("pk", s("ACC#1")),
            ("status", s("open")),
            ("n", Attr::N("1.50".into())),
        ]);
        let version = ("_version", Attr::N("7".into()));
        // DynamoDB keeps numbers by value; metadata is not compared.
        let seen = image(&[
            ("pk", s("ACC#1")),
            ("status", s("open")),
            ("n", Attr::N("1.5".into())),
            version.clone(),
            ("_view", s("v")),
        ]);
        assert_eq!(differing(&view, &row, &seen), None);
        // Joined attributes are read from other tables: not the row's.
        let mut joined = seen.clone();
        joined.insert("owner".into(), s("someone"));
        assert_eq!(differing(&view, &row, &joined), None);
        // A value changed, one gone (a column now NULL), one new (a column no longer NULL).
        let changed = image(&[
            ("pk", s("ACC#1")),
            ("status", s("closed")),
            ("n", Attr::N("1.5".into())),
            version.clone(),
        ]);
        assert_eq!(differing(&view, &row, &changed).as_deref(), Some("status"));
        let gone = made(&[("pk", s("ACC#1")), ("status", s("open"))]);
        assert_eq!(differing(&view, &gone, &seen).as_deref(), Some("n"));
        let fewer = image(&[("pk", s("ACC#1")), ("status", s("open")), version]);
        assert_eq!(differing(&view, &row, &fewer).as_deref(), Some("n"));
        // An item rowcast never wrote: only what it has is compared.
        let put = image(&[("pk", s("ACC#1")), ("status", s("open"))]);
        assert_eq!(differing(&view, &row, &put), None);
        let other = image(&[("pk", s("ACC#1")), ("status", s("frozen"))]);
        assert_eq!(differing(&view, &row, &other).as_deref(), Some("status"));
    }

    #[test]
    fn what_write_back_left_is_kept_for_a_bounded_number_of_items() {
        let mut left = Left::default();
        let first = made(&[("pk", s("ACC#1")), ("note", s("a"))]);
        let later = made(&[("pk", s("ACC#1")), ("note", s("b"))]);
        left.note("t[ACC#1]".into(), &first);
        assert!(left.is_left("t[ACC#1]", &first));
        assert!(!left.is_left("t[ACC#1]", &later));
        assert!(!left.is_left("t[ACC#2]", &first));
        left.note("t[ACC#1]".into(), &later);
        assert!(left.is_left("t[ACC#1]", &later));
        for n in 0..LEFT_CAPACITY {
            left.note(format!("t[X#{n}]"), &first);
        }
        assert!(
            !left.is_left("t[ACC#1]", &later),
            "the oldest entry goes first"
        );
        assert!(left.is_left(&format!("t[X#{}]", LEFT_CAPACITY - 1), &first));
        assert_eq!(left.by_item.len(), LEFT_CAPACITY);
        assert_eq!(left.order.len(), LEFT_CAPACITY);
    }
}
