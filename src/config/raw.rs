//! Raw serde structures of the daemon config and of view specs, exactly as written in TOML.
//! Unknown fields are errors. Validation happens in [`super::compile`], without I/O.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The daemon config file (`--config FILE`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Globs of view spec files, relative to the config file.
    pub views: Vec<String>,
    /// The MySQL/MariaDB server whose binlog is followed.
    pub source: RawSource,
    /// Where the views are written.
    #[serde(default)]
    pub dynamodb: RawDynamo,
    /// Where the checkpoint is kept: a DynamoDB control table (default) or a file.
    #[serde(default)]
    pub checkpoint: RawCheckpoint,
    /// The Prometheus and health listener (`/metrics`, `/healthz`, `/readyz` only).
    #[serde(default)]
    pub metrics: RawMetrics,
    /// The API listener: fill on miss, snapshot, repair, reload.
    #[serde(default)]
    pub api: RawApi,
    /// Tuning of the DynamoDB writer.
    #[serde(default)]
    pub writer: RawWriter,
    /// Online backfill of eager views.
    #[serde(default)]
    pub backfill: RawBackfill,
    /// Where items that DynamoDB can never accept are recorded.
    #[serde(default)]
    pub dead_letter: RawDeadLetter,
    /// How write-back reads DynamoDB Streams.
    #[serde(default)]
    pub streams: RawStreams,
    /// Continuous verification of the views (off without this section).
    pub verify: Option<RawVerify>,
    /// What this pipeline is called: the key of its checkpoint, write-back positions and dead
    /// letters in the control table.
    #[serde(default)]
    pub pipeline: RawPipeline,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// `[a-z0-9_-]{1,64}`; without it the checkpoint is keyed by `source.server_id` (as before
    /// names existed) and positions and dead letters are not keyed by pipeline.
    pub name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    /// Seconds from the start of one pass over every view to the start of the next (default 3600).
    pub interval_s: Option<u64>,
    /// Items read per second at most on each side, source and DynamoDB (default 1000; 0: no limit).
    pub max_items_per_second: Option<u32>,
    /// Send the differences found through the pipeline to be repaired (default false).
    pub repair: Option<bool>,
    /// DynamoDB Scan segments read in parallel (default 2).
    pub segments: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStreams {
    /// Pause between two reads of a shard that had nothing new (default 200); after a read that
    /// had records, the shard is read again at once, but never more than five times in a second
    /// (DynamoDB's GetRecords limit per shard).
    pub poll_interval_ms: Option<u64>,
    /// Mark write-back statements with MariaDB's `skip_replication` (default false). Loop
    /// prevention does not need it; it lets the binlog side count write-back echoes, but
    /// replicas with `replicate_events_marked_for_skip` set to filter would then drop every
    /// written-back change and diverge from the primary.
    pub skip_replication: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `mysql://user:password@host:port`; `${VAR}` is replaced from the environment (in the
    /// password taken as it is, so it may hold any character).
    pub url: String,
    /// A file holding the password (one trailing line break ignored), instead of the URL's.
    pub password_file: Option<String>,
    /// "disabled", "preferred" (default), "required", "verify_ca" or "verify_identity".
    pub tls: Option<String>,
    /// PEM file of the CA certificates the server's certificate must chain to.
    pub ca_file: Option<String>,
    /// Replica server id of the binlog connection; unique among the server's replicas.
    pub server_id: u32,
    /// Interval at which the server sends heartbeats on an idle binlog stream.
    pub heartbeat_interval_ms: Option<u64>,
    /// No event (heartbeats included) for this long means the connection is dead: reconnect.
    pub idle_timeout_ms: Option<u64>,
    /// Where to start when there is no checkpoint: "end" (default, the current binlog end) or
    /// "beginning" (the oldest binlog on the server).
    pub start: Option<String>,
    /// When the checkpoint's binlog is no longer on the server: "stop" (default: a definite
    /// error naming the position) or "rebackfill" (start at the binlog end, backfill every eager
    /// view again and then remove the items no row makes; a lazy view loses its older items).
    pub on_purged: Option<String>,
    /// How to resume: "file" (default: binlog file and offset) or "gtid" (MariaDB GTID state,
    /// which survives a failover to another server of the same replication topology).
    pub resume: Option<String>,
    /// Cap of the backoff between reconnects and write retries.
    pub max_backoff_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDynamo {
    /// Endpoint override (DynamoDB Local); omit for AWS.
    pub endpoint_url: Option<String>,
    /// AWS region; omit to use the default chain.
    pub region: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckpoint {
    /// DynamoDB control table (created by `tables create`).
    pub table: Option<String>,
    /// Alternative: a local JSON file.
    pub path: Option<String>,
    /// How often the acknowledged position is persisted.
    pub interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// `host:port` serving /metrics, /healthz, /readyz.
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// `host:port` of the API (default 127.0.0.1:9188: loopback, the pod's own containers).
    pub listen: Option<String>,
    /// A file holding the bearer token requests must carry (`Authorization: Bearer …`).
    pub token_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWriter {
    /// Parallel writer lanes; each item key always goes to the same lane.
    pub lanes: Option<usize>,
    /// How long join marks gather (one refresh read per parent per interval).
    pub flush_interval_ms: Option<u64>,
    /// How long a lane with nothing in flight waits for more changes before it writes
    /// (default 0: at once; changes arriving meanwhile gather for the next write).
    pub linger_ms: Option<u64>,
    /// Distinct keys (and dead letters) in one window: a full window goes as soon as nothing is
    /// in flight, and the lane stops reading until then.
    pub max_window_items: Option<usize>,
    /// Messages each stage may queue before the one before it waits.
    pub queue_capacity: Option<usize>,
    /// "auto" (default: conditional writes while replaying what may already be written, then
    /// BatchWriteItem), or "conditional" (always conditional single writes).
    pub mode: Option<String>,
    /// How long after a plain write of unknown outcome (a timeout, a lost connection, a server
    /// error) its items are written again with the version guard (default 60000).
    pub recheck_after_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackfill {
    /// Rows per chunk: one consistent-snapshot read, the only time the binlog reader pauses.
    pub chunk_rows: Option<usize>,
    /// Root keys of one view with joins that may wait for a refresh (default 100000); past it
    /// the view is backfilled again instead, which keeps memory bounded under any burst.
    pub join_max_dirty_keys: Option<usize>,
    /// Items per second a backfill writes at most (rows read × the views they fill; 0 or
    /// absent: no limit). Change capture is never throttled by it.
    pub max_items_per_second: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeadLetter {
    /// JSON-lines file; default: the checkpoint control table, or `<checkpoint path>.deadletters.jsonl`.
    pub path: Option<String>,
}

/// One view spec file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawView {
    /// Unique view name, `[a-z0-9_]+`.
    pub name: String,
    /// DynamoDB table the items go to.
    pub table: String,
    /// Root table `database.table`: one item per root row that passes the filter.
    pub source: String,
    /// Optional predicate over root columns.
    pub filter: Option<String>,
    /// Key templates.
    pub key: RawKey,
    /// Item attribute = column, or `{ column, as }`. Absent: every column.
    pub attributes: Option<BTreeMap<String, RawAttribute>>,
    /// Many-to-one joins.
    pub lookup: Option<Vec<RawLookup>>,
    /// One-to-many lists.
    pub embed: Option<Vec<RawEmbed>>,
    /// Aggregates over related rows.
    pub aggregate: Option<Vec<RawAggregate>>,
    /// Eager (backfilled) or lazy.
    pub fill: Option<RawFill>,
    /// DynamoDB → SQL.
    pub writeback: Option<RawWriteback>,
    /// Global secondary indexes of the view's table whose keys the items carry.
    pub index: Option<Vec<RawIndex>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIndex {
    /// The index name in DynamoDB; views of one table may share it.
    pub name: String,
    pub pk: String,
    pub sk: Option<String>,
    /// Default `<name>_pk`.
    pub pk_attribute: Option<String>,
    /// Default `<name>_sk` (with `sk` only).
    pub sk_attribute: Option<String>,
    /// "all" (default), "keys_only", or a list of attribute names.
    pub projection: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub pk: String,
    pub sk: Option<String>,
    pub pk_attribute: Option<String>,
    pub sk_attribute: Option<String>,
}

/// `name = "column"` or `name = { column = "…", as = "…" }`.
#[derive(Debug)]
pub enum RawAttribute {
    Column(String),
    Spec(RawAttributeSpec),
}

impl<'de> Deserialize<'de> for RawAttribute {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(deserializer)? {
            toml::Value::String(column) => Ok(RawAttribute::Column(column)),
            table @ toml::Value::Table(_) => RawAttributeSpec::deserialize(table)
                .map(RawAttribute::Spec)
                .map_err(|e| D::Error::custom(e.message())),
            other => Err(D::Error::custom(format!(
                "expected a column name or {{ column = \"…\", as = \"…\" }}, found a {}",
                other.type_str()
            ))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttributeSpec {
    pub column: String,
    #[serde(rename = "as")]
    pub conversion: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLookup {
    pub from: String,
    pub on: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, RawAttribute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbed {
    pub attribute: String,
    pub from: String,
    pub on: BTreeMap<String, String>,
    pub order_by: Option<toml::Value>,
    pub attributes: Option<BTreeMap<String, RawAttribute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAggregate {
    pub attribute: String,
    pub from: String,
    pub on: BTreeMap<String, String>,
    pub function: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFill {
    pub mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWriteback {
    pub enabled: Option<bool>,
    pub attributes: Option<Vec<String>>,
}
