//! The data files of one table: gzip-compressed DynamoDB JSON lines, a new file whenever the
//! current one holds `max_bytes` of uncompressed lines. Compressed output is handed to the
//! destination in pieces of at most [`PIECE_BYTES`], so memory stays flat whatever the table.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use super::dest::{Destination, Upload};
use super::ExportError;

/// Compressed bytes gathered before they go to the destination (one S3 part each).
pub const PIECE_BYTES: usize = super::s3::MIN_PART_BYTES;

/// Compressed bytes of one file at most: 9,000 parts of [`PIECE_BYTES`].
pub const MAX_FILE_COMPRESSED: u64 = 9_000 * PIECE_BYTES as u64;

/// One finished data file, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// Relative to the export's root (`<table>/data/part-00000.json.gz`).
    pub path: String,
    pub items: u64,
    /// Compressed size.
    pub bytes: u64,
    /// Size of the JSON lines before compression.
    pub json_bytes: u64,
}

struct Open {
    path: String,
    upload: Upload,
    encoder: GzEncoder<Vec<u8>>,
    items: u64,
    json_bytes: u64,
    bytes: u64,
}

/// The files of one DynamoDB table.
pub struct TableFiles {
    table: String,
    max_bytes: u64,
    open: Option<Open>,
    pub files: Vec<DataFile>,
}

impl TableFiles {
    pub fn new(table: &str, max_bytes: u64) -> Self {
        TableFiles {
            table: table.to_string(),
            max_bytes: max_bytes.max(1),
            open: None,
            files: Vec::new(),
        }
    }

    /// The prefix under which the table's files are (an S3 import's `S3KeyPrefix`).
    pub fn prefix(table: &str) -> String {
        format!("{table}/data/")
    }

    pub async fn write_line(&mut self, dest: &Destination, line: &[u8]) -> Result<(), ExportError> {
        if self.open.is_none() {
            let path = format!(
                "{}part-{:05}.json.gz",
                Self::prefix(&self.table),
                self.files.len()
            );
            let upload = dest.begin(&path).await?;
            self.open = Some(Open {
                path,
                upload,
                encoder: GzEncoder::new(Vec::new(), Compression::default()),
                items: 0,
                json_bytes: 0,
                bytes: 0,
            });
        }
        let open = self.open.as_mut().expect("opened above");
        open.encoder
            .write_all(line)
            .map_err(ExportError::Compress)?;
        open.items += 1;
        open.json_bytes += line.len() as u64;
        if open.encoder.get_ref().len() >= PIECE_BYTES {
            let piece = std::mem::take(open.encoder.get_mut());
            open.bytes += piece.len() as u64;
            dest.write(&mut open.upload, piece).await?;
        }
        // S3 takes 10,000 parts: a file ends well before, however little its lines compress.
        if open.json_bytes >= self.max_bytes || open.bytes >= MAX_FILE_COMPRESSED {
            self.finish_file(dest).await?;
        }
        Ok(())
    }

    async fn finish_file(&mut self, dest: &Destination) -> Result<(), ExportError> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        let rest = match open.encoder.finish() {
            Ok(rest) => rest,
            Err(error) => {
                dest.abort(open.upload).await;
                return Err(ExportError::Compress(error));
            }
        };
        open.bytes += rest.len() as u64;
        if let Err(error) = dest.write(&mut open.upload, rest).await {
            dest.abort(open.upload).await;
            return Err(error);
        }
        dest.finish(open.upload).await?;
        self.files.push(DataFile {
            path: open.path,
            items: open.items,
            bytes: open.bytes,
            json_bytes: open.json_bytes,
        });
        Ok(())
    }

    /// Gives up the table's files (after a failure anywhere): the one being written and those
    /// already complete, so that the destination holds nothing an import could take.
    pub async fn abort(&mut self, dest: &Destination) {
        if let Some(open) = self.open.take() {
            dest.abort(open.upload).await;
        }
        for file in self.files.drain(..) {
            dest.remove(&file.path).await;
        }
    }

    /// Closes the last file; the table's files are then complete.
    pub async fn finish(&mut self, dest: &Destination) -> Result<(), ExportError> {
        self.finish_file(dest).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[tokio::test]
    async fn a_new_file_begins_past_the_size_and_every_line_is_in_one() {
        let dir = std::env::temp_dir().join(format!("rowcast-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let dest = Destination::open(dir.to_str().unwrap(), None, None)
            .await
            .unwrap();
        let mut files = TableFiles::new("t", 100);
        for i in 0..25 {
            let line = format!("{{\"Item\":{{\"pk\":{{\"S\":\"{i:040}\"}}}}}}\n");
            files.write_line(&dest, line.as_bytes()).await.unwrap();
        }
        files.finish(&dest).await.unwrap();
        // 61-byte lines, a new file once 100 bytes are in one: two lines per file.
        assert_eq!(files.files.len(), 13);
        assert_eq!(files.files[0].path, "t/data/part-00000.json.gz");
        let mut all = String::new();
        for file in &files.files {
            let raw = std::fs::File::open(dir.join(&file.path)).unwrap();
            let mut text = String::new();
            flate2::read::GzDecoder::new(raw)
                .read_to_string(&mut text)
                .unwrap();
            assert_eq!(text.lines().count() as u64, file.items);
            assert_eq!(text.len() as u64, file.json_bytes);
            assert_eq!(
                std::fs::metadata(dir.join(&file.path)).unwrap().len(),
                file.bytes
            );
            all.push_str(&text);
        }
        assert_eq!(all.lines().count(), 25);
        assert!(!std::fs::read_dir(dir.join("t/data")).unwrap().any(|e| e
            .unwrap()
            .path()
            .to_string_lossy()
            .ends_with(".partial")));
        dest.release().await;
        let again = Destination::open(dir.to_str().unwrap(), None, None).await;
        let refused = again.err().expect("refused").to_string();
        assert!(refused.contains("not empty"), "{refused}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
