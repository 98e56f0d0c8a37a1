//! Table schemas of the tables the views read, built from TABLE_MAP events and cached by table
//! id until a DDL statement invalidates them. The few facts the binlog lacks come from
//! `information_schema` through a small pool; everything else is the binlog's own metadata.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::binlog::events::TableMapEvent;
use mysql_async::prelude::Queryable;
use mysql_async::Pool;

use super::decode::{schema_from_table_map, TableExtras};
use super::SourceError;
use crate::snapshot::read::{load_table, SqlTable};
use crate::view::row::TableSchema;
use crate::view::spec::TableRef;

pub struct SchemaCache {
    pool: Pool,
    by_table_id: HashMap<u64, Arc<TableSchema>>,
    extras: HashMap<TableRef, TableExtras>,
    /// Tables as SQL reads them (fill on miss), also forgotten on DDL.
    sql: HashMap<TableRef, Arc<SqlTable>>,
}

impl SchemaCache {
    pub fn new(pool: Pool) -> Self {
        SchemaCache {
            pool,
            by_table_id: HashMap::new(),
            extras: HashMap::new(),
            sql: HashMap::new(),
        }
    }

    /// A DDL statement was seen: forget everything, schemas are rebuilt from the next table maps.
    pub fn invalidate(&mut self) {
        self.by_table_id.clear();
        self.extras.clear();
        self.sql.clear();
    }

    pub fn cached(&self, table_id: u64, tme: &TableMapEvent<'_>) -> Option<Arc<TableSchema>> {
        self.by_table_id
            .get(&table_id)
            .filter(|s| {
                s.columns.len() == tme.columns_count() as usize
                    && s.table.table == tme.table_name()
                    && s.table.database == tme.database_name()
            })
            .cloned()
    }

    pub async fn load(
        &mut self,
        table_id: u64,
        tme: &TableMapEvent<'static>,
    ) -> Result<Arc<TableSchema>, SourceError> {
        let table = TableRef {
            database: tme.database_name().into_owned(),
            table: tme.table_name().into_owned(),
        };
        let extras = match self.extras.get(&table) {
            Some(extras) => extras.clone(),
            None => {
                let extras = fetch_extras(&self.pool, &table).await?;
                self.extras.insert(table.clone(), extras.clone());
                extras
            }
        };
        let schema = Arc::new(schema_from_table_map(tme, &extras).map_err(SourceError::Decode)?);
        self.by_table_id.insert(table_id, schema.clone());
        Ok(schema)
    }
}

impl SchemaCache {
    /// The table as SQL reads it, loaded from `information_schema` once per DDL generation.
    /// Forgets what SQL said of `table`: the next [`SchemaCache::sql_table`] reads it again.
    pub fn forget_sql(&mut self, table: &TableRef) {
        self.sql.remove(table);
    }

    pub async fn sql_table(&mut self, table: &TableRef) -> Result<Arc<SqlTable>, SourceError> {
        if let Some(found) = self.sql.get(table) {
            return Ok(found.clone());
        }
        let extras = fetch_extras(&self.pool, table).await?;
        let mut conn = self.pool.get_conn().await.map_err(SourceError::Query)?;
        let loaded = Arc::new(load_table(&mut conn, table, &extras).await?);
        self.sql.insert(table.clone(), loaded.clone());
        Ok(loaded)
    }
}

/// JSON columns of MariaDB (LONGTEXT with a `json_valid` check) and virtual columns.
pub async fn fetch_extras(pool: &Pool, table: &TableRef) -> Result<TableExtras, SourceError> {
    let mut conn = pool.get_conn().await.map_err(SourceError::Query)?;
    let columns: Vec<(String, String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&table.database, &table.table),
        )
        .await
        .map_err(SourceError::Query)?;
    let mut extras = TableExtras::default();
    for (name, data_type, extra) in columns {
        if data_type.eq_ignore_ascii_case("json") {
            extras.json_columns.insert(name.clone());
        }
        let extra = extra.to_ascii_uppercase();
        if extra.contains("VIRTUAL") {
            extras.virtual_columns.insert(name);
        }
    }
    // MariaDB: JSON is LONGTEXT with CHECK (json_valid(`col`)); MySQL has no such rows.
    let checks: Vec<String> = conn
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            (&table.database, &table.table),
        )
        .await
        .unwrap_or_default();
    for clause in checks {
        if let Some(column) = json_valid_column(&clause) {
            extras.json_columns.insert(column);
        }
    }
    Ok(extras)
}

fn json_valid_column(clause: &str) -> Option<String> {
    let inner = clause
        .trim()
        .strip_prefix("json_valid(")?
        .strip_suffix(')')?;
    let column = inner.trim().trim_matches('`');
    (!column.is_empty() && !column.contains('`')).then(|| column.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_valid_clause() {
        assert_eq!(
            super::json_valid_column("json_valid(`doc`)"),
            Some("doc".into())
        );
        assert_eq!(super::json_valid_column("`a` > 0"), None);
    }
}
