//! Rows and the table schemas they are decoded with.

use std::collections::HashMap;
use std::sync::Arc;

use super::spec::TableRef;
use super::value::Cell;

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
    Enum(Vec<String>),
    Set(Vec<String>),
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
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    pub name: String,
    pub kind: ColumnKind,
    /// Virtual generated columns are not stored: implicit attributes leave them out.
    pub is_virtual: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub table: TableRef,
    pub columns: Vec<ColumnSchema>,
    index: HashMap<String, usize>,
}

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
            index,
        }
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        // Asked for every column a view reads, for every row image: for a table of a few
        // columns, comparing names is cheaper than hashing one (measured in `benches/cpu.rs`).
        if self.columns.len() <= 16 {
            return self.columns.iter().position(|c| c.name == name);
        }
        self.index.get(name).copied()
    }

    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.position(name).map(|i| &self.columns[i])
    }
}

/// One row image, with the schema it was decoded with.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub schema: Arc<TableSchema>,
    pub cells: Vec<Cell>,
}

impl Row {
    pub fn get(&self, name: &str) -> Option<&Cell> {
        self.schema.position(name).and_then(|i| self.cells.get(i))
    }
}
