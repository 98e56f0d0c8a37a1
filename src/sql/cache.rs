//! Tables as SQL reads them, loaded from `information_schema` once and kept until forgotten
//! (after a DDL statement, or a statement a stale schema may explain).

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::Pool;

use super::table::{fetch_extras, load_table, SqlTable};
use super::SqlError;
use crate::view::spec::TableRef;

pub struct TableCache {
    pool: Pool,
    tables: HashMap<TableRef, Arc<SqlTable>>,
}

impl TableCache {
    pub fn new(pool: Pool) -> Self {
        TableCache {
            pool,
            tables: HashMap::new(),
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The table as SQL reads it.
    pub async fn get(&mut self, table: &TableRef) -> Result<Arc<SqlTable>, SqlError> {
        if let Some(found) = self.tables.get(table) {
            return Ok(found.clone());
        }
        let extras = fetch_extras(&self.pool, table).await?;
        let mut conn = self.pool.get_conn().await.map_err(SqlError::Connect)?;
        let loaded = Arc::new(load_table(&mut conn, table, &extras).await?);
        self.tables.insert(table.clone(), loaded.clone());
        Ok(loaded)
    }

    /// Forgets what SQL said of `table`: the next [`TableCache::get`] reads it again.
    pub fn forget(&mut self, table: &TableRef) {
        self.tables.remove(table);
    }

    /// A DDL statement was seen: forget every table.
    pub fn clear(&mut self) {
        self.tables.clear();
    }
}
