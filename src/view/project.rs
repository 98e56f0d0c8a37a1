//! Projection: one row change (before and after images) through one view into item writes.
//!
//! Pure and deterministic. The rules, from VIEWS.md: a row that passes the filter has an item
//! under the key its templates render; a row leaving the filter deletes its item; a row whose
//! key changes moves its item (delete old, write new); NULL in a key column means no item
//! (counted); an empty key or a value DynamoDB cannot hold is a dead letter. A column the view
//! needs that the row's schema lacks is an incompatible schema change: the view halts.

use super::join::{apply_joins, Joined};
pub use super::row::{ColumnKind, ColumnSchema, Row, TableSchema};
use super::spec::{Attributes, IndexSpec, View};
use super::template::{RenderError, Template};
use super::value::{Attr, Cell, Conversion};

pub use super::item::{Item, Name};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ItemKey {
    /// The view's own names, shared (see [`KeySpec`](super::spec::KeySpec)).
    pub table: Name,
    pub pk_attribute: Name,
    pub pk: String,
    pub sk_attribute: Option<Name>,
    pub sk: Option<String>,
}

/// Hashed by its table and its values: the attribute names are the table's (the views of one
/// table agree on them, `config`), so hashing them too only took time, for every row change.
/// Keys that differ in nothing else still differ as keys (`Eq` compares every field).
impl std::hash::Hash for ItemKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.table.hash(state);
        self.pk.hash(state);
        self.sk.hash(state);
    }
}

impl ItemKey {
    /// A key of table `t` whose partition key attribute is `pk`, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_test(pk: &str) -> ItemKey {
        ItemKey {
            table: "t".into(),
            pk_attribute: "pk".into(),
            pk: pk.into(),
            sk_attribute: None,
            sk: None,
        }
    }
}

impl std::fmt::Display for ItemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.sk {
            Some(sk) => write!(f, "{}[{}/{}]", self.table, self.pk, sk),
            None => write!(f, "{}[{}]", self.table, self.pk),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ItemOp {
    /// The whole item, key attributes included (metadata attributes are the writer's).
    Put {
        key: ItemKey,
        item: Item,
    },
    Delete {
        key: ItemKey,
    },
}

impl ItemOp {
    pub fn key(&self) -> &ItemKey {
        match self {
            ItemOp::Put { key, .. } | ItemOp::Delete { key } => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeadItem {
    pub key: Option<ItemKey>,
    pub reason: String,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Projection {
    pub ops: Vec<ItemOp>,
    pub dead: Vec<DeadItem>,
    pub null_keys: u32,
    pub zero_dates: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("view {view}: column {column} of {table} is gone (incompatible schema change)")]
pub struct IncompatibleSchema {
    pub view: String,
    pub table: String,
    pub column: String,
}

/// DynamoDB's longest partition key value, of a table or of an index, in bytes of UTF-8.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// DynamoDB's longest sort key value, of a table or of an index.
pub const MAX_SORT_KEY_BYTES: usize = 1024;

/// DynamoDB's deepest nesting of maps and lists in an attribute: 31 (of its "32 levels", the
/// item is the first; DynamoDB Local takes 31 and refuses 32 with "Nesting Levels have exceeded
/// supported limit"). A JSON column alone stays within it (MariaDB's `JSON_VALID` takes 31
/// levels at most), but one in an embedded list (a list of maps) need not.
pub const MAX_NESTING: usize = 31;

/// Why DynamoDB would refuse `item` for its nesting, if it would.
fn too_deep(item: &Item) -> Option<String> {
    item.iter()
        .find(|(_, attr)| {
            matches!(attr, Attr::M(_) | Attr::L(_)) && attr.nests_deeper_than(MAX_NESTING)
        })
        .map(|(name, _)| {
            format!(
                "attribute {name} nests maps and lists deeper than DynamoDB's {MAX_NESTING} levels"
            )
        })
}

/// Why DynamoDB would refuse a key value of `limit` bytes at most that `value` is, if it is
/// longer.
fn too_long(what: &str, value: &str, limit: usize) -> Option<String> {
    (value.len() > limit)
        .then(|| format!("{what} is {} bytes, over DynamoDB's {limit}", value.len()))
}

enum KeyOutcome {
    Key(ItemKey),
    NoItem,
    Dead(String),
}

/// A template rendered from a row: `Ok(Err(None))` is a NULL column (no item, or no index
/// entry), `Ok(Err(Some(reason)))` a value no key can hold.
fn render_template(
    view: &View,
    row: &Row,
    template: &Template,
) -> Result<Result<String, Option<String>>, IncompatibleSchema> {
    match template.render(|column| row.cell(column)) {
        Ok(text) => Ok(Ok(text)),
        Err(RenderError::NullColumn(_)) => Ok(Err(None)),
        Err(RenderError::MissingColumn(column)) => Err(IncompatibleSchema {
            view: view.name.clone(),
            table: row.schema.table.to_string(),
            column,
        }),
        Err(other) => Ok(Err(Some(other.to_string()))),
    }
}

fn render_key(view: &View, row: &Row) -> Result<KeyOutcome, IncompatibleSchema> {
    let render = |template: &Template| render_template(view, row, template);
    let pk = match render(&view.key.pk)? {
        Ok(pk) => pk,
        Err(None) => return Ok(KeyOutcome::NoItem),
        Err(Some(reason)) => return Ok(KeyOutcome::Dead(reason)),
    };
    let sk = match &view.key.sk {
        None => None,
        Some(template) => match render(template)? {
            Ok(sk) => Some(sk),
            Err(None) => return Ok(KeyOutcome::NoItem),
            Err(Some(reason)) => return Ok(KeyOutcome::Dead(reason)),
        },
    };
    let key = ItemKey {
        table: view.table.clone(),
        pk_attribute: view.key.pk_attribute.clone(),
        pk,
        sk_attribute: view.key.sk_attribute.clone(),
        sk,
    };
    if key.pk.is_empty() || key.sk.as_deref() == Some("") {
        return Ok(KeyOutcome::Dead(format!("empty key {key}")));
    }
    Ok(KeyOutcome::Key(key))
}

fn passes(view: &View, row: &Row) -> Result<bool, IncompatibleSchema> {
    let Some(filter) = &view.filter else {
        return Ok(true);
    };
    // Every column of the filter is looked up (`Expr::eval`); the schema is searched for the one
    // it lacks only when a lookup found none (NULL is a cell), not for every row.
    let missing = std::cell::Cell::new(false);
    let result = filter.eval(&|column| {
        let cell = row.cell(column);
        missing.set(missing.get() || cell.is_none());
        cell
    });
    if missing.get() {
        if let Some(column) = filter.first_unknown_column(&|c| row.schema.locate(c).is_some()) {
            return Err(IncompatibleSchema {
                view: view.name.clone(),
                table: row.schema.table.to_string(),
                column: column.to_string(),
            });
        }
    }
    Ok(result == Some(true))
}

/// An index's key attributes as an item holds them.
type IndexAttributes = Vec<(Name, Attr)>;

/// The index key attributes of a row: `None` when a template column is NULL (the item stays
/// out of the index: a sparse index); `Err` is the dead-letter reason (an index key DynamoDB
/// rejects, such as an empty string).
fn index_key(
    view: &View,
    row: &Row,
    index: &IndexSpec,
) -> Result<Result<Option<IndexAttributes>, String>, IncompatibleSchema> {
    let mut rendered = Vec::with_capacity(2);
    for template in index.templates().map(|(_, t)| t) {
        match render_template(view, row, template)? {
            // A NULL anywhere keeps the item out of the index, whatever the other part renders.
            Err(None) => return Ok(Ok(None)),
            other => rendered.push(other),
        }
    }
    let mut out = Vec::with_capacity(2);
    let limits = [MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES];
    for ((name, text), limit) in index.attributes().zip(rendered).zip(limits) {
        let reason = match text {
            Ok(text) if !text.is_empty() => {
                match too_long(&format!("key attribute {name}"), &text, limit) {
                    None => {
                        out.push((name.clone(), Attr::S(text)));
                        continue;
                    }
                    Some(reason) => reason,
                }
            }
            Ok(_) => format!("empty key attribute {name}"),
            Err(reason) => reason.unwrap_or_default(),
        };
        return Ok(Err(format!("index {}: {reason}", index.name)));
    }
    Ok(Ok(Some(out)))
}

/// The key and index attributes of an item, in name order; `Err` is the dead-letter reason.
type KeyAttributes = std::iter::Chain<
    std::iter::Flatten<std::array::IntoIter<Option<(Name, Attr)>, 2>>,
    std::vec::IntoIter<(Name, Attr)>,
>;

fn key_attributes(
    view: &View,
    row: &Row,
    key: &ItemKey,
) -> Result<Result<KeyAttributes, String>, IncompatibleSchema> {
    // The table's key attributes in name order (they differ: the config checks it), and the
    // index attributes in a vector, which allocates only when the view has indexes.
    let mut pair = [
        Some((key.pk_attribute.clone(), Attr::S(key.pk.clone()))),
        key.sk_attribute
            .clone()
            .zip(key.sk.clone())
            .map(|(name, sk)| (name, Attr::S(sk))),
    ];
    if let [Some(pk), Some(sk)] = &pair {
        if sk.0 < pk.0 {
            pair.swap(0, 1);
        }
    }
    let mut indexed: Vec<(Name, Attr)> = Vec::new();
    for index in &view.indexes {
        match index_key(view, row, index)? {
            Ok(Some(attributes)) => indexed.extend(attributes),
            Ok(None) => {}
            Err(reason) => return Ok(Err(reason)),
        }
    }
    if !indexed.is_empty() {
        indexed.splice(0..0, pair.iter_mut().filter_map(Option::take));
        indexed.sort_by(|a, b| a.0.cmp(&b.0)); // stable: of one name, the later stays later
    }
    Ok(Ok(pair.into_iter().flatten().chain(indexed)))
}

/// Builds the item of a row; `Err` is the dead-letter reason.
fn build_item(
    view: &View,
    row: &Row,
    key: &ItemKey,
    zero_dates: &mut u32,
) -> Result<Result<Item, String>, IncompatibleSchema> {
    // The key and index attributes first (their problems are reported first), then the others,
    // all gathered in a vector and made an item at once. The key attributes are merged in by
    // name as the others are pushed: an explicit view's attributes come in name order, so its
    // items need no sort (`benches/cpu.rs`). Of two entries of one name the attribute wins, as
    // inserting the key attributes first would (names that collide are refused in the config;
    // a column of an implicit view that does is a dead letter).
    // A key DynamoDB would refuse is a dead letter under that key (one made of an earlier row
    // state is removed, as when the key moves).
    let long = too_long("partition key", &key.pk, MAX_PARTITION_KEY_BYTES)
        .or_else(|| too_long("sort key", key.sk.as_deref()?, MAX_SORT_KEY_BYTES));
    if let Some(reason) = long {
        return Ok(Err(reason));
    }
    let mut keys = match key_attributes(view, row, key)? {
        Ok(keys) => keys.peekable(),
        Err(reason) => return Ok(Err(reason)),
    };
    // Room for the table's key attributes (not counted by the hint) and the index attributes.
    let mut item: Vec<(Name, Attr)> = Vec::with_capacity(row.cells.len() + 2 + keys.size_hint().0);
    let mut put = |name: Name, cell: &Cell, conversion: Conversion| -> Result<(), String> {
        if matches!(cell, Cell::ZeroDate) {
            *zero_dates += 1;
        }
        match cell.to_attr(conversion) {
            Ok(Some(attr)) => {
                // A peek and a next rather than `next_if`, which the compiler stopped inlining
                // here once other code changed (+550 instructions per row change, callgrind).
                while keys.peek().is_some_and(|(key, _)| **key <= *name) {
                    item.extend(keys.next());
                }
                item.push((name, attr));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(error) => Err(format!("attribute {name}: {error}")),
        }
    };
    match &view.attributes {
        Attributes::Implicit => {
            let names = row.schema.attribute_names().iter();
            for ((column, name), cell) in row.schema.columns.iter().zip(names).zip(&row.cells) {
                if column.is_virtual {
                    continue;
                }
                if column.name.starts_with('_') || view.is_key_attribute(&column.name) {
                    return Ok(Err(format!(
                        "column {} collides with a key or metadata attribute; name it in [attributes]",
                        column.name
                    )));
                }
                if let Err(reason) = put(name.clone(), cell, Conversion::Native) {
                    return Ok(Err(reason));
                }
            }
        }
        Attributes::Explicit(specs) => {
            for spec in specs {
                let Some(cell) = row.cell(&spec.column) else {
                    return Err(IncompatibleSchema {
                        view: view.name.clone(),
                        table: row.schema.table.to_string(),
                        column: spec.column.to_string(),
                    });
                };
                if let Err(reason) = put(spec.name.clone(), cell, spec.conversion) {
                    return Ok(Err(reason));
                }
            }
        }
    }
    item.extend(keys);
    Ok(Ok(Item::from_entries(item)))
}

/// Projects one row change through one view. `before` is `None` for an insert, `after` for a
/// delete.
///
/// A view with joins gets only the deletes (and key problems) of a row change here: its puts
/// need the related rows, which [`project_snapshot`] adds from a snapshot read that the change
/// triggers (see `snapshot/refresh.rs`).
pub fn project(
    view: &View,
    before: Option<&Row>,
    after: Option<&Row>,
) -> Result<Projection, IncompatibleSchema> {
    let mut out = project_images(view, before, after, None)?;
    if view.has_joins() {
        out.ops.retain(|op| matches!(op, ItemOp::Delete { .. }));
        out.dead.retain(|dead| dead.key.is_none());
        out.zero_dates = 0;
    }
    Ok(out)
}

/// The item of a row read in a snapshot (backfill, fill on miss, join refresh), with the
/// related rows read in the same snapshot when the view has joins.
pub fn project_snapshot(
    view: &View,
    row: &Row,
    joined: Option<&Joined>,
) -> Result<Projection, IncompatibleSchema> {
    project_images(view, None, Some(row), joined)
}

/// What a halted view still applies of a row change: the removal of the old row's item when
/// the row is deleted, leaves the filter, or moves to another key (or to no item). The old key
/// must render from the old row; when the new row cannot tell (a column the view needs is gone)
/// nothing is removed. A halted view rebuilt later then has no item of a row deleted meanwhile.
pub fn removals(view: &View, before: Option<&Row>, after: Option<&Row>) -> Vec<ItemOp> {
    let Some(old) = before.and_then(|row| item_key(view, row)) else {
        return Vec::new();
    };
    let gone = match after {
        None => true,
        Some(row) => match passes(view, row) {
            Ok(false) => true,
            Ok(true) => match render_key(view, row) {
                Ok(KeyOutcome::Key(new)) => new != old,
                Ok(KeyOutcome::NoItem) => true,
                Ok(KeyOutcome::Dead(_)) | Err(_) => false,
            },
            Err(_) => false,
        },
    };
    if gone {
        vec![ItemOp::Delete { key: old }]
    } else {
        Vec::new()
    }
}

/// The key columns `pk` and `sk` parse into the one way write-back reads a key (each
/// placeholder the shortest match, no empty value, no two placeholders side by side); `None`
/// when they do not (not an item of this view, or not one to take for a row).
pub fn key_values(view: &View, pk: &str, sk: Option<&str>) -> Option<Vec<(String, String)>> {
    let mut columns = view.key.pk.parse_key(pk).ok()?;
    match (&view.key.sk, sk) {
        (Some(template), Some(sk)) => columns.extend(template.parse_key(sk).ok()?),
        (None, None) => {}
        _ => return None,
    }
    Some(columns)
}

/// The item key of `pk` and `sk` in `view`'s table, checked to be one the view's templates
/// could render: some reading of it (see [`key_readings`]; more readings than are looked up
/// still make it this view's key); `Err` says why not (not an item of this view).
pub fn parse_item_key(view: &View, pk: &str, sk: Option<&str>) -> Result<ItemKey, String> {
    match (&view.key.sk, sk) {
        (Some(_), None) => return Err("query parameter sk is required by this view".into()),
        (None, Some(_)) => return Err("this view has no sort key".into()),
        _ => {}
    }
    let key = ItemKey {
        table: view.table.clone(),
        pk_attribute: view.key.pk_attribute.clone(),
        pk: pk.to_string(),
        sk_attribute: view.key.sk_attribute.clone(),
        sk: sk.map(str::to_string),
    };
    match key_readings(view, &key) {
        Some(readings) if readings.is_empty() => {
            // Why not, as the shortest reading tells it.
            view.key.pk.parse_key(pk).map_err(|e| e.to_string())?;
            if let (Some(template), Some(sk)) = (&view.key.sk, sk) {
                template.parse_key(sk).map_err(|e| e.to_string())?;
            }
            Err("the key gives two values for one column".into())
        }
        _ => Ok(key),
    }
}

/// Readings of an item key kept at most (a key with more is not looked up by its columns).
pub const MAX_KEY_READINGS: usize = 16;

/// Every set of key column values `key` parses into through `view`'s templates (each sorted
/// by column; see [`Template::readings`](super::template::Template::readings)): the rows that
/// could make the item are among those with one of them. `None` when there are more than
/// [`MAX_KEY_READINGS`].
pub fn key_readings(view: &View, key: &ItemKey) -> Option<Vec<Vec<(String, String)>>> {
    let pk = view.key.pk.readings(&key.pk, MAX_KEY_READINGS)?;
    let sk = match (&view.key.sk, &key.sk) {
        (Some(template), Some(sk)) => template.readings(sk, MAX_KEY_READINGS)?,
        (None, None) => vec![Vec::new()],
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for first in &pk {
        for second in &sk {
            let mut columns: Vec<(String, String)> = first.iter().chain(second).cloned().collect();
            columns.sort();
            columns.dedup();
            if columns.windows(2).any(|w| w[0].0 == w[1].0) {
                continue; // two values for one column: no row renders it
            }
            out.push(columns);
            if out.len() > MAX_KEY_READINGS {
                return None;
            }
        }
    }
    Some(out)
}

/// The key of the item `row` makes, if it makes one.
pub fn item_key(view: &View, row: &Row) -> Option<ItemKey> {
    if !passes(view, row).ok()? {
        return None;
    }
    match render_key(view, row).ok()? {
        KeyOutcome::Key(key) => Some(key),
        _ => None,
    }
}

fn project_images(
    view: &View,
    before: Option<&Row>,
    after: Option<&Row>,
    joined: Option<&Joined>,
) -> Result<Projection, IncompatibleSchema> {
    let mut out = Projection::default();
    let old_key = match before {
        Some(row) if passes(view, row)? => match render_key(view, row)? {
            KeyOutcome::Key(key) => Some(key),
            KeyOutcome::NoItem | KeyOutcome::Dead(_) => None,
        },
        _ => None,
    };
    let mut new_put = None;
    if let Some(row) = after {
        if passes(view, row)? {
            match render_key(view, row)? {
                KeyOutcome::Key(key) => {
                    let built =
                        build_item(view, row, &key, &mut out.zero_dates)?.and_then(|mut item| {
                            match joined {
                                Some(joined) => {
                                    apply_joins(&view.joins, joined, &mut item, &mut out.zero_dates)
                                        .map(|()| item)
                                }
                                None => Ok(item),
                            }
                            .and_then(|item| too_deep(&item).map_or(Ok(item), Err))
                        });
                    match built {
                        Ok(item) => new_put = Some((key, item)),
                        Err(reason) => out.dead.push(DeadItem {
                            key: Some(key),
                            reason,
                        }),
                    }
                }
                KeyOutcome::NoItem => out.null_keys += 1,
                KeyOutcome::Dead(reason) => out.dead.push(DeadItem { key: None, reason }),
            }
        }
    }
    if let Some(old) = old_key {
        let moved = new_put.as_ref().is_none_or(|(key, _)| *key != old);
        let dead_same_key = out.dead.iter().any(|d| d.key.as_ref() == Some(&old));
        if moved && !dead_same_key {
            out.ops.push(ItemOp::Delete { key: old });
        }
    }
    if let Some((key, item)) = new_put {
        out.ops.push(ItemOp::Put { key, item });
    }
    Ok(out)
}

crate::error::definite_errors!(IncompatibleSchema);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::filter::Expr;
    use crate::view::spec::{AttributeSpec, FillMode, KeySpec, TableRef};
    use crate::view::template::Template;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn schema() -> Arc<TableSchema> {
        let col = |name: &str, kind: ColumnKind| ColumnSchema {
            name: name.into(),
            kind,
            is_virtual: false,
        };
        Arc::new(TableSchema::new(
            TableRef::parse("shop.orders").unwrap(),
            vec![
                col("id", ColumnKind::Int { unsigned: false }),
                col("customer_id", ColumnKind::Int { unsigned: false }),
                col("status", ColumnKind::Text),
                col("total_cents", ColumnKind::Int { unsigned: false }),
            ],
        ))
    }

    fn row(id: i64, customer: Option<i64>, status: &str, total: i64) -> Row {
        Row {
            schema: schema(),
            cells: vec![
                Cell::Int(id),
                customer.map_or(Cell::Null, Cell::Int),
                Cell::Text(status.into()),
                Cell::Int(total),
            ],
        }
    }

    fn view(explicit: bool) -> View {
        View {
            name: "order_summary".into(),
            file: "views/order_summary.toml".into(),
            table: "shop_views".into(),
            source: TableRef::parse("shop.orders").unwrap(),
            filter: Some(Expr::parse("status <> 'deleted'").unwrap()),
            key: KeySpec {
                pk: Template::parse("CUSTOMER#{customer_id}").unwrap(),
                sk: Some(Template::parse("ORDER#{id:04}").unwrap()),
                pk_attribute: "pk".into(),
                sk_attribute: Some("sk".into()),
            },
            attributes: if explicit {
                Attributes::Explicit(vec![
                    AttributeSpec {
                        name: "status".into(),
                        column: "status".into(),
                        conversion: Conversion::Native,
                    },
                    AttributeSpec {
                        name: "total".into(),
                        column: "total_cents".into(),
                        conversion: Conversion::String,
                    },
                ])
            } else {
                Attributes::Implicit
            },
            fill: FillMode::Eager,
            writeback_enabled: false,
            mark_removals: false,
            writeback_attributes: vec![],
            joins: vec![],
            indexes: vec![],
        }
    }

    fn keys(p: &Projection) -> Vec<(bool, String)> {
        p.ops
            .iter()
            .map(|op| (matches!(op, ItemOp::Put { .. }), op.key().to_string()))
            .collect()
    }

    #[test]
    fn insert_update_move_delete() {
        let v = view(true);
        let p = project(&v, None, Some(&row(1, Some(7), "open", 100))).unwrap();
        assert_eq!(
            keys(&p),
            vec![(true, "shop_views[CUSTOMER#7/ORDER#0001]".into())]
        );
        let ItemOp::Put { item, .. } = &p.ops[0] else {
            panic!()
        };
        assert_eq!(item.get("total"), Some(&Attr::S("100".into())));
        assert_eq!(item.len(), 4);

        let p = project(
            &v,
            Some(&row(1, Some(7), "open", 100)),
            Some(&row(1, Some(8), "open", 100)),
        )
        .unwrap();
        assert_eq!(
            keys(&p),
            vec![
                (false, "shop_views[CUSTOMER#7/ORDER#0001]".into()),
                (true, "shop_views[CUSTOMER#8/ORDER#0001]".into())
            ]
        );
        let p = project(
            &v,
            Some(&row(1, Some(7), "open", 100)),
            Some(&row(1, Some(7), "deleted", 100)),
        )
        .unwrap();
        assert_eq!(
            keys(&p),
            vec![(false, "shop_views[CUSTOMER#7/ORDER#0001]".into())]
        );
        let p = project(
            &v,
            Some(&row(1, Some(7), "deleted", 100)),
            Some(&row(1, Some(7), "open", 100)),
        )
        .unwrap();
        assert_eq!(
            keys(&p),
            vec![(true, "shop_views[CUSTOMER#7/ORDER#0001]".into())]
        );
        let p = project(&v, Some(&row(1, Some(7), "open", 100)), None).unwrap();
        assert_eq!(
            keys(&p),
            vec![(false, "shop_views[CUSTOMER#7/ORDER#0001]".into())]
        );
    }

    #[test]
    fn a_halted_view_removes_deleted_left_and_moved_items_only() {
        let v = view(true);
        let open = row(1, Some(7), "open", 100);
        let removed = |after: Option<&Row>| -> Vec<String> {
            removals(&v, Some(&open), after)
                .iter()
                .map(|op| op.key().to_string())
                .collect()
        };
        let old = vec!["shop_views[CUSTOMER#7/ORDER#0001]".to_string()];
        assert_eq!(removed(None), old);
        assert_eq!(removed(Some(&row(1, Some(7), "deleted", 100))), old);
        assert_eq!(removed(Some(&row(1, Some(8), "open", 100))), old);
        assert_eq!(removed(Some(&row(1, None, "open", 100))), old);
        assert!(removed(Some(&row(1, Some(7), "open", 200))).is_empty());
        assert!(removals(&v, None, Some(&open)).is_empty());
        // The new row lacks a column the view needs: it cannot tell, nothing is removed.
        let short = Row {
            schema: Arc::new(TableSchema::new(
                TableRef::parse("shop.orders").unwrap(),
                vec![ColumnSchema {
                    name: "id".into(),
                    kind: ColumnKind::Int { unsigned: false },
                    is_virtual: false,
                }],
            )),
            cells: vec![Cell::Int(1)],
        };
        assert!(removed(Some(&short)).is_empty());
    }

    #[test]
    fn null_key_and_implicit() {
        let v = view(false);
        let p = project(&v, None, Some(&row(1, None, "open", 1))).unwrap();
        assert!(p.ops.is_empty());
        assert_eq!(p.null_keys, 1);
        let source = row(2, Some(1), "open", 1);
        let p = project(&v, None, Some(&source)).unwrap();
        let ItemOp::Put { item, .. } = &p.ops[0] else {
            panic!()
        };
        assert_eq!(item.len(), 6);
        assert_eq!(item.get("customer_id"), Some(&Attr::N("1".into())));
        // The columns' names are the schema's, interned when it was made, not made per row.
        let columns = item.names().filter(|n| source.schema.column(n).is_some());
        for name in columns {
            assert!(matches!(name, Name::Interned(_)), "{name}");
        }
    }

    /// A filter column the row's schema lacks halts the view (the error names it); a NULL in it
    /// is only UNKNOWN: no item.
    #[test]
    fn a_filter_column_gone_is_an_incompatible_schema_and_a_null_is_not() {
        let mut v = view(true);
        v.filter = Some(Expr::parse("total_cents > 0 AND status <> 'deleted'").unwrap());
        let old = row(1, Some(7), "open", 5);
        let mut gone = old.clone();
        let mut columns = old.schema.columns.clone();
        columns.remove(2);
        gone.schema = Arc::new(TableSchema::new(old.schema.table.clone(), columns));
        gone.cells.remove(2);
        let error = project(&v, Some(&old), Some(&gone)).unwrap_err();
        assert_eq!(error.column, "status");
        let mut null = old.clone();
        null.cells[2] = Cell::Null;
        let p = project(&v, Some(&old), Some(&null)).unwrap();
        assert!(matches!(p.ops[..], [ItemOp::Delete { .. }]), "{p:?}");
    }

    #[test]
    fn index_attributes_render_and_a_null_leaves_them_absent() {
        let mut v = view(true);
        v.indexes.push(crate::view::spec::IndexSpec {
            name: "by_status".into(),
            pk: Template::parse("STATUS#{status}").unwrap(),
            sk: Some(Template::parse("{customer_id:06}").unwrap()),
            pk_attribute: "by_status_pk".into(),
            sk_attribute: Some("by_status_sk".into()),
            projection: crate::view::spec::IndexProjection::KeysOnly,
        });
        let item = |p: &Projection| match &p.ops[..] {
            [.., ItemOp::Put { item, .. }] => item.clone(),
            other => panic!("{other:?}"),
        };
        let p = project(&v, None, Some(&row(1, Some(7), "open", 100))).unwrap();
        let put = item(&p);
        assert_eq!(
            put.get("by_status_pk"),
            Some(&Attr::S("STATUS#open".into()))
        );
        assert_eq!(put.get("by_status_sk"), Some(&Attr::S("000007".into())));
        assert!(v.is_key_attribute("by_status_sk"));
        // The key and index attributes merged among the others, in name order.
        let names: Vec<&str> = put.keys().collect();
        let expected = [
            "by_status_pk",
            "by_status_sk",
            "pk",
            "sk",
            "status",
            "total",
        ];
        assert_eq!(names, expected);

        // A NULL in the index's template: the item is written without the index attributes.
        v.indexes[0].sk = Some(Template::parse("{customer_id}").unwrap());
        v.key.pk = Template::parse("ORDER#{id}").unwrap();
        let p = project(&v, None, Some(&row(2, None, "open", 100))).unwrap();
        let put = item(&p);
        assert!(!put.contains_key("by_status_pk") && !put.contains_key("by_status_sk"));
        assert_eq!(put.len(), 4, "{put:?}");

        // An empty index key is one DynamoDB refuses: a dead letter, not a failed batch; but a
        // NULL in the other part keeps the item out of the index first.
        v.indexes[0].pk = Template::parse("{status}").unwrap();
        let p = project(&v, None, Some(&row(5, None, "", 100))).unwrap();
        assert!(p.dead.is_empty(), "{:?}", p.dead);
        assert!(!item(&p).contains_key("by_status_pk"));
        let p = project(&v, None, Some(&row(3, Some(1), "", 100))).unwrap();
        assert!(p.ops.is_empty());
        assert!(p.dead[0].reason.contains("index by_status"), "{:?}", p.dead);

        // A key longer than DynamoDB takes, of the table or of an index: a dead letter under
        // its key, and the item of the row's earlier key is removed. Up to the limits, a put.
        v.indexes[0].pk = Template::parse("{status}").unwrap();
        v.key.pk = Template::parse("{status}").unwrap();
        for (status, dead) in [
            ("x".repeat(2048), None),
            ("x".repeat(2049), Some("partition key is 2049 bytes")),
        ] {
            let p = project(
                &v,
                Some(&row(6, Some(1), "open", 1)),
                Some(&row(6, Some(1), &status, 1)),
            )
            .unwrap();
            match dead {
                None => assert!(
                    p.dead.is_empty() && matches!(p.ops[1], ItemOp::Put { .. }),
                    "{:?}",
                    p.dead
                ),
                Some(reason) => {
                    assert!(p.dead[0].reason.starts_with(reason), "{:?}", p.dead);
                    assert_eq!(p.dead[0].key.as_ref().map(|k| k.pk.len()), Some(2049));
                    assert!(matches!(&p.ops[..], [ItemOp::Delete { .. }]), "{:?}", p.ops);
                }
            }
        }
        v.key.pk = Template::parse("ORDER#{id}").unwrap();
        v.key.sk = Some(Template::parse("{status}").unwrap());
        let p = project(&v, None, Some(&row(7, Some(1), &"s".repeat(1025), 1))).unwrap();
        assert!(
            p.dead[0].reason.starts_with("sort key is 1025 bytes"),
            "{:?}",
            p.dead
        );
        v.key.sk = Some(Template::parse("ORDER#{id:04}").unwrap());
        let p = project(&v, None, Some(&row(8, Some(1), &"i".repeat(2049), 1))).unwrap();
        assert!(
            p.dead[0]
                .reason
                .contains("key attribute by_status_pk is 2049 bytes"),
            "{:?}",
            p.dead
        );
        let p = project(&v, None, Some(&row(8, Some(1), &"i".repeat(2048), 1))).unwrap();
        assert!(p.dead.is_empty(), "{:?}", p.dead);

        // An implicit column named like an index attribute collides, as with a key attribute.
        let mut implicit = view(false);
        implicit.indexes = v.indexes.clone();
        implicit.indexes[0].pk_attribute = "status".into();
        let p = project(&implicit, None, Some(&row(4, Some(1), "open", 1))).unwrap();
        assert!(p.dead[0].reason.contains("collides"), "{:?}", p.dead);
    }

    /// Maps and lists 31 deep go; 32 deep are refused, as DynamoDB Local refuses them, and the
    /// item names the attribute.
    #[test]
    fn items_nested_deeper_than_dynamodb_takes_are_told() {
        let nested = |levels: usize, map: bool| {
            (0..levels).fold(Attr::S("x".into()), |inner, _| {
                if map {
                    Attr::M([("a".to_string(), inner)].into())
                } else {
                    Attr::L(vec![inner])
                }
            })
        };
        for map in [true, false] {
            let mut item = Item::new();
            item.insert("flat", Attr::N("1".into()));
            item.insert("doc", nested(MAX_NESTING, map));
            assert_eq!(too_deep(&item), None);
            item.insert("doc", nested(MAX_NESTING + 1, map));
            let reason = too_deep(&item).expect("too deep");
            assert!(reason.contains("attribute doc"), "{reason}");
        }
        // An empty map or list is a level too.
        let empty_at = |levels: usize| {
            (1..levels).fold(Attr::M(Default::default()), |inner, _| Attr::L(vec![inner]))
        };
        let mut item = Item::new();
        item.insert("doc", empty_at(MAX_NESTING));
        assert_eq!(too_deep(&item), None);
        item.insert("doc", empty_at(MAX_NESTING + 1));
        assert!(too_deep(&item).is_some());
    }

    proptest! {
        /// Replaying the change history of one row through the view always ends with exactly
        /// the item the final row state alone would give.
        #[test]
        fn history_converges(steps in proptest::collection::vec((0i64..3, proptest::option::of(0i64..3), prop_oneof![Just("open"), Just("deleted")], proptest::bool::ANY), 1..20)) {
            let v = view(true);
            let mut table: std::collections::BTreeMap<ItemKey, Item> = Default::default();
            let mut current: Option<Row> = None;
            for (id_delta, customer, status, delete) in steps {
                let next = if delete { None } else { Some(row(1 + id_delta, customer, status, 5)) };
                let p = project(&v, current.as_ref(), next.as_ref()).unwrap();
                for op in p.ops {
                    match op {
                        ItemOp::Put { key, item } => { table.insert(key, item); }
                        ItemOp::Delete { key } => { table.remove(&key); }
                    }
                }
                current = next;
            }
            let expected = project(&v, None, current.as_ref()).unwrap();
            let expected: std::collections::BTreeMap<ItemKey, Item> = expected.ops.into_iter().filter_map(|op| match op {
                ItemOp::Put { key, item } => Some((key, item)),
                ItemOp::Delete { .. } => None,
            }).collect();
            prop_assert_eq!(table, expected);
        }
    }
}
