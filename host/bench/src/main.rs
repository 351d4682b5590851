//! `booking-bench`: drives the booking host's GraphQL endpoint over
//! loopback, once with the WebAssembly logic and once with its native twin,
//! and prints markdown tables side by side with the WASM/native ratios
//! (BENCHMARKS.md holds one run).

mod api;
mod flash_sale;
mod host;
mod load;
mod micro;
mod workflow;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::host::{Host, HostBinary};
use crate::load::Stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    All,
    Read,
    Workflow,
    FlashSale,
    Scaling,
    Micro,
}

#[derive(Debug, Parser)]
#[command(
    name = "booking-bench",
    about = "WASM vs native benchmarks of the booking host"
)]
struct Args {
    #[arg(long, value_enum, default_value = "all")]
    scenario: Scenario,
    /// The host binary (built with `cargo build --release`).
    #[arg(long, default_value = "target/release/booking-host")]
    host_binary: PathBuf,
    #[arg(
        long,
        default_value = "target/wasm32-wasip2/guest/booking_component.wasm"
    )]
    component: PathBuf,
    /// The v2 component, uploaded to time a swap.
    #[arg(
        long,
        default_value = "target/wasm32-wasip2/guest/booking_component_v2.wasm"
    )]
    component_v2: PathBuf,
    /// Concurrent clients of scenarios 1 and 2.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds each of scenarios 1 and 2 runs per build.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds per concurrency level of scenario 4.
    #[arg(long, default_value_t = 4)]
    scaling_seconds: u64,
    #[arg(long, default_value_t = 2000)]
    flash_clients: usize,
    #[arg(long, default_value_t = 10_000)]
    instantiations: u64,
}

const MODES: [&str; 2] = ["wasm", "native"];
const SCALING_CLIENTS: [usize; 5] = [1, 4, 16, 64, 256];

/// Host data directories, each fresh (empty database, full showtimes) but
/// sharing one component cache, so only the first start compiles.
struct DataDirs {
    cache: tempfile::TempDir,
}

impl DataDirs {
    fn fresh(&self) -> anyhow::Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        std::os::unix::fs::symlink(self.cache.path(), dir.path().join("component-cache"))?;
        Ok(dir)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = HostBinary {
        binary: args.host_binary.clone(),
        component: args.component.clone(),
    };
    let dirs = DataDirs {
        cache: tempfile::tempdir()?,
    };
    let runs = |scenario| args.scenario == Scenario::All || args.scenario == scenario;
    if runs(Scenario::Read) {
        let seconds = Duration::from_secs(args.seconds);
        let mut rows = Vec::new();
        for mode in MODES {
            let dir = dirs.fresh()?;
            let host = Host::start(&bin, mode, dir.path()).await?;
            let stats = workflow::read_only(&host.api, args.clients, seconds).await?;
            rows.push((mode, stats, host.peak_rss_mib()?));
        }
        print_comparison(
            &format!("1. getBooking, {} clients, {}s", args.clients, args.seconds),
            "req/s",
            &rows,
        );
    }
    if runs(Scenario::Workflow) {
        let seconds = Duration::from_secs(args.seconds);
        let mut rows = Vec::new();
        for mode in MODES {
            let dir = dirs.fresh()?;
            let host = Host::start(&bin, mode, dir.path()).await?;
            let stats = workflow::book_pay_cancel(&host.api, args.clients, seconds).await;
            rows.push((mode, stats, host.peak_rss_mib()?));
        }
        print_comparison(
            &format!(
                "2. createBooking → processPayment → cancelBooking, {} clients, {}s",
                args.clients, args.seconds
            ),
            "workflows/s",
            &rows,
        );
    }
    if runs(Scenario::FlashSale) {
        flash(&bin, &dirs, args.flash_clients).await?;
    }
    if runs(Scenario::Scaling) {
        scaling(&bin, &dirs, Duration::from_secs(args.scaling_seconds)).await?;
    }
    if runs(Scenario::Micro) {
        micro_benchmarks(
            &bin,
            &args.component,
            &args.component_v2,
            args.instantiations,
        )
        .await?;
    }
    Ok(())
}

fn print_comparison(title: &str, unit: &str, rows: &[(&str, Stats, f64)]) {
    println!("\n### {title}\n");
    println!("| logic | {unit} | p50 ms | p90 ms | p99 ms | max ms | ok | errors | peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (mode, stats, rss) in rows {
        println!(
            "| {mode} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {rss:.1} |",
            stats.throughput(),
            stats.percentile_ms(50.0),
            stats.percentile_ms(90.0),
            stats.percentile_ms(99.0),
            stats.max_ms(),
            stats.ok,
            stats.errors,
        );
    }
    if let [(_, wasm, wasm_rss), (_, native, native_rss)] = rows {
        println!(
            "| **wasm/native** | **{:.2}** | {:.2} | {:.2} | {:.2} | {:.2} | | | {:.2} |",
            wasm.throughput() / native.throughput(),
            wasm.percentile_ms(50.0) / native.percentile_ms(50.0),
            wasm.percentile_ms(90.0) / native.percentile_ms(90.0),
            wasm.percentile_ms(99.0) / native.percentile_ms(99.0),
            wasm.max_ms() / native.max_ms(),
            wasm_rss / native_rss,
        );
    }
    for (mode, stats, _) in rows {
        if let Some(error) = &stats.first_error {
            println!("\n{mode}: first error: {error}");
        }
    }
}

async fn flash(bin: &HostBinary, dirs: &DataDirs, clients: usize) -> anyhow::Result<()> {
    println!(
        "\n### 3. Flash sale: {clients} clients, 500 seats of {}\n",
        workflow::FLASH_SHOWTIME
    );
    println!(
        "| logic | sell-out s | p50 ms | p99 ms | max ms | requests | errors | BOOKED (cinema) | CONFIRMED seats (store) | bookings | oversold | double-booked | peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut errors = Vec::new();
    for mode in MODES {
        let dir = dirs.fresh()?;
        let host = Host::start(bin, mode, dir.path()).await?;
        let sale = flash_sale::run(&host.api, clients).await?;
        let stats = &sale.requests;
        println!(
            "| {mode} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            sale.sell_out.as_secs_f64(),
            stats.percentile_ms(50.0),
            stats.percentile_ms(99.0),
            stats.max_ms(),
            stats.ok + stats.errors,
            stats.errors,
            sale.booked_in_cinema,
            sale.confirmed_seats,
            sale.confirmed_bookings,
            sale.confirmed_seats.saturating_sub(workflow::FLASH_SEATS),
            sale.double_booked,
            host.peak_rss_mib()?,
        );
        if let Some(error) = &stats.first_error {
            errors.push(format!("{mode}: first error: {error}"));
        }
    }
    for error in errors {
        println!("\n{error}");
    }
    Ok(())
}

async fn scaling(bin: &HostBinary, dirs: &DataDirs, seconds: Duration) -> anyhow::Result<()> {
    println!(
        "\n### 4. Scaling: createBooking → processPayment → cancelBooking, {}s per level\n",
        seconds.as_secs()
    );
    println!(
        "| clients | wasm workflows/s | native workflows/s | ratio | wasm p99 ms | native p99 ms | wasm errors | native errors |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut results: Vec<Vec<Stats>> = Vec::new();
    let mut peaks = Vec::new();
    for mode in MODES {
        let dir = dirs.fresh()?;
        let host = Host::start(bin, mode, dir.path()).await?;
        let mut levels = Vec::new();
        for clients in SCALING_CLIENTS {
            levels.push(workflow::book_pay_cancel(&host.api, clients, seconds).await);
        }
        results.push(levels);
        peaks.push((mode, host.peak_rss_mib()?));
    }
    for (level, clients) in SCALING_CLIENTS.iter().enumerate() {
        let (wasm, native) = (&results[0][level], &results[1][level]);
        println!(
            "| {clients} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {} |",
            wasm.throughput(),
            native.throughput(),
            wasm.throughput() / native.throughput(),
            wasm.percentile_ms(99.0),
            native.percentile_ms(99.0),
            wasm.errors,
            native.errors,
        );
    }
    for (mode, peak) in peaks {
        println!("\n{mode}: host peak RSS over all levels (up to 256 clients): {peak:.1} MiB");
    }
    for (mode, levels) in MODES.iter().zip(&results) {
        if let Some(error) = levels.iter().find_map(|stats| stats.first_error.as_ref()) {
            println!("\n{mode}: first error: {error}");
        }
    }
    Ok(())
}

async fn micro_benchmarks(
    bin: &HostBinary,
    component: &Path,
    v2: &Path,
    count: u64,
) -> anyhow::Result<()> {
    let instantiation = micro::instantiation(component, count).await?;
    let micros = |percentile| instantiation.latency_ns.value_at_percentile(percentile) as f64 / 1e3;
    println!("\n### 5. Micro\n");
    println!("| measurement | value |");
    println!("|---|---:|");
    println!(
        "| instantiation, median of {} (pooling allocator) | {:.1} µs |",
        instantiation.count,
        micros(50.0)
    );
    println!("| instantiation p99 | {:.1} µs |", micros(99.0));
    // The mean too: batched decommits (engine.rs) make most cycles cheap
    // and every n-th one pay for the batch, which a median alone hides.
    println!(
        "| instantiation mean | {:.1} µs |",
        instantiation.latency_ns.mean() / 1e3
    );
    let starts = micro::cold_starts(bin, v2).await?;
    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    println!(
        "| cold start → first GraphQL answer, no cached component | {:.0} ms |",
        ms(starts.without_cache)
    );
    println!(
        "| cold start → first GraphQL answer, cached component | {:.0} ms |",
        ms(starts.with_cache)
    );
    println!(
        "| `POST /admin/versions` v2, empty cache (compile) | {:.0} ms |",
        ms(starts.load_compiled)
    );
    println!(
        "| `POST /admin/versions` v2, warm cache | {:.0} ms |",
        ms(starts.load_cached)
    );
    println!(
        "| `POST /admin/versions/{{sha}}/activate` | {:.2} ms |",
        ms(starts.activate)
    );
    Ok(())
}
