//! Wires the stages and owns start-up and shutdown.
//!
//! Start-up: bind the HTTP listener (so probes answer at once), check the servers (retrying
//! while they are unreachable, stopping on a definite problem), fix the start position (the
//! checkpoint, or the binlog end persisted as the first checkpoint), then mark ready and run
//! source → projector → lanes → tracker. Shutdown: cancelling the token stops the source; each
//! stage ends when its input closes, so in-flight writes drain and the final checkpoint is
//! committed.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use mysql_async::prelude::Queryable;
use mysql_async::Pool;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, info_span, warn, Instrument};

use crate::checkpoint::tracker::Tracker;
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::config::{CheckpointStoreConfig, Config, Problem};
use crate::error::{chain, Classify, ErrorClass};
use crate::metrics::{self, now_millis, Health};
use crate::sink::deadletter::DeadLetterStore;
use crate::sink::dynamo::{self, SdkErrorInfo};
use crate::sink::lane::Lane;
use crate::sink::tables::{check_table, needed_tables};
use crate::sink::writer::Writer;
use crate::snapshot::driver::Driver;
use crate::snapshot::refresh::Refresher;
use crate::source::{self, preflight, watched_tables, Backfill, Source, SourceError, StartPoint};
use crate::view::stage::Projector;
use crate::writeback::positions::PositionStore;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("preflight found {} problem(s)", .0.len())]
    Preflight(Vec<Problem>),
    #[error("source")]
    Source(#[from] SourceError),
    #[error("checkpoint")]
    Checkpoint(#[from] CheckpointError),
    #[error("dynamodb: {0}")]
    Dynamo(SdkErrorInfo),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for AppError {
    fn class(&self) -> ErrorClass {
        match self {
            AppError::Preflight(_) | AppError::Listen { .. } => ErrorClass::Definite,
            AppError::Source(e) => e.class(),
            AppError::Checkpoint(e) => e.class(),
            AppError::Dynamo(info) => info.class,
        }
    }
}

pub fn checkpoint_store(config: &Config, client: &Client) -> CheckpointStore {
    match &config.checkpoint {
        CheckpointStoreConfig::Table(table) => {
            CheckpointStore::table(client.clone(), table.clone(), config.source.server_id)
        }
        CheckpointStoreConfig::File(path) => CheckpointStore::File(path.clone()),
    }
}

/// Runs the daemon until `shutdown` fires (then drains) or a definite error stops it.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    let health = Arc::new(Health::default());
    let listener = TcpListener::bind(config.metrics_listen)
        .await
        .map_err(|source| AppError::Listen {
            addr: config.metrics_listen,
            source,
        })?;
    info!(listen = %config.metrics_listen, "serving /metrics, /healthz, /readyz");
    let server_stop = CancellationToken::new();
    let stall_limit = config.source.idle_timeout * 6;
    let client = dynamo::client(&config.dynamodb).await;
    let (snapshot_tx, snapshot_rx) = mpsc::channel(16);
    let (fill_tx, fill_rx) = mpsc::channel(64);
    let restore_tx = fill_tx.clone();
    let control = metrics::Control {
        snapshots: snapshot_tx,
        fills: fill_tx,
        views: Arc::new(config.views.clone()),
        client: client.clone(),
    };
    let server = tokio::spawn(metrics::serve(
        listener,
        health.clone(),
        stall_limit,
        control,
        server_stop.clone(),
    ));

    let store = Arc::new(checkpoint_store(&config, &client));
    let pool = Pool::new(
        mysql_async::Opts::from_url(&config.source.url)
            .map_err(|e| AppError::Source(SourceError::Url(e)))?,
    );

    let Some((start, initial)) = prepare_with_retry(&config, &client, &store, &shutdown).await?
    else {
        server_stop.cancel();
        return Ok(());
    };
    let driver = Driver::new(&config.views, &initial.backfill, config.backfill_chunk_rows);
    health.set_filling(driver.filling());
    // Not ready until write-back follows its streams too (see `writeback::shards`).
    for view in config.views.iter().filter(|v| v.writeback_enabled) {
        health.writeback_starting(&view.table);
    }
    health.set_ready();
    info!(position = %start.position, next_seq = start.next_seq, replay_until = ?start.replay_end.as_ref().map(ToString::to_string), views = config.views.len(), "start position fixed; ready");

    let dead_letters = DeadLetterStore::from_config(&config.dead_letter, &client);
    let writer = Arc::new(Writer {
        client: client.clone(),
        dead_letters,
        max_backoff: config.source.max_backoff,
    });
    let tasks = TaskTracker::new();
    let capacity = config.writer.queue_capacity;
    let (ack_tx, ack_rx) = mpsc::channel(capacity);
    let mut lane_senders = Vec::new();
    for id in 0..config.writer.lanes {
        let (tx, rx) = mpsc::channel(capacity);
        lane_senders.push(tx);
        let lane = Lane {
            id,
            rx,
            acks: ack_tx.clone(),
            writer: writer.clone(),
            config: config.writer.clone(),
        };
        tasks.spawn(lane.run().instrument(info_span!("lane", id)));
    }
    drop(ack_tx);
    let last_read_seq = Arc::new(AtomicU64::new(initial.seq));
    let tracker = Tracker {
        lanes: config.writer.lanes,
        rx: ack_rx,
        store: store.clone(),
        interval: config.checkpoint_interval,
        last_read_seq: last_read_seq.clone(),
        initial,
    };
    let tracker = tokio::spawn(tracker.run().instrument(info_span!("checkpoint")));
    let (source_tx, source_rx) = mpsc::channel(capacity);
    tasks.spawn(
        Projector::new(&config.views, source_rx, lane_senders, last_read_seq)
            .run()
            .instrument(info_span!("project")),
    );
    tasks.close();

    let refresher = Refresher::new(
        &config.views,
        config.backfill_chunk_rows,
        config.join_max_dirty_keys,
        config.writer.flush_interval,
    );
    let related = refresher.tables();
    let tables = watched_tables(config.views.iter().map(|v| &v.source).chain(related.iter()));
    let source = Source::new(
        config.source.clone(),
        tables,
        source_tx,
        health.clone(),
        pool.clone(),
        Backfill {
            driver,
            requests: snapshot_rx,
            fills: fill_rx,
            views: config.views.clone(),
            refresher,
        },
    );
    let writeback_stop = CancellationToken::new();
    let writebacks = spawn_writebacks(
        &config,
        &client,
        &pool,
        restore_tx,
        &health,
        &writeback_stop,
    )
    .await;
    let source_result = source
        .run(start, shutdown.clone())
        .instrument(info_span!("source", server_id = config.source.server_id))
        .await;
    if let Err(error) = &source_result {
        warn!(error = %chain(error), "source stopped; draining what was read");
    }
    writeback_stop.cancel();
    writebacks.close();
    writebacks.wait().await;
    tasks.wait().await;
    let tracker_result = tracker.await.expect("the tracker task does not panic");
    server_stop.cancel();
    let _ = server.await;
    let _ = pool.disconnect().await;
    source_result?;
    tracker_result?;
    Ok(())
}

/// One write-back consumer per DynamoDB table that holds write-back views.
async fn spawn_writebacks(
    config: &Config,
    client: &Client,
    pool: &Pool,
    restore: mpsc::Sender<crate::pipeline::FillRequest>,
    health: &Arc<Health>,
    stop: &CancellationToken,
) -> TaskTracker {
    let tasks = TaskTracker::new();
    let mut by_table: std::collections::BTreeMap<String, Vec<Arc<crate::view::View>>> =
        Default::default();
    for view in config.views.iter().filter(|v| v.writeback_enabled) {
        by_table
            .entry(view.table.clone())
            .or_default()
            .push(view.clone());
    }
    if by_table.is_empty() {
        return tasks;
    }
    let streams = crate::writeback::streams_client(&config.dynamodb).await;
    let positions = Arc::new(match &config.checkpoint {
        CheckpointStoreConfig::Table(table) => PositionStore::Table {
            client: client.clone(),
            table: table.clone(),
        },
        CheckpointStoreConfig::File(path) => {
            PositionStore::file(path.with_extension("writeback.json"))
        }
    });
    let dead_letters = Arc::new(DeadLetterStore::from_config(&config.dead_letter, client));
    for (table, views) in by_table {
        let consumer = crate::writeback::Consumer {
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
            retry: crate::error::RetryPolicy::new(
                Duration::from_millis(100),
                config.source.max_backoff,
            ),
            health: health.clone(),
        };
        tasks.spawn(
            consumer
                .run(stop.clone())
                .instrument(info_span!("writeback", %table)),
        );
    }
    tasks
}

async fn prepare_with_retry(
    config: &Config,
    client: &Client,
    store: &CheckpointStore,
    shutdown: &CancellationToken,
) -> Result<Option<(StartPoint, Checkpoint)>, AppError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match prepare(config, client, store).await {
            Ok(ready) => return Ok(Some(ready)),
            Err(error) if error.is_transient() => {
                warn!(error = %chain(&error), delay_ms = delay.as_millis() as u64, "servers not reachable yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(config.source.max_backoff);
            }
            Err(error) => return Err(error),
        }
    }
}

/// Preflight and the start position. A fresh start persists its position as the first
/// checkpoint, so that a crash before the first commit resumes from the same place.
async fn prepare(
    config: &Config,
    client: &Client,
    store: &CheckpointStore,
) -> Result<(StartPoint, Checkpoint), AppError> {
    let (mut conn, flavor) = source::connect(&config.source.url).await?;
    let mut problems = preflight::check_server(&mut conn, config).await?;
    if config.source.resume_by_gtid && flavor == source::Flavor::MySql {
        problems.push(Problem {
            file: config.file.clone(),
            field: "source.resume".into(),
            message: "resume = \"gtid\" is supported on MariaDB only".into(),
        });
    }
    problems.extend(preflight::check_writeback_keys(&mut conn, &config.views).await?);
    for warning in preflight::check_privileges(&mut conn, config).await? {
        warn!(problem = %warning, "privilege check (grants through roles are not resolved)");
    }
    for (table, need) in needed_tables(config) {
        for message in check_table(client, &table, &need)
            .await
            .map_err(AppError::Dynamo)?
        {
            problems.push(Problem {
                file: config.file.clone(),
                field: format!("table {table} ({})", need.users.join(", ")),
                message,
            });
        }
    }
    if !problems.is_empty() {
        return Err(AppError::Preflight(problems));
    }
    let end = source::binlog_end(&mut conn).await?;
    let loaded = store.load().await?;
    let result = match loaded {
        Some(checkpoint) => {
            // Resuming by GTID, the server finds the position itself (and says if it cannot).
            let by_gtid = config.source.resume_by_gtid && checkpoint.position.gtid.is_some();
            let gone = if by_gtid {
                Vec::new()
            } else {
                preflight::check_checkpoint(&mut conn, config, &checkpoint).await?
            };
            if let Some(problem) = gone.into_iter().next() {
                if !config.source.rebackfill_on_purged {
                    return Err(AppError::Source(SourceError::PositionGone {
                        position: checkpoint.position.to_string(),
                        message: problem.message,
                    }));
                }
                // source.on_purged = "rebackfill": start over at the binlog end, counting on,
                // and fill every eager view again.
                warn!(problem = %problem.message, "binlog purged: starting at the binlog end and backfilling every eager view again");
                let position = start_position(&mut conn, config, flavor, end.clone()).await?;
                let restart = Checkpoint {
                    position: position.clone(),
                    seq: checkpoint.seq,
                    updated_ms: now_millis(),
                    backfill: Default::default(),
                };
                store.save(&restart).await?;
                let start = StartPoint {
                    position,
                    next_seq: restart.seq + 1,
                    replay_end: None,
                    backfill: Default::default(),
                };
                let _ = conn.disconnect().await;
                return Ok((start, restart));
            }
            let start = StartPoint {
                position: checkpoint.position.clone(),
                next_seq: checkpoint.seq + 1,
                replay_end: Some(end),
                backfill: checkpoint.backfill.clone(),
            };
            (start, checkpoint)
        }
        None => {
            let position = start_position(&mut conn, config, flavor, end.clone()).await?;
            // Versions count up from the clock at the first start, so that they stay above
            // anything an earlier deployment wrote and keep growing after a failover.
            let seq = now_millis() * 1000;
            let checkpoint = Checkpoint {
                position: position.clone(),
                seq,
                updated_ms: now_millis(),
                backfill: Default::default(),
            };
            store.save(&checkpoint).await?;
            info!(store = %store.describe(), position = %position, "no checkpoint: starting at the binlog end");
            (
                StartPoint {
                    position,
                    next_seq: seq + 1,
                    replay_end: None,
                    backfill: Default::default(),
                },
                checkpoint,
            )
        }
    };
    let _ = conn.disconnect().await;
    Ok(result)
}

use crate::checkpoint::Position;

/// Where a start without a usable checkpoint begins: the binlog end (with MariaDB's GTID state),
/// or the oldest binlog with `source.start = "beginning"`.
async fn start_position(
    conn: &mut mysql_async::Conn,
    config: &Config,
    flavor: source::Flavor,
    end: Position,
) -> Result<Position, AppError> {
    let position = if config.source.start_at_beginning {
        let files = source::binlog_files(conn).await?;
        Position {
            file: files.first().cloned().unwrap_or(end.file.clone()),
            pos: 4,
            gtid: None,
        }
    } else if flavor == source::Flavor::MariaDb {
        let state: Option<String> = conn
            .query_first("SELECT @@gtid_binlog_pos")
            .await
            .map_err(SourceError::Query)?;
        Position {
            gtid: state.filter(|s| !s.is_empty()),
            ..end
        }
    } else {
        end
    };
    Ok(position)
}

/// Everything `check --connect` verifies, as a list of problems.
pub async fn preflight(config: &Config) -> Result<Vec<Problem>, AppError> {
    let (mut conn, _flavor) = source::connect(&config.source.url).await?;
    let mut problems = preflight::check_server(&mut conn, config).await?;
    problems.extend(preflight::check_privileges(&mut conn, config).await?);
    problems.extend(preflight::check_views(&mut conn, &config.views).await?);
    let client = dynamo::client(&config.dynamodb).await;
    for (table, need) in needed_tables(config) {
        match check_table(&client, &table, &need).await {
            Ok(found) => problems.extend(found.into_iter().map(|message| Problem {
                file: config.file.clone(),
                field: format!("table {table} ({})", need.users.join(", ")),
                message,
            })),
            Err(info) => problems.push(Problem {
                file: config.file.clone(),
                field: format!("table {table}"),
                message: info.to_string(),
            }),
        }
    }
    let store = checkpoint_store(config, &client);
    match store.load().await {
        Ok(Some(checkpoint)) => {
            problems.extend(preflight::check_checkpoint(&mut conn, config, &checkpoint).await?)
        }
        Ok(None) => {}
        Err(error) => problems.push(Problem {
            file: config.file.clone(),
            field: "checkpoint".into(),
            message: chain(&error),
        }),
    }
    let _ = conn.disconnect().await;
    Ok(problems)
}
