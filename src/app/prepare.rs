//! Start-up: the servers checked (retrying while they are unreachable, stopping on a definite
//! problem) and the start position fixed — the checkpoint, or the binlog end persisted as the
//! first checkpoint. Also everything `check --connect` verifies.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::AppError;
use crate::checkpoint::tracker::lease_term;
use crate::config::{CheckpointStoreConfig, Config, Problem};
use crate::control::CheckpointStore;
use crate::dynamo;
use crate::dynamo::index_check::check_table_indexes;
use crate::dynamo::tables::{check_table, needed_tables};
use crate::error::{chain, pause, Classify, RetryPolicy};
use crate::pipeline::{BackfillState, Checkpoint, Position, Progress};
use crate::snapshot::driver::REMOVED;
use crate::source::{self, preflight, SourceError, StartPoint};
use crate::util::now_millis;
use crate::view::spec::FillMode;
use crate::view::View;

/// Beyond the older instance's write lease: its requests in flight when the lease ended.
const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(2);

pub fn checkpoint_store(config: &Config, client: &Client) -> CheckpointStore {
    match &config.checkpoint {
        CheckpointStoreConfig::Table(table) => CheckpointStore::table(
            client.clone(),
            table.clone(),
            config.checkpoint_id(),
            lease_term(config.checkpoint_interval),
        ),
        CheckpointStoreConfig::File(path) => CheckpointStore::File(path.clone()),
    }
}

/// The checkpoint file this process owns, and its path.
pub(super) type OwnedFile = (std::path::PathBuf, crate::control::FileOwner);

/// Makes this process the owner of its configuration's checkpoint file (see
/// [`crate::control::FileOwner`]) before anything is read or written, waiting while another
/// instance holds it (a rolling update's old instance still stopping, or a second deployment
/// by mistake: it waits, holding nothing, reading nothing). Kept in `held` across a reload's
/// generations while the path stays (dropped between them, a waiting instance could take the
/// file); a new path is taken before the old one is let go; a checkpoint in the control table
/// (its `owner` fences instead) lets it go. `false` when a stop came first. Before
/// 2026-12-06's eighth stop two instances on one file both ran (found by a review;
/// `tests/edges.rs`, seen failing).
pub(super) async fn own_checkpoint_file(
    config: &Config,
    shutdown: &CancellationToken,
    held: &mut Option<OwnedFile>,
) -> Result<bool, AppError> {
    let CheckpointStoreConfig::File(path) = &config.checkpoint else {
        *held = None;
        return Ok(true);
    };
    if held.as_ref().is_some_and(|(owned, _)| owned == path) {
        return Ok(true);
    }
    let mut said = None::<tokio::time::Instant>;
    loop {
        let target = path.clone();
        let owned = tokio::task::spawn_blocking(move || crate::control::try_own(&target))
            .await
            .map_err(std::io::Error::other)
            .and_then(|owned| owned)
            .map_err(|source| {
                AppError::Checkpoint(crate::control::CheckpointError::File {
                    path: crate::control::owner_path(path),
                    source,
                })
            })?;
        if let Some(owner) = owned {
            if said.is_some() {
                info!(checkpoint = %path.display(), "the other instance stopped: this one goes on from the checkpoint file");
            }
            *held = Some((path.clone(), owner));
            return Ok(true);
        }
        if said.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            warn!(checkpoint = %path.display(), lock = %crate::control::owner_path(path).display(), "another instance uses the checkpoint file; waiting for it to stop (a checkpoint file has one writer: see Ownership in the README)");
            said = Some(tokio::time::Instant::now());
        }
        if !pause(shutdown, Duration::from_millis(500)).await {
            return Ok(false);
        }
    }
}

pub(super) async fn prepare_with_retry(
    config: &Config,
    client: &Client,
    store: &CheckpointStore,
    shutdown: &CancellationToken,
) -> Result<Option<Prepared>, AppError> {
    let retry = RetryPolicy::new(Duration::from_millis(200), config.source.max_backoff);
    let mut backoff = retry.backoff();
    loop {
        // A stop while the start waits (for a predecessor's lease, a server that does not
        // answer) ends it at once, not after the attempt (found by a review: SIGTERM in that
        // window ran past the drain's limit and exited 1).
        let attempt = tokio::select! {
            attempt = prepare(config, client, store) => attempt,
            () = shutdown.cancelled() => return Ok(None),
        };
        match attempt {
            Ok(ready) => return Ok(Some(ready)),
            Err(AppError::Checkpoint(error)) if error.unwritable() => {
                return Err(AppError::Checkpoint(error))
            }
            Err(error) if error.is_transient() => {
                let delay = backoff.next().unwrap_or(retry.max);
                warn!(error = %chain(&error), delay_ms = delay.as_millis() as u64, "servers not reachable yet; retrying");
                if !pause(shutdown, delay).await {
                    return Ok(None);
                }
            }
            Err(error) => return Err(error),
        }
    }
}

/// Where the pipeline starts, and the connections it reads the source with.
pub(super) struct Prepared {
    pub start: StartPoint,
    pub checkpoint: Checkpoint,
    /// Snapshot, join and write-back connections, with TLS as the trial connection resolved it.
    pub pool: mysql_async::Pool,
}

/// Preflight and the start position. A fresh start persists its position as the first
/// checkpoint, so that a crash before the first commit resumes from the same place.
async fn prepare(
    config: &Config,
    client: &Client,
    store: &CheckpointStore,
) -> Result<Prepared, AppError> {
    let (opts, conn) = source::resolve(&config.source.connection).await?;
    let (mut conn, flavor) = source::with_flavor(conn).await?;
    let problems = run_preflight(&mut conn, flavor, config, client).await?;
    if !problems.is_empty() {
        return Err(AppError::Preflight(problems));
    }
    // Before the claim: an instance pointed at the wrong server (or about to start afresh by
    // mistake) must not take the checkpoint from the one that runs right.
    let identity = source::server_identity(&mut conn, flavor).await?;
    let failed_over = check_server_identity(config, store, &identity).await?;
    check_unnamed_checkpoint(config, client, store).await?;
    if let Some(previous) = store.claim().await? {
        // The older instance sends writes only within its lease, which it last renewed before
        // our claim (see `control::Lease`); nothing is written before its lease and the
        // requests it had in flight are over, so its last writes cannot land after ours.
        // Its lease as it recorded it (it may have run with another checkpoint interval).
        let own = lease_term(config.checkpoint_interval);
        let grace = previous.lease_term.map_or(own, |theirs| theirs.max(own)) + IN_FLIGHT_MARGIN;
        warn!(previous = %previous.owner, wait_ms = grace.as_millis() as u64, "checkpoint taken over from an instance that did not release it; waiting for it to stop before writing");
        tokio::time::sleep(grace).await;
        // Our own lease, from the claim, has ended meanwhile: confirm again (and find out if
        // yet another instance took over).
        store.check_owner().await?;
    }
    // The binlog's end once no other instance writes any more (after the wait above): what an
    // instance taken over wrote until it stopped is before it, so replaying it is guarded and
    // never moves an item back.
    let end = source::binlog_end(&mut conn).await?;
    let loaded = store.load().await?;
    let start = Start {
        conn: &mut conn,
        config,
        flavor,
        store,
        end,
        failed_over,
    };
    let (mut start, mut checkpoint) = match loaded {
        Some(checkpoint) => start.resume(checkpoint).await?,
        None => start.fresh().await?,
    };
    if checkpoint.seq < start.next_seq - 1 {
        // The counter's move (a failover, a view's definition changed) is saved before anything
        // is written, and before the new server's identity: once the identity is saved a start
        // no longer sees a failover, and a start after a crash with a definition rolled back
        // would see no change; either would count on from the old counter, below what this run
        // may write (found by a review: guarded writes were then dropped as stale for good).
        checkpoint.seq = start.next_seq - 1;
        store.save(&checkpoint).await?;
    }
    start.server = Some(identity.clone());
    crate::control::server::save(store, &identity).await?;
    mark_tables_without_writeback(config, client).await?;
    let _ = conn.disconnect().await;
    Ok(Prepared {
        start,
        checkpoint,
        pool: mysql_async::Pool::new(opts),
    })
}

/// Every table the views write with no write-back view is marked, before anything is written:
/// while write-back is off, rowcast removes the table's items without marking them
/// (`dynamo::item::REMOVAL_ATTRIBUTE`), so a consumer that went on from where it stopped, once
/// write-back is on again, would take those removals for an application's DeleteItem and
/// delete rows that exist. The consumer finds the mark and forgets the positions of every
/// stream of the table first (`writeback::shards`): its start is then a first start, at the
/// stream's latest record, nothing from while it was off applied. (A mark, not the forgetting
/// itself: that needs the table's streams, and a deployment without write-back may not reach
/// DynamoDB Streams; and a position an instance still stopping saves late is forgotten too.)
/// Only tables that have or had a stream are marked.
async fn mark_tables_without_writeback(config: &Config, client: &Client) -> Result<(), AppError> {
    let with: HashSet<&str> = config
        .views
        .iter()
        .filter(|v| v.writeback_enabled)
        .map(|v| &*v.table)
        .collect();
    let without: BTreeSet<&str> = config
        .views
        .iter()
        .map(|v| &*v.table)
        .filter(|table| !with.contains(table))
        .collect();
    if without.is_empty() {
        return Ok(());
    }
    let positions = super::wiring::position_store(config, client);
    for table in without {
        // A table that never had a stream has no positions (DescribeTable still names a
        // disabled stream).
        if has_stream(client, table).await? {
            positions.mark_off(table, now_millis()).await?;
        }
    }
    Ok(())
}

/// Whether the table has or had a stream; `false` when there is no table.
async fn has_stream(client: &Client, table: &str) -> Result<bool, AppError> {
    match dynamo::tables::latest_stream_arn(client, table).await {
        Ok(arn) => Ok(arn.is_some()),
        Err(info) if info.code.as_deref() == Some("ResourceNotFoundException") => Ok(false),
        Err(info) => Err(AppError::Dynamo(info)),
    }
}

/// `[pipeline] name` added to a deployment that ran without it would key everything anew: the
/// binlog would start afresh at its end (the changes since the old checkpoint skipped) and
/// write-back at the streams' latest records. Refused while the control table holds the
/// unnamed checkpoint of this server id and none under the name.
async fn check_unnamed_checkpoint(
    config: &Config,
    client: &Client,
    store: &CheckpointStore,
) -> Result<(), AppError> {
    let (Some(name), CheckpointStoreConfig::Table(table)) =
        (&config.pipeline_name, &config.checkpoint)
    else {
        return Ok(());
    };
    if store.load().await?.is_some() {
        return Ok(());
    }
    let id = format!("checkpoint#{}", config.source.server_id);
    let unnamed = CheckpointStore::table(
        client.clone(),
        table.clone(),
        id.clone(),
        lease_term(config.checkpoint_interval),
    );
    if unnamed.load().await?.is_none() {
        return Ok(());
    }
    Err(AppError::Preflight(vec![Problem {
        file: config.file.clone(),
        field: "pipeline.name".into(),
        message: format!(
            "the control table {table} holds this server id's checkpoint without a pipeline name ({id}) and none under checkpoint#{name}: \
             starting under the name would start afresh at the binlog end, skipping the changes since that checkpoint, and write-back would start at the streams' latest records. \
             Keep [pipeline] name unset for this deployment, or delete the items of {id} to start afresh on purpose"
        ),
    }]))
}

/// A checkpoint taken on another server is refused: its binlog positions mean nothing here
/// (with `resume = "gtid"`, any server of the same GTID domain will do: `Ok(true)`, a
/// failover). A checkpoint without a stored identity (an older version's) is adopted.
async fn check_server_identity(
    config: &Config,
    store: &CheckpointStore,
    identity: &crate::control::server::ServerIdentity,
) -> Result<bool, AppError> {
    let Some(stored) = crate::control::server::load(store).await? else {
        info!(server = %identity, "no server identity kept beside the checkpoint yet: `run` records this server's");
        return Ok(false);
    };
    if stored.resumable_on(identity, config.source.resume_by_gtid) {
        let failed_over = stored != *identity;
        if failed_over {
            warn!(was = %stored, now = %identity, "the source is another server of the same GTID domain (a failover): resuming by GTID");
        }
        return Ok(failed_over);
    }
    Err(AppError::Preflight(vec![Problem {
        file: config.file.clone(),
        field: "checkpoint".into(),
        message: format!(
            "the checkpoint ({}) was taken on another server ({stored}) than the one at source.url ({identity}): its positions mean nothing here. \
             Another database: give this pipeline its own [pipeline] name. The same data on a new server: use [source] resume = \"gtid\" (MariaDB), or remove the checkpoint (its items sk = \"stream\" and sk = \"server\", or its files) to start again with a backfill",
            store.describe()
        ),
    }]))
}

/// What a reloaded configuration must pass before the running one drains: what is checked at
/// start, the checkpoint aside, and the views named in `views` (those it adds or changes)
/// against their tables' columns, as `check --connect` does.
pub(super) async fn check_servers(
    config: &Config,
    client: &Client,
    views: &[&str],
) -> Result<Vec<Problem>, AppError> {
    let (mut conn, flavor) = source::connect(&config.source.connection).await?;
    let mut problems = run_preflight(&mut conn, flavor, config, client).await;
    if let Ok(found) = &mut problems {
        let checked: Vec<_> = config
            .views
            .iter()
            .filter(|v| views.contains(&v.name.as_str()))
            .cloned()
            .collect();
        match preflight::check_view_columns(&mut conn, &checked).await {
            Ok(more) => found.extend(more),
            Err(error) => problems = Err(error.into()),
        }
    }
    let _ = conn.disconnect().await;
    problems
}

/// What must hold before streaming: the server's settings, the write-back views' keys, the
/// DynamoDB tables (privileges only warn: grants through roles are not resolved).
async fn run_preflight(
    conn: &mut mysql_async::Conn,
    flavor: source::Flavor,
    config: &Config,
    client: &Client,
) -> Result<Vec<Problem>, AppError> {
    let mut problems = preflight::check_server(conn, config, flavor).await?;
    problems.extend(preflight::check_writeback_keys(conn, &config.views).await?);
    problems.extend(preflight::check_column_types(conn, &config.views).await?);
    problems.extend(preflight::check_system_versioned(conn, &config.views).await?);
    for cascade in preflight::check_cascades(conn, &config.views).await? {
        warn!(view = %cascade.file.display(), field = %cascade.field, problem = %cascade.message, "cascading foreign key: its changes are not in the binlog");
    }
    for warning in preflight::check_privileges(conn, config, flavor).await? {
        warn!(problem = %warning, "privilege check (a missing privilege fails clearly when it is used)");
    }
    for (table, need) in needed_tables(config) {
        let found = check_table(client, &table, &need)
            .await
            .map_err(AppError::Dynamo)?;
        problems.extend(found.into_iter().map(|message| Problem {
            file: config.file.clone(),
            field: format!("table {table} ({})", need.users.join(", ")),
            message,
        }));
        // The items carry their index keys whether or not the index exists yet (it may be
        // backfilling after `tables create`): a missing or different index is only a warning;
        // a key attribute DynamoDB would refuse every item for stops the start.
        let indexes = check_table_indexes(client, &table, &need.indexes)
            .await
            .map_err(AppError::Dynamo)?;
        for found in indexes {
            if found.refuses_items {
                problems.push(Problem {
                    file: found.file,
                    field: found.field,
                    message: found.message,
                });
                continue;
            }
            warn!(view = %found.file.display(), field = %found.field, problem = %found.message, "secondary index (`rowcast check --connect` lists these)");
        }
    }
    Ok(problems)
}

/// Fixing the start position.
struct Start<'a> {
    conn: &'a mut mysql_async::Conn,
    config: &'a Config,
    flavor: source::Flavor,
    store: &'a CheckpointStore,
    /// The binlog end now.
    end: Position,
    /// The source is another server than the checkpoint's (same GTID domain).
    failed_over: bool,
}

impl Start<'_> {
    /// From the checkpoint; its binlog gone: stop, or start over (`source.on_purged`).
    async fn resume(
        self,
        mut checkpoint: Checkpoint,
    ) -> Result<(StartPoint, Checkpoint), AppError> {
        let problem = match checkpoint_gone(self.conn, self.config, &checkpoint).await? {
            Gone::No => None,
            Gone::Purged(problem) => Some(problem),
            // Not a purge: on_purged does not apply (the reader would stop on it too).
            Gone::Refused(problem) => {
                return Err(AppError::Source(SourceError::PositionGone {
                    position: checkpoint.position.to_string(),
                    message: problem.message,
                }))
            }
        };
        let Some(problem) = problem else {
            // A view whose definition changed is backfilled again. The earlier run may have
            // merged snapshot rows after the checkpoint's transaction under the old definition
            // at versions the new pass would use again: the counter moves past all of them (an
            // earlier run never read 2^32 transactions past its checkpoint), so the new pass's
            // items are above every old one (what its cleanup tells them by).
            let changed = self.config.views.iter().any(|view| {
                checkpoint
                    .backfill
                    .get(&view.name)
                    .and_then(|p| p.definition.as_deref())
                    .is_some_and(|made| made != view.fingerprint())
            });
            // After a failover the earlier server may have committed (and rowcast written)
            // transactions past the checkpoint that the new server never had: its own
            // transactions get numbers above all of them, or their writes would be taken for
            // stale and dropped.
            let next_seq = if changed || self.failed_over {
                checkpoint.seq.saturating_add(1 << 32) + 1
            } else {
                checkpoint.seq + 1
            };
            redefine_changed(&self.config.views, &mut checkpoint.backfill);
            lazy_cleanups_due(&self.config.views, &mut checkpoint.backfill);
            let start = StartPoint {
                position: checkpoint.position.clone(),
                next_seq,
                replay_end: Some(self.end),
                backfill: checkpoint.backfill.clone(),
                server: None,
            };
            return Ok((start, checkpoint));
        };
        if !self.config.source.rebackfill_on_purged {
            return Err(AppError::Source(SourceError::PositionGone {
                position: checkpoint.position.to_string(),
                message: problem.message,
            }));
        }
        // source.on_purged = "rebackfill": start over at the binlog end (or its beginning),
        // counting on, and fill every eager view again.
        // The counter moves past every version already written: an earlier run may have read
        // (and written) transactions after its last checkpoint, never 2^32 of them.
        let at = if self.config.source.start_at_beginning {
            "the oldest binlog (source.start = \"beginning\")"
        } else {
            "the binlog end"
        };
        warn!(problem = %problem.message, "binlog purged: starting at {at} and backfilling every eager view again; then the items no row makes are removed");
        let seq = checkpoint
            .seq
            .saturating_add(1 << 32)
            .max(now_millis() * 1000);
        let backfill = purged_backfill(&self.config.views, &checkpoint.backfill, seq);
        self.begin(seq, backfill).await
    }

    /// No checkpoint: versions count up from the clock at the first start, so that they stay
    /// above anything an earlier deployment wrote and keep growing after a failover.
    async fn fresh(self) -> Result<(StartPoint, Checkpoint), AppError> {
        self.begin(now_millis() * 1000, BackfillState::default())
            .await
    }

    /// Starts at the binlog end (or its beginning) with transaction counter `seq` and the views'
    /// progress `backfill`, persisted.
    async fn begin(
        self,
        seq: u64,
        backfill: BackfillState,
    ) -> Result<(StartPoint, Checkpoint), AppError> {
        let position = start_position(self.conn, self.config, self.flavor, self.end).await?;
        let checkpoint = Checkpoint {
            position: position.clone(),
            seq,
            updated_ms: now_millis(),
            backfill: backfill.clone(),
        };
        self.store.save(&checkpoint).await?;
        info!(store = %self.store.describe(), position = %position, "no usable checkpoint: start position fixed and persisted as the first checkpoint");
        let start = StartPoint {
            position,
            next_seq: seq + 1,
            replay_end: None,
            backfill,
            server: None,
        };
        Ok((start, checkpoint))
    }
}

/// The passes a definition change begins, as the snapshot driver would begin them: saved with
/// the counter's move (see [`prepare`]), so that a start after a crash, even with the old
/// definition again, sees a change to undo and moves the counter on once more.
fn redefine_changed(views: &[Arc<View>], backfill: &mut BackfillState) {
    for view in views.iter().filter(|v| v.fill == FillMode::Eager) {
        if let Some(progress) = backfill.get_mut(&view.name) {
            crate::snapshot::driver::redefine(view, progress);
        }
    }
}

/// A lazy view's pending cleanup (after a TRUNCATE or a purged binlog) stays due when its
/// definition changed since (the sweep takes the view's items below a version, whatever
/// definition made them), and when it was an eager view whose pass had begun (its items below
/// the pass's first version). One that became lazy before its pass wrote anything has no
/// version to sweep below: it is given up, with a warning.
fn lazy_cleanups_due(views: &[Arc<View>], backfill: &mut BackfillState) {
    for view in views.iter().filter(|v| v.fill == FillMode::Lazy) {
        let Some(progress) = backfill.get_mut(&view.name) else {
            continue;
        };
        // A lazy view is not backfilled again when its definition changes: a halt kept for the
        // old definition goes with it (the change read again judges the new one).
        if progress
            .definition
            .as_deref()
            .is_some_and(|made| made != view.fingerprint())
        {
            progress.halted = None;
        }
        if !progress.cleanup {
            continue;
        }
        if progress.from_version.is_none() {
            warn!(view = %view.name, "the view became lazy before its backfill pass began: the cleanup of items no row makes is given up (`rowcast verify --repair` finds them)");
            backfill.remove(&view.name);
            continue;
        }
        progress.done = true;
        progress.definition = Some(view.fingerprint());
    }
}

/// The progress every view starts with when its binlog was purged (`on_purged = "rebackfill"`):
/// the purged binlog may have deleted rows, moved them to other keys or out of a filter, which
/// no backfill can see. So each eager view is filled again with a cleanup pending, as after a
/// TRUNCATE: once its pass is done, its items below the pass's first version are removed. A lazy
/// view has no pass to rewrite its items (any may be stale, updates included): every item it has
/// from before `seq` is removed by a sweep right after the start, and it is made again as rows
/// change or on a miss.
///
/// Views of `previous` that are not configured are marked removed, as a start with a checkpoint
/// marks them (if one comes back, its items are cleaned up after its pass as well).
fn purged_backfill(views: &[Arc<View>], previous: &BackfillState, seq: u64) -> BackfillState {
    let removed = previous
        .keys()
        .filter(|name| !views.iter().any(|v| v.name == **name))
        .map(|name| {
            let mark = Progress {
                definition: Some(REMOVED.to_string()),
                ..Progress::default()
            };
            (name.clone(), mark)
        });
    views
        .iter()
        .map(|view| {
            let progress = match view.fill {
                // Every version of the earlier run is below `seq`'s (moved 2^32 past its
                // checkpoint); a fill merged before the first transaction is read is at `seq`.
                FillMode::Lazy => Progress::lazy_cleanup(seq, view.fingerprint()),
                FillMode::Eager => Progress {
                    definition: Some(view.fingerprint()),
                    cleanup: true,
                    ..Progress::default()
                },
            };
            (view.name.clone(), progress)
        })
        .chain(removed)
        .collect()
}

/// Whether the checkpoint's position is still on the server, as `run` and `check --connect`
/// both judge it.
enum Gone {
    No,
    /// Purged: `on_purged` applies.
    Purged(Problem),
    /// Refused for another reason (a GTID state ahead of the server's binlog after a failover,
    /// a binlog the server cannot open): the reader would stop on it.
    Refused(Problem),
}

/// Resuming by GTID, the server finds the position itself (and says if it cannot): the file
/// name may be another server's, after a failover. Otherwise the file must still be there.
async fn checkpoint_gone(
    conn: &mut mysql_async::Conn,
    config: &Config,
    checkpoint: &Checkpoint,
) -> Result<Gone, AppError> {
    let problem = |message: String| Problem {
        file: config.file.clone(),
        field: "checkpoint".into(),
        message,
    };
    let Some(state) = checkpoint
        .position
        .gtid
        .as_deref()
        .filter(|_| config.source.resume_by_gtid)
    else {
        let found = preflight::check_checkpoint(conn, config, checkpoint).await?;
        return Ok(found.map_or(Gone::No, Gone::Purged));
    };
    // Asked of the server (error 1236 on a dump from that state), so that `on_purged` applies
    // to a resume by GTID too (before, the reader stopped on the server's error whatever
    // `on_purged` said).
    let refusal =
        source::gtid_refused(&config.source.connection, config.source.server_id, state).await;
    Ok(match refusal {
        None => Gone::No,
        Some(source::GtidRefusal::Purged(message)) => Gone::Purged(problem(format!(
            "checkpoint GTID state {state} is no longer on the server: {message}; the binlog was purged"
        ))),
        Some(source::GtidRefusal::Other(message)) => Gone::Refused(problem(format!(
            "the server refuses to send its binlog from the checkpoint's GTID state {state}: {message}"
        ))),
    })
}

/// Where a start without a usable checkpoint begins: the binlog end (with MariaDB's GTID state),
/// or the oldest binlog with `source.start = "beginning"`.
async fn start_position(
    conn: &mut mysql_async::Conn,
    config: &Config,
    flavor: source::Flavor,
    end: Position,
) -> Result<Position, AppError> {
    let position = if config.source.start_at_beginning {
        let files = source::binlog_files(conn).await?;
        Position {
            file: files.first().cloned().unwrap_or(end.file.clone()),
            pos: 4,
            gtid: None,
        }
    } else {
        end
    };
    if flavor != source::Flavor::MariaDb {
        return Ok(position);
    }
    // The GTID state at exactly that position (commits since would be skipped on a resume by
    // GTID if the state were read on its own). At the oldest binlog's start it is that file's
    // GTID list: domains whose transactions are all in purged files are named only there, and
    // a state without them sends a resume by GTID looking for their first transaction in the
    // purged files (error 1236, `tests/gtid_domains.rs`).
    let gtid = crate::sql::gtid_state_at(conn, &position)
        .await
        .map_err(SourceError::Query)?;
    Ok(Position { gtid, ..position })
}

/// Everything `check --connect` verifies, as a list of problems.
pub async fn preflight(config: &Config) -> Result<Vec<Problem>, AppError> {
    let (mut conn, flavor) = source::connect(&config.source.connection).await?;
    let mut problems = preflight::check_server(&mut conn, config, flavor).await?;
    problems.extend(preflight::check_privileges(&mut conn, config, flavor).await?);
    problems.extend(preflight::check_views(&mut conn, &config.views).await?);
    problems.extend(preflight::check_system_versioned(&mut conn, &config.views).await?);
    let client = dynamo::client(&config.dynamodb).await;
    for (table, need) in needed_tables(config) {
        match check_table(&client, &table, &need).await {
            Ok(found) => problems.extend(found.into_iter().map(|message| Problem {
                file: config.file.clone(),
                field: format!("table {table} ({})", need.users.join(", ")),
                message,
            })),
            Err(info) => problems.push(Problem {
                file: config.file.clone(),
                field: format!("table {table}"),
                message: info.to_string(),
            }),
        }
        match check_table_indexes(&client, &table, &need.indexes).await {
            Ok(found) => problems.extend(found.into_iter().map(|p| Problem {
                file: p.file,
                field: p.field,
                message: p.message,
            })),
            Err(info) => problems.push(Problem {
                file: config.file.clone(),
                field: format!("table {table}"),
                message: info.to_string(),
            }),
        }
    }
    problems.extend(checkpoint_problems(&mut conn, flavor, config, &client).await?);
    let _ = conn.disconnect().await;
    Ok(problems)
}

/// A file checkpoint's directory (the nearest one that exists: `run` makes the rest) cannot
/// be written: a file is made in it and removed again.
fn unwritable_checkpoint_file(store: &CheckpointStoreConfig) -> Option<String> {
    let CheckpointStoreConfig::File(path) = store else {
        return None;
    };
    let mut dir = path.parent().unwrap_or(std::path::Path::new("."));
    while !dir.as_os_str().is_empty() && !dir.exists() {
        dir = dir.parent().unwrap_or(std::path::Path::new("."));
    }
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    let probe = dir.join(format!(".rowcast-check-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(error) => Some(format!(
            "the checkpoint file {} cannot be written: {} cannot hold files ({error})",
            path.display(),
            dir.display()
        )),
    }
}

/// The checkpoint, as `run` judges it before it starts: taken on this server (or, resuming by
/// GTID, one of its domain; also when only the identity is left), not left under no name while
/// the configuration names the pipeline, and still on the server (with `on_purged =
/// "rebackfill"` a purge is a warning: `run` starts over).
async fn checkpoint_problems(
    conn: &mut mysql_async::Conn,
    flavor: source::Flavor,
    config: &Config,
    client: &Client,
) -> Result<Vec<Problem>, AppError> {
    let store = checkpoint_store(config, client);
    let mut problems = Vec::new();
    if let Some(message) = unwritable_checkpoint_file(&config.checkpoint) {
        problems.push(Problem {
            file: config.file.clone(),
            field: "checkpoint.path".into(),
            message,
        });
    }
    let identity = source::server_identity(conn, flavor).await?;
    let judged = async {
        check_server_identity(config, &store, &identity).await?;
        check_unnamed_checkpoint(config, client, &store).await
    };
    match judged.await {
        Ok(_) => {}
        Err(AppError::Preflight(found)) => problems.extend(found),
        Err(error) => problems.push(Problem {
            file: config.file.clone(),
            field: "checkpoint".into(),
            message: chain(&error),
        }),
    }
    let checkpoint = match store.load().await {
        Ok(Some(checkpoint)) => checkpoint,
        Ok(None) => return Ok(problems),
        Err(error) => {
            problems.push(Problem {
                file: config.file.clone(),
                field: "checkpoint".into(),
                message: chain(&error),
            });
            return Ok(problems);
        }
    };
    match checkpoint_gone(conn, config, &checkpoint).await? {
        Gone::No => {}
        Gone::Purged(problem) if config.source.rebackfill_on_purged => {
            warn!(problem = %problem.message, "with source.on_purged = \"rebackfill\" run starts over and backfills every eager view again");
        }
        Gone::Purged(problem) | Gone::Refused(problem) => problems.push(problem),
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile_view;
    use crate::pipeline::version_of;

    fn view(name: &str, fill: &str) -> Arc<View> {
        let text = format!(
            "name = \"{name}\"\ntable = \"views\"\nsource = \"db.accounts\"\n[key]\npk = \"A#{{id}}\"\n[fill]\nmode = \"{fill}\"\n"
        );
        Arc::new(compile_view(std::path::Path::new("v.toml"), &text).expect("valid view"))
    }

    /// After a purged binlog every view has a cleanup pending: an eager one after its pass, a
    /// lazy one at once of everything below the first new transaction; views no longer
    /// configured stay marked removed.
    #[test]
    fn a_purged_start_cleans_up_every_view() {
        let views = [view("eager", "eager"), view("lazy", "lazy")];
        let mut previous = BackfillState::new();
        previous.insert(
            "eager".into(),
            Progress {
                done: true,
                rows: 40,
                ..Progress::default()
            },
        );
        previous.insert("gone".into(), Progress::default());
        let state = purged_backfill(&views, &previous, 1000);
        let eager = &state["eager"];
        assert!(eager.cleanup && !eager.done && eager.rows == 0 && eager.from_version.is_none());
        assert_eq!(eager.definition, Some(views[0].fingerprint()));
        let lazy = &state["lazy"];
        assert!(lazy.cleanup && lazy.done);
        assert_eq!(lazy.from_version, Some(version_of(1000, 0)));
        assert_eq!(lazy.definition, Some(views[1].fingerprint()));
        assert_eq!(state["gone"].definition.as_deref(), Some(REMOVED));
        assert_eq!(state.len(), 3);
    }

    /// A lazy view's pending cleanup stays due after its definition changed, or after it was
    /// made lazy in the middle of its pass; without a version to sweep below it is given up.
    #[test]
    fn a_lazy_views_pending_cleanup_stays_due() {
        let views = [view("a", "lazy"), view("b", "lazy"), view("c", "lazy")];
        let pending = |done: bool, from_version: Option<u128>| Progress {
            done,
            cleanup: true,
            from_version,
            definition: Some("an older definition".into()),
            ..Progress::default()
        };
        let mut state = BackfillState::new();
        state.insert("a".into(), pending(true, Some(7)));
        state.insert("b".into(), pending(false, Some(9)));
        state.insert("c".into(), pending(false, None));
        lazy_cleanups_due(&views, &mut state);
        for (name, view) in [("a", &views[0]), ("b", &views[1])] {
            let progress = &state[name];
            assert!(progress.done && progress.cleanup, "{name}");
            assert_eq!(progress.definition, Some(view.fingerprint()), "{name}");
        }
        assert_eq!(state["a"].from_version, Some(7));
        assert!(!state.contains_key("c"));
    }
}
