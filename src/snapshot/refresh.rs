//! Reading a batch of marked roots of a view with joins again (see `merge/marks.rs` for what
//! marks them): root rows matching the batch's keys, with their related rows, chunk by chunk in
//! primary-key order, each chunk in one consistent snapshot. Chunks follow the width of the
//! roots as a backfill's do (`driver::chunk_limit`: the first asks for 64 roots, each later one
//! for about 4 MiB of rows as wide as the last chunk's, related rows included, `chunk_rows` at
//! most). Before 2026-12-07's sixth stop every chunk asked for `chunk_rows` roots: 1,000 orders
//! embedding 400 KB of lines each were 400 MB in memory at once (`tests/joins.rs`, seen
//! failing).

use std::sync::Arc;

use mysql_async::Value;
use tracing::debug;

use crate::metrics::metrics;
use crate::pipeline::snapshot::{Read, ReadKind, RefreshBatch};
use crate::sql::join::read_roots;
use crate::sql::{in_condition, keyset_tail, SqlError, TableCache};
use crate::view::spec::View;

/// A batch being read.
pub struct RefreshRead {
    pub batch: RefreshBatch,
    pub view: Arc<View>,
    /// Primary key of the last root read: the next chunk starts after it.
    after: Option<Vec<Value>>,
    /// Roots the next chunk asks for; `None` before the first.
    limit: Option<usize>,
}

/// Where a chunk ended: its last root's key, how many roots it had and what they weighed.
pub struct RefreshEnd {
    last_key: Option<Vec<Value>>,
    rows: usize,
    weight: usize,
}

impl RefreshRead {
    pub fn new(batch: RefreshBatch, view: Arc<View>) -> Self {
        RefreshRead {
            batch,
            view,
            after: None,
            limit: None,
        }
    }

    /// Reads the next chunk of the batch's roots (at most `chunk_rows`) with their related rows;
    /// the read says whether it is the batch's last. The batch moves past it only when it is
    /// merged ([`RefreshRead::merged`] with the end returned here).
    pub async fn read_next(
        &self,
        tables: &mut TableCache,
        chunk_rows: usize,
    ) -> Result<(Read, RefreshEnd), SqlError> {
        let limit = (self.limit).unwrap_or_else(|| super::driver::first_chunk(chunk_rows));
        let view = self.view.clone();
        let root = tables.get(&view.source).await?;
        let columns: Vec<&str> = self.batch.columns.iter().map(String::as_str).collect();
        let condition = in_condition(&columns, &self.batch.keys);
        let tail = keyset_tail(&root, Some(condition), self.after.as_deref(), limit);
        let mut conn = tables.pool().get_conn().await.map_err(SqlError::Connect)?;
        let read = read_roots(&mut conn, tables, &root, Some(&view), tail, &|_| true).await?;
        let name = view.name.as_str();
        metrics()
            .join_refresh_reads
            .with_label_values(&[name])
            .inc();
        metrics()
            .join_refresh_rows
            .with_label_values(&[name])
            .inc_by(read.rows.len() as u64);
        let last = read.rows.len() < limit;
        let end = RefreshEnd {
            last_key: read.last_key,
            rows: read.rows.len(),
            weight: super::driver::read_weight(&read.rows, read.joined.as_deref()),
        };
        debug!(view = %name, keys = self.batch.keys.len(), rows = read.rows.len(), position = %read.position, "join refresh read");
        let merged = Read {
            table: view.source.clone(),
            views: vec![view.name.clone()],
            rows: read.rows,
            joined: read.joined,
            position: read.position,
            key: Vec::new(),
            kind: ReadKind::Refresh { last },
            hold: None,
        };
        Ok((merged, end))
    }

    /// The chunk that ended at `end` is merged: the next starts after it, and asks for as many
    /// roots as about 4 MiB holds of roots as wide as its.
    pub fn merged(&mut self, end: RefreshEnd, chunk_rows: usize) {
        if let Some(key) = end.last_key {
            self.after = Some(key);
        }
        self.limit = Some(super::driver::chunk_limit(chunk_rows, end.rows, end.weight));
    }
}
