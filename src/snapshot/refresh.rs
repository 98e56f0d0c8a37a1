//! Reading a batch of marked roots of a view with joins again (see `merge/marks.rs` for what
//! marks them): root rows matching the batch's keys, with their related rows, chunk by chunk in
//! primary-key order, each chunk in one consistent snapshot.

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
}

impl RefreshRead {
    pub fn new(batch: RefreshBatch, view: Arc<View>) -> Self {
        RefreshRead {
            batch,
            view,
            after: None,
        }
    }

    /// Reads the next chunk of the batch's roots (at most `chunk_rows`) with their related rows;
    /// the read says whether it is the batch's last. The batch moves past it only when it is
    /// merged ([`RefreshRead::merged`] with the key returned here).
    pub async fn read_next(
        &self,
        tables: &mut TableCache,
        chunk_rows: usize,
    ) -> Result<(Read, Option<Vec<Value>>), SqlError> {
        let view = self.view.clone();
        let root = tables.get(&view.source).await?;
        let columns: Vec<&str> = self.batch.columns.iter().map(String::as_str).collect();
        let condition = in_condition(&columns, &self.batch.keys);
        let tail = keyset_tail(&root, Some(condition), self.after.as_deref(), chunk_rows);
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
        let last = read.rows.len() < chunk_rows;
        debug!(view = %name, keys = self.batch.keys.len(), rows = read.rows.len(), position = %read.position, "join refresh read");
        let merged = Read {
            table: view.source.clone(),
            views: vec![view.name.clone()],
            rows: read.rows,
            joined: read.joined,
            position: read.position,
            kind: ReadKind::Refresh { last },
            hold: None,
        };
        Ok((merged, read.last_key))
    }

    /// The chunk that ended at `last_key` is merged: the next starts after it.
    pub fn merged(&mut self, last_key: Option<Vec<Value>>) {
        if let Some(key) = last_key {
            self.after = Some(key);
        }
    }
}
