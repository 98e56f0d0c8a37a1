//! Where a write goes and what version it carries.

use std::hash::{Hash, Hasher};

use crate::view::ItemKey;

/// The lane that owns `key`: a stable hash, so one item is always written by one lane.
pub fn lane_of(key: &ItemKey, lanes: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

/// The item version of a row change: transaction counter, then the change's index in it.
pub fn version_of(seq: u64, index: u32) -> u128 {
    (u128::from(seq) << 32) | u128::from(index)
}

/// The transaction counter and index of a version: the inverse of [`version_of`].
pub fn version_parts(version: u128) -> (u64, u32) {
    let seq = u64::try_from(version >> 32).unwrap_or(u64::MAX);
    (seq, version as u32)
}
