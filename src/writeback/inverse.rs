//! The inverse mapping, pure: a stream record of a write-back view's item → what to do in SQL.
//!
//! Whose change is it, decided only from what rowcast itself wrote into the record:
//! - a put or update whose new image carries a `_version` newer than the old image's is
//!   rowcast's own (rowcast writes a new version on every write; an application's UpdateItem
//!   keeps it, and an application's PutItem carries none or copies it); so is one whose new
//!   image carries a new `_restored` mark (an item rewritten from SQL at the version it held,
//!   after write-back rejected an application's change of it); either only where the new
//!   image's `_origin` binds that version to the record's key (a copy of another item brings
//!   that item's, which does not);
//! - a removal whose old image carries `_removing` is rowcast's own: before rowcast deletes an
//!   item of a write-back view it marks the item (see `sink/writer.rs`), and the removal record
//!   carries the mark. A removal by the TTL service principal is skipped. Any other removal is
//!   an application's DeleteItem. The row's present state never decides whose a record is.
//!
//! An application's change maps back through the view: the key attributes parse into key
//! columns through the templates, and only the attributes listed in `writeback.attributes` map
//! to their columns, converted back by the VIEWS.md value table (`values.rs`) and validated
//! against the column's type. A record that sets or changes any other attribute, an attribute
//! whose column is a key column, or an attribute that does not convert, is rejected as a whole:
//! nothing of it reaches SQL.

use std::collections::BTreeMap;

use mysql_async::Value;

use crate::dynamo::{ORIGIN_ATTRIBUTE, REMOVAL_ATTRIBUTE, RESTORED_ATTRIBUTE, VERSION_ATTRIBUTE};
use crate::sql::values::{to_sql, typed_key};
use crate::view::row::{ColumnKind, TableSchema};
use crate::view::spec::View;
use crate::view::value::Attr;
use crate::view::{key_readings, ItemKey};

pub type Image = BTreeMap<String, Attr>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

/// A stream record in rowcast's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamChange {
    pub kind: ChangeKind,
    pub keys: Image,
    pub old: Option<Image>,
    pub new: Option<Image>,
    /// Removed by DynamoDB's TTL (the service principal).
    pub ttl: bool,
    pub sequence: String,
    /// When DynamoDB wrote the record (seconds since the epoch, rounded down), if it says.
    pub created_s: Option<i64>,
}

/// What a record becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// rowcast's own write or removal.
    Own,
    Ttl,
    /// Nothing writable changed (metadata only).
    Unchanged,
    Reject(String),
    /// A new item: a plain INSERT of the key columns and `set`. `written` holds the writable
    /// attributes as the item has them, to recognise a replay of this very insert.
    /// `or_update`: the application put it over an item rowcast never wrote; when a row makes
    /// the item after all, that row is updated instead.
    Insert {
        set: Vec<(String, Value)>,
        written: Image,
        or_update: bool,
    },
    /// UPDATE of the row behind the item, if a row still makes that very item.
    Update {
        set: Vec<(String, Value)>,
    },
    /// DELETE of the row behind the item, if a row still makes that very item and makes what
    /// the deleted item showed (`seen`, its old image; see `seen.rs`).
    Delete {
        seen: Image,
    },
}

/// The key columns parsed back from an item's key attributes; `None` when the key is not one
/// of this view's (see [`crate::view::key_values`]).
pub fn key_columns(view: &View, keys: &Image) -> Option<Vec<(String, String)>> {
    let (pk, sk) = key_texts(view, keys)?;
    crate::view::key_values(view, pk, sk)
}

/// The item's partition and sort key texts under the view's key attribute names; `None` when
/// one is missing or not a string.
fn key_texts<'a>(view: &View, keys: &'a Image) -> Option<(&'a str, Option<&'a str>)> {
    let text = |name: &str| match keys.get(name) {
        Some(Attr::S(value)) => Some(value.as_str()),
        _ => None,
    };
    let pk = text(&view.key.pk_attribute)?;
    let sk = match &view.key.sk_attribute {
        Some(name) => Some(text(name)?),
        None => None,
    };
    Some((pk, sk))
}

/// A reading of the item's key other than the shortest, when only such one parses: a value
/// holding the template's separator with a formatted placeholder after it
/// (`ORD#{region}#{id:08}` of region `eu#west`: the shortest reading leaves `west#00000001` to
/// the padded id). The first without an empty value; `None` when none parses. Taken only for
/// an item that names its view (`record.rs`): it parses application keys too. Before 2026-12-06's
/// seventh stop such an item was taken for another view's, and the application's change to it
/// was skipped as `other-view` (found by a review; `tests/writeback_safety.rs`, seen failing).
pub fn longer_reading(view: &View, keys: &Image) -> Option<Vec<(String, String)>> {
    let text = |name: &str| match keys.get(name) {
        Some(Attr::S(value)) => Some(value.clone()),
        _ => None,
    };
    let key = ItemKey {
        table: view.table.clone(),
        pk_attribute: view.key.pk_attribute.clone(),
        pk: text(&view.key.pk_attribute)?,
        sk_attribute: view.key.sk_attribute.clone(),
        sk: view.key.sk_attribute.as_deref().and_then(text),
    };
    key_readings(view, &key)?
        .into_iter()
        .find(|columns| columns.iter().all(|(_, value)| !value.is_empty()))
}

/// Every reading of an item's key whose values their columns can hold, `shortest` (what
/// [`key_columns`] read) first when it is. A UUID or an address holds the separators a template
/// may put after it (`{uid}-{n}`, `{ip}:{port}`), where the shortest reading ends it too early;
/// a text value may hold one too (`T#{tenant}#{user}` of tenant `acme#eu`): the row behind the
/// item may be under any of them. None: no reading is typed (another item's key).
pub fn typed_readings(
    view: &View,
    table: &TableSchema,
    keys: &Image,
    shortest: Vec<(String, String)>,
) -> Vec<Vec<(String, String)>> {
    let mut typed = Vec::new();
    if typed_key(table, &shortest) {
        typed.push(shortest);
    }
    let text = |name: &str| match keys.get(name) {
        Some(Attr::S(text)) => Some(text.clone()),
        _ => None,
    };
    let Some(pk) = text(&view.key.pk_attribute) else {
        return typed;
    };
    let key = ItemKey {
        table: view.table.clone(),
        pk_attribute: view.key.pk_attribute.clone(),
        pk,
        sk_attribute: view.key.sk_attribute.clone(),
        sk: view.key.sk_attribute.as_deref().and_then(text),
    };
    for columns in key_readings(view, &key).unwrap_or_default() {
        if typed_key(table, &columns) && !typed.contains(&columns) {
            typed.push(columns);
        }
    }
    typed
}

fn metadata<'a>(image: Option<&'a Image>, name: &str) -> Option<&'a Attr> {
    image.and_then(|i| i.get(name))
}

/// A number attribute's value (versions and marks are whole numbers).
fn number(attr: Option<&Attr>) -> Option<u128> {
    match attr {
        Some(Attr::N(text)) => text.parse().ok(),
        _ => None,
    }
}

/// The new image carries a newer value of a metadata number than the old one. rowcast only
/// ever moves its versions and marks forward; an application that copies an older value into
/// its write does not make that write rowcast's.
fn advanced(change: &StreamChange, name: &str) -> bool {
    let Some(new) = number(metadata(change.new.as_ref(), name)) else {
        return false;
    };
    number(metadata(change.old.as_ref(), name)).is_none_or(|old| new > old)
}

/// The attributes an application may not set: keys and metadata are not values.
fn is_value_attribute(view: &View, name: &str) -> bool {
    !name.starts_with('_') && !view.is_key_attribute(name)
}

fn is_key_column(view: &View, column: &str) -> bool {
    let mut templates = std::iter::once(&view.key.pk).chain(view.key.sk.as_ref());
    // Without case: `ID` is key column `id` (MariaDB names columns so).
    templates.any(|t| {
        t.columns()
            .any(|c| crate::view::row::same_column_name(c, column))
    })
}

/// A mark (`_restored`, `_removing`) is rowcast's only on a write that kept or moved the
/// item's version forward, as a restore and a removal's mark do (both conditional on it). An
/// application's copy of an item read after a restore carries that mark; put back after rowcast
/// wrote the item again (the item then has no mark), the mark looks new but the version goes
/// back. Before 2026-12-06's eighth stop such a copy was taken for rowcast's and its change
/// never reached SQL (`tests/writeback_safety.rs`, seen failing).
/// rowcast's mark before it removes an item it never wrote (a rejected new item) sets no version
/// on an item without one, and nothing but the mark: kept too, for that update alone (an
/// application's copy of such a marked item, put back after its removal, is an insert: the
/// application's).
fn version_kept(change: &StreamChange) -> bool {
    let version = |image: Option<&Image>| number(metadata(image, VERSION_ATTRIBUTE));
    match (version(change.new.as_ref()), version(change.old.as_ref())) {
        (Some(new), old) => old.is_none_or(|old| new >= old),
        (None, None) => change.kind == ChangeKind::Modify && only_marked(change),
        (None, Some(_)) => false,
    }
}

/// The new image is the old one with a `_removing` mark set, nothing else changed.
fn only_marked(change: &StreamChange) -> bool {
    let (Some(old), Some(new)) = (&change.old, &change.new) else {
        return false;
    };
    let unmarked = |image: &Image| {
        image
            .iter()
            .filter(|(name, _)| name.as_str() != REMOVAL_ATTRIBUTE)
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect::<Image>()
    };
    new.contains_key(REMOVAL_ATTRIBUTE) && unmarked(old) == unmarked(new)
}

/// The new image's `_origin` is the one rowcast writes for the record's key at the new image's
/// version (`dynamo::origin`), or the image has none of the two. An application's copy of
/// another item under this key carries that item's version and origin, which do not match this
/// key: the write is the application's, though its version looks new (before 2026-12-07's
/// seventh stop it was taken for rowcast's and never reached SQL; `tests/writeback_safety.rs`,
/// seen failing). An item rowcast wrote before it wrote origins has none: its copies are still
/// taken for rowcast's (Known limitations).
fn origin_holds(view: &View, change: &StreamChange) -> bool {
    let Some(new) = change.new.as_ref() else {
        return true;
    };
    let (Some(origin), Some(version)) = (
        new.get(ORIGIN_ATTRIBUTE),
        number(new.get(VERSION_ATTRIBUTE)),
    ) else {
        return !new.contains_key(ORIGIN_ATTRIBUTE) || !new.contains_key(VERSION_ATTRIBUTE);
    };
    let Some((pk, sk)) = key_texts(view, &change.keys) else {
        return false;
    };
    let expected = number(Some(&crate::dynamo::origin(pk, sk, version)));
    number(Some(origin)).is_some_and(|origin| Some(origin) == expected)
}

pub fn decide(view: &View, table: &TableSchema, change: &StreamChange) -> Decision {
    let own = origin_holds(view, change)
        && (advanced(change, VERSION_ATTRIBUTE)
            || ([RESTORED_ATTRIBUTE, REMOVAL_ATTRIBUTE]
                .iter()
                .any(|name| advanced(change, name))
                && version_kept(change)));
    if change.kind == ChangeKind::Insert {
        return if own {
            Decision::Own
        } else {
            decide_values(view, table, change, true)
        };
    }
    let Some(old) = change.old.as_ref() else {
        return Decision::Reject(
            "the record carries no old image: the table's stream must be NEW_AND_OLD_IMAGES".into(),
        );
    };
    if change.kind == ChangeKind::Remove {
        return if change.ttl {
            Decision::Ttl
        } else if old.contains_key(REMOVAL_ATTRIBUTE) {
            Decision::Own
        } else {
            Decision::Delete { seen: old.clone() }
        };
    }
    if own {
        return Decision::Own;
    }
    // An item rowcast never wrote (the application's, e.g. a new item rejected before): the
    // application's put over it is an insert, or an update of the row if one makes the item.
    let unknown = !old.contains_key(VERSION_ATTRIBUTE);
    decide_values(view, table, change, unknown)
}

/// The writable attributes of an application's change as column values. `whole`: the item is
/// new to SQL, so every attribute counts (an insert); otherwise only those that changed.
fn decide_values(view: &View, table: &TableSchema, change: &StreamChange, whole: bool) -> Decision {
    let empty = Image::new();
    let new = change.new.as_ref().unwrap_or(&empty);
    let old = match &change.old {
        Some(old) if !whole => old,
        _ => &empty,
    };
    let mut names: Vec<&String> = new.keys().chain(old.keys()).collect();
    names.sort();
    names.dedup();
    let mut set = Vec::new();
    let mut written = Image::new();
    for name in names {
        if new.get(name) == old.get(name) {
            continue;
        }
        // An index key is rendered from the row: an application's edit of one is refused, so
        // that the item is rewritten from SQL (a new item's are rewritten by its insert anyway).
        let index = view
            .indexes
            .iter()
            .find(|i| i.attributes().any(|a| **a == **name));
        if let (Some(index), false) = (index, whole) {
            return Decision::Reject(format!(
                "attribute {name} is a key attribute of index {}: it is rendered from the row, not written",
                index.name
            ));
        }
        if !is_value_attribute(view, name) {
            continue;
        }
        let Some((column, conversion)) = view.writable(name) else {
            return Decision::Reject(format!(
                "attribute {name} is not writable (writeback.attributes)"
            ));
        };
        if is_key_column(view, &column) {
            return Decision::Reject(format!(
                "attribute {name} maps to key column {column}: key columns are never assigned"
            ));
        }
        let Some(kind) = table.column(&column).map(|c| &c.kind) else {
            return Decision::Reject(format!("column {column} is not in {}", table.table));
        };
        let value = match new.get(name) {
            Some(attr) => match to_sql(attr, kind, conversion) {
                Ok(value) => value,
                Err(reason) => return Decision::Reject(format!("attribute {name}: {reason}")),
            },
            // Removing the attribute: NULL (an empty SET is an absent attribute too).
            None if matches!(kind, ColumnKind::Set(_)) => Value::Bytes(Vec::new()),
            None => Value::NULL,
        };
        if let Some(attr) = new.get(name) {
            written.insert(name.clone(), attr.clone());
        }
        set.push((column, value));
    }
    match change.kind {
        ChangeKind::Insert => Decision::Insert {
            set,
            written,
            or_update: false,
        },
        _ if whole => Decision::Insert {
            set,
            written,
            or_update: true,
        },
        _ if set.is_empty() => Decision::Unchanged,
        _ => Decision::Update { set },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::native::NativeType;
    use crate::view::row::ColumnSchema;
    use crate::view::spec::TableRef;

    pub(super) fn view() -> View {
        crate::config::compile_view(
            std::path::Path::new("accounts.toml"),
            r#"
name = "accounts"
table = "accounts_views"
source = "db.accounts"
[key]
pk = "ACC#{id}"
[attributes]
status = "status"
score = "score"
[writeback]
enabled = true
attributes = ["status"]
"#,
        )
        .unwrap()
    }

    pub(super) fn table() -> TableSchema {
        let column = |name: &str, kind: ColumnKind| ColumnSchema {
            name: name.into(),
            kind,
            is_virtual: false,
        };
        TableSchema::new(
            TableRef::parse("db.accounts").unwrap(),
            vec![
                column("id", ColumnKind::Int { unsigned: false }),
                column("status", ColumnKind::Text),
                column("score", ColumnKind::Int { unsigned: false }),
                column("uid", ColumnKind::Native(NativeType::Uuid)),
            ],
        )
    }

    fn image(pairs: &[(&str, Attr)]) -> Image {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn change(kind: ChangeKind, old: Option<Image>, new: Option<Image>) -> StreamChange {
        StreamChange {
            kind,
            keys: image(&[("pk", Attr::S("ACC#1".into()))]),
            old,
            new,
            ttl: false,
            sequence: "1".into(),
            created_s: None,
        }
    }

    /// `{uid}-{n}`: the shortest reading ends the UUID at its first hyphen, which is no UUID;
    /// the reading that is typed is taken (before, the record was taken for another item's).
    #[test]
    fn a_uuid_before_a_separator_it_holds_is_read_whole() {
        let view = crate::config::compile_view(
            std::path::Path::new("hosts.toml"),
            "name = \"hosts\"\ntable = \"hosts_views\"\nsource = \"db.hosts\"\n[key]\npk = \"H#{uid}-{n}\"\n",
        )
        .unwrap();
        let column = |name: &str, kind: ColumnKind| ColumnSchema {
            name: name.into(),
            kind,
            is_virtual: false,
        };
        let table = TableSchema::new(
            TableRef::parse("db.hosts").unwrap(),
            vec![
                column("uid", ColumnKind::Native(NativeType::Uuid)),
                column("n", ColumnKind::Int { unsigned: false }),
            ],
        );
        let uid = "01234567-89ab-1def-8123-456789abcdef";
        let keys = image(&[("pk", Attr::S(format!("H#{uid}-7")))]);
        let shortest = key_columns(&view, &keys).unwrap();
        assert_eq!(shortest[0].1, "01234567");
        let mut read = typed_readings(&view, &table, &keys, shortest).remove(0);
        read.sort();
        assert_eq!(
            read,
            vec![
                ("n".to_string(), "7".to_string()),
                ("uid".to_string(), uid.to_string())
            ]
        );
        let other = image(&[("pk", Attr::S(format!("H#{uid}-x")))]);
        let shortest = key_columns(&view, &other).unwrap();
        assert!(typed_readings(&view, &table, &other, shortest).is_empty());
    }

    #[test]
    fn keys_must_fit_their_column_types() {
        let table = table();
        let key = |text: &str| vec![("id".to_string(), text.to_string())];
        assert!(typed_key(&table, &key("42")));
        assert!(typed_key(&table, &key("-42")));
        assert!(!typed_key(&table, &key("1#SETTINGS")));
        assert!(!typed_key(&table, &key("042")));
        assert!(!typed_key(&table, &key("+42")));
        assert!(!typed_key(&table, &[("nope".to_string(), "1".to_string())]));
        let uuid = |text: &str| vec![("uid".to_string(), text.to_string())];
        assert!(typed_key(
            &table,
            &uuid("01234567-89ab-1def-8123-456789abcdef")
        ));
        assert!(!typed_key(
            &table,
            &uuid("01234567-89AB-1DEF-8123-456789ABCDEF")
        ));
        assert!(!typed_key(
            &table,
            &uuid("0123456789ab1def8123456789abcdef")
        ));
        assert!(!typed_key(&table, &uuid("01234567")));
    }

    /// A version counts as rowcast's only with the `_origin` rowcast writes for this key at it;
    /// an item without one (written before origins) is judged by its version alone.
    #[test]
    fn a_version_is_rowcasts_only_with_the_origin_of_its_key() {
        let (view, table) = (view(), table());
        let pk = ("pk", Attr::S("ACC#1".into()));
        let at = |version: u128, origin_of: &str| {
            image(&[
                pk.clone(),
                (VERSION_ATTRIBUTE, Attr::N(version.to_string())),
                (
                    ORIGIN_ATTRIBUTE,
                    crate::dynamo::origin(origin_of, None, version),
                ),
                ("status", Attr::S("open".into())),
            ])
        };
        let insert = |new| change(ChangeKind::Insert, None, Some(new));
        assert_eq!(
            decide(&view, &table, &insert(at(9, "ACC#1"))),
            Decision::Own
        );
        // A copy of item ACC#2 put as ACC#1: the application's insert.
        assert!(matches!(
            decide(&view, &table, &insert(at(9, "ACC#2"))),
            Decision::Insert { .. }
        ));
        // The origin of another version of this key: not rowcast's either.
        let mut moved = at(9, "ACC#1");
        moved.insert(VERSION_ATTRIBUTE.into(), Attr::N("10".into()));
        assert!(matches!(
            decide(&view, &table, &insert(moved)),
            Decision::Insert { .. }
        ));
        // A copy with a newer version put over an existing item: the application's update.
        let mut older = at(5, "ACC#1");
        older.insert("status".into(), Attr::S("frozen".into()));
        let over = change(ChangeKind::Modify, Some(older), Some(at(9, "ACC#2")));
        assert!(matches!(
            decide(&view, &table, &over),
            Decision::Update { .. }
        ));
        // rowcast's write over it is its own; so is one without an origin (before origins).
        let mut older = at(5, "ACC#1");
        older.insert("status".into(), Attr::S("frozen".into()));
        let own = change(ChangeKind::Modify, Some(older), Some(at(9, "ACC#1")));
        assert_eq!(decide(&view, &table, &own), Decision::Own);
        let mut unbound = at(9, "ACC#2");
        unbound.remove(ORIGIN_ATTRIBUTE);
        assert_eq!(decide(&view, &table, &insert(unbound)), Decision::Own);
        // A restore's mark on a copy of another item's restore: the application's.
        let mut restored = at(9, "ACC#2");
        restored.insert(RESTORED_ATTRIBUTE.into(), Attr::N("3".into()));
        assert!(matches!(
            decide(&view, &table, &insert(restored)),
            Decision::Insert { .. }
        ));
    }

    #[test]
    fn whose_change_by_the_version_rule() {
        let (view, table) = (view(), table());
        let v = |n: &str| (VERSION_ATTRIBUTE, Attr::N(n.into()));
        let s = |text: &str| ("status", Attr::S(text.into()));
        let pk = ("pk", Attr::S("ACC#1".into()));
        // rowcast's put of a new item, and of a new version over an existing one.
        let own_insert = change(
            ChangeKind::Insert,
            None,
            Some(image(&[pk.clone(), v("5"), s("open")])),
        );
        assert_eq!(decide(&view, &table, &own_insert), Decision::Own);
        let own_modify = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("5"), s("open")])),
            Some(image(&[pk.clone(), v("6"), s("closed")])),
        );
        assert_eq!(decide(&view, &table, &own_modify), Decision::Own);
        // An application's UpdateItem keeps rowcast's version (and its origin marker).
        let app_update = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("6"), s("open")])),
            Some(image(&[pk.clone(), v("6"), s("frozen")])),
        );
        assert_eq!(
            decide(&view, &table, &app_update),
            Decision::Update {
                set: vec![("status".into(), Value::Bytes(b"frozen".to_vec()))]
            }
        );
        // An application's PutItem over an existing item, without a version: still its own.
        let app_put = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("6"), s("open")])),
            Some(image(&[pk.clone(), s("frozen")])),
        );
        assert!(matches!(
            decide(&view, &table, &app_put),
            Decision::Update { .. }
        ));
        // An application's write that copies an older version is still the application's.
        let stale_copy = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("7"), s("open")])),
            Some(image(&[pk.clone(), v("6"), s("frozen")])),
        );
        assert!(matches!(
            decide(&view, &table, &stale_copy),
            Decision::Update { .. }
        ));
        // rowcast's mark before a removal.
        let mark = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("7"), s("open")])),
            Some(image(&[
                pk.clone(),
                v("7"),
                s("open"),
                (REMOVAL_ATTRIBUTE, Attr::N("7".into())),
            ])),
        );
        assert_eq!(decide(&view, &table, &mark), Decision::Own);
        // A put over an item rowcast never wrote: an insert (or an update of its row).
        let over_unknown = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), s("open")])),
            Some(image(&[pk.clone(), s("open")])),
        );
        assert!(matches!(
            decide(&view, &table, &over_unknown),
            Decision::Insert { or_update: true, ref set, .. } if set.len() == 1
        ));
        // Without an old image nothing can be told: rejected, never a delete.
        let blind = change(ChangeKind::Remove, None, None);
        assert!(matches!(decide(&view, &table, &blind), Decision::Reject(_)));
        // A non-writable attribute rejects the whole record.
        let score = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("6"), s("open")])),
            Some(image(&[
                pk.clone(),
                v("6"),
                s("frozen"),
                ("score", Attr::N("3".into())),
            ])),
        );
        assert!(
            matches!(decide(&view, &table, &score), Decision::Reject(r) if r.contains("score is not writable"))
        );
        // An application's edit of an index key attribute alone: index keys are rendered from
        // the row, so the edit is rejected (and the item rewritten from SQL), not ignored.
        let mut indexed = view.clone();
        indexed.indexes.push(crate::view::spec::IndexSpec {
            name: "by_status".into(),
            pk: crate::view::template::Template::parse("STATUS#{status}").unwrap(),
            sk: None,
            pk_attribute: "by_status_pk".into(),
            sk_attribute: None,
            projection: crate::view::spec::IndexProjection::All,
        });
        let gsi = |value: &str| ("by_status_pk", Attr::S(value.into()));
        let index_edit = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("6"), s("open"), gsi("STATUS#open")])),
            Some(image(&[pk.clone(), v("6"), s("open"), gsi("STATUS#vip")])),
        );
        assert!(
            matches!(decide(&indexed, &table, &index_edit), Decision::Reject(r) if r.contains("index by_status")),
            "{:?}",
            decide(&indexed, &table, &index_edit)
        );
        // Only metadata changed.
        let meta = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("6"), s("open")])),
            Some(image(&[
                pk.clone(),
                v("6"),
                s("open"),
                ("_note", Attr::S("x".into())),
            ])),
        );
        assert_eq!(decide(&view, &table, &meta), Decision::Unchanged);
        // Removals: TTL skipped, others checked against SQL.
        let mut ttl = change(ChangeKind::Remove, Some(image(&[pk.clone(), v("6")])), None);
        ttl.ttl = true;
        assert_eq!(decide(&view, &table, &ttl), Decision::Ttl);
        ttl.ttl = false;
        assert!(matches!(
            decide(&view, &table, &ttl),
            Decision::Delete { .. }
        ));
        // rowcast marks an item before it removes it: the removal carries the mark.
        let marked = change(
            ChangeKind::Remove,
            Some(image(&[
                pk.clone(),
                v("7"),
                (REMOVAL_ATTRIBUTE, Attr::N("7".into())),
            ])),
            None,
        );
        assert_eq!(decide(&view, &table, &marked), Decision::Own);
        // The mark of an item near 400 KB also removes its values (`dynamo::remove`): still
        // rowcast's, from an older version, from none, or at the same version (a cleanup's).
        let emptied = |old_version: Option<&str>| {
            let old: Vec<_> = [pk.clone(), s("open")]
                .into_iter()
                .chain(old_version.map(v))
                .collect();
            let new = [pk.clone(), v("7"), (REMOVAL_ATTRIBUTE, Attr::N("7".into()))];
            change(ChangeKind::Modify, Some(image(&old)), Some(image(&new)))
        };
        for old_version in [Some("6"), None, Some("7")] {
            let record = emptied(old_version);
            assert_eq!(
                decide(&view, &table, &record),
                Decision::Own,
                "{old_version:?}"
            );
        }
        // An item rewritten from SQL at the version it held, after a rejection: a new mark.
        let restored = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("6"), s("frozen")])),
            Some(image(&[
                pk.clone(),
                v("6"),
                s("open"),
                (RESTORED_ATTRIBUTE, Attr::N("1".into())),
            ])),
        );
        assert_eq!(decide(&view, &table, &restored), Decision::Own);
        // An application's copy of a restored item, put back after rowcast wrote it again
        // (version 8, no mark): the mark is older than the write, the version goes back.
        let copy = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("8"), s("open")])),
            Some(image(&[
                pk.clone(),
                v("6"),
                s("frozen"),
                (RESTORED_ATTRIBUTE, Attr::N("1".into())),
            ])),
        );
        assert_eq!(
            decide(&view, &table, &copy),
            Decision::Update {
                set: vec![("status".into(), Value::Bytes(b"frozen".to_vec()))],
            }
        );
        // rowcast's mark before it removes an item it never wrote (a rejected new item): no
        // version on either side, the mark alone says it (a review found this taken for an
        // application's insert once marks needed a kept version).
        let unversioned_mark = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), s("bogus")])),
            Some(image(&[
                pk.clone(),
                s("bogus"),
                (REMOVAL_ATTRIBUTE, Attr::N("1".into())),
            ])),
        );
        assert_eq!(decide(&view, &table, &unversioned_mark), Decision::Own);
        // An application's copy of that marked item, put back after its removal: an insert.
        let marked_copy = change(
            ChangeKind::Insert,
            None,
            Some(image(&[
                pk.clone(),
                s("open"),
                (REMOVAL_ATTRIBUTE, Attr::N("1".into())),
            ])),
        );
        assert!(
            matches!(decide(&view, &table, &marked_copy), Decision::Insert { .. }),
            "{:?}",
            decide(&view, &table, &marked_copy)
        );
        // Nor is a change of a value beside the mark rowcast's.
        let marked_and_changed = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), s("bogus")])),
            Some(image(&[
                pk.clone(),
                s("open"),
                (REMOVAL_ATTRIBUTE, Attr::N("1".into())),
            ])),
        );
        assert_ne!(decide(&view, &table, &marked_and_changed), Decision::Own);
        // An application's PutItem of a new item is an insert of what it wrote.
        let app_insert = change(
            ChangeKind::Insert,
            None,
            Some(image(&[pk.clone(), s("open")])),
        );
        assert_eq!(
            decide(&view, &table, &app_insert),
            Decision::Insert {
                set: vec![("status".into(), Value::Bytes(b"open".to_vec()))],
                written: image(&[s("open")]),
                or_update: false,
            }
        );
        assert_eq!(
            key_columns(&view, &own_insert.keys),
            Some(vec![("id".to_string(), "1".to_string())])
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::writeback::values::strategies::any_attr;

    fn any_image() -> impl Strategy<Value = Option<Image>> {
        let names = prop_oneof![
            Just("status".to_string()),
            Just("score".to_string()),
            Just("pk".to_string()),
            Just(VERSION_ATTRIBUTE.to_string()),
            Just(REMOVAL_ATTRIBUTE.to_string()),
            Just(RESTORED_ATTRIBUTE.to_string()),
            "[a-z_]{1,4}",
        ];
        proptest::option::of(proptest::collection::btree_map(names, any_attr(), 0..6))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any record an application can produce is decided, never a panic; and a removal is
        /// written back only when rowcast's mark is absent.
        #[test]
        fn every_record_is_decided(
            kind in prop_oneof![Just(ChangeKind::Insert), Just(ChangeKind::Modify), Just(ChangeKind::Remove)],
            old in any_image(),
            new in any_image(),
            ttl in any::<bool>(),
        ) {
            let view = tests::view();
            let table = tests::table();
            let keys: Image = [("pk".to_string(), Attr::S("ACC#1".into()))].into_iter().collect();
            let change = StreamChange { kind, keys, old: old.clone(), new, ttl, sequence: "1".into(), created_s: None };
            let decision = decide(&view, &table, &change);
            if matches!(decision, Decision::Delete { .. }) {
                prop_assert!(old.is_some_and(|o| !o.contains_key(REMOVAL_ATTRIBUTE)));
            }
        }
    }
}
