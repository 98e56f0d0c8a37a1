//! The binlog event loop: transaction boundaries, row decoding, reconnects.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::{FutureExt, StreamExt};
use mysql_async::binlog::events::{Event, EventData, RowsEventData};
use mysql_async::binlog::EventType;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Pool};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::decode::{decode_row, row_charsets};
use super::mariadb::{self, MariaGtid};
use super::schema::SchemaCache;
use super::{connect, position_before, Flavor, SourceError};
use crate::checkpoint::Position;
use crate::config::SourceConfig;
use crate::error::{chain, Classify};
use crate::metrics::{metrics, Health};
use crate::pipeline::{Barrier, FillRequest, RowChange, SnapshotRows, SourceEvent};
use crate::snapshot::driver::{Driver, Injection};
use crate::snapshot::join::read_roots;
use crate::snapshot::read::{keyset_tail, matching_condition};
use crate::snapshot::refresh::Refresher;
use crate::snapshot::BackfillState;
use crate::view::spec::{TableRef, View};

/// Where the reader starts.
#[derive(Debug, Clone)]
pub struct StartPoint {
    pub position: Position,
    /// Counter of the first transaction read.
    pub next_seq: u64,
    /// Transactions that start before this position may already have been written by an
    /// earlier run: their writes are conditional on the item version.
    pub replay_end: Option<Position>,
    /// Backfill progress from the checkpoint (kept on barriers when nothing is left to fill).
    pub backfill: BackfillState,
}

pub struct Source {
    config: SourceConfig,
    tables: HashSet<TableRef>,
    tx: mpsc::Sender<SourceEvent>,
    health: Arc<Health>,
    schemas: SchemaCache,
    pool: Pool,
    /// Backfill plan; `None` once it failed definitely.
    backfill: Option<Driver>,
    /// Views to backfill again, from `POST /v1/views/{view}/snapshot`.
    requests: mpsc::Receiver<String>,
    views: Vec<Arc<View>>,
    /// Requests received while a chunk was waiting.
    requested: Vec<String>,
    /// Fill-on-miss reads asked for, read, and waiting for the stream to reach their position.
    fills: mpsc::Receiver<FillRequest>,
    queued_fills: Vec<FillRequest>,
    pending_fills: Vec<(Injection, Merged)>,
    /// Items of views with joins to read again (see `snapshot/refresh.rs`).
    refresher: Refresher,
}

/// What the reader needs for backfills.
pub struct Backfill {
    pub driver: Driver,
    pub requests: mpsc::Receiver<String>,
    pub fills: mpsc::Receiver<FillRequest>,
    pub views: Vec<Arc<View>>,
    pub refresher: Refresher,
}

/// What snapshot rows are merged into the stream for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merged {
    Backfill,
    Fill,
    /// A fill that write-back asked for after rejecting an application's change.
    Restore,
    Refresh,
}

/// Where a rows event sits: its transaction, the index of its first row change, its binlog
/// position, whether its writes are guarded, where its transaction starts, its header flags.
struct RowsContext<'a> {
    seq: u64,
    first_index: u32,
    origin: Arc<Position>,
    guard: bool,
    restart: &'a Position,
    flags_raw: u16,
}

/// State of the transaction being read.
struct Txn {
    seq: u64,
    /// Row changes read so far in this transaction.
    rows: u32,
    gtid: Option<String>,
    /// MariaDB standalone (DDL) transaction: ends with its query event.
    standalone: bool,
}

/// What the reader keeps across reconnects.
struct Cursor {
    /// Counter of the barriers sent by this process.
    generation: u64,
    /// Backfill progress as of the last barrier.
    backfill_state: Arc<BackfillState>,
    /// MariaDB GTID state (domain → last committed GTID), the `gtid` of checkpoints.
    gtid_state: BTreeMap<u32, String>,
    /// End of the last complete transaction: where a reconnect resumes.
    resume: Position,
    next_seq: u64,
    replay_end: Option<Position>,
}

impl Source {
    pub fn new(
        config: SourceConfig,
        tables: HashSet<TableRef>,
        tx: mpsc::Sender<SourceEvent>,
        health: Arc<Health>,
        pool: Pool,
        backfill: Backfill,
    ) -> Self {
        Source {
            config,
            tables,
            tx,
            health,
            schemas: SchemaCache::new(pool.clone()),
            pool,
            backfill: Some(backfill.driver),
            requests: backfill.requests,
            views: backfill.views,
            requested: Vec::new(),
            fills: backfill.fills,
            queued_fills: Vec::new(),
            pending_fills: Vec::new(),
            refresher: backfill.refresher,
        }
    }

    /// Follows the binlog until `cancel` fires or a definite error occurs.
    pub async fn run(
        mut self,
        start: StartPoint,
        cancel: CancellationToken,
    ) -> Result<(), SourceError> {
        let backfill_state = match &self.backfill {
            Some(driver) => driver.state(),
            None => Arc::new(start.backfill.clone()),
        };
        let mut cursor = Cursor {
            generation: 0,
            backfill_state,
            gtid_state: parse_gtid_state(start.position.gtid.as_deref()),
            resume: start.position,
            next_seq: start.next_seq,
            replay_end: start.replay_end,
        };
        let mut backoff = self.backoff();
        loop {
            let started = Instant::now();
            let result = self.stream_once(&mut cursor, &cancel).await;
            match result {
                Ok(()) => return Ok(()),
                Err(error) if error.is_transient() => {
                    if started.elapsed() > Duration::from_secs(30) {
                        backoff = self.backoff();
                    }
                    let delay = backoff.next().unwrap_or(self.config.max_backoff);
                    let reason = match &error {
                        SourceError::Idle(_) => "idle",
                        SourceError::Ended => "ended",
                        SourceError::Connect(_) => "connect",
                        _ => "error",
                    };
                    metrics()
                        .source_reconnects
                        .with_label_values(&[reason])
                        .inc();
                    warn!(error = %chain(&error), resume = %cursor.resume, delay_ms = delay.as_millis() as u64, "binlog connection lost; reconnecting");
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(self.config.max_backoff)
            .with_jitter()
            .without_max_times()
            .build()
    }

    async fn open_stream(&self, resume: &Position) -> Result<(BinlogStream, Flavor), SourceError> {
        let (mut conn, flavor) = connect(&self.config.url).await?;
        let heartbeat_ns = self.config.heartbeat_interval.as_nanos().to_string();
        conn.query_drop(format!("SET @master_heartbeat_period = {heartbeat_ns}"))
            .await
            .map_err(SourceError::Query)?;
        if flavor == Flavor::MariaDb {
            // Without it MariaDB rewrites GTID events into BEGIN and dummy events.
            conn.query_drop("SET @mariadb_slave_capability = 4")
                .await
                .map_err(SourceError::Query)?;
        }
        let by_gtid = self.config.resume_by_gtid && flavor == Flavor::MariaDb;
        let request = match resume.gtid.as_deref() {
            Some(state) if by_gtid => {
                // The server finds the position of this GTID state itself (it may be another
                // server than the one the checkpoint was taken on).
                conn.exec_drop("SET @slave_connect_state = ?", (state,))
                    .await
                    .map_err(SourceError::Query)?;
                BinlogStreamRequest::new(self.config.server_id)
            }
            _ => BinlogStreamRequest::new(self.config.server_id)
                .with_filename(resume.file.as_bytes())
                .with_pos(resume.pos),
        };
        let stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(SourceError::Stream)?;
        Ok((stream, flavor))
    }

    async fn stream_once(
        &mut self,
        cursor: &mut Cursor,
        cancel: &CancellationToken,
    ) -> Result<(), SourceError> {
        let (mut stream, flavor) = self.open_stream(&cursor.resume).await?;
        info!(position = %cursor.resume, ?flavor, next_seq = cursor.next_seq, "following the binlog");
        let mut file = cursor.resume.file.clone();
        let mut seen_format = false;
        let mut txn: Option<Txn> = None;
        // End of the last binlog event processed on this connection.
        let mut current = Position {
            file: file.clone(),
            pos: cursor.resume.pos,
            gtid: None,
        };
        loop {
            if txn.is_none() {
                self.backfill_step(cursor, &current).await?;
            }
            // With more backfill chunks to read, take an event only if one is there already:
            // an idle binlog must not hold the backfill back. (The stream keeps a partly read
            // packet in itself, so dropping `next()` loses nothing.)
            let backfill_ready = txn.is_none()
                && (self.backfill.as_ref().is_some_and(Driver::wants_chunk)
                    || self.refresher.wants_read());
            let next = if backfill_ready {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                match stream.next().now_or_never() {
                    Some(next) => Ok(next),
                    None => continue,
                }
            } else {
                let refresh_due = self.refresher.due_at();
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    Some(fill) = self.fills.recv() => {
                        self.queued_fills.push(fill);
                        continue;
                    }
                    _ = sleep_until(refresh_due), if refresh_due.is_some() && txn.is_none() => continue,
                    next = tokio::time::timeout(self.config.idle_timeout, stream.next()) => next,
                }
            };
            let event = match next {
                Err(_) => return Err(SourceError::Idle(self.config.idle_timeout)),
                Ok(None) => return Err(SourceError::Ended),
                Ok(Some(Err(error))) => return Err(stream_error(error, &cursor.resume)),
                Ok(Some(Ok(event))) => event,
            };
            self.health.progress();
            let header = event.header();
            let type_raw = header.event_type_raw();
            if header.log_pos() != 0 && txn.is_none() {
                // A pending backfill chunk goes in just before the first event at or after its
                // snapshot position.
                let start = Position {
                    file: file.clone(),
                    pos: u64::from(header.log_pos().saturating_sub(header.event_size())),
                    gtid: None,
                };
                self.inject_if_reached(cursor, &start).await?;
            }
            if header.log_pos() != 0 {
                current = Position {
                    file: file.clone(),
                    pos: u64::from(header.log_pos()),
                    gtid: None,
                };
            }
            metrics()
                .binlog_events
                .with_label_values(&[event_type_name(type_raw)])
                .inc();
            // MariaDB's own events first: mysql_common does not decode them.
            match type_raw {
                mariadb::GTID_EVENT => {
                    let gtid =
                        MariaGtid::parse(event.data(), header.server_id()).ok_or_else(|| {
                            SourceError::Decode(super::decode::DecodeError::Row {
                                table: String::new(),
                                reason: "short MariaDB GTID event".into(),
                            })
                        })?;
                    txn = Some(Txn {
                        seq: cursor.next_seq,
                        rows: 0,
                        gtid: Some(gtid.to_string()),
                        standalone: gtid.standalone(),
                    });
                    continue;
                }
                mariadb::GTID_LIST_EVENT
                | mariadb::BINLOG_CHECKPOINT_EVENT
                | mariadb::ANNOTATE_ROWS_EVENT => continue,
                _ => {}
            }
            let data = match event.read_data() {
                Ok(Some(data)) => data,
                Ok(None) => continue,
                Err(error) => {
                    return Err(SourceError::Decode(super::decode::DecodeError::Row {
                        table: String::new(),
                        reason: format!(
                            "event type {type_raw} at {file}:{}: {error}",
                            header.log_pos()
                        ),
                    }))
                }
            };
            match data {
                EventData::RotateEvent(rotate) => {
                    let raw = rotate.name_raw();
                    // The first (artificial) rotate comes before the format description, so
                    // its 4 checksum bytes are still glued to the name.
                    let raw = if !seen_format && raw.len() > 4 {
                        &raw[..raw.len() - 4]
                    } else {
                        raw
                    };
                    file = String::from_utf8_lossy(raw).into_owned();
                    current = Position {
                        file: file.clone(),
                        pos: rotate.position(),
                        gtid: None,
                    };
                }
                EventData::FormatDescriptionEvent(_) => seen_format = true,
                EventData::GtidEvent(gtid) => {
                    let uuid = gtid.sid();
                    let gtid_text = format!("{}:{}", format_uuid(&uuid), gtid.gno());
                    txn = Some(Txn {
                        seq: cursor.next_seq,
                        rows: 0,
                        gtid: Some(gtid_text),
                        standalone: false,
                    });
                }
                EventData::AnonymousGtidEvent(_) => {
                    txn = Some(Txn {
                        seq: cursor.next_seq,
                        rows: 0,
                        gtid: None,
                        standalone: false,
                    });
                }
                EventData::QueryEvent(query) => {
                    let text = query.query();
                    let statement = text.trim_start().to_ascii_uppercase();
                    if statement.starts_with("BEGIN") || statement.starts_with("XA START") {
                        if txn.is_none() {
                            txn = Some(Txn {
                                seq: cursor.next_seq,
                                rows: 0,
                                gtid: None,
                                standalone: false,
                            });
                        }
                    } else if statement.starts_with("COMMIT")
                        || statement.starts_with("ROLLBACK")
                            && !statement.starts_with("ROLLBACK TO")
                        || statement.starts_with("XA COMMIT")
                    {
                        // A logged ROLLBACK only happens with non-transactional tables, whose
                        // changes stay: it ends the transaction like a commit.
                        self.commit(&mut txn, cursor, &file, &event).await?;
                    } else if statement.starts_with("SAVEPOINT")
                        || statement.starts_with("ROLLBACK TO")
                        || statement.starts_with("XA ")
                    {
                        // Inside a transaction; nothing to do.
                    } else {
                        metrics().ddl_events.inc();
                        info!(schema = %query.schema(), statement = %truncate(&text, 200), "DDL seen; table schemas reloaded");
                        self.schemas.invalidate();
                        let standalone = txn
                            .as_ref()
                            .is_none_or(|t| t.standalone || t.gtid.is_some());
                        if standalone {
                            self.commit(&mut txn, cursor, &file, &event).await?;
                        }
                    }
                }
                EventData::XidEvent(_) => self.commit(&mut txn, cursor, &file, &event).await?,
                EventData::RowsEvent(rows) => {
                    let Some(open) = txn.as_mut() else {
                        warn!(file = %file, pos = header.log_pos(), "rows event outside a transaction; ignored");
                        continue;
                    };
                    let (seq, gtid) = (open.seq, open.gtid.clone());
                    let first_index = open.rows;
                    let origin = Arc::new(Position {
                        file: file.clone(),
                        pos: u64::from(header.log_pos()),
                        gtid,
                    });
                    let guard = cursor
                        .replay_end
                        .as_ref()
                        .is_some_and(|end| position_before(&origin, end));
                    let restart = cursor.resume.clone();
                    let count = self
                        .handle_rows(
                            &stream,
                            rows,
                            RowsContext {
                                seq,
                                first_index,
                                origin,
                                guard,
                                restart: &restart,
                                flags_raw: header.flags_raw(),
                            },
                        )
                        .await?;
                    if let Some(open) = txn.as_mut() {
                        open.rows = open.rows.saturating_add(count);
                    }
                }
                EventData::HeartbeatEvent => {}
                _ => {}
            }
        }
    }

    /// Between transactions: read the next backfill chunk if none is waiting, and inject the
    /// waiting one if the stream has reached its snapshot position.
    async fn backfill_step(
        &mut self,
        cursor: &mut Cursor,
        current: &Position,
    ) -> Result<(), SourceError> {
        while let Ok(fill) = self.fills.try_recv() {
            self.queued_fills.push(fill);
        }
        for fill in std::mem::take(&mut self.queued_fills) {
            let outcome = self.read_for_fill(&fill).await;
            let _ = fill.reply.send(outcome);
        }
        self.refresh_step().await;
        self.requested.extend(self.refresher.take_overflowed());
        // Without a backfill to fall back on, marks are kept however many they are.
        self.refresher.allow_overflow(self.backfill.is_some());
        let Some(driver) = self.backfill.as_mut() else {
            return self.inject_if_reached(cursor, current).await;
        };
        while let Ok(view) = self.requests.try_recv() {
            self.requested.push(view);
        }
        if !self.requested.is_empty() && driver.pending_position().is_none() {
            for name in std::mem::take(&mut self.requested) {
                if let Some(view) = self.views.iter().find(|v| v.name == name) {
                    driver.request(view);
                }
            }
            self.health.set_filling(driver.filling());
        }
        if driver.wants_chunk() {
            if let Err(error) = driver.read_next(&self.pool, &mut self.schemas).await {
                if error.is_transient() {
                    return Err(error);
                }
                error!(error = %chain(&error), views = ?driver.filling(), "backfill stopped; these views stay incomplete");
                self.backfill = None;
                return Ok(());
            }
            self.health.set_filling(driver.filling());
        }
        self.inject_if_reached(cursor, current).await
    }

    /// Reads the next batch of marked items of views with joins, unless one is waiting. A
    /// definite failure (a view that does not fit its tables) stops refreshing that view.
    async fn refresh_step(&mut self) {
        if !self.refresher.wants_read() {
            return;
        }
        let Err(error) = self
            .refresher
            .read_next(&self.pool, &mut self.schemas)
            .await
        else {
            return;
        };
        if error.is_transient() {
            // The marks stay; the next step tries again (the binlog keeps flowing meanwhile).
            warn!(error = %chain(&error), "join refresh read failed; retrying");
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
        if let Some(view) = self.refresher.failing_view() {
            error!(view = %view, error = %chain(&error), "view halted: its joins cannot be read; fix the view or the tables and restart");
            metrics().view_halted.with_label_values(&[&view]).set(1);
            self.refresher.drop_view(&view);
        }
    }

    /// Reads the rows behind a fill-on-miss key in a snapshot; `Ok(true)` when one of them makes
    /// the asked item (it then waits in `pending_fills` for the stream to reach the snapshot).
    async fn read_for_fill(&mut self, fill: &FillRequest) -> Result<bool, String> {
        let Some(view) = self.views.iter().find(|v| v.name == fill.view).cloned() else {
            return Err(format!("no view {}", fill.view));
        };
        let table = self
            .schemas
            .sql_table(&view.source)
            .await
            .map_err(|e| chain(&e))?;
        let mut conn = self.pool.get_conn().await.map_err(|e| e.to_string())?;
        let read = read_roots(
            &mut conn,
            &mut self.schemas,
            &table,
            Some(&view),
            keyset_tail(&table, matching_condition(&fill.columns), None, 100),
            &|row| crate::view::item_key(&view, row).as_ref() == Some(&fill.key),
        )
        .await
        .map_err(|e| chain(&e))?;
        let (rows, joined, position) = (read.rows, read.joined, read.position);
        if rows.is_empty() {
            return Ok(false);
        }
        let merged = if fill.restore {
            Merged::Restore
        } else {
            Merged::Fill
        };
        let injection = Injection {
            table: view.source.clone(),
            views: vec![view.name.clone()],
            rows,
            joined,
            position,
        };
        self.pending_fills.push((injection, merged));
        Ok(true)
    }

    async fn inject_if_reached(
        &mut self,
        cursor: &mut Cursor,
        at: &Position,
    ) -> Result<(), SourceError> {
        let mut waiting = Vec::new();
        for (fill, merged) in std::mem::take(&mut self.pending_fills) {
            if position_before(at, &fill.position) {
                waiting.push((fill, merged));
                continue;
            }
            // Always guarded: the item may have been written meanwhile by a read of its own.
            self.inject(cursor, fill, merged).await?;
        }
        self.pending_fills = waiting;
        if let Some(refresh) = self.refresher.take_if_reached(at) {
            let seq = self.inject(cursor, refresh, Merged::Refresh).await?;
            // Lets the checkpoint pass the refreshed marks without waiting for a transaction.
            self.send_barrier(cursor, seq).await?;
        }
        let Some(driver) = self.backfill.as_mut() else {
            return Ok(());
        };
        let Some(snapshot) = driver.pending_position() else {
            return Ok(());
        };
        if position_before(at, snapshot) {
            return Ok(());
        }
        let Some(injection) = driver.take() else {
            return Ok(());
        };
        cursor.backfill_state = driver.state();
        self.health.set_filling(driver.filling());
        let seq = self.inject(cursor, injection, Merged::Backfill).await?;
        self.send_barrier(cursor, seq).await
    }

    /// Sends snapshot rows into the stream after the last transaction read; returns the
    /// counter their versions are made from.
    async fn inject(
        &self,
        cursor: &Cursor,
        injection: Injection,
        merged: Merged,
    ) -> Result<u64, SourceError> {
        let seq = cursor.next_seq.saturating_sub(1);
        // A snapshot read after a restart may get the version an earlier run gave a read at the
        // same place; for a write-back view an unconditional rewrite with an equal version
        // would look like an application's change (the version rule) and flow back to SQL.
        let writeback = self
            .views
            .iter()
            .any(|v| v.writeback_enabled && injection.views.contains(&v.name));
        let guard = merged == Merged::Fill
            || merged == Merged::Restore
            || writeback
            || cursor
                .replay_end
                .as_ref()
                .is_some_and(|end| position_before(&injection.position, end));
        let rows = SnapshotRows {
            table: injection.table,
            views: injection.views,
            rows: injection.rows,
            joined: injection.joined,
            refresh: merged == Merged::Refresh,
            restore: merged == Merged::Restore,
            seq,
            origin: Arc::new(injection.position),
            guard,
        };
        self.tx
            .send(SourceEvent::Snapshot(rows))
            .await
            .map_err(|_| SourceError::DownstreamClosed)?;
        Ok(seq)
    }

    /// A barrier between transactions (after merged snapshot rows): progress without a commit.
    async fn send_barrier(&mut self, cursor: &mut Cursor, seq: u64) -> Result<(), SourceError> {
        cursor.generation += 1;
        let barrier = Barrier {
            seq,
            generation: cursor.generation,
            backfill: cursor.backfill_state.clone(),
            position: cursor.resume.clone(),
            restart: self.refresher.floor(),
            commit_ts: (crate::metrics::now_millis() / 1000) as u32,
            read_at: Instant::now(),
        };
        self.tx
            .send(SourceEvent::Commit(barrier))
            .await
            .map_err(|_| SourceError::DownstreamClosed)
    }

    async fn handle_rows(
        &mut self,
        stream: &BinlogStream,
        rows: RowsEventData<'_>,
        context: RowsContext<'_>,
    ) -> Result<u32, SourceError> {
        let RowsContext {
            seq,
            first_index,
            origin,
            guard,
            restart,
            flags_raw,
        } = context;
        let table_id = rows.table_id();
        let Some(tme) = stream.get_tme(table_id) else {
            return Err(SourceError::Decode(super::decode::DecodeError::Row {
                table: format!("table id {table_id}"),
                reason: "rows event without a table map".into(),
            }));
        };
        let table = TableRef {
            database: tme.database_name().into_owned(),
            table: tme.table_name().into_owned(),
        };
        if !self.tables.contains(&table) {
            return Ok(0);
        }
        // MariaDB's LOG_EVENT_SKIP_REPLICATION_F: written by a session with skip_replication,
        // which is how write-back marks its statements.
        let write_back = flags_raw & 0x8000 != 0;
        let schema = match self.schemas.cached(table_id, tme) {
            Some(schema) => schema,
            None => {
                let owned = tme.clone().into_owned();
                self.schemas.load(table_id, &owned).await?
            }
        };
        let mut index = first_index;
        for row in rows.rows(tme) {
            let (before, after) = row.map_err(|e| {
                SourceError::Decode(super::decode::DecodeError::Row {
                    table: table.to_string(),
                    reason: e.to_string(),
                })
            })?;
            let decode =
                |image: Option<mysql_async::binlog::row::BinlogRow>| -> Result<_, SourceError> {
                    image
                        .map(|image| decode_row(&schema, &image, &row_charsets(&image)))
                        .transpose()
                        .map_err(SourceError::Decode)
                };
            let change = RowChange {
                seq,
                index,
                table: table.clone(),
                before: decode(before)?,
                after: decode(after)?,
                origin: origin.clone(),
                guard,
            };
            if write_back {
                metrics()
                    .writeback_echo_rows
                    .with_label_values(&[&table.to_string()])
                    .inc();
            }
            if !self.refresher.is_empty() {
                self.refresher
                    .mark(
                        &mut self.schemas,
                        &table,
                        change.before.as_ref(),
                        change.after.as_ref(),
                        (seq, restart),
                    )
                    .await?;
            }
            self.tx
                .send(SourceEvent::Row(change))
                .await
                .map_err(|_| SourceError::DownstreamClosed)?;
            index = index.saturating_add(1);
        }
        Ok(index - first_index)
    }

    async fn commit(
        &mut self,
        txn: &mut Option<Txn>,
        cursor: &mut Cursor,
        file: &str,
        event: &Event,
    ) -> Result<(), SourceError> {
        let header = event.header();
        let (seq, gtid) = match txn.take() {
            Some(t) => (t.seq, t.gtid),
            None => (cursor.next_seq, None),
        };
        if let Some(domain) = gtid.as_deref().and_then(maria_domain) {
            cursor
                .gtid_state
                .insert(domain, gtid.clone().unwrap_or_default());
        }
        let gtid = if cursor.gtid_state.is_empty() {
            gtid
        } else {
            Some(
                cursor
                    .gtid_state
                    .values()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(","),
            )
        };
        let position = Position {
            file: file.to_string(),
            pos: u64::from(header.log_pos()),
            gtid,
        };
        cursor.resume = position.clone();
        cursor.next_seq = seq + 1;
        cursor.generation += 1;
        metrics().transactions.inc();
        let barrier = Barrier {
            seq,
            generation: cursor.generation,
            backfill: cursor.backfill_state.clone(),
            position,
            restart: self.refresher.floor(),
            commit_ts: header.timestamp(),
            read_at: Instant::now(),
        };
        debug!(seq, position = %barrier.position, "transaction read");
        self.tx
            .send(SourceEvent::Commit(barrier))
            .await
            .map_err(|_| SourceError::DownstreamClosed)
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn stream_error(error: mysql_async::Error, resume: &Position) -> SourceError {
    if let mysql_async::Error::Server(server) = &error {
        if server.code == 1236 {
            return SourceError::PositionGone {
                position: resume.to_string(),
                message: server.message.clone(),
            };
        }
    }
    if let mysql_async::Error::Server(server) = &error {
        error!(code = server.code, message = %server.message, "server error on the binlog stream");
    }
    SourceError::Stream(error)
}

fn format_uuid(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

fn event_type_name(raw: u8) -> &'static str {
    match raw {
        mariadb::GTID_EVENT => "mariadb_gtid",
        mariadb::GTID_LIST_EVENT => "mariadb_gtid_list",
        mariadb::BINLOG_CHECKPOINT_EVENT => "mariadb_binlog_checkpoint",
        mariadb::ANNOTATE_ROWS_EVENT => "mariadb_annotate_rows",
        _ => match EventType::try_from(raw) {
            Ok(EventType::QUERY_EVENT) => "query",
            Ok(EventType::XID_EVENT) => "xid",
            Ok(EventType::TABLE_MAP_EVENT) => "table_map",
            Ok(EventType::WRITE_ROWS_EVENT | EventType::WRITE_ROWS_EVENT_V1) => "write_rows",
            Ok(
                EventType::UPDATE_ROWS_EVENT
                | EventType::UPDATE_ROWS_EVENT_V1
                | EventType::PARTIAL_UPDATE_ROWS_EVENT,
            ) => "update_rows",
            Ok(EventType::DELETE_ROWS_EVENT | EventType::DELETE_ROWS_EVENT_V1) => "delete_rows",
            Ok(EventType::ROTATE_EVENT) => "rotate",
            Ok(EventType::FORMAT_DESCRIPTION_EVENT) => "format_description",
            Ok(EventType::HEARTBEAT_EVENT) => "heartbeat",
            Ok(EventType::GTID_EVENT | EventType::ANONYMOUS_GTID_EVENT) => "gtid",
            Ok(_) => "other",
            Err(_) => "unknown",
        },
    }
}

/// `0-1-13,1-1-7` → domain → GTID.
fn parse_gtid_state(state: Option<&str>) -> BTreeMap<u32, String> {
    state
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter_map(|gtid| Some((maria_domain(gtid)?, gtid.to_string())))
        .collect()
}

/// The domain of a MariaDB GTID (`domain-server-seq`); `None` for MySQL's `uuid:n`.
fn maria_domain(gtid: &str) -> Option<u32> {
    let mut parts = gtid.split('-');
    let domain = parts.next()?.parse().ok()?;
    let _server: u32 = parts.next()?.parse().ok()?;
    let _seq: u64 = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_state() {
        let state = parse_gtid_state(Some("0-1-13, 2-5-7"));
        assert_eq!(state.get(&0).map(String::as_str), Some("0-1-13"));
        assert_eq!(state.get(&2).map(String::as_str), Some("2-5-7"));
        assert!(parse_gtid_state(Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:23")).is_empty());
        assert!(parse_gtid_state(None).is_empty());
    }
}
