//! Columns in a format rowcast does not read from the binlog, refused in views at start, at
//! reload and by `check --connect`.

use std::collections::HashMap;

use mysql_async::Conn;

use super::columns::{load_columns, Columns};
use crate::config::Problem;
use crate::source::SourceError;
use crate::view::spec::{TableRef, View};

/// `(field, message)` of one view's problems.
type Found = Vec<(String, String)>;

/// A view's root table in MariaDB 5.3's temporal format, as its problem `source`. (MariaDB's
/// `UUID`, `INET4` and `INET6`, whose binlog values are their stored bytes and SQL's their
/// text, were refused here too until the binlog's were made the same text: `view/native.rs`.)
pub(super) fn old_temporal_root(view: &View, columns: &Columns) -> Option<(String, String)> {
    old_temporal_columns(&view.source, columns).map(|message| ("source".to_string(), message))
}

/// The columns of a table a view reads (its root, or a join's) stored in MariaDB 5.3's
/// temporal format, whichever the view reads: mysql_common does not read their binlog values right, and nothing would
/// tell (tried: a DATETIME(3) `2024-01-02 03:04:05.678` read as `16712-19-95T31:77:60`, a
/// TIME(2) and a negative TIME wrong, a DATETIME right). Every view of the table is refused,
/// not only those reading such a column: not every such type was tried, and a length misread
/// would misread the rest of the row.
pub(super) fn old_temporal_columns(table: &TableRef, columns: &Columns) -> Option<String> {
    let mut old: Vec<&str> = columns
        .iter()
        .filter(|(_, info)| info.old_temporal)
        .map(|(name, _)| name.as_str())
        .collect();
    if old.is_empty() {
        return None;
    }
    old.sort_unstable();
    Some(format!(
        "{} {} of {} {} in MariaDB 5.3's temporal format, whose binlog values rowcast does not read right (and a row with one may be read wrongly whole): rebuild the table in the current format (ALTER TABLE {} FORCE, with mysql56_temporal_format=ON, the default)",
        if old.len() == 1 { "column" } else { "columns" },
        old.join(", "),
        table,
        if old.len() == 1 { "is" } else { "are" },
        table,
    ))
}

/// What the start checks of every view (the rest of `check --connect` only warns there: a view
/// that does not fit its tables halts alone): columns of a type rowcast cannot read alike from
/// the binlog and from SQL.
pub async fn check_column_types(
    conn: &mut Conn,
    views: &[std::sync::Arc<View>],
) -> Result<Vec<Problem>, SourceError> {
    let mut cache: HashMap<TableRef, Columns> = HashMap::new();
    let mut problems = Vec::new();
    for view in views {
        load_columns(conn, &mut cache, &view.source).await?;
        let mut found: Found = old_temporal_root(view, &cache[&view.source])
            .into_iter()
            .collect();
        for join in &view.joins {
            load_columns(conn, &mut cache, &join.from).await?;
            if let Some(message) = old_temporal_columns(&join.from, &cache[&join.from]) {
                found.push((format!("{}.from", join.field), message));
            }
        }
        problems.extend(found.into_iter().map(|(field, message)| Problem {
            file: view.file.clone(),
            field,
            message,
        }));
    }
    Ok(problems)
}
