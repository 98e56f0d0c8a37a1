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
//! Every task belongs to the supervisor (`supervise.rs`): a definite failure anywhere stops the
//! daemon after draining, with the stage's name and cause. Shutdown (SIGTERM): the source stops
//! reading; each stage ends when its input closes, so in-flight writes drain and the final
//! checkpoint is committed; the HTTP listener stops last.

mod prepare;
mod supervise;
mod wiring;

use std::sync::Arc;

use mysql_async::Pool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use self::prepare::{checkpoint_store, preflight};
pub use self::supervise::{StageError, StageFailure, StageResult, Supervisor};
use crate::config::{Config, Problem};
use crate::control::CheckpointError;
use crate::dynamo::{self, SdkErrorInfo};
use crate::error::{Classify, ErrorClass};
use crate::metrics::{self, Health};
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
        }
    }
}

/// Runs the daemon until `shutdown` fires (then drains) or a stage fails (then drains and
/// returns the failure).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    let health = Arc::new(Health::default());
    let listener = TcpListener::bind(config.metrics_listen)
        .await
        .map_err(|source| AppError::Listen {
            addr: config.metrics_listen,
            source,
        })?;
    info!(listen = %config.metrics_listen, "serving /metrics, /healthz, /readyz");
    let client = dynamo::client(&config.dynamodb).await;
    let mut supervisor = Supervisor::new(health.clone(), &shutdown);
    let channels = wiring::Requests::new();
    let routes = metrics::routes(health.clone(), config.source.idle_timeout * 6)
        .merge(crate::api::routes(channels.control(&config, &client)));
    let finish = supervisor.finish_token();
    supervisor.spawn_background("http", async move {
        metrics::serve(listener, routes, finish)
            .await
            .map_err(|error| StageError {
                class: ErrorClass::Definite,
                cause: error.to_string(),
                at_once: false,
            })
    });
    let store = Arc::new(checkpoint_store(&config, &client));
    let pool = Pool::new(
        mysql_async::Opts::from_url(&config.source.url)
            .map_err(|e| AppError::Source(SourceError::Url(e)))?,
    );
    let prepared = prepare::prepare_with_retry(&config, &client, &store, &shutdown).await;
    match prepared {
        Ok(Some((start, initial))) => {
            let parts = wiring::Parts {
                config: &config,
                client: &client,
                pool: &pool,
                store,
                health: &health,
            };
            wiring::spawn(&mut supervisor, parts, channels, start, initial).await;
        }
        Ok(None) => {}
        Err(error) => {
            // Only the HTTP listener runs: it stops at once.
            let _ = supervisor.run().await;
            return Err(error);
        }
    }
    let outcome = supervisor.run().await;
    let _ = pool.disconnect().await;
    outcome.map_err(AppError::Stage)
}
