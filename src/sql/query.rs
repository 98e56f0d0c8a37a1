//! Pieces of parameterized statements: keyset pagination, key conditions, values as parameters.

use mysql_async::Value;

use super::table::{quote_name, SqlTable};
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

/// `columns = texts` as a condition (a key parsed back from an item key).
pub fn matching_condition(columns: &[(String, String)]) -> Option<(String, Vec<Value>)> {
    if columns.is_empty() {
        return None;
    }
    let condition: Vec<String> = columns
        .iter()
        .map(|(c, _)| format!("{} = ?", quote_name(c)))
        .collect();
    let params = columns
        .iter()
        .map(|(_, v)| Value::Bytes(v.clone().into_bytes()))
        .collect();
    Some((condition.join(" AND "), params))
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
        Cell::Text(s) | Cell::Enum(s) | Cell::Decimal(s) => Value::Bytes(s.clone().into_bytes()),
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
