//! The HTTP listener: `/metrics` (Prometheus text), `/healthz` (200 while the source makes
//! progress), `/readyz` (200 once the start position is fixed and write-back follows its
//! streams).

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Json;
use axum::Router;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::pipeline::FillRequest;
use crate::sink::dynamo::{classify_sdk_error, encode_key, from_attribute_value};
use crate::view::{ItemKey, View};
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
    /// Fill-on-miss reads for the binlog reader (`GET /v1/views/{view}/item`).
    pub fills: mpsc::Sender<FillRequest>,
    pub views: Arc<Vec<Arc<View>>>,
    pub client: aws_sdk_dynamodb::Client,
}

fn plain(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], text + "\n").into_response()
}

/// The item without rowcast's metadata, as plain JSON.
async fn get_item(
    client: &aws_sdk_dynamodb::Client,
    key: &ItemKey,
) -> Result<Option<serde_json::Value>, String> {
    let out = client
        .get_item()
        .table_name(&key.table)
        .set_key(Some(encode_key(key)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| classify_sdk_error(&e).to_string())?;
    Ok(out.item.map(|item| {
        serde_json::Value::Object(
            item.iter()
                .filter(|(name, _)| !name.starts_with('_'))
                .filter_map(|(name, value)| {
                    Some((name.clone(), from_attribute_value(value)?.to_json()))
                })
                .collect(),
        )
    }))
}

/// `GET /v1/views/{view}/item?pk=…&sk=…`: the item from DynamoDB, or read from the source
/// through the key templates, merged into the stream at its snapshot position, and returned.
async fn item(
    State(state): State<AppState>,
    Path(view): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let control = &state.control;
    let Some(spec) = control.views.iter().find(|v| v.name == view) else {
        return plain(StatusCode::NOT_FOUND, format!("no view named {view:?}"));
    };
    let Some(pk) = params.get("pk") else {
        return plain(
            StatusCode::BAD_REQUEST,
            "query parameter pk is required".into(),
        );
    };
    let mut columns = match spec.key.pk.parse_key(pk) {
        Ok(columns) => columns,
        Err(error) => return plain(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let sk = match (&spec.key.sk, params.get("sk")) {
        (Some(template), Some(sk)) => match template.parse_key(sk) {
            Ok(more) => {
                columns.extend(more);
                Some(sk.clone())
            }
            Err(error) => return plain(StatusCode::BAD_REQUEST, error.to_string()),
        },
        (Some(_), None) => {
            return plain(
                StatusCode::BAD_REQUEST,
                "query parameter sk is required by this view".into(),
            )
        }
        (None, Some(_)) => {
            return plain(StatusCode::BAD_REQUEST, "this view has no sort key".into())
        }
        (None, None) => None,
    };
    columns.sort();
    columns.dedup();
    if columns.windows(2).any(|w| w[0].0 == w[1].0) {
        return plain(
            StatusCode::BAD_REQUEST,
            "the key gives two values for one column".into(),
        );
    }
    let key = ItemKey {
        table: spec.table.clone(),
        pk_attribute: spec.key.pk_attribute.clone(),
        pk: pk.clone(),
        sk_attribute: spec.key.sk_attribute.clone(),
        sk,
    };
    match get_item(&control.client, &key).await {
        Ok(Some(found)) => return (StatusCode::OK, Json(found)).into_response(),
        Ok(None) => {}
        Err(error) => return plain(StatusCode::SERVICE_UNAVAILABLE, error),
    }
    let (reply, answer) = oneshot::channel();
    let request = FillRequest {
        view: view.clone(),
        columns,
        key: key.clone(),
        reply,
        restore: false,
    };
    if control.fills.send(request).await.is_err() {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the pipeline is stopping".into(),
        );
    }
    match tokio::time::timeout(Duration::from_secs(10), answer).await {
        Ok(Ok(Ok(true))) => {}
        Ok(Ok(Ok(false))) => return plain(StatusCode::NOT_FOUND, "no row has this key".into()),
        Ok(Ok(Err(error))) => return plain(StatusCode::SERVICE_UNAVAILABLE, error),
        _ => {
            return plain(
                StatusCode::GATEWAY_TIMEOUT,
                "the source did not answer in time".into(),
            )
        }
    }
    // The read is merged into the stream; wait for its write (or a newer one) to land.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        match get_item(&control.client, &key).await {
            Ok(Some(found)) => return (StatusCode::OK, Json(found)).into_response(),
            Ok(None) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(error) => return plain(StatusCode::SERVICE_UNAVAILABLE, error),
        }
    }
    plain(
        StatusCode::GATEWAY_TIMEOUT,
        "the item was not written in time".into(),
    )
}

async fn snapshot(State(state): State<AppState>, Path(view): Path<String>) -> impl IntoResponse {
    if !state.control.views.iter().any(|v| v.name == view) {
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
        .route("/v1/views/{view}/item", get(item))
        .with_state(AppState {
            health,
            stall_limit,
            control,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
