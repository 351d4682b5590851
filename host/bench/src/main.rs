//! `booking-bench`: drives the booking host's GraphQL endpoint over
//! loopback, once with the WebAssembly logic and once with its native twin
//! (and, for the reads, the same component under `spin up` when a Spin CLI
//! is at hand), and prints markdown tables side by side with the ratios and
//! each server's CPU time per request (BENCHMARKS.md holds one run).

mod api;
mod flash_sale;
mod host;
mod live;
mod load;
mod micro;
mod peers;
mod process;
mod spin;
mod workflow;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::host::{Host, HostBinary};
use crate::load::Stats;
use crate::peers::StandalonePeers;
use crate::process::ServerProcess;
use crate::spin::SpinApp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    All,
    Read,
    Workflow,
    FlashSale,
    Scaling,
    Micro,
    Live,
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
    /// Scenario 6: WebSocket clients subscribed to the flash showtime's
    /// seat map.
    #[arg(long, default_value_t = 5000)]
    subscribers: usize,
    /// Scenario 6: subscribers connecting at once.
    #[arg(long, default_value_t = 200)]
    live_connect_concurrency: usize,
    /// Scenario 6: customers buying at once while the subscribers watch.
    #[arg(long, default_value_t = 50)]
    live_customers: usize,
    /// Scenario 6: bookings of 2 seats per customer, one after the other
    /// (50 × 5 × 2 sells all 500 seats).
    #[arg(long, default_value_t = 5)]
    live_rounds: usize,
    /// The standalone reference peers, for the read scenarios.
    #[arg(long, default_value = "target/release/reference-peers")]
    peers_binary: PathBuf,
    /// A Spin 4.x CLI for the reads' comparison; without it the packed one
    /// below is unpacked, and without that Spin is left out (said so).
    #[arg(long, env = "SPIN_BIN")]
    spin: Option<PathBuf>,
    #[arg(long, default_value = "../shared/tools/spin.xz")]
    spin_xz: PathBuf,
    #[arg(long, default_value = "spin.toml")]
    spin_manifest: PathBuf,
    /// The Spin adapter component `scripts/spin-check.sh` builds.
    #[arg(long, default_value = "target/spin/spin_adapters.wasm")]
    spin_adapters: PathBuf,
    /// A tmpfs, where the workflow also runs: fsync then costs nothing, so
    /// what is left is CPU.
    #[arg(long, default_value = "/dev/shm")]
    tmpfs: PathBuf,
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
        self.fresh_in(&std::env::temp_dir())
    }

    fn fresh_in(&self, base: &Path) -> anyhow::Result<tempfile::TempDir> {
        let dir = tempfile::tempdir_in(base)?;
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
        reads(&args, &bin, &dirs).await?;
    }
    if runs(Scenario::Workflow) {
        let seconds = Duration::from_secs(args.seconds);
        for (storage, base) in [
            ("disk", std::env::temp_dir()),
            ("tmpfs", args.tmpfs.clone()),
        ] {
            let mut rows = Vec::new();
            for mode in MODES {
                let dir = dirs.fresh_in(&base)?;
                let host = Host::start(&bin, mode, dir.path()).await?;
                let (stats, cpu) = measured(&host.process, async {
                    workflow::book_pay_cancel(&host.api, args.clients, seconds).await
                })
                .await?;
                rows.push(Row::new(mode, stats, &host.process, cpu)?);
            }
            print_comparison(
                &format!(
                    "2. createBooking → processPayment → cancelBooking, {} clients, {}s, data on {storage} ({})",
                    args.clients,
                    args.seconds,
                    base.display()
                ),
                "workflows/s",
                &rows,
            );
        }
    }
    if runs(Scenario::FlashSale) {
        flash(&bin, &dirs, args.flash_clients).await?;
    }
    if runs(Scenario::Scaling) {
        let seconds = Duration::from_secs(args.scaling_seconds);
        scaling(&bin, &dirs, seconds, &args.peers_binary).await?;
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
    if runs(Scenario::Live) {
        let config = live::Config {
            subscribers: args.subscribers,
            connect_concurrency: args.live_connect_concurrency,
            customers: args.live_customers,
            rounds: args.live_rounds,
        };
        live_seat_map(&bin, &dirs, &config).await?;
    }
    Ok(())
}

/// One server's run of a scenario: what the clients saw, and what the
/// server process used for it.
struct Row {
    label: &'static str,
    stats: Stats,
    peak_rss_mib: f64,
    /// Server CPU time (user + system) over the run.
    cpu: Duration,
}

impl Row {
    fn new(
        label: &'static str,
        stats: Stats,
        process: &ServerProcess,
        cpu: Duration,
    ) -> anyhow::Result<Row> {
        Ok(Row {
            label,
            stats,
            peak_rss_mib: process.peak_rss_mib()?,
            cpu,
        })
    }

    /// Server CPU per successful operation, in µs.
    fn cpu_per_op_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.stats.ok.max(1) as f64
    }
}

/// Runs `load` and returns its stats with the CPU time `process` spent
/// meanwhile.
async fn measured(
    process: &ServerProcess,
    load: impl std::future::Future<Output = Stats>,
) -> anyhow::Result<(Stats, Duration)> {
    let before = process.cpu_time()?;
    let stats = load.await;
    Ok((stats, process.cpu_time()?.saturating_sub(before)))
}

fn print_comparison(title: &str, unit: &str, rows: &[Row]) {
    println!("\n### {title}\n");
    println!(
        "| server | {unit} | p50 ms | p90 ms | p99 ms | max ms | ok | errors | server CPU µs/op | peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let stats = &row.stats;
        println!(
            "| {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {:.0} | {:.1} |",
            row.label,
            stats.throughput(),
            stats.percentile_ms(50.0),
            stats.percentile_ms(90.0),
            stats.percentile_ms(99.0),
            stats.max_ms(),
            stats.ok,
            stats.errors,
            row.cpu_per_op_us(),
            row.peak_rss_mib,
        );
    }
    let find = |label: &str| rows.iter().find(|row| row.label == label);
    for other in ["native", "spin"] {
        let (Some(ours), Some(theirs)) = (find("wasm"), find(other)) else {
            continue;
        };
        let (a, b) = (&ours.stats, &theirs.stats);
        println!(
            "| **wasm/{other}** | **{:.2}** | {:.2} | {:.2} | {:.2} | {:.2} | | | {:.2} | {:.2} |",
            a.throughput() / b.throughput(),
            a.percentile_ms(50.0) / b.percentile_ms(50.0),
            a.percentile_ms(90.0) / b.percentile_ms(90.0),
            a.percentile_ms(99.0) / b.percentile_ms(99.0),
            a.max_ms() / b.max_ms(),
            ours.cpu_per_op_us() / theirs.cpu_per_op_us(),
            ours.peak_rss_mib / theirs.peak_rss_mib,
        );
    }
    for row in rows {
        if let Some(error) = &row.stats.first_error {
            println!("\n{}: first error: {error}", row.label);
        }
    }
}

/// A server under test in the reads: our host, or `spin up`.
enum Server {
    Host(Host),
    Spin(SpinApp),
}

impl Server {
    fn parts(&self) -> (&ServerProcess, &api::Api) {
        match self {
            Server::Host(host) => (&host.process, &host.api),
            Server::Spin(app) => (&app.process, &app.api),
        }
    }
}

/// Scenario 1: each read of `workflow::READS` against the host with the
/// WASM logic, its native twin and (if a Spin CLI is at hand) `spin up`,
/// all calling the same standalone reference peers.
async fn reads(args: &Args, bin: &HostBinary, dirs: &DataDirs) -> anyhow::Result<()> {
    let seconds = Duration::from_secs(args.seconds);
    let peers = StandalonePeers::start(&args.peers_binary).await?;
    let spin_dir = tempfile::tempdir()?;
    let spin = spin::find(args.spin.as_deref(), &args.spin_xz, spin_dir.path())?;
    let mut results: Vec<Vec<Row>> = (0..workflow::READS.len()).map(|_| Vec::new()).collect();
    let servers: &[(&str, &str)] = &[("wasm", "A1"), ("native", "A2"), ("spin", "A3")];
    for &(label, seat) in servers {
        let dir = dirs.fresh()?;
        let server = if label == "spin" {
            let Some(spin) = &spin else {
                println!(
                    "\n(Spin left out of the reads: no --spin/SPIN_BIN and no {})",
                    args.spin_xz.display()
                );
                continue;
            };
            Server::Spin(
                SpinApp::start(
                    spin,
                    &args.spin_manifest,
                    &args.component,
                    &args.spin_adapters,
                )
                .await?,
            )
        } else {
            Server::Host(Host::start_with(bin, label, dir.path(), Some(&peers)).await?)
        };
        let (process, api) = server.parts();
        let booking = workflow::confirmed_booking(api, seat).await?;
        for (n, (_, document)) in workflow::READS.iter().enumerate() {
            let (stats, cpu) = measured(process, async {
                workflow::read_only(api, document, &booking, args.clients, seconds).await
            })
            .await?;
            results[n].push(Row::new(label, stats, process, cpu)?);
        }
    }
    for ((name, _), rows) in workflow::READS.iter().zip(&results) {
        print_comparison(
            &format!("1. {name}, {} clients, {}s", args.clients, args.seconds),
            "req/s",
            rows,
        );
    }
    Ok(())
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
            host.process.peak_rss_mib()?,
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

/// With standalone peers, fresh for each build, so the host's memory is
/// the host's alone (in-process peers keep every booking and charge).
async fn scaling(
    bin: &HostBinary,
    dirs: &DataDirs,
    seconds: Duration,
    peers_binary: &Path,
) -> anyhow::Result<()> {
    println!(
        "\n### 4. Scaling: createBooking → processPayment → cancelBooking, {}s per level, standalone peers\n",
        seconds.as_secs()
    );
    println!(
        "| clients | wasm workflows/s | native workflows/s | ratio | wasm p99 ms | native p99 ms | wasm errors | native errors |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut results: Vec<Vec<Stats>> = Vec::new();
    let mut peaks = Vec::new();
    for mode in MODES {
        let peers = StandalonePeers::start(peers_binary).await?;
        let dir = dirs.fresh()?;
        let host = Host::start_with(bin, mode, dir.path(), Some(&peers)).await?;
        let mut levels = Vec::new();
        for clients in SCALING_CLIENTS {
            levels.push(workflow::book_pay_cancel(&host.api, clients, seconds).await);
        }
        results.push(levels);
        // Right after the last level: the slots it used keep their pages.
        peaks.push((mode, host.process.peak_rss_mib()?, host.process.pss_mib()?));
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
    for (mode, peak, pss) in peaks {
        println!(
            "\n{mode}: host peak RSS over all levels (up to 256 clients): {peak:.1} MiB; \
             PSS after the last level: {pss:.1} MiB"
        );
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

/// Scenario 6: the WASM host with `--subscribers` seat-map subscribers
/// over graphql-transport-ws, its memory per subscriber, and a sale's
/// delivery latency to all of them.
async fn live_seat_map(
    bin: &HostBinary,
    dirs: &DataDirs,
    config: &live::Config,
) -> anyhow::Result<()> {
    // The host inherits the raised limit; it must also accept more
    // connections than its default MAX_CONNECTIONS (4096).
    let open_files = live::raise_open_files_limit(config.open_files())?;
    let dir = dirs.fresh()?;
    let settings = [("MAX_CONNECTIONS", config.open_files().to_string())];
    let host = Host::start_configured(bin, "wasm", dir.path(), None, &settings).await?;
    let live = live::run(&host.api, &host.process, config).await?;
    let ms = |histogram: &hdrhistogram::Histogram<u64>, percentile| {
        histogram.value_at_percentile(percentile) as f64 / 1e3
    };
    println!(
        "\n### 6. Live seat map: {} subscribers (graphql-transport-ws), {} customers × {} bookings of 2 seats of {}\n",
        config.subscribers,
        config.customers,
        config.rounds,
        workflow::FLASH_SHOWTIME
    );
    println!("| measurement | value |");
    println!("|---|---:|");
    println!(
        "| subscribed (snapshot received) / failed | {} / {} of {} ({} connecting at once, open-files limit {open_files}) |",
        live.subscribed, live.setup_failures, config.subscribers, config.connect_concurrency
    );
    println!(
        "| connect → snapshot p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        ms(&live.setup_us, 50.0),
        ms(&live.setup_us, 99.0),
        live.setup_us.max() as f64 / 1e3
    );
    println!(
        "| first connection → last snapshot | {:.2} s |",
        live.all_subscribed_after.as_secs_f64()
    );
    println!(
        "| host VmRSS before → after subscribing | {:.1} → {:.1} MiB |",
        live.rss_before_mib, live.rss_after_mib
    );
    println!(
        "| **host memory per subscriber** | **{:.1} KiB** |",
        live.per_subscriber_kib()
    );
    let requests = &live.requests;
    println!(
        "| sale: bookings paid / seats BOOKED / mutation errors | {} / {} / {} |",
        live.bookings, live.seats_sold, requests.errors
    );
    println!(
        "| sale: duration; mutation p50 / p99 | {:.2} s; {:.1} / {:.1} ms |",
        live.sale.as_secs_f64(),
        requests.percentile_ms(50.0),
        requests.percentile_ms(99.0)
    );
    println!(
        "| changes (LOCKED + BOOKED) × subscribers delivered | {} × {} → {} pairs |",
        live.changes,
        live.subscribed,
        live.latency_us.len()
    );
    println!(
        "| **delivery latency p50 / p99 / max** | **{:.1} / {:.1} / {:.1} ms** |",
        ms(&live.latency_us, 50.0),
        ms(&live.latency_us, 99.0),
        live.latency_us.max() as f64 / 1e3
    );
    println!(
        "| pairs received before the mutation's answer (counted as 0) | {} |",
        live.before_answer
    );
    println!(
        "| the same from the mutation's request (upper bound) p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        ms(&live.from_request_us, 50.0),
        ms(&live.from_request_us, 99.0),
        live.from_request_us.max() as f64 / 1e3
    );
    println!(
        "| LOCKED seen only as BOOKED (one batch held both) | {} |",
        live.coalesced
    );
    println!(
        "| last mutation answer → last delivery | {:.2} s{} |",
        live.delivered_after.as_secs_f64(),
        if live.delivery_timed_out {
            " (timed out)"
        } else {
            ""
        }
    );
    println!(
        "| seat-map messages after the snapshots | {} ({:.1} per subscriber) |",
        live.messages,
        live.messages as f64 / live.subscribed.max(1) as f64
    );
    println!(
        "| subscribers that missed a change | {} ({} changes) |",
        live.missed_subscribers, live.missed_changes
    );
    println!(
        "| subscribers dropped (closed by the server) | {} |",
        live.dropped
    );
    println!(
        "| subscribers whose final map differs from showtimeSeats | {} |",
        live.diverged
    );
    println!("| seat entries no change explains | {} |", live.unexpected);
    println!(
        "| CPU, sale start → last delivery: host / bench | {:.2} s / {:.2} s |",
        live.host_cpu.as_secs_f64(),
        live.bench_cpu.as_secs_f64()
    );
    println!(
        "| host peak RSS (VmHWM) | {:.1} MiB |",
        host.process.peak_rss_mib()?
    );
    for (what, error) in [
        ("subscribing", &live.first_setup_error),
        ("dropped", &live.first_drop),
        ("mutations", &requests.first_error),
    ] {
        if let Some(error) = error {
            println!("\n{what}: first error: {error}");
        }
    }
    Ok(())
}
