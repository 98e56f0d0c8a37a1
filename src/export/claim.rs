//! An export claims its destination as it opens it ([`CLAIM_FILE`], created only if it does
//! not exist: `O_EXCL` in a directory, `If-None-Match: *` in S3, `s3.rs`) and gives the claim
//! up when it ends, done or failed (`Destination::release`). Without it two exports started
//! into one destination at once (a retried Job whose first pod still runs) both found it empty,
//! then wrote the same file names over each other, and the clean-up of a failed one removed the
//! other's files by path.

use std::io::Write;

use super::ExportError;

/// The claim of a destination by the export writing into it (its process, host and start).
pub const CLAIM_FILE: &str = "export.claim";

/// Why an export is refused a destination another export has claimed.
pub const CLAIMED: &str = "another export is writing here (export.claim exists; if no export runs there, one was killed or could not remove its claim: with a manifest.json beside it, that export finished and only the claim is left; without one, remove what it left, the claim with it, and export again)";

/// What a claim says of its export, for whoever finds it; the same bytes all through a
/// process, so that an export removes only its own claim.
pub fn claim_text() -> Vec<u8> {
    static TEXT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        let claim = serde_json::json!({
            "pid": std::process::id(),
            "host": std::env::var("HOSTNAME").unwrap_or_default(),
            "started_us": crate::util::now_micros(),
        });
        format!("{claim}\n").into_bytes()
    })
    .clone()
}

/// Claims `dir` (made if it does not exist) with a file created only if none is there.
pub fn claim_dir(dir: &std::path::Path) -> Result<(), ExportError> {
    std::fs::create_dir_all(dir).map_err(|e| ExportError::Io(dir.to_path_buf(), e))?;
    let path = dir.join(CLAIM_FILE);
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ExportError::Destination(format!(
                "{}: {CLAIMED}",
                dir.display()
            )))
        }
        Err(error) => return Err(ExportError::Io(path, error)),
    };
    let written = file.write_all(&claim_text()).and_then(|()| file.sync_all());
    if let Err(error) = written {
        // Made by this export (`create_new`): not left behind half written.
        let _ = std::fs::remove_file(&path);
        return Err(ExportError::Io(path, error));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Of two claims of one directory the second is refused, saying why, until the first is
    /// given up.
    #[tokio::test]
    async fn a_claimed_directory_is_refused_until_released() {
        let dir = std::env::temp_dir().join(format!("rowcast-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        claim_dir(&dir).unwrap();
        let again = claim_dir(&dir).unwrap_err().to_string();
        assert!(again.contains("another export is writing here"), "{again}");
        let dest = crate::export::dest::Destination::Dir(dir.clone());
        dest.release().await;
        claim_dir(&dir).unwrap();
        // Another export's claim (this one's removed by hand, another made since) stays.
        std::fs::write(dir.join(CLAIM_FILE), b"{\"pid\":1}\n").unwrap();
        dest.release().await;
        assert!(dir.join(CLAIM_FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
