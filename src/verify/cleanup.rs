//! Removing the items a view no longer makes, after a pass that may have left some: its
//! definition changed (a key template, a tighter filter) or its table was truncated. The view's
//! progress says `cleanup` until this is done, so it survives restarts: once the checkpoint says
//! the pass is done, a verification with repair (`super::verify_view`) removes every item no row
//! makes and rewrites any that differs, through the snapshot worker, in the stream's order; then
//! the merge stage clears the flag.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use mysql_async::Pool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{verify_view, Options, RepairVia, Services};
use crate::control::CheckpointStore;
use crate::pipeline::FillRequest;
use crate::view::View;

pub struct Cleanup {
    pub views: Vec<Arc<View>>,
    pub pool: Pool,
    pub client: Client,
    pub store: Arc<CheckpointStore>,
    pub fills: mpsc::Sender<FillRequest>,
    /// To the merge stage: a view's cleanup is done.
    pub cleaned: mpsc::Sender<String>,
    /// Items per second read on each side at most (`[verify] max_items_per_second`).
    pub rate: Option<u32>,
}

/// How often the checkpoint is read for views whose cleanup is due.
const POLL: Duration = Duration::from_secs(1);

impl Cleanup {
    /// Runs until `drain` fires; a failed cleanup is logged and tried again.
    pub async fn run(&self, drain: CancellationToken) {
        let options = Options {
            segments: 2,
            rate: self.rate,
            chunk_rows: 1000,
            checkpoint_wait: Duration::from_secs(60),
            repair_via: Some(RepairVia::Fills(self.fills.clone())),
        };
        let services = Services {
            pool: &self.pool,
            client: &self.client,
            checkpoint: &self.store,
        };
        // Views reported cleaned whose checkpoint does not say so yet.
        let mut reported: HashSet<String> = HashSet::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = drain.cancelled() => return,
            }
            let checkpoint = match self.store.load().await {
                Ok(Some(checkpoint)) => checkpoint,
                Ok(None) => continue,
                Err(error) => {
                    warn!(error = %crate::error::chain(&error), "cleanup: cannot read the checkpoint");
                    continue;
                }
            };
            for view in &self.views {
                let due = checkpoint
                    .backfill
                    .get(&view.name)
                    .is_some_and(|p| p.done && p.cleanup);
                if !due {
                    reported.remove(&view.name);
                    continue;
                }
                if reported.contains(&view.name) {
                    continue;
                }
                let mut report = |_: &super::Difference| {};
                let pass = verify_view(&services, view, &options, &mut report);
                let summary = tokio::select! {
                    summary = pass => summary,
                    _ = drain.cancelled() => return,
                };
                match summary {
                    Ok(s)
                        if s.missing + s.extra + s.different == s.repaired && s.unsettled == 0 =>
                    {
                        info!(view = %view.name, removed = s.extra, rewritten = s.missing + s.different, "cleanup done: the items no row makes are removed");
                        if self.cleaned.send(view.name.clone()).await.is_err() {
                            return;
                        }
                        reported.insert(view.name.clone());
                    }
                    Ok(s) => {
                        warn!(view = %view.name, left = s.missing + s.extra + s.different - s.repaired, unsettled = s.unsettled, "cleanup incomplete; trying again");
                    }
                    Err(error) => {
                        warn!(view = %view.name, error = %crate::error::chain(&error), "cleanup failed; trying again");
                    }
                }
            }
        }
    }
}
