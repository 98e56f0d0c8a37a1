//! An export's snapshot that no XA transaction straddles.
//!
//! A transaction prepared (XA PREPARE) before the snapshot and committed after it is in neither
//! the export (the snapshot cannot see it) nor the stream of a daemon resuming at the export's
//! position (its PREPARE is before it, and the reader applies an XA transaction's rows from its
//! PREPARE). `XA RECOVER` before the snapshot and again in it finds every such transaction but
//! one prepared between the first list and the snapshot and committed between the snapshot and
//! the second list. That one leaves its XA COMMIT in the binlog read from the first list to the
//! second, without its PREPARE after the snapshot: found there (`SHOW BINLOG EVENTS`), the
//! snapshot is taken again. One whose XA COMMIT is before the snapshot in that stretch is taken
//! for one too: MariaDB writes an XA COMMIT to the binlog before InnoDB commits it, so a
//! snapshot just after it may lack its rows.

use std::collections::BTreeSet;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::ExportError;
use crate::pipeline::Position;
use crate::sql::{begin_snapshot, end_snapshot, SqlError};

/// Snapshots taken at most, each dropped for a transaction that straddled it, before the export
/// gives up: such transactions last milliseconds, and a server that commits one across every
/// snapshot is busy with them.
const ATTEMPTS: usize = 5;

/// Events read per `SHOW BINLOG EVENTS` (the stretch read is usually a few events).
const PAGE: usize = 500;

/// Begins a consistent snapshot on `conn` that no XA transaction straddles; its position.
pub async fn snapshot(conn: &mut Conn) -> Result<Position, ExportError> {
    for attempt in 1..=ATTEMPTS {
        // Where the binlog stood before the first list: a server that will not tell (a missing
        // privilege) is warned about, and only the two lists are made.
        let from = match binlog_end(conn).await {
            Ok(from) => Some(from),
            Err(error) => {
                tracing::warn!(error = %error, "export: cannot read the binlog's end (SHOW MASTER STATUS); a transaction prepared just before the snapshot and committed during it would be missing");
                None
            }
        };
        prepared_xa(conn).await?;
        tracing::info!("export: no XA transaction prepared; taking the snapshot");
        crate::util::failpoint::delay("export.before_snapshot").await;
        let position = begin_snapshot(conn).await?;
        tracing::info!(position = %position, "export: snapshot begun");
        crate::util::failpoint::delay("export.in_snapshot").await;
        let straddling = async {
            prepared_xa(conn).await?;
            let Some(from) = from else {
                return Ok(BTreeSet::new());
            };
            match straddling(conn, &from, &position).await {
                Ok(xids) => Ok(xids),
                Err(error) => {
                    tracing::warn!(error = %error, "export: cannot read the binlog since the first XA RECOVER (SHOW BINLOG EVENTS); a transaction prepared just before the snapshot and committed during it would be missing");
                    Ok(BTreeSet::new())
                }
            }
        }
        .await;
        match straddling {
            Ok(xids) if xids.is_empty() => return Ok(position),
            Ok(xids) => {
                end_snapshot(conn).await;
                if attempt == ATTEMPTS {
                    return Err(ExportError::StraddlingXa(xids.len()));
                }
                tracing::warn!(xids = ?xids, attempt, "export: an XA transaction prepared before the snapshot was committed around it; taking the snapshot again");
            }
            Err(error) => {
                end_snapshot(conn).await;
                return Err(error);
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// Refuses a snapshot taken while XA transactions are prepared: their rows are not in it, and
/// their PREPARE lies before its position, where a resuming daemon never reads them. A server
/// that will not list them (a missing privilege) is warned about, not refused.
async fn prepared_xa(conn: &mut Conn) -> Result<(), ExportError> {
    match conn.query::<mysql_async::Row, _>("XA RECOVER").await {
        Ok(rows) if rows.is_empty() => Ok(()),
        Ok(rows) => Err(ExportError::PreparedXa(rows.len())),
        Err(error) => {
            tracing::warn!(error = %error, "export: cannot list prepared XA transactions (XA RECOVER); a transaction prepared before the snapshot and committed after it would be missing");
            Ok(())
        }
    }
}

/// The server's binlog end.
async fn binlog_end(conn: &mut Conn) -> Result<Position, SqlError> {
    let row: Option<mysql_async::Row> = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .map_err(SqlError::Query)?;
    let (Some(file), Some(pos)) = (
        row.as_ref().and_then(|r| r.get::<String, _>(0)),
        row.as_ref().and_then(|r| r.get::<u64, _>(1)),
    ) else {
        return Err(SqlError::NoSnapshotPosition);
    };
    Ok(Position {
        file,
        pos,
        gtid: None,
    })
}

/// One event of `SHOW BINLOG EVENTS`: where it starts and ends, its type, its text.
struct Event {
    start: u64,
    end: u64,
    kind: String,
    info: String,
}

/// Up to [`PAGE`] events of binlog `file` from offset `pos`.
async fn events(conn: &mut Conn, file: &str, pos: u64) -> Result<Vec<Event>, SqlError> {
    let file = file.replace('\\', "\\\\").replace('\'', "\\'");
    let rows: Vec<mysql_async::Row> = conn
        .query(format!(
            "SHOW BINLOG EVENTS IN '{file}' FROM {pos} LIMIT {PAGE}"
        ))
        .await
        .map_err(SqlError::Query)?;
    Ok(rows
        .into_iter()
        .map(|row| Event {
            start: row.get::<u64, _>(1).unwrap_or(0),
            end: row.get::<u64, _>(4).unwrap_or(0),
            kind: row.get::<String, _>(2).unwrap_or_default(),
            info: (row.get::<Option<String>, _>(5).flatten())
                .unwrap_or_default()
                .to_ascii_uppercase(),
        })
        .collect())
}

/// The XA transactions committed in the binlog from `from` to its end now whose PREPARE is not
/// at or after `snapshot` in it (see the module's comment), named as the binlog names them.
async fn straddling(
    conn: &mut Conn,
    from: &Position,
    snapshot: &Position,
) -> Result<BTreeSet<String>, SqlError> {
    let to = binlog_end(conn).await?;
    let files: Vec<String> = conn
        .query::<mysql_async::Row, _>("SHOW BINARY LOGS")
        .await
        .map_err(SqlError::Query)?
        .into_iter()
        .filter_map(|row| row.get::<String, _>(0))
        .collect();
    let index = |file: &str| files.iter().position(|f| f == file);
    let (Some(first), Some(last), Some(at)) =
        (index(&from.file), index(&to.file), index(&snapshot.file))
    else {
        // A file purged since the first list: what it held cannot be read.
        return Err(SqlError::NoSnapshotPosition);
    };
    let mut prepared_after = BTreeSet::new();
    let mut committed = BTreeSet::new();
    for (number, file) in files.iter().enumerate().take(last + 1).skip(first) {
        let mut pos = if number == first { from.pos } else { 4 };
        'file: loop {
            let page = events(conn, file, pos).await?;
            let full = page.len() == PAGE;
            for event in page {
                if number == last && event.start >= to.pos {
                    break 'file;
                }
                pos = event.end;
                if let Some(xid) = event.info.strip_prefix("XA PREPARE ") {
                    if event.kind == "XA_prepare" && (number, event.start) >= (at, snapshot.pos) {
                        prepared_after.insert(xid.trim().to_string());
                    }
                } else if let Some(xid) = event.info.strip_prefix("XA COMMIT ") {
                    if event.kind == "Query" {
                        committed.insert(xid.trim().to_string());
                    }
                }
            }
            if !full {
                break;
            }
        }
    }
    Ok(committed.difference(&prepared_after).cloned().collect())
}
