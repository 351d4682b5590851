//! The booking service's native host as a library, so end-to-end tests can
//! start it in-process on real sockets, or as a process of their own
//! through `main` (`main.rs` is only the runtime around it).

mod admin;
pub mod admin_cli;
pub mod app;
mod book;
pub mod config;
mod dependencies;
mod deploy;
mod fleet;
mod health;
mod http;
mod live;
mod metrics;
pub mod native_twin;
pub mod probe;
mod rate_limit;
mod sweeper;
mod watch;

use clap::Parser;

/// The `booking-host` command line: parses it, sets up logging, runs the
/// command (by default: serve until SIGTERM/SIGINT).
pub async fn main() -> anyhow::Result<()> {
    let cli = config::Cli::parse();
    let default_level = if cli.config.debug { "debug" } else { "info" };
    // Flushes the last spans when `main` returns.
    let telemetry = booking_telemetry::traces::init(cli.config.log_format, default_level)?;
    if telemetry.tracing() {
        tracing::info!("exporting traces over OTLP/HTTP");
    }

    match cli.command.unwrap_or(config::Command::Serve) {
        config::Command::Serve => app::serve(cli.config).await,
        config::Command::Admin(args) => admin_cli::run(args, &cli.config.data_dir).await,
        config::Command::Preinit { input, output } => app::preinit(&input, &output).await,
        config::Command::Events { booking_id, limit } => {
            app::print_events(&cli.config, booking_id, limit).await
        }
        config::Command::Probe(args) => probe::run(args, cli.config.listen).await,
    }
}
