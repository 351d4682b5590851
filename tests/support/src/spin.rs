//! The Spin CLI for the tests and the bench, and `spin.toml` rewritten for
//! a run of its own. The CLI is `SPIN_BIN`, else the Spin 4.0.2 packed
//! beside the checkout (`../shared/tools/spin.xz`, see its README),
//! unpacked with `xz`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Names a Spin CLI to use instead of the packed one.
pub const SPIN_BIN_ENV: &str = "SPIN_BIN";

/// The repository's root (this crate is `tests/support`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the packed CLI lies in a checkout with the shared tools beside it.
pub fn packed_cli() -> PathBuf {
    workspace_root().join("../shared/tools/spin.xz")
}

/// Unpacks the packed CLI `packed` into `dir`; returns its path.
pub fn unpack(packed: &Path, dir: &Path) -> Result<PathBuf, String> {
    let spin = dir.join("spin");
    // Written under another name and renamed: a reader never sees half.
    let partial = dir.join("spin.partial");
    let unpacked = Command::new("sh")
        .arg("-c")
        .arg("xz -dc \"$1\" > \"$2\" && chmod +x \"$2\" && mv \"$2\" \"$3\"")
        .arg("sh")
        .arg(packed)
        .arg(&partial)
        .arg(&spin)
        .status()
        .map_err(|error| format!("running xz: {error}"))?;
    if !unpacked.success() {
        return Err(format!("unpacking {} failed: {unpacked}", packed.display()));
    }
    Ok(spin)
}

/// The Spin CLI for the tests: `SPIN_BIN`, else the packed one unpacked
/// once per test process into `dir`. With neither, `None` and a loud
/// message outside CI (the caller skips); in CI (`CI` set) a panic.
pub fn cli(dir: &Path) -> Option<PathBuf> {
    static CLI: OnceLock<Option<PathBuf>> = OnceLock::new();
    CLI.get_or_init(|| {
        if let Some(spin) = std::env::var_os(SPIN_BIN_ENV) {
            return Some(PathBuf::from(spin));
        }
        let packed = packed_cli();
        if packed.exists() {
            std::fs::create_dir_all(dir).expect("a directory for the Spin CLI");
            return Some(unpack(&packed, dir).unwrap_or_else(|error| panic!("{error}")));
        }
        let missing = format!(
            "no Spin CLI: {SPIN_BIN_ENV} is unset and {} is missing",
            packed.display()
        );
        if std::env::var_os("CI").is_some() {
            panic!("{missing}; in CI the Spin tests must run");
        }
        // Straight to stderr, as `servers::service_url` does: a skip must
        // not look like a pass.
        let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {missing}. ***\n");
        None
    })
    .clone()
}

/// What `spin.toml` names, replaced by the files a run uses.
const BOOKING_SOURCE: &str = "source = \"target/wasm32-wasip2/guest/booking_component.wasm\"";
const ADAPTERS_PATH: &str = "path = \"target/spin/spin_adapters.wasm\"";
const ALLOWED_HOSTS: &str = "allowed_outbound_hosts = [";

/// The repository's `spin.toml`, rewritten: the components at absolute
/// paths, optionally other outbound hosts. Everything else (variables,
/// environment, SQLite, the dependency) stays as shipped, so a run tests
/// the manifest users deploy.
pub struct Manifest {
    text: String,
}

impl Manifest {
    /// The repository's `spin.toml`.
    pub fn of_workspace() -> Result<Manifest, String> {
        Manifest::read(&workspace_root().join("spin.toml"))
    }

    pub fn read(path: &Path) -> Result<Manifest, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("reading {}: {error}", path.display()))?;
        for expected in [BOOKING_SOURCE, ADAPTERS_PATH, ALLOWED_HOSTS] {
            if !text.contains(expected) {
                return Err(format!("{} no longer has `{expected}`", path.display()));
            }
        }
        Ok(Manifest { text })
    }

    /// The booking component and the Spin adapter at these files.
    pub fn with_components(mut self, booking: &Path, adapters: &Path) -> Result<Manifest, String> {
        let absolute = |path: &Path| {
            std::path::absolute(path)
                .map(|path| path.display().to_string())
                .map_err(|error| format!("{}: {error}", path.display()))
        };
        self.text = self
            .text
            .replace(
                BOOKING_SOURCE,
                &format!("source = {:?}", absolute(booking)?),
            )
            .replace(ADAPTERS_PATH, &format!("path = {:?}", absolute(adapters)?));
        Ok(self)
    }

    /// `allowed_outbound_hosts` of the booking component replaced by
    /// `hosts` (e.g. `http://127.0.0.1:40123`).
    pub fn with_allowed_outbound_hosts(mut self, hosts: &[String]) -> Manifest {
        let start = self.text.find(ALLOWED_HOSTS).expect("checked when read");
        let end = start + self.text[start..].find(']').expect("the list ends") + 1;
        let list = hosts
            .iter()
            .map(|host| format!("{host:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.text
            .replace_range(start..end, &format!("allowed_outbound_hosts = [{list}]"));
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}
