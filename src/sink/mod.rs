//! The DynamoDB writer: lanes keyed by item, coalescing windows, batching, retries, the version
//! guard and the dead-letter store. See `lane.rs` for ordering and acknowledgement, `writer.rs`
//! for the requests and their retry policy.

pub mod checked;
pub mod lane;
#[cfg(test)]
mod test_ops;
pub mod unsure;
pub mod writer;
