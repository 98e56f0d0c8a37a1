//! `rowcast export` wired: the source connection and its table cache for the export's one
//! snapshot, and, with `--checkpoint`, the checkpoint set to the export's position with the
//! exported eager views marked filled (and the server identity and dead letters recorded, as a
//! first start would), so that `rowcast run` after the import resumes exactly there.

use std::sync::Arc;

use tracing::{info, warn};

use super::prepare::checkpoint_store;
use crate::config::Config;
use crate::control::deadletter::DeadLetterError;
use crate::control::server::ServerIdentity;
use crate::control::{CheckpointError, CheckpointStore, DeadLetterStore};
use crate::dynamo;
use crate::export::{self, Destination, Export, ExportError, Manifest};
use crate::pipeline::{BackfillState, Checkpoint, DeadLetter, Progress};
use crate::source::{self, Flavor, SourceError};
use crate::sql::TableCache;
use crate::util::now_millis;
use crate::view::spec::FillMode;
use crate::view::View;

#[derive(Debug, thiserror::Error)]
pub enum ExportFailure {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("source")]
    Source(#[from] SourceError),
    #[error("checkpoint")]
    Checkpoint(#[from] CheckpointError),
    #[error("dead letters")]
    DeadLetters(#[from] DeadLetterError),
    #[error("import: {0}")]
    Import(String),
}

pub struct ExportRequest {
    pub views: Vec<String>,
    pub to: String,
    pub checkpoint: bool,
    pub max_file_bytes: u64,
    /// S3's endpoint (an S3-compatible store); `None`: AWS (or `AWS_ENDPOINT_URL_S3`).
    pub s3_endpoint_url: Option<String>,
    /// Start DynamoDB's ImportTable of each table from the S3 files and wait for it.
    pub import: bool,
}

pub async fn export(config: &Config, request: ExportRequest) -> Result<Manifest, ExportFailure> {
    let views: Vec<Arc<_>> = config
        .views
        .iter()
        .filter(|v| request.views.contains(&v.name))
        .cloned()
        .collect();
    let region = config.dynamodb.region.as_deref();
    if request.import && !request.to.starts_with("s3://") {
        return Err(ExportFailure::Refused(
            "--import reads the files from S3: --to must be s3://BUCKET/PREFIX".into(),
        ));
    }
    let client = dynamo::client(&config.dynamodb).await;
    if request.import {
        no_table_yet(&client, &views).await?;
    }
    let store = checkpoint_store(config, &client);
    // Only an export that writes the checkpoint needs it.
    let _owner = if request.checkpoint {
        own_file(config)?
    } else {
        None
    };
    if request.checkpoint {
        no_checkpoint_yet(&store, "--checkpoint: the export would move a running pipeline's position. Export without --checkpoint, or for a new pipeline (another [pipeline] name or checkpoint)").await?;
    }
    let (opts, conn) = source::resolve(&config.source.connection).await?;
    let (mut conn, flavor) = source::with_flavor(conn).await?;
    if flavor != Flavor::MariaDb {
        return Err(ExportFailure::Refused(
            "export reads at a consistent snapshot's binlog position, which only MariaDB reports (as the backfill does)".into(),
        ));
    }
    let identity = source::server_identity(&mut conn, flavor).await?;
    // Claimed last, right before `export::run` (which gives the claim up however it ends): a
    // refusal above leaves no claim behind.
    let dest = Destination::open(&request.to, request.s3_endpoint_url.as_deref(), region).await?;
    let mut tables = TableCache::new(mysql_async::Pool::new(opts));
    let export = Export {
        views: views.clone(),
        dest,
        max_file_bytes: request.max_file_bytes,
        chunk_rows: config.backfill_chunk_rows,
        seq: now_millis() * 1000,
    };
    info!(to = %export.dest.describe(), views = ?request.views, "export: reading at one consistent snapshot");
    let (manifest, letters) = export::run(&mut conn, &mut tables, &export).await?;
    let _ = conn.disconnect().await;
    if request.import {
        import(&client, &export, &manifest).await?;
    }
    if !request.checkpoint {
        return Ok(manifest);
    }
    let done = Exported {
        views: &views,
        manifest: &manifest,
        seq: export.seq,
    };
    set_checkpoint(config, &client, &store, &done, &letters, &identity).await?;
    info!(store = %store.describe(), position = %manifest.position, "export: checkpoint set; `rowcast run` resumes there once the items are imported");
    Ok(manifest)
}

/// Refuses when `store` already holds a checkpoint (`why` it must not be replaced).
async fn no_checkpoint_yet(store: &CheckpointStore, why: &str) -> Result<(), ExportFailure> {
    match store.load().await? {
        Some(existing) => Err(ExportFailure::Refused(format!(
            "{} already holds a checkpoint (at {}): {why}",
            store.describe(),
            existing.position
        ))),
        None => Ok(()),
    }
}

/// Refuses an `--import` into tables that exist: ImportTable makes its table and refuses one
/// that exists, which it would only say after the whole export (hours for the tables one
/// exports rather than backfills; before 2026-12-06's seventh stop it did, found by a review).
async fn no_table_yet(
    client: &aws_sdk_dynamodb::Client,
    views: &[Arc<View>],
) -> Result<(), ExportFailure> {
    let mut existing = Vec::new();
    for table in dynamo::tables::view_tables(views).into_keys() {
        match dynamo::indexes::describe(client, &table).await {
            Ok(_) => existing.push(table),
            Err(info) if info.code.as_deref() == Some("ResourceNotFoundException") => {}
            Err(info) => {
                return Err(ExportFailure::Import(format!(
                    "DescribeTable {table}: {info}"
                )));
            }
        }
    }
    if existing.is_empty() {
        return Ok(());
    }
    Err(ExportFailure::Refused(format!(
        "--import: ImportTable makes each table and refuses one that exists, and {} exist{}: delete {} first (`rowcast tables create` comes after the import), or export without --import and load the files another way",
        existing.join(", "),
        if existing.len() == 1 { "s" } else { "" },
        if existing.len() == 1 { "it" } else { "them" },
    )))
}

/// What an export wrote.
struct Exported<'a> {
    views: &'a [Arc<View>],
    manifest: &'a Manifest,
    seq: u64,
}

/// The export's position and counter as the checkpoint, its eager views filled, the server's
/// identity beside it and its dead letters in the store, as a first start would record them.
async fn set_checkpoint(
    config: &Config,
    client: &aws_sdk_dynamodb::Client,
    store: &CheckpointStore,
    done: &Exported<'_>,
    letters: &[DeadLetter],
    identity: &ServerIdentity,
) -> Result<(), ExportFailure> {
    let (manifest, seq) = (done.manifest, done.seq);
    let mut backfill = BackfillState::new();
    for (view, entry) in done.views.iter().zip(&manifest.views) {
        if view.fill == FillMode::Eager {
            let progress = Progress {
                done: true,
                rows: entry.rows,
                since: Some(seq),
                definition: Some(entry.fingerprint.clone()),
                from_version: Some(export::export_version(seq)),
                ..Progress::default()
            };
            backfill.insert(view.name.clone(), progress);
        }
    }
    let checkpoint = Checkpoint {
        position: manifest.position.clone(),
        seq,
        updated_ms: now_millis(),
        backfill,
    };
    // No claim: taking the item over would fence a daemon that started meanwhile. The save is
    // conditional on no other owner, so such a daemon's claim makes it fail instead.
    if store.load().await?.is_some() {
        return Err(ExportFailure::Refused(format!(
            "a checkpoint appeared in {} meanwhile (a daemon started?): not replaced",
            store.describe()
        )));
    }
    store.save(&checkpoint).await?;
    crate::control::server::save(store, identity).await?;
    let dead = DeadLetterStore::from_config(config, client);
    for letter in letters {
        dead.record(letter).await?;
    }
    if letters.len() == export::MAX_LETTERS_KEPT {
        warn!(kept = letters.len(), "more dead letters than the store takes from one export: the rest are only in the export's dead-letters.jsonl");
    }
    store.release().await?;
    Ok(())
}

/// ImportTable of every table with items, one after the other, each waited for.
async fn import(
    client: &aws_sdk_dynamodb::Client,
    export: &Export,
    manifest: &Manifest,
) -> Result<(), ExportFailure> {
    use sha2::{Digest, Sha256};
    let Some((bucket, root)) = export.dest.s3_location() else {
        return Ok(());
    };
    let needs = dynamo::tables::view_tables(&export.views);
    for entry in &manifest.tables {
        if entry.items == 0 {
            println!(
                "table {}: no items to import (`rowcast tables create` makes it)",
                entry.table
            );
            continue;
        }
        let seed = format!("{}|{}|{}", entry.table, manifest.seq, manifest.position);
        let digest: String = Sha256::digest(seed.as_bytes())[..20]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let source = dynamo::import::ImportSource {
            bucket,
            key_prefix: format!("{root}{}", entry.prefix),
            token: format!("rowcast-{digest}"),
        };
        let progress = |line: &str| println!("{line}");
        let imported = dynamo::import::import_table(
            client,
            &entry.table,
            &needs[&entry.table],
            source,
            &progress,
        )
        .await
        .map_err(ExportFailure::Import)?;
        println!("imported {imported} items into {}", entry.table);
        if imported as u64 != entry.items {
            return Err(ExportFailure::Import(format!(
                "{} items imported into {}, the export holds {}",
                imported, entry.table, entry.items
            )));
        }
    }
    Ok(())
}

/// `rowcast checkpoint --from-manifest`: the checkpoint `export --checkpoint` would have set,
/// from the manifest of an export made without it, or whose save failed (the control table
/// unreachable, the process killed after the manifest): before, no command read a manifest,
/// and `rowcast run` then started from scratch, backfilling every view again and leaving the
/// items of rows deleted since the export. `from` is the export's directory or
/// `s3://BUCKET/PREFIX`. Refused unless every view in the manifest has the same definition in
/// `config`, the store holds no checkpoint, and the server still has the export's position in
/// its binlog, as it was (its GTID state there is the manifest's). The export's dead letters
/// stay in its `dead-letters.jsonl` (not copied to the store).
pub async fn seed_checkpoint(
    config: &Config,
    from: &str,
    s3_endpoint_url: Option<&str>,
) -> Result<Manifest, ExportFailure> {
    let manifest = read_manifest(config, from, s3_endpoint_url).await?;
    let mut views = Vec::new();
    for entry in &manifest.views {
        let Some(view) = config.views.iter().find(|v| v.name == entry.name) else {
            return Err(ExportFailure::Refused(format!(
                "view {} of the export is not in the configuration",
                entry.name
            )));
        };
        if view.fingerprint() != entry.fingerprint {
            return Err(ExportFailure::Refused(format!(
                "view {}: its definition changed since the export (the items were made by the one before): export again",
                entry.name
            )));
        }
        views.push(view.clone());
    }
    let client = dynamo::client(&config.dynamodb).await;
    let store = checkpoint_store(config, &client);
    let _owner = own_file(config)?;
    no_checkpoint_yet(&store, "seeding would move a running pipeline's position").await?;
    let (_, conn) = source::resolve(&config.source.connection).await?;
    let (mut conn, flavor) = source::with_flavor(conn).await?;
    if flavor != Flavor::MariaDb {
        return Err(ExportFailure::Refused(
            "exports are made on MariaDB, and their position is checked there".into(),
        ));
    }
    check_position(&mut conn, &manifest.position).await?;
    let identity = source::server_identity(&mut conn, flavor).await?;
    let _ = conn.disconnect().await;
    let done = Exported {
        views: &views,
        manifest: &manifest,
        seq: manifest.seq,
    };
    set_checkpoint(config, &client, &store, &done, &[], &identity).await?;
    info!(store = %store.describe(), position = %manifest.position, "checkpoint set from the export's manifest; `rowcast run` resumes there once the items are imported");
    if manifest.dead_letters.is_some() {
        warn!("the export's dead letters are in its dead-letters.jsonl only (not copied to the dead-letter store)");
    }
    Ok(manifest)
}

/// The manifest of the export at `from` (a directory or `s3://BUCKET/PREFIX`).
async fn read_manifest(
    config: &Config,
    from: &str,
    s3_endpoint_url: Option<&str>,
) -> Result<Manifest, ExportFailure> {
    let bytes = if let Some(rest) = from.strip_prefix("s3://") {
        // The prefix as the export takes it: slashes around it do not count.
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let key = match prefix.is_empty() {
            true => format!("s3://{bucket}/{}", export::manifest::MANIFEST_FILE),
            false => format!("s3://{bucket}/{prefix}/{}", export::manifest::MANIFEST_FILE),
        };
        export::read_s3(&key, s3_endpoint_url, config.dynamodb.region.as_deref()).await?
    } else {
        let path = std::path::Path::new(from).join(export::manifest::MANIFEST_FILE);
        std::fs::read(&path).map_err(|error| ExportError::Io(path, error))?
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|error| ExportFailure::Refused(format!("{from}: not a manifest: {error}")))?;
    if manifest.format != export::manifest::FORMAT {
        return Err(ExportFailure::Refused(format!(
            "{from}: a manifest of format {}, not {}",
            manifest.format,
            export::manifest::FORMAT
        )));
    }
    Ok(manifest)
}

/// Refuses a position `at` this server does not hold as the export read it.
async fn check_position(
    conn: &mut mysql_async::Conn,
    at: &crate::pipeline::Position,
) -> Result<(), ExportFailure> {
    // The position must be this server's, still in its binlog: the file is there, and the GTID
    // state at that offset (NULL where the offset is not in the file) is the one the export
    // read. A manifest without one cannot be checked.
    let files = source::binlog_files(conn).await?;
    let state = match files.contains(&at.file) {
        true => crate::sql::gtid_state_at(conn, at)
            .await
            .map_err(SourceError::Query)?,
        false => None,
    };
    if state.is_none() || state != at.gtid {
        return Err(ExportFailure::Refused(format!(
            "the export's position {at} is not in this server's binlog as the export read it (GTID state there: {}): purged, another server (after a failover), or a binlog reset; the changes since the export cannot be read from it: export again",
            state.as_deref().unwrap_or("none")
        )));
    }
    Ok(())
}

/// A checkpoint file is written by one process at a time (see `prepare::own_checkpoint_file`):
/// a command that seeds it holds its owner lock while it does, and is refused while an instance
/// runs on it.
fn own_file(config: &Config) -> Result<Option<crate::control::FileOwner>, ExportFailure> {
    let crate::config::CheckpointStoreConfig::File(path) = &config.checkpoint else {
        return Ok(None);
    };
    match crate::control::try_own(path) {
        Ok(Some(owner)) => Ok(Some(owner)),
        Ok(None) => Err(ExportFailure::Refused(format!(
            "a rowcast instance runs on the checkpoint file {} (it holds {}): stop it first",
            path.display(),
            crate::control::owner_path(path).display()
        ))),
        Err(error) => Err(ExportFailure::Refused(format!(
            "cannot lock {}: {error}",
            crate::control::owner_path(path).display()
        ))),
    }
}
