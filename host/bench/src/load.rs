//! Closed-loop load: N clients, each sending its next request as soon as
//! the last one is answered, for a fixed time. Latencies go into an HDR
//! histogram (microseconds), so p99 and max are exact to 3 digits.

use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
    /// One example error, to say what failed.
    pub first_error: Option<String>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            ok: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            // 1 µs to 10 minutes: beyond any client timeout.
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)
                .expect("valid bounds and precision"),
            first_error: None,
        }
    }

    pub fn record(&mut self, started: Instant, outcome: anyhow::Result<()>) {
        let micros = started.elapsed().as_micros() as u64;
        self.latency_us.saturating_record(micros.max(1));
        match outcome {
            Ok(()) => self.ok += 1,
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with the same bounds");
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Successful operations per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&self, percentile: f64) -> f64 {
        self.latency_us.value_at_percentile(percentile) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latency_us.max() as f64 / 1000.0
    }
}

/// Runs `operation(client, iteration)` from `clients` concurrent clients
/// until `duration` has passed.
pub async fn closed_loop<F, Fut>(clients: usize, duration: Duration, operation: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let operation = operation.clone();
            tokio::spawn(async move {
                let mut stats = Stats::new();
                let mut iteration = 0;
                while Instant::now() < deadline {
                    let begun = Instant::now();
                    let outcome = operation(client, iteration).await;
                    stats.record(begun, outcome);
                    iteration += 1;
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::new();
    for task in tasks {
        if let Ok(stats) = task.await {
            total.merge(stats);
        }
    }
    total.elapsed = started.elapsed();
    total
}
