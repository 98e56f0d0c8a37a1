//! Files of the control state: written durably (a crash leaves the old or the new content) and,
//! where two processes share one, under an advisory lock.

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content, never a mix:
/// a temporary file, fsynced, renamed over, and the folder fsynced.
pub async fn write_durably(path: &std::path::Path, bytes: Vec<u8>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let target = path.to_path_buf();
    tokio::task::spawn_blocking(move || write_durably_blocking(&target, &bytes))
        .await
        .map_err(std::io::Error::other)?
}

/// [`write_durably`], on the calling thread.
pub fn write_durably_blocking(target: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let file_path = target.with_extension("tmp");
    let mut file = std::fs::File::create(&file_path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&file_path, target)?;
    if let Some(dir) = target.parent() {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
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
