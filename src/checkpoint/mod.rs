//! Checkpoints: the source position up to which every transaction's writes are acknowledged
//! by DynamoDB, and the transaction counter that item versions come from.
//!
//! [`tracker`] computes the acknowledged prefix from the writer lanes' barrier acks; [`store`]
//! persists it in the DynamoDB control table or a local file. A checkpoint only moves forward.

pub mod store;
pub mod tracker;

use serde::{Deserialize, Serialize};

/// A position in the source binlog: the end of a transaction (an event boundary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub file: String,
    pub pos: u64,
    /// The GTID of the transaction that ends here, when the server has GTIDs
    /// (`domain-server-seq` on MariaDB, `uuid:n` on MySQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        if let Some(gtid) = &self.gtid {
            write!(f, " (gtid {gtid})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub position: Position,
    /// Transaction counter of the last transaction covered; item versions derive from it.
    pub seq: u64,
    pub updated_ms: u64,
    /// Backfill progress per eager view.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub backfill: crate::snapshot::BackfillState,
}

pub use store::{CheckpointError, CheckpointStore};
