//! A validated view: what the config module compiles a view spec file into.

use super::name::Name;
use std::path::PathBuf;

use super::filter::Expr;
use super::row::ColumnName;
use super::template::Template;
use super::value::Conversion;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableRef {
    pub database: String,
    pub table: String,
}

impl TableRef {
    pub fn parse(text: &str) -> Option<TableRef> {
        let (database, table) = text.split_once('.')?;
        let valid = |s: &str| !s.is_empty() && !s.contains('.') && !s.contains('`');
        if !valid(database) || !valid(table) {
            return None;
        }
        Some(TableRef {
            database: database.to_string(),
            table: table.to_string(),
        })
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

#[derive(Debug, Clone)]
pub struct KeySpec {
    pub pk: Template,
    pub sk: Option<Template>,
    /// Shared with every [`ItemKey`](super::project::ItemKey) of the view (a reference count,
    /// not a copy per item).
    pub pk_attribute: Name,
    pub sk_attribute: Option<Name>,
}

/// One `[[index]]`: a global secondary index of the view's table whose key attributes the
/// view's items carry.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    pub name: String,
    pub pk: Template,
    pub sk: Option<Template>,
    /// Shared with the items, as the view's key attribute names are.
    pub pk_attribute: Name,
    pub sk_attribute: Option<Name>,
    pub projection: IndexProjection,
}

/// What a global secondary index copies of each item besides the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexProjection {
    All,
    KeysOnly,
    /// The named non-key attributes.
    Include(Vec<String>),
}

impl std::fmt::Display for IndexProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexProjection::All => f.write_str("all"),
            IndexProjection::KeysOnly => f.write_str("keys_only"),
            IndexProjection::Include(names) => write!(f, "[{}]", names.join(", ")),
        }
    }
}

impl IndexSpec {
    /// The templates of the index key, `(field suffix, template)`.
    pub fn templates(&self) -> impl Iterator<Item = (&'static str, &Template)> {
        std::iter::once(("pk", &self.pk)).chain(self.sk.as_ref().map(|t| ("sk", t)))
    }

    pub fn attributes(&self) -> impl Iterator<Item = &Name> {
        std::iter::once(&self.pk_attribute).chain(self.sk_attribute.as_ref())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttributeSpec {
    /// Shared with the items.
    pub name: Name,
    pub column: ColumnName,
    pub conversion: Conversion,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Attributes {
    /// Every stored column under its own name.
    Implicit,
    Explicit(Vec<AttributeSpec>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillMode {
    Eager,
    Lazy,
}

#[derive(Debug, Clone)]
pub struct View {
    pub name: String,
    /// The spec file, for error messages.
    pub file: PathBuf,
    /// Shared with every item key of the view, as the key attribute names are.
    pub table: Name,
    pub source: TableRef,
    pub filter: Option<Expr>,
    pub key: KeySpec,
    pub attributes: Attributes,
    pub fill: FillMode,
    pub writeback_enabled: bool,
    /// Removals are marked (see `dynamo::item::REMOVAL_ATTRIBUTE`): some view of the same
    /// DynamoDB table has write-back, this one or another. Another's: should this view's
    /// write-back be turned on while its table's consumer has not yet read this view's earlier
    /// removals, they are still rowcast's.
    pub mark_removals: bool,
    pub writeback_attributes: Vec<String>,
    /// Lookups, embeds and aggregates, in spec order (lookups, then embeds, then aggregates).
    pub joins: Vec<Join>,
    /// Global secondary indexes whose key attributes the items carry (`[[index]]`).
    pub indexes: Vec<IndexSpec>,
}

/// One `[[lookup]]`, `[[embed]]` or `[[aggregate]]`: rows of `from` related to the root row.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    pub from: TableRef,
    /// `(column of from, column of the root)` pairs; a related row matches when every pair is
    /// equal.
    pub on: Vec<(String, String)>,
    pub kind: JoinKind,
    /// `lookup[0]`, `embed[1]`, …: the spec field, for messages.
    pub field: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JoinKind {
    /// Many-to-one: attributes copied from the one matching row.
    Lookup { attributes: Vec<AttributeSpec> },
    /// One-to-many: the matching rows as a list of maps.
    Embed {
        attribute: String,
        order_by: Vec<OrderBy>,
        /// `None`: every stored column under its own name.
        attributes: Option<Vec<AttributeSpec>>,
    },
    Aggregate {
        attribute: String,
        function: Aggregate,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    pub column: String,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aggregate {
    Count,
    Sum(String),
    Min(String),
    Max(String),
}

impl Aggregate {
    pub fn parse(text: &str) -> Option<Aggregate> {
        let text = text.trim();
        if text == "count" {
            return Some(Aggregate::Count);
        }
        let (function, column) = text.split_once(':')?;
        let column = column.trim().to_string();
        if column.is_empty() {
            return None;
        }
        match function.trim() {
            "sum" => Some(Aggregate::Sum(column)),
            "min" => Some(Aggregate::Min(column)),
            "max" => Some(Aggregate::Max(column)),
            _ => None,
        }
    }

    pub fn column(&self) -> Option<&str> {
        match self {
            Aggregate::Count => None,
            Aggregate::Sum(c) | Aggregate::Min(c) | Aggregate::Max(c) => Some(c),
        }
    }
}

impl Join {
    /// The columns of `from` whose values this join reads (for change detection).
    pub fn from_columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.on.iter().map(|(f, _)| f.as_str()).collect();
        match &self.kind {
            JoinKind::Lookup { attributes } => {
                out.extend(attributes.iter().map(|a| a.column.as_str()));
            }
            JoinKind::Embed {
                order_by,
                attributes,
                ..
            } => {
                out.extend(order_by.iter().map(|o| o.column.as_str()));
                if let Some(attributes) = attributes {
                    out.extend(attributes.iter().map(|a| a.column.as_str()));
                }
            }
            JoinKind::Aggregate { function, .. } => out.extend(function.column()),
        }
        out
    }

    /// Whether this join adds the item attribute `name`.
    pub fn adds_attribute(&self, name: &str) -> bool {
        match &self.kind {
            JoinKind::Lookup { attributes } => attributes.iter().any(|a| &*a.name == name),
            JoinKind::Embed { attribute, .. } | JoinKind::Aggregate { attribute, .. } => {
                attribute == name
            }
        }
    }

    /// An embed without `attributes` reads every column.
    pub fn reads_every_column(&self) -> bool {
        matches!(
            self.kind,
            JoinKind::Embed {
                attributes: None,
                ..
            }
        )
    }
}

impl View {
    /// Whether the view reads `table`, as its root or in a join.
    pub fn reads_table(&self, table: &TableRef) -> bool {
        self.source == *table || self.joins.iter().any(|j| j.from == *table)
    }

    /// The columns of `table` this view's items are made from (its root's key, index
    /// templates, filter and attributes when `table` is its root; a join's columns when it joins
    /// `table`), lower-cased, as MariaDB compares column names; `None` when it takes every column
    /// of `table` (attributes left implicit, an embed of whole rows).
    pub fn columns_read(&self, table: &TableRef) -> Option<Vec<String>> {
        let mut columns: Vec<String> = Vec::new();
        if self.source == *table {
            let Attributes::Explicit(specs) = &self.attributes else {
                return None;
            };
            let templates = std::iter::once(&self.key.pk)
                .chain(self.key.sk.as_ref())
                .chain(
                    self.indexes
                        .iter()
                        .flat_map(|i| i.templates().map(|(_, template)| template)),
                );
            for template in templates {
                columns.extend(template.columns().map(str::to_owned));
            }
            if let Some(filter) = &self.filter {
                let mut comparisons = Vec::new();
                filter.comparisons(&mut comparisons);
                columns.extend(comparisons.into_iter().map(|(column, _)| column));
            }
            columns.extend(specs.iter().map(|spec| spec.column.as_str().to_owned()));
            columns.extend(
                self.joins
                    .iter()
                    .flat_map(|j| j.on.iter().map(|(_, root)| root.clone())),
            );
        }
        for join in self.joins.iter().filter(|j| j.from == *table) {
            if join.reads_every_column() {
                return None;
            }
            columns.extend(join.from_columns().into_iter().map(str::to_owned));
        }
        let mut columns: Vec<String> = columns.iter().map(|c| c.to_ascii_lowercase()).collect();
        columns.sort();
        columns.dedup();
        Some(columns)
    }

    /// A fingerprint of what makes the view's items (table, root, filter, key, attributes,
    /// joins, fill mode): when it changes, the view is backfilled again and the items only the old
    /// definition made are removed. Its name and file are not part of it.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut text = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.table, self.source, self.filter, self.key, self.attributes, self.joins, self.fill
        );
        // Index attributes are part of the items; a view without indexes keeps the fingerprint
        // it had before indexes existed (no backfill on upgrade).
        for index in &self.indexes {
            text.push_str(&format!(
                "|{}:{:?}:{:?}:{}:{:?}",
                index.name, index.pk, index.sk, index.pk_attribute, index.sk_attribute
            ));
        }
        Sha256::digest(text.as_bytes())[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn has_joins(&self) -> bool {
        !self.joins.is_empty()
    }

    /// Names an item of this view may hold besides metadata (keys included).
    /// `(column, conversion)` of a writable attribute (`writeback.attributes`).
    pub fn writable(&self, attribute: &str) -> Option<(String, Conversion)> {
        if !self.writeback_attributes.iter().any(|a| a == attribute) {
            return None;
        }
        match &self.attributes {
            Attributes::Implicit => Some((attribute.to_string(), Conversion::Native)),
            Attributes::Explicit(specs) => specs
                .iter()
                .find(|s| &*s.name == attribute)
                .map(|s| (s.column.to_string(), s.conversion)),
        }
    }

    /// A key attribute of the item or of one of its indexes: rendered from templates, never a
    /// column's value.
    pub fn is_key_attribute(&self, name: &str) -> bool {
        *name == *self.key.pk_attribute
            || self.key.sk_attribute.as_deref() == Some(name)
            || self
                .indexes
                .iter()
                .any(|i| i.attributes().any(|a| &**a == name))
    }
}
