//! Column types rowcast does not read alike from the binlog and from SQL, and columns in a
//! format it does not read from the binlog, refused in views at start, at reload and by
//! `check --connect`.

use std::collections::HashMap;

use mysql_async::Conn;

use super::columns::{load_columns, Columns};
use crate::config::Problem;
use crate::source::SourceError;
use crate::view::spec::{Attributes, TableRef, View};
use crate::view::template::Segment;

/// `(field, message)` of one view's problems.
type Found = Vec<(String, String)>;

/// Column types whose binlog values rowcast does not decode as SQL gives them: MariaDB's
/// `UUID`, `INET4` and `INET6` come from the binlog as their stored bytes, from SQL as text, so a
/// backfilled row and a changed one would make different values (and keys).
const UNSUPPORTED_TYPES: [&str; 3] = ["uuid", "inet4", "inet6"];

/// The columns of such a type that the view's root reads (its keys, filter, attributes; every
/// column with implicit attributes). Its joins are not looked at.
pub(super) fn unsupported_types(view: &View, columns: &Columns) -> Found {
    let mut read: Vec<(String, String)> = Vec::new();
    let templates = std::iter::once(("key.pk", &view.key.pk))
        .chain(view.key.sk.as_ref().map(|t| ("key.sk", t)));
    for (field, template) in templates {
        for segment in &template.segments {
            if let Segment::Column { name, .. } = segment {
                read.push((field.to_string(), name.to_string()));
            }
        }
    }
    if let Some(filter) = &view.filter {
        let mut comparisons = Vec::new();
        filter.comparisons(&mut comparisons);
        read.extend(
            comparisons
                .iter()
                .map(|(c, _)| ("filter".to_string(), c.clone())),
        );
    }
    match &view.attributes {
        Attributes::Implicit => read.extend(
            columns
                .keys()
                .map(|c| ("attributes".to_string(), c.clone())),
        ),
        Attributes::Explicit(specs) => read.extend(
            specs
                .iter()
                .map(|s| (format!("attributes.{}", s.name), s.column.to_string())),
        ),
    }
    let mut found: Found = old_temporal_columns(&view.source, columns)
        .map(|message| ("source".to_string(), message))
        .into_iter()
        .collect();
    for (field, column) in read {
        let Some(info) = columns.get(&column) else {
            continue;
        };
        if UNSUPPORTED_TYPES.contains(&info.data_type.as_str()) {
            let message = format!("column {column} of {} is of MariaDB's type {}, which rowcast does not read from the binlog as SQL gives it (its bytes against its text): leave it out of the view", view.source, info.data_type);
            if !found.contains(&(field.clone(), message.clone())) {
                found.push((field, message));
            }
        }
    }
    found
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
        let mut found = unsupported_types(view, &cache[&view.source]);
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
