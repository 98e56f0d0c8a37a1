//! Reading a table with SQL: its schema from `information_schema` and chunks of rows by primary
//! key inside a consistent snapshot whose binlog position MariaDB reports
//! (`binlog_snapshot_file` / `binlog_snapshot_position`). Rows decode into the same [`Cell`]s
//! as binlog rows, so a backfilled item equals the item the binlog would have produced.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

use crate::checkpoint::Position;
use crate::source::decode::{with_scale, TableExtras};
use crate::source::SourceError;
use crate::view::row::{ColumnKind, ColumnSchema, Row, TableSchema};
use crate::view::spec::TableRef;
use crate::view::value::{Cell, DateTime};

/// A table as SQL reads it: schema and primary key.
#[derive(Debug, Clone)]
pub struct SqlTable {
    pub schema: Arc<TableSchema>,
    pub primary_key: Vec<String>,
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
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
) -> Result<SqlTable, SourceError> {
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_SCALE, DATETIME_PRECISION, \
             CHARACTER_OCTET_LENGTH, EXTRA, CHARACTER_SET_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&table.database, &table.table),
        )
        .await
        .map_err(SourceError::Query)?;
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
            "enum" => ColumnKind::Enum(labels(&column_type)),
            "set" => ColumnKind::Set(labels(&column_type)),
            "bit" => ColumnKind::Bit,
            "year" => ColumnKind::Year,
            "date" => ColumnKind::Date,
            "datetime" => ColumnKind::DateTime { fsp },
            "timestamp" => ColumnKind::Timestamp { fsp },
            "time" => ColumnKind::Time { fsp },
            other => ColumnKind::Other(other.to_string()),
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
        .map_err(SourceError::Query)?;
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
            if columns.iter().any(|c| c.name == *name) {
                continue;
            }
            if let Some(column) = self.schema.column(name) {
                columns.push(column.clone());
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

/// One chunk: rows after `after` in primary-key order, and the binlog position of the snapshot
/// they were read in.
pub struct Chunk {
    pub rows: Vec<Row>,
    pub position: Position,
    /// Primary key of the last row (the next chunk starts after it); `None` when empty.
    pub last_key: Option<Vec<Value>>,
}

/// `WHERE (pk) > (after) ORDER BY pk LIMIT n` (an optional extra condition ANDed in).
pub fn keyset_tail(
    table: &SqlTable,
    condition: Option<(String, Vec<Value>)>,
    after: Option<&[Value]>,
    limit: usize,
) -> (String, Vec<Value>) {
    let key: Vec<String> = table.primary_key.iter().map(|c| quote(c)).collect();
    let key_list = key.join(", ");
    let placeholders = vec!["?"; key.len()].join(", ");
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if let Some((text, values)) = condition {
        conditions.push(format!("({text})"));
        params.extend(values);
    }
    if let Some(values) = after {
        conditions.push(format!("({key_list}) > ({placeholders})"));
        params.extend(values.iter().cloned());
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    (
        format!("{filter} ORDER BY {key_list} LIMIT {limit}"),
        params,
    )
}

/// `columns = texts` as a condition (a key parsed back from an item key).
pub fn matching_condition(columns: &[(String, String)]) -> Option<(String, Vec<Value>)> {
    if columns.is_empty() {
        return None;
    }
    let condition: Vec<String> = columns
        .iter()
        .map(|(c, _)| format!("{} = ?", quote(c)))
        .collect();
    let params = columns
        .iter()
        .map(|(_, v)| Value::Bytes(v.clone().into_bytes()))
        .collect();
    Some((condition.join(" AND "), params))
}

/// Starts a consistent snapshot on `conn` (session time zone UTC) and returns its binlog
/// position. End it with [`end_snapshot`].
pub async fn begin_snapshot(conn: &mut Conn) -> Result<Position, SourceError> {
    let q = SourceError::Query;
    conn.query_drop("SET time_zone = '+00:00'")
        .await
        .map_err(q)?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await
        .map_err(q)?;
    let status: Vec<(String, String)> =
        match conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await {
            Ok(status) => status,
            Err(error) => {
                end_snapshot(conn).await;
                return Err(q(error));
            }
        };
    let find = |name: &str| {
        status
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let (Some(file), Some(pos)) = (
        find("binlog_snapshot_file"),
        find("binlog_snapshot_position"),
    ) else {
        end_snapshot(conn).await;
        return Err(SourceError::PositionGone {
            position: "snapshot".into(),
            message:
                "the server reports no binlog_snapshot_file/position (snapshot reads need MariaDB)"
                    .into(),
        });
    };
    Ok(Position {
        file,
        pos: pos.parse().unwrap_or(4),
        gtid: None,
    })
}

pub async fn end_snapshot(conn: &mut Conn) {
    let _ = conn.query_drop("COMMIT").await;
}

/// `SELECT <the table's columns> FROM table <tail>`: the rows, and the primary key of the last.
pub async fn select_rows(
    conn: &mut Conn,
    table: &SqlTable,
    tail: &str,
    params: Vec<Value>,
) -> Result<(Vec<Row>, Option<Vec<Value>>), SourceError> {
    let select = format!(
        "SELECT {} FROM {} {tail}",
        table.column_list(),
        table.qualified_name()
    );
    let rows: Vec<mysql_async::Row> = conn
        .exec(select, params)
        .await
        .map_err(SourceError::Query)?;
    let key_positions: Vec<usize> = table
        .primary_key
        .iter()
        .filter_map(|k| table.schema.position(k))
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    let mut last_key = None;
    for row in rows {
        let values = row.unwrap();
        last_key = Some(key_positions.iter().map(|&i| values[i].clone()).collect());
        out.push(decode_values(table, values)?);
    }
    Ok((out, last_key))
}

/// One result row (the table's columns, in order) as a [`Row`].
pub fn decode_values(table: &SqlTable, values: Vec<Value>) -> Result<Row, SourceError> {
    let mut cells = Vec::with_capacity(values.len());
    for (column, value) in table.schema.columns.iter().zip(values) {
        let cell = query_cell(&column.kind, value).map_err(|reason| {
            SourceError::Decode(crate::source::decode::DecodeError::Row {
                table: table.schema.table.to_string(),
                reason: format!("column {}: {reason}", column.name),
            })
        })?;
        cells.push(cell);
    }
    Ok(Row {
        schema: table.schema.clone(),
        cells,
    })
}

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())
}

/// A value of the binary protocol (a prepared statement, session time zone UTC) as a [`Cell`].
pub fn query_cell(kind: &ColumnKind, value: Value) -> Result<Cell, String> {
    if value == Value::NULL {
        return Ok(Cell::Null);
    }
    Ok(match (kind, value) {
        (ColumnKind::Int { unsigned: true } | ColumnKind::SignedMedium, Value::UInt(v)) => {
            Cell::UInt(v)
        }
        (ColumnKind::Int { unsigned: true }, Value::Int(v)) if v >= 0 => Cell::UInt(v as u64),
        (ColumnKind::Int { .. } | ColumnKind::SignedMedium, Value::Int(v)) => Cell::Int(v),
        (ColumnKind::Int { .. }, Value::UInt(v)) => Cell::UInt(v),
        (ColumnKind::Decimal { scale }, Value::Bytes(b)) => {
            Cell::Decimal(with_scale(text(&b)?, *scale))
        }
        (ColumnKind::Float, Value::Float(f)) => Cell::Float(f),
        (ColumnKind::Float, Value::Double(d)) => Cell::Float(d as f32),
        (ColumnKind::Double, Value::Double(d)) => Cell::Double(d),
        (ColumnKind::Text, Value::Bytes(b)) => Cell::Text(String::from_utf8_lossy(&b).into_owned()),
        (ColumnKind::Binary { .. } | ColumnKind::Other(_), Value::Bytes(b)) => Cell::Bytes(b),
        (ColumnKind::Enum(_), Value::Bytes(b)) => {
            Cell::Enum(String::from_utf8_lossy(&b).into_owned())
        }
        (ColumnKind::Set(labels), Value::Bytes(b)) => {
            let chosen: Vec<&str> = text(&b)?.split(',').filter(|s| !s.is_empty()).collect();
            Cell::Set(
                labels
                    .iter()
                    .filter(|l| chosen.contains(&l.as_str()))
                    .cloned()
                    .collect(),
            )
        }
        (ColumnKind::Bit, Value::Bytes(b)) => {
            Cell::Bit(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
        }
        (ColumnKind::Year, Value::Int(y)) => Cell::Year(y as u16),
        (ColumnKind::Year, Value::UInt(y)) => Cell::Year(y as u16),
        (ColumnKind::Date, Value::Date(y, m, d, ..)) => {
            if m == 0 || d == 0 {
                Cell::ZeroDate
            } else {
                Cell::Date {
                    year: y,
                    month: m,
                    day: d,
                }
            }
        }
        (ColumnKind::DateTime { fsp }, Value::Date(y, mo, d, h, mi, s, us)) => {
            if mo == 0 || d == 0 {
                Cell::ZeroDate
            } else {
                Cell::DateTime(DateTime {
                    year: y,
                    month: mo,
                    day: d,
                    hour: h,
                    minute: mi,
                    second: s,
                    micros: us,
                    fsp: *fsp,
                })
            }
        }
        (ColumnKind::Timestamp { fsp }, Value::Date(y, mo, d, h, mi, s, us)) => {
            if mo == 0 || d == 0 {
                Cell::ZeroDate
            } else {
                let days = crate::view::value::days_from_civil(y, mo, d);
                let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
                Cell::Timestamp {
                    secs,
                    micros: us,
                    fsp: *fsp,
                }
            }
        }
        (ColumnKind::Time { fsp }, Value::Time(negative, days, h, m, s, us)) => Cell::Time {
            negative,
            hours: days * 24 + u32::from(h),
            minutes: m,
            seconds: s,
            micros: us,
            fsp: *fsp,
        },
        (ColumnKind::Json, Value::Bytes(b)) => match serde_json::from_slice(&b) {
            Ok(json) => Cell::Json(json),
            Err(_) => Cell::Text(String::from_utf8_lossy(&b).into_owned()),
        },
        (kind, value) => return Err(format!("unexpected value {value:?} for a {kind:?} column")),
    })
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
