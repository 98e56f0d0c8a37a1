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
use crate::verify::digest::{encode_value, item_hash, pairs_hash};
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

/// How many items' last states [`Left`] keeps (about 80 bytes each, at most about 5 MB), and
/// how many rejected changes [`Rejected`] keeps (about 100 bytes each).
pub const LEFT_CAPACITY: usize = 65_536;

/// A value per item for the items noted most recently, [`LEFT_CAPACITY`] at most: the item
/// noted least recently goes first. Items are known by a hash of their key: two keys of one
/// hash can only make a delete refused (what is kept holds the key attributes too). In
/// memory, per stream consumer.
#[derive(Debug)]
struct Recent<V> {
    /// Per item: its value, and the note's number.
    by_item: HashMap<u64, (V, u64)>,
    /// Notes, the oldest first; one whose number is not its item's any more is a stale entry.
    order: VecDeque<(u64, u64)>,
    notes: u64,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Recent {
            by_item: HashMap::new(),
            order: VecDeque::new(),
            notes: 0,
        }
    }
}

impl<V> Recent<V> {
    fn note(&mut self, item: &str, value: V) {
        let key = key_hash(item);
        self.notes += 1;
        self.by_item.insert(key, (value, self.notes));
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

    fn get(&self, item: &str) -> Option<&V> {
        self.by_item.get(&key_hash(item)).map(|(value, _)| value)
    }
}

/// What write-back's own last statements left in the rows they changed, by item: the hash of
/// the item the row made just after (see the module's notes). After a restart of rowcast or
/// of the consumer, a delete read right after its change may be refused.
#[derive(Debug, Default)]
pub struct Left(Recent<u128>);

impl Left {
    /// Notes that `item` made `made` after write-back's statement.
    pub fn note(&mut self, item: &str, made: &Item) {
        self.0.note(item, item_hash(made));
    }

    /// Whether `made` is what write-back's last statement left behind `item`.
    pub fn is_left(&self, item: &str, made: &Item) -> bool {
        self.0.get(item) == Some(&item_hash(made))
    }
}

/// An application's changes of items rowcast wrote that write-back rejected, by item: the
/// item the change left, whole (metadata included), and what the item showed before the change
/// ([`shown`]). The application's DeleteItem of such an item, read before the item was
/// restored, carries the rejected change, which the row never had: the delete may remove the
/// row while it makes what the item showed before that change (the application's own rejected
/// change is not a change of SQL's it never saw). Only a delete of exactly the item the change
/// left: any later write of rowcast's moves `_version` or `_restored`, so an item that shows the
/// same values again later is not taken for it (found by a review of the mend). Before
/// 2026-12-07's seventh stop such a delete was refused (`tests/writeback_safety.rs`, seen
/// failing). In memory, as [`Left`]: after a restart such a delete is refused again.
#[derive(Debug, Default)]
pub struct Rejected(Recent<(u128, u128)>);

impl Rejected {
    /// Notes a rejected change of `item` from `old` to `new`; only of an item rowcast wrote. A
    /// change rejected after another one of the item (its `old` is what the other left) keeps
    /// what the item showed before the first: the state SQL had.
    pub fn note(&mut self, view: &View, item: &str, old: &Image, new: &Image) {
        if !old.contains_key(VERSION_ATTRIBUTE) {
            return;
        }
        let before = match self.0.get(item) {
            Some((left, before)) if *left == whole(old) => *before,
            _ => shown_image(view, old),
        };
        self.0.note(item, (whole(new), before));
    }

    /// Whether the row making `made` may be deleted for the application's delete of `item`
    /// that showed `seen`: `seen` is exactly the item a rejected change left, and `made` what
    /// the item showed before that change.
    pub fn excuses(&self, view: &View, item: &str, seen: &Image, made: &Item) -> bool {
        self.0.get(item).is_some_and(|(left, before)| {
            whole(seen) == *left && shown(view, made.iter()) == *before
        })
    }
}

fn shown_image(view: &View, image: &Image) -> u128 {
    shown(view, image.iter().map(|(name, attr)| (name.as_str(), attr)))
}

/// A hash of an image whole, metadata included (NULLs left out, values canonical).
fn whole(image: &Image) -> u128 {
    let pairs = image.iter().map(|(name, attr)| (name.as_str(), attr));
    pairs_hash(pairs.filter(|(_, attr)| !matches!(attr, Attr::Null)))
}

/// A hash of what an item shows as [`differing`] compares it: its attributes in name order,
/// values canonical, metadata, joined attributes and NULLs left out.
fn shown<'a>(view: &View, pairs: impl IntoIterator<Item = (&'a str, &'a Attr)>) -> u128 {
    let joined = joined_names(view);
    pairs_hash(pairs.into_iter().filter(|(name, value)| {
        !name.starts_with('_') && !joined.contains(name) && !matches!(value, Attr::Null)
    }))
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

    /// A delete of exactly the item an application's rejected change left may remove a row that
    /// makes what the item showed before that change; nothing else is excused.
    #[test]
    fn a_rejected_change_excuses_a_delete_of_what_it_left_only() {
        let spec = "name = \"v\"\ntable = \"views\"\nsource = \"db.t\"\n[key]\npk = \"ACC#{id}\"\n";
        let view = crate::config::compile_view(std::path::Path::new("v.toml"), spec).unwrap();
        let item = |status: &str, v: &str| {
            image(&[
                ("pk", s("ACC#1")),
                ("status", s(status)),
                ("_version", Attr::N(v.into())),
            ])
        };
        let (before, after) = (item("open", "7"), item("bogus", "7"));
        let mut rejected = Rejected::default();
        rejected.note(&view, "t[ACC#1]", &before, &after);
        let row = made(&[("pk", s("ACC#1")), ("status", s("open"))]);
        let excuses =
            |item: &str, seen: &Image, made: &Item| rejected.excuses(&view, item, seen, made);
        assert!(excuses("t[ACC#1]", &after, &row));
        // The row changed since (SQL's change the application never saw): not excused.
        let moved = made(&[("pk", s("ACC#1")), ("status", s("frozen"))]);
        assert!(!excuses("t[ACC#1]", &after, &moved));
        // A delete of another state of the item, of the same values written again later by
        // rowcast (another version) or restored (a mark), or of another item: no excuse.
        assert!(!excuses("t[ACC#1]", &before, &row));
        assert!(!excuses("t[ACC#1]", &item("bogus", "8"), &row));
        let mut restored = after.clone();
        restored.insert("_restored".into(), Attr::N("1".into()));
        assert!(!excuses("t[ACC#1]", &restored, &row));
        assert!(!excuses("t[ACC#2]", &after, &row));
        // A second rejected change on top of the first keeps the state before the first.
        let again = item("bogus2", "7");
        rejected.note(&view, "t[ACC#1]", &after, &again);
        assert!(rejected.excuses(&view, "t[ACC#1]", &again, &row));
        // Of an item rowcast never wrote nothing is noted.
        let unwritten = image(&[("pk", s("ACC#3")), ("status", s("open"))]);
        rejected.note(&view, "t[ACC#3]", &unwritten, &after);
        assert!(!rejected.excuses(&view, "t[ACC#3]", &after, &row));
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
        assert_eq!(left.0.by_item.len(), LEFT_CAPACITY);
        // One item noted again and again: the notes stay bounded.
        for _ in 0..3 * LEFT_CAPACITY {
            left.note("t[ACC#1]", &first);
        }
        assert!(left.0.order.len() <= 2 * LEFT_CAPACITY);
        assert!(left.is_left("t[ACC#1]", &first));
        assert!(left.is_left(&format!("t[X#{}]", LEFT_CAPACITY - 2), &first));
    }
}
