//! `rowcast verify`: are a view's items what the source makes? While the daemon keeps streaming.
//!
//! 1. **Digests.** In one consistent snapshot of the source (position P), every row of the view
//!    is read in key-ordered chunks and projected as a backfill would (joins read in the same
//!    snapshot); each item's hash goes into the digest of its key's bucket (`digest.rs`). Once
//!    the daemon's checkpoint has passed P, the view's items are read from DynamoDB with
//!    parallel Scan segments into digests of their own. Equal buckets cost nothing more.
//! 2. **Narrowing.** Differing buckets are read again on both sides (the source in the same
//!    snapshot), a bounded number of items at a time, keeping per key only its hash: the keys
//!    whose hashes differ are the candidates.
//! 3. **Settling** (no false positives). A candidate may only be a change made after P. It is
//!    checked in rounds: a fresh snapshot at P_r, the daemon's checkpoint waited for until it
//!    passes P_r, then the item read (strongly consistent). Equal: not a difference. Different,
//!    with the item unchanged (same version) since the previous round's read, which came before
//!    P_r: the item was last written before P_r and every change up to P_r has been written
//!    since, so it should equal the source at P_r: a difference. An absent item has no version
//!    to compare; it must be found absent, with the source making it, in three reads in a row.
//!    A key still changing after the last round is counted as unsettled, never reported.
//! 4. **Repair** goes through the running daemon (`POST /v1/views/{view}/repair`): the item is
//!    read again from the source and merged into the stream at its snapshot position (a guarded
//!    write: it never overwrites a newer version), or removed there when no row makes it. The
//!    repaired keys are then settled again.
//!
//! Memory is bounded: digests are a fixed number of buckets; narrowing holds at most
//! [`NARROW_ITEMS`] keys and hashes at a time; candidates settle [`SETTLE_BATCH`] at a time.

pub mod cleanup;
pub mod continuous;
pub mod digest;
pub mod source;
pub mod table;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use futures_util::future::try_join_all;
use mysql_async::Pool;

use self::digest::{bucket_of, differing_attributes, item_hash, Digests};
use self::table::Stored;
use crate::control::checkpoint::{CheckpointError, CheckpointStore};
use crate::dynamo::{remove_marked, RemovalGuard, SdkErrorInfo};
use crate::pipeline::{position_before, FillRequest, Position};
use crate::sql::{begin_snapshot, end_snapshot, SqlError, TableCache};
use crate::view::project::Item;
use crate::view::spec::FillMode;
use crate::view::{parse_item_key, ItemKey, View};

/// Buckets of keys per view.
pub const BUCKETS: usize = 16_384;
/// Keys (with their hashes) held at most while narrowing differing buckets down.
pub const NARROW_ITEMS: u64 = 100_000;
/// Candidates settled together.
pub const SETTLE_BATCH: usize = 1_000;
/// Settling rounds before a key still changing is given up on (unsettled).
const ROUNDS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("source")]
    Sql(#[from] SqlError),
    #[error("DynamoDB table {table}: {info}")]
    Dynamo { table: String, info: SdkErrorInfo },
    #[error("reading the daemon's checkpoint")]
    Checkpoint(#[from] CheckpointError),
    #[error("repair of {key} through {via}: {reason}")]
    Repair {
        key: String,
        via: String,
        reason: String,
    },
}

/// A pace of at most so many items per second (none: as fast as the services answer), shared
/// by every reader of one side.
pub struct Pacer {
    per_second: Option<f64>,
    start: Instant,
    taken: AtomicU64,
}

impl Pacer {
    pub fn new(per_second: Option<u32>) -> Self {
        Pacer {
            per_second: per_second.filter(|&r| r > 0).map(f64::from),
            start: Instant::now(),
            taken: AtomicU64::new(0),
        }
    }

    /// Waits until `n` more items are within the pace.
    pub async fn take(&self, n: u64) {
        let Some(rate) = self.per_second else {
            return;
        };
        let taken = self.taken.fetch_add(n, Ordering::Relaxed) + n;
        let due = self.start + Duration::from_secs_f64(taken as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
    }
}

/// What to verify and how.
pub struct Options {
    /// Scan segments read in parallel.
    pub segments: i32,
    /// Items per second on each side (`None`: no limit).
    pub rate: Option<u32>,
    /// Rows per source chunk.
    pub chunk_rows: usize,
    /// How long to wait for the daemon's checkpoint to pass a comparison point.
    pub checkpoint_wait: Duration,
    /// Where repairs go (`None`: no repair).
    pub repair_via: Option<RepairVia>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Missing,
    Extra,
    Different,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Different => "different",
        }
    }
}

/// One difference: the key, what kind, the attributes that differ, both sides.
#[derive(Debug, Clone)]
pub struct Difference {
    pub key: ItemKey,
    pub kind: Kind,
    pub attributes: Vec<String>,
    pub expected: Option<Item>,
    pub actual: Option<Item>,
    /// The stored item's version, when it has one.
    pub version: Option<u128>,
}

/// One view's result.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub checked: u64,
    pub missing: u64,
    pub extra: u64,
    pub different: u64,
    pub repaired: u64,
    /// Keys that kept changing through every settling round (not reported).
    pub unsettled: u64,
    /// The daemon's checkpoint did not pass a comparison point in time: the differences may
    /// include changes it has not written yet.
    pub daemon_behind: bool,
}

/// The services a verification reads.
pub struct Services<'a> {
    pub pool: &'a Pool,
    pub client: &'a Client,
    pub checkpoint: &'a CheckpointStore,
}

fn dynamo_error(view: &View) -> impl Fn(SdkErrorInfo) -> VerifyError + '_ {
    move |info| VerifyError::Dynamo {
        table: view.table.clone(),
        info,
    }
}

/// Waits until the daemon's checkpoint is at or past `position`; `false` if it is not within
/// `timeout`.
async fn checkpoint_passes(
    store: &CheckpointStore,
    position: &Position,
    timeout: Duration,
) -> Result<bool, VerifyError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(checkpoint) = store.load().await? {
            if !position_before(&checkpoint.position, position) {
                return Ok(true);
            }
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Verifies one view: every difference goes to `report` once settled; the summary at the end.
pub async fn verify_view(
    services: &Services<'_>,
    view: &Arc<View>,
    options: &Options,
    report: &mut (dyn FnMut(&Difference) + Send),
) -> Result<Summary, VerifyError> {
    let mut summary = Summary::default();
    let candidates = if view.fill == FillMode::Lazy {
        // Items exist only where asked for: every stored one is a candidate, none is missing.
        stored_keys(services, view, options).await?
    } else {
        candidates(services, view, options, &mut summary).await?
    };
    tracing::info!(view = %view.name, candidates = candidates.len(), "keys to check again");
    let mut found = Vec::new();
    for batch in candidates.chunks(SETTLE_BATCH) {
        let settled = settle(services, view, options, batch.to_vec(), &mut summary).await?;
        found.extend(
            settled
                .into_iter()
                .filter(|d| view.fill != FillMode::Lazy || d.kind != Kind::Missing),
        );
    }
    if view.fill == FillMode::Lazy {
        summary.checked = candidates.len() as u64;
    }
    for difference in &found {
        report(difference);
        match difference.kind {
            Kind::Missing => summary.missing += 1,
            Kind::Extra => summary.extra += 1,
            Kind::Different => summary.different += 1,
        }
    }
    summary.checked += summary.extra;
    if let Some(via) = &options.repair_via {
        summary.repaired = repair(services, view, options, via, &found, &mut summary).await?;
    }
    Ok(summary)
}

/// The keys of every stored item of the view (a lazy view's, which are few by design).
async fn stored_keys(
    services: &Services<'_>,
    view: &View,
    options: &Options,
) -> Result<Vec<ItemKey>, VerifyError> {
    let pacer = Pacer::new(options.rate);
    let mut parts: Vec<Vec<ItemKey>> = vec![Vec::new(); options.segments.max(1) as usize];
    let total = parts.len() as i32;
    try_join_all(parts.iter_mut().enumerate().map(|(i, keys)| {
        let pacer = &pacer;
        async move {
            let mut visit = |key: ItemKey, _: Stored| keys.push(key);
            table::scan_segment(services.client, view, (i as i32, total), pacer, &mut visit).await
        }
    }))
    .await
    .map_err(dynamo_error(view))?;
    Ok(parts.concat())
}

/// Digests of both sides, then the keys of the buckets that differ whose hashes differ.
async fn candidates(
    services: &Services<'_>,
    view: &View,
    options: &Options,
    summary: &mut Summary,
) -> Result<Vec<ItemKey>, VerifyError> {
    let mut tables = TableCache::new(services.pool.clone());
    let table = tables.get(&view.source).await?;
    let mut conn = services.pool.get_conn().await.map_err(SqlError::Connect)?;
    let position = begin_snapshot(&mut conn).await?;
    let result = async {
        let pacer = Pacer::new(options.rate);
        let mut source = Digests::new(BUCKETS);
        let mut add = |key: ItemKey, item: Item| source.add(&key, item_hash(&item));
        let chunk = options.chunk_rows;
        source::each_item(
            &mut conn,
            &mut tables,
            view,
            &table,
            chunk,
            &pacer,
            &mut add,
        )
        .await?;
        summary.checked = source.items();
        // Fewer candidates when the items are read once the daemon has written up to P.
        if !checkpoint_passes(services.checkpoint, &position, options.checkpoint_wait).await? {
            summary.daemon_behind = true;
        }
        let stored = scan_digests(services, view, options).await?;
        let differing = source.differing(&stored);
        let mut out = Vec::new();
        for group in groups(&differing) {
            let source_hashes = {
                let mut hashes = HashMap::new();
                let mut keep = |key: ItemKey, item: Item| {
                    if group.contains(&bucket_of(&key, BUCKETS)) {
                        hashes.insert(key, item_hash(&item));
                    }
                };
                let pacer = Pacer::new(options.rate);
                source::each_item(
                    &mut conn,
                    &mut tables,
                    view,
                    &table,
                    chunk,
                    &pacer,
                    &mut keep,
                )
                .await?;
                hashes
            };
            let stored_hashes = scan_hashes(services, view, options, &group).await?;
            for (key, hash) in &source_hashes {
                if stored_hashes.get(key) != Some(hash) {
                    tracing::debug!(view = %view.name, %key, source = hash, stored = ?stored_hashes.get(key), "candidate");
                    out.push(key.clone());
                }
            }
            out.extend(
                stored_hashes
                    .into_keys()
                    .filter(|key| !source_hashes.contains_key(key)),
            );
        }
        Ok::<_, VerifyError>(out)
    }
    .await;
    end_snapshot(&mut conn).await;
    result
}

/// Differing buckets in groups of at most [`NARROW_ITEMS`] items (a bucket larger than that
/// is a group of its own).
fn groups(differing: &[(usize, u64)]) -> Vec<HashSet<usize>> {
    let mut out = Vec::new();
    let mut group = HashSet::new();
    let mut items = 0;
    for &(bucket, count) in differing {
        if !group.is_empty() && items + count > NARROW_ITEMS {
            out.push(std::mem::take(&mut group));
            items = 0;
        }
        group.insert(bucket);
        items += count;
    }
    if !group.is_empty() {
        out.push(group);
    }
    out
}

async fn scan_digests(
    services: &Services<'_>,
    view: &View,
    options: &Options,
) -> Result<Digests, VerifyError> {
    let pacer = Pacer::new(options.rate);
    let mut parts = vec![Digests::new(BUCKETS); options.segments.max(1) as usize];
    let total = parts.len() as i32;
    try_join_all(parts.iter_mut().enumerate().map(|(i, digests)| {
        let pacer = &pacer;
        async move {
            let mut add = |key: ItemKey, stored: Stored| digests.add(&key, item_hash(&stored.item));
            table::scan_segment(services.client, view, (i as i32, total), pacer, &mut add).await
        }
    }))
    .await
    .map_err(dynamo_error(view))?;
    let mut all = Digests::new(BUCKETS);
    for part in &parts {
        all.merge(part);
    }
    Ok(all)
}

async fn scan_hashes(
    services: &Services<'_>,
    view: &View,
    options: &Options,
    group: &HashSet<usize>,
) -> Result<HashMap<ItemKey, u128>, VerifyError> {
    let pacer = Pacer::new(options.rate);
    let mut parts: Vec<HashMap<ItemKey, u128>> =
        vec![HashMap::new(); options.segments.max(1) as usize];
    let total = parts.len() as i32;
    try_join_all(parts.iter_mut().enumerate().map(|(i, hashes)| {
        let pacer = &pacer;
        async move {
            let mut keep = |key: ItemKey, stored: Stored| {
                if group.contains(&bucket_of(&key, BUCKETS)) {
                    hashes.insert(key, item_hash(&stored.item));
                }
            };
            table::scan_segment(services.client, view, (i as i32, total), pacer, &mut keep).await
        }
    }))
    .await
    .map_err(dynamo_error(view))?;
    Ok(parts.into_iter().flatten().collect())
}

/// What a settling round saw of one key in DynamoDB: absent, or present at a version.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Absent,
    At(Option<u128>),
}

struct Pending {
    key: ItemKey,
    previous: Option<Seen>,
    absent_reads: u8,
}

/// The candidates that are differences (see the module's doc, step 3).
async fn settle(
    services: &Services<'_>,
    view: &View,
    options: &Options,
    keys: Vec<ItemKey>,
    summary: &mut Summary,
) -> Result<Vec<Difference>, VerifyError> {
    let mut tables = TableCache::new(services.pool.clone());
    let table = tables.get(&view.source).await?;
    let mut pending: Vec<Pending> = keys
        .into_iter()
        .map(|key| Pending {
            key,
            previous: None,
            absent_reads: 0,
        })
        .collect();
    let mut found = Vec::new();
    for _ in 0..ROUNDS {
        if pending.is_empty() {
            break;
        }
        let keys: Vec<ItemKey> = pending.iter().map(|p| p.key.clone()).collect();
        let mut conn = services.pool.get_conn().await.map_err(SqlError::Connect)?;
        let position = begin_snapshot(&mut conn).await?;
        let expected = source::items_at(&mut conn, &mut tables, view, &table, &keys).await;
        end_snapshot(&mut conn).await;
        let mut expected = expected?;
        let passed =
            checkpoint_passes(services.checkpoint, &position, options.checkpoint_wait).await?;
        let mut stored = table::get_items(services.client, view, &keys)
            .await
            .map_err(dynamo_error(view))?;
        let mut next = Vec::new();
        for mut entry in pending {
            let expected = expected.remove(&entry.key);
            let actual = stored.remove(&entry.key);
            let equal = match (&expected, &actual) {
                (None, None) => true,
                (Some(e), Some(a)) => item_hash(e) == item_hash(&a.item),
                _ => false,
            };
            if equal {
                continue;
            }
            let seen = match &actual {
                Some(stored) => Seen::At(stored.version),
                None => Seen::Absent,
            };
            let unchanged = entry.previous.as_ref() == Some(&seen);
            entry.absent_reads = if seen == Seen::Absent {
                entry.absent_reads + 1
            } else {
                0
            };
            let confirmed = !passed
                || match seen {
                    Seen::At(_) => unchanged,
                    Seen::Absent => entry.absent_reads >= 3,
                };
            if !passed {
                summary.daemon_behind = true;
            }
            if confirmed {
                let version = actual.as_ref().and_then(|s| s.version);
                let mut found_one = difference(entry.key, expected, actual.map(|s| s.item));
                found_one.version = version;
                found.push(found_one);
            } else {
                entry.previous = Some(seen);
                next.push(entry);
            }
        }
        pending = next;
    }
    summary.unsettled += pending.len() as u64;
    Ok(found)
}

fn difference(key: ItemKey, expected: Option<Item>, actual: Option<Item>) -> Difference {
    let (kind, attributes) = match (&expected, &actual) {
        (Some(e), Some(a)) => (Kind::Different, differing_attributes(e, a)),
        (Some(_), None) => (Kind::Missing, Vec::new()),
        _ => (Kind::Extra, Vec::new()),
    };
    Difference {
        key,
        kind,
        attributes,
        expected,
        actual,
        version: None,
    }
}

/// Where repairs go: the running daemon's API listener (`rowcast verify --repair`), or, inside
/// the daemon (`[verify] repair = true`), the snapshot worker's queue of fills.
#[derive(Clone)]
pub enum RepairVia {
    Http(SocketAddr),
    Fills(tokio::sync::mpsc::Sender<FillRequest>),
}

impl std::fmt::Display for RepairVia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepairVia::Http(addr) => write!(f, "the daemon on {addr}"),
            RepairVia::Fills(_) => write!(f, "the snapshot worker"),
        }
    }
}

/// One item through the daemon: read again from the source and merged at the read's position
/// (or removed there when no row makes it).
async fn repair_one(via: &RepairVia, view: &View, key: &ItemKey) -> Result<(), String> {
    match via {
        RepairVia::Http(addr) => {
            use crate::util::http::{query_value, request};
            let mut path = format!("/v1/views/{}/repair?pk={}", view.name, query_value(&key.pk));
            if let Some(sk) = &key.sk {
                path.push_str(&format!("&sk={}", query_value(sk)));
            }
            match request(*addr, "POST", &path, Duration::from_secs(30)).await {
                Ok((200, _)) => Ok(()),
                Ok((status, body)) => Err(format!("{status} {body}")),
                Err(error) => Err(error.to_string()),
            }
        }
        RepairVia::Fills(fills) => {
            let (key, columns) = parse_item_key(view, &key.pk, key.sk.as_deref())?;
            let (reply, answer) = tokio::sync::oneshot::channel();
            let request = FillRequest {
                view: view.name.clone(),
                columns,
                key,
                reply,
                restore: false,
                repair: true,
            };
            fills
                .send(request)
                .await
                .map_err(|_| "the pipeline is stopping".to_string())?;
            match tokio::time::timeout(Duration::from_secs(30), answer).await {
                Ok(Ok(Ok(_))) => Ok(()),
                Ok(Ok(Err(error))) => Err(error),
                _ => Err("no answer in time".into()),
            }
        }
    }
}

/// Sends every difference through the daemon (an extra item whose key the view's templates no
/// longer parse, made by an older definition, is removed here: no row can make it), then settles
/// the keys again; returns how many now match.
async fn repair(
    services: &Services<'_>,
    view: &View,
    options: &Options,
    via: &RepairVia,
    found: &[Difference],
    summary: &mut Summary,
) -> Result<u64, VerifyError> {
    for difference in found {
        let key = &difference.key;
        let failed = |reason: String| VerifyError::Repair {
            key: key.to_string(),
            via: via.to_string(),
            reason,
        };
        if parse_item_key(view, &key.pk, key.sk.as_deref()).is_err() {
            let version = difference.version.unwrap_or(0);
            remove_marked(services.client, key, RemovalGuard::UpTo(version))
                .await
                .map_err(|info| failed(info.to_string()))?;
            continue;
        }
        repair_one(via, view, key).await.map_err(failed)?;
    }
    let keys: Vec<ItemKey> = found.iter().map(|d| d.key.clone()).collect();
    let mut remaining = 0u64;
    let mut again = Summary::default();
    for batch in keys.chunks(SETTLE_BATCH) {
        remaining += settle(services, view, options, batch.to_vec(), &mut again)
            .await?
            .len() as u64;
    }
    summary.unsettled += again.unsettled;
    summary.daemon_behind |= again.daemon_behind;
    Ok((keys.len() as u64).saturating_sub(remaining + again.unsettled))
}
