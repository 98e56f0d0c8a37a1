//! Wires the stages and supervises them.
//!
//! Start-up (`prepare.rs`): bind the HTTP listener (so probes answer at once), check the servers
//! (retrying while they are unreachable, stopping on a definite problem), fix the start position
//! (the checkpoint, or the binlog end persisted as the first checkpoint), then mark ready and run
//! the pipeline:
//!
//! ```text
//! source ──► merge ──► project ──► lanes ──► checkpoint
//!              ▲ │
//!  snapshot ◄──┘ └──► (refresh batches)        write-back consumers, HTTP API
//! ```
//!
//! A reload (`reload.rs`) drains the pipeline and starts it again with the new configuration,
//! in the same process.
//!
//! Every task belongs to the supervisor (`supervise.rs`): a definite failure anywhere stops the
//! daemon after draining, with the stage's name and cause. Shutdown (SIGTERM): the source stops
//! reading; each stage ends when its input closes, so in-flight writes drain and the final
//! checkpoint is committed; the HTTP listener stops last.

mod export;
mod prepare;
mod reload;
mod supervise;
mod wiring;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use self::export::{export, seed_checkpoint, ExportFailure, ExportRequest};
pub use self::prepare::{checkpoint_store, preflight};
pub use self::supervise::{StageError, StageFailure, StageResult, Supervisor};
use crate::config::{Config, Problem};
use crate::control::CheckpointError;
use crate::dynamo::{self, SdkErrorInfo};
use crate::error::{Classify, ErrorClass};
use crate::metrics::{self, Health};
use crate::pipeline::{ReloadAnswer, ReloadRequest};
use crate::source::SourceError;

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
    #[error("write-back positions")]
    Positions(#[from] crate::control::PositionError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Stage(#[from] StageFailure),
}

impl Classify for AppError {
    fn class(&self) -> ErrorClass {
        match self {
            AppError::Preflight(_) | AppError::Listen { .. } | AppError::Stage(_) => {
                ErrorClass::Definite
            }
            AppError::Source(e) => e.class(),
            AppError::Checkpoint(e) => e.class(),
            AppError::Dynamo(info) => info.class,
            AppError::Positions(e) => e.class(),
        }
    }
}

/// Runs the daemon until `shutdown` fires (then drains) or a stage fails (then drains and
/// returns the failure). A reload (`SIGHUP`, `POST /v1/reload`) with a valid, different
/// configuration drains the pipeline and starts it again with that configuration
/// (`reload.rs`).
pub async fn run(mut config: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    // First: a SIGHUP from now on asks for a reload rather than ending the process.
    let (reload_tx, mut reloads) = mpsc::channel(1);
    let sighup = tokio::spawn(reload::on_sighup(reload_tx.clone()));
    let health = Arc::new(Health::default());
    let bind = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Listen { addr, source })
    };
    let listener = bind(config.metrics_listen).await?;
    info!(listen = %config.metrics_listen, "serving /metrics, /healthz, /readyz");
    let api_listener = bind(config.api.listen).await?;
    info!(listen = %config.api.listen, token = config.api.token.is_some(), "serving the API (/v1/...)");
    let mut supervisor = Supervisor::new(health.clone(), &shutdown);
    let mut client = dynamo::client(&config.dynamodb).await;
    let mut channels = wiring::Requests::new();
    let control = crate::api::Control::new(
        channels.running(&config, &client),
        reload_tx.clone(),
        health.clone(),
    );
    health.set_stall_limit(config.source.idle_timeout, config.source.max_backoff);
    let routes = metrics::routes(health.clone());
    let api_routes = crate::api::routes(control.clone(), config.api.token.clone());
    for (name, listener, routes) in [
        ("http", listener, routes),
        ("api", api_listener, api_routes),
    ] {
        let finish = supervisor.finish_token();
        supervisor.spawn_background(name, async move {
            metrics::serve(listener, routes, finish)
                .await
                .map_err(|error| StageError {
                    class: ErrorClass::Definite,
                    cause: error.to_string(),
                    at_once: false,
                })
        });
    }
    let (carried, mut owner) = (Arc::new(crate::sink::unsure::Carried::default()), None);
    let outcome = loop {
        let generation = Generation {
            config: &config,
            client: &client,
            health: &health,
            shutdown: &shutdown,
            carried: &carried,
            owner: &mut owner,
        };
        let ended = generation
            .run(&mut supervisor, channels, &mut reloads, &control)
            .await;
        match ended {
            Ok(Some((next, next_channels))) if !shutdown.is_cancelled() => {
                info!("pipeline drained for the reload; starting it again from the checkpoint");
                config = next;
                health.set_stall_limit(config.source.idle_timeout, config.source.max_backoff);
                client = dynamo::client(&config.dynamodb).await;
                // The channels the API has sent to since the drain began, now with the client
                // of the new configuration.
                channels = next_channels;
                control.replace(channels.running(&config, &client));
                supervisor.next_generation();
                health.new_generation();
            }
            Ok(_) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    sighup.abort();
    // A reload asked for meanwhile is answered, so that its request does not hold the listener.
    reloads.close();
    while let Ok(request) = reloads.try_recv() {
        let answer = ReloadAnswer::Unavailable("rowcast is stopping".into());
        let _ = request.reply.send(answer);
    }
    let finished = supervisor.finish().await.map_err(AppError::Stage);
    outcome.and(finished)
}

/// One run of the pipeline with one configuration.
struct Generation<'a> {
    config: &'a Config,
    client: &'a aws_sdk_dynamodb::Client,
    health: &'a Arc<Health>,
    shutdown: &'a CancellationToken,
    /// Writes of unknown outcome a drained pipeline left, for the next (`sink::unsure`).
    carried: &'a Arc<crate::sink::unsure::Carried>,
    /// The checkpoint file this process owns, kept from one generation to the next while the
    /// path stays (see `prepare::own_checkpoint_file`).
    owner: &'a mut Option<prepare::OwnedFile>,
}

impl Generation<'_> {
    /// Prepares and runs the pipeline until it has drained; the configuration to start it
    /// again with when a reload drained it, and the channels of the API's requests to it.
    ///
    /// From the moment a reload is decided the API's backfill requests and fills go to those
    /// channels, which the next pipeline reads: the drained one would drop what it received
    /// while draining.
    async fn run(
        self,
        supervisor: &mut Supervisor,
        channels: wiring::Requests,
        reloads: &mut mpsc::Receiver<ReloadRequest>,
        control: &crate::api::Control,
    ) -> Result<Option<(Config, wiring::Requests)>, AppError> {
        let Generation {
            config,
            client,
            health,
            shutdown,
            carried,
            owner,
        } = self;
        if !prepare::own_checkpoint_file(config, shutdown, owner).await? {
            return Ok(None);
        }
        let store = Arc::new(checkpoint_store(config, client));
        let Some(prepared) = prepare::prepare_with_retry(config, client, &store, shutdown).await?
        else {
            return Ok(None);
        };
        take_up_kept(&store, carried).await;
        let pool = prepared.pool;
        let (catch_up, catch_up_asked) = tokio::sync::watch::channel(None);
        let parts = wiring::Parts {
            config,
            client,
            pool: &pool,
            store,
            health,
            carried,
            catch_up: catch_up_asked,
        };
        let (start, initial) = (prepared.start, prepared.checkpoint);
        wiring::spawn(supervisor, parts, channels, start, initial).await;
        let drain = supervisor.drain_token();
        let mut next: Option<(Config, wiring::Requests)> = None;
        let mut next_channels: Option<wiring::Requests> = None;
        // The check of a reload runs beside the supervision (it may wait on the servers); one at
        // a time.
        let mut checking: Option<reload::Check> = None;
        let outcome = {
            let pipeline = supervisor.run_pipeline();
            tokio::pin!(pipeline);
            loop {
                tokio::select! {
                    outcome = &mut pipeline => break outcome,
                    checked = reload::checked(&mut checking, drain.is_cancelled(), |read| {
                        // The API's requests go to the next pipeline from now on (before the
                        // reload's answer): the drained one would drop them. No view is
                        // backfilling for the next one yet, so none is coalesced meanwhile.
                        let channels = wiring::Requests::new();
                        control.replace(channels.running(read, client));
                        health.set_filling(Vec::new());
                        next_channels = Some(channels);
                    }) => {
                        checking = None;
                        if let Some(read) = checked {
                            next = next_channels.take().map(|channels| (read, channels));
                            drain_after_catch_up(config, &catch_up, (&drain, carried));
                        }
                    }
                    // While a reload drains, a request asked meanwhile waits in the channel for
                    // the next configuration's pipeline (which reads the files again); at a
                    // stop it is answered as the process ends.
                    Some(request) = reloads.recv(), if checking.is_none() && next.is_none() && !drain.is_cancelled() => {
                        checking = Some(reload::check(config.clone(), request));
                    }
                }
            }
        };
        if let Some(check) = checking {
            check.abandon();
        }
        let _ = pool.disconnect().await;
        outcome.map_err(AppError::Stage)?;
        Ok(next)
    }
}

/// At the process's first start: the items of writes of unknown outcome the process before
/// kept at its stop (`control::kept`), written again once the replay delivers them and their
/// time has come. An unreadable list is said and left (its late landings, if any, are not
/// written over).
async fn take_up_kept(
    store: &crate::control::CheckpointStore,
    carried: &crate::sink::unsure::Carried,
) {
    if !carried.first_start() {
        return;
    }
    match crate::control::kept::load(store).await {
        Ok(kept) if kept.is_empty() => {}
        Ok(kept) => {
            info!(
                items = kept.len(),
                "writes of unknown outcome the last stop kept: written again after the replay"
            );
            carried.suspect(kept);
            // Taken: this process saves what it still keeps at its own stop, and a crash or a
            // failure before that leaves no older list for a start after it.
            if let Err(error) = crate::control::kept::save(store, &[]).await {
                tracing::warn!(error = %crate::error::chain(&error), "cannot remove the list of writes of unknown outcome once read; the next start reads it again (harmless: guarded writes of the latest state)");
            }
        }
        Err(error) => tracing::warn!(
            error = %crate::error::chain(&error),
            "cannot read the writes of unknown outcome the last stop kept"
        ),
    }
}

/// Drains the pipeline for a reload once the write-back consumers have applied what their
/// streams hold (`reload::catch_up`; one consumer per DynamoDB table with write-back views).
/// Marks `carried` as drained for a reload at once (see `sink::unsure::Carried::reloading`).
fn drain_after_catch_up(
    config: &Config,
    catch_up: &tokio::sync::watch::Sender<crate::writeback::CatchUpAsk>,
    (drain, carried): (
        &tokio_util::sync::CancellationToken,
        &crate::sink::unsure::Carried,
    ),
) {
    carried.reloading();
    let tables: std::collections::BTreeSet<String> = config
        .views
        .iter()
        .filter(|v| v.writeback_enabled)
        .map(|v| v.table.to_string())
        .collect();
    let (catch_up, drain) = (catch_up.clone(), drain.clone());
    tokio::spawn(async move {
        reload::catch_up(&catch_up, tables.len()).await;
        drain.cancel();
    });
}
