//! The single-table design `rowcast suggest` proposes, from the schema alone (pure: tested
//! without a server).
//!
//! - Every table with a primary key becomes one view in one DynamoDB table. Its key uses a
//!   readable prefix (`ORDER#{id:010}`), integer columns zero-padded to their type's width so
//!   that text order is numeric order.
//! - A table with a foreign key to an included parent (the key's columns part of its primary
//!   key first, then a NOT NULL one) puts its items under the parent's partition
//!   (`ORDER#{order_id:010}` / `ORDER_LINE#{id:010}`): one Query reads a parent's children. A
//!   link table (its primary key is exactly two foreign keys) becomes an adjacency list with the
//!   inverted index.
//! - Other foreign keys become `[[lookup]]`s of the parent's descriptive columns (name-like).
//! - A parent whose child rows are few (estimated ≤ 10 per parent, ≤ 16 KB) also embeds them,
//!   with a `count`.
//! - Unique and secondary keys become `[[index]]`es on overloaded GSIs (`gsi1`, `gsi2`, …).
//! - Tables without a primary key, or with a cascading foreign key (the binlog does not carry
//!   the rows a cascade changes), are left out and reported.

use std::collections::BTreeMap;

use super::schema::{Column, ForeignKey, Table};

/// Children per parent row (estimated) below which a child table is embedded too.
const EMBED_MAX_PER_PARENT: f64 = 10.0;
/// Estimated bytes of a parent's embedded rows at most.
const EMBED_MAX_BYTES: f64 = 16.0 * 1024.0;
/// GSIs a view proposes at most.
const MAX_INDEXES: usize = 5;
/// Descriptive columns a lookup copies at most.
const LOOKUP_COLUMNS: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub column: String,
    pub conversion: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub from: String,
    /// `(column of from, column of the root)`.
    pub on: Vec<(String, String)>,
    pub attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embed {
    pub attribute: String,
    pub from: String,
    pub on: Vec<(String, String)>,
    pub order_by: Vec<String>,
    pub count_attribute: String,
    pub estimated_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPlan {
    /// `gsi1`, `gsi2`, …: shared by the views (an overloaded GSI).
    pub name: String,
    pub pk: String,
    pub sk: String,
    /// What it serves, for SUGGESTIONS.md.
    pub serves: String,
    /// The source index or foreign key it comes from.
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewPlan {
    pub name: String,
    pub source: String,
    pub entity: String,
    pub pk: String,
    pub sk: String,
    /// The parent whose partition holds the items, if any.
    pub parent: Option<String>,
    pub attributes: Vec<Attribute>,
    pub lookups: Vec<Lookup>,
    pub embeds: Vec<Embed>,
    pub indexes: Vec<IndexPlan>,
    /// Conversions and their reasons (`column: why`).
    pub conversions: Vec<String>,
    /// What was left out of this view, and why.
    pub left_out: Vec<String>,
    /// Foreign keys the design used that the schema does not declare (read from column names).
    pub inferred: Vec<String>,
    /// Every attribute name the items hold (keys, columns, joins, indexes): each once.
    pub names: Vec<String>,
    pub estimated_item_bytes: u64,
    pub rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub views: Vec<ViewPlan>,
    /// `(table, why)` of the tables with no view.
    pub left_out: Vec<(String, String)>,
}

/// `base`, or `base_2`, `base_3`, … when taken; the name returned is taken from then on.
fn unique(taken: &mut Vec<String>, base: String) -> String {
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    taken.push(name.clone());
    name
}

/// `orders` → `order`, `categories` → `category`, `addresses` → `address`.
pub fn singular(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix("ies") {
        return format!("{stem}y");
    }
    for suffix in ["sses", "shes", "ches", "xes", "zes"] {
        if lower.ends_with(suffix) {
            return lower[..lower.len() - 2].to_string();
        }
    }
    if lower.ends_with("ss") || lower.ends_with("us") || lower.ends_with("is") {
        return lower;
    }
    lower
        .strip_suffix('s')
        .map_or(lower.clone(), str::to_string)
}

/// A view (or attribute) name: `[a-z0-9_]`.
pub fn identifier(name: &str) -> String {
    name.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect()
}

/// `{col:010}` for an integer column, `{col}` otherwise.
fn placeholder(column: &Column) -> String {
    match column.integer_width() {
        Some(width) => format!("{{{}:0{width}}}", column.name),
        None => format!("{{{}}}", column.name),
    }
}

/// `PREFIX#{a:010}#{b}` over `columns` of `table` (`names` the columns of the row that
/// renders it, in the same order: a child renders its parent's prefix from its own columns).
fn template(prefix: &str, table: &Table, columns: &[String], names: &[String]) -> String {
    let mut out = prefix.to_string();
    for (column, name) in columns.iter().zip(names) {
        let Some(found) = table.column(column) else {
            continue;
        };
        let renamed = Column {
            name: name.clone(),
            ..found.clone()
        };
        out.push('#');
        out.push_str(&placeholder(&renamed));
    }
    out
}

/// The key prefix of `fk`'s parent rendered from the child's columns (`ORDER#{order_id:010}`).
fn parent_key(
    tables: &BTreeMap<String, Table>,
    entities: &BTreeMap<String, String>,
    fk: &ForeignKey,
) -> String {
    let parent = &tables[&fk.parent];
    template(
        &entities[&fk.parent],
        parent,
        &fk.parent_columns,
        &fk.columns,
    )
}

/// Why a table gets no view, if it gets none.
fn excluded(table: &Table) -> Option<String> {
    if table.primary_key.is_empty() {
        return Some("no primary key: an item needs a key that names one row, and rowcast does not guess one (add a primary key, then run suggest again)".into());
    }
    if let Some(fk) = table.foreign_keys.iter().find(|f| f.cascades) {
        return Some(format!(
            "foreign key {} to {} cascades: the server does not log the rows a cascade changes, so the view would keep rows that are gone (make it RESTRICT and change child rows in the application)",
            fk.name, fk.parent
        ));
    }
    if let Some(column) = table.primary_key.iter().find(|c| !keyable(table, c)) {
        return Some(format!(
            "primary key column {column}: binary, floating-point or text, or a name a key template cannot hold: no readable key"
        ));
    }
    None
}

/// A column a key template can render readably: a plain name, not binary, floating-point or
/// long text.
fn keyable(table: &Table, column: &str) -> bool {
    let plain = !column.is_empty()
        && column
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    plain
        && table.column(column).is_some_and(|c| {
            !matches!(
                c.data_type.as_str(),
                "binary"
                    | "varbinary"
                    | "blob"
                    | "tinyblob"
                    | "mediumblob"
                    | "longblob"
                    | "float"
                    | "double"
                    | "text"
                    | "mediumtext"
                    | "longtext"
                    | "json"
            ) && !c.json
        })
}

/// The foreign key whose parent's partition holds the table's items, if one fits: to an
/// included parent's whole primary key, not to itself, NOT NULL; the one whose columns lead the
/// primary key first, then one within it, then any.
fn owner<'a>(table: &'a Table, tables: &BTreeMap<String, Table>) -> Option<&'a ForeignKey> {
    let fits = |fk: &&ForeignKey| {
        fk.columns.iter().all(|c| keyable(table, c))
            && fk.parent != table.name
            && tables
                .get(&fk.parent)
                .is_some_and(|p| excluded(p).is_none() && p.primary_key == fk.parent_columns)
    };
    let not_null = |fk: &ForeignKey| {
        fk.columns
            .iter()
            .all(|c| table.column(c).is_some_and(|c| !c.nullable))
    };
    let identifying = |fk: &ForeignKey| fk.columns.iter().all(|c| table.primary_key.contains(c));
    // The primary key's leading columns: the table's main access path.
    let leading = |fk: &ForeignKey| table.primary_key.starts_with(&fk.columns);
    let candidates: Vec<&ForeignKey> = table.foreign_keys.iter().filter(fits).collect();
    candidates
        .iter()
        .find(|fk| leading(fk) && not_null(fk))
        .or_else(|| candidates.iter().find(|fk| identifying(fk) && not_null(fk)))
        .or_else(|| candidates.iter().find(|fk| not_null(fk)))
        .copied()
}

/// A link table: its primary key is exactly the columns of two foreign keys.
fn link<'a>(table: &'a Table, owner: &ForeignKey) -> Option<&'a ForeignKey> {
    let other = table
        .foreign_keys
        .iter()
        .find(|fk| fk.name != owner.name && fk.parent != table.name)?;
    let mut key: Vec<&String> = owner.columns.iter().chain(&other.columns).collect();
    key.sort();
    let mut primary: Vec<&String> = table.primary_key.iter().collect();
    primary.sort();
    (key == primary).then_some(other)
}

/// Columns a person reads to recognise a row, best first.
fn descriptive(table: &Table) -> Vec<String> {
    const NAMES: [&str; 10] = [
        "name",
        "title",
        "label",
        "display_name",
        "full_name",
        "username",
        "email",
        "code",
        "sku",
        "slug",
    ];
    let usable = |c: &&Column| !c.is_virtual && !table.primary_key.contains(&c.name);
    let mut out: Vec<String> = NAMES
        .iter()
        .filter_map(|n| table.columns.iter().filter(usable).find(|c| c.name == *n))
        .map(|c| c.name.clone())
        .collect();
    for column in table.columns.iter().filter(usable) {
        let named = column.name.ends_with("_name") || column.name.ends_with("_title");
        if named && !out.contains(&column.name) {
            out.push(column.name.clone());
        }
    }
    out.truncate(LOOKUP_COLUMNS);
    out
}

fn entity_names(tables: &BTreeMap<String, Table>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut taken = Vec::new();
    for name in tables.keys() {
        let mut entity = identifier(&singular(name)).to_ascii_uppercase();
        if taken.contains(&entity) {
            entity = identifier(name).to_ascii_uppercase();
        }
        out.insert(name.clone(), unique(&mut taken, entity));
    }
    out
}

/// Whether a link's usual sort key (the other side's key under the owner's partition) could be
/// another item's key: another link between the same two parents (follows and blocks between
/// users), or the other side's own rows living under the same parent (a publisher featuring its
/// own book, which sits at `PUBLISHER#p / BOOK#b` already). Such a link carries its own entity.
fn link_collides(
    table: &Table,
    tables: &BTreeMap<String, Table>,
    owner_fk: &ForeignKey,
    other_fk: &ForeignKey,
) -> bool {
    let mut pair = [owner_fk.parent.as_str(), other_fk.parent.as_str()];
    pair.sort();
    let other_link = tables.values().filter(|t| t.name != table.name).any(|t| {
        owner(t, tables)
            .and_then(|o| link(t, o).map(|l| (o, l)))
            .is_some_and(|(o, l)| {
                let mut other = [o.parent.as_str(), l.parent.as_str()];
                other.sort();
                other == pair
            })
    });
    let other_side_under_owner = tables
        .get(&other_fk.parent)
        .and_then(|t| owner(t, tables))
        .is_some_and(|o| o.parent == owner_fk.parent);
    other_link || other_side_under_owner
}

pub fn infer_foreign_keys(tables: &mut BTreeMap<String, Table>) {
    let keys: Vec<(String, String, bool)> = tables
        .values()
        .filter(|t| t.primary_key.len() == 1)
        .filter_map(|t| {
            let column = t.column(&t.primary_key[0])?;
            Some((t.name.clone(), column.name.clone(), column.is_integer()))
        })
        .collect();
    for table in tables.values_mut() {
        let mut found = Vec::new();
        for column in &table.columns {
            let declared = table
                .foreign_keys
                .iter()
                .any(|f| f.columns.contains(&column.name));
            if declared || table.primary_key == [column.name.clone()] {
                continue;
            }
            for (parent, key, integer) in &keys {
                let Some(stem) = column.name.strip_suffix(&format!("_{key}")) else {
                    continue;
                };
                let names_parent = singular(parent) == stem || *parent == stem;
                if names_parent && column.is_integer() == *integer {
                    found.push(ForeignKey {
                        name: format!("{}_{}", table.name, column.name),
                        columns: vec![column.name.clone()],
                        parent: parent.clone(),
                        parent_columns: vec![key.clone()],
                        inferred: true,
                        cascades: false,
                    });
                }
            }
        }
        table.foreign_keys.extend(found);
    }
}

pub fn plan(tables: &BTreeMap<String, Table>) -> Plan {
    let entities = entity_names(tables);
    let mut left_out = Vec::new();
    let mut views = Vec::new();
    let mut names = Vec::new();
    for table in tables.values() {
        if let Some(why) = excluded(table) {
            left_out.push((table.name.clone(), why));
            continue;
        }
        let mut view = view_plan(table, tables, &entities);
        // `Users` and `users`, `a-b` and `a_b`: one view name each.
        view.name = unique(&mut names, view.name);
        views.push(view);
    }
    Plan { views, left_out }
}

fn view_plan(
    table: &Table,
    tables: &BTreeMap<String, Table>,
    entities: &BTreeMap<String, String>,
) -> ViewPlan {
    let entity = &entities[&table.name];
    let own_key = template(entity, table, &table.primary_key, &table.primary_key);
    let owner = owner(table, tables);
    let (pk, sk, parent) = match owner {
        Some(fk) => {
            let pk = parent_key(tables, entities, fk);
            let sk = match link(table, fk) {
                // A link row: the other side's key under the owner's partition.
                Some(other) if link_collides(table, tables, fk, other) => {
                    template(entity, table, &other.columns, &other.columns)
                }
                Some(other) => parent_key(tables, entities, other),
                None => own_key.clone(),
            };
            (pk, sk, Some(fk.parent.clone()))
        }
        None => (own_key.clone(), entity.clone(), None),
    };
    let mut view = ViewPlan {
        name: identifier(&table.name),
        source: table.name.clone(),
        entity: entity.clone(),
        pk,
        sk,
        parent,
        attributes: Vec::new(),
        lookups: Vec::new(),
        embeds: Vec::new(),
        indexes: Vec::new(),
        conversions: Vec::new(),
        left_out: Vec::new(),
        inferred: Vec::new(),
        names: ["pk".to_string(), "sk".to_string()]
            .into_iter()
            .chain((1..=MAX_INDEXES).flat_map(|i| [format!("gsi{i}_pk"), format!("gsi{i}_sk")]))
            .collect(),
        estimated_item_bytes: 0,
        rows: table.rows,
    };
    let texts: Vec<&String> = table.primary_key[..table.primary_key.len() - 1]
        .iter()
        .filter(|c| table.column(c).is_some_and(|c| !c.is_integer()))
        .collect();
    if !texts.is_empty() {
        view.left_out.push(format!(
            "the key joins its columns with '#': a value of {} holding '#' would make two rows' keys alike; keep '#' out of them",
            texts.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    attributes(table, &mut view);
    lookups(table, tables, &mut view);
    embeds(table, tables, entities, &mut view);
    indexes(table, tables, entities, owner, &mut view);
    view.estimated_item_bytes = estimate(table, &view);
    for fk in table.foreign_keys.iter().filter(|f| f.inferred) {
        view.inferred.push(format!(
            "{} → {}({})",
            fk.columns.join(", "),
            fk.parent,
            fk.parent_columns.join(", ")
        ));
    }
    view
}

fn attributes(table: &Table, view: &mut ViewPlan) {
    for column in &table.columns {
        if column.is_virtual {
            view.left_out.push(format!(
                "column {}: virtual (computed on read, not stored in rows)",
                column.name
            ));
            continue;
        }
        let mut name = identifier(&column.name);
        if matches!(name.as_str(), "pk" | "sk") || name.starts_with('_') || name.starts_with("gsi")
        {
            name = format!("col_{}", name.trim_start_matches('_'));
        }
        let name = unique(&mut view.names, name);
        let conversion = conversion(column, view);
        view.attributes.push(Attribute {
            name,
            column: column.name.clone(),
            conversion,
        });
    }
}

/// A conversion where the default mapping would surprise, with the reason noted.
fn conversion(column: &Column, view: &mut ViewPlan) -> Option<&'static str> {
    let name = column.name.as_str();
    let money = [
        "price", "amount", "total", "cost", "balance", "fee", "tax", "subtotal",
    ]
    .iter()
    .any(|m| name.contains(m));
    match column.data_type.as_str() {
        "decimal" if column.scale == Some(2) && money => {
            view.conversions.push(format!(
                "{name}: DECIMAL money as a string (`as = \"string\"`): DynamoDB normalizes numbers (12.50 reads back as 12.5); the string keeps the scale exactly. Drop the `as` to compute with it in DynamoDB expressions"
            ));
            Some("string")
        }
        "bit" => {
            view.conversions.push(format!(
                "{name}: BIT is a number (N), not a BOOL: a flag reads 1 or 0"
            ));
            None
        }
        "set" => {
            view.conversions.push(format!(
                "{name}: SET is a string set (SS) of its labels, absent when empty; `as = \"string\"` gives the comma-joined labels instead"
            ));
            None
        }
        _ if column.json => {
            view.conversions.push(format!(
                "{name}: JSON maps to native maps and lists (JSON null is a NULL attribute, SQL NULL an absent one); `as = \"json_string\"` keeps the document as text when it is large or its numbers exceed 38 digits"
            ));
            None
        }
        _ => None,
    }
}

/// Every many-to-one foreign key (the owner's too: the item shows its parent's name) as a
/// lookup of the parent's descriptive columns.
fn lookups(table: &Table, tables: &BTreeMap<String, Table>, view: &mut ViewPlan) {
    for fk in &table.foreign_keys {
        let Some(parent) = tables.get(&fk.parent).filter(|p| excluded(p).is_none()) else {
            view.left_out.push(format!(
                "foreign key {} to {}: no lookup (the parent has no view: see the tables left out)",
                fk.name, fk.parent
            ));
            continue;
        };
        let columns = descriptive(parent);
        if columns.is_empty() {
            view.left_out.push(format!(
                "foreign key {} to {}: no lookup ({} has no descriptive column such as name or title)",
                fk.name, fk.parent, fk.parent
            ));
            continue;
        }
        let base = match fk.columns.as_slice() {
            [one] => one.strip_suffix("_id").unwrap_or(one).to_string(),
            _ => singular(&fk.parent),
        };
        let attributes = columns
            .iter()
            .map(|c| {
                (
                    unique(&mut view.names, identifier(&format!("{base}_{c}"))),
                    c.clone(),
                )
            })
            .collect();
        view.lookups.push(Lookup {
            from: fk.parent.clone(),
            on: fk
                .parent_columns
                .iter()
                .cloned()
                .zip(fk.columns.iter().cloned())
                .collect(),
            attributes,
        });
    }
}

fn embeds(
    table: &Table,
    tables: &BTreeMap<String, Table>,
    entities: &BTreeMap<String, String>,
    view: &mut ViewPlan,
) {
    for child in tables.values() {
        if child.name == table.name || excluded(child).is_some() {
            continue;
        }
        for fk in child
            .foreign_keys
            .iter()
            .filter(|fk| fk.parent == table.name)
        {
            if fk.parent_columns != table.primary_key {
                continue;
            }
            let per_parent = child.rows as f64 / table.rows.max(1) as f64;
            let bytes = per_parent * row_bytes(child) as f64;
            let stored = child.columns.iter().filter(|c| !c.is_virtual).count();
            let name = identifier(&child.name);
            if per_parent > EMBED_MAX_PER_PARENT || bytes > EMBED_MAX_BYTES || stored > 12 {
                view.left_out.push(format!(
                    "{} not embedded: about {per_parent:.1} rows per {} ({bytes:.0} bytes), too many or too large for one item; read them with a Query on {}",
                    child.name,
                    singular(&table.name),
                    entities[&child.name]
                ));
                continue;
            }
            // Two keys from one child (sender, recipient) give two lists, named apart.
            let name = unique(&mut view.names, name);
            let count_attribute = unique(&mut view.names, format!("{name}_count"));
            view.embeds.push(Embed {
                attribute: name.clone(),
                from: child.name.clone(),
                on: fk
                    .columns
                    .iter()
                    .cloned()
                    .zip(fk.parent_columns.iter().cloned())
                    .collect(),
                order_by: child.primary_key.clone(),
                count_attribute,
                estimated_bytes: bytes as u64,
            });
        }
    }
}

fn indexes(
    table: &Table,
    tables: &BTreeMap<String, Table>,
    entities: &BTreeMap<String, String>,
    owner: Option<&ForeignKey>,
    view: &mut ViewPlan,
) {
    let mut proposals: Vec<(String, String, String, String)> = Vec::new();
    // A link table: the inverted adjacency list (the other side's rows of this owner).
    if let Some((owner_fk, other_fk)) = owner.and_then(|o| link(table, o).map(|l| (o, l))) {
        let pk = parent_key(tables, entities, other_fk);
        let sk = match link_collides(table, tables, owner_fk, other_fk) {
            // Told apart from the other link's entries under the same GSI partition.
            true => template(
                &entities[&table.name],
                table,
                &owner_fk.columns,
                &owner_fk.columns,
            ),
            false => parent_key(tables, entities, owner_fk),
        };
        let serves = format!(
            "the {} of one {} (the link read the other way)",
            owner_fk.parent,
            singular(&other_fk.parent)
        );
        proposals.push((pk, sk, serves, format!("foreign key {}", other_fk.name)));
    }
    for index in &table.indexes {
        let served = owner.is_some_and(|o| index.columns.starts_with(&o.columns));
        if index.columns == table.primary_key || served {
            continue; // the item key (or its partition) serves it
        }
        if index.partial || !index.columns.iter().all(|c| keyable(table, c)) {
            view.left_out.push(format!(
                "index {}: on a prefix, an expression, or a binary, floating-point or long text column: no GSI key renders it readably",
                index.name
            ));
            continue;
        }
        let (pk, sk, serves) = index_proposal(table, tables, entities, index);
        proposals.push((pk, sk, serves, format!("index {}", index.name)));
    }
    // One GSI per partition template: an index the link's inverted GSI already serves (its
    // foreign key's own index) is not proposed twice.
    let mut seen = Vec::new();
    proposals.retain(|(pk, ..)| {
        let fresh = !seen.contains(pk);
        seen.push(pk.clone());
        fresh
    });
    for (i, (pk, sk, serves, from)) in proposals.into_iter().enumerate() {
        if i >= MAX_INDEXES {
            view.left_out.push(format!("{from}: no GSI (at most {MAX_INDEXES} per view are proposed; add it by hand if a query needs it)"));
            continue;
        }
        view.indexes.push(IndexPlan {
            name: format!("gsi{}", i + 1),
            pk,
            sk,
            serves,
            from,
        });
    }
}

/// `(pk, sk, what it serves)` of the GSI for one unique or secondary key: a unique key by its
/// columns; a key on a foreign key as the parent's children; any other by its first column,
/// ordered by the rest.
fn index_proposal(
    table: &Table,
    tables: &BTreeMap<String, Table>,
    entities: &BTreeMap<String, String>,
    index: &super::schema::Index,
) -> (String, String, String) {
    let entity = &entities[&table.name];
    let own_key = template(entity, table, &table.primary_key, &table.primary_key);
    let one = singular(&table.name);
    let fk = table.foreign_keys.iter().find(|fk| {
        fk.parent != table.name
            && index.columns.starts_with(&fk.columns)
            && tables
                .get(&fk.parent)
                .is_some_and(|p| excluded(p).is_none())
    });
    if index.unique {
        let columns = identifier(&index.columns.join("_")).to_ascii_uppercase();
        let pk = template(
            &format!("{entity}_{columns}"),
            table,
            &index.columns,
            &index.columns,
        );
        let serves = format!("one {one} by {} (unique)", index.columns.join(", "));
        return (pk, entity.clone(), serves);
    }
    if let Some(fk) = fk {
        let serves = format!(
            "the {} of one {}, in key order",
            table.name,
            singular(&fk.parent)
        );
        return (parent_key(tables, entities, fk), own_key, serves);
    }
    let first = &index.columns[..1];
    let prefix = format!("{entity}_{}", identifier(&first[0]).to_ascii_uppercase());
    let pk = template(&prefix, table, first, first);
    let rest = &index.columns[1..];
    let sk = match rest.is_empty() {
        true => own_key,
        false => format!(
            "{}#{own_key}",
            template("", table, rest, rest).trim_start_matches('#')
        ),
    };
    let order = match rest.is_empty() {
        true => "key".to_string(),
        false => rest.join(", "),
    };
    let serves = format!(
        "the {} with one {}, ordered by {order}",
        table.name, first[0]
    );
    (pk, sk, serves)
}

/// The item's estimated size: the row, the attribute names, keys, metadata, lookups, embeds.
fn estimate(table: &Table, view: &ViewPlan) -> u64 {
    let row = row_bytes(table);
    let names: usize = view.attributes.iter().map(|a| a.name.len()).sum();
    let keys = 2 * (view.pk.len() + view.sk.len()) * (1 + view.indexes.len());
    let lookups: usize = view.lookups.iter().map(|l| l.attributes.len() * 40).sum();
    let embeds: u64 = view.embeds.iter().map(|e| e.estimated_bytes + 16).sum();
    row + (names + keys + lookups + 48) as u64 + embeds
}

/// Below this many rows InnoDB's average row length is a page over a few rows: the declared
/// types say more.
pub const ROWS_FOR_AVERAGE: u64 = 100;

/// A row's bytes: the table's average row length, or from the declared types for a small table.
pub fn row_bytes(table: &Table) -> u64 {
    match table.rows >= ROWS_FOR_AVERAGE && table.avg_row_length > 0 {
        true => table.avg_row_length,
        false => table.declared_row_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suggest::schema::Index;

    pub fn column(name: &str, data_type: &str, nullable: bool) -> Column {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            nullable,
            scale: (data_type == "decimal").then_some(2),
            max_length: None,
            is_virtual: false,
            json: false,
        }
    }

    fn table(name: &str, columns: Vec<Column>, primary_key: &[&str]) -> Table {
        Table {
            name: name.into(),
            rows: 100,
            avg_row_length: 80,
            columns,
            primary_key: primary_key.iter().map(|c| c.to_string()).collect(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
        }
    }

    fn fk(name: &str, columns: &[&str], parent: &str, parent_columns: &[&str]) -> ForeignKey {
        ForeignKey {
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            parent: parent.into(),
            parent_columns: parent_columns.iter().map(|c| c.to_string()).collect(),
            inferred: false,
            cascades: false,
        }
    }

    fn shop() -> BTreeMap<String, Table> {
        let mut customers = table(
            "customers",
            vec![
                column("id", "int", false),
                column("name", "varchar", false),
                column("email", "varchar", true),
                column("manager_id", "int", true),
            ],
            &["id"],
        );
        customers.indexes.push(Index {
            name: "email".into(),
            columns: vec!["email".into()],
            unique: true,
            partial: false,
        });
        customers
            .foreign_keys
            .push(fk("manager", &["manager_id"], "customers", &["id"]));
        let mut orders = table(
            "orders",
            vec![
                column("id", "bigint", false),
                column("customer_id", "int", false),
                column("status", "varchar", false),
                column("total", "decimal", false),
            ],
            &["id"],
        );
        orders.foreign_keys.push(fk(
            "orders_customer",
            &["customer_id"],
            "customers",
            &["id"],
        ));
        orders.indexes.push(Index {
            name: "by_status".into(),
            columns: vec!["status".into()],
            unique: false,
            partial: false,
        });
        let mut lines = table(
            "order_lines",
            vec![
                column("order_id", "bigint", false),
                column("line_no", "smallint", false),
                column("product_id", "int", false),
            ],
            &["order_id", "line_no"],
        );
        lines.rows = 300;
        lines
            .foreign_keys
            .push(fk("lines_order", &["order_id"], "orders", &["id"]));
        lines
            .foreign_keys
            .push(fk("lines_product", &["product_id"], "products", &["id"]));
        let products = table(
            "products",
            vec![
                column("id", "int", false),
                column("title", "varchar", false),
            ],
            &["id"],
        );
        let mut tags = table(
            "product_tags",
            vec![
                column("product_id", "int", false),
                column("tag_id", "int", false),
            ],
            &["product_id", "tag_id"],
        );
        tags.foreign_keys
            .push(fk("pt_product", &["product_id"], "products", &["id"]));
        tags.foreign_keys
            .push(fk("pt_tag", &["tag_id"], "tags", &["id"]));
        let tag = table(
            "tags",
            vec![
                column("id", "int", false),
                column("label", "varchar", false),
            ],
            &["id"],
        );
        let log = table("audit_log", vec![column("at", "datetime", false)], &[]);
        let mut cascading = table(
            "notes",
            vec![
                column("id", "int", false),
                column("order_id", "bigint", false),
            ],
            &["id"],
        );
        cascading.foreign_keys.push(ForeignKey {
            cascades: true,
            ..fk("notes_order", &["order_id"], "orders", &["id"])
        });
        [
            customers, orders, lines, products, tags, tag, log, cascading,
        ]
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect()
    }

    fn view<'a>(plan: &'a Plan, name: &str) -> &'a ViewPlan {
        plan.views.iter().find(|v| v.name == name).unwrap()
    }

    #[test]
    fn keys_children_links_lookups_embeds_and_indexes() {
        let plan = plan(&shop());
        let customers = view(&plan, "customers");
        assert_eq!(
            (customers.pk.as_str(), customers.sk.as_str()),
            ("CUSTOMER#{id:010}", "CUSTOMER")
        );
        // The unique email: a GSI; the self-reference: a lookup of the manager's name.
        assert_eq!(customers.indexes[0].pk, "CUSTOMER_EMAIL#{email}");
        assert_eq!(
            customers.lookups[0].attributes,
            vec![
                ("manager_name".to_string(), "name".to_string()),
                ("manager_email".to_string(), "email".to_string())
            ]
        );
        // Orders under their customer, lines under their order (padded to the types' widths).
        let orders = view(&plan, "orders");
        assert_eq!(
            (orders.pk.as_str(), orders.sk.as_str()),
            ("CUSTOMER#{customer_id:010}", "ORDER#{id:019}")
        );
        assert_eq!(
            orders
                .attributes
                .iter()
                .find(|a| a.name == "total")
                .unwrap()
                .conversion,
            Some("string")
        );
        assert_eq!(orders.indexes[0].pk, "ORDER_STATUS#{status}");
        let lines = view(&plan, "order_lines");
        assert_eq!(
            (lines.pk.as_str(), lines.sk.as_str()),
            (
                "ORDER#{order_id:019}",
                "ORDER_LINE#{order_id:019}#{line_no:05}"
            )
        );
        // Its order has no descriptive column: no lookup of it; its product's title is copied.
        assert_eq!(lines.lookups.len(), 1);
        assert_eq!(lines.lookups[0].from, "products");
        assert_eq!(
            lines.lookups[0].attributes[0],
            ("product_title".to_string(), "title".to_string())
        );
        assert_eq!(
            orders.lookups[0].attributes[0],
            ("customer_name".to_string(), "name".to_string())
        );
        // Three lines per order: embedded in the order with a count.
        assert_eq!(orders.embeds[0].from, "order_lines");
        assert_eq!(orders.embeds[0].count_attribute, "order_lines_count");
        // The link table: an adjacency list and the inverted GSI.
        let tags = view(&plan, "product_tags");
        assert_eq!(
            (tags.pk.as_str(), tags.sk.as_str()),
            ("PRODUCT#{product_id:010}", "TAG#{tag_id:010}")
        );
        assert_eq!(
            (tags.indexes[0].pk.as_str(), tags.indexes[0].sk.as_str()),
            ("TAG#{tag_id:010}", "PRODUCT#{product_id:010}")
        );
        // Reported, not guessed.
        let left: Vec<&str> = plan.left_out.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(left, ["audit_log", "notes"]);
        assert!(plan.left_out[0].1.contains("no primary key"));
        assert!(plan.left_out[1].1.contains("cascades"));
    }

    #[test]
    fn plural_table_names_read_as_entities() {
        for (plural, one) in [
            ("orders", "order"),
            ("categories", "category"),
            ("addresses", "address"),
            ("status", "status"),
            ("boxes", "box"),
            ("menu", "menu"),
        ] {
            assert_eq!(singular(plural), one);
        }
    }
}
