//! `booking-host`: the booking service's native host.

use booking_host::config::{Cli, Command};
use booking_host::{admin_cli, app};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let default_level = if cli.config.debug { "debug" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .init();

    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => app::serve(cli.config).await,
        Command::Admin(args) => admin_cli::run(args).await,
        Command::Events { booking_id, limit } => {
            app::print_events(&cli.config, booking_id, limit).await
        }
    }
}
