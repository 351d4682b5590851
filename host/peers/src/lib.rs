//! Reference implementations of the services the booking host talks to,
//! as real servers: Cinema (gRPC, `proto/cinema.proto`), Users and
//! Payments (REST). The host's end-to-end tests and local runs use them in
//! place of the other teams' deployments; `start` runs all three on
//! loopback in the current tokio runtime.

pub mod catalog;
pub mod cinema;
mod clock;
pub mod payments;
mod tls;
mod traces;
pub mod users;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, anyhow};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, ServerTlsConfig};

use crate::tls::TlsListener;

pub use cinema::CinemaState;
pub use payments::{PaymentBehaviour, PaymentsState};
pub use tls::PeersTls;
pub use traces::SeenTraces;
pub use users::UsersState;

/// Where the peers listen. Port 0 picks a free port.
#[derive(Debug, Clone)]
pub struct PeersConfig {
    pub cinema_addr: SocketAddr,
    pub users_addr: SocketAddr,
    pub payments_addr: SocketAddr,
    pub payments: PaymentBehaviour,
    /// How long a User-service bearer token is valid.
    pub token_ttl: Duration,
    /// With a certificate, all three serve TLS only (`https://` URLs).
    pub tls: Option<PeersTls>,
}

impl Default for PeersConfig {
    /// All three on 127.0.0.1, ephemeral ports.
    fn default() -> Self {
        let ephemeral = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        PeersConfig {
            cinema_addr: ephemeral,
            users_addr: ephemeral,
            payments_addr: ephemeral,
            payments: PaymentBehaviour::default(),
            token_ttl: users::DEFAULT_TOKEN_TTL,
            tls: None,
        }
    }
}

/// The three servers, running. Dropping this stops them.
pub struct RunningPeers {
    /// e.g. "http://127.0.0.1:50051" ("https://…" with TLS).
    pub cinema_url: String,
    pub users_url: String,
    pub payments_url: String,
    pub cinema: CinemaState,
    pub payments: PaymentsState,
    /// The trace ids the three peers received.
    pub traces: SeenTraces,
    shutdown: watch::Sender<()>,
    /// Aborts the servers when dropped.
    servers: JoinSet<anyhow::Result<()>>,
}

/// Binds all three addresses, then serves them on spawned tasks.
pub async fn start(config: PeersConfig) -> anyhow::Result<RunningPeers> {
    let cinema_listener = bind("cinema", config.cinema_addr).await?;
    let users_listener = bind("users", config.users_addr).await?;
    let payments_listener = bind("payments", config.payments_addr).await?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let cinema_url = url_of(scheme, &cinema_listener)?;
    let users_url = url_of(scheme, &users_listener)?;
    let payments_url = url_of(scheme, &payments_listener)?;
    let acceptor = config.tls.as_ref().map(PeersTls::acceptor).transpose()?;
    if acceptor.is_some() {
        // tonic's TLS server takes the process-wide rustls provider, which
        // rustls cannot pick by itself with both ring and aws-lc linked in
        // (reqwest brings aws-lc). One installed earlier stays.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    }

    let cinema = CinemaState::new(catalog::showtimes());
    let payments = PaymentsState::new(config.payments);
    let users = UsersState::new(config.token_ttl);
    let traces = SeenTraces::default();
    let (shutdown, stop) = watch::channel(());
    let mut servers = JoinSet::new();
    servers.spawn(serve_cinema(
        cinema_listener,
        cinema.clone(),
        traces.clone(),
        config.tls.clone(),
        stopped(stop.clone()),
    ));
    servers.spawn(serve_http(
        "users",
        users_listener,
        acceptor.clone(),
        users::router(users),
        traces.clone(),
        stopped(stop.clone()),
    ));
    servers.spawn(serve_http(
        "payments",
        payments_listener,
        acceptor,
        payments::router(payments.clone()),
        traces.clone(),
        stopped(stop),
    ));
    tracing::info!(%cinema_url, %users_url, %payments_url, "reference peers listening");

    Ok(RunningPeers {
        cinema_url,
        users_url,
        payments_url,
        cinema,
        payments,
        traces,
        shutdown,
        servers,
    })
}

impl RunningPeers {
    /// Stops accepting, lets in-flight requests finish (a held-back
    /// `card_lost_reply` answer included) and waits for all three servers.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown.send_replace(());
        while let Some(server) = self.servers.join_next().await {
            server??;
        }
        Ok(())
    }

    /// Resolves when a server stops by itself, which only a failure does.
    pub async fn failed(&mut self) -> anyhow::Error {
        match self.servers.join_next().await {
            Some(Ok(Err(error))) => error,
            Some(Ok(Ok(()))) => anyhow!("a peer server stopped"),
            Some(Err(join)) => join.into(),
            None => anyhow!("no peer server is running"),
        }
    }
}

/// `GET /health` of every REST peer.
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn bind(name: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {name} peer to {addr}"))
}

fn url_of(scheme: &str, listener: &TcpListener) -> anyhow::Result<String> {
    Ok(format!("{scheme}://{}", listener.local_addr()?))
}

/// Completes on shutdown, also when the sender is gone.
async fn stopped(mut stop: watch::Receiver<()>) {
    stop.changed().await.ok();
}

async fn serve_cinema(
    listener: TcpListener,
    state: CinemaState,
    traces: SeenTraces,
    tls: Option<PeersTls>,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        let identity = Identity::from_pem(tls.cert_pem, tls.key_pem);
        server = server
            .tls_config(ServerTlsConfig::new().identity(identity))
            .context("the cinema peer's TLS certificate")?;
    }
    // Plain gRPC over HTTP/2 (the host's tonic client) and gRPC-Web over
    // HTTP/1.1 (the Spin seats adapter, components/spin-adapters) on the
    // same port.
    server
        .accept_http1(true)
        .layer(tonic_web::GrpcWebLayer::new())
        .add_service(cinema::service(state, traces))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), stop)
        .await
        .context("cinema peer")
}

async fn serve_http(
    name: &'static str,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    traces: SeenTraces,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = router.layer(axum::middleware::from_fn_with_state(
        (name, traces),
        traces::note_http,
    ));
    match tls {
        Some(acceptor) => {
            axum::serve(TlsListener::new(listener, acceptor), router)
                .with_graceful_shutdown(stop)
                .await
        }
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
        }
    }
    .with_context(|| format!("{name} peer"))
}
