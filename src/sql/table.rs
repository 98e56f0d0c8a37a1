//! A table as SQL reads it: its columns (typed as the binlog would type them) and primary key,
//! from `information_schema`, and the column facts the binlog lacks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool};

use super::SqlError;
use crate::view::native::NativeType;
use crate::view::row::{ColumnKind, ColumnSchema, Label, TableSchema};
use crate::view::spec::TableRef;

/// Column facts the binlog does not carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableExtras {
    pub json_columns: HashSet<String>,
    pub virtual_columns: HashSet<String>,
    /// MariaDB's UUID, INET4 and INET6 columns, which the binlog shows as BINARY.
    pub native_columns: HashMap<String, NativeType>,
    /// The table's engine rolls its changes back (InnoDB): the rows of a rolled-back
    /// transaction that the binlog carries never happened (`source/reader/undo.rs`).
    pub transactional: bool,
}

/// A table as SQL reads it: schema and primary key.
#[derive(Debug, Clone)]
pub struct SqlTable {
    pub schema: Arc<TableSchema>,
    pub primary_key: Vec<String>,
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// [`labels`] as a schema holds them: interned (see [`Label`]).
fn interned_labels(column_type: &str) -> Vec<Label> {
    labels(column_type)
        .iter()
        .map(|l| Label::interned(l))
        .collect()
}

/// Labels of `enum('a','b')` / `set('a','b')`.
fn labels(column_type: &str) -> Vec<String> {
    let inner = column_type
        .find('(')
        .and_then(|start| {
            column_type
                .rfind(')')
                .map(|end| &column_type[start + 1..end])
        })
        .unwrap_or("");
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_quote = false;
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if in_quote && chars.peek() == Some(&'\'') => {
                current.push('\'');
                chars.next();
            }
            '\'' => {
                if in_quote {
                    out.push(std::mem::take(&mut current));
                }
                in_quote = !in_quote;
            }
            '\\' if in_quote => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            _ if in_quote => current.push(c),
            _ => {}
        }
    }
    out
}

type ColumnRow = (
    String,
    String,
    String,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    String,
    Option<String>,
);

pub async fn load_table(
    conn: &mut Conn,
    table: &TableRef,
    extras: &TableExtras,
) -> Result<SqlTable, SqlError> {
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_SCALE, DATETIME_PRECISION, \
             CHARACTER_OCTET_LENGTH, EXTRA, CHARACTER_SET_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&table.database, &table.table),
        )
        .await
        .map_err(SqlError::Query)?;
    let mut columns = Vec::with_capacity(rows.len());
    for (name, data_type, column_type, scale, fsp, octets, extra, charset) in rows {
        let data_type = data_type.to_ascii_lowercase();
        let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
        let fsp = fsp.unwrap_or(0).min(6) as u8;
        let kind = match data_type.as_str() {
            "mediumint" if !unsigned => ColumnKind::SignedMedium,
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
                ColumnKind::Int { unsigned }
            }
            "decimal" | "numeric" => ColumnKind::Decimal {
                scale: scale.unwrap_or(0) as u8,
            },
            "float" => ColumnKind::Float,
            "double" | "real" => ColumnKind::Double,
            "binary" => ColumnKind::Binary {
                fixed_len: octets.map(|n| n as usize),
            },
            "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                ColumnKind::Binary { fixed_len: None }
            }
            "json" => ColumnKind::Json,
            "longtext" if extras.json_columns.contains(&name) => ColumnKind::Json,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                ColumnKind::Text
            }
            "enum" => ColumnKind::Enum(interned_labels(&column_type)),
            "set" => ColumnKind::Set(interned_labels(&column_type)),
            "bit" => ColumnKind::Bit,
            "year" => ColumnKind::Year,
            "date" => ColumnKind::Date,
            "datetime" => ColumnKind::DateTime { fsp },
            "timestamp" => ColumnKind::Timestamp { fsp },
            "time" => ColumnKind::Time { fsp },
            other => match NativeType::of_data_type(other) {
                Some(native) => ColumnKind::Native(native),
                None => ColumnKind::Other(other.to_string()),
            },
        };
        let _ = charset;
        columns.push(ColumnSchema {
            is_virtual: extra.to_ascii_uppercase().contains("VIRTUAL"),
            name,
            kind,
        });
    }
    let primary_key: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? \
             AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (&table.database, &table.table),
        )
        .await
        .map_err(SqlError::Query)?;
    Ok(SqlTable {
        schema: Arc::new(TableSchema::new(table.clone(), columns)),
        primary_key,
    })
}

impl SqlTable {
    /// The same table with only `names` read (in that order; unknown names left out).
    pub fn subset(&self, names: &[&str]) -> SqlTable {
        let mut columns: Vec<ColumnSchema> = Vec::new();
        for name in names {
            // By the table's spelling: `ID` and `id` are one column.
            if let Some(column) = self.schema.column(name) {
                if !columns.iter().any(|c| c.name == column.name) {
                    columns.push(column.clone());
                }
            }
        }
        SqlTable {
            schema: Arc::new(TableSchema::new(self.schema.table.clone(), columns)),
            primary_key: self.primary_key.clone(),
        }
    }

    pub fn qualified_name(&self) -> String {
        format!(
            "{}.{}",
            quote(&self.schema.table.database),
            quote(&self.schema.table.table)
        )
    }

    pub fn column_list(&self) -> String {
        let columns: Vec<String> = self.schema.columns.iter().map(|c| quote(&c.name)).collect();
        columns.join(", ")
    }
}

pub fn quote_name(name: &str) -> String {
    quote(name)
}

/// JSON columns of MariaDB (LONGTEXT with a `json_valid` check) and virtual columns.
pub async fn fetch_extras(pool: &Pool, table: &TableRef) -> Result<TableExtras, SqlError> {
    let mut conn = pool.get_conn().await.map_err(SqlError::Query)?;
    let columns: Vec<(String, String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&table.database, &table.table),
        )
        .await
        .map_err(SqlError::Query)?;
    let mut extras = TableExtras::default();
    for (name, data_type, extra) in columns {
        if data_type.eq_ignore_ascii_case("json") {
            extras.json_columns.insert(name.clone());
        }
        if let Some(native) = NativeType::of_data_type(&data_type.to_ascii_lowercase()) {
            extras.native_columns.insert(name.clone(), native);
        }
        let extra = extra.to_ascii_uppercase();
        if extra.contains("VIRTUAL") {
            extras.virtual_columns.insert(name);
        }
    }
    let engine: Option<Option<String>> = conn
        .exec_first(
            "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&table.database, &table.table),
        )
        .await
        .map_err(SqlError::Query)?;
    extras.transactional = engine
        .flatten()
        .is_some_and(|engine| engine.eq_ignore_ascii_case("InnoDB"));
    // MariaDB: JSON is LONGTEXT with CHECK (json_valid(`col`)); MySQL has no such rows.
    let checks: Vec<String> = conn
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            (&table.database, &table.table),
        )
        .await
        .unwrap_or_default();
    for clause in checks {
        if let Some(column) = json_valid_column(&clause) {
            extras.json_columns.insert(column);
        }
    }
    Ok(extras)
}

fn json_valid_column(clause: &str) -> Option<String> {
    let inner = clause
        .trim()
        .strip_prefix("json_valid(")?
        .strip_suffix(')')?;
    let column = inner.trim().trim_matches('`');
    (!column.is_empty() && !column.contains('`')).then(|| column.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_labels() {
        assert_eq!(labels("enum('a','b''c','d,e')"), vec!["a", "b'c", "d,e"]);
        assert_eq!(labels("set('x')"), vec!["x"]);
    }
}

#[cfg(test)]
mod json_tests {
    #[test]
    fn json_valid_clause() {
        assert_eq!(
            super::json_valid_column("json_valid(`doc`)"),
            Some("doc".into())
        );
        assert_eq!(super::json_valid_column("`a` > 0"), None);
    }
}
