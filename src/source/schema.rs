//! Table schemas of the tables the views read, built from TABLE_MAP events and cached by table
//! id until a DDL statement invalidates them. The few facts the binlog lacks come from
//! `information_schema` through a small pool; everything else is the binlog's own metadata.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::binlog::events::TableMapEvent;
use mysql_async::Pool;

use super::decode::{column_charsets, schema_from_table_map, DecodeError};
use super::image::Layout;
use super::SourceError;
use crate::sql::{fetch_extras, TableExtras};
use crate::view::row::TableSchema;
use crate::view::spec::TableRef;

/// A table map's schema and each column's charset as the server lists them.
#[derive(Clone)]
pub struct Mapped {
    pub schema: Arc<TableSchema>,
    pub charsets: Arc<[u16]>,
    /// How its row images are read (`source/image.rs`).
    pub layout: Arc<Layout>,
    /// The table map all of it was made of: an entry serves only a table map equal to it.
    table_map: Arc<TableMapEvent<'static>>,
}

pub struct SchemaCache {
    pool: Pool,
    /// The server is MariaDB (its table maps list a charset for spatial columns too); set by
    /// the reader for each stream it opens.
    pub mariadb: bool,
    by_table_id: HashMap<u64, Mapped>,
    extras: HashMap<TableRef, TableExtras>,
}

impl SchemaCache {
    pub fn new(pool: Pool) -> Self {
        SchemaCache {
            pool,
            mariadb: true,
            by_table_id: HashMap::new(),
            extras: HashMap::new(),
        }
    }

    /// A DDL statement was seen: forget everything, schemas are rebuilt from the next table maps.
    pub fn invalidate(&mut self) {
        self.by_table_id.clear();
        self.extras.clear();
    }

    /// The entry made of a table map equal to `tme` (a few bytes compared per rows event). A
    /// table id is the server process's: after a restart, which a connection reading older
    /// files passes through, or on another server after a failover, the same id can name
    /// another table, or the table again with columns of other widths (an ALTER with
    /// `sql_log_bin=0`), and row images read with the old layout would be read misaligned
    /// (found by a review). The table map (with `binlog_row_metadata=FULL`) holds the names,
    /// types, metadata and signedness everything in an entry is made of, with the table's
    /// `information_schema` extras, which are kept by name until a DDL statement.
    pub fn cached(&self, table_id: u64, tme: &TableMapEvent<'_>) -> Option<Mapped> {
        self.by_table_id
            .get(&table_id)
            .filter(|m| *m.table_map == *tme)
            .cloned()
    }

    /// Whether `table`'s engine rolls back (as of its schema's load; `false` when not known).
    pub fn transactional(&self, table: &TableRef) -> bool {
        self.extras.get(table).is_some_and(|e| e.transactional)
    }

    pub async fn load(
        &mut self,
        table_id: u64,
        tme: &TableMapEvent<'static>,
    ) -> Result<Mapped, SourceError> {
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
        let schema = Arc::new(
            schema_from_table_map(tme, &extras, self.mariadb).map_err(SourceError::Decode)?,
        );
        let unreadable = |reason| {
            SourceError::Decode(DecodeError::TableMap {
                table: table.to_string(),
                reason,
            })
        };
        let charsets = column_charsets(tme, self.mariadb).map_err(unreadable)?;
        let layout = Layout::of(tme).map_err(unreadable)?;
        let mapped = Mapped {
            schema,
            charsets: charsets.into(),
            layout: Arc::new(layout),
            table_map: Arc::new(tme.clone()),
        };
        // One id per table: MariaDB gives a table a new id whenever its definition is opened
        // again (evicted from the table definition cache), and the old ids never come back.
        // Kept, they would grow without bound between two DDL statements (found by a review).
        self.by_table_id
            .retain(|_, known| known.schema.table != table);
        self.by_table_id.insert(table_id, mapped.clone());
        Ok(mapped)
    }
}
