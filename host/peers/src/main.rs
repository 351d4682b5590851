//! Runs the reference Cinema, Users and Payments services standalone, on
//! the ports the booking service expects by default.

use std::net::SocketAddr;
use std::time::Duration;

use booking_peers::{PaymentBehaviour, PeersConfig};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "reference-peers", about)]
struct Args {
    /// Cinema gRPC service address.
    #[arg(long, env = "PEERS_CINEMA_ADDR", default_value = "127.0.0.1:50051")]
    cinema_addr: SocketAddr,
    /// User REST service address.
    #[arg(long, env = "PEERS_USERS_ADDR", default_value = "127.0.0.1:8001")]
    users_addr: SocketAddr,
    /// Payment REST service address.
    #[arg(long, env = "PEERS_PAYMENTS_ADDR", default_value = "127.0.0.1:8002")]
    payments_addr: SocketAddr,
    /// How long every `card_slow` payment response takes.
    #[arg(long, env = "PEERS_SLOW_DELAY_MS", default_value_t = 1500)]
    slow_delay_ms: u64,
    /// How long the first response for a `card_lost_reply` payment takes.
    #[arg(long, env = "PEERS_LOST_REPLY_DELAY_MS", default_value_t = 10_000)]
    lost_reply_delay_ms: u64,
    /// How long a User-service bearer token is valid, in seconds.
    #[arg(long, env = "PEERS_TOKEN_TTL_SECS", default_value_t = 3600)]
    token_ttl_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    let mut peers = booking_peers::start(PeersConfig {
        cinema_addr: args.cinema_addr,
        users_addr: args.users_addr,
        payments_addr: args.payments_addr,
        payments: PaymentBehaviour {
            slow_delay: Duration::from_millis(args.slow_delay_ms),
            lost_reply_delay: Duration::from_millis(args.lost_reply_delay_ms),
        },
        token_ttl: Duration::from_secs(args.token_ttl_secs),
    })
    .await?;

    tokio::select! {
        signal = tokio::signal::ctrl_c() => {
            signal?;
            tracing::info!("shutting down");
            peers.shutdown().await
        }
        error = peers.failed() => Err(error),
    }
}
