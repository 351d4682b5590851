//! The shared wasmtime engine. One per process: compiled components,
//! the instance pool and the epoch clock all belong to it.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; the granularity of CPU deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Per-request sandbox limits.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    /// Linear memory one request may use.
    pub memory_bytes: usize,
    /// Time a request may spend running guest code (time waiting on host
    /// calls does not count).
    pub cpu_time: Duration,
    /// Instances that can run at once (the pool's size).
    pub max_concurrent_instances: u32,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            memory_bytes: 64 << 20,
            cpu_time: Duration::from_secs(2),
            max_concurrent_instances: 256,
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
        // A component instance holds a few core instances (the guest plus
        // WASI adapter shims), each with memories and tables.
        pool.total_component_instances(limits.max_concurrent_instances)
            .total_core_instances(limits.max_concurrent_instances * 4)
            .total_memories(limits.max_concurrent_instances * 2)
            .total_tables(limits.max_concurrent_instances * 4)
            .max_memory_size(limits.memory_bytes);
        experiment_knobs(&mut pool);

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

// TEMPORARY (benchmark experiments): pool knobs from the environment.
fn experiment_knobs(pool: &mut PoolingAllocationConfig) {
    let num = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = num("XP_KEEP_RESIDENT") {
        pool.linear_memory_keep_resident(n).table_keep_resident(n.min(1 << 16));
    }
    if let Some(n) = num("XP_DECOMMIT_BATCH") {
        pool.decommit_batch_size(n);
    }
    if let Some(n) = num("XP_WARM_SLOTS") {
        pool.max_unused_warm_slots(n as u32);
    }
    if std::env::var("XP_PAGEMAP").is_ok() {
        pool.pagemap_scan(wasmtime::Enabled::Yes);
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
            other => anyhow::bail!("{PROFILER_ENV} must be perfmap, jitdump or none, got {other:?}"),
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
