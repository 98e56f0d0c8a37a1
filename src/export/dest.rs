//! Where an export goes: a local directory (files written as `.partial` and renamed once
//! complete and synced) or S3 (`s3.rs`: multipart uploads). The manifest is written last, so a
//! destination without one holds an export that did not finish.
//! An export claims its destination as it opens it (`claim.rs`).

use std::io::Write;
use std::path::PathBuf;

use super::claim::{claim_dir, claim_text, CLAIM_FILE};
use super::s3::{S3Dest, S3Upload};
use super::ExportError;

pub enum Destination {
    Dir(PathBuf),
    S3(S3Dest),
}

/// A file being written.
pub enum Upload {
    File {
        file: std::fs::File,
        partial: PathBuf,
        path: PathBuf,
    },
    S3(S3Upload),
}

impl Destination {
    /// `--to`: a directory that is empty or does not exist yet, or `s3://bucket/prefix` with
    /// nothing under the prefix (parts of an earlier export must not end up in this one's
    /// import). `endpoint_url` and `region` are S3's.
    pub async fn open(
        to: &str,
        endpoint_url: Option<&str>,
        region: Option<&str>,
    ) -> Result<Destination, ExportError> {
        if to.starts_with("s3://") {
            return Ok(Destination::S3(
                S3Dest::open(to, endpoint_url, region).await?,
            ));
        }
        // Claimed first, then found empty but for the claim (see `S3Dest::open`).
        let dir = PathBuf::from(to);
        claim_dir(&dir)?;
        let dest = Destination::Dir(dir.clone());
        match holds_a_file(&dir) {
            Ok(false) => Ok(dest),
            Ok(true) => {
                dest.release().await;
                Err(ExportError::Destination(format!(
                    "{}: not empty (an export writes into an empty or new directory)",
                    dir.display()
                )))
            }
            Err((path, error)) => {
                dest.release().await;
                Err(ExportError::Io(path, error))
            }
        }
    }

    /// Gives the claim up if it is this export's (best effort: a claim left behind refuses the
    /// next export, saying why).
    pub async fn release(&self) {
        match self {
            Destination::Dir(dir) => {
                let path = dir.join(CLAIM_FILE);
                match std::fs::read(&path) {
                    Ok(text) if text == claim_text() => {
                        if let Err(error) = std::fs::remove_file(&path) {
                            tracing::warn!(path = %path.display(), error = %error, "the destination's claim could not be removed; remove it once no export runs there");
                        }
                    }
                    Ok(_) => {
                        tracing::warn!(path = %path.display(), "the destination's claim is not this export's any more: left as it is")
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => {
                        tracing::warn!(path = %path.display(), error = %error, "the destination's claim could not be read: left; remove it once no export runs there")
                    }
                }
            }
            Destination::S3(s3) => s3.release().await,
        }
    }

    /// `(bucket, key prefix ending in '/' or empty)` of an S3 destination.
    pub fn s3_location(&self) -> Option<(&str, &str)> {
        match self {
            Destination::Dir(_) => None,
            Destination::S3(s3) => Some((&s3.bucket, &s3.prefix)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Destination::Dir(dir) => dir.display().to_string(),
            Destination::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        }
    }

    pub async fn begin(&self, path: &str) -> Result<Upload, ExportError> {
        match self {
            Destination::Dir(dir) => {
                let path = dir.join(path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| ExportError::Io(parent.to_path_buf(), e))?;
                }
                let partial = PathBuf::from(format!("{}.partial", path.display()));
                let file = std::fs::File::create(&partial)
                    .map_err(|e| ExportError::Io(partial.clone(), e))?;
                Ok(Upload::File {
                    file,
                    partial,
                    path,
                })
            }
            Destination::S3(s3) => Ok(Upload::S3(s3.begin(path).await?)),
        }
    }

    pub async fn write(&self, upload: &mut Upload, bytes: Vec<u8>) -> Result<(), ExportError> {
        match (self, upload) {
            (_, Upload::File { file, partial, .. }) => file
                .write_all(&bytes)
                .map_err(|e| ExportError::Io(partial.clone(), e)),
            (Destination::S3(s3), Upload::S3(upload)) => s3.write(upload, bytes).await,
            (Destination::Dir(_), Upload::S3(_)) => unreachable!("a directory makes file uploads"),
        }
    }

    pub async fn finish(&self, upload: Upload) -> Result<(), ExportError> {
        match (self, upload) {
            (
                _,
                Upload::File {
                    file,
                    partial,
                    path,
                },
            ) => {
                let done = file
                    .sync_all()
                    .map_err(|e| ExportError::Io(partial.clone(), e))
                    .and_then(|()| {
                        std::fs::rename(&partial, &path).map_err(|e| ExportError::Io(path, e))
                    });
                if done.is_err() {
                    let _ = std::fs::remove_file(&partial);
                }
                done
            }
            (Destination::S3(s3), Upload::S3(upload)) => s3.finish(upload).await,
            (Destination::Dir(_), Upload::S3(_)) => unreachable!("a directory makes file uploads"),
        }
    }

    /// Gives up an upload: an S3 multipart upload is aborted, a partial file removed.
    pub async fn abort(&self, upload: Upload) {
        match (self, upload) {
            (_, Upload::File { partial, .. }) => {
                let _ = std::fs::remove_file(partial);
            }
            (Destination::S3(s3), Upload::S3(upload)) => s3.abort(&upload).await,
            (Destination::Dir(_), Upload::S3(_)) => {}
        }
    }

    /// Removes a completed file (an export given up).
    pub async fn remove(&self, path: &str) {
        match self {
            Destination::Dir(dir) => {
                let _ = std::fs::remove_file(dir.join(path));
            }
            Destination::S3(s3) => s3.remove(path).await,
        }
    }

    /// A small file written whole (the manifest, the dead letters).
    pub async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), ExportError> {
        if let Destination::S3(s3) = self {
            return s3.put(path, bytes).await;
        }
        let mut upload = self.begin(path).await?;
        if let Err(error) = self.write(&mut upload, bytes).await {
            // No half-written file left behind (a disk full): a retry is not refused.
            self.abort(upload).await;
            return Err(error);
        }
        self.finish(upload).await
    }
}

/// Whether `dir` holds anything but directories and this export's claim (a failed export
/// removes its files and leaves its empty directories: a retry into it is not refused). A
/// directory that does not exist holds nothing.
fn holds_a_file(dir: &std::path::Path) -> Result<bool, (PathBuf, std::io::Error)> {
    let claim = dir.join(CLAIM_FILE);
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err((dir, error)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| (dir.clone(), e))?;
            let kind = entry.file_type().map_err(|e| (entry.path(), e))?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if entry.path() != claim {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
