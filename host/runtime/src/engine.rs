//! The shared wasmtime engine. One per process: compiled components,
//! the instance pool and the epoch clock all belong to it.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; the granularity of CPU deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Bytes of a pool slot's linear memory kept resident between instances.
const KEEP_RESIDENT: usize = 1 << 20;

/// Per-request sandbox limits.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    /// Linear memory one request may use.
    pub memory_bytes: usize,
    /// Time a request may spend running guest code (time waiting on host
    /// calls does not count).
    pub cpu_time: Duration,
    /// Wall-clock time a request (or a sweep) may take in all, waits
    /// included; past it the instance is dropped where it stands, as if
    /// the process had died, which the logic is built to survive.
    pub deadline: Duration,
    /// Requests that can run at once. The pool has one slot more, kept
    /// for the sweep and smoke tests, so they run when requests hold all.
    pub max_concurrent_instances: u32,
    /// How long a request waits for a free slot before it is shed.
    pub queue_wait: Duration,
}

/// Pool slots kept for the host's own calls (the sweep, smoke tests).
pub const MAINTENANCE_SLOTS: u32 = 1;

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            memory_bytes: 64 << 20,
            cpu_time: Duration::from_secs(2),
            deadline: Duration::from_secs(60),
            max_concurrent_instances: 256,
            queue_wait: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
pub struct SandboxEngine {
    pub engine: Engine,
    pub limits: EngineLimits,
    _ticker: Arc<EpochTicker>,
}

impl SandboxEngine {
    pub fn new(limits: EngineLimits) -> anyhow::Result<SandboxEngine> {
        let mut pool = PoolingAllocationConfig::default();
        let instances = limits.max_concurrent_instances + MAINTENANCE_SLOTS;
        // A component instance holds a few core instances (the guest plus
        // WASI adapter shims), each with memories and tables: the booking
        // component takes more than 4 tables, which a pool of 4 busy
        // slots ran out of (tables are cheap: a few pages each).
        pool.total_component_instances(instances)
            .total_core_instances(instances * 4)
            .total_memories(instances * 2)
            .total_tables(instances * 8)
            .max_memory_size(limits.memory_bytes);
        // Resetting a slot for its next instance (BENCHMARKS.md, "Pool
        // slots kept resident"). By default wasmtime `madvise`s a slot's
        // memory and tables away when its instance goes, so the next request
        // page-faults ~30 fresh pages back in and every madvise flushes the
        // TLBs of both cores: 15–20 % of the host's CPU under load. With
        // PAGEMAP_SCAN (Linux 6.7+) wasmtime finds the pages a request
        // dirtied and restores just those with memcpy/memset, so they stay
        // resident for the slot's next request; no state survives, the
        // contents are back to the component's initial image. Without the
        // ioctl keep the default: a blind memset of the whole limit would
        // cost far more. At most KEEP_RESIDENT bytes stay per slot (a
        // request dirties ~130 KiB; one that hoards memory gets the rest
        // madvised away as before), so 256 slots pin at most 256 MiB. What
        // still needs a madvise goes in batches.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(Enabled::Yes)
                .linear_memory_keep_resident(KEEP_RESIDENT.min(limits.memory_bytes))
                .table_keep_resident(64 << 10);
        }
        pool.decommit_batch_size(32);

        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .wasm_component_model(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        configure_profiler(&mut config)?;
        let engine = Engine::new(&config)?;
        let ticker = Arc::new(EpochTicker::start(engine.clone())?);
        Ok(SandboxEngine {
            engine,
            limits,
            _ticker: ticker,
        })
    }
}

/// Environment variable that turns on wasmtime's profiler hooks so `perf`
/// can name guest functions: `perfmap` (writes `/tmp/perf-<pid>.map`) or
/// `jitdump` (for `perf inject --jit`). Needs the `profiling` feature of
/// this crate; off by default.
pub const PROFILER_ENV: &str = "BOOKING_WASM_PROFILER";

fn configure_profiler(config: &mut Config) -> anyhow::Result<()> {
    let Ok(choice) = std::env::var(PROFILER_ENV) else {
        return Ok(());
    };
    #[cfg(feature = "profiling")]
    {
        use wasmtime::ProfilingStrategy;
        let strategy = match choice.as_str() {
            "perfmap" => ProfilingStrategy::PerfMap,
            "jitdump" => ProfilingStrategy::JitDump,
            "" | "none" => ProfilingStrategy::None,
            other => {
                anyhow::bail!("{PROFILER_ENV} must be perfmap, jitdump or none, got {other:?}")
            }
        };
        config.profiler(strategy);
        Ok(())
    }
    #[cfg(not(feature = "profiling"))]
    {
        let _ = config;
        anyhow::bail!(
            "{PROFILER_ENV}={choice:?} needs a build with `--features booking-runtime/profiling`"
        )
    }
}

/// Advances the engine's epoch on a dedicated thread until dropped.
struct EpochTicker {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
