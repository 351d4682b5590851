//! The admin API: load, activate, roll back and canary logic versions while
//! the service runs. Its own listener, so it is never exposed with the
//! public API by accident; a bearer token guards it, and without one it
//! refuses to listen anywhere but loopback.
//!
//! - `GET  /admin/versions`                      every loaded version and its role
//! - `POST /admin/versions[?activate=true]`      body: the .wasm bytes → loaded (and activated)
//! - `POST /admin/versions/{sha}/activate`       make it active (a unique prefix works)
//! - `POST /admin/rollback`                      back to the previous version
//! - `POST /admin/canary`                        `{"version": sha, "percent": 20}`
//! - `POST /admin/canary/promote`, `/admin/canary/abort`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use booking_runtime::component::MAX_COMPONENT_BYTES;
use booking_runtime::{AdminError, LogicComponent, Role};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::app::AppState;
use crate::config::Config;

pub struct AdminServer {
    pub address: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Serves until `stop` turns true, then finishes the calls in flight.
pub async fn start(
    config: &Config,
    state: Arc<AppState>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<AdminServer> {
    let token = config.admin_token.clone().filter(|token| !token.is_empty());
    if token.is_none() && !config.admin_listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve the admin API on {} without ADMIN_TOKEN: set a token or listen on loopback",
            config.admin_listen
        );
    }
    let listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding the admin API on {}", config.admin_listen))?;
    let address = listener.local_addr()?;
    tracing::info!(
        "admin API on http://{address}/admin (token {})",
        if token.is_some() { "required" } else { "off" }
    );
    let router = router(state, token);
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!("admin API stopped: {error}");
        }
    });
    Ok(AdminServer { address, task })
}

fn router(state: Arc<AppState>, token: Option<String>) -> Router {
    Router::new()
        .route("/admin/versions", get(list).post(upload))
        .route("/admin/versions/{version}/activate", post(activate))
        .route("/admin/rollback", post(rollback))
        .route("/admin/canary", post(canary))
        .route("/admin/canary/promote", post(promote))
        .route("/admin/canary/abort", post(abort))
        .layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES + 1))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(token),
            require_token,
        ))
        .with_state(state)
}

async fn require_token(
    State(token): State<Arc<Option<String>>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(expected) = token.as_deref() {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !presented
            .is_some_and(|presented| constant_time_eq(presented.as_bytes(), expected.as_bytes()))
        {
            return failure(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "a valid admin bearer token is required",
            );
        }
    }
    next.run(request).await
}

/// Compares without an early exit, so response time does not leak how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// One version as the admin API and `/health` describe it.
pub fn describe(component: &LogicComponent, role: Option<Role>) -> Value {
    json!({
        "sha256": component.sha256,
        "label": component.label.get(),
        "sizeBytes": component.size_bytes,
        "source": component.source,
        "loadedAtMs": component.loaded_at_ms,
        "prepareMs": component.prepare_time.as_secs_f64() * 1000.0,
        "compilation": format!("{:?}", component.compilation).to_lowercase(),
        "role": role.map(Role::as_str),
    })
}

fn failure(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn admin_failure(error: AdminError) -> Response {
    let (status, code) = match &error {
        AdminError::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "COMPONENT_REJECTED"),
        AdminError::Deployment(_) => (StatusCode::CONFLICT, "DEPLOYMENT_CONFLICT"),
        AdminError::UnknownVersion(_) => (StatusCode::NOT_FOUND, "UNKNOWN_VERSION"),
    };
    failure(status, code, &error.to_string())
}

fn role_of(state: &AppState, sha256: &str) -> Option<Role> {
    state
        .runtime
        .versions()
        .into_iter()
        .find(|v| v.component.sha256 == sha256)
        .map(|v| v.role)
}

async fn list(State(state): State<Arc<AppState>>) -> Response {
    let versions: Vec<Value> = state
        .runtime
        .versions()
        .iter()
        .map(|version| describe(&version.component, Some(version.role)))
        .collect();
    Json(json!({"versions": versions})).into_response()
}

#[derive(Deserialize)]
struct UploadOptions {
    #[serde(default)]
    activate: bool,
    /// Free text recorded as the version's source.
    source: Option<String>,
}

async fn upload(
    State(state): State<Arc<AppState>>,
    Query(options): Query<UploadOptions>,
    body: Bytes,
) -> Response {
    let source = options.source.unwrap_or_else(|| "admin upload".to_owned());
    let started = Instant::now();
    let loaded = match state.runtime.load(&body, &source).await {
        Ok(component) => component,
        Err(error) => return admin_failure(error),
    };
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    if options.activate && state.runtime.active().sha256 != loaded.sha256 {
        let activated = Instant::now();
        if let Err(error) = state.runtime.activate(&loaded.sha256).await {
            return admin_failure(error);
        }
        let activate_ms = activated.elapsed().as_secs_f64() * 1000.0;
        let body = json!({"version": describe(&loaded, role_of(&state, &loaded.sha256)), "loadMs": load_ms, "activateMs": activate_ms});
        return (StatusCode::CREATED, Json(body)).into_response();
    }
    let body =
        json!({"version": describe(&loaded, role_of(&state, &loaded.sha256)), "loadMs": load_ms});
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn activate(State(state): State<Arc<AppState>>, Path(version): Path<String>) -> Response {
    let started = Instant::now();
    match state.runtime.activate(&version).await {
        Ok(active) => Json(json!({
            "active": describe(&active, Some(Role::Active)),
            "activateMs": started.elapsed().as_secs_f64() * 1000.0,
        }))
        .into_response(),
        Err(error) => admin_failure(error),
    }
}

async fn rollback(State(state): State<Arc<AppState>>) -> Response {
    match state.runtime.rollback().await {
        Ok(active) => {
            Json(json!({"active": describe(&active, Some(Role::Active))})).into_response()
        }
        Err(error) => admin_failure(error),
    }
}

#[derive(Deserialize)]
struct CanaryRequest {
    version: String,
    percent: u32,
}

async fn canary(
    State(state): State<Arc<AppState>>,
    Json(request): Json<CanaryRequest>,
) -> Response {
    match state
        .runtime
        .start_canary(&request.version, request.percent)
        .await
    {
        Ok(candidate) => Json(json!({
            "canary": describe(&candidate, Some(Role::Canary)),
            "percent": request.percent,
        }))
        .into_response(),
        Err(error) => admin_failure(error),
    }
}

async fn promote(State(state): State<Arc<AppState>>) -> Response {
    match state.runtime.promote_canary().await {
        Ok(active) => {
            Json(json!({"active": describe(&active, Some(Role::Active))})).into_response()
        }
        Err(error) => admin_failure(error),
    }
}

async fn abort(State(state): State<Arc<AppState>>) -> Response {
    match state.runtime.abort_canary().await {
        Ok(()) => Json(json!({"active": describe(&state.runtime.active(), Some(Role::Active))}))
            .into_response(),
        Err(error) => admin_failure(error),
    }
}
