//! The supervisor: every task of the daemon by stage name, and what happens when one ends.
//!
//! - A stage that fails with a definite error, panics, or ends while nothing asked it to, stops
//!   the daemon: the failure is logged with the stage's name and cause, `/healthz` reports it,
//!   the source stops reading so that what was read drains through the other stages, and `run`
//!   returns the failure (the process exits non-zero). The first failure is the one reported;
//!   the stages that stop because of it follow quietly. A failure marked `at_once` (a fenced
//!   checkpoint: another instance owns the pipeline now) aborts every stage instead of draining,
//!   so nothing more is written.
//! - A restartable stage (write-back consumers) that fails transiently or panics is started
//!   again with backoff and counted; a definite error stops the daemon like any other.
//! - Background tasks (the HTTP listener) are stopped once every other task has ended, so the
//!   probes answer while the pipeline drains.
//! - A reload drains the pipeline's stages (as a shutdown does) while the background tasks go on,
//!   then a new generation of stages starts (`run_pipeline`, `next_generation`, `finish`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use prometheus::IntCounter;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::error::{chain, pause, Classify, ErrorClass, RetryPolicy};
use crate::metrics::Health;

/// How a stage ended badly.
#[derive(Debug, Clone)]
pub struct StageError {
    pub class: ErrorClass,
    pub cause: String,
    /// Stop every stage at once instead of draining (this instance must not write any more: it
    /// was fenced by another one).
    pub at_once: bool,
}

impl StageError {
    pub fn from_error<E: Classify + std::error::Error>(error: &E) -> Self {
        StageError {
            class: error.class(),
            cause: chain(error),
            at_once: false,
        }
    }

    /// The same, stopping every stage at once.
    pub fn at_once(mut self) -> Self {
        self.at_once = true;
        self
    }
}

pub type StageResult = Result<(), StageError>;

/// The failure that stopped the daemon.
#[derive(Debug, Clone, thiserror::Error)]
#[error("stage {stage} failed: {cause}")]
pub struct StageFailure {
    pub stage: String,
    pub cause: String,
}

pub struct Supervisor {
    tasks: JoinSet<StageResult>,
    names: HashMap<tokio::task::Id, String>,
    background: JoinSet<StageResult>,
    health: Arc<Health>,
    /// The daemon's shutdown: the parent of every generation's drain token.
    shutdown: CancellationToken,
    /// Cancelled to drain: at shutdown (its parent), at the first failure, or for a reload.
    drain: CancellationToken,
    /// Cancelled once every pipeline task has ended: stops the background tasks.
    finish: CancellationToken,
}

impl Supervisor {
    pub fn new(health: Arc<Health>, shutdown: &CancellationToken) -> Self {
        Supervisor {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            background: JoinSet::new(),
            health,
            shutdown: shutdown.clone(),
            drain: shutdown.child_token(),
            finish: CancellationToken::new(),
        }
    }

    /// The token stages watch to stop reading (the source) or following (write-back).
    pub fn drain_token(&self) -> CancellationToken {
        self.drain.clone()
    }

    /// The daemon's shutdown (a stop, not a reload).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The token background tasks watch: cancelled once the pipeline has ended.
    pub fn finish_token(&self) -> CancellationToken {
        self.finish.clone()
    }

    /// A stage of the pipeline.
    pub fn spawn<F>(&mut self, stage: impl Into<String>, task: F)
    where
        F: Future<Output = StageResult> + Send + 'static,
    {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), stage.into());
    }

    /// A stage started again after a transient failure or a panic, with backoff, each restart
    /// counted in `restarts`.
    pub fn spawn_restarting<F, Fut>(
        &mut self,
        stage: impl Into<String>,
        restarts: IntCounter,
        retry: RetryPolicy,
        mut start: F,
    ) where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = StageResult> + Send + 'static,
    {
        let stage = stage.into();
        let drain = self.drain.clone();
        let name = stage.clone();
        self.spawn(stage, async move {
            let mut backoff = retry.backoff();
            loop {
                let cause = match tokio::spawn(start()).await {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(error)) if error.class == ErrorClass::Definite => return Err(error),
                    Ok(Err(error)) => error.cause,
                    Err(join) if join.is_panic() => {
                        format!("panicked: {}", panic_text(&join.into_panic()))
                    }
                    Err(_) => return Ok(()),
                };
                restarts.inc();
                error!(stage = %name, %cause, "stage failed; starting it again");
                if !pause(&drain, backoff.next().unwrap_or(retry.max)).await {
                    return Ok(());
                }
            }
        });
    }

    /// A task that runs until [`Supervisor::finish_token`] fires.
    pub fn spawn_background<F>(&mut self, stage: impl Into<String>, task: F)
    where
        F: Future<Output = StageResult> + Send + 'static,
    {
        let handle = self.background.spawn(task);
        self.names.insert(handle.id(), stage.into());
    }

    /// Waits until every task has ended; the first failure, if any.
    pub async fn run(mut self) -> Result<(), StageFailure> {
        let pipeline = self.run_pipeline().await;
        let finished = self.finish().await;
        pipeline.and(finished)
    }

    /// Waits until every stage of the pipeline has ended (drained for a shutdown or a reload,
    /// or after a failure); the first failure, if any (a background task's included).
    pub async fn run_pipeline(&mut self) -> Result<(), StageFailure> {
        let mut failure: Option<StageFailure> = None;
        loop {
            tokio::select! {
                joined = self.tasks.join_next_with_id() => {
                    let Some(joined) = joined else { break };
                    self.ended(joined, &mut failure);
                }
                joined = self.background.join_next_with_id(), if !self.background.is_empty() => {
                    if let Some(joined) = joined {
                        self.ended(joined, &mut failure);
                    }
                }
            }
        }
        match failure {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// After a reload drained the pipeline: the next generation's stages drain on a new token.
    pub fn next_generation(&mut self) {
        self.drain = self.shutdown.child_token();
    }

    /// Stops the background tasks once the pipeline has ended.
    pub async fn finish(mut self) -> Result<(), StageFailure> {
        let mut failure: Option<StageFailure> = None;
        self.finish.cancel();
        while let Some(joined) = self.background.join_next_with_id().await {
            self.ended(joined, &mut failure);
        }
        match failure {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    fn ended(
        &mut self,
        joined: Result<(tokio::task::Id, StageResult), tokio::task::JoinError>,
        failure: &mut Option<StageFailure>,
    ) {
        let (id, result) = match joined {
            Ok((id, result)) => (id, result),
            Err(join) => {
                let id = join.id();
                let cause = if join.is_panic() {
                    format!("panicked: {}", panic_text(&join.into_panic()))
                } else {
                    "cancelled".to_string()
                };
                (
                    id,
                    Err(StageError {
                        class: ErrorClass::Definite,
                        cause,
                        at_once: false,
                    }),
                )
            }
        };
        let stage = self.names.remove(&id).unwrap_or_else(|| "(unknown)".into());
        let draining = self.drain.is_cancelled() || self.finish.is_cancelled();
        let cause = match result {
            Ok(()) if draining => {
                info!(%stage, "stage ended");
                return;
            }
            Ok(()) => "ended while nothing asked it to".to_string(),
            Err(error) if error.at_once => {
                // Even while draining after an earlier failure: a fenced instance must not
                // write what its lanes still hold.
                error!(%stage, cause = %error.cause, "stage failed; every stage stops at once, nothing more is written");
                if failure.is_none() {
                    self.health.set_failed(&stage, &error.cause);
                    *failure = Some(StageFailure {
                        stage,
                        cause: error.cause,
                    });
                }
                self.tasks.abort_all();
                self.drain.cancel();
                return;
            }
            Err(error) => error.cause,
        };
        if failure.is_some() {
            info!(%stage, %cause, "stage stopped after the failure");
        } else {
            error!(%stage, %cause, "stage failed; stopping: what was read drains, then rowcast exits");
            self.health.set_failed(&stage, &cause);
            *failure = Some(StageFailure { stage, cause });
        }
        self.drain.cancel();
    }
}

pub fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

crate::error::definite_errors!(StageFailure);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn failure(cause: &str) -> StageError {
        StageError {
            class: ErrorClass::Definite,
            cause: cause.into(),
            at_once: false,
        }
    }

    /// A stage failed and the rest drain; then the instance is fenced: every stage stops at
    /// once (a lane still writing is aborted), and the first failure is the one reported.
    #[tokio::test]
    async fn a_fence_during_a_drain_still_aborts_every_stage() {
        let shutdown = CancellationToken::new();
        let mut supervisor = Supervisor::new(Arc::new(Health::default()), &shutdown);
        supervisor.spawn("source", async { Err(failure("binlog gone")) });
        // A lane with writes left: it ignores the drain.
        supervisor.spawn("lane", std::future::pending());
        supervisor.spawn("checkpoint", async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(failure("fenced").at_once())
        });
        let ended = tokio::time::timeout(Duration::from_secs(5), supervisor.run_pipeline())
            .await
            .expect("the fence aborts the lane still running");
        let failure = ended.expect_err("a failure");
        assert_eq!(failure.stage, "source");
    }
}
