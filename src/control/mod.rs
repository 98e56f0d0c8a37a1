//! Durable state, in the DynamoDB control table (the default, so the sidecar can be stateless)
//! or in local files: checkpoints, write-back stream positions, dead letters.
//!
//! The control table has a string partition key `pk` and sort key `sk`. Files are replaced
//! whole (a temporary file, fsynced, renamed over) so that a crash leaves the old or the new
//! content, never a mix.

pub mod checkpoint;
pub mod deadletter;
pub mod letters;
pub mod positions;
pub mod server;

pub use checkpoint::{CheckpointError, CheckpointStore};
pub use deadletter::DeadLetterStore;
pub use positions::{PositionStore, ShardPosition, StreamPositions};

pub use crate::dynamo::{CONTROL_PK, CONTROL_SK};

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content, never a mix:
/// a temporary file, fsynced, renamed over, and the folder fsynced.
pub async fn write_durably(path: &std::path::Path, bytes: Vec<u8>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let file_path = path.with_extension("tmp");
    let target = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&file_path)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&file_path, &target)?;
        if let Some(dir) = target.parent() {
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}
