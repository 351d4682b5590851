//! Runs the reference Cinema, Users and Payments services standalone, on
//! the ports the booking service expects by default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use booking_peers::{PaymentBehaviour, PeersConfig, PeersTls};
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
    /// Serve TLS only, with this PEM certificate chain (and --tls-key-file).
    #[arg(long, env = "PEERS_TLS_CERT_FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The PEM private key of --tls-cert-file.
    #[arg(long, env = "PEERS_TLS_KEY_FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let tls = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert), Some(key)) => Some(PeersTls {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        }),
        _ => None,
    };

    let mut peers = booking_peers::start(PeersConfig {
        cinema_addr: args.cinema_addr,
        users_addr: args.users_addr,
        payments_addr: args.payments_addr,
        payments: PaymentBehaviour {
            slow_delay: Duration::from_millis(args.slow_delay_ms),
            lost_reply_delay: Duration::from_millis(args.lost_reply_delay_ms),
        },
        token_ttl: Duration::from_secs(args.token_ttl_secs),
        tls,
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

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
