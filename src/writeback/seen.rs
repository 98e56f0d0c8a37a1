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
use std::hash::{Hash, Hasher};

use super::inverse::Image;
use crate::dynamo::VERSION_ATTRIBUTE;
use crate::verify::digest::{encode_value, item_hash};
use crate::view::project::Item;
use crate::view::spec::{JoinKind, View};
use crate::view::value::Attr;
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
    // A NULL attribute (what some mappers write for a null) is a NULL column: no attribute.
    let seen_value = |name: &str| seen.get(name).filter(|a| !matches!(a, Attr::Null));
    let same = |name: &str| match (made.get(name), seen_value(name)) {
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

/// How many items' last states [`Left`] keeps (about 80 bytes each, at most about 5 MB).
pub const LEFT_CAPACITY: usize = 65_536;

/// What write-back's own last statements left in the rows they changed, by item: the hash of
/// the item the row made just after (see the module's notes). Bounded: the item noted least
/// recently goes first. Items are known by a hash of their key: two keys of one hash can only
/// make a delete refused (the item's hash holds its key attributes too). In memory, per
/// stream consumer: after a restart of rowcast or of the consumer, a delete read right after
/// its change may be refused.
#[derive(Debug, Default)]
pub struct Left {
    /// Per item: the hash of what it made, and the note's number.
    by_item: HashMap<u64, (u128, u64)>,
    /// Notes, the oldest first; one whose number is not its item's any more is a stale entry.
    order: VecDeque<(u64, u64)>,
    notes: u64,
}

impl Left {
    /// Notes that `item` made `made` after write-back's statement.
    pub fn note(&mut self, item: &str, made: &Item) {
        let key = key_hash(item);
        self.notes += 1;
        self.by_item.insert(key, (item_hash(made), self.notes));
        self.order.push_back((key, self.notes));
        if self.order.len() > 2 * LEFT_CAPACITY {
            // Stale entries out (once per `LEFT_CAPACITY` notes at most).
            let by_item = &self.by_item;
            (self.order).retain(|(key, number)| by_item.get(key).is_some_and(|(_, n)| n == number));
        }
        while self.by_item.len() > LEFT_CAPACITY {
            let Some((oldest, number)) = self.order.pop_front() else {
                break;
            };
            if self.by_item.get(&oldest).is_some_and(|(_, n)| *n == number) {
                self.by_item.remove(&oldest);
            }
        }
    }

    /// Whether `made` is what write-back's last statement left behind `item`.
    pub fn is_left(&self, item: &str, made: &Item) -> bool {
        (self.by_item.get(&key_hash(item))).is_some_and(|(hash, _)| *hash == item_hash(made))
    }
}

fn key_hash(item: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    item.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // A NULL attribute is a NULL column.
        let mut null = seen.clone();
        null.insert("note".into(), Attr::Null);
        assert_eq!(differing(&view, &row, &null), None);
    }

    #[test]
    fn what_write_back_left_is_kept_for_a_bounded_number_of_items() {
        let mut left = Left::default();
        let first = made(&[("pk", s("ACC#1")), ("note", s("a"))]);
        let later = made(&[("pk", s("ACC#1")), ("note", s("b"))]);
        left.note("t[ACC#1]", &first);
        assert!(left.is_left("t[ACC#1]", &first));
        assert!(!left.is_left("t[ACC#1]", &later));
        assert!(!left.is_left("t[ACC#2]", &first));
        left.note("t[ACC#2]", &first);
        left.note("t[ACC#1]", &later);
        assert!(left.is_left("t[ACC#1]", &later));
        // Noted again, ACC#1 is the latest: ACC#2 goes first.
        for n in 0..LEFT_CAPACITY - 1 {
            left.note(&format!("t[X#{n}]"), &first);
        }
        assert!(
            !left.is_left("t[ACC#2]", &first),
            "the least recent goes first"
        );
        assert!(left.is_left("t[ACC#1]", &later));
        assert_eq!(left.by_item.len(), LEFT_CAPACITY);
        // One item noted again and again: the notes stay bounded.
        for _ in 0..3 * LEFT_CAPACITY {
            left.note("t[ACC#1]", &first);
        }
        assert!(left.order.len() <= 2 * LEFT_CAPACITY);
        assert!(left.is_left("t[ACC#1]", &first));
        assert!(left.is_left(&format!("t[X#{}]", LEFT_CAPACITY - 2), &first));
    }
}
