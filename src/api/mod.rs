//! The HTTP API: reads and commands for the running pipeline. `GET /v1/views/{view}/item` (fill
//! on miss: the item from DynamoDB, or read from the source through the key templates, merged
//! into the stream at its snapshot position, and returned) and `POST /v1/views/{view}/snapshot`
//! (backfill a view again) and `POST /v1/views/{view}/repair` (one item read again from the
//! source, or removed when no row makes it: `rowcast verify --repair`), `GET /v1/writeback`
//! (how far the write-back consumers have read: `rowcast verify`), and `POST /v1/reload`
//! (read the configuration again and apply it, as `SIGHUP` does).
//!
//! It has a listener of its own (`[api] listen`, loopback by default), apart from the scraped
//! metrics port: reading any item and restarting backfills is not for whoever can scrape. With
//! `[api] token_file`, every request must carry `Authorization: Bearer <token>` (compared in
//! constant time); 401 otherwise.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot};

use crate::config::Secret;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::dynamo::{classify_sdk_error, encode_key, from_attribute_value, VIEW_ATTRIBUTE};
use crate::pipeline::{FillRequest, ReloadAnswer, ReloadRequest};
use crate::view::{ItemKey, View};

/// The running pipeline as the API reaches it; replaced when a reload starts the pipeline again.
#[derive(Clone)]
pub struct Running {
    /// Views to backfill again (`POST /v1/views/{view}/snapshot`).
    pub snapshots: mpsc::Sender<String>,
    /// Fill-on-miss reads for the binlog reader (`GET /v1/views/{view}/item`).
    pub fills: mpsc::Sender<FillRequest>,
    pub views: Arc<Vec<Arc<View>>>,
    pub client: aws_sdk_dynamodb::Client,
}

/// Requests the HTTP API passes to the daemon: to the running pipeline, and reloads.
#[derive(Clone)]
pub struct Control {
    running: Arc<RwLock<Running>>,
    reloads: mpsc::Sender<ReloadRequest>,
    /// Which views are backfilling (a snapshot request for one of them is coalesced).
    health: Arc<crate::metrics::Health>,
}

impl Control {
    pub fn new(
        running: Running,
        reloads: mpsc::Sender<ReloadRequest>,
        health: Arc<crate::metrics::Health>,
    ) -> Self {
        Control {
            running: Arc::new(RwLock::new(running)),
            reloads,
            health,
        }
    }

    /// The pipeline requests go to from now on (after a reload).
    pub fn replace(&self, running: Running) {
        if let Ok(mut current) = self.running.write() {
            *current = running;
        }
    }

    fn running(&self) -> Running {
        match self.running.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn plain(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], text + "\n").into_response()
}

/// The item at `key` as stored (consistent read).
async fn stored_item(
    client: &aws_sdk_dynamodb::Client,
    key: &ItemKey,
) -> Result<Option<HashMap<String, AttributeValue>>, String> {
    let out = client
        .get_item()
        .table_name(&*key.table)
        .set_key(Some(encode_key(key)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| classify_sdk_error(&e).to_string())?;
    Ok(out.item)
}

/// Why the item stored at a key of `view` is not `view`'s to answer with or repair: another
/// view's (its `_view`; two views of one table can have keys one's templates parse as the
/// other's: `O#{id}` reads `O#5#LINE#1` with `id = 5#LINE#1`). Items that name no view (written
/// before `_view` existed) are taken as `rowcast verify` takes them.
fn not_the_views(item: &HashMap<String, AttributeValue>, view: &str) -> Option<String> {
    match item.get(VIEW_ATTRIBUTE) {
        Some(AttributeValue::S(owner)) if owner != view => Some(format!(
            "the item at this key is view {owner:?}'s, not {view:?}'s"
        )),
        _ => None,
    }
}

/// The item without rowcast's metadata, as plain JSON.
fn plain_item(item: &HashMap<String, AttributeValue>) -> serde_json::Value {
    serde_json::Value::Object(
        item.iter()
            .filter(|(name, _)| !name.starts_with('_'))
            .filter_map(|(name, value)| {
                Some((name.clone(), from_attribute_value(value)?.to_json()))
            })
            .collect(),
    )
}

/// The item of `view` at `key`, as plain JSON; `Err` is the answer (409: another view's item;
/// 503: DynamoDB).
async fn get_item(
    client: &aws_sdk_dynamodb::Client,
    view: &str,
    key: &ItemKey,
) -> Result<Option<serde_json::Value>, Response> {
    match stored_item(client, key).await {
        Ok(Some(item)) => match not_the_views(&item, view) {
            Some(reason) => Err(plain(StatusCode::CONFLICT, reason)),
            None => Ok(Some(plain_item(&item))),
        },
        Ok(None) => Ok(None),
        Err(error) => Err(plain(StatusCode::SERVICE_UNAVAILABLE, error)),
    }
}

/// `GET /v1/views/{view}/item?pk=…&sk=…`: the item from DynamoDB, or read from the source
/// through the key templates, merged into the stream at its snapshot position, and returned.
async fn item(
    State(control): State<Control>,
    Path(view): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let control = control.running();
    let key = match requested_key(&control, &view, &params) {
        Ok(parsed) => parsed,
        Err((status, reason)) => return plain(status, reason),
    };
    match get_item(&control.client, &view, &key).await {
        Ok(Some(found)) => return (StatusCode::OK, Json(found)).into_response(),
        Ok(None) => {}
        Err(response) => return response,
    }
    // The read is merged into the stream; wait for its write (or a newer one) to land. A row
    // deleted (or moved out of the filter) right after the read never makes the item appear:
    // the rows are read again, and then "no row" is the answer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if let Err(response) = fill(&control, &view, key.clone(), false).await {
            return response;
        }
        let attempt = (tokio::time::Instant::now() + Duration::from_secs(2)).min(deadline);
        // 5 ms, doubling up to 200 ms: a fill usually lands within milliseconds, and one that
        // does not (a halted view, an item refused) must not cost a read every 5 ms.
        let mut pause = Duration::from_millis(5);
        while tokio::time::Instant::now() < attempt {
            match get_item(&control.client, &view, &key).await {
                Ok(Some(found)) => return (StatusCode::OK, Json(found)).into_response(),
                Ok(None) => tokio::time::sleep(pause).await,
                Err(response) => return response,
            }
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
    plain(
        StatusCode::GATEWAY_TIMEOUT,
        "the item was not written in time".into(),
    )
}

/// The item key a request names (`pk`, `sk`) in `view`, checked to parse through the view's
/// templates; `Err` is the answer: 404 for an unknown view, 400 for a key that does not parse.
fn requested_key(
    control: &Running,
    view: &str,
    params: &HashMap<String, String>,
) -> Result<ItemKey, (StatusCode, String)> {
    let Some(spec) = control.views.iter().find(|v| v.name == view) else {
        return Err((StatusCode::NOT_FOUND, format!("no view named {view:?}")));
    };
    let Some(pk) = params.get("pk") else {
        let reason = "query parameter pk is required".to_string();
        return Err((StatusCode::BAD_REQUEST, reason));
    };
    crate::view::parse_item_key(spec, pk, params.get("sk").map(String::as_str))
        .map_err(|reason| (StatusCode::BAD_REQUEST, reason))
}

/// Asks the snapshot worker to read the rows behind `key` and merge them; whether a row makes
/// the item. `Err` is the answer when no row makes the item (unless `repair`: the item is then
/// removed, `Ok(false)`) or the read failed.
async fn fill(control: &Running, view: &str, key: ItemKey, repair: bool) -> Result<bool, Response> {
    let (reply, answer) = oneshot::channel();
    let request = FillRequest {
        repair,
        view: view.to_string(),
        key,
        reply,
        restore: None,
    };
    // Bounded: when the queue of fills is full the caller hears so at once (and may retry),
    // rather than every request waiting on the source.
    match control.fills.try_send(request) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            let reason = "too many fills queued; try again".into();
            return Err(plain(StatusCode::SERVICE_UNAVAILABLE, reason));
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            let reason = "the pipeline is stopping".into();
            return Err(plain(StatusCode::SERVICE_UNAVAILABLE, reason));
        }
    }
    match tokio::time::timeout(Duration::from_secs(10), answer).await {
        Ok(Ok(Ok(true))) => Ok(true),
        Ok(Ok(Ok(false))) if repair => Ok(false),
        Ok(Ok(Ok(false))) => Err(plain(StatusCode::NOT_FOUND, "no row has this key".into())),
        Ok(Ok(Err(error))) => Err(plain(StatusCode::SERVICE_UNAVAILABLE, error)),
        _ => {
            let reason = "the source did not answer in time".into();
            Err(plain(StatusCode::GATEWAY_TIMEOUT, reason))
        }
    }
}

/// `POST /v1/views/{view}/repair?pk=…&sk=…` (`rowcast verify --repair`): the item is read
/// again from the source and merged into the stream at the read's position, as a fill is; when
/// no row makes it, it is removed there. 200 once merged (the write follows in the stream):
/// `merged`, or [`crate::pipeline::REPAIR_REMOVED`].
async fn repair(
    State(control): State<Control>,
    Path(view): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let control = control.running();
    let key = match requested_key(&control, &view, &params) {
        Ok(parsed) => parsed,
        Err((status, reason)) => return plain(status, reason),
    };
    // An application's change to a write-back view's item may be on its way to SQL: writing
    // the SQL row over it would undo it. Never repaired (as `rowcast verify --repair` says).
    if control
        .views
        .iter()
        .any(|v| v.name == view && v.writeback_enabled)
    {
        let reason = "a write-back view's items are not repaired from SQL (an application's change may be on its way to SQL)";
        return plain(StatusCode::CONFLICT, reason.into());
    }
    // A repair may remove the item at the key: never another view's.
    // (Before 2026-12-05 a key of another view that this view's templates parse removed that
    // view's item: found by a review.)
    match stored_item(&control.client, &key).await {
        Ok(Some(item)) => {
            if let Some(reason) = not_the_views(&item, &view) {
                return plain(StatusCode::CONFLICT, reason);
            }
        }
        Ok(None) => {}
        Err(error) => return plain(StatusCode::SERVICE_UNAVAILABLE, error),
    }
    match fill(&control, &view, key, true).await {
        Ok(true) => plain(StatusCode::OK, "merged".into()),
        Ok(false) => plain(StatusCode::OK, crate::pipeline::REPAIR_REMOVED.into()),
        Err(response) => response,
    }
}

/// `POST /v1/views/{view}/snapshot`: 202 when the backfill is queued; 200 when the view is
/// backfilling already and not halted (coalesced: that backfill reads every row anyway); 503
/// when the queue is full.
async fn snapshot(State(control): State<Control>, Path(view): Path<String>) -> impl IntoResponse {
    let filling = control.health.filling();
    let control = control.running();
    if !control.views.iter().any(|v| v.name == view) {
        return (StatusCode::NOT_FOUND, format!("no view named {view:?}\n"));
    }
    // A halted view's running pass does not lift its halt (only a pass's first chunk rebuilds
    // a view): asked for again — the remedy for a halt — it begins a new pass.
    let halted = crate::metrics::metrics()
        .view_halted
        .with_label_values(&[&view])
        .get()
        == 1;
    if filling.contains(&view) && !halted {
        return (
            StatusCode::OK,
            format!("{view} is backfilling already; request coalesced\n"),
        );
    }
    match control.snapshots.try_send(view.clone()) {
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

/// `POST /v1/reload`: the configuration read again and checked (the files, then the servers:
/// the source's settings, the DynamoDB tables) before anything stops; 200 "unchanged", 202 when
/// it is being applied (what changed), 400 with every problem when it is not applied (the running
/// configuration stays), 503 when the servers could not be reached to check it.
async fn reload(State(control): State<Control>) -> Response {
    let (reply, answer) = oneshot::channel();
    if control.reloads.try_send(ReloadRequest { reply }).is_err() {
        let reason = "a reload is already pending; try again".into();
        return plain(StatusCode::SERVICE_UNAVAILABLE, reason);
    }
    // The checks take at most 30 s, but a pipeline that is starting (servers unreachable) looks
    // at reloads only once it runs.
    let Ok(answer) = tokio::time::timeout(Duration::from_secs(60), answer).await else {
        let reason = "no answer in 60 s (is the pipeline starting?); the reload stays queued";
        return plain(StatusCode::SERVICE_UNAVAILABLE, reason.into());
    };
    match answer {
        Ok(ReloadAnswer::Unchanged) => plain(StatusCode::OK, "unchanged".into()),
        Ok(ReloadAnswer::Applying(what)) => plain(StatusCode::ACCEPTED, what),
        Ok(ReloadAnswer::Rejected(problems)) => plain(StatusCode::BAD_REQUEST, problems),
        Ok(ReloadAnswer::Unavailable(reason)) => plain(StatusCode::SERVICE_UNAVAILABLE, reason),
        Err(_) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "rowcast is stopping".into(),
        ),
    }
}

/// Equal in time whatever the inputs: no early exit at the first differing byte, so the time
/// of a refusal says nothing about how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = u8::from(a.len() != b.len());
    for (i, y) in b.iter().enumerate() {
        difference |= a.get(i).copied().unwrap_or(!y) ^ y;
    }
    difference == 0
}

/// 401 unless the request carries the configured bearer token.
async fn authorize(State(token): State<Arc<Secret>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        // The scheme's name is case-insensitive (RFC 7235).
        .and_then(|value| {
            let scheme = value.get(..7)?;
            scheme.eq_ignore_ascii_case("Bearer ").then(|| &value[7..])
        })
        .unwrap_or_default();
    if constant_time_eq(presented.as_bytes(), token.expose().as_bytes()) {
        next.run(request).await
    } else {
        let mut response = plain(
            StatusCode::UNAUTHORIZED,
            "a bearer token is required ([api] token_file)".into(),
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
        response
    }
}

/// How far the write-back consumers have read: `{"now_ms": …, "reached_ms": {"<table>": …}}`,
/// both in milliseconds of the daemon's monotonic clock (since it started: comparable with
/// each other only). A table's `reached_ms` is a time before which every
/// application change in its stream was handled (see `metrics::Health::writeback_reached`);
/// a table not listed has a shard not read to its end yet. `verify` waits for it.
async fn writeback(State(control): State<Control>) -> Response {
    let body = serde_json::json!({
        "now_ms": crate::util::monotonic_millis(),
        "reached_ms": control.health.writeback_reached(),
    });
    (StatusCode::OK, Json(body)).into_response()
}

/// The API's routes; with `token`, only for requests that carry it.
pub fn routes(control: Control, token: Option<Secret>) -> Router {
    let router = Router::new()
        .route("/v1/reload", post(reload))
        .route("/v1/views/{view}/snapshot", post(snapshot))
        .route("/v1/views/{view}/item", get(item))
        .route("/v1/views/{view}/repair", post(repair))
        .route("/v1/writeback", get(writeback))
        .with_state(control);
    match token {
        Some(token) => router.layer(axum::middleware::from_fn_with_state(
            Arc::new(token),
            authorize,
        )),
        None => router,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_compare_whole() {
        use super::constant_time_eq as eq;
        assert!(eq(b"s3cret", b"s3cret"));
        assert!(!eq(b"s3cret", b"s3cre"));
        assert!(!eq(b"s3cre", b"s3cret"));
        assert!(!eq(b"s3creT", b"s3cret"));
        assert!(!eq(b"", b"s3cret"));
    }
}
