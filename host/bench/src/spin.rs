//! The same component under `spin up` (Spin 4.x), for the read scenarios'
//! comparison: `spin.toml` with its sources pointed at the components the
//! bench was given, run from a directory of its own (Spin keeps its SQLite
//! data there), against the standalone reference peers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

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
    let spin = dir.join("spin");
    let unpacked = Command::new("sh")
        .arg("-c")
        .arg("xz -dc \"$1\" > \"$2\" && chmod +x \"$2\"")
        .arg("sh")
        .arg(packed)
        .arg(&spin)
        .status()
        .context("running xz")?;
    if !unpacked.success() {
        bail!("unpacking {} failed: {unpacked}", packed.display());
    }
    Ok(Some(spin))
}

pub struct SpinApp {
    pub process: ServerProcess,
    pub api: Api,
    _dir: tempfile::TempDir,
}

/// What `spin.toml` names, replaced by the files the bench runs.
const BOOKING_SOURCE: &str = "source = \"target/wasm32-wasip2/guest/booking_component.wasm\"";
const ADAPTERS_PATH: &str = "path = \"target/spin/spin_adapters.wasm\"";

impl SpinApp {
    pub async fn start(
        spin: &Path,
        manifest: &Path,
        component: &Path,
        adapters: &Path,
    ) -> anyhow::Result<SpinApp> {
        let text = std::fs::read_to_string(manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        if !text.contains(BOOKING_SOURCE) || !text.contains(ADAPTERS_PATH) {
            bail!(
                "{} no longer names the component files the bench replaces",
                manifest.display()
            );
        }
        let absolute = |path: &Path| std::path::absolute(path).map(|p| p.display().to_string());
        let text = text
            .replace(
                BOOKING_SOURCE,
                &format!("source = {:?}", absolute(component)?),
            )
            .replace(ADAPTERS_PATH, &format!("path = {:?}", absolute(adapters)?));
        let dir = tempfile::tempdir()?;
        let manifest = dir.path().join("spin.toml");
        std::fs::write(&manifest, text)?;

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
