//! Files of the control state: written durably (a crash leaves the old or the new content) and,
//! where two processes share one, under an advisory lock.

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content, never a mix:
/// a temporary file, fsynced, renamed over, and the folder fsynced.
pub async fn write_durably(path: &std::path::Path, bytes: Vec<u8>) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !tokio::fs::try_exists(dir).await.unwrap_or(false) {
            tokio::fs::create_dir_all(dir).await?;
            // The new folder's entry too, or a power loss could lose the folder and the file.
            if let Some(parent) = dir.parent() {
                let parent = parent.to_path_buf();
                tokio::task::spawn_blocking(move || sync_dir(&parent))
                    .await
                    .map_err(std::io::Error::other)??;
            }
        }
    }
    let target = path.to_path_buf();
    tokio::task::spawn_blocking(move || write_durably_blocking(&target, &bytes))
        .await
        .map_err(std::io::Error::other)?
}

/// [`write_durably`], on the calling thread.
pub fn write_durably_blocking(target: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let file_path = temporary_path(target);
    let mut file = std::fs::File::create(&file_path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&file_path, target)?;
    match target.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// The temporary file `target` is written as before it is renamed: named after the whole file
/// name and the process, so that two files of one stem (`rowcast.json`, `rowcast.jsonl`) or two
/// processes (the daemon saving its checkpoint, a `deadletters` command rewriting the letters)
/// never write one temporary file (one's create would cut the other's, which could then be
/// renamed over its target).
fn temporary_path(target: &std::path::Path) -> std::path::PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Makes the entries of `dir` durable (a rename, a new file). A file system that cannot sync a
/// folder (it answers `EINVAL` or `ENOTSUP`), or a folder this process cannot open for reading,
/// keeps its entries its own way; any other failure of the sync fails the write.
fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    use std::io::ErrorKind;
    let opened = match std::fs::File::open(dir) {
        // A folder this process may write but not read: its entries are the file system's.
        Err(error) if error.kind() == ErrorKind::PermissionDenied => return Ok(()),
        opened => opened?,
    };
    match opened.sync_all() {
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::InvalidInput | ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Runs `work` holding an exclusive lock on `<path>.lock` (an advisory lock of the operating
/// system, so it orders processes: the daemon appending dead letters and a `deadletters`
/// command rewriting the file).
pub async fn with_file_lock<T: Send + 'static>(
    path: &std::path::Path,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let lock_path = std::path::PathBuf::from(format!("{}.lock", path.display()));
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = lock_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        lock.lock()?;
        let result = work();
        let _ = lock.unlock();
        result
    })
    .await
    .map_err(std::io::Error::other)?
}

/// An exclusive advisory lock on `<checkpoint file>.owner`, held while an instance runs on a
/// checkpoint file: the file's owner, as the control table's `owner` is the table's. Dropped
/// (or the process gone, `kill -9` included), the lock is released by the operating system.
#[derive(Debug)]
pub struct FileOwner {
    _lock: std::fs::File,
}

/// The lock file of a checkpoint file.
pub fn owner_path(checkpoint: &std::path::Path) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}.owner", checkpoint.display()))
}

/// Takes [`FileOwner`] of `checkpoint` if no other process holds it: `Ok(None)` when one does.
pub fn try_own(checkpoint: &std::path::Path) -> std::io::Result<Option<FileOwner>> {
    let path = owner_path(checkpoint);
    // An existing lock file is opened for reading (a lock needs no more): one another user made
    // (a command run as root) still serves. Missing folders are made, as for the checkpoint.
    let lock = match std::fs::File::open(&path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?
        }
        opened => opened?,
    };
    match lock.try_lock() {
        Ok(()) => Ok(Some(FileOwner { _lock: lock })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(error)) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rowcast.json` (a checkpoint) and `rowcast.jsonl` (dead letters) in one folder: before,
    /// both were written through `rowcast.tmp`.
    #[test]
    fn files_of_one_stem_have_temporary_files_of_their_own() {
        let json = temporary_path(std::path::Path::new("state/rowcast.json"));
        let jsonl = temporary_path(std::path::Path::new("state/rowcast.jsonl"));
        assert_ne!(json, jsonl);
        assert_eq!(json.parent(), Some(std::path::Path::new("state")));
    }

    #[test]
    fn a_file_written_durably_replaces_the_old_one_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("rowcast-durable-{}", std::process::id()));
        let target = dir.join("new").join("state.json");
        write_durably_blocking_in_new_dir(&target, b"one");
        write_durably_blocking(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(target.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// One owner at a time (two opens, as two processes have: the lock is per open file),
    /// the next one once the first is dropped.
    #[test]
    fn a_checkpoint_file_has_one_owner_at_a_time() {
        let dir = std::env::temp_dir().join(format!("rowcast-owner-{}", std::process::id()));
        let checkpoint = dir.join("state").join("checkpoint.json");
        let first = try_own(&checkpoint).unwrap();
        assert!(first.is_some());
        assert!(try_own(&checkpoint).unwrap().is_none());
        drop(first);
        assert!(try_own(&checkpoint).unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn write_durably_blocking_in_new_dir(target: &std::path::Path, bytes: &[u8]) {
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        write_durably_blocking(target, bytes).unwrap();
    }
}
