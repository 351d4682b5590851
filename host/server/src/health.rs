//! Health: every registered adapter (`Dependencies::adapters`, each
//! under its `Adapter::NAME`) checked concurrently with a short deadline.
//! 200 when all are up, 503 otherwise, so load balancers can use it as is.
//!
//! The public `GET /health` says only that (and whether reference peers
//! serve), from a report at most `PUBLIC_REFRESH` old: anyone may call it,
//! so it names no internal URL or error and costs the dependencies one
//! probe round per period however often it is called. The detail —
//! each check with its error, the deployed versions, the broker and its
//! backlog — is `GET /admin/health`, behind the admin token.
//!
//! For orchestrators: `GET /health/live` says the process serves (nothing
//! is checked: a dependency outage must not get the pod restarted), and
//! `GET /health/ready` that it can take bookings: the component is loaded
//! (always, once it serves) and the store it keeps bookings and events in
//! answers. The Cinema, User and Payment services are left out of
//! readiness: they are shared, so their outage would take every replica
//! out of the balancer at once, turning a failed dependency into a total
//! outage instead of clear errors.
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
use booking_adapters::Adapter;
use booking_runtime::Role;
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

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

/// The check the relay's report goes under: the event log it drains.
const RELAYED_LOG: &str = "events";

/// The relay's part of the report, if events are relayed: the broker's
/// check (with its exchanges) and the backlog behind it.
async fn relay(deps: &Dependencies) -> Option<(Value, Value)> {
    let broker = deps.broker.as_ref()?;
    let (mut report, backlog) = tokio::join!(
        check(broker.health()),
        tokio::time::timeout(CHECK_TIMEOUT, deps.backlog()),
    );
    report["exchange"] = json!(broker.exchange());
    report["alternateExchange"] = json!(broker.alternate_exchange());
    let backlog = match backlog {
        Ok(Ok(waiting)) => json!(waiting),
        _ => Value::Null,
    };
    Some((report, backlog))
}

/// The adapters readiness depends on: the bookings' own store.
const READINESS_CHECKS: &[&str] = &["storage", "events"];

/// One probe round: every registered adapter checked at once, and
/// whether all are up; the relay's report goes under the event log.
async fn probe(deps: &Dependencies) -> (bool, Value) {
    let ((healthy, mut checks), relay) = tokio::join!(probe_some(deps, |_| true), relay(deps));
    if let (Some((broker, backlog)), Some(log)) = (relay, checks.get_mut(RELAYED_LOG)) {
        log["broker"] = broker;
        log["backlog"] = backlog;
    }
    (healthy, Value::Object(checks))
}

/// The adapters `wanted` picks by name, checked at once, and whether
/// all are up.
async fn probe_some(
    deps: &Dependencies,
    wanted: impl Fn(&str) -> bool,
) -> (bool, Map<String, Value>) {
    let mut round = JoinSet::new();
    let picked = deps
        .adapters
        .iter()
        .filter(|adapter| wanted(adapter.name()));
    for (position, adapter) in picked.cloned().enumerate() {
        round.spawn(async move { (position, adapter.name(), check(adapter.check()).await) });
    }
    let mut reports = round.join_all().await;
    reports.sort_by_key(|(position, ..)| *position);
    let checks: Map<String, Value> = reports
        .into_iter()
        .map(|(_, name, report)| (name.to_owned(), report))
        .collect();
    let healthy = checks.values().all(|c| c["status"] == "up");
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
    cached_route(
        |deps| Box::pin(async { probe(deps).await.0 }),
        |healthy, state| {
            json!({
                "status": status_word(healthy),
                "referencePeers": state.dependencies.reference_peers,
            })
        },
    )
}

/// `GET /health/live`: the process answers.
pub fn live_route() -> MethodRouter<Arc<AppState>> {
    get(|| async { axum::Json(json!({"status": "live"})) })
}

/// `GET /health/ready`: the store answers (see the module doc).
pub fn ready_route() -> MethodRouter<Arc<AppState>> {
    cached_route(
        |deps| {
            Box::pin(async {
                probe_some(deps, |name| READINESS_CHECKS.contains(&name))
                    .await
                    .0
            })
        },
        |ready, _| json!({"status": if ready { "ready" } else { "not ready" }}),
    )
}

/// Whether the checks of one probe round are all up.
type Round<'a> = std::pin::Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// A public handler answering from a probe round at most
/// `PUBLIC_REFRESH` old: callers that find it stale wait on the lock, so
/// concurrent ones share one round, and the body names no internals.
fn cached_route(
    round: for<'a> fn(&'a Dependencies) -> Round<'a>,
    body: fn(bool, &AppState) -> Value,
) -> MethodRouter<Arc<AppState>> {
    // When the last round finished and whether all was up.
    let last_round = Arc::new(tokio::sync::Mutex::new(None::<(Instant, bool)>));
    get(move |State(state): State<Arc<AppState>>| async move {
        let mut last = last_round.lock().await;
        let up = match *last {
            Some((finished, up)) if finished.elapsed() < PUBLIC_REFRESH => up,
            _ => {
                let up = round(&state.dependencies).await;
                *last = Some((Instant::now(), up));
                up
            }
        };
        drop(last);
        respond(up, body(up, &state))
    })
}
