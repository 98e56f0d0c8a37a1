//! `rowcast export`: the chosen views' items, read at one consistent point, as DynamoDB S3
//! import data.
//!
//! One connection holds one consistent snapshot (`START TRANSACTION WITH CONSISTENT SNAPSHOT`,
//! the backfill's read) for the whole export, so every view is read at the same binlog
//! position, joins included (read in the same snapshot, as the backfill reads them). Each view's
//! root table is read in primary-key order, a chunk at a time; each row goes through the same
//! projection as a backfilled row and its item is appended to its table's gzip files as one
//! DynamoDB JSON line. Nothing is kept but counts: memory stays flat for any table size.
//!
//! Every item carries the version `seq << 32 | SNAPSHOT_INDEX_BASE` (`seq` from the clock, as
//! a first start takes it) and its view's name, as the daemon would have written it. With
//! `--checkpoint` (see `app::export`) that position and `seq` become the checkpoint and the
//! views are marked filled: the daemon resumes at the export's position and every change after
//! it has a higher version.

mod claim;
mod dest;
mod files;
mod json;
pub mod manifest;
mod s3;
pub use s3::read as read_s3;
mod window;

use std::collections::BTreeMap;
use std::sync::Arc;

use mysql_async::Conn;

pub use dest::Destination;
pub use files::DataFile;
use files::TableFiles;
pub use manifest::{Manifest, TableEntry, ViewEntry};

use crate::dynamo::{size_over, MAX_ITEM_BYTES};
use crate::pipeline::{DeadLetter, Position, SNAPSHOT_INDEX_BASE};
use crate::sql::join::read_in_snapshot;
use crate::sql::{end_snapshot, gtid_state_at, keyset_tail, SqlError, TableCache};
use crate::view::project::{project_snapshot, ItemOp, Name};
use crate::view::View;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Destination(String),
    #[error("{0}")]
    Io(std::path::PathBuf, #[source] std::io::Error),
    #[error("compressing a data file")]
    Compress(#[source] std::io::Error),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("view {view}: {message}")]
    View { view: String, message: String },
    #[error("{0} XA transaction(s) prepared and not yet decided: the snapshot cannot see them, and a daemon resuming at its position would never apply them (their PREPARE is before it). Export again once they are committed or rolled back (XA RECOVER lists them)")]
    PreparedXa(usize),
    #[error("{0} XA transaction(s) prepared before the export's snapshot were committed around it, at each of its attempts: the snapshot may lack their rows, and a daemon resuming at its position would never apply them. Export again when fewer XA transactions are decided")]
    StraddlingXa(usize),
    #[error("cannot read the binlog around the export's snapshot, at each of its attempts (a transaction prepared before it and committed during it would be missing): {0}")]
    BinlogUnread(String),
}

/// What to export, and how.
pub struct Export {
    pub views: Vec<Arc<View>>,
    pub dest: Destination,
    /// Uncompressed JSON bytes per data file at most (a new file after).
    pub max_file_bytes: u64,
    pub chunk_rows: usize,
    /// The transaction counter the items' versions derive from.
    pub seq: u64,
}

/// The version every exported item carries.
pub fn export_version(seq: u64) -> u128 {
    (u128::from(seq) << 32) | u128::from(SNAPSHOT_INDEX_BASE)
}

/// Dead letters of an export: the items that cannot be imported, one JSON line each.
pub const DEAD_LETTERS_FILE: &str = "dead-letters.jsonl";

/// Where the rows are read and the items go.
struct Run<'a> {
    export: &'a Export,
    position: Position,
    files: BTreeMap<String, TableFiles>,
    dead: Option<dest::Upload>,
    letters: Vec<DeadLetter>,
}

/// Reads every view of `export` in one consistent snapshot on `conn` and writes its items;
/// returns the manifest (also written, last) and the dead letters (at most
/// [`MAX_LETTERS_KEPT`] of them kept for the checkpoint's store; all are in the file).
pub async fn run(
    conn: &mut Conn,
    tables: &mut TableCache,
    export: &Export,
) -> Result<(Manifest, Vec<DeadLetter>), ExportError> {
    let result = write(conn, tables, export).await;
    // Done (the manifest is there, so the destination is not empty to another export) or
    // failed (what it wrote is removed, so a retry is not refused): the claim goes.
    export.dest.release().await;
    result
}

/// [`run`] with the destination claimed.
async fn write(
    conn: &mut Conn,
    tables: &mut TableCache,
    export: &Export,
) -> Result<(Manifest, Vec<DeadLetter>), ExportError> {
    let mut run = Run {
        export,
        position: window::snapshot(conn).await?,
        files: BTreeMap::new(),
        dead: None,
        letters: Vec::new(),
    };
    let read = async {
        // With the GTID state there, a checkpoint set from the export resumes by GTID too.
        run.position.gtid = gtid_state_at(conn, &run.position).await.ok().flatten();
        tracing::info!(position = %run.position, "export: snapshot taken; every commit before it is exported, none after");
        // A test commits changes here: after the snapshot, before its rows are read.
        crate::util::failpoint::delay("export.after_snapshot").await;
        let mut entries = Vec::new();
        for view in &export.views {
            entries.push(run.view(conn, tables, view).await?);
        }
        Ok::<_, ExportError>(entries)
    }
    .await;
    end_snapshot(conn).await;
    let finished = match read {
        Ok(entries) => run.finish().await.map(|()| entries),
        Err(error) => Err(error),
    };
    let entries = match finished {
        Ok(entries) => entries,
        Err(error) => {
            // Nothing half-written stays behind: open S3 uploads are aborted (they would cost
            // storage), partial files removed; the manifest is never written.
            run.abort().await;
            return Err(error);
        }
    };
    let manifest = Manifest::new(export, run.position.clone(), entries, &run.files);
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    if let Err(error) = export.dest.put(manifest::MANIFEST_FILE, text).await {
        // Without a manifest the data files are no export: gone too, as after any failure,
        // and the dead letters finished with them.
        run.abort().await;
        export.dest.remove(DEAD_LETTERS_FILE).await;
        // A manifest whose write failed may still have landed (an S3 PUT answered late).
        export.dest.remove(manifest::MANIFEST_FILE).await;
        return Err(error);
    }
    Ok((manifest, run.letters))
}

/// How often a long export logs its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Dead letters kept in memory for the checkpoint's dead-letter store (the file has them all).
pub const MAX_LETTERS_KEPT: usize = 10_000;

impl Run<'_> {
    /// Every open file completed.
    async fn finish(&mut self) -> Result<(), ExportError> {
        for files in self.files.values_mut() {
            files.finish(&self.export.dest).await?;
        }
        if let Some(upload) = self.dead.take() {
            self.export.dest.finish(upload).await?;
        }
        Ok(())
    }

    async fn abort(&mut self) {
        for files in self.files.values_mut() {
            files.abort(&self.export.dest).await;
        }
        if let Some(upload) = self.dead.take() {
            self.export.dest.abort(upload).await;
        }
    }

    async fn view(
        &mut self,
        conn: &mut Conn,
        tables: &mut TableCache,
        view: &Arc<View>,
    ) -> Result<ViewEntry, ExportError> {
        let root = tables.get(&view.source).await?;
        if root.primary_key.is_empty() {
            return Err(ExportError::View {
                view: view.name.clone(),
                message: format!("{} has no primary key to read it in order by", view.source),
            });
        }
        let mut entry = ViewEntry::new(view);
        let version = export_version(self.export.seq);
        let mut after = None;
        let mut line = Vec::with_capacity(1024);
        let mut told = std::time::Instant::now();
        loop {
            // A long export says how far it is (rows of the view, the table's estimate aside).
            if told.elapsed() >= PROGRESS_EVERY {
                told = std::time::Instant::now();
                tracing::info!(view = %view.name, rows = entry.rows, items = entry.items, "export: reading");
            }
            let tail = keyset_tail(&root, None, after.as_deref(), self.export.chunk_rows);
            let read = read_in_snapshot(conn, tables, &root, Some(view), tail, &|_| true).await?;
            let (rows, joined) = (&read.rows, read.joined.as_ref());
            for (i, row) in rows.iter().enumerate() {
                entry.rows += 1;
                let projection =
                    project_snapshot(view, row, joined.map(|j| &j[i])).map_err(|e| {
                        ExportError::View {
                            view: view.name.clone(),
                            message: e.to_string(),
                        }
                    })?;
                for op in projection.ops {
                    let ItemOp::Put { key, mut item } = op else {
                        continue;
                    };
                    if view.mark_removals {
                        // As the daemon writes it (`project::with_origin`), so that write-back
                        // on the imported table tells an application's copy of it.
                        let origin = crate::dynamo::origin(&key.pk, key.sk.as_deref(), version);
                        item.insert(Name::Interned(crate::dynamo::ORIGIN_ATTRIBUTE), origin);
                    }
                    // Keys DynamoDB refuses are the projection's dead letters (below).
                    if size_over(&item, &view.name, MAX_ITEM_BYTES).is_some() {
                        let reason = format!("item {key} is larger than DynamoDB's 400 KB");
                        self.dead(view, Some(&key), reason).await?;
                        entry.dead_letters += 1;
                        continue;
                    }
                    line.clear();
                    json::item_line(&mut line, &item, version, &view.name);
                    let files = self.files.entry(view.table.to_string()).or_insert_with(|| {
                        TableFiles::new(&view.table, self.export.max_file_bytes)
                    });
                    files.write_line(&self.export.dest, &line).await?;
                    entry.items += 1;
                }
                for dead in projection.dead {
                    self.dead(view, dead.key.as_ref(), dead.reason).await?;
                    entry.dead_letters += 1;
                }
            }
            if read.fetched < self.export.chunk_rows || read.last_key.is_none() {
                return Ok(entry);
            }
            after = read.last_key;
        }
    }

    async fn dead(
        &mut self,
        view: &View,
        key: Option<&crate::view::ItemKey>,
        reason: String,
    ) -> Result<(), ExportError> {
        let letter = DeadLetter {
            view: view.name.clone(),
            key: key.map(ToString::to_string),
            pk: key.map(|k| k.pk.clone()),
            sk: key.and_then(|k| k.sk.clone()),
            reason,
            reason_kind: "export",
            position: self.position.clone(),
            seq: self.export.seq,
            at_ms: crate::util::now_millis(),
            record: None,
        };
        let dest = &self.export.dest;
        if self.dead.is_none() {
            self.dead = Some(dest.begin(DEAD_LETTERS_FILE).await?);
        }
        let mut json = serde_json::to_vec(&letter.bounded()).expect("a dead letter serializes");
        json.push(b'\n');
        dest.write(self.dead.as_mut().expect("opened above"), json)
            .await?;
        if self.letters.len() < MAX_LETTERS_KEPT {
            self.letters.push(letter);
        }
        Ok(())
    }
}
