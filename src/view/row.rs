//! Rows and the table schemas they are decoded with.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::spec::TableRef;
use super::value::Cell;

/// An ENUM or SET label: its text is the schema's, shared by every cell that holds it (a row
/// change of an ENUM or SET column copies no label, `benches/cpu.rs`), and interned where a
/// schema is made (see [`Name`](super::name::Name)).
pub type Label = super::name::Name;

/// The type of a column as far as value mapping cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    Int {
        unsigned: bool,
    },
    /// Signed MEDIUMINT: decoded apart because mysql_common does not sign-extend 24-bit values.
    SignedMedium,
    Decimal {
        scale: u8,
    },
    Float,
    Double,
    Text,
    Binary {
        fixed_len: Option<usize>,
    },
    Enum(Vec<Label>),
    Set(Vec<Label>),
    Bit,
    Year,
    Date,
    DateTime {
        fsp: u8,
    },
    Timestamp {
        fsp: u8,
    },
    Time {
        fsp: u8,
    },
    Json,
    /// MariaDB's UUID, INET4 or INET6: stored bytes in the binlog, text in SQL; a view sees
    /// the text (`view/native.rs`).
    Native(super::native::NativeType),
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    pub name: String,
    pub kind: ColumnKind,
    /// Virtual generated columns are not stored: implicit attributes leave them out.
    pub is_virtual: bool,
}

/// A table's columns as one decoded row image has them. Never changed once made: a schema
/// change makes a new one (with a new [`id`](TableSchema::id)), which is what lets a
/// [`ColumnName`] remember where its column was.
#[derive(Debug, Clone)]
pub struct TableSchema {
    pub table: TableRef,
    pub columns: Vec<ColumnSchema>,
    /// See [`attribute_names`](TableSchema::attribute_names): made at its first call.
    attribute_names: std::sync::OnceLock<Vec<super::name::Name>>,
    index: HashMap<String, usize>,
    /// Unique in the process (a clone keeps it: same columns); never 0.
    id: u64,
}

impl PartialEq for TableSchema {
    fn eq(&self, other: &Self) -> bool {
        self.table == other.table && self.columns == other.columns
    }
}

impl Eq for TableSchema {}

/// Ids of [`TableSchema`]s, from 1 (a [`ColumnName`]'s empty hint is 0). 2^44 of them at one a
/// nanosecond would take five hours; a schema is made per DDL statement and table.
static SCHEMA_IDS: AtomicU64 = AtomicU64::new(1);

/// Bits of a [`ColumnName`] hint that hold the position (MySQL and MariaDB allow 4,096 columns).
const POSITION_BITS: u32 = 20;

impl TableSchema {
    pub fn new(table: TableRef, columns: Vec<ColumnSchema>) -> Self {
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        TableSchema {
            table,
            columns,
            attribute_names: std::sync::OnceLock::new(),
            index,
            id: SCHEMA_IDS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Each column's name as an implicit view's item holds it: interned at the first row an
    /// implicit view projects with this schema, not made for every row (see
    /// [`Name`](super::name::Name); a schema's names are bounded by its DDL). Schemas no
    /// implicit view reads (a join's column subset, made for each join read) intern nothing.
    pub fn attribute_names(&self) -> &[super::name::Name] {
        self.attribute_names.get_or_init(|| {
            self.columns
                .iter()
                .map(|c| super::name::Name::interned(&c.name))
                .collect()
        })
    }

    /// The position of `column`, from where it was in this schema the last time it was looked
    /// up when that was this schema (no name compared: asked for every column a view reads, for
    /// every row image).
    pub fn locate(&self, column: &ColumnName) -> Option<usize> {
        let hint = column.hint.load(Ordering::Relaxed);
        if hint >> POSITION_BITS == self.id {
            let position = (hint & ((1 << POSITION_BITS) - 1)) as usize;
            debug_assert!(
                same_column_name(&self.columns[position].name, &column.name),
                "a stale hint"
            );
            return Some(position);
        }
        let position = self.position(&column.name)?;
        if self.id < 1 << (64 - POSITION_BITS) && position < 1 << POSITION_BITS {
            column.hint.store(
                self.id << POSITION_BITS | position as u64,
                Ordering::Relaxed,
            );
        }
        Some(position)
    }

    /// The position of column `name`. Column names are case-insensitive in MySQL and MariaDB:
    /// a view may spell one in another case than the table (`ID` for `id`), and still means it.
    pub fn position(&self, name: &str) -> Option<usize> {
        // Asked for every column a view reads, for every row image: for a table of a few
        // columns, comparing names is cheaper than hashing one (measured in `benches/cpu.rs`).
        let exact = if self.columns.len() <= 16 {
            self.columns.iter().position(|c| c.name == name)
        } else {
            self.index.get(name).copied()
        };
        // Only a name the view spells otherwise gets here (and then its hint, `locate`, keeps
        // the answer for the next row).
        exact.or_else(|| {
            self.columns
                .iter()
                .position(|c| same_column_name(&c.name, name))
        })
    }

    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.position(name).map(|i| &self.columns[i])
    }
}

/// Whether two column names name one column (MySQL compares them without case, accents
/// aside).
pub fn same_column_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || (!a.is_ascii() && a.to_lowercase() == b.to_lowercase())
}

/// One row image, with the schema it was decoded with.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub schema: Arc<TableSchema>,
    pub cells: Vec<Cell>,
}

impl Row {
    /// About what the row's values hold in memory, in bytes (their text and bytes, and a fixed
    /// part per value): what the queues between stages count them by.
    pub fn weight(&self) -> usize {
        self.cells.iter().map(Cell::weight).sum()
    }

    pub fn get(&self, name: &str) -> Option<&Cell> {
        self.schema.position(name).and_then(|i| self.cells.get(i))
    }

    /// [`Row::get`] through the column's hint (see [`TableSchema::locate`]).
    pub fn cell(&self, column: &ColumnName) -> Option<&Cell> {
        self.schema.locate(column).and_then(|i| self.cells.get(i))
    }
}

/// The name of a column a view reads (in a filter, a key template, an attribute), with a hint:
/// the schema it was last found in and its position there. Shared by the threads that project
/// rows through one view; a hint is one word, so a thread reads a whole one, its own or
/// another's, and a hint of another schema is not used. Compares, prints and hashes as its name.
pub struct ColumnName {
    name: String,
    hint: AtomicU64,
}

impl ColumnName {
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl From<String> for ColumnName {
    fn from(name: String) -> Self {
        ColumnName {
            name,
            hint: AtomicU64::new(0),
        }
    }
}

impl From<&str> for ColumnName {
    fn from(name: &str) -> Self {
        ColumnName::from(name.to_string())
    }
}

impl std::ops::Deref for ColumnName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl Clone for ColumnName {
    fn clone(&self) -> Self {
        ColumnName {
            name: self.name.clone(),
            hint: AtomicU64::new(self.hint.load(Ordering::Relaxed)),
        }
    }
}

impl PartialEq for ColumnName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for ColumnName {}

impl std::hash::Hash for ColumnName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl std::fmt::Debug for ColumnName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.name, f)
    }
}

impl std::fmt::Display for ColumnName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(names: &[&str]) -> TableSchema {
        TableSchema::new(
            TableRef::parse("d.t").expect("valid"),
            names
                .iter()
                .map(|name| ColumnSchema {
                    name: name.to_string(),
                    kind: ColumnKind::Text,
                    is_virtual: false,
                })
                .collect(),
        )
    }

    /// A hint is used only with the schema it was found in: another schema (another order of
    /// columns, one column fewer) looks the name up again, and an equal schema built anew is
    /// another schema.
    #[test]
    fn a_column_is_found_by_name_whatever_schema_it_was_found_in_before() {
        let column = ColumnName::from("b");
        let first = schema(&["a", "b", "c"]);
        let moved = schema(&["b", "c", "a"]);
        let without = schema(&["a", "c"]);
        for _ in 0..2 {
            assert_eq!(first.locate(&column), Some(1));
            assert_eq!(moved.locate(&column), Some(0));
            assert_eq!(without.locate(&column), None);
            assert_eq!(schema(&["c", "a", "b"]).locate(&column), Some(2));
        }
        // A clone has the same columns: the same schema, hint included.
        let copy = column.clone();
        assert_eq!(moved.clone().locate(&copy), Some(0));
        assert_eq!(
            first,
            schema(&["a", "b", "c"]),
            "equal by columns, not by id"
        );
    }
}
