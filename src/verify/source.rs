//! The source side of a verification: the items a view's rows make, read the way a backfill
//! reads them (key-ordered chunks, related rows of each chunk in the same snapshot, the same
//! projection), so a view with joins is verified through the reads that build its items.

use std::collections::HashMap;

use mysql_async::Conn;

use super::Pacer;
use crate::pipeline::Position;
use crate::sql::join::read_joined;
use crate::sql::{
    begin_snapshot, end_snapshot, keyset_tail, matching_condition, select_rows, SqlError, SqlTable,
    TableCache,
};

use crate::dynamo::{item_size, MAX_ITEM_BYTES, ORIGIN_BYTES};
use crate::view::project::Item;
use crate::view::{item_key, key_readings, project_snapshot, ItemKey, ItemOp, Row, View};

/// Rows read per page when looking a key up.
const PAGE: usize = 500;

/// The items `rows` make (with their related rows read on `conn`, inside its snapshot); `None`
/// for an item DynamoDB cannot take, which the daemon sets aside as a dead letter (a value it
/// cannot hold, over 400 KB): not a difference, and a repair would only make another dead
/// letter of it.
async fn project_rows(
    conn: &mut Conn,
    tables: &mut TableCache,
    view: &View,
    rows: &[Row],
    visit: &mut (dyn FnMut(ItemKey, Option<Item>) + Send),
) -> Result<(), SqlError> {
    let joined = if view.has_joins() {
        Some(read_joined(conn, tables, view, rows).await?)
    } else {
        None
    };
    for (i, row) in rows.iter().enumerate() {
        let related = joined.as_ref().and_then(|j| j.get(i));
        let projection = project_snapshot(view, row, related)
            .map_err(|e| SqlError::Schema(format!("view {}: {e}", view.name)))?;
        for op in projection.ops {
            if let ItemOp::Put { key, item } = op {
                // The writer adds `_origin` to the items of a table with write-back (and
                // counts it against the limit).
                let origin = if view.mark_removals { ORIGIN_BYTES } else { 0 };
                let writable = item_size(&item, &view.name) + origin <= MAX_ITEM_BYTES;
                visit(key, writable.then_some(item));
            }
        }
        for dead in projection.dead {
            if let Some(key) = dead.key {
                visit(key, None);
            }
        }
    }
    Ok(())
}

/// Every item the view's rows make, in chunks of `chunk` rows in primary key order, each chunk
/// read on `conn` in a consistent snapshot of its own. Returns the number of rows read, of items
/// DynamoDB cannot take (left out), and the last chunk's snapshot position.
pub async fn each_item(
    conn: &mut Conn,
    tables: &mut TableCache,
    (view, table): (&View, &SqlTable),
    chunk: usize,
    pacer: &Pacer,
    visit: &mut (dyn FnMut(ItemKey, Item) + Send),
) -> Result<(u64, u64, Option<Position>), SqlError> {
    // Items DynamoDB cannot take are left out: settling tells them (`items_at`).
    let mut unwritable = 0u64;
    let mut visit = |key: ItemKey, item: Option<Item>| match item {
        Some(item) => visit(key, item),
        None => unwritable += 1,
    };
    let mut after = None;
    let mut total = 0u64;
    loop {
        let position = begin_snapshot(conn).await?;
        let read = async {
            let (tail, params) = keyset_tail(table, None, after.as_deref(), chunk);
            let (rows, last_key) = select_rows(conn, table, &tail, params).await?;
            project_rows(conn, tables, view, &rows, &mut visit).await?;
            Ok::<_, SqlError>((rows.len(), last_key))
        }
        .await;
        end_snapshot(conn).await;
        let (rows, last_key) = read?;
        total += rows as u64;
        pacer.take(rows as u64).await;
        if rows < chunk {
            return Ok((total, unwritable, Some(position)));
        }
        after = last_key;
    }
}

/// The items the source makes under `keys` (those it makes), read on `conn` inside its
/// snapshot: each key is parsed back into its columns through the view's templates, as a fill
/// on miss does, and every row with those column values is read (a page at a time), not only
/// the first ones. `None`: an item DynamoDB cannot take (see `project_rows`). A key that parses
/// back in more ways than a lookup reads is put in `unread`: what the source makes under it is
/// not known (it is not "nothing").
pub async fn items_at(
    conn: &mut Conn,
    tables: &mut TableCache,
    (view, table): (&View, &SqlTable),
    keys: &[ItemKey],
    unread: &mut Vec<ItemKey>,
) -> Result<HashMap<ItemKey, Option<Item>>, SqlError> {
    let mut out = HashMap::new();
    for key in keys {
        // Every reading of the key (a value holding a literal of its template may have been
        // split elsewhere): the row behind the item is among them.
        let Some(readings) = key_readings(view, key) else {
            unread.push(key.clone());
            continue;
        };
        let mut after = None;
        loop {
            let condition = matching_condition(table, &readings);
            let (tail, params) = keyset_tail(table, condition, after.as_deref(), PAGE);
            let (mut rows, last_key) = select_rows(conn, table, &tail, params).await?;
            let full = rows.len() == PAGE;
            rows.retain(|row| item_key(view, row).as_ref() == Some(key));
            // Two rows may render one key (a value holding a literal of the template): the
            // daemon writes the one it can, so a writable item is kept over an unwritable one.
            let mut visit = |found: ItemKey, item: Option<Item>| {
                if &found == key {
                    let slot = out.entry(found).or_insert(None);
                    if slot.is_none() {
                        *slot = item;
                    }
                }
            };
            project_rows(conn, tables, view, &rows, &mut visit).await?;
            if !full || last_key.is_none() {
                break;
            }
            after = last_key;
        }
    }
    Ok(out)
}
