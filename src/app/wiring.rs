//! The pipeline's stages, their channels, and their places in the supervisor.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use mysql_async::Pool;
use tokio::sync::mpsc;
use tracing::{info, info_span, Instrument};

use super::supervise::{StageError, Supervisor};
use crate::checkpoint::tracker::Tracker;
use crate::config::{CheckpointStoreConfig, Config};
use crate::control::{CheckpointStore, DeadLetterStore, Lease, PositionStore};
use crate::error::RetryPolicy;
use crate::merge::marks::Marks;
use crate::merge::{Merge, MergeStart};
use crate::metrics::{metrics, Health};
use crate::pipeline::{Checkpoint, FillRequest, Restart};
use crate::project::{ProjectStart, Projector};
use crate::sink::lane::Lane;
use crate::sink::writer::Writer;
use crate::snapshot::driver::Driver;
use crate::snapshot::Worker;
use crate::source::{watched_tables, Source, StartPoint};
use crate::sql::TableCache;
use crate::view::View;

/// Requests that reach the snapshot worker from outside the pipeline: the API's fills and
/// backfill requests, and write-back's restores. Made before the pipeline (so that the API
/// answers while rowcast starts), again for each generation after a reload.
pub struct Requests {
    snapshots: (mpsc::Sender<String>, mpsc::Receiver<String>),
    fills: (mpsc::Sender<FillRequest>, mpsc::Receiver<FillRequest>),
}

impl Requests {
    pub fn new() -> Self {
        Requests {
            snapshots: mpsc::channel(16),
            fills: mpsc::channel(64),
        }
    }

    /// What the API reaches of the pipeline these requests go to.
    pub fn running(&self, config: &Config, client: &Client) -> crate::api::Running {
        crate::api::Running {
            snapshots: self.snapshots.0.clone(),
            fills: self.fills.0.clone(),
            views: Arc::new(config.views.clone()),
            client: client.clone(),
        }
    }
}

/// What the stages are built from.
pub struct Parts<'a> {
    pub config: &'a Config,
    pub client: &'a Client,
    pub pool: &'a Pool,
    pub store: Arc<CheckpointStore>,
    pub health: &'a Arc<Health>,
    pub carried: &'a Arc<crate::sink::unsure::Carried>,
    /// Requests to the write-back consumers to catch up (before a reload drains).
    pub catch_up: tokio::sync::watch::Receiver<crate::writeback::CatchUpAsk>,
}

fn failed<E: crate::error::Classify + std::error::Error>(error: E) -> StageError {
    StageError::from_error(&error)
}

/// Spawns every stage of the pipeline and the write-back consumers.
pub async fn spawn(
    supervisor: &mut Supervisor,
    parts: Parts<'_>,
    requests: Requests,
    start: StartPoint,
    initial: Checkpoint,
) {
    let Parts {
        config,
        client,
        pool,
        store,
        health,
        carried,
        catch_up,
    } = parts;
    let driver = Driver::new(&config.views, &initial.backfill, config.backfill_chunk_rows);
    health.set_filling(driver.filling());
    // Not ready until write-back follows its streams too (see `writeback::shards`).
    (config.views.iter().filter(|v| v.writeback_enabled))
        .for_each(|view| health.writeback_starting(&view.table));
    health.set_ready();
    info!(position = %start.position, next_seq = start.next_seq, replay_until = ?start.replay_end.as_ref().map(ToString::to_string), views = config.views.len(), "start position fixed; ready");

    let capacity = config.writer.queue_capacity;
    let observers = (client.clone(), pool.clone(), store.clone(), health.clone());
    let lease = store.lease();
    // While draining, a write that finds the lease run out gives up rather than wait for a
    // confirmation that may never come (a control table down): unacknowledged, replayed.
    lease.give_up_when(supervisor.drain_token());
    // Each write-back consumer holds a sender: the tracker keeps the checkpoint until all are
    // dropped (see `checkpoint::Tracker::consumers`).
    let (consumers, consumers_ended) = mpsc::channel(1);
    let lanes = spawn_lanes(
        supervisor,
        config,
        (client, health, carried),
        (store, consumers_ended),
        &initial,
    );
    let (merged_tx, merged_rx) = mpsc::channel(capacity);
    let project_start = ProjectStart {
        restart: Restart {
            seq: start.next_seq.saturating_sub(1),
            position: start.position.clone(),
        },
        backfill: driver.state(),
    };
    let into_lanes = (lanes.senders, lanes.last_read_seq);
    spawn_project(supervisor, config, merged_rx, into_lanes, project_start);

    let (source_tx, source_rx) = mpsc::channel(capacity);
    let merge_start = MergeStart {
        position: start.position.clone(),
        seq: start.next_seq.saturating_sub(1),
        replay_end: start.replay_end.clone(),
        backfill: driver.state(),
    };
    let cleaned = spawn_observers(supervisor, config, &observers, &requests.fills.0);
    let ddl = Arc::new(AtomicU64::new(0));
    let inputs = MergeInputs {
        ddl: ddl.clone(),
        acked: lanes.acked,
        cleaned,
        source: source_rx,
        out: merged_tx,
        start: merge_start,
        fills: requests.fills.1,
        snapshots: requests.snapshots.1,
        driver,
    };
    spawn_merge(supervisor, config, pool, health, inputs);
    let rows = crate::pipeline::RowPermits::new(capacity);
    spawn_source(supervisor, config, pool, health, (source_tx, rows), start);
    let links = (requests.fills.0, lease, catch_up, consumers, ddl);
    spawn_writebacks(supervisor, config, client, pool, links, health).await;
}

/// The projector, between the merge stage and the lanes.
fn spawn_project(
    supervisor: &mut Supervisor,
    config: &Config,
    merged: mpsc::Receiver<crate::pipeline::StreamEvent>,
    (lanes, last_read_seq): (Vec<mpsc::Sender<crate::pipeline::LaneMsg>>, Arc<AtomicU64>),
    start: ProjectStart,
) {
    let projector = Projector::new(&config.views, merged, lanes, last_read_seq, start);
    supervisor.spawn(
        "project",
        async move { projector.run().await.map_err(failed) }.instrument(info_span!("project")),
    );
}

/// The binlog reader, watching every table a view reads.
fn spawn_source(
    supervisor: &mut Supervisor,
    config: &Config,
    pool: &Pool,
    health: &Arc<Health>,
    out: (
        mpsc::Sender<crate::pipeline::SourceEvent>,
        crate::pipeline::RowPermits,
    ),
    start: StartPoint,
) {
    let related = Marks::tables(&config.views);
    let tables = watched_tables(config.views.iter().map(|v| &v.source).chain(related.iter()));
    let source = Source::new(
        config.source.clone(),
        tables,
        out,
        health.clone(),
        pool.clone(),
    );
    let drain = supervisor.drain_token();
    let span = info_span!("source", server_id = config.source.server_id);
    supervisor.spawn(
        "source",
        async move { source.run(start, drain).await.map_err(failed) }.instrument(span),
    );
}

/// The stages that read the views rather than write them: the remover of items no row makes
/// after a pass with a cleanup pending (`verify::cleanup`), and continuous verification. Returns
/// the merge stage's end of the remover's reports.
fn spawn_observers(
    supervisor: &mut Supervisor,
    config: &Config,
    (client, pool, store, health): &(Client, Pool, Arc<CheckpointStore>, Arc<Health>),
    fills: &mpsc::Sender<FillRequest>,
) -> mpsc::Receiver<(String, u128)> {
    spawn_verify(
        supervisor,
        config,
        (client, pool, health),
        store.clone(),
        fills,
    );
    let (cleaned, reports) = mpsc::channel(16);
    let cleanup = crate::verify::cleanup::Cleanup {
        views: config.views.clone(),
        client: client.clone(),
        store: store.clone(),
        cleaned,
        rate: config.verify.as_ref().and_then(|v| v.max_items_per_second),
        lease: store.lease(),
    };
    let drain = supervisor.drain_token();
    supervisor.spawn(
        "cleanup",
        async move {
            cleanup.run(drain).await;
            Ok(())
        }
        .instrument(info_span!("cleanup")),
    );
    reports
}

/// Continuous verification, when `[verify]` is configured: an observer that never fails the
/// pipeline (see `verify::continuous`).
fn spawn_verify(
    supervisor: &mut Supervisor,
    config: &Config,
    (client, pool, health): (&Client, &Pool, &Arc<Health>),
    store: Arc<CheckpointStore>,
    fills: &mpsc::Sender<FillRequest>,
) {
    let Some(verify) = &config.verify else {
        return;
    };
    let continuous = crate::verify::continuous::Continuous {
        config: verify.clone(),
        views: config.views.clone(),
        pool: pool.clone(),
        client: client.clone(),
        store,
        fills: fills.clone(),
        all_views: config.views.clone(),
        health: health.clone(),
    };
    let drain = supervisor.drain_token();
    supervisor.spawn(
        "verify",
        async move {
            continuous.run(drain).await;
            Ok(())
        }
        .instrument(info_span!("verify")),
    );
}

/// What the merge stage and the snapshot worker start from.
struct MergeInputs {
    source: mpsc::Receiver<crate::pipeline::SourceEvent>,
    out: mpsc::Sender<crate::pipeline::StreamEvent>,
    start: MergeStart,
    fills: mpsc::Receiver<FillRequest>,
    snapshots: mpsc::Receiver<String>,
    driver: Driver,
    cleaned: mpsc::Receiver<(String, u128)>,
    acked: tokio::sync::watch::Receiver<u64>,
    /// DDL statements the merge stage has seen (the snapshot worker and the write-back
    /// consumers read their tables again when it moves).
    ddl: Arc<AtomicU64>,
}

/// The merge stage and the snapshot worker, which only talk to each other.
fn spawn_merge(
    supervisor: &mut Supervisor,
    config: &Config,
    pool: &Pool,
    health: &Arc<Health>,
    inputs: MergeInputs,
) {
    // Two messages per snapshot read at most (announced, read), one read at a time.
    let (snapshot_tx, snapshot_rx) = mpsc::channel(4);
    let ddl = inputs.ddl;
    let (worker_tx, worker_rx) = mpsc::channel(config.views.len() + 8);
    let merge = Merge {
        source: inputs.source,
        snapshots: snapshot_rx,
        worker: worker_tx,
        out: inputs.out,
        views: config.views.clone(),
        marks: Marks::new(
            &config.views,
            config.join_max_dirty_keys,
            config.writer.flush_interval,
        ),
        tables: TableCache::new(pool.clone()),
        retry: RetryPolicy::new(Duration::from_millis(100), config.source.max_backoff),
        ddl: ddl.clone(),
        drain: supervisor.drain_token(),
        cleaned: inputs.cleaned,
        acked: inputs.acked,
    };
    let start = inputs.start;
    supervisor.spawn(
        "merge",
        async move { merge.run(start).await.map_err(failed) }.instrument(info_span!("merge")),
    );
    let worker = Worker {
        inbox: worker_rx,
        out: snapshot_tx,
        fills: inputs.fills,
        requests: inputs.snapshots,
        views: config.views.clone(),
        driver: Some(inputs.driver),
        tables: TableCache::new(pool.clone()),
        health: health.clone(),
        chunk_rows: config.backfill_chunk_rows,
        retry: RetryPolicy::new(Duration::from_millis(100), config.source.max_backoff),
        ddl,
        budget: crate::snapshot::worker::Budget::new(config.backfill_max_items_per_second),
        chunks: Arc::new(tokio::sync::Semaphore::new(
            crate::snapshot::worker::CHUNKS_AHEAD,
        )),
        refresh_chunks: Arc::new(tokio::sync::Semaphore::new(
            crate::snapshot::worker::CHUNKS_AHEAD,
        )),
        refresh_denied_since: None,
        backfill_denied_since: None,
    };
    let task = async move {
        worker.run().await;
        Ok(())
    };
    supervisor.spawn("snapshot", task.instrument(info_span!("snapshot")));
}

/// The lanes and the checkpoint tracker; the senders into the lanes.
struct LaneInputs {
    senders: Vec<mpsc::Sender<crate::pipeline::LaneMsg>>,
    last_read_seq: Arc<AtomicU64>,
    /// The generation of the last barrier every lane acknowledged.
    acked: tokio::sync::watch::Receiver<u64>,
}

fn spawn_lanes(
    supervisor: &mut Supervisor,
    config: &Config,
    (client, health, carried): (&Client, &Arc<Health>, &Arc<crate::sink::unsure::Carried>),
    (store, consumers): (Arc<CheckpointStore>, mpsc::Receiver<()>),
    initial: &Checkpoint,
) -> LaneInputs {
    let views: Vec<(&str, &str)> = config
        .views
        .iter()
        .map(|v| (v.name.as_str(), &*v.table))
        .collect();
    let writer = Arc::new(Writer {
        client: crate::dynamo::sending_once(client),
        dead_letters: DeadLetterStore::from_config(config, client),
        max_backoff: config.source.max_backoff,
        held: Default::default(),
        check_versions: store.has_owner(),
        lease: store.lease(),
        abandoned: Default::default(),
        unsure: crate::sink::unsure::Unsure::carrying(
            config.writer.recheck_after,
            config.writer.lanes,
            carried.clone(),
            &views,
        ),
    });
    let capacity = config.writer.queue_capacity;
    let (ack_tx, ack_rx) = mpsc::channel(capacity);
    let mut senders = Vec::new();
    for id in 0..config.writer.lanes {
        let (tx, rx) = mpsc::channel(capacity);
        senders.push(tx);
        let lane = Lane {
            id,
            rx,
            acks: ack_tx.clone(),
            writer: writer.clone(),
            config: config.writer.clone(),
        };
        supervisor.spawn(
            format!("lane {id}"),
            async move { lane.run().await.map_err(failed) }.instrument(info_span!("lane", id)),
        );
    }
    let last_read_seq = Arc::new(AtomicU64::new(initial.seq));
    let (acked_tx, acked) = tokio::sync::watch::channel(0);
    let tracker = Tracker {
        acked: acked_tx,
        consumers,
        lanes: config.writer.lanes,
        rx: ack_rx,
        before_release: Some(Box::pin(save_kept_at_stop(
            supervisor.shutdown_token(),
            carried.clone(),
            store.clone(),
        ))),
        store,
        interval: config.checkpoint_interval,
        last_read_seq: last_read_seq.clone(),
        initial: initial.clone(),
        health: health.clone(),
    };
    spawn_tracker(supervisor, tracker);
    LaneInputs {
        senders,
        last_read_seq,
        acked,
    }
}

/// At a stop, or an exit after a stage's failure (not at a reload, whose next pipeline takes
/// them up in memory; but at a stop that comes while a reload drains), saves the items
/// of writes of unknown outcome still kept for the next start to write again
/// (`control::kept`), once the last lane has let the writer go and its `Unsure` has handed
/// what it keeps to `carried` (when dropped; a review found a count of the writer's holders
/// could read zero before that hand-over was done).
async fn save_kept_at_stop(
    shutdown: tokio_util::sync::CancellationToken,
    carried: Arc<crate::sink::unsure::Carried>,
    store: Arc<CheckpointStore>,
) {
    if carried.for_reload() && !shutdown.is_cancelled() {
        return;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !carried.handed_over() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let kept = carried.kept();
    match crate::control::kept::save(&store, &kept).await {
        Ok(left_out) if !kept.is_empty() => info!(
            saved = kept.len() - left_out,
            left_out, "writes of unknown outcome saved for the next start to write again"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(
            error = %crate::error::chain(&error),
            "cannot save the writes of unknown outcome for the next start: one that lands after its replay stays"
        ),
    }
}

fn spawn_tracker(supervisor: &mut Supervisor, tracker: Tracker) {
    // Whatever ends the tracker (its return, a panic, an abort) ends the lease it renews:
    // writes still waiting give up, unacknowledged.
    let ends = EndsLease(tracker.store.lease());
    supervisor.spawn(
        "checkpoint",
        async move {
            let _ends = ends;
            tracker.run().await.map(|_| ()).map_err(|error| {
                let fenced = matches!(error, crate::control::CheckpointError::Fenced { .. });
                let stage = StageError::from_error(&error);
                if fenced {
                    stage.at_once()
                } else {
                    stage
                }
            })
        }
        .instrument(info_span!("checkpoint")),
    );
}

/// Ends a lease when dropped (see `spawn_lanes`).
struct EndsLease(Lease);

impl Drop for EndsLease {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Where write-back saves how far it read each stream.
pub(super) fn position_store(config: &Config, client: &Client) -> PositionStore {
    match &config.checkpoint {
        CheckpointStoreConfig::Table(table) => PositionStore::Table {
            client: client.clone(),
            saves: crate::dynamo::sending_once(client),
            table: table.clone(),
            prefix: config.control_prefix("writeback"),
        },
        CheckpointStoreConfig::File(path) => {
            PositionStore::file(path.with_extension("writeback.json"))
        }
    }
}

/// One write-back consumer per DynamoDB table that holds write-back views.
async fn spawn_writebacks(
    supervisor: &mut Supervisor,
    config: &Config,
    client: &Client,
    pool: &Pool,
    (restore, lease, catch_up, holds_checkpoint, ddl): (
        mpsc::Sender<FillRequest>,
        Lease,
        tokio::sync::watch::Receiver<crate::writeback::CatchUpAsk>,
        mpsc::Sender<()>,
        Arc<AtomicU64>,
    ),
    health: &Arc<Health>,
) {
    let mut by_table: BTreeMap<String, Vec<Arc<View>>> = BTreeMap::new();
    for view in config.views.iter().filter(|v| v.writeback_enabled) {
        by_table
            .entry(view.table.to_string())
            .or_default()
            .push(view.clone());
    }
    crate::metrics::forget_writeback_tables(|table| by_table.contains_key(table));
    if by_table.is_empty() {
        return;
    }
    let streams = crate::dynamo::streams_client(&config.dynamodb).await;
    let positions = Arc::new(position_store(config, client));
    let dead_letters = Arc::new(DeadLetterStore::from_config(config, client));
    let retry = RetryPolicy::new(Duration::from_millis(100), config.source.max_backoff);
    for (table, views) in by_table {
        let consumer = Arc::new(crate::writeback::Consumer {
            streams: streams.clone(),
            dynamo: client.clone(),
            pool: pool.clone(),
            views,
            table: table.clone(),
            positions: positions.clone(),
            dead_letters: dead_letters.clone(),
            poll: config.streams_poll_interval,
            restore: restore.clone(),
            skip_replication: config.streams_skip_replication,
            retry,
            health: health.clone(),
            lease: lease.clone(),
            catch_up: catch_up.clone(),
            holds_checkpoint: holds_checkpoint.clone(),
            ddl: ddl.clone(),
        });
        let restarts = metrics().writeback_restarts.with_label_values(&[&table]);
        let drain = supervisor.drain_token();
        let span = info_span!("writeback", %table);
        supervisor.spawn_restarting(format!("write-back {table}"), restarts, retry, move || {
            let consumer = consumer.clone();
            let drain = drain.clone();
            async move { consumer.follow(drain).await.map_err(failed) }.instrument(span.clone())
        });
    }
}
