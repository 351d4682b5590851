//! The host under test, as a child process on loopback ports with the
//! embedded defaults (SQLite) in its own data directory — the way it runs
//! in production, so its RSS and CPU time are its own. The reference peers
//! run in-process, or standalone when it is compared with `spin up`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::api::Api;
use crate::peers::StandalonePeers;
use crate::process::{ServerProcess, free_port};

/// Where the host binary and components are; all overridable by flags.
#[derive(Debug, Clone)]
pub struct HostBinary {
    pub binary: PathBuf,
    pub component: PathBuf,
}

pub struct Host {
    pub process: ServerProcess,
    pub api: Api,
    pub admin_url: String,
    /// The admin API's token, which the host generates in its data directory.
    pub admin_token: String,
    /// Process start → first successful GraphQL answer.
    pub ready_after: Duration,
}

impl Host {
    /// Starts `--logic <logic>` on `data_dir` with in-process reference
    /// peers and waits until it answers `{ logicVersion }`.
    pub async fn start(bin: &HostBinary, logic: &str, data_dir: &Path) -> anyhow::Result<Host> {
        Host::start_with(bin, logic, data_dir, None).await
    }

    /// The same, calling `peers` (standalone) when given.
    pub async fn start_with(
        bin: &HostBinary,
        logic: &str,
        data_dir: &Path,
        peers: Option<&StandalonePeers>,
    ) -> anyhow::Result<Host> {
        Host::start_configured(bin, logic, data_dir, peers, &[]).await
    }

    /// The same, with `settings` added to the host's environment (its
    /// configuration variables, e.g. `MAX_CONNECTIONS`).
    pub async fn start_configured(
        bin: &HostBinary,
        logic: &str,
        data_dir: &Path,
        peers: Option<&StandalonePeers>,
        settings: &[(&str, String)],
    ) -> anyhow::Result<Host> {
        let (port, admin_port) = (free_port()?, free_port()?);
        let started = Instant::now();
        let mut command = Command::new(&bin.binary);
        command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--component")
            .arg(&bin.component)
            .args(["--logic", logic])
            // No expiry sweeps during a run: they would compete for CPU.
            .args(["--sweep-interval", "3600"])
            .env("RUST_LOG", "warn")
            // The bench does not log in: every server runs with
            // authentication off, so the comparison stays fair.
            .env("AUTH_MODE", "disabled")
            .envs(settings.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        match peers {
            Some(peers) => command.envs(peers.service_urls()),
            None => command.arg("--reference-peers"),
        };
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.binary.display()))?;
        let mut host = Host {
            process: ServerProcess::new(child),
            api: Api::new(&format!("http://127.0.0.1:{port}/graphql"))?,
            admin_url: format!("http://127.0.0.1:{admin_port}/admin"),
            admin_token: String::new(),
            ready_after: Duration::ZERO,
        };
        host.ready_after = host
            .process
            .wait_until_ready(&host.api, started, Duration::from_secs(120))
            .await?;
        let token_file = data_dir.join("admin-token");
        host.admin_token = std::fs::read_to_string(&token_file)
            .with_context(|| format!("reading {}", token_file.display()))?
            .trim()
            .to_owned();
        Ok(host)
    }
}
