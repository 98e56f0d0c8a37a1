//! The binlog reader: connects as a replica, follows the binlog from a position, decodes the row
//! events of the tables that views read, and sends row changes and transaction boundaries
//! downstream in commit order.
//!
//! Failure handling: every connection or stream error is transient and the reader reconnects
//! with backoff from the end of the last complete transaction it read (rows of a transaction
//! cut short are sent again with the same counter, which downstream writes idempotently). A
//! position the server no longer has (error 1236) is definite: the daemon stops and says so.
//! An idle stream (no event and no heartbeat within `idle_timeout`) is treated as dead.

mod charset;
mod connect;
pub mod decode;
pub mod image;
pub mod mariadb;
pub mod preflight;
mod reader;
pub mod schema;
mod statement;

use std::collections::HashSet;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

pub use connect::{pool, resolve};
pub use reader::{Source, StartPoint};

use crate::error::{Classify, ErrorClass};
use crate::pipeline::Position;
use crate::view::spec::TableRef;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect to the source")]
    Connect(#[source] mysql_async::Error),
    #[error("source query failed")]
    Query(#[source] mysql_async::Error),
    #[error("binlog stream failed")]
    Stream(#[source] mysql_async::Error),
    #[error("binlog position {position} is not on the server (purged or unknown): {message}")]
    PositionGone { position: String, message: String },
    #[error("binlog stream idle for {0:?} (no event, no heartbeat)")]
    Idle(std::time::Duration),
    #[error("no connection to the source within {0:?}")]
    ConnectTimeout(std::time::Duration),
    #[error("{0}")]
    ServerChanged(String),
    #[error("binlog stream ended")]
    Ended,
    #[error("cannot decode the binlog")]
    Decode(#[source] decode::DecodeError),
    #[error("bad source url")]
    Url(#[source] mysql_async::UrlError),
    #[error("TLS to the source: {0}")]
    Tls(String),
    #[error("the pipeline stopped")]
    DownstreamClosed,
    #[error("a view does not fit its tables: {0}")]
    Schema(String),
    #[error("{0}")]
    ServerIdTaken(String),
    #[error(transparent)]
    Sql(#[from] crate::sql::SqlError),
}

impl Classify for SourceError {
    fn class(&self) -> ErrorClass {
        match self {
            SourceError::PositionGone { .. }
            | SourceError::Decode(_)
            | SourceError::Url(_)
            | SourceError::Tls(_)
            | SourceError::ServerChanged(_)
            | SourceError::Schema(_) => ErrorClass::Definite,
            // Waited out: rowcast does not connect until the replica is gone or renumbered.
            SourceError::ServerIdTaken(_) => ErrorClass::Transient,
            SourceError::Connect(e) | SourceError::Query(e) | SourceError::Stream(e) => {
                match e {
                    // Access denied, unknown table or column: fixing them needs an operator.
                    mysql_async::Error::Server(server)
                        if [1044, 1045, 1054, 1064, 1146, 1227].contains(&server.code) =>
                    {
                        ErrorClass::Definite
                    }
                    _ => ErrorClass::Transient,
                }
            }
            SourceError::Sql(e) => e.class(),
            // Nothing downstream any more: no reconnect can help.
            SourceError::DownstreamClosed => ErrorClass::Definite,
            SourceError::Idle(_) | SourceError::ConnectTimeout(_) | SourceError::Ended => {
                ErrorClass::Transient
            }
        }
    }
}

/// MariaDB and MySQL differ in GTIDs, the dump command and status statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

pub async fn connect(
    connection: &crate::config::SourceConnection,
) -> Result<(Conn, Flavor), SourceError> {
    let (_opts, conn) = connect::resolve(connection).await?;
    with_flavor(conn).await
}

/// The connection and whether the server is MariaDB or MySQL.
pub async fn with_flavor(mut conn: Conn) -> Result<(Conn, Flavor), SourceError> {
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(SourceError::Query)?;
    let flavor = if version
        .unwrap_or_default()
        .to_ascii_lowercase()
        .contains("mariadb")
    {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    };
    Ok((conn, flavor))
}

/// Which server this is, as far as checkpoints go (see `control::server`).
pub async fn server_identity(
    conn: &mut Conn,
    flavor: Flavor,
) -> Result<crate::control::server::ServerIdentity, SourceError> {
    let query = match flavor {
        Flavor::MySql => "SELECT @@server_id, @@server_uuid, NULL",
        Flavor::MariaDb => "SELECT @@server_id, NULL, @@gtid_domain_id",
    };
    let row: Option<(u32, Option<String>, Option<u32>)> =
        conn.query_first(query).await.map_err(SourceError::Query)?;
    let (server_id, server_uuid, gtid_domain_id) = row.unwrap_or_default();
    Ok(crate::control::server::ServerIdentity {
        server_id,
        server_uuid,
        gtid_domain_id,
    })
}

/// The host rowcast's binlog connections register as (`SHOW SLAVE HOSTS` lists it, port 0).
pub const REPLICA_HOST: &str = "rowcast";

/// Another replica of a MariaDB server that uses `server_id`, as `host:port`, from `SHOW SLAVE
/// HOSTS`. MariaDB keeps one binlog connection per replica id and drops the older one when
/// another connects with it, so rowcast connecting would cut a real replica off, again at every
/// reconnect. (MySQL tells replicas apart by their UUID, which rowcast does not send: there
/// rowcast never cuts a replica off, and the check is not made.) A replica is a registration
/// with a port (a server reports its own); rowcast's, its earlier runs' too, have port 0.
/// `None` as well when the user may not list replicas (REPLICATION MASTER ADMIN): the check is
/// skipped. Columns are read by name: `show_slave_auth_info` adds some after `Host`.
pub async fn replica_using(conn: &mut Conn, server_id: u32) -> Option<String> {
    let rows: Vec<mysql_async::Row> = conn.query("SHOW SLAVE HOSTS").await.ok()?;
    rows.into_iter().find_map(|row| {
        let id = row.get_opt::<u32, _>("Server_id")?.ok()?;
        let host = row
            .get_opt::<Vec<u8>, _>("Host")
            .and_then(Result::ok)
            .unwrap_or_default();
        let port = row.get_opt::<u32, _>("Port")?.ok()?;
        (id == server_id && port != 0).then(|| format!("{}:{port}", String::from_utf8_lossy(&host)))
    })
}

/// Whether a MariaDB server refuses to send its binlog from GTID state `state` as purged, by its
/// own judgement: a dump from that state is asked for on a connection of its own (replica id
/// `server_id ^ 2^30`, the re-read connection's) and the server's first answer read. Predicting
/// it from the oldest binlog's GTID list was tried and dropped: a review found it wrong with
/// several server ids in a domain (gtid_strict_mode off) and after `DELETE_DOMAIN_ID`.
/// `Some(Purged)`: refused as purged (error 1236 saying it found the state in no binlog file).
/// `Some(Other)`: MariaDB's other refusals, also error 1236 — a state ahead of the server's
/// binlog after a failover, a binlog it cannot open — which are not purges, and on which the
/// reader would stop. `None` otherwise, and on any other failure (logged; the reader finds
/// those out and stops or reconnects, as before).
pub async fn gtid_refused(
    connection: &crate::config::SourceConnection,
    server_id: u32,
    state: &str,
) -> Option<GtidRefusal> {
    use futures_util::StreamExt;
    let refused = |error: &mysql_async::Error| match error {
        mysql_async::Error::Server(server) if server.code == 1236 => {
            let message = server.message.clone();
            Some(if message.contains(PURGED_GTID_STATE) {
                GtidRefusal::Purged(message)
            } else {
                GtidRefusal::Other(message)
            })
        }
        _ => {
            tracing::warn!(error = %error, "the checkpoint's GTID state could not be tried on the server; the reader will see");
            None
        }
    };
    let probe = async {
        let (mut conn, flavor) = connect(connection)
            .await
            .map_err(|error| tracing::warn!(error = %crate::error::chain(&error), "no connection to ask the server about the checkpoint's GTID state"))
            .ok()?;
        let from = Position {
            file: String::new(),
            pos: 4,
            gtid: Some(state.to_string()),
        };
        let request = dump_request(
            &mut conn,
            flavor,
            server_id ^ reader::REREAD_ID_BIT,
            &from,
            true,
        )
        .await
        .ok()?;
        let mut stream = match conn.get_binlog_stream(request).await {
            Ok(stream) => stream,
            Err(error) => return refused(&error),
        };
        match stream.next().await {
            Some(Err(error)) => refused(&error),
            _ => None,
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), probe)
        .await
        .ok()
        .flatten()
}

/// The binlog dump request of replica `server_id` from `from`, the connection's session set
/// for it: MariaDB's capability, and with `by_gtid` its GTID state (the server finds the
/// position of that state itself; it may be another server than the one `from` was read on).
pub(crate) async fn dump_request<'a>(
    conn: &mut Conn,
    flavor: Flavor,
    server_id: u32,
    from: &'a Position,
    by_gtid: bool,
) -> Result<mysql_async::BinlogStreamRequest<'a>, SourceError> {
    let mut request =
        mysql_async::BinlogStreamRequest::new(server_id).with_hostname(REPLICA_HOST.as_bytes());
    if flavor == Flavor::MariaDb {
        // Without it MariaDB rewrites GTID events into BEGIN and dummy events.
        conn.query_drop("SET @mariadb_slave_capability = 4")
            .await
            .map_err(SourceError::Query)?;
        if let (Some(state), true) = (from.gtid.as_deref(), by_gtid) {
            conn.exec_drop("SET @slave_connect_state = ?", (state,))
                .await
                .map_err(SourceError::Query)?;
            return Ok(request);
        }
    }
    request = request
        .with_filename(from.file.as_bytes())
        .with_pos(from.pos);
    Ok(request)
}

/// How a server refuses to send its binlog from a GTID state (`gtid_refused`), with its message.
pub enum GtidRefusal {
    Purged(String),
    Other(String),
}

/// How MariaDB says a GTID state is in none of its binlog files (ER_GTID_POSITION_NOT_FOUND_IN_BINLOG).
const PURGED_GTID_STATE: &str = "Could not find GTID state requested by slave in any binlog files";

/// The message of [`SourceError::ServerIdTaken`] and of its preflight problem.
pub fn server_id_taken(server_id: u32, replica: &str) -> String {
    format!(
        "server_id {server_id} is the id of a replica of this server ({replica}, in SHOW SLAVE HOSTS): connecting would cut its binlog connection (MariaDB keeps one per id), so rowcast does not connect while it is there. Give [source] server_id a value no replica uses"
    )
}

/// The server's current binlog end (file and offset).
pub async fn binlog_end(conn: &mut Conn) -> Result<Position, SourceError> {
    crate::sql::binlog_end(conn)
        .await
        .map_err(SourceError::Query)?
        .ok_or_else(|| SourceError::PositionGone {
            position: "end".into(),
            message: "the server has binary logging off (log_bin)".into(),
        })
}

/// Whether the server compares table names lowercased (`lower_case_table_names` 1 or 2; 0 tells
/// `Orders` from `orders`).
pub async fn folds_table_names(conn: &mut Conn) -> Result<bool, SourceError> {
    let setting: Option<u8> = conn
        .query_first("SELECT @@lower_case_table_names")
        .await
        .map_err(SourceError::Query)?;
    Ok(setting.is_some_and(|setting| setting != 0))
}

/// The binlog files the server still has, oldest first.
pub async fn binlog_files(conn: &mut Conn) -> Result<Vec<String>, SourceError> {
    crate::sql::binlog_files(conn)
        .await
        .map_err(SourceError::Query)
}

/// The root tables of the views, the only ones whose rows are decoded.
pub fn watched_tables<'a>(views: impl IntoIterator<Item = &'a TableRef>) -> HashSet<TableRef> {
    views.into_iter().cloned().collect()
}
