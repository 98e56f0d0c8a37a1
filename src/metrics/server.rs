//! The HTTP listener: `/metrics` (Prometheus text), `/healthz` (200 while the source makes
//! progress), `/readyz` (200 once the start position is fixed).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{metrics, Health};

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    stall_limit: Duration,
    control: Control,
}

/// Requests the HTTP API passes to the running pipeline.
#[derive(Clone)]
pub struct Control {
    /// Views to backfill again (`POST /v1/views/{view}/snapshot`).
    pub snapshots: mpsc::Sender<String>,
    pub views: Arc<Vec<String>>,
}

async fn snapshot(State(state): State<AppState>, Path(view): Path<String>) -> impl IntoResponse {
    if !state.control.views.contains(&view) {
        return (StatusCode::NOT_FOUND, format!("no view named {view:?}\n"));
    }
    match state.control.snapshots.try_send(view.clone()) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            format!("backfill of {view} requested\n"),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many pending requests; try again\n".to_string(),
        ),
    }
}

async fn metrics_handler() -> impl IntoResponse {
    let mut buffer = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(error) = encoder.encode(&metrics().registry.gather(), &mut buffer) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            error.to_string().into_bytes(),
        );
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        buffer,
    )
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let idle = Duration::from_millis(state.health.millis_since_progress());
    if !state.health.is_ready() || idle <= state.stall_limit {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no binlog progress for {}s\n", idle.as_secs()),
        )
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if !state.health.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: start position not fixed yet\n".to_string(),
        );
    }
    let filling = state.health.filling();
    if filling.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::OK,
            format!("ready; backfilling: {}\n", filling.join(", ")),
        )
    }
}

/// Serves until `shutdown` fires. `stall_limit`: how long without binlog progress (events or
/// heartbeats) before `/healthz` fails.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    stall_limit: Duration,
    control: Control,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/views/{view}/snapshot", post(snapshot))
        .with_state(AppState {
            health,
            stall_limit,
            control,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
