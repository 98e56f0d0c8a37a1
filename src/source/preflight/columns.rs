//! What `information_schema` says of the columns and unique keys of the tables views read.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::source::SourceError;
use crate::view::spec::TableRef;
use crate::view::value::Conversion;

/// A table's columns by name (empty when the table does not exist or cannot be read).
/// Looked up without case, as MariaDB names columns (`ID` is column `id`); the table's own
/// spelling is kept for messages and implicit attributes.
#[derive(Debug, Default)]
pub(super) struct Columns(HashMap<String, (String, ColumnInfo)>);

impl Columns {
    pub(super) fn get(&self, name: &str) -> Option<&ColumnInfo> {
        self.0.get(&name.to_lowercase()).map(|(_, info)| info)
    }

    pub(super) fn contains_key(&self, name: &str) -> bool {
        self.0.contains_key(&name.to_lowercase())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names as the table spells them.
    pub(super) fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.values().map(|(name, _)| name)
    }

    /// The columns by the table's names.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &ColumnInfo)> {
        self.0.values().map(|(name, info)| (name, info))
    }
}

#[derive(Debug)]
pub(super) struct ColumnInfo {
    pub(super) data_type: String,
    /// A TIME, DATETIME or TIMESTAMP stored in MariaDB 5.3's format (its `COLUMN_TYPE` says
    /// `/* mariadb-5.3 */`: a table made with `mysql56_temporal_format=OFF`, or by MariaDB 10.0
    /// or earlier and never rebuilt).
    pub(super) old_temporal: bool,
}

pub(super) async fn load_columns(
    conn: &mut Conn,
    cache: &mut HashMap<TableRef, Columns>,
    table: &TableRef,
) -> Result<(), SourceError> {
    if cache.contains_key(table) {
        return Ok(());
    }
    // COLUMN_TYPE as bytes: an ENUM's labels are in it, whatever their charset.
    let rows: Vec<(String, String, Vec<u8>)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&table.database, &table.table),
        )
        .await
        .map_err(SourceError::Query)?;
    let columns = rows
        .into_iter()
        .map(|(name, data_type, column_type)| {
            (
                name.to_lowercase(),
                (
                    name,
                    ColumnInfo {
                        data_type: data_type.to_ascii_lowercase(),
                        old_temporal: matches!(
                            data_type.to_ascii_lowercase().as_str(),
                            "time" | "datetime" | "timestamp"
                        ) && column_type.ends_with(b"/* mariadb-5.3 */"),
                    },
                ),
            )
        })
        .collect();
    cache.insert(table.clone(), Columns(columns));
    Ok(())
}

/// Unique keys (the primary key included) of a table, each as its set of columns.
pub(super) async fn unique_keys(
    conn: &mut Conn,
    table: &TableRef,
) -> Result<Vec<Vec<String>>, SourceError> {
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (&table.database, &table.table),
        )
        .await
        .map_err(SourceError::Query)?;
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    // Lower-cased: compared with the names views spell, without case.
    for (index, column) in rows {
        let column = column.to_lowercase();
        match keys.iter_mut().find(|(name, _)| *name == index) {
            Some((_, columns)) => columns.push(column),
            None => keys.push((index, vec![column])),
        }
    }
    Ok(keys
        .into_iter()
        .map(|(_, mut c)| {
            c.sort();
            c
        })
        .collect())
}

/// Whether `table` has a PRIMARY KEY (not only unique keys).
pub(super) async fn has_primary_key(
    conn: &mut Conn,
    table: &TableRef,
) -> Result<bool, SourceError> {
    let found: Option<u8> = conn
        .exec_first(
            "SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             AND INDEX_NAME = 'PRIMARY' LIMIT 1",
            (&table.database, &table.table),
        )
        .await
        .map_err(SourceError::Query)?;
    Ok(found.is_some())
}

pub(super) fn is_integer(data_type: &str) -> bool {
    matches!(
        data_type,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
    )
}

pub(super) fn is_numeric(data_type: &str) -> bool {
    is_integer(data_type)
        || matches!(
            data_type,
            "decimal" | "numeric" | "float" | "double" | "real" | "bit" | "year"
        )
}

pub(super) fn is_text(data_type: &str) -> bool {
    matches!(
        data_type,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum"
    )
}

pub(super) fn conversion_problem(conversion: Conversion, data_type: &str) -> Option<String> {
    let ok = match conversion {
        Conversion::Native | Conversion::String => true,
        Conversion::Number => is_numeric(data_type) || is_text(data_type),
        Conversion::EpochSeconds | Conversion::EpochMillis => {
            matches!(data_type, "date" | "datetime" | "timestamp")
        }
        // MariaDB reports JSON columns as longtext.
        Conversion::JsonString => matches!(data_type, "json" | "longtext"),
    };
    (!ok).then(|| format!("conversion {conversion:?} does not apply to a {data_type} column"))
}
