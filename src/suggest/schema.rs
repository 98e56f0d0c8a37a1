//! What `rowcast suggest` reads of a database: its base tables with their estimated rows and
//! average row length, columns, primary, unique and secondary keys, foreign keys, and which
//! LONGTEXT columns MariaDB declares JSON — from `information_schema` only (no row is read).

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `int`, `varchar`, `decimal`, … (information_schema's DATA_TYPE).
    pub data_type: String,
    /// The full type (`int(10) unsigned`, `set('a','b')`, `decimal(10,2)`).
    pub column_type: String,
    pub nullable: bool,
    pub scale: Option<u64>,
    /// Characters at most (text columns).
    pub max_length: Option<u64>,
    /// A virtual generated column (not stored: never an attribute).
    pub is_virtual: bool,
    /// A LONGTEXT with MariaDB's `json_valid` check, or MySQL's JSON.
    pub json: bool,
}

impl Column {
    pub fn is_integer(&self) -> bool {
        matches!(
            self.data_type.as_str(),
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
        )
    }

    pub fn unsigned(&self) -> bool {
        self.column_type.contains("unsigned")
    }

    /// Digits of the largest value of an integer type: the zero padding that makes text order
    /// numeric order (for values that are not negative).
    pub fn integer_width(&self) -> Option<usize> {
        let unsigned = self.unsigned();
        Some(match self.data_type.as_str() {
            "tinyint" => 3,
            "smallint" => 5,
            "mediumint" => 8,
            "int" | "integer" => 10,
            "bigint" if unsigned => 20,
            "bigint" => 19,
            _ => return None,
        })
    }
}

/// An index of a table: its columns in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// An index on a prefix of a column, or on an expression: no GSI renders it.
    pub partial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub parent: String,
    pub parent_columns: Vec<String>,
    /// Not declared: inferred from a column name (`customer_id` → `customers.id`).
    pub inferred: bool,
    /// A cascading action (ON DELETE/UPDATE CASCADE, SET NULL, SET DEFAULT): the server does
    /// not log the child rows it changes, so rowcast cannot watch the child table.
    pub cascades: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub rows: u64,
    pub avg_row_length: u64,
    pub columns: Vec<Column>,
    /// Empty: no primary key.
    pub primary_key: Vec<String>,
    /// Unique and secondary keys, the primary key aside.
    pub indexes: Vec<Index>,
    pub foreign_keys: Vec<ForeignKey>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Bytes of a typical row from the declared types (text at half its maximum, at most 256).
    pub fn declared_row_bytes(&self) -> u64 {
        self.columns
            .iter()
            .filter(|c| !c.is_virtual)
            .map(|c| match c.data_type.as_str() {
                "char" | "varchar" | "binary" | "varbinary" => {
                    (c.max_length.unwrap_or(32) / 2).min(256)
                }
                "text" | "mediumtext" | "longtext" | "blob" | "mediumblob" | "longblob"
                | "json" => 256,
                "date" => 10,
                "datetime" | "timestamp" => 24,
                _ => 8,
            })
            .sum()
    }
}

type Err = mysql_async::Error;

/// The base tables of `database` (only `only` when not empty), by name.
pub async fn read(
    conn: &mut Conn,
    database: &str,
    only: &[String],
) -> Result<BTreeMap<String, Table>, Err> {
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    let rows: Vec<(String, Option<u64>, Option<u64>)> = conn
        .exec(
            "SELECT TABLE_NAME, TABLE_ROWS, AVG_ROW_LENGTH FROM information_schema.TABLES
             WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            (database,),
        )
        .await?;
    for (name, rows, avg) in rows {
        if only.is_empty() || only.contains(&name) {
            let table = Table {
                name: name.clone(),
                rows: rows.unwrap_or(0),
                avg_row_length: avg.unwrap_or(0),
                columns: Vec::new(),
                primary_key: Vec::new(),
                indexes: Vec::new(),
                foreign_keys: Vec::new(),
            };
            tables.insert(name, table);
        }
    }
    read_columns(conn, database, &mut tables).await?;
    read_indexes(conn, database, &mut tables).await?;
    read_foreign_keys(conn, database, &mut tables).await?;
    Ok(tables)
}

async fn read_columns(
    conn: &mut Conn,
    database: &str,
    tables: &mut BTreeMap<String, Table>,
) -> Result<(), Err> {
    type ColumnRow = (
        String,
        String,
        String,
        String,
        String,
        Option<u64>,
        String,
        Option<u64>,
    );
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_SCALE, EXTRA,
                    CHARACTER_MAXIMUM_LENGTH
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?
             ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (database,),
        )
        .await?;
    // MariaDB's JSON: a LONGTEXT with a json_valid check (named after the column).
    let checks: Vec<(String, String)> = conn
        .exec(
            "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
             WHERE CONSTRAINT_SCHEMA = ?",
            (database,),
        )
        .await
        .unwrap_or_default();
    for (table, name, data_type, column_type, nullable, scale, extra, max_length) in rows {
        let Some(entry) = tables.get_mut(&table) else {
            continue;
        };
        let json = data_type == "json"
            || checks.iter().any(|(t, clause)| {
                *t == table
                    && clause.contains("json_valid")
                    && clause.contains(&format!("`{name}`"))
            });
        entry.columns.push(Column {
            is_virtual: extra.to_ascii_uppercase().contains("VIRTUAL"),
            name,
            data_type: data_type.to_ascii_lowercase(),
            column_type: column_type.to_ascii_lowercase(),
            nullable: nullable == "YES",
            scale,
            max_length,
            json,
        });
    }
    Ok(())
}

async fn read_indexes(
    conn: &mut Conn,
    database: &str,
    tables: &mut BTreeMap<String, Table>,
) -> Result<(), Err> {
    // COLUMN_NAME is NULL for an expression (MySQL 8's functional indexes), SUB_PART set for a
    // prefix of a column.
    type IndexRow = (String, String, i64, Option<String>, Option<u64>);
    let rows: Vec<IndexRow> = conn
        .exec(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART
             FROM information_schema.STATISTICS
             WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
            (database,),
        )
        .await?;
    for (table, index, non_unique, column, sub_part) in rows {
        let Some(entry) = tables.get_mut(&table) else {
            continue;
        };
        let partial = column.is_none() || sub_part.is_some();
        let column = column.unwrap_or_default();
        if index == "PRIMARY" {
            entry.primary_key.push(column);
            continue;
        }
        match entry.indexes.iter_mut().find(|i| i.name == index) {
            Some(found) => {
                found.columns.push(column);
                found.partial |= partial;
            }
            None => entry.indexes.push(Index {
                name: index,
                columns: vec![column],
                unique: non_unique == 0,
                partial,
            }),
        }
    }
    Ok(())
}

async fn read_foreign_keys(
    conn: &mut Conn,
    database: &str,
    tables: &mut BTreeMap<String, Table>,
) -> Result<(), Err> {
    type KeyRow = (String, String, String, String, String, String, String);
    let rows: Vec<KeyRow> = conn
        .exec(
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME,
                    k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE
             FROM information_schema.KEY_COLUMN_USAGE k
             JOIN information_schema.REFERENTIAL_CONSTRAINTS r
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
              AND r.TABLE_NAME = k.TABLE_NAME
             WHERE k.TABLE_SCHEMA = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL
               AND k.REFERENCED_TABLE_SCHEMA = k.TABLE_SCHEMA
             ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
            (database,),
        )
        .await?;
    for (table, name, column, parent, parent_column, delete, update) in rows {
        let Some(entry) = tables.get_mut(&table) else {
            continue;
        };
        match entry.foreign_keys.iter_mut().find(|f| f.name == name) {
            Some(found) => {
                found.columns.push(column);
                found.parent_columns.push(parent_column);
            }
            None => entry.foreign_keys.push(ForeignKey {
                name,
                columns: vec![column],
                parent,
                parent_columns: vec![parent_column],
                inferred: false,
                cascades: [delete, update]
                    .iter()
                    .any(|rule| !matches!(rule.as_str(), "RESTRICT" | "NO ACTION")),
            }),
        }
    }
    Ok(())
}
