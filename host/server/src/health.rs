//! Health: every dependency checked concurrently with a short deadline.
//! 200 when all are up, 503 otherwise, so load balancers can use it as is.
//!
//! The public `GET /health` says only that (and whether reference peers
//! serve), from a report at most `PUBLIC_REFRESH` old: anyone may call it,
//! so it names no internal URL or error and costs the dependencies one
//! probe round per period however often it is called. The detail —
//! each check with its error, the deployed versions, the broker and its
//! backlog — is `GET /admin/health`, behind the admin token.
//!
//! The broker is reported inside `events` (with the outbox backlog) but
//! does not make it down: bookings go on while RabbitMQ is away, their
//! events wait in the outbox, so taking the host out of a load balancer
//! would only turn a delay into an outage.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};

use booking_runtime::Role;

use crate::app::AppState;
use crate::dependencies::Dependencies;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one probe round answers the public endpoint.
const PUBLIC_REFRESH: Duration = Duration::from_secs(1);

async fn check(probe: impl Future<Output = Result<(), String>>) -> Value {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => json!({"status": "up"}),
        Ok(Err(error)) => json!({"status": "down", "error": error}),
        Err(_) => json!({"status": "down", "error": format!("no answer within {CHECK_TIMEOUT:?}")}),
    }
}

/// The event log's own check, plus the broker and the backlog behind it.
async fn events(deps: &Dependencies) -> Value {
    let mut report = check(deps.store.events_health()).await;
    if let Some(broker) = &deps.broker {
        let (broker_check, backlog) = tokio::join!(
            check(broker.health()),
            tokio::time::timeout(CHECK_TIMEOUT, deps.store.backlog()),
        );
        report["broker"] = broker_check;
        report["broker"]["exchange"] = json!(broker.exchange());
        report["broker"]["alternateExchange"] = json!(broker.alternate_exchange());
        report["backlog"] = match backlog {
            Ok(Ok(waiting)) => json!(waiting),
            _ => Value::Null,
        };
    }
    report
}

/// One probe round: whether every dependency is up, and each check.
async fn probe(deps: &Dependencies) -> (bool, Value) {
    let (storage, events, cinema, users, payments) = tokio::join!(
        check(deps.store.storage_health()),
        events(deps),
        check(deps.seats.health()),
        check(deps.users.health()),
        check(deps.payments.health()),
    );
    let checks = json!({
        "storage": storage, "events": events, "cinema": cinema, "users": users, "payments": payments,
    });
    let healthy = checks
        .as_object()
        .is_some_and(|all| all.values().all(|c| c["status"] == "up"));
    (healthy, checks)
}

fn respond(healthy: bool, body: Value) -> Response {
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

fn status_word(healthy: bool) -> &'static str {
    if healthy { "healthy" } else { "degraded" }
}

/// `GET /admin/health`: a fresh probe round with every detail.
pub async fn detailed(state: &AppState) -> Response {
    let (healthy, checks) = probe(&state.dependencies).await;
    let deployment = state.runtime.deployment();
    let body = json!({
        "status": status_word(healthy),
        "referencePeers": state.dependencies.reference_peers,
        "checks": checks,
        "component": crate::admin::describe(&deployment.active, Some(Role::Active)),
        "canary": deployment.canary.as_ref().map(|canary| json!({
            "component": crate::admin::describe(&canary.candidate, Some(Role::Canary)),
            "percent": canary.percent,
        })),
    });
    respond(healthy, body)
}

/// The public `GET /health` handler, with its own report cache.
pub fn public_route() -> MethodRouter<Arc<AppState>> {
    // When the last round finished and whether all was up. Callers that
    // find it stale wait on the lock, so concurrent ones share one round.
    let last_round = Arc::new(tokio::sync::Mutex::new(None::<(Instant, bool)>));
    get(move |State(state): State<Arc<AppState>>| async move {
        let mut last = last_round.lock().await;
        let healthy = match *last {
            Some((finished, healthy)) if finished.elapsed() < PUBLIC_REFRESH => healthy,
            _ => {
                let (healthy, _) = probe(&state.dependencies).await;
                *last = Some((Instant::now(), healthy));
                healthy
            }
        };
        drop(last);
        let body = json!({
            "status": status_word(healthy),
            "referencePeers": state.dependencies.reference_peers,
        });
        respond(healthy, body)
    })
}
