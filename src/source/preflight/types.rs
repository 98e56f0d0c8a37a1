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

/// The tables `views` read (roots and joins) that are system-versioned (MariaDB's `WITH SYSTEM
/// VERSIONING`): a delete is logged as an update of the row's history and an update with a
/// history row carrying the old values and the same key, which rowcast would read as the row's
/// state (found by a review; the snapshot reads only current rows, so the two would disagree).
/// Refused, as the problem of each view's `source` or join.
pub async fn check_system_versioned(
    conn: &mut Conn,
    views: &[std::sync::Arc<View>],
) -> Result<Vec<Problem>, SourceError> {
    use mysql_async::prelude::Queryable as _;
    let mut versioned: HashMap<TableRef, bool> = HashMap::new();
    let mut problems = Vec::new();
    for view in views {
        let tables = std::iter::once(("source".to_string(), &view.source)).chain(
            view.joins
                .iter()
                .map(|j| (format!("{}.from", j.field), &j.from)),
        );
        for (field, table) in tables {
            let is = match versioned.get(table) {
                Some(is) => *is,
                None => {
                    let kind: Option<String> = conn
                        .exec_first(
                            "SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                            (&table.database, &table.table),
                        )
                        .await
                        .map_err(SourceError::Query)?;
                    let is = kind.is_some_and(|k| k.eq_ignore_ascii_case("SYSTEM VERSIONED"));
                    versioned.insert(table.clone(), is);
                    is
                }
            };
            if is {
                problems.push(Problem {
                    file: view.file.clone(),
                    field,
                    message: format!("{table} is system-versioned: MariaDB logs its deletes and updates with history rows, which rowcast does not read. Remedy: ALTER TABLE {table} DROP SYSTEM VERSIONING, or read a table without it"),
                });
            }
        }
    }
    Ok(problems)
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
