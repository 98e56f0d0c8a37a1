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
    /// Tables a snapshot read found stale (an unknown column) and that were read again since.
    stale: std::collections::HashSet<String>,
}

impl TableCache {
    pub fn new(pool: Pool) -> Self {
        TableCache {
            pool,
            tables: HashMap::new(),
            stale: Default::default(),
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

    /// A snapshot read of `table` named a column it lacks. The first time, every table is read
    /// again (`false`: retry); again before a read of it succeeded, the view asks for a column
    /// the table really lacks (`true`: a definite error).
    pub fn stale_again(&mut self, table: &str) -> bool {
        if self.stale.remove(table) {
            return true;
        }
        self.stale.insert(table.to_string());
        self.tables.clear();
        false
    }

    /// A read of `table` succeeded.
    pub fn fresh(&mut self, table: &TableRef) {
        if !self.stale.is_empty() {
            self.stale.remove(&table.to_string());
        }
    }

    /// A DDL statement was seen: forget every table.
    pub fn clear(&mut self) {
        self.tables.clear();
    }
}
