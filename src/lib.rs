//! rowcast keeps DynamoDB materialized views of a MySQL/MariaDB database: it tails the binlog,
//! projects row changes through declarative view specs into items, writes them in checkpointed
//! batches, and exposes Prometheus metrics. See ARCHITECTURE.md for the data flow and the
//! invariants (ordering per item, versions, checkpoint of the acknowledged prefix).

pub mod api;
pub mod app;
pub mod checkpoint;
pub mod config;
pub mod control;
pub mod dynamo;
pub mod error;
pub mod export;
pub mod merge;
pub mod metrics;
pub mod pipeline;
pub mod project;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod sql;
pub mod suggest;
pub mod util;
pub mod verify;
pub mod view;
pub mod writeback;
