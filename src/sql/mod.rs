//! SQL plumbing every stage uses: tables as SQL reads them (`table.rs`, cached in `cache.rs`),
//! rows decoded into the view engine's cells (`rows.rs`), statement pieces (`query.rs`) and
//! consistent-snapshot reads at a known binlog position (`snapshot.rs`).

mod cache;
pub mod join;
mod query;
mod rows;
mod snapshot;
mod table;
pub mod values;

pub use cache::TableCache;
pub use query::{
    cell_param, in_condition, key_param, keyset_tail, matching_condition, KEYS_PER_QUERY,
};
pub use rows::{decode_values, query_cell, select_rows};
pub use snapshot::{
    begin_snapshot, binlog_end, binlog_files, end_snapshot, gtid_state_at, prepared_xids,
};
pub use table::{fetch_extras, load_table, quote_name, SqlTable, TableExtras};

use crate::error::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("cannot connect to the SQL server")]
    Connect(#[source] mysql_async::Error),
    #[error("SQL query failed")]
    Query(#[source] mysql_async::Error),
    #[error("cannot decode a row of {table}: {reason}")]
    Decode { table: String, reason: String },
    #[error("the server reports no binlog_snapshot_file/position (snapshot reads need MariaDB)")]
    NoSnapshotPosition,
    #[error("a view does not fit its tables: {0}")]
    Schema(String),
    /// `information_schema` shows rowcast's account no column of a table a view reads: the
    /// table is gone, or a grant on it was taken away (as 1142, see [`access_denied`]).
    #[error("a view does not fit its tables: {0} (rowcast's account sees no column of {1}: the table is gone, or the account may no longer SELECT it)")]
    Invisible(String, String),
    /// A column named from the cached schema is gone (a DDL the reader has not reached yet):
    /// the schemas are read again and the read retried.
    #[error("the schema of {table} changed under a snapshot read")]
    StaleSchema {
        table: String,
        #[source]
        source: mysql_async::Error,
    },
}

/// `ER_BAD_FIELD_ERROR`: unknown column.
const UNKNOWN_COLUMN: u16 = 1054;

impl SqlError {
    /// A failed SELECT of `table`'s cached columns: an unknown column means the cached schema
    /// is older than the table.
    pub fn select(table: &impl std::fmt::Display, error: mysql_async::Error) -> SqlError {
        match &error {
            mysql_async::Error::Server(server) if server.code == UNKNOWN_COLUMN => {
                SqlError::StaleSchema {
                    table: table.to_string(),
                    source: error,
                }
            }
            _ => SqlError::Query(error),
        }
    }
}

/// Server errors that need an operator: access denied (to a database, the account, a table, a
/// column, a privilege), unknown table or column, syntax. A table or column refused (1142, 1143:
/// a grant taken away while rowcast runs) was once taken for an error that may pass, and a join
/// refresh of such a table was retried for ever instead of halting its view, its held marks
/// keeping every view's checkpoint where it was.
const DEFINITE_SERVER_CODES: [u16; 8] = [1044, 1045, 1054, 1064, 1142, 1143, 1146, 1227];

/// A table or column refused to rowcast's account (1142, 1143, or no column of it visible):
/// definite, but also what a
/// grant briefly taken away and given again looks like (a configuration tool's REVOKE ALL, then
/// GRANT), so the snapshot worker retries it for a while before it gives a read up.
pub fn access_denied(error: &SqlError) -> bool {
    match error {
        SqlError::Query(mysql_async::Error::Server(server)) => [1142, 1143].contains(&server.code),
        SqlError::Invisible(..) => true,
        _ => false,
    }
}

/// Whether a server or connection error is worth retrying.
pub fn classify(error: &mysql_async::Error) -> ErrorClass {
    match error {
        mysql_async::Error::Server(server) if DEFINITE_SERVER_CODES.contains(&server.code) => {
            ErrorClass::Definite
        }
        mysql_async::Error::Url(_) => ErrorClass::Definite,
        _ => ErrorClass::Transient,
    }
}

impl Classify for SqlError {
    fn class(&self) -> ErrorClass {
        match self {
            SqlError::Connect(e) | SqlError::Query(e) => classify(e),
            SqlError::StaleSchema { .. } => ErrorClass::Transient,
            SqlError::Decode { .. }
            | SqlError::NoSnapshotPosition
            | SqlError::Schema(_)
            | SqlError::Invisible(..) => ErrorClass::Definite,
        }
    }
}
