//! Start-up: dependencies → sandbox engine → component → sweeper → HTTP.
//! Shutdown in reverse: stop accepting (public and admin API), let the
//! requests in flight finish and the sweeper end its batch, then let the
//! relay send what they stored — all within the grace period.

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use booking_logic::ports::Events;
use booking_runtime::{EngineLimits, Runtime, SandboxEngine};

use crate::config::Config;
use crate::dependencies::Dependencies;
use crate::logic::{LogicMode, NativeLogic};

/// What request handlers share.
pub(crate) struct AppState {
    pub runtime: Runtime,
    /// Set with `--logic native`: serves requests and sweeps instead of
    /// the component.
    pub native: Option<NativeLogic>,
    pub dependencies: Dependencies,
    /// Largest response body passed on to a client.
    pub max_response_bytes: usize,
    /// Whether `/graphiql/<file>` serves GraphiQL's scripts and styles
    /// (with introspection on, like the page itself).
    pub graphiql_assets: bool,
    /// Requests being handled now (kept by `http::count_in_flight`).
    pub in_flight: AtomicUsize,
    /// Per-IP and per-token request rates (`rate_limit::enforce`).
    pub rate_limits: Arc<crate::rate_limit::RateLimits>,
}

/// A started service: its address and a handle to stop it.
pub struct RunningService {
    pub address: std::net::SocketAddr,
    /// Where the admin API listens.
    pub admin_address: std::net::SocketAddr,
    pub component_sha256: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningService {
    /// Stops accepting, lets requests in flight finish (for at most the
    /// grace period: later ones are cut, with a warning), then returns.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.await?
    }
}

/// Runs until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let service = start(config).await?;
    shutdown_signal().await;
    service.stop().await
}

/// Starts the service and returns once it accepts connections.
pub async fn start(config: Config) -> anyhow::Result<RunningService> {
    let outbound_http = config.outbound_http()?;
    let dependencies = Dependencies::connect(&config).await?;
    let engine = SandboxEngine::new(EngineLimits {
        memory_bytes: config.request_memory_mb << 20,
        cpu_time: Duration::from_millis(config.request_cpu_ms),
        deadline: config.request_deadline(),
        max_concurrent_instances: config.max_concurrent_requests,
    })?;
    let bytes = std::fs::read(&config.component).with_context(|| {
        format!(
            "reading the booking component {} (build it with scripts/build-components.sh)",
            config.component.display()
        )
    })?;
    let mut guest_env = config.guest_env();
    guest_env.extend(config.outbound_guest_env(&dependencies.urls));
    let runtime = Runtime::new(
        engine,
        Some(&config.data_dir.join("component-cache")),
        dependencies.ports(),
        guest_env,
        &bytes,
        &config.component.display().to_string(),
    )
    .await?
    .with_outbound_http(outbound_http);
    let active = runtime.active();
    tracing::info!(
        sha256 = %active.sha256,
        label = active.label.get().map(String::as_str).unwrap_or_default(),
        compilation = ?active.compilation,
        prepare_ms = active.prepare_time.as_millis() as u64,
        "booking component loaded"
    );

    let native = match config.logic {
        LogicMode::Wasm => None,
        LogicMode::Native => {
            tracing::warn!("serving with the native build of the logic (benchmark baseline)");
            Some(NativeLogic::new(dependencies.ports(), &config.guest_env())?)
        }
    };
    let state = Arc::new(AppState {
        runtime,
        native,
        dependencies,
        max_response_bytes: config.max_response_kb << 10,
        graphiql_assets: config.graphql_introspection,
        in_flight: AtomicUsize::new(0),
        rate_limits: Arc::new(crate::rate_limit::RateLimits::from_config(&config)),
    });
    // `stopping` ends the listeners, the sweeper and the watch at once;
    // `relay_stop` comes after the requests drained, to send their events.
    let (stopping, _) = tokio::sync::watch::channel(false);
    let (relay_stop, relay_stopped) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(crate::sweeper::run(
        state.clone(),
        Duration::from_secs(config.sweep_interval.max(1)),
        stopping.subscribe(),
    ));
    let relay = state.dependencies.start_relay(relay_stopped);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!("serving GraphQL on http://{address}/graphql");
    let component_sha256 = state.runtime.active().sha256.clone();
    let admin = crate::admin::start(&config, state.clone(), stopping.subscribe()).await?;
    let admin_address = admin.address;
    let watcher = config.watch_dir.clone().map(|dir| {
        crate::watch::start(
            state.clone(),
            dir,
            config.watch_activate,
            stopping.subscribe(),
        )
    });
    let mut stopped = stopping.subscribe();
    let http = tokio::spawn(
        axum::serve(
            listener,
            crate::http::router(state.clone())
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        })
        .into_future(),
    );
    let grace = config.shutdown_grace();
    let (shutdown, shutdown_received) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = shutdown_received.await;
        let deadline = tokio::time::Instant::now() + grace;
        let _ = stopping.send(true);
        let served = match tokio::time::timeout_at(deadline, http).await {
            Ok(served) => served?,
            Err(_) => {
                tracing::warn!(
                    requests = state.in_flight.load(Ordering::Relaxed),
                    "shutdown: requests still running after the {grace:?} grace period are cut"
                );
                Ok(())
            }
        };
        let _ = relay_stop.send(true);
        let background = async {
            let _ = sweeper.await;
            let _ = admin.task.await;
            if let Some(watcher) = watcher {
                let _ = watcher.await;
            }
            if let Some(relay) = relay {
                let _ = relay.await;
            }
        };
        if tokio::time::timeout_at(deadline, background).await.is_err() {
            tracing::warn!(
                "shutdown: the sweeper, relay or admin API did not finish within the {grace:?} grace period"
            );
        }
        Ok(served?)
    });
    Ok(RunningService {
        address,
        admin_address,
        component_sha256,
        shutdown: Some(shutdown),
        task,
    })
}

pub async fn print_events(
    config: &Config,
    booking_id: Option<String>,
    limit: u32,
) -> anyhow::Result<()> {
    let db = booking_adapters::sqlite::Database::open(&config.data_dir.join("booking.sqlite3"))?;
    let log = booking_adapters::events::SqliteEventLog::new(db);
    let events = match booking_id {
        Some(id) => log.history(&id).await?,
        None => log.tail(limit).await?,
    };
    for event in events {
        println!("{}", serde_json::to_string(&event)?);
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: no new connections, finishing the requests in flight");
}
