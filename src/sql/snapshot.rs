//! Consistent-snapshot reads at a known binlog position (MariaDB reports the snapshot's
//! position; a read inside it sees exactly the commits before that position).

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
    conn.query_drop(
        "SET time_zone = '+00:00'; SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
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
    Ok(Position {
        file,
        pos: pos.parse().unwrap_or(4),
        gtid: None,
    })
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
