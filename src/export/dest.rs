//! Where an export goes: a local directory (files written as `.partial` and renamed once
//! complete and synced). The manifest is written last, so a directory without one is an
//! export that did not finish.

use std::io::Write;
use std::path::PathBuf;

use super::ExportError;

pub enum Destination {
    Dir(PathBuf),
}

/// A file being written.
pub enum Upload {
    File {
        file: std::fs::File,
        partial: PathBuf,
        path: PathBuf,
    },
}

impl Destination {
    /// `--to`: a directory that is empty or does not exist yet (parts of an earlier export
    /// must not end up in this one's import).
    pub fn parse(to: &str) -> Result<Destination, ExportError> {
        if to.starts_with("s3://") {
            return Err(ExportError::Destination(format!(
                "{to}: S3 destinations are not built yet; export to a directory and copy it (`aws s3 cp --recursive`)"
            )));
        }
        let dir = PathBuf::from(to);
        match std::fs::read_dir(&dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(ExportError::Destination(format!(
                        "{}: not empty (an export writes into an empty or new directory)",
                        dir.display()
                    )));
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(ExportError::Io(dir, error)),
        }
        Ok(Destination::Dir(dir))
    }

    /// `(bucket, key prefix ending in '/' or empty)` of an S3 destination.
    pub fn s3_location(&self) -> Option<(&str, &str)> {
        match self {
            Destination::Dir(_) => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Destination::Dir(dir) => dir.display().to_string(),
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
        }
    }

    pub async fn write(&self, upload: &mut Upload, bytes: Vec<u8>) -> Result<(), ExportError> {
        match upload {
            Upload::File { file, partial, .. } => file
                .write_all(&bytes)
                .map_err(|e| ExportError::Io(partial.clone(), e)),
        }
    }

    pub async fn finish(&self, upload: Upload) -> Result<(), ExportError> {
        match upload {
            Upload::File {
                file,
                partial,
                path,
            } => {
                file.sync_all()
                    .map_err(|e| ExportError::Io(partial.clone(), e))?;
                std::fs::rename(&partial, &path).map_err(|e| ExportError::Io(path, e))
            }
        }
    }

    /// A small file written whole (the manifest, the dead letters).
    pub async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), ExportError> {
        let mut upload = self.begin(path).await?;
        self.write(&mut upload, bytes).await?;
        self.finish(upload).await
    }
}
