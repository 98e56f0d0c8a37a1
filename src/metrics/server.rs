//! The HTTP listener: `/metrics` (Prometheus text), `/healthz` (200 while the source makes
//! progress), `/readyz` (200 once the start position is fixed and write-back follows its
//! streams).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{metrics, Health};

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    state.health.refresh_gauges();
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
    if let Some(failure) = state.health.failure() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{failure}\n"));
    }
    if let Some(stalled) = state
        .health
        .stalled_for()
        .filter(|stalled| *stalled > state.health.stall_limit())
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "pipeline stalled: transactions read but none acknowledged for {}s, and DynamoDB is not pushing back\n",
                stalled.as_secs()
            ),
        );
    }
    // Alive while the reader reads or keeps trying to connect: an absent source is a metric
    // (rowcast_source_connected), not a reason to restart rowcast.
    let idle = Duration::from_millis(state.health.millis_since_alive());
    if !state.health.is_ready() || idle <= state.health.stall_limit() {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "binlog reader shows no sign of life (no event, no heartbeat, no connection attempt) for {}s\n",
                idle.as_secs()
            ),
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
    let pending = state.health.writeback_pending();
    if !pending.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "starting: write-back does not follow the streams of {} yet\n",
                pending.join(", ")
            ),
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

/// The routes of the metrics listener (`Health::set_stall_limit`: how long without a sign of
/// life before `/healthz` fails).
pub fn routes(health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { health })
}

/// Serves `routes` on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    routes: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, routes)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
