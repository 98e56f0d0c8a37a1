//! Durable state, in the DynamoDB control table (the default, so the sidecar can be stateless)
//! or in local files: checkpoints, write-back stream positions, dead letters.
//!
//! The control table has a string partition key `pk` and sort key `sk`. Files are replaced
//! whole (a temporary file, fsynced, renamed over) so that a crash leaves the old or the new
//! content, never a mix.

mod beside;
pub mod checkpoint;
pub mod deadletter;
mod files;
pub mod kept;
pub mod lease;
pub mod letters;
pub mod positions;
pub mod server;

pub use checkpoint::{CheckpointError, CheckpointStore};
pub use deadletter::DeadLetterStore;
pub use lease::Lease;
pub use positions::{PositionError, PositionStore, ShardPosition, StreamPositions};

pub use crate::dynamo::{CONTROL_PK, CONTROL_SK};
pub use files::{
    owner_path, try_own, with_file_lock, write_durably, write_durably_blocking, FileOwner,
};
