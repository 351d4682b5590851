//! `GET /health`: every dependency checked concurrently with a short
//! deadline, plus the loaded component's identity. 200 when all are up,
//! 503 otherwise, so load balancers can use it as is.

use std::future::Future;
use std::time::Duration;

use serde_json::{Value, json};

use crate::app::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn check(probe: impl Future<Output = Result<(), String>>) -> Value {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => json!({"status": "up"}),
        Ok(Err(error)) => json!({"status": "down", "error": error}),
        Err(_) => json!({"status": "down", "error": format!("no answer within {CHECK_TIMEOUT:?}")}),
    }
}

pub async fn report(state: &AppState) -> (bool, Value) {
    let deps = &state.dependencies;
    let (storage, events, cinema, users, payments) = tokio::join!(
        check(deps.storage.health()),
        check(deps.events.health()),
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
    let component = state.runtime.component();
    let body = json!({
        "status": if healthy { "healthy" } else { "degraded" },
        "checks": checks,
        "component": {
            "sha256": component.sha256,
            "sizeBytes": component.size_bytes,
            "source": component.source,
        },
    });
    (healthy, body)
}
