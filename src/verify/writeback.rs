//! How far the daemon's write-back consumers have read. An item of a view with write-back that
//! differs from its row may hold an application's change still on its way to SQL: its stream
//! record not read yet, or its statement not applied. Such an item keeps its `_version` (an
//! application's update does not move it), so the settling rounds alone would confirm it as a
//! difference. Before a round compares such a view again, it waits until the table's consumer
//! has handled every record its stream held when the round began, plus [`MARGIN_MS`] for a
//! change's record to reach the stream; what still differs after that is not in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::Health;
use crate::util::http::{request, Api};

/// How long after its change a record is taken to be in the stream. DynamoDB Streams writes
/// records in near real time; DynamoDB Local at once.
pub const MARGIN_MS: u64 = 2000;

/// Where verification learns how far the consumers have read.
pub enum WritebackProgress {
    /// The running daemon's API (`GET /v1/writeback`): `rowcast verify`.
    Api(Api),
    /// The daemon's own state: continuous verification inside it.
    Local(Arc<Health>),
}

impl WritebackProgress {
    /// The daemon's clock now (`util::monotonic_millis`: a wall clock stepped back would let
    /// an old reading pass a new target) and how far `table`'s consumer has read on it
    /// (`None`: not read to the end of every shard yet, or no consumer). `None` when the
    /// daemon does not answer.
    async fn read(&self, table: &str) -> Option<(u64, Option<u64>)> {
        match self {
            WritebackProgress::Local(health) => Some((
                crate::util::monotonic_millis(),
                health.writeback_reached().get(table).copied(),
            )),
            WritebackProgress::Api(api) => {
                let (status, body) = request(api, "GET", "/v1/writeback", Duration::from_secs(5))
                    .await
                    .ok()?;
                if status != 200 {
                    return None;
                }
                let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
                let now = answer["now_ms"].as_u64()?;
                Some((now, answer["reached_ms"][table].as_u64()))
            }
        }
    }

    /// Waits until `table`'s consumer has handled every application change made before now
    /// (on the daemon's clock) and [`MARGIN_MS`] more; `false` if that does not come within
    /// `timeout` (the daemon not running, its API not reachable, or its consumer behind).
    pub async fn caught_up(&self, table: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut target = None;
        loop {
            if let Some((now, reached)) = self.read(table).await {
                let target = *target.get_or_insert(now + MARGIN_MS);
                if reached.is_some_and(|reached| reached >= target) {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
