//! Pieces of parameterized statements: keyset pagination, key conditions, values as parameters.

use mysql_async::Value;

use super::table::{quote_name, SqlTable};
use crate::view::row::ColumnKind;
use crate::view::value::Cell;

/// Distinct values per `IN (…)` query (join values, marked root keys).
pub const KEYS_PER_QUERY: usize = 500;

/// `WHERE (pk) > (after) ORDER BY pk LIMIT n` (an optional extra condition ANDed in).
pub fn keyset_tail(
    table: &SqlTable,
    condition: Option<(String, Vec<Value>)>,
    after: Option<&[Value]>,
    limit: usize,
) -> (String, Vec<Value>) {
    let key: Vec<String> = table.primary_key.iter().map(|c| quote_name(c)).collect();
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

/// The rows whose columns hold one of `readings` (key column values parsed back from an item
/// key, as text): `(a = ? AND b = ?) OR …`. `None` when a reading names no column (every row
/// matches); no readings match no row. A FLOAT or DOUBLE column is compared with its value
/// as a binary DOUBLE: MariaDB compares a FLOAT column with a text as a DOUBLE, which the
/// float's shortest text (`3.14`) is not.
pub fn matching_condition(
    table: &SqlTable,
    readings: &[Vec<(String, String)>],
) -> Option<(String, Vec<Value>)> {
    if readings.iter().any(Vec::is_empty) {
        return None;
    }
    if readings.is_empty() {
        return Some(("FALSE".to_string(), Vec::new()));
    }
    let mut alternatives = Vec::new();
    let mut params = Vec::new();
    for columns in readings {
        let condition: Vec<String> = columns
            .iter()
            .map(|(c, _)| format!("{} = ?", quote_name(c)))
            .collect();
        alternatives.push(format!("({})", condition.join(" AND ")));
        params.extend(columns.iter().map(|(c, v)| key_param(table, c, v)));
    }
    Some((alternatives.join(" OR "), params))
}

/// A key column's value read from an item key, as a parameter to compare the column with.
pub fn key_param(table: &SqlTable, column: &str, text: &str) -> Value {
    let kind = table.schema.column(column).map(|c| &c.kind);
    let float = match kind {
        Some(ColumnKind::Float) => text.parse::<f32>().ok().map(f64::from),
        Some(ColumnKind::Double) => text.parse::<f64>().ok(),
        _ => None,
    };
    match float {
        Some(value) if value.is_finite() => Value::Double(value),
        _ => Value::Bytes(text.as_bytes().to_vec()),
    }
}

/// A root value as a query parameter.
pub fn cell_param(cell: &Cell) -> Option<Value> {
    Some(match cell {
        Cell::Null | Cell::ZeroDate => return None,
        Cell::Int(v) => Value::Int(*v),
        Cell::UInt(v) => Value::UInt(*v),
        Cell::Bit(v) => Value::UInt(*v),
        Cell::Year(v) => Value::UInt(u64::from(*v)),
        Cell::Float(v) => Value::Double(f64::from(*v)),
        Cell::Double(v) => Value::Double(*v),
        Cell::Bytes(b) => Value::Bytes(b.clone()),
        Cell::Text(s) | Cell::Decimal(s) => Value::Bytes(s.clone().into_bytes()),
        Cell::Enum(label) => Value::Bytes(label.as_bytes().to_vec()),
        other => {
            let text = other.to_text().ok().flatten()?;
            Value::Bytes(text.trim_end_matches('Z').replace('T', " ").into_bytes())
        }
    })
}

/// `(a, b) IN ((?, ?), …)` or `a IN (?, …)` over `keys` (each one value per column).
pub fn in_condition(columns: &[&str], keys: &[Vec<Value>]) -> (String, Vec<Value>) {
    let names: Vec<String> = columns.iter().map(|c| quote_name(c)).collect();
    let tuple = if columns.len() == 1 {
        "?".to_string()
    } else {
        format!("({})", vec!["?"; columns.len()].join(", "))
    };
    let left = if columns.len() == 1 {
        names[0].clone()
    } else {
        format!("({})", names.join(", "))
    };
    let text = format!(
        "{left} IN ({})",
        vec![tuple.as_str(); keys.len()].join(", ")
    );
    (text, keys.iter().flatten().cloned().collect())
}
