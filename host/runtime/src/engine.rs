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

        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .wasm_component_model(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let ticker = Arc::new(EpochTicker::start(engine.clone())?);
        Ok(SandboxEngine {
            engine,
            limits,
            _ticker: ticker,
        })
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
