//! One event group read again on a second binlog connection: an XA transaction's prepare group
//! at its XA COMMIT (`xa.rs`), a rolled-back transaction's group at its ROLLBACK (`undo.rs`).

use futures_util::StreamExt;
use mysql_async::binlog::events::Event;
use mysql_async::BinlogStream;
use tracing::warn;

use super::Source;
use crate::pipeline::Position;
use crate::source::SourceError;

/// Bit set in rowcast's `server_id` for the connection that reads a group again: the server
/// would drop the main connection for a second one of the same id.
pub const REREAD_ID_BIT: u32 = 1 << 30;

/// The events of a group, from its first to the one that ends at `end`.
pub struct Group {
    pub stream: BinlogStream,
    end: u64,
    done: bool,
    idle_timeout: std::time::Duration,
    /// Failpoint that fails a read (`name=error@N`).
    failpoint: &'static str,
}

impl Group {
    /// The next event of the group; `None` after the one that ends at its end.
    pub async fn next(&mut self) -> Result<Option<Event>, SourceError> {
        if self.done {
            return Ok(None);
        }
        let event = match tokio::time::timeout(self.idle_timeout, self.stream.next()).await {
            Err(_) => return Err(SourceError::Idle(self.idle_timeout)),
            Ok(next) => next
                .ok_or(SourceError::Ended)?
                .map_err(SourceError::Stream)?,
        };
        if crate::util::failpoint::fails(self.failpoint) {
            return Err(SourceError::Ended);
        }
        self.done = u64::from(event.header().log_pos()) >= self.end;
        Ok(Some(event))
    }

    /// No more of the group is read.
    pub fn stop(&mut self) {
        self.done = true;
    }

    pub async fn close(self, what: &str) {
        if let Err(error) = self.stream.close().await {
            warn!(error = %error, "closing the connection that read {what}");
        }
    }
}

impl Source {
    /// Opens a second connection at `start` (a group's first event) to read the group again up
    /// to the event that ends at `end` (same file); `failpoint` names the read for tests.
    pub(super) async fn reread(
        &self,
        start: &Position,
        end: u64,
        failpoint: &'static str,
    ) -> Result<Group, SourceError> {
        let start = Position {
            gtid: None,
            ..start.clone()
        };
        let (stream, ..) = self
            .open_stream_as(&start, self.config.server_id ^ REREAD_ID_BIT)
            .await?;
        Ok(Group {
            stream,
            end,
            done: false,
            idle_timeout: self.config.idle_timeout,
            failpoint,
        })
    }
}
