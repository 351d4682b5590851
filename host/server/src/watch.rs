//! Optional directory watch: a `.wasm` dropped into the configured folder
//! is loaded as a candidate (or activated, by config), exactly as an admin
//! upload would be. Polling keeps it portable and dependency-free; a swap
//! a couple of seconds late is fine for deployments.
//!
//! Only regular files are read, and only up to the component size limit:
//! a symlink could make the host deploy (or read) a file from anywhere,
//! and opening a FIFO would block the watch until someone writes to it.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use booking_runtime::component::MAX_COMPONENT_BYTES;
use tokio::sync::watch;

use crate::app::AppState;

const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Starts watching `dir` until `stop` turns true. Files already there now
/// are not deployments.
pub fn start(
    state: Arc<AppState>,
    dir: PathBuf,
    activate: bool,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tracing::info!(
        "watching {} for new logic components (activate: {activate})",
        dir.display()
    );
    let seen = scan(&dir);
    tokio::spawn(run(state, dir, activate, seen, stop))
}

async fn run(
    state: Arc<AppState>,
    dir: PathBuf,
    activate: bool,
    mut seen: HashMap<PathBuf, SystemTime>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    loop {
        // Between deployments only: a load is never cut halfway.
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = ticker.tick() => {}
        }
        for (path, modified) in scan(&dir) {
            if seen.get(&path) == Some(&modified) {
                continue;
            }
            seen.insert(path.clone(), modified);
            deploy(&state, &path, activate).await;
        }
    }
}

async fn deploy(state: &AppState, path: &Path, activate: bool) {
    let file = path.to_owned();
    let bytes = match tokio::task::spawn_blocking(move || read_candidate(&file)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) => return tracing::warn!("{} was not read: {error}", path.display()),
        Err(error) => return tracing::warn!("reading {} failed: {error}", path.display()),
    };
    let loaded = match crate::deploy::upload(state, &bytes, &path.display().to_string()).await {
        Ok(loaded) => loaded,
        Err(error) => return tracing::warn!("{} was not deployed: {error}", path.display()),
    };
    tracing::info!(sha256 = %loaded.sha256, "loaded {} as a candidate", path.display());
    if activate && state.runtime.active().sha256 != loaded.sha256 {
        let change = crate::deploy::Change::Activate(loaded.sha256.clone());
        match crate::deploy::change(state, change).await {
            Ok(_) => tracing::info!(sha256 = %loaded.sha256, "activated {}", path.display()),
            Err(error) => tracing::warn!("{} was not activated: {error}", path.display()),
        }
    }
}

/// The bytes of a regular file of at most `MAX_COMPONENT_BYTES`, checked
/// on the open file itself (no symlink is followed, and a FIFO opens
/// without waiting for a writer, then is refused).
fn read_candidate(path: &Path) -> std::io::Result<Vec<u8>> {
    let refused = |reason: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, reason);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|error| match error.raw_os_error() {
            Some(libc::ELOOP) => refused("it is a symbolic link".to_owned()),
            _ => error,
        })?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(refused("it is not a regular file".to_owned()));
    }
    if metadata.len() > MAX_COMPONENT_BYTES as u64 {
        let size = metadata.len();
        return Err(refused(format!(
            "it is {size} bytes; the limit is {MAX_COMPONENT_BYTES}"
        )));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // One byte past the limit, so a file grown since is refused by the load.
    file.take(MAX_COMPONENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// `.wasm` entries of `dir` with their modification times (of the entry
/// itself: symlinks are not followed). A file still being written changes
/// its time again and is simply seen twice; the checks in `Runtime::load`
/// refuse a torn file.
fn scan(dir: &Path) -> HashMap<PathBuf, SystemTime> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "wasm"))
        .filter_map(|entry| Some((entry.path(), entry.metadata().ok()?.modified().ok()?)))
        .collect()
}
