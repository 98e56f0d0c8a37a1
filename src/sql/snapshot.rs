//! Consistent-snapshot reads at a known binlog position (MariaDB reports the snapshot's
//! position; a read inside it sees the commits before that position).
//!
//! Not always all of them: MariaDB 10.11 now and then reports a position past a commit or two
//! that the snapshot does not see yet (written to the binlog, not yet visible in InnoDB).
//! Measured on 2026-12-08 with three sessions taking snapshots (`START TRANSACTION WITH
//! CONSISTENT SNAPSHOT`, then `binlog_snapshot_position`) while a fourth committed updates of
//! one row: 3–11 snapshots in 2,000–7,700, plain and XA commits alike, saw the row a commit
//! or two older than the position; a few of them missed a commit already in the binlog before
//! a `SHOW MASTER STATUS` that preceded the snapshot. A backfill chunk so read would write
//! rows older than changes the stream delivered, at a later version (`merge` drops those
//! rows: see `merge::recent`).

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::SqlError;
use crate::pipeline::Position;

/// Starts a consistent snapshot on `conn` (session time zone UTC) and returns its binlog
/// position. End it with [`end_snapshot`]. The snapshot is REPEATABLE READ whatever the server's
/// or session's default: at READ COMMITTED every SELECT would see the latest commits, not the
/// snapshot's.
pub async fn begin_snapshot(conn: &mut Conn) -> Result<Position, SqlError> {
    let q = SqlError::Query;
    // A read waits 5 minutes at most for a metadata lock (behind an ALTER waiting for a long
    // transaction): the stream is held while it waits; then it fails and is retried, and the
    // failure is logged (the server's default, `lock_wait_timeout`, is a day).
    conn.query_drop(
        "SET time_zone = '+00:00'; SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; SET SESSION lock_wait_timeout = 300",
    )
    .await
    .map_err(q)?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await
        .map_err(q)?;
    let status: Vec<(String, String)> =
        match conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await {
            Ok(status) => status,
            Err(error) => {
                end_snapshot(conn).await;
                return Err(q(error));
            }
        };
    let find = |name: &str| {
        status
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let (Some(file), Some(pos)) = (
        find("binlog_snapshot_file"),
        find("binlog_snapshot_position"),
    ) else {
        end_snapshot(conn).await;
        return Err(SqlError::NoSnapshotPosition);
    };
    let position = Position {
        file,
        pos: pos.parse().unwrap_or(4),
        gtid: None,
    };
    if crate::util::failpoint::fails("snapshot.position_late") {
        // What MariaDB 10.11 does now and then (see the module's doc), made certain: the
        // position reported is the binlog's end a while after the snapshot began, past commits
        // the snapshot does not see.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        if let Ok(Some(end)) = binlog_end(conn).await {
            return Ok(end);
        }
    }
    Ok(position)
}

pub async fn end_snapshot(conn: &mut Conn) {
    let _ = conn.query_drop("COMMIT").await;
}

/// MariaDB's GTID state at exactly `position` (`None` when empty): the first checkpoint and an
/// export's position carry it, so that a resume by GTID starts there.
pub async fn gtid_state_at(
    conn: &mut Conn,
    position: &Position,
) -> Result<Option<String>, mysql_async::Error> {
    let state: Option<Option<String>> = conn
        .exec_first(
            "SELECT BINLOG_GTID_POS(?, ?)",
            (position.file.as_str(), position.pos),
        )
        .await?;
    Ok(state.flatten().filter(|s| !s.is_empty()))
}

/// A statement the server cannot parse.
const ER_PARSE_ERROR: u16 = 1064;

/// The server's binlog end (file and offset); `None` with binary logging off.
/// MySQL 8.4 renamed `SHOW MASTER STATUS` to `SHOW BINARY LOG STATUS`: the new name is tried
/// only when the server does not know the old one (a syntax error). Any other refusal (a
/// missing privilege) is the one returned: MariaDB answers the new name with a syntax error,
/// which hid why (found by a test: an account without `BINLOG MONITOR` made every export fail
/// as if the binlog could not be read, where it is meant to warn and go on).
pub async fn binlog_end(conn: &mut Conn) -> Result<Option<Position>, mysql_async::Error> {
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(row) => row,
        Err(mysql_async::Error::Server(error)) if error.code == ER_PARSE_ERROR => {
            conn.query_first("SHOW BINARY LOG STATUS").await?
        }
        Err(error) => return Err(error),
    };
    Ok(row.map(|row| Position {
        file: row.get(0).unwrap_or_default(),
        pos: row.get(1).unwrap_or(4),
        gtid: None,
    }))
}

/// The binlog files the server still has, oldest first.
pub async fn binlog_files(conn: &mut Conn) -> Result<Vec<String>, mysql_async::Error> {
    let rows: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.get::<String, _>(0))
        .collect())
}

/// The XA transactions prepared on the server and not decided yet (`XA RECOVER`), each named as
/// the binlog's XA statements name it once upper-cased (`X'6C617465',X'',1`), which is how the
/// reader knows them (`source/reader/xa.rs`). A backfill pass lists them before its first
/// snapshot: their rows are not in it, and one whose PREPARE the reader never read (before its
/// start) can only be made good by reading the view again after its XA COMMIT.
pub async fn prepared_xids(conn: &mut Conn) -> Result<Vec<String>, SqlError> {
    let rows: Vec<(i64, usize, usize, Vec<u8>)> =
        conn.query("XA RECOVER").await.map_err(SqlError::Query)?;
    Ok(rows
        .into_iter()
        .map(|(format, gtrid, bqual, data)| xid_text(format, gtrid, bqual, &data))
        .collect())
}

/// An XID of `XA RECOVER` (format id, lengths of the two parts, their bytes) as the binlog
/// writes it, upper-cased.
fn xid_text(format: i64, gtrid: usize, bqual: usize, data: &[u8]) -> String {
    let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02X}")).collect() };
    let gtrid = gtrid.min(data.len());
    let bqual_end = (gtrid + bqual).min(data.len());
    format!(
        "X'{}',X'{}',{format}",
        hex(&data[..gtrid]),
        hex(&data[gtrid..bqual_end])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As MariaDB 10.11 logs `XA START 'late'` and `XA START 'late','b1',7` (seen in
    /// `SHOW BINLOG EVENTS`: `X'6c617465',X'6231',7`), upper-cased by the reader.
    #[test]
    fn xids_read_as_the_binlog_names_them() {
        assert_eq!(xid_text(1, 4, 0, b"late"), "X'6C617465',X'',1");
        assert_eq!(xid_text(7, 4, 2, b"lateb1"), "X'6C617465',X'6231',7");
        // Lengths past the data (never from a server) cut, not panic.
        assert_eq!(xid_text(1, 9, 9, b"ab"), "X'6162',X'',1");
    }
}
