//! The ordered commit of the acknowledged prefix.
//!
//! The projector sends the same barriers, in source order, to every lane; a lane acknowledges a
//! barrier when every write it received before it is acknowledged by DynamoDB. The checkpoint
//! may therefore advance to the lowest barrier that all lanes have acknowledged, and never
//! further. It is persisted every `interval` and once more when the lanes have drained.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::control::{CheckpointError, CheckpointStore};
use crate::error::{chain, RetryPolicy};
use crate::metrics::metrics;
use crate::pipeline::Checkpoint;
use crate::pipeline::{Ack, Barrier};
use crate::util::now_millis;

pub struct Tracker {
    pub lanes: usize,
    pub rx: mpsc::Receiver<Ack>,
    pub store: Arc<CheckpointStore>,
    pub interval: Duration,
    /// Counter of the last transaction the projector has seen, for the lag when idle.
    pub last_read_seq: Arc<AtomicU64>,
    pub initial: Checkpoint,
    /// Told what every lane acknowledged (`/healthz` tells a stalled pipeline by it).
    pub health: Arc<crate::metrics::Health>,
    /// The generation of the last barrier every lane acknowledged (write-back's restores wait
    /// for theirs: `pipeline::WrittenAt`).
    pub acked: tokio::sync::watch::Sender<u64>,
    /// Closed once every write-back consumer of the pipeline has ended (each holds a sender
    /// and never sends): until then the checkpoint stays held, its lease confirmed, for the
    /// stream positions they save.
    pub consumers: mpsc::Receiver<()>,
    /// Run once the lanes and the consumers are done, before the release, while ownership is
    /// still confirmed: at a stop, it saves the writes of unknown outcome still kept
    /// (`control::kept`), so that the next instance, which may claim the checkpoint the moment
    /// it is released, finds them.
    pub before_release: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

/// How often ownership of the checkpoint is confirmed (see [`keep_lease`]), busy or idle.
pub const OWNER_CHECK: Duration = Duration::from_secs(1);
/// How late a confirmation of ownership may come before the lanes wait for it (see
/// [`lease_term`]).
const LEASE_SLACK: Duration = Duration::from_secs(2);

/// How long one confirmation of ownership lets the lanes write (`control::Lease`): a check is
/// sent every `OWNER_CHECK` whatever the ones before became (and every save confirms too), so
/// the lease holds as long as the control table answers within `interval + LEASE_SLACK`.
pub fn lease_term(interval: Duration) -> Duration {
    interval + OWNER_CHECK + LEASE_SLACK
}

/// Confirms ownership of the checkpoint every `OWNER_CHECK` (each check renews the write lease
/// from when it was sent), and detects a takeover within a second, busy or idle. As many checks
/// go at once as one lease `term` holds, so a slow control table answers late, not less often:
/// the lease holds while answers come within `term - OWNER_CHECK`. Ends only with an error:
/// `Fenced`, or a definite refusal.
async fn keep_lease(
    store: &CheckpointStore,
    term: Duration,
) -> Result<std::convert::Infallible, CheckpointError> {
    use futures_util::StreamExt as _;
    if !store.has_owner() {
        return std::future::pending().await;
    }
    let in_flight = term.as_millis().div_ceil(OWNER_CHECK.as_millis()).max(1) as usize;
    let mut tick = tokio::time::interval(OWNER_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut checks = futures_util::stream::FuturesUnordered::new();
    // One warning a minute at most, however the checks come back.
    let mut warned: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if checks.len() < in_flight {
                    checks.push(store.check_owner());
                }
            }
            Some(checked) = checks.next() => match checked {
                Ok(()) => {}
                Err(error) if !error.waited_for() => return Err(error),
                Err(error) => {
                    if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                        warned = Some(std::time::Instant::now());
                        warn!(error = %chain(&error), "cannot confirm ownership of the checkpoint; checking again every second");
                    }
                }
            },
        }
    }
}

impl Tracker {
    /// Runs until every lane and every write-back consumer has finished; returns the last
    /// checkpoint persisted. Ownership is confirmed meanwhile (see [`keep_lease`]); a takeover
    /// ends it with `Fenced`.
    pub async fn run(mut self) -> Result<Checkpoint, CheckpointError> {
        let store = self.store.clone();
        let before_release = self.before_release.take();
        let interval = self.interval;
        let (_, closed) = mpsc::channel(1);
        let mut consumers = std::mem::replace(&mut self.consumers, closed);
        let track = self.track();
        tokio::pin!(track);
        let saved = tokio::select! {
            tracked = &mut track => tracked?,
            Err(error) = keep_lease(&store, lease_term(interval)) => return Err(error),
        };
        // A consumer still saving a stream position after the release could land it over a
        // successor's later one (before 2026-12-05 the release came once the lanes were done):
        // the checkpoint is kept, and confirmed, until they have all ended, or for two lease
        // terms at most (a consumer hung on its database): the lease then ends first, so that
        // nothing it saves or commits later is let through.
        let ended = async { while consumers.recv().await.is_some() {} };
        tokio::select! {
            waited = tokio::time::timeout(2 * lease_term(interval), ended) => {
                if waited.is_err() {
                    warn!("write-back consumers still running two lease terms after the lanes drained; the checkpoint is released, and what they still save is refused");
                    store.lease().end();
                }
            }
            Err(error) = keep_lease(&store, lease_term(interval)) => return Err(error),
        }
        if let Some(before_release) = before_release {
            tokio::select! {
                () = before_release => {}
                Err(error) = keep_lease(&store, lease_term(interval)) => return Err(error),
            }
        }
        // Released once no check is in flight any more: one answered after the release would
        // read the item as another's and fence this instance on its way out.
        if let Err(error) = store.release().await {
            warn!(error = %chain(&error), "cannot release the checkpoint; the next instance waits a few seconds before writing");
        }
        Ok(saved)
    }

    async fn track(mut self) -> Result<Checkpoint, CheckpointError> {
        let mut acked: Vec<Option<Barrier>> = vec![None; self.lanes];
        let mut committed: Option<Barrier> = None;
        let mut saved = self.initial.clone();
        let mut saved_generation = 0u64;
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ack = self.rx.recv() => {
                    let Some(ack) = ack else { break };
                    let slot = &mut acked[ack.lane];
                    if slot.as_ref().is_none_or(|b| b.generation < ack.barrier.generation) {
                        *slot = Some(ack.barrier);
                    }
                    let Some(lowest) = lowest(&acked) else { continue };
                    if committed.as_ref().is_none_or(|c| c.generation < lowest.generation) {
                        metrics().commit_to_ack.observe(lowest.read_at.elapsed().as_secs_f64());
                        self.health.acknowledged(lowest.seq);
                        self.acked.send_replace(lowest.generation);
                        committed = Some(lowest.clone());
                    }
                }
                _ = tick.tick() => {
                    self.update_lag(committed.as_ref());
                    self.update_age(&saved);
                    if let Err(error) = self.save(committed.as_ref(), &mut saved, &mut saved_generation).await {
                        if !error.waited_for() {
                            return Err(error);
                        }
                        warn!(error = %chain(&error), "cannot persist the checkpoint; will retry");
                    }
                }
            }
        }
        // Drained: persist the final position, trying a little harder.
        let retry = RetryPolicy::new(Duration::from_millis(200), Duration::from_secs(2));
        let mut backoff = retry.backoff();
        for attempt in 0..10u32 {
            match self
                .save(committed.as_ref(), &mut saved, &mut saved_generation)
                .await
            {
                Ok(()) => break,
                Err(error) if error.waited_for() && attempt < 9 => {
                    warn!(error = %chain(&error), "cannot persist the final checkpoint; retrying");
                    tokio::time::sleep(backoff.next().unwrap_or(retry.max)).await;
                }
                Err(error) => {
                    error!(error = %chain(&error), "final checkpoint not persisted; a restart replays from the previous one");
                    return Err(error);
                }
            }
        }
        self.update_lag(committed.as_ref());
        info!(position = %saved.position, seq = saved.seq, "final checkpoint");
        Ok(saved)
    }

    /// Seconds the persisted checkpoint is behind what the source has read; 0 when nothing read
    /// is missing from it (an idle source does not age the checkpoint). While the reader is
    /// inside a transaction (whose commit it has not read), the checkpoint cannot pass it: its
    /// age counts from when the reader began it, or from the last save if that came later.
    fn update_age(&self, saved: &Checkpoint) {
        let latest = self.last_read_seq.load(Ordering::Relaxed);
        let now = now_millis();
        let age = match self.health.reading_since_ms() {
            _ if saved.seq < latest => now.saturating_sub(saved.updated_ms),
            Some(since) => now.saturating_sub(since.max(saved.updated_ms)),
            None => 0,
        };
        metrics().checkpoint_age.set(age as f64 / 1000.0);
    }

    /// Seconds from the commit of the last transaction every lane acknowledged, while a later
    /// one is read; while the reader is inside a transaction (and every one before it is
    /// acknowledged), seconds since it began that one. Before 2026-12-07 a single transaction
    /// of millions of rows, read and written for minutes, showed a lag of 0 throughout: its
    /// commit, which the lag waited for, comes last (found by a review; `tests/changes.rs`).
    fn update_lag(&self, committed: Option<&Barrier>) {
        let latest = self.last_read_seq.load(Ordering::Relaxed);
        let now = now_millis();
        let lag = match (committed, self.health.reading_since_ms()) {
            (Some(c), _) if c.seq < latest => {
                (now as f64 / 1000.0 - f64::from(c.commit_ts)).max(0.0)
            }
            (_, Some(since)) => now.saturating_sub(since) as f64 / 1000.0,
            _ => 0.0,
        };
        metrics().replication_lag.set(lag);
    }

    async fn save(
        &mut self,
        committed: Option<&Barrier>,
        saved: &mut Checkpoint,
        saved_generation: &mut u64,
    ) -> Result<(), CheckpointError> {
        let Some(barrier) = committed.filter(|b| b.generation > *saved_generation) else {
            return Ok(()); // nothing new (ownership is checked by `keep_lease`)
        };
        let (position, seq) = match &barrier.restart {
            Some(restart) => (restart.position.clone(), restart.seq),
            None => (barrier.position.clone(), barrier.seq),
        };
        let checkpoint = Checkpoint {
            position,
            seq,
            updated_ms: now_millis(),
            backfill: (*barrier.backfill).clone(),
        };
        self.store.save(&checkpoint).await?;
        crate::util::failpoint::hit("checkpoint.after_save");
        metrics().checkpoint_commits.inc();
        metrics().checkpoint_seq.set(checkpoint.seq as i64);
        *saved = checkpoint;
        *saved_generation = barrier.generation;
        Ok(())
    }
}

fn lowest(acked: &[Option<Barrier>]) -> Option<&Barrier> {
    let mut lowest: Option<&Barrier> = None;
    for barrier in acked {
        let barrier = barrier.as_ref()?;
        if lowest.is_none_or(|l| barrier.generation < l.generation) {
            lowest = Some(barrier);
        }
    }
    lowest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Position;
    use std::time::Instant;

    fn barrier(seq: u64) -> Barrier {
        Barrier {
            seq,
            generation: seq,
            backfill: Default::default(),
            position: Position {
                file: "b.1".into(),
                pos: seq,
                gtid: None,
            },
            restart: None,
            commit_ts: 0,
            read_at: Instant::now(),
        }
    }

    #[test]
    fn lowest_needs_every_lane() {
        assert!(lowest(&[Some(barrier(3)), None]).is_none());
        assert_eq!(
            lowest(&[Some(barrier(3)), Some(barrier(2))]).map(|b| b.seq),
            Some(2)
        );
    }
}
