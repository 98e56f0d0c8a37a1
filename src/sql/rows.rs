//! Rows read with SQL, decoded into the same [`Cell`]s as binlog rows, so a row read in a
//! snapshot makes the same item the binlog would have made.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

use super::table::SqlTable;
use super::SqlError;
use crate::view::row::{ColumnKind, Row};
use crate::view::value::{with_scale, Cell, DateTime};

/// `SELECT <the table's columns> FROM table <tail>`: the rows, and the primary key of the last.
pub async fn select_rows(
    conn: &mut Conn,
    table: &SqlTable,
    tail: &str,
    params: Vec<Value>,
) -> Result<(Vec<Row>, Option<Vec<Value>>), SqlError> {
    let select = format!(
        "SELECT {} FROM {} {tail}",
        table.column_list(),
        table.qualified_name()
    );
    let rows: Vec<mysql_async::Row> = conn
        .exec(select, params)
        .await
        .map_err(|e| SqlError::select(&table.schema.table, e))?;
    let key_positions: Vec<usize> = table
        .primary_key
        .iter()
        .filter_map(|k| table.schema.position(k))
        .collect();
    // The last row's key only (copied for every row before: a text key is an allocation).
    let last_key = rows.last().map(|row| {
        key_positions
            .iter()
            .map(|&i| row.as_ref(i).cloned().unwrap_or(Value::NULL))
            .collect()
    });
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(decode_values(table, row.unwrap())?);
    }
    Ok((out, last_key))
}

/// One result row (the table's columns, in order) as a [`Row`].
pub fn decode_values(table: &SqlTable, values: Vec<Value>) -> Result<Row, SqlError> {
    let mut cells = Vec::with_capacity(values.len());
    for (column, value) in table.schema.columns.iter().zip(values) {
        let cell = query_cell(&column.kind, value).map_err(|reason| SqlError::Decode {
            table: table.schema.table.to_string(),
            reason: format!("column {}: {reason}", column.name),
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
        (ColumnKind::Text | ColumnKind::Native(_), Value::Bytes(b)) => {
            Cell::Text(String::from_utf8_lossy(&b).into_owned())
        }
        (ColumnKind::Binary { .. } | ColumnKind::Other(_), Value::Bytes(b)) => Cell::Bytes(b),
        (ColumnKind::Enum(labels), Value::Bytes(b)) => {
            // The schema's label where the text is one (a row read back holds no other).
            let text = String::from_utf8_lossy(&b);
            Cell::Enum(match labels.iter().find(|label| ***label == *text) {
                Some(label) => label.clone(),
                None => text.as_ref().into(),
            })
        }
        (ColumnKind::Set(labels), Value::Bytes(b)) => {
            let chosen: Vec<&str> = text(&b)?.split(',').filter(|s| !s.is_empty()).collect();
            Cell::Set(
                labels
                    .iter()
                    .filter(|l| chosen.contains(&&***l))
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
