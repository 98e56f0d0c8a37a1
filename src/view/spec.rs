//! A validated view: what [`crate::config`] compiles a view spec file into.

use std::path::PathBuf;

use super::filter::Expr;
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
    pub pk_attribute: String,
    pub sk_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttributeSpec {
    pub name: String,
    pub column: String,
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
    pub table: String,
    pub source: TableRef,
    pub filter: Option<Expr>,
    pub key: KeySpec,
    pub attributes: Attributes,
    pub fill: FillMode,
    pub writeback_enabled: bool,
    pub writeback_attributes: Vec<String>,
}

impl View {
    /// Names an item of this view may hold besides metadata (keys included).
    pub fn is_key_attribute(&self, name: &str) -> bool {
        name == self.key.pk_attribute || self.key.sk_attribute.as_deref() == Some(name)
    }
}
