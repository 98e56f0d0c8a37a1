//! Reading the related rows of root rows, inside the snapshot the root rows were read in.
//!
//! One query per join per batch of root rows (`WHERE on_columns IN (…)`, at most
//! [`KEYS_PER_QUERY`] distinct join values each), so a chunk of a thousand orders with a lookup,
//! an embed and an aggregate costs three queries, not three thousand. MySQL narrows by its
//! collation; the exact match (numbers by value, strings byte for byte) is made here. Memory is
//! bounded: aggregates fold the rows as they stream in, and an embedded list stops collecting
//! once it would make the item larger than DynamoDB accepts (the item is then dead-lettered).

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

use super::{
    begin_snapshot, cell_param, decode_values, end_snapshot, in_condition, quote_name, select_rows,
    SqlError, SqlTable, TableCache, KEYS_PER_QUERY,
};
use crate::metrics::metrics;
use crate::view::join::{row_join_key, sort_embedded, Accumulator, JoinPart, JoinValue, Joined};
use crate::view::spec::{Join, JoinKind, View};
use crate::view::value::Cell;
use crate::view::Row;

/// Root rows read in one consistent snapshot, with their related rows when the view has joins.
pub struct SnapshotRead {
    pub rows: Vec<Row>,
    /// Primary key of the last row read (before `keep`), for keyset pagination.
    pub last_key: Option<Vec<Value>>,
    /// One per kept row, for a view with joins.
    pub joined: Option<Vec<Joined>>,
    pub position: crate::pipeline::Position,
    /// Rows the SELECT returned, before `keep` (a read that reached its LIMIT may have missed
    /// rows `keep` would take).
    pub fetched: usize,
}

/// The one snapshot read of backfill chunks, fills on miss and join refreshes: `SELECT … FROM
/// root <tail>` in a consistent snapshot, the rows `keep` accepts, and, when `view` has joins,
/// their related rows in the same snapshot.
pub async fn read_roots(
    conn: &mut Conn,
    tables: &mut TableCache,
    root: &SqlTable,
    view: Option<&View>,
    tail: (String, Vec<Value>),
    keep: &(dyn Fn(&Row) -> bool + Sync),
) -> Result<SnapshotRead, SqlError> {
    let position = begin_snapshot(conn).await?;
    let read = read_in_snapshot(conn, tables, root, view, tail, keep).await;
    end_snapshot(conn).await;
    let read = match read {
        Ok(read) => {
            tables.fresh(&root.schema.table);
            for join in view.map(|v| v.joins.as_slice()).unwrap_or_default() {
                tables.fresh(&join.from);
            }
            read
        }
        // The schemas are read again and the caller retries (a transient error); a second
        // time, the view names a column the table really lacks.
        Err(SqlError::StaleSchema { table, source }) => {
            return Err(if tables.stale_again(&table) {
                SqlError::Schema(format!(
                    "{table} lacks a column the read names, also after reading its schema again ({source})"
                ))
            } else {
                SqlError::StaleSchema { table, source }
            });
        }
        Err(error) => return Err(error),
    };
    Ok(SnapshotRead {
        rows: read.rows,
        last_key: read.last_key,
        joined: read.joined,
        position,
        fetched: read.fetched,
    })
}

/// Root rows and their related rows, read on `conn` inside a snapshot the caller holds (one
/// chunk of [`read_roots`], or of an export reading every view in one snapshot).
pub struct RootRows {
    pub rows: Vec<Row>,
    pub last_key: Option<Vec<Value>>,
    pub joined: Option<Vec<Joined>>,
    pub fetched: usize,
}

pub async fn read_in_snapshot(
    conn: &mut Conn,
    tables: &mut TableCache,
    root: &SqlTable,
    view: Option<&View>,
    (tail, params): (String, Vec<Value>),
    keep: &(dyn Fn(&Row) -> bool + Sync),
) -> Result<RootRows, SqlError> {
    let (mut rows, last_key) = select_rows(conn, root, &tail, params).await?;
    let fetched = rows.len();
    rows.retain(|row| keep(row));
    let joined = match view.filter(|v| v.has_joins()) {
        Some(view) => {
            metrics()
                .join_queries
                .with_label_values(&[&view.name])
                .inc();
            Some(read_joined(conn, tables, view, &rows).await?)
        }
        None => None,
    };
    Ok(RootRows {
        rows,
        last_key,
        joined,
        fetched,
    })
}

/// Above this many bytes an embedded list cannot fit in an item (400 KB).
const EMBED_LIMIT_BYTES: usize = 400 * 1024;

/// The distinct join values of `roots` for `root_columns`, as normalised keys and parameters.
fn root_keys(roots: &[Row], root_columns: &[&str]) -> Vec<(Vec<JoinValue>, Vec<Value>)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for root in roots {
        let Some(key) = row_join_key(root, root_columns.iter().copied()) else {
            continue;
        };
        if !seen.insert(key.clone()) {
            continue;
        }
        let params: Option<Vec<Value>> = root_columns
            .iter()
            .map(|c| root.get(c).and_then(cell_param))
            .collect();
        if let Some(params) = params {
            out.push((key, params));
        }
    }
    out
}

fn cell_bytes(cell: &Cell) -> usize {
    match cell {
        Cell::Text(s) | Cell::Decimal(s) => s.len(),
        Cell::Enum(label) => label.len(),
        Cell::Bytes(b) => b.len(),
        Cell::Set(labels) => labels.iter().map(|l| l.len()).sum(),
        Cell::Json(json) => json.to_string().len(),
        _ => 8,
    }
}

/// What one join collects per distinct join value.
enum Collected {
    Lookup(Row),
    Embed {
        rows: Vec<Row>,
        bytes: usize,
        too_large: bool,
    },
    Aggregate(Accumulator),
}

/// The related rows of every root row, one [`Joined`] per root (in order), read on `conn` inside
/// the snapshot that read the roots.
pub async fn read_joined(
    conn: &mut Conn,
    tables: &mut TableCache,
    view: &View,
    roots: &[Row],
) -> Result<Vec<Joined>, SqlError> {
    let mut per_join: Vec<HashMap<Vec<JoinValue>, Collected>> = Vec::new();
    let queries = metrics().join_queries.with_label_values(&[&view.name]);
    for join in &view.joins {
        per_join.push(read_one_join(conn, tables, join, roots, &queries).await?);
    }
    let mut out = Vec::with_capacity(roots.len());
    for root in roots {
        let mut parts = Vec::with_capacity(view.joins.len());
        for (join, collected) in view.joins.iter().zip(per_join.iter_mut()) {
            let root_columns: Vec<&str> = join.on.iter().map(|(_, r)| r.as_str()).collect();
            let key = row_join_key(root, root_columns.iter().copied());
            let found = key.as_ref().and_then(|k| collected.get(k));
            parts.push(match (&join.kind, found) {
                (JoinKind::Lookup { .. }, Some(Collected::Lookup(row))) => {
                    JoinPart::Lookup(Some(row.clone()))
                }
                (JoinKind::Lookup { .. }, _) => JoinPart::Lookup(None),
                (
                    JoinKind::Embed { .. },
                    Some(Collected::Embed {
                        too_large: true, ..
                    }),
                ) => JoinPart::EmbedTooLarge,
                (JoinKind::Embed { .. }, Some(Collected::Embed { rows, .. })) => {
                    JoinPart::Embed(rows.clone())
                }
                (JoinKind::Embed { .. }, _) => JoinPart::Embed(Vec::new()),
                (JoinKind::Aggregate { .. }, Some(Collected::Aggregate(acc))) => {
                    JoinPart::Aggregate(acc.clone())
                }
                (JoinKind::Aggregate { function, .. }, _) => {
                    JoinPart::Aggregate(Accumulator::new(function))
                }
            });
        }
        out.push(Joined { parts });
    }
    Ok(out)
}

/// Checks that `table` (the columns of `from` a read of `join` takes) has every column the join
/// asks for. `information_schema` shows an account only the columns it may read: none at all is
/// a table gone or a grant taken away (a REVOKE the binlog carries makes the schema load again),
/// not a column the view lacks.
fn columns_read(join: &Join, from: &SqlTable, table: &SqlTable) -> Result<(), SqlError> {
    for column in join.from_columns() {
        if table.schema.position(column).is_none() {
            let missing = format!("{}: column {column} is not in {}", join.field, join.from);
            if from.schema.columns.is_empty() {
                return Err(SqlError::Invisible(missing, join.from.to_string()));
            }
            return Err(SqlError::Schema(missing));
        }
    }
    Ok(())
}

async fn read_one_join(
    conn: &mut Conn,
    tables: &mut TableCache,
    join: &Join,
    roots: &[Row],
    queries: &prometheus::IntCounter,
) -> Result<HashMap<Vec<JoinValue>, Collected>, SqlError> {
    let from = tables.get(&join.from).await?;
    let from_columns: Vec<&str> = join.on.iter().map(|(f, _)| f.as_str()).collect();
    let root_columns: Vec<&str> = join.on.iter().map(|(_, r)| r.as_str()).collect();
    let table = if join.reads_every_column() {
        from.clone()
    } else {
        let mut needed = join.from_columns();
        needed.extend(from.primary_key.iter().map(String::as_str));
        std::sync::Arc::new(from.subset(&needed))
    };
    if let Err(error) = columns_read(join, &from, &table) {
        // Read again next time: a grant given back shows the columns again.
        tables.forget(&join.from);
        return Err(error);
    }
    let mut collected: HashMap<Vec<JoinValue>, Collected> = HashMap::new();
    let keys = root_keys(roots, &root_columns);
    for batch in keys.chunks(KEYS_PER_QUERY) {
        let wanted: std::collections::HashSet<&Vec<JoinValue>> =
            batch.iter().map(|(k, _)| k).collect();
        let params: Vec<Vec<Value>> = batch.iter().map(|(_, p)| p.clone()).collect();
        let (condition, params) = in_condition(&from_columns, &params);
        let order = table
            .primary_key
            .iter()
            .map(|c| quote_name(c))
            .collect::<Vec<_>>()
            .join(", ");
        let order = if order.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {order}")
        };
        let select = format!(
            "SELECT {} FROM {} WHERE {condition}{order}",
            table.column_list(),
            table.qualified_name()
        );
        queries.inc();
        let mut result = conn
            .exec_iter(select, params)
            .await
            .map_err(|e| SqlError::select(&table.schema.table, e))?;
        while let Some(raw) = result.next().await.map_err(SqlError::Query)? {
            let row = decode_values(&table, raw.unwrap())?;
            let Some(key) = row_join_key(&row, from_columns.iter().copied()) else {
                continue;
            };
            if !wanted.contains(&key) {
                // Equal by the column's collation only (case, trailing spaces): not a match.
                continue;
            }
            collect(join, &mut collected, key, row);
        }
    }
    if let JoinKind::Embed { order_by, .. } = &join.kind {
        for entry in collected.values_mut() {
            if let Collected::Embed { rows, .. } = entry {
                sort_embedded(rows, order_by, &from.primary_key);
            }
        }
    }
    Ok(collected)
}

fn collect(
    join: &Join,
    collected: &mut HashMap<Vec<JoinValue>, Collected>,
    key: Vec<JoinValue>,
    row: Row,
) {
    match &join.kind {
        JoinKind::Lookup { .. } => {
            collected.insert(key, Collected::Lookup(row));
        }
        JoinKind::Embed { .. } => {
            let entry = collected.entry(key).or_insert(Collected::Embed {
                rows: Vec::new(),
                bytes: 0,
                too_large: false,
            });
            if let Collected::Embed {
                rows,
                bytes,
                too_large,
            } = entry
            {
                if *too_large {
                    return;
                }
                *bytes += row.cells.iter().map(cell_bytes).sum::<usize>()
                    + row
                        .schema
                        .columns
                        .iter()
                        .map(|c| c.name.len())
                        .sum::<usize>();
                if *bytes > EMBED_LIMIT_BYTES {
                    *too_large = true;
                    rows.clear();
                    rows.shrink_to_fit();
                } else {
                    rows.push(row);
                }
            }
        }
        JoinKind::Aggregate { function, .. } => {
            let entry = collected
                .entry(key)
                .or_insert_with(|| Collected::Aggregate(Accumulator::new(function)));
            if let Collected::Aggregate(acc) = entry {
                let null = Cell::Null;
                let cell = function.column().and_then(|c| row.get(c)).unwrap_or(&null);
                acc.add(cell);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_conditions() {
        let (text, params) =
            in_condition(&["order_id"], &[vec![Value::Int(1)], vec![Value::Int(2)]]);
        assert_eq!(text, "`order_id` IN (?, ?)");
        assert_eq!(params.len(), 2);
        let (text, params) = in_condition(
            &["a", "b"],
            &[
                vec![Value::Int(1), Value::Int(2)],
                vec![Value::Int(3), Value::Int(4)],
            ],
        );
        assert_eq!(text, "(`a`, `b`) IN ((?, ?), (?, ?))");
        assert_eq!(params.len(), 4);
    }
}
