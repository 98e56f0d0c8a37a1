//! Where a write goes and what version it carries.

use std::hash::BuildHasher;

use crate::view::ItemKey;

/// The lane that owns `key`: a hash of fixed seed, so one item is always written by one lane.
/// foldhash rather than SipHash, for every row change (callgrind): a key chosen to crowd one
/// lane slows that lane at worst, as with any fixed hash.
pub fn lane_of(key: &ItemKey, lanes: usize) -> usize {
    const LANES: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x5eed_1a9e);
    (LANES.hash_one(key) % lanes as u64) as usize
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
