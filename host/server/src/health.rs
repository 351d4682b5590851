//! `GET /health`: every dependency checked concurrently with a short
//! deadline, plus the loaded component's identity. 200 when all are up,
//! 503 otherwise, so load balancers can use it as is.
//!
//! The broker is reported inside `events` (with the outbox backlog) but
//! does not make it down: bookings go on while RabbitMQ is away, their
//! events wait in the outbox, so taking the host out of a load balancer
//! would only turn a delay into an outage.

use std::future::Future;
use std::time::Duration;

use serde_json::{Value, json};

use booking_runtime::Role;

use crate::app::AppState;
use crate::dependencies::Dependencies;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

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

pub async fn report(state: &AppState) -> (bool, Value) {
    let deps = &state.dependencies;
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
    let deployment = state.runtime.deployment();
    let body = json!({
        "status": if healthy { "healthy" } else { "degraded" },
        "checks": checks,
        "referencePeers": deps.reference_peers,
        "component": crate::admin::describe(&deployment.active, Some(Role::Active)),
        "canary": deployment.canary.as_ref().map(|canary| json!({
            "component": crate::admin::describe(&canary.candidate, Some(Role::Canary)),
            "percent": canary.percent,
        })),
    });
    (healthy, body)
}
