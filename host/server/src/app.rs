//! Start-up: dependencies → sandbox engine → component → sweeper → HTTP.
//! Shutdown in reverse: stop accepting (public and admin API), let the
//! requests in flight finish and the sweeper end its batch, then let the
//! relay send what they stored — all within the grace period.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::extract::ConnectInfo;
use booking_adapters::Adapter;
use booking_adapters::outbox::{Delivery, LogConfig};
use booking_adapters::sqlite::SqliteEventLog;
use booking_logic::ports::Events;
use booking_runtime::{CacheLocation, EngineLimits, Runtime, SandboxEngine};
use booking_telemetry::Metrics;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::Config;
use crate::dependencies::Dependencies;
use crate::native_twin::{LogicMode, NativeLogic};

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
    /// Wall-clock limit of one request, from its headers on.
    pub request_timeout: Duration,
    /// Time a client has to send the whole body (within the above).
    pub body_read_timeout: Duration,
    /// Per-IP and per-token request rates (`rate_limit::enforce`).
    pub rate_limits: Arc<crate::rate_limit::RateLimits>,
    /// Every series `/metrics` exports (`metrics.rs`).
    pub metrics: Arc<Metrics>,
    /// The fleet this host is a replica of (with MongoDB): deployment
    /// changes go there, and it follows the fleet's.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
    /// GraphQL subscriptions' groups and limits (`live.rs`).
    pub live: Arc<crate::live::Live>,
}

/// A started service: its address and a handle to stop it.
pub struct RunningService {
    pub address: std::net::SocketAddr,
    /// Where the admin API listens.
    pub admin_address: std::net::SocketAddr,
    /// Where `/metrics` is served.
    pub metrics_address: std::net::SocketAddr,
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
        deadline: config.request_timeout(),
        max_concurrent_instances: config.max_concurrent_requests,
        queue_wait: config.queue_timeout(),
    })?;
    let bytes = std::fs::read(&config.component).with_context(|| {
        format!(
            "reading the booking component {} (build it with scripts/build-components.sh)",
            config.component.display()
        )
    })?;
    let mut guest_env = config.guest_env();
    guest_env.extend(config.outbound_guest_env(&dependencies.urls));
    let admin_token = crate::admin::AdminToken::resolve(&config)?;
    let metrics = Arc::new(Metrics::new());
    let runtime = Runtime::new(
        engine,
        Some(CacheLocation {
            dir: config.data_dir.join("component-cache"),
            key: admin_token.artifact_key(),
        }),
        dependencies.ports(),
        guest_env,
        &bytes,
        &config.component.display().to_string(),
    )
    .await?
    .with_outbound_http(outbound_http)
    .with_metrics(metrics.clone());
    let active = runtime.active();
    tracing::info!(
        sha256 = %active.sha256,
        label = active.label.get().map(String::as_str).unwrap_or_default(),
        compilation = ?active.compilation,
        prepare_ms = active.prepare_time.as_millis() as u64,
        "booking component loaded"
    );

    let fleet = match dependencies.fleet.clone() {
        Some(store) => Some(Arc::new(
            crate::fleet::Fleet::join(
                store,
                config.replica_id(),
                admin_token.fleet_key(),
                &runtime,
                &bytes,
            )
            .await?,
        )),
        None => None,
    };

    let native = match config.logic {
        LogicMode::Wasm => None,
        LogicMode::Native => {
            tracing::warn!("serving with the native build of the logic (benchmark baseline)");
            Some(NativeLogic::new(dependencies.ports(), &config.guest_env())?)
        }
    };
    // `stopping` ends the listeners, the sweeper, the watch and the live
    // sessions at once; `relay_stop` comes after the requests drained,
    // to send their events.
    let (stopping, _) = tokio::sync::watch::channel(false);
    let live = Arc::new(crate::live::Live::new(
        dependencies.changes.clone(),
        config.live_limits(),
        stopping.subscribe(),
        metrics.live.clone(),
    ));
    let state = Arc::new(AppState {
        runtime,
        native,
        dependencies,
        max_response_bytes: config.max_response_kb << 10,
        graphiql_assets: config.graphql_introspection,
        in_flight: AtomicUsize::new(0),
        request_timeout: config.request_timeout(),
        body_read_timeout: config.body_read_timeout(),
        rate_limits: Arc::new(crate::rate_limit::RateLimits::from_config(&config)),
        metrics,
        fleet: fleet.clone(),
        live,
    });
    let (relay_stop, relay_stopped) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(crate::sweeper::run(
        state.clone(),
        Duration::from_secs(config.sweep_interval.max(1)),
        stopping.subscribe(),
    ));
    let fleet_poll = fleet.map(|fleet| {
        tokio::spawn(crate::fleet::run(
            state.clone(),
            fleet,
            stopping.subscribe(),
        ))
    });
    let relay = state
        .dependencies
        .start_relay(state.metrics.relay.clone(), relay_stopped);
    let live_feed = state.dependencies.start_live_feed(stopping.subscribe());

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!("serving GraphQL on http://{address}/graphql");
    let component_sha256 = state.runtime.active().sha256.clone();
    let admin =
        crate::admin::start(&config, &admin_token, state.clone(), stopping.subscribe()).await?;
    let admin_address = admin.address;
    let metrics_server =
        crate::metrics::start(config.metrics_listen, state.clone(), stopping.subscribe()).await?;
    let metrics_address = metrics_server.address;
    let watcher = config.watch_dir.clone().map(|dir| {
        crate::watch::start(
            state.clone(),
            dir,
            config.watch_activate,
            stopping.subscribe(),
        )
    });
    let http = tokio::spawn(serve_http(
        listener,
        crate::http::router(state.clone()),
        ConnectionLimits {
            max_connections: config.max_connections as usize,
            header_read_timeout: config.header_read_timeout(),
        },
        stopping.subscribe(),
    ));
    let grace = config.shutdown_grace();
    let (shutdown, shutdown_received) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = shutdown_received.await;
        let deadline = tokio::time::Instant::now() + grace;
        let _ = stopping.send(true);
        match tokio::time::timeout_at(deadline, http).await {
            Ok(served) => served?,
            Err(_) => {
                tracing::warn!(
                    requests = state.in_flight.load(Ordering::Relaxed),
                    "shutdown: requests still running after the {grace:?} grace period are cut"
                );
            }
        }
        let _ = relay_stop.send(true);
        let background = async {
            let _ = sweeper.await;
            let _ = admin.task.await;
            let _ = metrics_server.task.await;
            if let Some(watcher) = watcher {
                let _ = watcher.await;
            }
            if let Some(fleet_poll) = fleet_poll {
                let _ = fleet_poll.await;
            }
            if let Some(relay) = relay {
                let _ = relay.await;
            }
            if let Some(live_feed) = live_feed {
                let _ = live_feed.await;
            }
        };
        if tokio::time::timeout_at(deadline, background).await.is_err() {
            tracing::warn!(
                "shutdown: the sweeper, relay or admin API did not finish within the {grace:?} grace period"
            );
        }
        Ok(())
    });
    Ok(RunningService {
        address,
        admin_address,
        metrics_address,
        component_sha256,
        shutdown: Some(shutdown),
        task,
    })
}

struct ConnectionLimits {
    max_connections: usize,
    header_read_timeout: Duration,
}

/// Serves HTTP/1 on `listener` until `stop` turns true, then waits for
/// the connections to finish the requests they are serving (idle ones
/// close at once). A connection past `max_connections` is not accepted
/// but left in the listen backlog: it is served, late, as soon as one
/// closes, where an accepted-then-closed one would fail a request the
/// client cannot tell was not processed. Slow clients cannot hold the
/// cap for long: headers (and keep-alive idling, which hyper times as
/// the wait for the next headers) get `header_read_timeout`, bodies the
/// body read timeout (`http::to_component`).
async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            permit = connections.clone().acquire_owned() => permit,
        };
        // Only a closed semaphore fails, and this one is never closed.
        let Ok(permit) = permit else { break };
        let (stream, remote) = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of file descriptors and the like: pause, not spin.
                    tracing::warn!("accepting a connection failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        // Handlers (rate limits by client address) may ask for the peer.
        let service = hyper::service::service_fn(move |mut request| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(remote));
            hyper::service::Service::call(&service, request)
        });
        // Upgrades (WebSocket subscriptions, `live::ws`) leave the
        // connection once switched: they end with `stop` themselves.
        let connection = http1
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = stopped(&mut stop) => {
                    // Finish the request in flight; an idle one closes now.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = served {
                tracing::debug!(%remote, "connection ended: {error}");
            }
            drop(permit);
        });
    }
    drop(listener);
    // Every connection holds a permit until it ends: all of them back
    // means all ended.
    let _ = connections
        .acquire_many(limits.max_connections as u32)
        .await;
}

/// Returns once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

pub async fn print_events(
    config: &Config,
    booking_id: Option<String>,
    limit: u32,
) -> anyhow::Result<()> {
    let log = SqliteEventLog::from_config(LogConfig {
        database: config.data_dir.join("booking.sqlite3"),
        delivery: Delivery::Stored,
    })
    .await?;
    let events = match booking_id {
        Some(id) => log.history(&id).await?,
        None => log.tail(limit).await?,
    };
    for event in events {
        println!("{}", serde_json::to_string(&event)?);
    }
    Ok(())
}

pub async fn preinit(input: &Path, output: &Path) -> anyhow::Result<()> {
    let wasm = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let initialized = booking_runtime::preinit::preinitialize(&wasm)
        .await
        .with_context(|| format!("pre-initializing {}", input.display()))?;
    // Whole or not at all: a watched directory must never see half a file.
    let partial = output.with_extension("wasm.partial");
    std::fs::write(&partial, &initialized)
        .and_then(|()| std::fs::rename(&partial, output))
        .with_context(|| format!("writing {}", output.display()))?;
    println!(
        "{} → {} ({} → {} bytes)",
        input.display(),
        output.display(),
        wasm.len(),
        initialized.len()
    );
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
