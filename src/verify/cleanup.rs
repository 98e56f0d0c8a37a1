//! Removing the items a view no longer makes after a pass that may have left some: its
//! definition changed (a key template, a tighter filter), its table was truncated, or it was
//! rebuilt (`rowcast snapshot`). The view's progress says `cleanup` until this is done, so it
//! survives restarts.
//!
//! Once the checkpoint says the pass is done (every item it wrote is acknowledged), every item
//! the view holds was written by that pass or later — at a version from the pass's first row's
//! on (`Progress::from_version`) — except the stale ones. So the sweep is
//! one Scan: each item of the view (its `_view`) at a version below that is removed, on
//! condition that it still holds the version read (a write since wins). Items without a version
//! (an application's) are left alone. No source read, memory of one Scan page.
//!
//! Each removal waits for the write lease, as the lanes' writes do (`control::Lease`): an
//! instance paused mid-sweep and taken over meanwhile sends no removal after its successor
//! began to write. Before 2026-12-07 the sweep ignored the lease; on a table whose successor
//! turned write-back on, such a late unmarked removal was taken for an application's DeleteItem
//! and could delete the row behind the item (found by a review; not tested: it needs a
//! process paused between a lease check and a request).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::table::Pages;
use super::Pacer;
use crate::control::{CheckpointStore, Lease};
use crate::dynamo::{remove_at_version, remove_marked, RemovalGuard, SdkErrorInfo};
use crate::metrics::metrics;
use crate::view::View;

pub struct Cleanup {
    pub views: Vec<Arc<View>>,
    pub client: Client,
    pub store: Arc<CheckpointStore>,
    /// To the merge stage: the cleanup of this view's pass (its `since`) is done.
    pub cleaned: mpsc::Sender<(String, u128)>,
    /// Items per second read at most (`[verify] max_items_per_second`).
    pub rate: Option<u32>,
    /// Waited for before each removal.
    pub lease: Lease,
}

/// How often the checkpoint is read for views whose cleanup is due.
const POLL: Duration = Duration::from_secs(1);

impl Cleanup {
    /// Runs until `drain` fires; a failed sweep is logged and tried again after a growing pause.
    pub async fn run(&self, drain: CancellationToken) {
        // Passes reported clean whose checkpoint does not say so yet.
        let mut reported: HashSet<(String, u128)> = HashSet::new();
        let mut retry_at: HashMap<String, (Instant, Duration)> = HashMap::new();
        let definitions: HashMap<&str, String> = self
            .views
            .iter()
            .map(|view| (view.name.as_str(), view.fingerprint()))
            .collect();
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
                // Due: the pass is done, with this process's definition of the view.
                let due = checkpoint.backfill.get(&view.name).and_then(|p| {
                    let current = p.definition.as_ref() == definitions.get(view.name.as_str());
                    (p.done && p.cleanup && current)
                        .then_some(p.from_version)
                        .flatten()
                });
                let Some(from) = due else {
                    reported.retain(|(name, _)| *name != view.name);
                    continue;
                };
                let pass = (view.name.clone(), from);
                let waiting = retry_at
                    .get(&view.name)
                    .is_some_and(|(at, _)| *at > Instant::now());
                if reported.contains(&pass) || waiting {
                    continue;
                }
                crate::util::failpoint::delay("cleanup.before_sweep").await;
                let sweep = self.sweep(view, from);
                let result = tokio::select! {
                    result = sweep => result,
                    _ = drain.cancelled() => return,
                };
                match result {
                    // The lease ended: this instance writes nothing any more.
                    Ok(None) => return,
                    Ok(Some(removed)) => {
                        metrics()
                            .verify
                            .cleanups
                            .with_label_values(&[&*view.name])
                            .inc();
                        info!(view = %view.name, removed, "cleanup done: the items the view's current pass did not write are removed");
                        retry_at.remove(&view.name);
                        if self.cleaned.send(pass.clone()).await.is_err() {
                            return;
                        }
                        reported.insert(pass);
                    }
                    Err(info) => {
                        let pause = retry_at
                            .get(&view.name)
                            .map_or(POLL, |(_, pause)| (*pause * 2).min(Duration::from_secs(60)));
                        warn!(view = %view.name, error = %info, retry_in = ?pause, "cleanup failed; trying again");
                        retry_at.insert(view.name.clone(), (Instant::now() + pause, pause));
                    }
                }
            }
        }
    }

    /// Removes every item of `view` below version `below`; returns how many (`None`: the write
    /// lease ended first).
    async fn sweep(&self, view: &View, below: u128) -> Result<Option<u64>, SdkErrorInfo> {
        let pacer = Pacer::new(self.rate);
        // Items are the view's by `_view` here: the sweep never takes another view's item.
        let alone = [Arc::new(view.clone())];
        let owner = super::table::Owner {
            view,
            views: &alone,
            schema: None,
        };
        let mut pages = Pages::new(&self.client, owner, (0, 1)).stale_below(below);
        let mut removed = 0;
        while let Some(page) = pages.next(&pacer).await? {
            for (key, stored) in page {
                let Some(version) = stored.version.filter(|v| *v < below) else {
                    continue;
                };
                if !stored.named {
                    continue;
                }
                if !self.lease.held().await {
                    return Ok(None);
                }
                let gone = if view.mark_removals {
                    // Marked, so that write-back takes the removal for rowcast's.
                    remove_marked(&self.client, &key, RemovalGuard::UpTo(version)).await?
                } else {
                    remove_at_version(&self.client, &key, version).await?
                };
                removed += u64::from(gone);
                if gone {
                    metrics()
                        .verify
                        .cleanup_removed
                        .with_label_values(&[&*view.name])
                        .inc();
                }
            }
        }
        Ok(Some(removed))
    }
}
