//! Write-back: DynamoDB Streams → SQL, without loops and without harm to the source of truth.
//!
//! One consumer per DynamoDB table that holds write-back views. It follows the table's stream
//! (`shards.rs`, positions in `positions.rs`), decides for each record whose change it is and
//! what it means for SQL (`inverse.rs`, values in `values.rs`), and applies it to exactly the
//! row behind the item or not at all (`apply.rs`, `record.rs`).
//!
//! Invariants:
//! - rowcast's own writes and removals are never written back: they are recognised from what
//!   rowcast wrote into the record (a new `_version`; the `_removing` mark), never from the
//!   row's present state;
//! - a write-back changes only the row that makes the item, and never assigns key columns; a
//!   new item is a plain INSERT, and a duplicate on any unique key is rejected;
//! - no history is replayed: without a saved position the consumer starts at the stream's
//!   latest record;
//! - one bad record never stops the table: it is applied, skipped, or rejected (a dead letter
//!   with the stream record, and the item follows SQL again);
//! - a consumer that fails anyway (a panic, a definite error) is restarted with backoff and
//!   counted in `rowcast_writeback_restarts_total`; it never dies silently.
//!
//! The row change then comes back through the binlog like any other and is written with a new
//! version, which this consumer recognises as rowcast's own: one round trip, no ping-pong.

pub mod apply;
pub mod inverse;
pub mod positions;
pub mod record;
pub mod shards;
pub mod stream;
pub mod values;

use std::sync::Arc;
use std::time::Duration;

use mysql_async::Pool;
use tokio_util::sync::CancellationToken;
use tracing::error;

use self::positions::{PositionError, PositionStore};
use self::shards::{Ended, Follower};
use crate::error::{chain, pause, Classify, ErrorClass, RetryPolicy};
use crate::metrics::metrics;
use crate::sink::deadletter::DeadLetterStore;
use crate::sink::dynamo::SdkErrorInfo;
use crate::view::spec::View;

pub use self::stream::{stream_change, streams_client};

/// Why following a stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum WritebackError {
    #[error("dynamodb: {0}")]
    Dynamo(SdkErrorInfo),
    #[error("the table has no stream: run `rowcast tables create` (streams NEW_AND_OLD_IMAGES)")]
    NoStream,
    #[error("stream records were trimmed before they were read")]
    Trimmed,
    #[error(transparent)]
    Positions(#[from] PositionError),
}

impl Classify for WritebackError {
    fn class(&self) -> ErrorClass {
        match self {
            WritebackError::Dynamo(info) => info.class,
            // An operator may still enable the stream: keep looking.
            WritebackError::NoStream => ErrorClass::Transient,
            WritebackError::Trimmed => ErrorClass::Definite,
            WritebackError::Positions(error) => error.class(),
        }
    }
}

/// The write-back consumer of one DynamoDB table.
pub struct Consumer {
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub pool: Pool,
    /// The table's write-back views.
    pub views: Vec<Arc<View>>,
    pub table: String,
    pub positions: Arc<PositionStore>,
    pub dead_letters: Arc<DeadLetterStore>,
    /// Pause between two reads when no shard had anything new.
    pub poll: Duration,
    /// Fill requests: after a rejection, the item is written again from its row.
    pub restore: tokio::sync::mpsc::Sender<crate::pipeline::FillRequest>,
    /// Mark write-back sessions with MariaDB's `skip_replication` (`streams.skip_replication`).
    pub skip_replication: bool,
    pub retry: RetryPolicy,
    /// Told once the consumer follows its stream (readiness).
    pub health: Arc<crate::metrics::Health>,
}

impl Consumer {
    /// Follows the table's stream until `cancel` fires, restarting after a failure or a panic.
    pub async fn run(self, cancel: CancellationToken) {
        let consumer = Arc::new(self);
        let table = consumer.table.clone();
        let mut backoff = consumer.retry.backoff();
        loop {
            let task = tokio::spawn(follow(consumer.clone(), cancel.clone()));
            let cause = match task.await {
                Ok(Ok(())) => return,
                Ok(Err(error)) => chain(&error),
                Err(join) if join.is_panic() => {
                    format!("panicked: {}", record::panic_text(&join.into_panic()))
                }
                Err(_) => return,
            };
            metrics()
                .writeback_restarts
                .with_label_values(&[&table])
                .inc();
            error!(%table, %cause, "write-back consumer failed; restarting it from the saved positions");
            if !pause(&cancel, backoff.next().unwrap_or(consumer.retry.max)).await {
                return;
            }
        }
    }
}

async fn follow(consumer: Arc<Consumer>, cancel: CancellationToken) -> Result<(), WritebackError> {
    loop {
        let Some(follower) = Follower::start(consumer.clone(), &cancel).await? else {
            return Ok(());
        };
        consumer.health.writeback_following(&consumer.table);
        match follower.run(&cancel).await? {
            Ended::Cancelled => return Ok(()),
            Ended::StreamChanged => continue,
        }
    }
}
