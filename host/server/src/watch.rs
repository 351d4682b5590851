//! Optional directory watch: a `.wasm` dropped into the configured folder
//! is loaded as a candidate (or activated, by config), exactly as an admin
//! upload would be. Polling keeps it portable and dependency-free; a swap
//! a couple of seconds late is fine for deployments.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(error) => return tracing::warn!("cannot read {}: {error}", path.display()),
    };
    let loaded = match state
        .runtime
        .load(&bytes, &path.display().to_string())
        .await
    {
        Ok(loaded) => loaded,
        Err(error) => return tracing::warn!("{} was not deployed: {error}", path.display()),
    };
    tracing::info!(sha256 = %loaded.sha256, "loaded {} as a candidate", path.display());
    if activate && state.runtime.active().sha256 != loaded.sha256 {
        match state.runtime.activate(&loaded.sha256).await {
            Ok(_) => tracing::info!(sha256 = %loaded.sha256, "activated {}", path.display()),
            Err(error) => tracing::warn!("{} was not activated: {error}", path.display()),
        }
    }
}

/// `.wasm` files of `dir` with their modification times. A file still
/// being written changes its time again and is simply seen twice; the
/// checks in `Runtime::load` refuse a torn file.
fn scan(dir: &Path) -> HashMap<PathBuf, SystemTime> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
        .filter_map(|path| {
            Some((
                path.clone(),
                std::fs::metadata(&path).ok()?.modified().ok()?,
            ))
        })
        .collect()
}
