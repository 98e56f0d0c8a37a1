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
use crate::sql::{begin_snapshot, end_snapshot};

/// Snapshots taken at most, each dropped for a transaction that straddled it (or a binlog that
/// could not be read), before the export gives up; each after a pause twice the last (0.1 s
/// first): such transactions last milliseconds, and a server that commits one across every
/// snapshot is busy with them.
const ATTEMPTS: u32 = 5;

/// Events read per `SHOW BINLOG EVENTS` (the stretch read is usually a few events).
const PAGE: usize = 500;

/// Pages read at most for one snapshot: a stretch longer than that (a bulk load committed
/// around the snapshot) is not read to its end, which would hold the snapshot open for long
/// (and the server may read its active binlog under the lock its commits take, not checked in
/// its source here); the snapshot is taken again after a pause instead.
const MAX_PAGES: usize = 200;

/// Why the binlog since the first list was not read.
enum Unread {
    /// The server will not show it (a missing privilege): the two lists alone are made.
    Refused(String),
    /// Anything else (a file purged meanwhile, a lost connection): the snapshot is taken again.
    Failed(String),
}

impl From<mysql_async::Error> for Unread {
    fn from(error: mysql_async::Error) -> Unread {
        match &error {
            // Access denied (to the database, the user, a table, a privilege).
            mysql_async::Error::Server(server)
                if [1044, 1045, 1142, 1227].contains(&server.code) =>
            {
                Unread::Refused(error.to_string())
            }
            _ => Unread::Failed(error.to_string()),
        }
    }
}

/// What the binlog since the first list says of the snapshot.
enum Check {
    Clear,
    Straddled(BTreeSet<String>),
    Unread(String),
}

/// Begins a consistent snapshot on `conn` that no XA transaction straddles; its position.
pub async fn snapshot(conn: &mut Conn) -> Result<Position, ExportError> {
    // The server refused to show its binlog: from then on only the lists are made.
    let mut blind = false;
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(std::time::Duration::from_millis(100 << (attempt - 2))).await;
        }
        let from = match blind {
            true => None,
            false => match binlog_end(conn).await {
                Ok(from) => Some(from),
                Err(Unread::Refused(error)) => {
                    blind = refused(&error);
                    None
                }
                Err(Unread::Failed(error)) => return Err(ExportError::BinlogUnread(error)),
            },
        };
        prepared_xa(conn).await?;
        tracing::info!("export: no XA transaction prepared; taking the snapshot");
        crate::util::failpoint::delay("export.before_snapshot").await;
        let position = begin_snapshot(conn).await?;
        tracing::info!(position = %position, "export: snapshot begun");
        crate::util::failpoint::delay("export.in_snapshot").await;
        let check = async {
            prepared_xa(conn).await?;
            let Some(from) = from else {
                return Ok(Check::Clear);
            };
            Ok(match straddling(conn, &from, &position).await {
                Ok(xids) if xids.is_empty() => Check::Clear,
                Ok(xids) => Check::Straddled(xids),
                Err(Unread::Refused(error)) => {
                    blind = refused(&error);
                    Check::Clear
                }
                Err(Unread::Failed(error)) => Check::Unread(error),
            })
        }
        .await;
        let last = attempt == ATTEMPTS;
        match check {
            Ok(Check::Clear) => return Ok(position),
            Err(error) => {
                end_snapshot(conn).await;
                return Err(error);
            }
            Ok(Check::Straddled(xids)) => {
                end_snapshot(conn).await;
                if last {
                    return Err(ExportError::StraddlingXa(xids.len()));
                }
                tracing::warn!(xids = ?xids, attempt, "export: an XA transaction prepared before the snapshot was committed around it; taking the snapshot again");
            }
            Ok(Check::Unread(error)) => {
                end_snapshot(conn).await;
                if last {
                    return Err(ExportError::BinlogUnread(error));
                }
                tracing::warn!(%error, attempt, "export: cannot read the binlog around the snapshot; taking the snapshot again");
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// Warns that the server refuses to show its binlog (`SHOW MASTER STATUS` and `SHOW BINLOG
/// EVENTS` need `BINLOG MONITOR`), so only the two lists are made; `true`.
fn refused(error: &str) -> bool {
    tracing::warn!(%error, "export: the server does not show its binlog (BINLOG MONITOR needed): a transaction prepared just before the snapshot and committed during it would be missing");
    true
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
async fn binlog_end(conn: &mut Conn) -> Result<Position, Unread> {
    crate::sql::binlog_end(conn)
        .await?
        .ok_or_else(|| Unread::Failed("the server has binary logging off".into()))
}

/// One event of `SHOW BINLOG EVENTS`: where it starts, its type, its text.
struct Event {
    start: u64,
    kind: String,
    info: String,
}

/// Up to [`PAGE`] events of binlog `file` from the event at offset `pos`, that event left out
/// when `skip_first` (the last of the page before: its end offset is a 32-bit field, which a
/// file past 4 GiB wraps, while its start is not).
async fn events(
    conn: &mut Conn,
    file: &str,
    pos: u64,
    skip_first: bool,
) -> Result<Vec<Event>, Unread> {
    let file = file.replace('\\', "\\\\").replace('\'', "\\'");
    let skip = usize::from(skip_first);
    let rows: Vec<mysql_async::Row> = conn
        .query(format!(
            "SHOW BINLOG EVENTS IN '{file}' FROM {pos} LIMIT {skip}, {PAGE}"
        ))
        .await?;
    // The text as bytes: a statement's may be in any character set, or hold binary values.
    let text = |row: &mysql_async::Row, i: usize| -> String {
        let bytes = row
            .get_opt::<Option<Vec<u8>>, _>(i)
            .and_then(Result::ok)
            .flatten();
        String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned()
    };
    Ok(rows
        .iter()
        .map(|row| Event {
            start: row.get_opt::<u64, _>(1).and_then(Result::ok).unwrap_or(0),
            kind: text(row, 2),
            info: text(row, 5).to_ascii_uppercase(),
        })
        .collect())
}

/// The XA transactions committed in the binlog from `from` to its end now with no PREPARE of
/// theirs between `snapshot` and the commit (see the module's comment), named as the binlog
/// names them.
async fn straddling(
    conn: &mut Conn,
    from: &Position,
    snapshot: &Position,
) -> Result<BTreeSet<String>, Unread> {
    let to = binlog_end(conn).await?;
    let files = crate::sql::binlog_files(conn).await?;
    let index = |file: &str| files.iter().position(|f| f == file);
    let (Some(first), Some(last), Some(at)) =
        (index(&from.file), index(&to.file), index(&snapshot.file))
    else {
        return Err(Unread::Failed(format!(
            "binlog {} was purged while the export read it",
            from.file
        )));
    };
    // XIDs prepared after the snapshot and not committed yet in what was read: a commit of one
    // is covered (a reader starting at the snapshot reads its PREPARE first). An XID used again
    // is covered only by a PREPARE between the snapshot and that commit.
    let mut prepared_after = BTreeSet::new();
    let mut straddling = BTreeSet::new();
    let mut pages = 0;
    for (number, file) in files.iter().enumerate().take(last + 1).skip(first) {
        let (mut pos, mut skip_first) = if number == first {
            (from.pos, false)
        } else {
            (4, false)
        };
        'file: loop {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(Unread::Failed(format!(
                    "more than {} binlog events were written around the snapshot (a bulk load?)",
                    MAX_PAGES * PAGE
                )));
            }
            let page = events(conn, file, pos, skip_first).await?;
            let full = page.len() == PAGE;
            for event in page {
                if number == last && event.start >= to.pos {
                    break 'file;
                }
                (pos, skip_first) = (event.start, true);
                if let Some(xid) = event.info.strip_prefix("XA PREPARE ") {
                    if event.kind == "XA_prepare" && (number, event.start) >= (at, snapshot.pos) {
                        prepared_after.insert(xid.trim().to_string());
                    }
                } else if let Some(xid) = event.info.strip_prefix("XA COMMIT ") {
                    let xid = xid.trim().to_string();
                    if event.kind == "Query" && !prepared_after.remove(&xid) {
                        straddling.insert(xid);
                    }
                }
            }
            if !full {
                break;
            }
        }
    }
    Ok(straddling)
}
