//! A server under test as a child process: its start (a free port, the
//! wait for its first answer), what `/proc` says about it (peak RSS, CPU
//! time), and its end with the bench.

use std::net::TcpListener;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::api::Api;

/// A port nobody listens on now. The server binds it a moment later; on a
/// loopback-only benchmark machine nothing else races for it.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    pub fn new(child: Child) -> ServerProcess {
        ServerProcess { child }
    }

    /// Waits until `api` answers `{ logicVersion }`; returns how long
    /// that took from `started`.
    pub async fn wait_until_ready(
        &mut self,
        api: &Api,
        started: Instant,
        within: Duration,
    ) -> anyhow::Result<Duration> {
        loop {
            if api.logic_version().await.is_ok() {
                return Ok(started.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited before answering: {status}");
            }
            if started.elapsed() > within {
                bail!("the server did not answer within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The process and its descendants: `spin up` serves from a child
    /// process of its own.
    fn tree(&self) -> Vec<u32> {
        let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                let parent = stat_fields(&stat)?.get(1)?.parse().ok()?;
                Some((pid, parent))
            })
            .collect();
        let mut tree = vec![self.child.id()];
        let mut next = 0;
        while next < tree.len() {
            let parent = tree[next];
            tree.extend(
                parents
                    .iter()
                    .filter(|(_, p)| *p == parent)
                    .map(|(pid, _)| *pid),
            );
            next += 1;
        }
        tree
    }

    /// Peak resident set size so far (VmHWM), in MiB, summed over the
    /// process tree.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        self.sum_kib("status", "VmHWM:").map(|kib| kib / 1024.0)
    }

    /// Resident set size now (VmRSS), in MiB, summed over the process
    /// tree.
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        self.sum_kib("status", "VmRSS:").map(|kib| kib / 1024.0)
    }

    /// Proportional set size now, in MiB, summed over the process tree.
    /// Unlike RSS it counts a page mapped at several addresses once: the
    /// component's memory image is mapped into every pool slot that ran,
    /// and RSS counts its pages once per slot.
    pub fn pss_mib(&self) -> anyhow::Result<f64> {
        self.sum_kib("smaps_rollup", "Pss:").map(|kib| kib / 1024.0)
    }

    /// `field` (in kB) of `/proc/<pid>/<file>`, summed over the tree.
    fn sum_kib(&self, file: &str, field: &str) -> anyhow::Result<f64> {
        let mut kib = 0.0;
        for pid in self.tree() {
            let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/{file}")) else {
                continue;
            };
            kib += text
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .with_context(|| format!("no {field} in /proc/{pid}/{file}"))?;
        }
        Ok(kib)
    }

    /// CPU time used so far, user and system, all threads, summed over the
    /// process tree (`/proc/<pid>/stat` fields 14 and 15, clock ticks).
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let mut ticks = 0;
        for pid in self.tree() {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let fields = stat_fields(&stat).context("malformed /proc/<pid>/stat")?;
            // `fields` starts at field 3, so fields 14 and 15 are 11 and 12.
            ticks += [11, 12]
                .iter()
                .map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
                .sum::<Option<u64>>()
                .context("no utime/stime in /proc/<pid>/stat")?;
        }
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let per_second = u64::try_from(per_second).unwrap_or(100).max(1);
        Ok(Duration::from_micros(ticks * 1_000_000 / per_second))
    }
}

/// The fields of `/proc/<pid>/stat` from the third on: the command name
/// (the second) is in parentheses and may hold spaces.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
