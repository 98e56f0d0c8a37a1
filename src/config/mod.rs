//! Configuration: the daemon config file and the view specs it names.
//!
//! [`load`] reads the files and compiles them into validated types, collecting every problem
//! (file, field, message) instead of stopping at the first. The only I/O is reading the files
//! and expanding the globs; checks against the servers live in the preflight.

mod compile;
mod index;
mod joins;
pub mod raw;
mod shared_index;
mod source;
mod view;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use source::{Secret, SourceConnection, TlsMode};
pub use view::{compile_view, shared_writeback_columns};

use crate::view::View;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.field,
                self.message
            )
        }
    }
}

/// Every problem found, in file order.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} configuration problem(s)", .0.len())]
pub struct ConfigErrors(pub Vec<Problem>);

#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Address, credentials and TLS (its `Debug` never shows the password).
    pub connection: SourceConnection,
    pub server_id: u32,
    pub heartbeat_interval: Duration,
    pub idle_timeout: Duration,
    pub start_at_beginning: bool,
    /// Resume by MariaDB GTID state instead of file and offset.
    pub resume_by_gtid: bool,
    /// Re-backfill instead of stopping when the checkpoint's binlog was purged.
    pub rebackfill_on_purged: bool,
    pub max_backoff: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamoConfig {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointStoreConfig {
    Table(String),
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Conditional single writes while replaying what an earlier run may have written,
    /// BatchWriteItem after that.
    Auto,
    /// Conditional single writes always.
    Conditional,
}

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub lanes: usize,
    /// How long join marks gather before their refresh read (`merge::marks`).
    pub flush_interval: Duration,
    /// How long a lane with nothing in flight waits for more changes before it writes.
    pub linger: Duration,
    pub max_window_items: usize,
    pub queue_capacity: usize,
    pub mode: WriteMode,
    /// How long after a plain write of unknown outcome its items are written again, guarded
    /// (`sink::unsure`).
    pub recheck_after: Duration,
}

#[derive(Debug, Clone)]
pub enum DeadLetterConfig {
    Table(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub source: SourceConfig,
    pub dynamodb: DynamoConfig,
    pub checkpoint: CheckpointStoreConfig,
    pub checkpoint_interval: Duration,
    pub metrics_listen: SocketAddr,
    /// `[api]`: the listener of reads and commands, and its token.
    pub api: ApiConfig,
    pub writer: WriterConfig,
    pub dead_letter: DeadLetterConfig,
    /// Pause between two reads of an idle stream shard (write-back).
    pub streams_poll_interval: Duration,
    /// Mark write-back sessions with MariaDB's `skip_replication`.
    pub streams_skip_replication: bool,
    pub backfill_chunk_rows: usize,
    /// Keys of one view waiting for a join refresh above which the view is backfilled again.
    pub join_max_dirty_keys: usize,
    /// `[backfill] max_items_per_second` (`None`: no limit).
    pub backfill_max_items_per_second: Option<u32>,
    /// Continuous verification (`[verify]`), when configured.
    pub verify: Option<VerifyConfig>,
    /// `[pipeline] name`: keys this pipeline's state in the control table.
    pub pipeline_name: Option<String>,
    pub views: Vec<Arc<View>>,
}

impl Config {
    /// The checkpoint item's key in the control table: `checkpoint#<pipeline name>`, or
    /// `checkpoint#<server_id>` without a name.
    pub fn checkpoint_id(&self) -> String {
        match &self.pipeline_name {
            Some(name) => format!("checkpoint#{name}"),
            None => format!("checkpoint#{}", self.source.server_id),
        }
    }

    /// The prefix of this pipeline's `kind` items in the control table: `kind#<name>#`, or
    /// `kind#` without a name.
    pub fn control_prefix(&self, kind: &str) -> String {
        match &self.pipeline_name {
            Some(name) => format!("{kind}#{name}#"),
            None => format!("{kind}#"),
        }
    }
}

/// `[api]`: where fill on miss, snapshot, repair and reload are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Requests must carry `Authorization: Bearer <token>` when set.
    pub token: Option<Secret>,
}

/// `[verify]`: a throttled pass of `rowcast verify` over every view, again and again.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    pub interval: Duration,
    /// Items per second on each side (`None`: no limit).
    pub max_items_per_second: Option<u32>,
    pub repair: bool,
    pub segments: u32,
}

/// Reads and validates the config file and every view spec it names.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    compile::load(path, &|name| std::env::var(name).ok())
}

crate::error::definite_errors!(ConfigErrors);

#[cfg(test)]
mod tests;
