//! Scenario 5 and the swap benchmark: instantiation of the component on
//! its own (in this process, pooling allocator as the host configures it),
//! cold start of the host with and without the precompiled component
//! cache, and the admin API's load and activate with an empty and a warm
//! cache.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use booking_logic::testing::Fakes;
use booking_runtime::{EngineLimits, Runtime, SandboxEngine};
use hdrhistogram::Histogram;

use crate::host::{Host, HostBinary};

pub struct Instantiation {
    pub count: u64,
    pub latency_ns: Histogram<u64>,
}

/// `count` instantiate-and-drop cycles of the component, one at a time.
pub async fn instantiation(component: &Path, count: u64) -> anyhow::Result<Instantiation> {
    let bytes =
        std::fs::read(component).with_context(|| format!("reading {}", component.display()))?;
    let engine = SandboxEngine::new(EngineLimits::default())?;
    // No calls reach the ports: in-memory fakes stand in for the adapters.
    let ports = Fakes::new(0).ports();
    let runtime = Runtime::new(engine, None, ports, Vec::new(), &bytes, "bench").await?;
    // 1 ns to 10 s.
    let mut latency_ns = Histogram::new_with_bounds(1, 10_000_000_000, 3)?;
    // Warm the pool's slots and the allocator first.
    for _ in 0..100 {
        runtime.instantiate_and_drop().await?;
    }
    for _ in 0..count {
        let started = Instant::now();
        runtime.instantiate_and_drop().await?;
        latency_ns.saturating_record(started.elapsed().as_nanos() as u64);
    }
    Ok(Instantiation { count, latency_ns })
}

pub struct ColdStarts {
    pub without_cache: Duration,
    pub with_cache: Duration,
    /// POST /admin/versions with the v2 component.
    pub load_compiled: Duration,
    pub load_cached: Duration,
    /// POST /admin/versions/{sha}/activate.
    pub activate: Duration,
}

/// Starts the host twice on one data directory (compiling, then reading
/// the cache), uploading and activating v2 each time.
pub async fn cold_starts(bin: &HostBinary, v2: &Path) -> anyhow::Result<ColdStarts> {
    let data_dir = tempfile::tempdir()?;
    let v2 = std::fs::read(v2).with_context(|| format!("reading {}", v2.display()))?;
    let first = Host::start(bin, "wasm", data_dir.path()).await?;
    let (load_compiled, sha) = upload(&first, &v2).await?;
    let activate = timed_post(&first, &format!("versions/{sha}/activate")).await?;
    let without_cache = first.ready_after;
    drop(first);
    let second = Host::start(bin, "wasm", data_dir.path()).await?;
    let (load_cached, _) = upload(&second, &v2).await?;
    Ok(ColdStarts {
        without_cache,
        with_cache: second.ready_after,
        load_compiled,
        load_cached,
        activate,
    })
}

async fn upload(host: &Host, bytes: &[u8]) -> anyhow::Result<(Duration, String)> {
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}/versions", host.admin_url))
        .bearer_auth(&host.admin_token)
        .header(reqwest::header::CONTENT_TYPE, "application/wasm")
        .body(bytes.to_vec())
        .send()
        .await?;
    let took = started.elapsed();
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    if !status.is_success() {
        bail!("uploading v2 answered {status}: {body}");
    }
    let sha = body["version"]["sha256"]
        .as_str()
        .context("no version.sha256 in the upload answer")?;
    Ok((took, sha.to_owned()))
}

async fn timed_post(host: &Host, path: &str) -> anyhow::Result<Duration> {
    let url = format!("{}/{path}", host.admin_url);
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&host.admin_token)
        .send()
        .await?;
    let took = started.elapsed();
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    Ok(took)
}
