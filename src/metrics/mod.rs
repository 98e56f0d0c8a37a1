//! Every metric rowcast exports, in one place, and the HTTP server for `/metrics`, `/healthz`
//! and `/readyz`.
//!
//! Labels are bounded: view, table, stage, operation, outcome, event type. Never keys or SQL.

mod health;
mod server;
mod waits;

use std::sync::OnceLock;

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

pub use health::Health;
pub use server::{routes, serve};
pub use waits::{note_delivery, note_pushback, note_snapshot_read};

pub struct Metrics {
    pub registry: Registry,
    pub binlog_events: IntCounterVec,
    pub rows: IntCounterVec,
    pub items: IntCounterVec,
    pub stale_writes: IntCounterVec,
    pub coalesced: IntCounter,
    pub unsure_writes: IntCounter,
    pub rechecked_writes: IntCounterVec,
    pub null_key_rows: IntCounterVec,
    pub zero_dates: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub dead_letters_unstored: IntCounterVec,
    pub view_halted: IntGaugeVec,
    pub replication_lag: Gauge,
    pub batch_duration: HistogramVec,
    pub write_retries: IntCounterVec,
    pub throttles: IntCounter,
    pub write_held: IntCounterVec,
    pub checkpoint_age: Gauge,
    pub checkpoint_commits: IntCounter,
    pub lease_waits: IntCounter,
    pub checkpoint_seq: IntGauge,
    pub queue_depth: IntGaugeVec,
    pub ddl_events: IntCounter,
    pub unreadable_changes: IntCounterVec,
    pub rolled_back_changes: IntCounterVec,
    pub xa_prepared: IntGauge,
    pub source_reconnects: IntCounterVec,
    pub transactions: IntCounter,
    pub backfill_rows: IntCounterVec,
    pub backfill_chunks: IntCounterVec,
    pub backfill_superseded: IntCounterVec,
    pub reads_again: IntCounterVec,
    pub backfill_state: IntGaugeVec,
    pub commit_to_ack: Histogram,
    pub join_marks: IntCounterVec,
    pub join_dirty: IntGaugeVec,
    pub join_refresh_reads: IntCounterVec,
    pub join_refresh_rows: IntCounterVec,
    pub join_queries: IntCounterVec,
    pub join_overflows: IntCounterVec,
    pub backfill_budget: IntGauge,
    pub verify: VerifyMetrics,
    pub writeback_records: IntCounterVec,
    pub writeback_lag: GaugeVec,
    pub writeback_read_at: GaugeVec,
    pub writeback_shards: IntGaugeVec,
    pub writeback_iterator_refreshes: IntCounterVec,
    pub writeback_trimmed: IntCounterVec,
    pub writeback_echo_rows: IntCounterVec,
    pub writeback_started_at_latest: IntCounterVec,
    pub writeback_retries: IntCounterVec,
    pub writeback_retrying: GaugeVec,
    pub writeback_restarts: IntCounterVec,
    pub process: ProcessMetrics,
}

/// The connection to the source and the build, for dashboards and alerts.
pub struct ProcessMetrics {
    /// 1 while the binlog reader holds a connection to the source.
    pub source_connected: IntGauge,
    /// Seconds since the binlog reader last received an event (heartbeats included).
    pub source_last_event_age: Gauge,
    pub build_info: IntGaugeVec,
}

impl ProcessMetrics {
    fn new(r: &Registry) -> Self {
        let build_info = gauge_vec(
            r,
            "rowcast_build_info",
            "Always 1; the labels say which rowcast runs",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        ProcessMetrics {
            source_connected: int_gauge(r, "rowcast_source_connected", "1 while the binlog reader is connected to the source, 0 while it reconnects"),
            source_last_event_age: gauge(r, "rowcast_source_last_event_age_seconds", "Seconds since the binlog reader last received an event from the source (heartbeats included: about heartbeat_interval_ms on an idle, healthy stream)"),
            build_info,
        }
    }
}

/// Continuous verification (`[verify]`).
pub struct VerifyMetrics {
    pub checked: IntCounterVec,
    pub differences: IntCounterVec,
    pub repaired: IntCounterVec,
    pub remaining: IntGaugeVec,
    pub last_pass: IntGaugeVec,
    pub errors: IntCounterVec,
    pub cleanups: IntCounterVec,
    pub cleanup_removed: IntCounterVec,
}

impl VerifyMetrics {
    fn new(r: &Registry) -> Self {
        VerifyMetrics {
                checked: counter_vec(r, "rowcast_verify_items_checked_total", "Items compared with the source by continuous verification ([verify]), by view", &["view"]),
                differences: counter_vec(r, "rowcast_verify_differences_total", "Differences found by continuous verification, by view and kind (missing, extra, different)", &["view", "kind"]),
                repaired: counter_vec(r, "rowcast_verify_repaired_total", "Differences repaired by continuous verification ([verify] repair = true), by view", &["view"]),
                remaining: gauge_vec(r, "rowcast_verify_differences", "Differences the last complete verification pass of a view left (found and not repaired)", &["view"]),
                errors: counter_vec(r, "rowcast_verify_errors_total", "Continuous verification passes of a view that failed (a service did not answer); the next pass tries again", &["view"]),
                last_pass: gauge_vec(r, "rowcast_verify_last_pass_timestamp_seconds", "Unix time at which the last complete verification pass of a view ended", &["view"]),
                cleanups: counter_vec(r, "rowcast_cleanups_total", "Cleanups ended: the sweeps after a backfill pass (a new view's first, a TRUNCATE's, a definition change's) that remove the items the pass did not write, by view", &["view"]),
                cleanup_removed: counter_vec(r, "rowcast_cleanup_removed_items_total", "Items removed by cleanups, by view", &["view"]),
        }
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric =
        IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn float_gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let metric = GaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    let metric = Gauge::new(name, help).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn histogram_vec(registry: &Registry, opts: HistogramOpts, labels: &[&str]) -> HistogramVec {
    let metric = HistogramVec::new(opts, labels).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn histogram(registry: &Registry, opts: HistogramOpts) -> Histogram {
    let metric = Histogram::with_opts(opts).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn int_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

/// The write request and commit-to-acknowledgement histograms.
fn durations(r: &Registry) -> (HistogramVec, Histogram) {
    let batch_duration = histogram_vec(
        r,
        HistogramOpts::new(
            "rowcast_batch_write_duration_seconds",
            "Duration of one DynamoDB write request, retries excluded",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]),
        &["kind"],
    );
    let commit_to_ack = histogram(
        r,
        HistogramOpts::new("rowcast_commit_to_ack_seconds", "From reading a transaction's commit in the binlog to the acknowledgement of all its writes by DynamoDB")
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
    );
    (batch_duration, commit_to_ack)
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let _ = r.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ));
        }
        let (batch_duration, commit_to_ack) = durations(&r);
        let checkpoint_seq = int_gauge(
            &r,
            "rowcast_checkpoint_transaction_seq",
            "Transaction counter of the last committed checkpoint",
        );
        Metrics {
            binlog_events: counter_vec(&r, "rowcast_binlog_events_total", "Binlog events read, by event type", &["type"]),
            rows: counter_vec(&r, "rowcast_rows_total", "Row changes projected, by view and operation (insert, update, delete)", &["view", "op"]),
            items: counter_vec(&r, "rowcast_items_written_total", "Item writes acknowledged by DynamoDB, by view and operation (put, delete)", &["view", "op"]),
            stale_writes: counter_vec(&r, "rowcast_stale_writes_total", "Conditional writes dropped because the item already holds a newer or equal version", &["view"]),
            coalesced: counter(&r, "rowcast_coalesced_writes_total", "Item writes replaced by a later write of the same key before they were sent"),
            unsure_writes: counter(&r, "rowcast_unsure_writes_total", "Items of plain writes whose outcome was unknown (a timeout, a connection lost, a server error), kept to be written again with the version guard after writer.recheck_after_ms"),
            rechecked_writes: counter_vec(&r, "rowcast_rechecked_writes_total", "Items written again after a write of unknown outcome: restored (the lost write had landed late, over a newer one), unchanged (it had not), refused, untracked (not kept: too many)", &["outcome"]),
            null_key_rows: counter_vec(&r, "rowcast_null_key_rows_total", "Rows that get no item because a key column is NULL", &["view"]),
            zero_dates: counter_vec(&r, "rowcast_zero_dates_total", "Zero dates (0000-00-00) left out of items", &["view"]),
            dead_letters: counter_vec(&r, "rowcast_dead_letters_total", "Items sent to the dead-letter store, by view and reason", &["view", "reason"]),
            dead_letters_unstored: counter_vec(&r, "rowcast_dead_letters_unstored_total", "Dead letters the dead-letter store refused for good (kept in the log only), by view", &["view"]),
            view_halted: gauge_vec(&r, "rowcast_view_halted", "1 when a view is halted: a change it cannot follow (incompatible schema change, statement-format DML, partial row image, unreadable joins)", &["view"]),
            replication_lag: gauge(&r, "rowcast_replication_lag_seconds", "Now minus the commit time of the last transaction acknowledged by DynamoDB (0 when caught up and idle)"),
            batch_duration,
            write_retries: counter_vec(&r, "rowcast_write_retries_total", "DynamoDB write retries, by reason (unprocessed, throttled, error)", &["reason"]),
            throttles: counter(&r, "rowcast_throttles_total", "DynamoDB throttling responses (throughput exceeded, unprocessed items)"),
            write_held: counter_vec(&r, "rowcast_write_held_total", "Write attempts held because DynamoDB refused the whole table (missing, no access, bad credentials), by table; retried until taken", &["table"]),
            checkpoint_age: gauge(&r, "rowcast_checkpoint_age_seconds", "Seconds the persisted checkpoint is behind the transactions read (0 when it covers all of them)"),
            checkpoint_commits: counter(&r, "rowcast_checkpoint_commits_total", "Checkpoints persisted"),
            lease_waits: counter(&r, "rowcast_write_lease_waits_total", "Sends of writes that waited because this instance's ownership of the checkpoint was not confirmed within the write lease (checkpoint.interval_ms + 3 s)"),
            checkpoint_seq,
            queue_depth: gauge_vec(&r, "rowcast_queue_depth", "Messages waiting in front of a stage", &["stage"]),
            ddl_events: counter(&r, "rowcast_ddl_events_total", "DDL statements seen in the binlog"),
            unreadable_changes: counter_vec(&r, "rowcast_unreadable_changes_total", "Changes of watched tables the binlog does not describe row by row (they halt the table's views, or have them backfilled again)", &["table", "cause"]),
            rolled_back_changes: counter_vec(&r, "rowcast_rolled_back_changes_total", "Row changes the binlog carried for a transaction that rolled them back (a logged ROLLBACK), undone by their inverse changes", &["table"]),
            xa_prepared: int_gauge(&r, "rowcast_xa_prepared", "Prepared XA transactions that change watched tables and wait for their XA COMMIT or XA ROLLBACK (each holds the checkpoint at its prepare)"),
            source_reconnects: counter_vec(&r, "rowcast_source_reconnects_total", "Binlog reconnects after a transient failure, by reason", &["reason"]),
            backfill_rows: counter_vec(&r, "rowcast_backfill_rows_total", "Rows copied by backfill, by view", &["view"]),
            backfill_chunks: counter_vec(&r, "rowcast_backfill_chunks_total", "Backfill chunks merged into the stream, by view", &["view"]),
            reads_again: counter_vec(&r, "rowcast_snapshot_reads_again_total", "Snapshot reads read again because a row they read changed just before them (a snapshot may miss a commit before its position), by kind: fill (fills on miss, restores, repairs) or backfill (a pass's first chunk)", &["kind"]),
            backfill_superseded: counter_vec(&r, "rowcast_backfill_rows_superseded_total", "Rows of backfill chunks not written because the stream had delivered a change of the row since the view's pass began (a snapshot may miss a commit before its position)", &["view"]),
            backfill_state: gauge_vec(&r, "rowcast_backfill_state", "Backfill state of a view: 0 pending, 1 filling, 2 done, 3 lazy (never backfilled)", &["view"]),
            transactions: counter(&r, "rowcast_transactions_total", "Source transactions read from the binlog"),
            commit_to_ack,
            join_marks: counter_vec(&r, "rowcast_join_marks_total", "Root keys or join values marked for refresh by row changes, by view and cause (root, related)", &["view", "cause"]),
            join_dirty: gauge_vec(&r, "rowcast_join_dirty_keys", "Root keys and join values waiting for a refresh, by view", &["view"]),
            join_refresh_reads: counter_vec(&r, "rowcast_join_refresh_reads_total", "Consistent-snapshot reads made to refresh items of views with joins, by view", &["view"]),
            join_refresh_rows: counter_vec(&r, "rowcast_join_refresh_rows_total", "Root rows read to refresh items of views with joins, by view", &["view"]),
            join_queries: counter_vec(&r, "rowcast_join_queries_total", "SQL SELECTs made to evaluate joins (root rows and related rows; backfill, fill on miss and refresh), by view", &["view"]),
            join_overflows: counter_vec(&r, "rowcast_join_overflows_total", "Times a view had more keys waiting for a refresh than join_max_dirty_keys and was backfilled again instead", &["view"]),
            verify: VerifyMetrics::new(&r),
            backfill_budget: int_gauge(&r, "rowcast_backfill_max_items_per_second", "The backfill write budget ([backfill] max_items_per_second; 0: no limit)"),
            writeback_records: counter_vec(&r, "rowcast_writeback_stream_records_total", "DynamoDB stream records of write-back tables, by view and outcome (applied, skipped-own, skipped-ttl, skipped-before-start, unchanged, rejected, other-view)", &["view", "outcome"]),
            writeback_lag: float_gauge_vec(&r, "rowcast_writeback_lag_seconds", "Now minus the creation time of the last stream record applied, by table (0 when caught up)", &["table"]),
            writeback_read_at: float_gauge_vec(&r, "rowcast_writeback_read_timestamp_seconds", "Unix time of the last round of stream reads of the table in which none failed, by table (a round reads every shard due; reads that fail or hang leave it behind)", &["table"]),
            writeback_shards: gauge_vec(&r, "rowcast_writeback_shards", "Stream shards known, by table", &["table"]),
            writeback_iterator_refreshes: counter_vec(&r, "rowcast_writeback_iterator_refreshes_total", "Expired shard iterators fetched again after the last sequence number, by table", &["table"]),
            writeback_trimmed: counter_vec(&r, "rowcast_writeback_trimmed_total", "Times stream records were trimmed (over 24 h) before write-back read them, by table", &["table"]),
            writeback_echo_rows: counter_vec(&r, "rowcast_writeback_echo_rows_total", "Binlog row changes made by write-back (skip_replication flag, counted only with streams.skip_replication = true), by table; they reach the views like any change", &["table"]),
            writeback_started_at_latest: counter_vec(&r, "rowcast_writeback_started_at_latest_total", "Times write-back found no saved position for a stream and started at its latest record (records before were not applied), by table", &["table"]),
            writeback_retries: counter_vec(&r, "rowcast_writeback_retries_total", "Retries of a stream record whose SQL statement failed transiently, by table and reason (unreachable, retry, read_only, foreign_key: a foreign key refused it and its shard waits for the record that makes it right, lease: the write lease was not confirmed and nothing was committed)", &["table", "reason"]),
            writeback_retrying: float_gauge_vec(&r, "rowcast_writeback_retrying_seconds", "How long the record in hand has been retried, by table (0 when none is)", &["table"]),
            writeback_restarts: counter_vec(&r, "rowcast_writeback_restarts_total", "Write-back consumers restarted after they failed or panicked, by table", &["table"]),
            process: ProcessMetrics::new(&r),
            registry: r,
        }
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Removes the per-table write-back gauges of the tables `kept` says no: tables whose views
/// no longer write back (a reload took it away, or moved the views to another table). They
/// would go on saying what they last said, and the time of the last stream read
/// (`rowcast_writeback_read_timestamp_seconds`) would set `RowcastWritebackStuck` off for ever
/// (found by the review of that gauge; `tests/reload.rs`
/// `a_reload_that_takes_write_back_away_removes_its_gauges`, seen failing).
pub fn forget_writeback_tables(kept: impl Fn(&str) -> bool) {
    use prometheus::core::Collector;
    let m = metrics();
    let families = [
        m.writeback_read_at.collect(),
        m.writeback_lag.collect(),
        m.writeback_retrying.collect(),
        m.writeback_shards.collect(),
    ];
    let mut gone = std::collections::BTreeSet::new();
    for family in families.iter().flatten() {
        for metric in family.get_metric() {
            let table = metric.get_label().iter().find(|l| l.name() == "table");
            if let Some(table) = table.map(|l| l.value()) {
                if !kept(table) {
                    gone.insert(table.to_string());
                }
            }
        }
    }
    for table in &gone {
        let _ = m.writeback_read_at.remove_label_values(&[table]);
        let _ = m.writeback_lag.remove_label_values(&[table]);
        let _ = m.writeback_retrying.remove_label_values(&[table]);
        let _ = m.writeback_shards.remove_label_values(&[table]);
    }
}
