//! The binlog event loop: transaction boundaries, row decoding, reconnects. It only reads and
//! decodes the binlog; snapshot reads happen elsewhere and are merged downstream (`merge`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mysql_async::binlog::events::{Event, EventData, RowsEventData};
use mysql_async::binlog::EventType;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, Pool};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::decode::decode_row;
use super::mariadb::{self, MariaGtid};
use super::schema::SchemaCache;
use super::statement;
use super::{connect, Flavor, SourceError};
use crate::config::SourceConfig;
use crate::error::{chain, Classify, RetryPolicy};
use crate::metrics::{metrics, Health};
use crate::pipeline::{
    position_before, BackfillState, Barrier, Halt, HaltTarget, Position, RowChange, RowPermits,
    SourceEvent,
};
use crate::view::spec::TableRef;

mod reread;
pub(super) use reread::REREAD_ID_BIT;
mod undo;
mod xa;

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
    /// The server the start position belongs to: a reconnection that reaches another one (an
    /// address that moved to another primary) stops rather than read positions of this one
    /// there. `None` when not known (tests).
    pub server: Option<crate::control::server::ServerIdentity>,
}

pub struct Source {
    config: SourceConfig,
    /// See `StartPoint::server`.
    server: Option<crate::control::server::ServerIdentity>,
    tables: HashSet<TableRef>,
    /// The server compares table names lowercased (`lower_case_table_names` 1 or 2), read at
    /// each connection: a binlog event or a DDL statement naming a watched table in another
    /// case is then of that table (see [`statement::Watched`]).
    folded: bool,
    tx: mpsc::Sender<SourceEvent>,
    /// Row changes go out in batches, each holding a permit per row (`pipeline::RowPermits`).
    rows: RowPermits,
    health: Arc<Health>,
    schemas: SchemaCache,
    /// Idle timeouts in a row at one resume position with no heartbeat between them, and that
    /// position: each doubles the wait for the next event, up to 4 times `idle_timeout` (below
    /// the stall limit of `/healthz`, 6 times). No heartbeat comes while an event is on its way,
    /// so an event that takes longer than the timeout to arrive (a row of 50 MB over a slow
    /// link) was asked for again, and timed out again, for ever (before 2026-12-05; found by a
    /// review). A heartbeat (the stream caught up) ends the streak.
    idle_streak: (Option<Position>, u32),
}

/// Where a rows event sits: its transaction, the index of its first row change, its binlog
/// position, whether its writes are guarded, where its transaction starts, its header flags.
struct RowsContext {
    seq: u64,
    first_index: u32,
    origin: Arc<Position>,
    guard: bool,
    flags_raw: u16,
}

/// State of the transaction being read.
struct Txn {
    seq: u64,
    /// Row changes read so far in this transaction.
    rows: u32,
    gtid: Option<String>,
    /// It has no COMMIT (ROLLBACK, XID) of its own and ends with its one statement (DDL, or DML
    /// in statement format): a MariaDB event group flagged standalone, or a MySQL transaction
    /// (its GTID event) until a BEGIN comes. A DDL statement inside any other (CREATE TEMPORARY
    /// TABLE logged by a session in MIXED or STATEMENT format, the CREATE of CREATE TABLE …
    /// SELECT) does not end it.
    standalone: bool,
    /// An XA transaction being prepared: its rows are applied at its XA COMMIT (`xa.rs`).
    xa: Option<xa::Preparing>,
    /// Where the transaction's first event starts.
    start: Position,
    /// Watched tables whose rows were sent in this transaction (at most the watched tables).
    touched: Vec<TableRef>,
    /// Rows the binlog carries for it were rolled back and not undone (`undo.rs`): its end
    /// reads the views of its tables again from SQL.
    resync: bool,
}

impl Txn {
    /// Rows of `table` were sent in it.
    fn touch(&mut self, table: TableRef) {
        if !self.touched.contains(&table) {
            self.touched.push(table);
        }
    }
}

/// What the reader keeps across reconnects.
struct Cursor {
    /// MariaDB GTID state (domain → last committed GTID), the `gtid` of checkpoints.
    gtid_state: BTreeMap<u32, String>,
    /// End of the last complete transaction: where a reconnect resumes.
    resume: Position,
    next_seq: u64,
    replay_end: Option<Position>,
    /// XA transactions prepared and not decided yet, by XID.
    prepared: HashMap<String, xa::Prepared>,
}

/// What one binlog connection keeps while it reads.
struct Reading {
    /// The binlog file being read.
    file: String,
    seen_format: bool,
    txn: Option<Txn>,
    /// End of the last event read.
    current: Position,
    /// Start of the event being handled.
    event_start: Position,
    /// The last position the merge stage was told of (a commit, or the reader standing between
    /// transactions).
    reported: Position,
}

impl Reading {
    fn at(&self, pos: u64) -> Position {
        Position {
            file: self.file.clone(),
            pos,
            gtid: None,
        }
    }

    /// The stream moves to another binlog file.
    fn rotated(&mut self, rotate: &mysql_async::binlog::events::RotateEvent<'_>) {
        let raw = rotate.name_raw();
        // The first (artificial) rotate comes before the format description, so its 4
        // checksum bytes are still glued to the name. The server writes them whatever its
        // binlog_checksum (NONE too): the replica said it reads checksums
        // (@master_binlog_checksum), see tests/checksum.rs.
        let raw = if !self.seen_format && raw.len() > 4 {
            &raw[..raw.len() - 4]
        } else {
            raw
        };
        self.file = String::from_utf8_lossy(raw).into_owned();
        self.current = self.at(rotate.position());
    }

    /// A MariaDB event group starts (its GTID event): a transaction, standalone (DDL) or an
    /// XA transaction being prepared.
    fn begin_group(&mut self, cursor: &Cursor, event: &Event) -> Result<(), SourceError> {
        let gtid = MariaGtid::parse(event.data(), event.header().server_id())
            .ok_or_else(|| decode_error("short MariaDB GTID event".into()))?;
        self.begin(cursor, Some(gtid.to_string()), gtid.standalone());
        if gtid.prepared_xa() {
            self.start_xa();
        }
        Ok(())
    }

    /// A transaction starts.
    fn begin(&mut self, cursor: &Cursor, gtid: Option<String>, standalone: bool) {
        self.txn = Some(Txn {
            xa: None,
            start: self.event_start.clone(),
            seq: cursor.next_seq,
            rows: 0,
            gtid,
            standalone,
            touched: Vec::new(),
            resync: false,
        });
    }
}

/// The server lost events (`LOST_EVENTS`), e.g. a statement cache overflow.
const INCIDENT_EVENT: u8 = EventType::INCIDENT_EVENT as u8;

fn decode_error(reason: String) -> SourceError {
    SourceError::Decode(super::decode::DecodeError::Row {
        table: String::new(),
        reason,
    })
}

impl Source {
    pub fn new(
        config: SourceConfig,
        tables: HashSet<TableRef>,
        (tx, rows): (mpsc::Sender<SourceEvent>, RowPermits),
        health: Arc<Health>,
        pool: Pool,
    ) -> Self {
        Source {
            config,
            server: None,
            tables,
            folded: false,
            tx,
            rows,
            health,
            schemas: SchemaCache::new(pool),
            idle_streak: (None, 0),
        }
    }

    /// Follows the binlog until `cancel` fires or a definite error occurs.
    pub async fn run(
        mut self,
        start: StartPoint,
        cancel: CancellationToken,
    ) -> Result<(), SourceError> {
        self.server = start.server.clone();
        let mut cursor = Cursor {
            gtid_state: parse_gtid_state(start.position.gtid.as_deref()),
            resume: start.position,
            next_seq: start.next_seq,
            replay_end: start.replay_end,
            prepared: HashMap::new(),
        };
        let mut backoff = self.backoff();
        loop {
            let started = Instant::now();
            let result = self.stream_once(&mut cursor, &cancel).await;
            match result {
                Ok(()) => return Ok(()),
                Err(error) if error.is_transient() => {
                    self.health.source_connection(false);
                    if matches!(error, SourceError::Idle(_)) {
                        let (at, count) = &mut self.idle_streak;
                        if at.as_ref() == Some(&cursor.resume) {
                            *count = (*count + 1).min(2);
                        } else {
                            *at = Some(cursor.resume.clone());
                            *count = 1;
                        }
                    }
                    if started.elapsed() > Duration::from_secs(30) {
                        backoff = self.backoff();
                    }
                    let delay = backoff.next().unwrap_or(self.config.max_backoff);
                    let reason = match &error {
                        SourceError::Idle(_) => "idle",
                        SourceError::Ended => "ended",
                        SourceError::Connect(_) | SourceError::ConnectTimeout(_) => "connect",
                        SourceError::ServerIdTaken(_) => "server_id_taken",
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
        RetryPolicy::new(Duration::from_millis(100), self.config.max_backoff).backoff()
    }

    async fn open_stream(
        &self,
        resume: &Position,
    ) -> Result<(BinlogStream, Flavor, bool), SourceError> {
        self.open_stream_as(resume, self.config.server_id).await
    }

    /// A binlog connection as replica `server_id` (the server drops an older connection of the
    /// same id, so a second connection needs an id of its own), and whether the server compares
    /// table names lowercased (`Source::folded`).
    async fn open_stream_as(
        &self,
        resume: &Position,
        server_id: u32,
    ) -> Result<(BinlogStream, Flavor, bool), SourceError> {
        // Bounded: a source behind a firewall that drops packets would hold a connection
        // attempt for minutes (no connect timeout in the driver), and the reader would show no
        // sign of life to /healthz meanwhile.
        let limit = self.config.idle_timeout.max(Duration::from_secs(10));
        let (mut conn, flavor) = tokio::time::timeout(limit, connect(&self.config.connection))
            .await
            .map_err(|_| SourceError::ConnectTimeout(limit))??;
        if let Some(expected) = &self.server {
            let now = super::server_identity(&mut conn, flavor).await?;
            if !expected.resumable_on(&now, self.config.resume_by_gtid) {
                return Err(SourceError::ServerChanged(format!(
                    "the source address now reaches another server ({now}) than the one this run started on ({expected}): its binlog positions mean nothing there; restart rowcast to have the checkpoint checked (with resume = \"gtid\" a server of the same GTID domain is followed)"
                )));
            }
        }
        // Asked on the main connection; a second one (a re-read) reaches the same server.
        let folded = match server_id == self.config.server_id {
            true => super::folds_table_names(&mut conn).await?,
            false => self.folded,
        };
        let heartbeat_ns = self.config.heartbeat_interval.as_nanos().to_string();
        conn.query_drop(format!("SET @master_heartbeat_period = {heartbeat_ns}"))
            .await
            .map_err(SourceError::Query)?;
        // Checked before registering, which would already cut the replica off. Not for the
        // second connection's id, which the user did not choose (an id of 2^30 or more makes
        // it a small one a replica may have): as before, such a replica is cut off briefly.
        if flavor == Flavor::MariaDb && server_id == self.config.server_id {
            if let Some(replica) = super::replica_using(&mut conn, server_id).await {
                return Err(SourceError::ServerIdTaken(super::server_id_taken(
                    server_id, &replica,
                )));
            }
        }
        let by_gtid = self.config.resume_by_gtid
            && flavor == Flavor::MariaDb
            && !position_here(&mut conn, resume).await;
        let request = super::dump_request(&mut conn, flavor, server_id, resume, by_gtid).await?;
        let stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(SourceError::Stream)?;
        Ok((stream, flavor, folded))
    }

    async fn stream_once(
        &mut self,
        cursor: &mut Cursor,
        cancel: &CancellationToken,
    ) -> Result<(), SourceError> {
        self.health.source_connection(false);
        let (mut stream, flavor, folded) = self.open_stream(&cursor.resume).await?;
        self.folded = folded;
        // Checked at start (`check --connect` too); here as well for a server whose setting
        // differs from the one checked (another server behind the address).
        if let Some((a, b)) = statement::spelled_twice(&self.tables, folded) {
            return Err(SourceError::Schema(statement::spelling_problem(&a, &b)));
        }
        if self.schemas.mariadb != (flavor == Flavor::MariaDb) {
            self.schemas.mariadb = flavor == Flavor::MariaDb;
            self.schemas.invalidate();
        }
        self.health.source_connection(true);
        info!(position = %cursor.resume, ?flavor, next_seq = cursor.next_seq, "following the binlog");
        let mut reading = Reading {
            file: cursor.resume.file.clone(),
            seen_format: false,
            txn: None,
            current: cursor.resume.clone(),
            event_start: cursor.resume.clone(),
            reported: cursor.resume.clone(),
        };
        // Longer after idle timeouts in a row at this position (see `Source::idle_streak`).
        let streak = match &self.idle_streak {
            (Some(at), count) if *at == cursor.resume => *count,
            _ => 0,
        };
        let idle_timeout = self.config.idle_timeout * (1u32 << streak);
        loop {
            self.report_position(&mut reading, cursor).await?;
            let next = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                next = tokio::time::timeout(idle_timeout, stream.next()) => next,
            };
            let event = match next {
                Err(_) => return Err(SourceError::Idle(idle_timeout)),
                Ok(None) => return Err(SourceError::Ended),
                Ok(Some(Err(error))) => return Err(stream_error(error, &cursor.resume)),
                Ok(Some(Ok(event))) => event,
            };
            self.handle_event(&stream, &event, &mut reading, cursor)
                .await?;
        }
    }

    /// Between transactions, past the last commit (a heartbeat, a rotation, …): tells the merge
    /// stage where the stream stands (snapshot rows go in before the first event at or after
    /// their position).
    ///
    /// In another file than the last commit's (a rotation with no transaction after it yet),
    /// a reconnection resumes there too, as the checkpoint does (`merge`, `SourceEvent::At`):
    /// the old file may be purged meanwhile. Before 2026-12-07 the reconnection point moved
    /// only with transactions, and a connection lost on an idle server after a rotation and a
    /// `PURGE` asked for the purged file and stopped the daemon (`tests/services.rs`). The
    /// GTID state is the last transaction's, which is the new file's start too (no transaction
    /// between).
    async fn report_position(
        &self,
        reading: &mut Reading,
        cursor: &mut Cursor,
    ) -> Result<(), SourceError> {
        let at = |p: &Position| (p.file.clone(), p.pos);
        if reading.txn.is_some() || at(&reading.current) == at(&reading.reported) {
            return Ok(());
        }
        reading.reported = reading.current.clone();
        if at(&cursor.resume) == at(&reading.current) {
            return Ok(());
        }
        // Not at a connection's first (artificial) rotation, before the format description:
        // after a resume by GTID state it names the file that holds the state at its start,
        // which `position_here` can take for the state itself when a GTID domain first appears
        // inside that file (found by a review).
        if reading.current.file != cursor.resume.file && reading.seen_format {
            cursor.resume = Position {
                gtid: cursor.resume.gtid.clone(),
                ..reading.current.clone()
            };
        }
        self.send(SourceEvent::At(reading.current.clone())).await
    }

    /// One event; the health learns when a transaction begins and ends (see
    /// `Health::reading_since_ms`).
    async fn handle_event(
        &mut self,
        stream: &BinlogStream,
        event: &Event,
        reading: &mut Reading,
        cursor: &mut Cursor,
    ) -> Result<(), SourceError> {
        let inside = reading.txn.is_some();
        let handled = self.handle_event_in(stream, event, reading, cursor).await;
        if inside != reading.txn.is_some() {
            self.health.reading_transaction(!inside);
        }
        handled
    }

    async fn handle_event_in(
        &mut self,
        stream: &BinlogStream,
        event: &Event,
        reading: &mut Reading,
        cursor: &mut Cursor,
    ) -> Result<(), SourceError> {
        self.health.progress();
        let header = event.header();
        let type_raw = header.event_type_raw();
        if type_raw == EventType::HEARTBEAT_EVENT as u8 {
            self.idle_streak = (None, 0);
        }
        if header.log_pos() != 0 {
            let end = u64::from(header.log_pos());
            reading.event_start = reading.at(end.saturating_sub(u64::from(header.event_size())));
            reading.current = reading.at(end);
        }
        metrics()
            .binlog_events
            .with_label_values(&[event_type_name(type_raw)])
            .inc();
        // MariaDB's own events first: mysql_common does not decode them.
        match type_raw {
            mariadb::GTID_EVENT => return reading.begin_group(cursor, event),
            mariadb::GTID_LIST_EVENT
            | mariadb::BINLOG_CHECKPOINT_EVENT
            | mariadb::ANNOTATE_ROWS_EVENT => return Ok(()),
            mariadb::QUERY_COMPRESSED_EVENT..=mariadb::LAST_COMPRESSED_EVENT => {
                return self.unreadable_event(stream, event, reading).await;
            }
            _ => {}
        }
        let data = match event.read_data() {
            Ok(Some(data)) => data,
            Ok(None) => return Ok(()),
            Err(error) => {
                let (file, pos) = (&reading.file, header.log_pos());
                return Err(decode_error(format!(
                    "event type {type_raw} at {file}:{pos}: {error}"
                )));
            }
        };
        match data {
            EventData::RotateEvent(rotate) => reading.rotated(&rotate),
            EventData::FormatDescriptionEvent(_) => reading.seen_format = true,
            EventData::GtidEvent(gtid) => {
                let text = format!("{}:{}", format_uuid(&gtid.sid()), gtid.gno());
                reading.begin(cursor, Some(text), true);
            }
            EventData::AnonymousGtidEvent(_) => reading.begin(cursor, None, true),
            EventData::QueryEvent(query) => {
                self.handle_query(&query, event, reading, cursor).await?
            }
            // `LOAD DATA` logged as its statement (a session in STATEMENT or MIXED format): the
            // rows it loaded are not in the binlog. Before 2026-12-05 the event was skipped and
            // the rows never reached the views, with no halt (found by a review).
            EventData::ExecuteLoadQueryEvent(load) => {
                let text = statement_text(load.query_raw(), load.status_vars());
                self.statement_dml("LOAD", &text, &load.schema(), event, reading, cursor)
                    .await?
            }
            EventData::XidEvent(_) => self.end(reading, cursor, event, false).await?,
            EventData::IncidentEvent(_) => self.unreadable_event(stream, event, reading).await?,
            EventData::XaPrepareLogEvent(_) => self.xa_prepared(event, reading, cursor).await?,
            EventData::RowsEvent(rows) => {
                self.handle_rows_event(stream, rows, event, reading, cursor)
                    .await?
            }
            _ => {}
        }
        Ok(())
    }

    /// BEGIN, COMMIT and their kin delimit transactions; anything else is DDL.
    async fn handle_query(
        &mut self,
        query: &mysql_async::binlog::events::QueryEvent<'_>,
        event: &Event,
        reading: &mut Reading,
        cursor: &mut Cursor,
    ) -> Result<(), SourceError> {
        let text = statement_text(query.query_raw(), query.status_vars());
        let statement = text.trim_start().to_ascii_uppercase();
        if statement.starts_with("XA ") {
            self.xa_statement(&statement, event, reading, cursor)
                .await?;
        } else if statement.starts_with("BEGIN") {
            if reading.txn.is_none() {
                reading.begin(cursor, None, false);
            }
            if let Some(txn) = reading.txn.as_mut() {
                txn.standalone = false;
            }
        } else if statement.starts_with("ROLLBACK TO") {
            // Not undone (see `undo.rs`): the transaction's tables are read again at its end.
            if let Some(open) = reading.txn.as_mut() {
                open.resync = true;
            }
        } else if statement.starts_with("COMMIT") || statement.starts_with("ROLLBACK") {
            // A logged ROLLBACK ends the transaction like a commit: the changes of its
            // non-transactional tables stay.
            let rollback = statement.starts_with("ROLLBACK");
            self.end(reading, cursor, event, rollback).await?;
        } else if statement.starts_with("SAVEPOINT") {
            // Inside a transaction; nothing to do.
        } else if let Some(kind) = statement::dml_kind(&text) {
            self.statement_dml(kind, &text, &query.schema(), event, reading, cursor)
                .await?;
        } else {
            self.ddl(&text, &query.schema()).await?;
            // A DDL statement ends its transaction, unless it is one inside a transaction that
            // ends with a COMMIT of its own (a temporary table's; see `Txn::standalone`).
            if reading.txn.as_ref().is_none_or(|t| t.standalone) {
                self.commit(reading, cursor, event).await?;
            }
        }
        Ok(())
    }

    /// Any other statement: DDL. What it does to the watched tables reaches the merge stage.
    async fn ddl(&mut self, text: &str, schema: &str) -> Result<(), SourceError> {
        metrics().ddl_events.inc();
        // The kind and the watched tables it names; never the text (passwords, user data).
        let watched = self.watched();
        let tables: Vec<String> = statement::named_tables(text, schema, &watched)
            .iter()
            .map(|t| t.to_string())
            .collect();
        info!(%schema, statement = %statement::kind(text), tables = ?tables, "DDL seen; table schemas reloaded");
        self.schemas.invalidate();
        crate::util::failpoint::delay("source.before_ddl").await;
        // The schemas are forgotten everywhere first: a backfill the DDL asks for below reads
        // the table as it is now.
        self.send(SourceEvent::Ddl).await?;
        self.truncated(text, schema).await?;
        self.moved(text, schema).await?;
        match statement::altered_table(text, schema, &watched) {
            Some((table, statement::Alter::Columns)) => {
                let moved = statement::columns_moved(text);
                let added = statement::columns_added(text);
                self.send(SourceEvent::Altered {
                    table,
                    moved,
                    added,
                })
                .await?
            }
            Some((table, statement::Alter::Retyped)) => {
                warn!(table = %table, "columns of a watched table changed type: the views that read it are backfilled again, then their items not written again are removed");
                self.send(SourceEvent::Retyped(table)).await?
            }
            Some((table, statement::Alter::Versioned)) => {
                let reason = format!("system versioning was added to {table}: MariaDB then logs a delete as an update of the row's history and an update with a history row of the old values, which rowcast does not read. Remedy: DROP SYSTEM VERSIONING, then rebuild the view (`rowcast snapshot --view`)");
                self.halt_table(&table, "system_versioned", reason).await?
            }
            Some((table, statement::Alter::Rows)) => {
                warn!(table = %table, "rows of a watched table deleted or replaced without row events (partitions dropped or exchanged, ALTER IGNORE … ADD UNIQUE, IMPORT TABLESPACE): the views that read it are backfilled again, then their items without a row are removed");
                self.send(SourceEvent::Truncated(table)).await?
            }
            None => {}
        }
        Ok(())
    }

    /// A row change logged as its statement (`binlog_format = STATEMENT`, or MIXED): the binlog
    /// does not say which rows it changed, so the views of the tables it changes halt. The
    /// statement text is never logged (it may hold row data).
    async fn statement_dml(
        &mut self,
        kind: &str,
        text: &str,
        schema: &str,
        event: &Event,
        reading: &mut Reading,
        cursor: &mut Cursor,
    ) -> Result<(), SourceError> {
        let watched = self.watched();
        for table in statement::changed_tables(text, schema, &watched) {
            let name = table.to_string();
            warn!(table = %name, statement = kind, file = %reading.file, pos = event.header().log_pos(), "a change of a watched table was logged in statement format");
            let reason = format!(
                "{kind} of {name} was logged in statement format (binlog_format STATEMENT or MIXED in the writing session): the binlog does not say which rows it changed. Remedy: SET GLOBAL binlog_format = 'ROW' (sessions keep their own setting until they reconnect), then rebuild the view (README: Failure model)"
            );
            self.halt_table(&table, "statement_format", reason).await?;
        }
        // A standalone transaction has no COMMIT of its own.
        if reading.txn.as_ref().is_some_and(|t| t.standalone) {
            self.commit(reading, cursor, event).await?;
        }
        Ok(())
    }

    async fn handle_rows_event(
        &mut self,
        stream: &BinlogStream,
        rows: RowsEventData<'_>,
        event: &Event,
        reading: &mut Reading,
        cursor: &Cursor,
    ) -> Result<(), SourceError> {
        let header = event.header();
        let Some(open) = reading.txn.as_mut() else {
            warn!(file = %reading.file, pos = header.log_pos(), "rows event outside a transaction; ignored");
            return Ok(());
        };
        if let Some(preparing) = open.xa.as_mut() {
            // Applied at the XA COMMIT, read again from here.
            let watched = stream
                .get_tme(rows.table_id())
                .is_some_and(|tme| self.watched_of(tme).is_some());
            preparing.watched |= watched;
            return Ok(());
        }
        let origin = Arc::new(Position {
            file: reading.file.clone(),
            pos: u64::from(header.log_pos()),
            gtid: open.gtid.clone(),
        });
        let guard = guarded(cursor, &origin);
        let context = RowsContext {
            seq: open.seq,
            first_index: open.rows,
            origin,
            guard,
            flags_raw: header.flags_raw(),
        };
        let table = (stream.get_tme(rows.table_id())).and_then(|tme| self.watched_of(tme));
        let count = self.handle_rows(stream, rows, context, None).await?;
        open.rows = open.rows.saturating_add(count);
        if let Some(table) = table.filter(|_| count > 0) {
            open.touch(table);
        }
        Ok(())
    }

    /// Sends the row changes of a rows event of a watched table (or keeps them in `keep`, to be
    /// undone: nothing is sent then).
    async fn handle_rows(
        &mut self,
        stream: &BinlogStream,
        rows: RowsEventData<'_>,
        context: RowsContext,
        mut keep: Option<&mut undo::UndoLog>,
    ) -> Result<u32, SourceError> {
        let RowsContext {
            seq,
            first_index,
            origin,
            guard,
            flags_raw,
        } = context;
        let table_id = rows.table_id();
        let Some(tme) = stream.get_tme(table_id) else {
            return Err(SourceError::Decode(super::decode::DecodeError::Row {
                table: format!("table id {table_id}"),
                reason: "rows event without a table map".into(),
            }));
        };
        let Some(table) = self.watched_of(tme) else {
            return Ok(0);
        };
        let Some(mapped) = self.readable(&rows, tme, &table, &mut keep).await? else {
            return Ok(0);
        };
        // MariaDB's LOG_EVENT_SKIP_REPLICATION_F: written by a session with skip_replication,
        // which is how write-back marks its statements.
        let write_back = flags_raw & 0x8000 != 0;
        // Looked up for an undo only, not on the stream's path.
        // The schema cache knows the table by the binlog's spelling of its name.
        let transactional = keep.is_some() && self.schemas.transactional(&table_of(tme));
        let mut index = first_index;
        let mut batch = Vec::new();
        for images in decoded_rows(&rows, tme, &mapped, &table) {
            let (before, after) = match images {
                Ok(images) => images,
                // Like an unreadable table map: the rows before it in this event went on.
                Err(error) => {
                    self.send_rows(&mut batch).await?;
                    self.unreadable(&table, &error, &mut keep).await?;
                    break;
                }
            };
            let change = RowChange {
                seq,
                index,
                table: table.clone(),
                before,
                after,
                origin: origin.clone(),
                guard,
            };
            if let Some(log) = keep.as_deref_mut() {
                log.keep(change.into(), transactional);
            } else {
                if write_back {
                    metrics()
                        .writeback_echo_rows
                        .with_label_values(&[&table.to_string()])
                        .inc();
                }
                self.gather(&mut batch, change).await?;
            }
            index = index.saturating_add(1);
        }
        self.send_rows(&mut batch).await?;
        Ok(index - first_index)
    }

    /// The schema of a rows event's table, or `None` once the table's views are halted (when
    /// first read; an undo log being kept is lost instead): row images without every column,
    /// and a table map rowcast cannot read (no column names: binlog_row_metadata was not FULL
    /// when it was written) halt that table's views, not the daemon — the checkpoint stays
    /// before them, so stopping would stop again at every start.
    async fn readable(
        &mut self,
        rows: &RowsEventData<'_>,
        tme: &mysql_async::binlog::events::TableMapEvent<'_>,
        table: &TableRef,
        keep: &mut Option<&mut undo::UndoLog>,
    ) -> Result<Option<super::schema::Mapped>, SourceError> {
        if partial_image(rows) {
            match keep {
                Some(log) => log.lose("partial row images"),
                None => self.halt_partial(table).await?,
            }
            return Ok(None);
        }
        match self.schema_of(rows.table_id(), tme).await {
            Ok(schema) => Ok(Some(schema)),
            Err(SourceError::Decode(error)) => {
                self.unreadable(table, &error, keep).await?;
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    /// A change of `table` that cannot be decoded: its views halt (kept), or the undo log being
    /// kept is lost (the halt was made when the change was first read).
    async fn unreadable(
        &mut self,
        table: &TableRef,
        error: &super::decode::DecodeError,
        keep: &mut Option<&mut undo::UndoLog>,
    ) -> Result<(), SourceError> {
        match keep {
            Some(log) => log.lose("a change that cannot be decoded"),
            None => self.halt_unreadable(table, error).await?,
        }
        Ok(())
    }

    /// The schema of the table a table map names, from the cache or loaded.
    async fn schema_of(
        &mut self,
        table_id: u64,
        tme: &mysql_async::binlog::events::TableMapEvent<'_>,
    ) -> Result<super::schema::Mapped, SourceError> {
        match self.schemas.cached(table_id, tme) {
            Some(mapped) => Ok(mapped),
            None => {
                let owned = tme.clone().into_owned();
                self.schemas.load(table_id, &owned).await
            }
        }
    }

    /// TRUNCATE of a watched table: its rows are gone without row events; the merge stage
    /// backfills the views that read it again and has their stale items removed after.
    async fn truncated(&self, text: &str, schema: &str) -> Result<(), SourceError> {
        let watched = self.watched();
        for table in statement::truncated_tables(text, schema, &watched) {
            let name = table.to_string();
            metrics()
                .unreadable_changes
                .with_label_values(&[&name, "truncate"])
                .inc();
            warn!(table = %name, "table truncated: the views that read it are backfilled again, then their items without a row are removed");
            self.send(SourceEvent::Truncated(table)).await?;
        }
        Ok(())
    }

    /// An event whose changes cannot be read: a compressed one (`log_bin_compress = ON`: a rows
    /// event halts the views of its table, a query — perhaps DDL — those of every watched
    /// table), or an INCIDENT (the server says events were lost: every watched table's views
    /// halt). Halted views hold the checkpoint here until they are rebuilt; nothing is skipped
    /// silently.
    async fn unreadable_event(
        &self,
        stream: &BinlogStream,
        event: &Event,
        reading: &Reading,
    ) -> Result<(), SourceError> {
        let header = event.header();
        let type_raw = header.event_type_raw();
        let at = format!("{}:{}", reading.file, header.log_pos());
        let (cause, reason) = if type_raw == INCIDENT_EVENT {
            ("incident", format!("the binlog has an INCIDENT event at {at} (the server lost events, e.g. a statement cache overflow with a non-transactional table): changes may be missing from the binlog. Remedy: rebuild the view (README: Failure model)"))
        } else {
            ("compressed", format!("the binlog has a compressed event at {at} (log_bin_compress = ON), which rowcast cannot read. Remedy: SET GLOBAL log_bin_compress = OFF, then rebuild the view (README: Failure model)"))
        };
        // A compressed rows event names its table (the first 6 bytes after the header).
        let rows_table = (type_raw > mariadb::QUERY_COMPRESSED_EVENT && type_raw != INCIDENT_EVENT)
            .then(|| event.data().get(..6))
            .flatten()
            .and_then(|id| {
                let mut bytes = [0u8; 8];
                bytes[..6].copy_from_slice(id);
                stream.get_tme(u64::from_le_bytes(bytes))
            })
            .map(|tme| self.watched_of(tme));
        // A rows event's table if watched (none if not), else every watched table.
        let tables: Vec<TableRef> = match rows_table {
            Some(table) => table.into_iter().collect(),
            None => self.tables.iter().cloned().collect(),
        };
        for table in tables {
            self.halt_table(&table, cause, reason.clone()).await?;
        }
        Ok(())
    }

    /// The transaction ends (`rollback`: with a logged ROLLBACK): its rows rolled back are
    /// made good first, then it commits.
    async fn end(
        &mut self,
        reading: &mut Reading,
        cursor: &mut Cursor,
        event: &Event,
        rollback: bool,
    ) -> Result<(), SourceError> {
        if rollback {
            self.roll_back(reading, cursor, event).await?;
        }
        self.resync(reading).await?;
        self.commit(reading, cursor, event).await
    }

    /// A logged ROLLBACK: the transaction's row changes are read again from the binlog and
    /// undone (`undo.rs`), or else its tables are read again from SQL at its end.
    async fn roll_back(
        &mut self,
        reading: &mut Reading,
        cursor: &Cursor,
        event: &Event,
    ) -> Result<(), SourceError> {
        let Some(open) = reading.txn.as_ref() else {
            return Ok(());
        };
        // Nothing sent, or read again from SQL anyway (a ROLLBACK TO before it).
        if open.touched.is_empty() || open.resync {
            return Ok(());
        }
        let end = u64::from(event.header().log_pos());
        let mut log = if end > open.start.pos {
            self.changes_of_group(&open.start, end).await?
        } else {
            // A position past 4 GiB wrapped: the group cannot be read again by position.
            undo::UndoLog::lost("a group past 4 GiB of its binlog file")
        };
        let Some(open) = reading.txn.as_mut() else {
            return Ok(());
        };
        // The second read must find what the first sent (not another server's file of the
        // same name after a failover, say).
        if log.len().is_some_and(|kept| kept != open.rows as usize) {
            log.lose("the second read found other rows than the first");
        }
        let undone = match log.roll_back() {
            Ok(undone) => undone,
            Err(why) => {
                warn!(why, "rows of a rolled-back transaction cannot be undone one by one: the views of its tables are read again");
                open.resync = true;
                return Ok(());
            }
        };
        // At the ROLLBACK, for dead letters; replayed (guarded) like the rows it undoes.
        let origin = Arc::new(Position {
            pos: end,
            gtid: open.gtid.clone(),
            ..reading.current.clone()
        });
        let guard = guarded(cursor, &origin);
        let mut batch = Vec::new();
        for change in undone {
            metrics()
                .rolled_back_changes
                .with_label_values(&[&change.table.to_string()])
                .inc();
            let change = RowChange {
                seq: open.seq,
                index: open.rows,
                table: change.table,
                before: change.before,
                after: change.after,
                origin: origin.clone(),
                guard,
            };
            self.gather(&mut batch, change).await?;
            open.rows = open.rows.saturating_add(1);
        }
        self.send_rows(&mut batch).await
    }

    /// The row changes of watched tables in the group from `start` to the event ending at `end`,
    /// read again on a second connection (nothing of a transaction is kept while it is read:
    /// a rollback is rare, and a copy of every row change would cost every transaction).
    async fn changes_of_group(
        &mut self,
        start: &Position,
        end: u64,
    ) -> Result<undo::UndoLog, SourceError> {
        let mut log = undo::UndoLog::default();
        let mut group = self.reread(start, end, "undo.reread").await?;
        while let Some(event) = group.next().await? {
            self.health.progress();
            if log.len().is_none() {
                // Read again from SQL anyway: the rest need not be decoded.
                group.stop();
            } else if let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() {
                let context = RowsContext {
                    seq: 0,
                    first_index: 0,
                    origin: Arc::new(start.clone()),
                    guard: false,
                    flags_raw: event.header().flags_raw(),
                };
                self.handle_rows(&group.stream, rows, context, Some(&mut log))
                    .await?;
            }
        }
        group.close("a rolled-back transaction").await;
        Ok(log)
    }

    /// The transaction ends after rows it rolled back that were not undone one by one (a
    /// ROLLBACK TO a savepoint, or a logged ROLLBACK whose changes could not be kept: `undo.rs`): the views of every watched
    /// table it touched are read again from SQL, as after a TRUNCATE: the pass begins after this
    /// transaction, so its rows are older than the pass, and items no row makes are removed.
    async fn resync(&self, reading: &Reading) -> Result<(), SourceError> {
        let Some(open) = reading.txn.as_ref() else {
            return Ok(());
        };
        if !open.resync {
            return Ok(());
        }
        for table in &open.touched {
            let name = table.to_string();
            metrics()
                .unreadable_changes
                .with_label_values(&[&name, "rollback"])
                .inc();
            warn!(table = %name, file = %reading.file, "a transaction whose rows the binlog carries was rolled back (whole, or to a savepoint): the views that read the table are backfilled again, then their items without a row are removed");
            self.send(SourceEvent::Truncated(table.clone())).await?;
        }
        Ok(())
    }

    /// DROP or RENAME of a watched table halts the views that read it; a table of that name
    /// created or renamed back is read from scratch (as after a TRUNCATE), which lifts the halt.
    async fn moved(&self, text: &str, schema: &str) -> Result<(), SourceError> {
        let watched = self.watched();
        let mut moves = statement::table_moves(text, schema, &watched);
        let partitions = statement::partition_moves(text, schema, &watched);
        moves.gone.extend(partitions.gone);
        moves.back.extend(partitions.back);
        for table in moves.gone {
            let name = table.to_string();
            metrics()
                .unreadable_changes
                .with_label_values(&[&name, "drop_or_rename"])
                .inc();
            let reason = format!("{name} was dropped or renamed (or made a partition of another table): its views halt. When a table of that name is back (CREATE TABLE, RENAME TABLE), they are backfilled again from it and their items without a row removed");
            self.send(SourceEvent::TableGone(Halt {
                target: HaltTarget::Table(table),
                reason,
                restart: None,
                kept: true,
                before: None,
            }))
            .await?;
        }
        for table in moves.back {
            warn!(table = %table, "a watched table is back: the views that read it are backfilled again, then their items without a row are removed");
            self.send(SourceEvent::Truncated(table)).await?;
        }
        Ok(())
    }

    /// Row images without every column (`binlog_row_image = MINIMAL` or `NOBLOB`): what the
    /// views need of the row may be missing, so the table's views halt.
    async fn halt_partial(&self, table: &TableRef) -> Result<(), SourceError> {
        let reason = format!(
            "a change of {table} was logged with partial row images (binlog_row_image MINIMAL or NOBLOB in the writing session): the binlog lacks columns of the row. Remedy: SET GLOBAL binlog_row_image = 'FULL' (sessions keep their own setting until they reconnect), then rebuild the view (README: Failure model)"
        );
        self.halt_table(table, "partial_row_image", reason).await
    }

    /// The views of `table` halt (kept) at a change that cannot be read (its table map, or a
    /// row of it).
    async fn halt_unreadable(
        &self,
        table: &TableRef,
        error: &super::decode::DecodeError,
    ) -> Result<(), SourceError> {
        let name = table.to_string();
        let later =
            "rebuild the view once the table's changes are readable (README: Failure model)";
        let (cause, remedy) = match error {
            super::decode::DecodeError::NoColumnNames { .. } => ("no_column_names", "SET GLOBAL binlog_row_metadata = 'FULL' (and in the server's configuration file, so that a restart keeps it), then rebuild the view (README: Failure model)"),
            super::decode::DecodeError::TableMap { .. } => ("unreadable_table_map", later),
            super::decode::DecodeError::Row { .. } => ("unreadable_row", later),
        };
        let reason = format!("a change of {name} cannot be read: {error}. Remedy: {remedy}");
        self.halt_table(table, cause, reason).await
    }

    /// The views of `table` halt, kept in the checkpoint, counted under `cause`.
    async fn halt_table(
        &self,
        table: &TableRef,
        cause: &str,
        reason: String,
    ) -> Result<(), SourceError> {
        metrics()
            .unreadable_changes
            .with_label_values(&[&table.to_string(), cause])
            .inc();
        self.send(SourceEvent::Halt(Halt {
            target: HaltTarget::Table(table.clone()),
            reason,
            restart: None,
            kept: true,
            before: None,
        }))
        .await
    }

    async fn commit(
        &mut self,
        reading: &mut Reading,
        cursor: &mut Cursor,
        event: &Event,
    ) -> Result<(), SourceError> {
        let header = event.header();
        let file = reading.file.as_str();
        let (seq, gtid) = match reading.txn.take() {
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
        metrics().transactions.inc();
        self.health.transaction_read(seq);
        // The merge stage completes it (generation, backfill progress, restart point).
        let barrier = Barrier {
            seq,
            generation: 0,
            backfill: Default::default(),
            position,
            restart: None,
            commit_ts: header.timestamp(),
            read_at: Instant::now(),
        };
        debug!(seq, position = %barrier.position, "transaction read");
        self.send(SourceEvent::Commit(barrier)).await
    }

    /// Adds `change` to `batch`, which is sent once it is full (the caller sends what is left
    /// with [`send_rows`](Self::send_rows)).
    async fn gather(
        &self,
        batch: &mut Vec<RowChange>,
        change: RowChange,
    ) -> Result<(), SourceError> {
        batch.push(change);
        if batch.len() < self.rows.per_batch() {
            return Ok(());
        }
        self.send_rows(batch).await
    }

    /// Sends the row changes gathered in `rows` (at most `RowPermits::per_batch`) as one
    /// message, once the permits allow it, and empties `rows`.
    async fn send_rows(&self, rows: &mut Vec<RowChange>) -> Result<(), SourceError> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = self.rows.batch(std::mem::take(rows)).await;
        self.send(SourceEvent::Rows(batch)).await
    }

    async fn send(&self, event: SourceEvent) -> Result<(), SourceError> {
        self.tx
            .send(event)
            .await
            .map_err(|_| SourceError::DownstreamClosed)
    }
}

/// Whether row changes at `origin` are replayed (an earlier run may have written them, or later
/// ones): their writes are conditional on the version. At the replay's end too: that is the
/// binlog's end at start, where a change sent at a transaction's end (the rows of an XA COMMIT
/// read again, a ROLLBACK's inverse changes) has its origin when that transaction was the last
/// one; a rows event's own end is never a transaction boundary.
fn guarded(cursor: &Cursor, origin: &Position) -> bool {
    cursor
        .replay_end
        .as_ref()
        .is_some_and(|end| !position_before(end, origin))
}

/// A logged statement's text. The binlog holds a client's statement in the client's character
/// set (the event's `character_set_client`): a client in latin1 (`SET NAMES latin1`, the
/// default of many older clients) writes `TRUNCATE TABLE café` with the byte E9. Before
/// 2026-12-07's sixth stop it was read as UTF-8 (`caf\u{FFFD}`) and the statement taken for
/// no watched table's (its TRUNCATE, its statement-format DML missed: `tests/edges.rs`, seen
/// failing). Text that is valid UTF-8 is read as UTF-8 whatever the client's character set:
/// the statements the server writes itself are (a `LOAD DATA`'s, a `DROP TABLE … /* generated
/// by server */`: system_charset_info, while the event still names the session's client
/// character set), and latin1 text that reads as UTF-8 is mojibake no table is named in; a
/// multibyte client's text (gbk, sjis) that happens to be valid UTF-8 would be misread.
/// Under sql_mode ANSI_QUOTES (or ORACLE) `"orders"` names a table: read as backquoted.
fn statement_text<'a>(
    raw: &'a [u8],
    vars: &mysql_async::binlog::events::StatusVars<'_>,
) -> std::borrow::Cow<'a, str> {
    let text = match (std::str::from_utf8(raw), client_charset(vars)) {
        (Ok(text), _) => std::borrow::Cow::Borrowed(text),
        (Err(_), Some(collation)) => {
            std::borrow::Cow::Owned(super::charset::decode(raw, collation))
        }
        (Err(_), None) => String::from_utf8_lossy(raw),
    };
    if ansi_quotes(vars) {
        return std::borrow::Cow::Owned(statement::backquoted(&text));
    }
    text
}

/// The collation id of the statement's `character_set_client` (`Q_CHARSET_CODE`), if logged.
fn client_charset(vars: &mysql_async::binlog::events::StatusVars<'_>) -> Option<u16> {
    use mysql_async::binlog::events::StatusVarVal;
    use mysql_async::binlog::StatusVarKey;
    match vars.get_status_var(StatusVarKey::Charset)?.get_value() {
        Ok(StatusVarVal::Charset { charset_client, .. }) => Some(charset_client),
        _ => None,
    }
}

/// Whether the session that wrote `query` quoted names with `"` (sql_mode ANSI_QUOTES, part of
/// ANSI and ORACLE), as the event's status variables say. Before 2026-12-05 such names were
/// read as strings: a `TRUNCATE TABLE "orders"` or `DROP TABLE "orders"` was not seen (found by
/// a review).
fn ansi_quotes(vars: &mysql_async::binlog::events::StatusVars<'_>) -> bool {
    use mysql_async::binlog::events::StatusVarVal;
    use mysql_async::binlog::StatusVarKey;
    vars.get_status_var(StatusVarKey::SqlMode)
        .is_some_and(|var| match var.get_value() {
            Ok(StatusVarVal::SqlMode(mode)) => mode
                .get()
                .contains(mysql_async::consts::SqlMode::MODE_ANSI_QUOTES),
            _ => false,
        })
}

/// Whether a rows event lacks a column in its before or after image.
fn partial_image(rows: &RowsEventData<'_>) -> bool {
    rows.columns_before_image().is_some_and(|b| b.not_all())
        || rows.columns_after_image().is_some_and(|b| b.not_all())
}

/// Both images of each row of a rows event, decoded: straight from the event's bytes when it
/// is plain (`source/image.rs`), else through mysql_common's rows.
fn decoded_rows<'a>(
    rows: &'a RowsEventData<'a>,
    tme: &'a mysql_async::binlog::events::TableMapEvent<'a>,
    mapped: &'a super::schema::Mapped,
    table: &'a TableRef,
) -> Box<dyn Iterator<Item = Result<Images, super::decode::DecodeError>> + Send + 'a> {
    let failed = |reason: String| super::decode::DecodeError::Row {
        table: table.to_string(),
        reason,
    };
    if !super::image::plain(rows, &mapped.layout) {
        let decode = (&mapped.schema, &*mapped.charsets);
        return Box::new(
            rows.rows(tme)
                .map(move |row| row_images(decode, table, row)),
        );
    }
    let images = super::image::rows(rows, &mapped.layout, &mapped.schema, &mapped.charsets);
    Box::new(images.map(move |images| {
        if crate::util::failpoint::fails("reader.decode_row") {
            return Err(failed("failpoint reader.decode_row".into()));
        }
        images.map_err(failed)
    }))
}

type Images = (Option<crate::view::row::Row>, Option<crate::view::row::Row>);

/// Both images of a rows event's row, decoded.
fn row_images(
    (schema, charsets): (&Arc<crate::view::row::TableSchema>, &[u16]),
    table: &TableRef,
    row: std::io::Result<(
        Option<mysql_async::binlog::row::BinlogRow>,
        Option<mysql_async::binlog::row::BinlogRow>,
    )>,
) -> Result<
    (Option<crate::view::row::Row>, Option<crate::view::row::Row>),
    super::decode::DecodeError,
> {
    let failed = |reason: String| super::decode::DecodeError::Row {
        table: table.to_string(),
        reason,
    };
    if crate::util::failpoint::fails("reader.decode_row") {
        return Err(failed("failpoint reader.decode_row".into()));
    }
    let (before, after) = row.map_err(|e| failed(e.to_string()))?;
    let decode = |image: Option<mysql_async::binlog::row::BinlogRow>| {
        image
            .map(|image| decode_row(schema, &image, charsets))
            .transpose()
    };
    Ok((decode(before)?, decode(after)?))
}

impl Source {
    /// The watched tables as DDL statements are matched against them.
    fn watched(&self) -> statement::Watched {
        statement::Watched {
            tables: self.tables.iter().cloned().collect(),
            folded: self.folded,
        }
    }

    /// The watched table a table map names, spelled as watched; `None` for another table. On a
    /// server that compares names lowercased, the binlog names a table as the server stores it
    /// (lowercased, with `lower_case_table_names = 1`), which a view may spell otherwise.
    fn watched_of(&self, tme: &mysql_async::binlog::events::TableMapEvent<'_>) -> Option<TableRef> {
        let table = table_of(tme);
        if self.tables.contains(&table) {
            return Some(table);
        }
        if !self.folded {
            return None;
        }
        statement::find_table(&self.tables, true, &table.database, &table.table).cloned()
    }
}

fn table_of(tme: &mysql_async::binlog::events::TableMapEvent<'_>) -> TableRef {
    TableRef {
        database: tme.database_name().into_owned(),
        table: tme.table_name().into_owned(),
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

/// The GTID of a group's first event, as `Reading::begin` records it (MariaDB's, or MySQL's
/// `uuid:number`); `None` for any other event.
fn group_gtid(event: &Event) -> Option<String> {
    if event.header().event_type_raw() == mariadb::GTID_EVENT {
        return MariaGtid::parse(event.data(), event.header().server_id()).map(|g| g.to_string());
    }
    match event.read_data().ok().flatten()? {
        EventData::GtidEvent(gtid) => Some(format!("{}:{}", format_uuid(&gtid.sid()), gtid.gno())),
        _ => None,
    }
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

/// The resume position is this server's point of its GTID state (the server's state there,
/// `BINLOG_GTID_POS`, is the same): resuming by GTID, the binlog is then read from that
/// position, as a resume by file reads it, and by the GTID state only after a failover (or
/// when the server cannot say). By GTID state the server sends the file that holds the state
/// from its start, leaving out the transactions the state holds but not an INCIDENT, which
/// belongs to none: an INCIDENT from before the checkpoint halted every view again at every
/// restart; and after an INCIDENT followed by a rotation it starts at the next file, whose GTID
/// list is the state, and the INCIDENT that halted a view was never read again (the view went
/// on as if nothing was lost). `tests/server_settings.rs`.
async fn position_here(conn: &mut mysql_async::Conn, resume: &Position) -> bool {
    let Some(state) = resume.gtid.as_deref() else {
        return false;
    };
    match crate::sql::gtid_state_at(conn, resume).await {
        Ok(Some(here)) => same_point(
            &parse_gtid_state(Some(&here)),
            &parse_gtid_state(Some(state)),
        ),
        Ok(None) => false,
        Err(error) => {
            warn!(error = %error, position = %resume, "the server's GTID state at the resume position could not be read: resuming by GTID state");
            false
        }
    }
}

/// The server's GTID state at a position is the reader's there: each of the server's domains
/// at the same GTID (and one at least). A domain only the reader has is left out: the server
/// forgets one deleted with `FLUSH BINARY LOGS DELETE_DOMAIN_ID`, the reader's state keeps it.
fn same_point(server: &BTreeMap<u32, String>, reader: &BTreeMap<u32, String>) -> bool {
    !server.is_empty()
        && server
            .iter()
            .all(|(domain, gtid)| reader.get(domain) == Some(gtid))
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
    fn a_position_is_the_readers_point_when_every_domain_the_server_knows_agrees() {
        let state = |s: &str| parse_gtid_state(Some(s));
        let reader = state("0-1-100,7-2-5");
        assert!(same_point(&state("0-1-100,7-2-5"), &reader));
        assert!(same_point(&state("7-2-5,0-1-100"), &reader));
        // Domain 7 deleted on the server (DELETE_DOMAIN_ID).
        assert!(same_point(&state("0-1-100"), &reader));
        assert!(!same_point(&state("0-1-101,7-2-5"), &reader));
        assert!(!same_point(&state("0-3-100,7-2-5"), &reader));
        assert!(!same_point(&state("0-1-100,8-1-1"), &reader));
        assert!(!same_point(&state(""), &reader));
    }

    #[test]
    fn gtid_state() {
        let state = parse_gtid_state(Some("0-1-13, 2-5-7"));
        assert_eq!(state.get(&0).map(String::as_str), Some("0-1-13"));
        assert_eq!(state.get(&2).map(String::as_str), Some("2-5-7"));
        assert!(parse_gtid_state(Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:23")).is_empty());
        assert!(parse_gtid_state(None).is_empty());
    }
}
