//! Continuous verification (`[verify]` in the daemon config): the comparison of `rowcast
//! verify`, over every view in turn, one pass per interval, throttled to a read rate on each
//! side; each difference is logged and counted, and, with `repair = true`, sent to the snapshot
//! worker to be repaired in the stream. Metrics say when a view was last proven equal.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use mysql_async::Pool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{verify_view, Difference, Options, RepairVia, Services, VerifyError};
use crate::config::VerifyConfig;
use crate::control::CheckpointStore;
use crate::metrics::metrics;
use crate::pipeline::FillRequest;
use crate::view::View;

pub struct Continuous {
    pub config: VerifyConfig,
    pub views: Vec<Arc<View>>,
    pub pool: Pool,
    pub client: Client,
    pub store: Arc<CheckpointStore>,
    pub fills: mpsc::Sender<FillRequest>,
    /// Every view of the config (for telling items of views sharing a table apart).
    pub all_views: Vec<Arc<View>>,
    /// How far the write-back consumers have read.
    pub health: Arc<crate::metrics::Health>,
}

impl Continuous {
    /// Passes over every view until `drain` fires. A view whose pass fails (a service that does
    /// not answer) is logged and counted, and its last-pass time stays where it was; the pipeline
    /// is never stopped by its observer.
    pub async fn run(&self, drain: CancellationToken) {
        let options = Options {
            segments: self.config.segments as i32,
            rate: self.config.max_items_per_second,
            chunk_rows: 1000,
            checkpoint_wait: std::time::Duration::from_secs(60),
            repair_via: self
                .config
                .repair
                .then(|| RepairVia::Fills(self.fills.clone())),
        };
        let progress = super::writeback::WritebackProgress::Local(self.health.clone());
        let services = Services {
            pool: &self.pool,
            client: &self.client,
            checkpoint: &self.store,
            views: &self.all_views,
            writeback: &progress,
        };
        loop {
            let started = Instant::now();
            for view in &self.views {
                let pass = self.verify_one(&services, view, &options);
                let result = tokio::select! {
                    result = pass => result,
                    _ = drain.cancelled() => return,
                };
                if let Err(error) = result {
                    warn!(view = %view.name, error = %crate::error::chain(&error), "verification pass failed; the next pass tries again");
                    metrics()
                        .verify
                        .errors
                        .with_label_values(&[&view.name])
                        .inc();
                }
            }
            let next = started + self.config.interval;
            tokio::select! {
                _ = tokio::time::sleep_until(next.into()) => {}
                _ = drain.cancelled() => return,
            }
        }
    }

    async fn verify_one(
        &self,
        services: &Services<'_>,
        view: &Arc<View>,
        options: &Options,
    ) -> Result<(), VerifyError> {
        let name = view.name.as_str();
        let m = metrics();
        let mut report = |d: &Difference| {
            let sk = d.key.sk.as_deref().unwrap_or("");
            warn!(view = name, kind = d.kind.as_str(), pk = %d.key.pk, sk, attributes = %d.attributes.join(","), "verify: the item differs from what the source makes");
            m.verify
                .differences
                .with_label_values(&[name, d.kind.as_str()])
                .inc();
        };
        let summary = verify_view(services, view, options, &mut report).await?;
        m.verify
            .checked
            .with_label_values(&[name])
            .inc_by(summary.checked);
        m.verify
            .repaired
            .with_label_values(&[name])
            .inc_by(summary.repaired);
        // What the last complete pass left: a pass that could not prove every key (the
        // daemon behind, keys unsettled, a backfill running) only adds what it confirmed; it
        // never clears differences it could not look at again.
        let remaining = summary.remaining() as i64;
        let gauge = m.verify.remaining.with_label_values(&[name]);
        if summary.complete() || remaining > gauge.get() {
            gauge.set(remaining);
        }
        // "Proven" only when every item was compared.
        if summary.complete() {
            m.verify
                .last_pass
                .with_label_values(&[name])
                .set((crate::util::now_millis() / 1000) as i64);
        }
        info!(
            view = name,
            checked = summary.checked,
            missing = summary.missing,
            extra = summary.extra,
            different = summary.different,
            repaired = summary.repaired,
            unsettled = summary.unsettled,
            unwritable = summary.unwritable,
            daemon_behind = summary.daemon_behind,
            writeback_behind = summary.writeback_behind,
            not_filled = summary.not_filled,
            other_definition = summary.other_definition,
            no_progress = summary.no_progress,
            "verification pass done"
        );
        if summary.json_key {
            warn!(view = name, "the view's key renders a JSON column, which SQL cannot look a row up by: it is not verified");
        }
        Ok(())
    }
}
