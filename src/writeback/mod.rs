//! Write-back: DynamoDB Streams → SQL, without loops and without harm to the source of truth.
//!
//! One consumer per DynamoDB table that holds write-back views. It follows the table's stream
//! (`shards.rs`, positions in `control::positions`), decides for each record whose change it is and
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
//! - a consumer that fails anyway (a panic, a transient error) is started again by the
//!   supervisor with backoff and counted in `rowcast_writeback_restarts_total`; a definite one
//!   (positions that cannot be read) stops the daemon with the cause. It never dies silently.
//!
//! The row change then comes back through the binlog like any other and is written with a new
//! version, which this consumer recognises as rowcast's own: one round trip, no ping-pong.

pub mod apply;
pub mod inverse;
pub mod record;
pub mod seen;
pub mod shards;
pub mod stream;
pub use crate::sql::values;

use std::sync::Arc;
use std::time::Duration;

use mysql_async::Pool;
use tokio_util::sync::CancellationToken;

use self::shards::{Ended, Follower};
use crate::control::positions::{PositionError, PositionStore};
use crate::control::DeadLetterStore;
use crate::dynamo::SdkErrorInfo;
use crate::error::{Classify, ErrorClass, RetryPolicy};
use crate::view::spec::View;

pub use self::stream::stream_change;

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

/// A request to every write-back consumer to apply the records already in its stream, then
/// answer on the sender (`None`: nothing asked). A reload asks before it drains the pipeline:
/// the next consumers read with the new views, under whose templates a record of an old key
/// would be skipped as another view's (a changed key, a view removed or no longer writable),
/// losing the application's change. Asked while the pipeline still runs, so that the write
/// lease is confirmed and restores are served.
/// The answer names the consumer's table (a consumer started again after a failure may answer
/// twice).
pub type CatchUpAsk = Option<tokio::sync::mpsc::Sender<String>>;

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
    /// Every SQL COMMIT of a record waits for it (see `control::Lease`): an instance taken
    /// over while it held a record never applies it after its successor's newer ones.
    pub lease: crate::control::Lease,
    /// Requests to catch up before a reload (see [`CatchUpAsk`]).
    pub catch_up: tokio::sync::watch::Receiver<CatchUpAsk>,
    /// Never sent on: dropped with the consumer, it tells the checkpoint tracker that no
    /// position is left to save (the checkpoint is released only then).
    pub holds_checkpoint: tokio::sync::mpsc::Sender<()>,
    /// DDL statements the binlog reader has read (counted by the merge stage): the table
    /// schemas read before are forgotten when it moves. A row changed after an `ALTER` reaches
    /// its item only after the merge stage counted the `ALTER`, so an application's change of
    /// that item is read with the new schema.
    pub ddl: Arc<std::sync::atomic::AtomicU64>,
}

impl Consumer {
    /// Follows the table's stream until `cancel` fires. A failure ends it; the supervisor starts
    /// it again from the saved positions (or stops the daemon on a definite one).
    pub async fn follow(self: Arc<Self>, cancel: CancellationToken) -> Result<(), WritebackError> {
        follow(self, cancel).await
    }
}

async fn follow(consumer: Arc<Consumer>, cancel: CancellationToken) -> Result<(), WritebackError> {
    crate::util::failpoint::hit("writeback.follow");
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
