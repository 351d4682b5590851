//! The host under test, as a child process on loopback ports with the
//! embedded defaults (SQLite, in-process reference peers) in its own data
//! directory — the way it runs in production, so its RSS is its own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::api::Api;

/// Where the host binary and components are; all overridable by flags.
#[derive(Debug, Clone)]
pub struct HostBinary {
    pub binary: PathBuf,
    pub component: PathBuf,
}

pub struct Host {
    child: Child,
    pub api: Api,
    pub admin_url: String,
    /// The admin API's token, which the host generates in its data directory.
    pub admin_token: String,
    /// Process start → first successful GraphQL answer.
    pub ready_after: Duration,
}

/// A port nobody listens on now. The host binds it a moment later; on a
/// loopback-only benchmark machine nothing else races for it.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Host {
    /// Starts `--logic <logic>` on `data_dir` and waits until it answers
    /// `{ logicVersion }`.
    pub async fn start(bin: &HostBinary, logic: &str, data_dir: &Path) -> anyhow::Result<Host> {
        let (port, admin_port) = (free_port()?, free_port()?);
        let started = Instant::now();
        let child = Command::new(&bin.binary)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--component")
            .arg(&bin.component)
            .args(["--logic", logic])
            .arg("--reference-peers")
            // No expiry sweeps during a run: they would compete for CPU.
            .args(["--sweep-interval", "3600"])
            .env("RUST_LOG", "warn")
            // The bench does not log in: both builds run with authentication
            // off, the same for both so the comparison stays fair.
            .env("AUTH_MODE", "disabled")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.binary.display()))?;
        let mut host = Host {
            child,
            api: Api::new(&format!("http://127.0.0.1:{port}/graphql"))?,
            admin_url: format!("http://127.0.0.1:{admin_port}/admin"),
            admin_token: String::new(),
            ready_after: Duration::ZERO,
        };
        let deadline = started + Duration::from_secs(120);
        loop {
            if host.api.logic_version().await.is_ok() {
                host.ready_after = started.elapsed();
                let token_file = data_dir.join("admin-token");
                host.admin_token = std::fs::read_to_string(&token_file)
                    .with_context(|| format!("reading {}", token_file.display()))?
                    .trim()
                    .to_owned();
                return Ok(host);
            }
            if let Some(status) = host.child.try_wait()? {
                bail!("the host exited before answering: {status}");
            }
            if Instant::now() > deadline {
                bail!("the host did not answer within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Peak resident set size so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmHWM in /proc/<pid>/status")?;
        Ok(kib / 1024.0)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
