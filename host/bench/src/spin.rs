//! The same component under `spin up` (Spin 4.x), for the read scenarios'
//! comparison: `spin.toml` with its sources pointed at the components the
//! bench was given, run from a directory of its own (Spin keeps its SQLite
//! data there), against the standalone reference peers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use test_support::spin::{self, Manifest};

use crate::api::Api;
use crate::process::{ServerProcess, free_port};

/// The Spin CLI: `explicit` (`--spin` or `SPIN_BIN`), else `packed`
/// (`spin.xz`, see `../shared/tools/README.md`) unpacked into `dir`; `None`
/// when there is neither.
pub fn find(explicit: Option<&Path>, packed: &Path, dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    if let Some(spin) = explicit {
        return Ok(Some(spin.to_owned()));
    }
    if !packed.exists() {
        return Ok(None);
    }
    spin::unpack(packed, dir)
        .map(Some)
        .map_err(anyhow::Error::msg)
}

pub struct SpinApp {
    pub process: ServerProcess,
    pub api: Api,
    _dir: tempfile::TempDir,
}

impl SpinApp {
    pub async fn start(
        spin: &Path,
        manifest: &Path,
        component: &Path,
        adapters: &Path,
    ) -> anyhow::Result<SpinApp> {
        let text = Manifest::read(manifest)
            .and_then(|manifest| manifest.with_components(component, adapters))
            .map_err(anyhow::Error::msg)?;
        let dir = tempfile::tempdir()?;
        let manifest = dir.path().join("spin.toml");
        std::fs::write(&manifest, text.text())?;

        let port = free_port()?;
        let started = Instant::now();
        let child = Command::new(spin)
            .arg("up")
            .arg("--from")
            .arg(&manifest)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // As our host runs in the bench: authentication off, and no
            // broker (the SQLite event log is the only sink).
            .args(["--env", "AUTH_MODE=disabled"])
            .args(["--variable", "mqtt_address="])
            .env("HOME", dir.path())
            .env("RUST_LOG", "warn")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", spin.display()))?;
        let mut app = SpinApp {
            process: ServerProcess::new(child),
            api: Api::new(&format!("http://127.0.0.1:{port}/graphql"))?,
            _dir: dir,
        };
        app.process
            .wait_until_ready(&app.api, started, Duration::from_secs(120))
            .await?;
        Ok(app)
    }
}
