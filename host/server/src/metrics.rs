//! `GET /metrics`: every series of `booking_telemetry::Metrics` in the
//! Prometheus text format, on a listener of its own (`METRICS_LISTEN`)
//! so the public port never shows it and a scraper needs no token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use booking_adapters::outbox::now_ms;
use tokio::sync::watch;

use crate::app::AppState;

/// Longest a scrape waits for the outbox's numbers; past it the gauges
/// keep their last values.
const OUTBOX_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

pub struct MetricsServer {
    pub address: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

pub async fn start(
    listen: SocketAddr,
    state: Arc<AppState>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<MetricsServer> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the metrics endpoint on {listen}"))?;
    let address = listener.local_addr()?;
    tracing::info!("metrics on http://{address}/metrics");
    let router = Router::new()
        .route("/metrics", get(scrape))
        .with_state(state);
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!("the metrics endpoint failed: {error}");
        }
    });
    Ok(MetricsServer { address, task })
}

async fn scrape(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let outbox = &state.metrics.outbox;
    match tokio::time::timeout(OUTBOX_CHECK_TIMEOUT, state.dependencies.outbox_status()).await {
        Ok(Ok(status)) => {
            outbox
                .backlog
                .set(i64::try_from(status.backlog).unwrap_or(i64::MAX));
            let age_ms = status
                .oldest_at
                .map_or(0, |oldest| now_ms().saturating_sub(oldest));
            outbox
                .oldest_age_seconds
                .set(i64::try_from(age_ms / 1000).unwrap_or(i64::MAX));
        }
        Ok(Err(error)) => tracing::warn!("metrics: reading the outbox failed: {error}"),
        Err(_) => tracing::warn!("metrics: the outbox did not answer in {OUTBOX_CHECK_TIMEOUT:?}"),
    }
    (
        [(
            header::CONTENT_TYPE,
            booking_telemetry::metrics::CONTENT_TYPE,
        )],
        state.metrics.encode(),
    )
}
