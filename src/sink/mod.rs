//! The DynamoDB writer: lanes keyed by item, coalescing windows, batching, retries, the version
//! guard and the dead-letter store. See `lane.rs` for ordering and acknowledgement, `writer.rs`
//! for the requests and their retry policy.

pub mod deadletter;
pub mod dynamo;
pub mod lane;
pub mod tables;
pub mod writer;

use std::hash::{Hash, Hasher};

use crate::view::ItemKey;

/// The lane that owns `key`: a stable hash, so one item is always written by one lane.
pub fn lane_of(key: &ItemKey, lanes: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}
