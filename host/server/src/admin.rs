//! The admin API: load, activate, roll back and canary logic versions while
//! the service runs, and the detailed health report. Its own listener, so
//! it is never exposed with the public API by accident; always behind a
//! bearer token: `ADMIN_TOKEN`, or one generated at first start into
//! `<data dir>/admin-token` (0600). Loopback is no boundary — other local
//! users, and any web page the operator visits, can reach it — so requests
//! a browser marks as cross-site are refused before anything else, and an
//! upload must say `Content-Type: application/wasm` (a no-cors page
//! cannot send that). Optionally also on a Unix socket (`ADMIN_SOCKET`,
//! 0600), which no browser and no other user can reach.
//!
//! - `GET  /admin/health`                        every dependency's check, the deployed versions
//! - `GET  /admin/versions`                      every loaded version and its role
//! - `POST /admin/versions[?activate=true]`      body: the .wasm bytes → loaded (and activated)
//! - `POST /admin/versions/{sha}/activate`       make it active (a unique prefix works)
//! - `POST /admin/rollback`                      back to the previous version
//! - `POST /admin/canary`                        `{"version": sha, "percent": 20}`
//! - `POST /admin/canary/promote`, `/admin/canary/abort`

use std::future::IntoFuture;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use booking_runtime::component::MAX_COMPONENT_BYTES;
use booking_runtime::{AdminError, ArtifactKey, LogicComponent, Role, writable_only_by_us};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use crate::app::AppState;
use crate::config::Config;
use crate::deploy::{self, Change, DeployError};

/// Name of the generated token's file in the data directory.
const TOKEN_FILE: &str = "admin-token";

/// Shortest token accepted, on any address. It also keys the tags of
/// cached artifacts (`ArtifactKey`), so a guessable one would let whoever
/// reads one tagged artifact search for the key offline and forge native
/// code for the host.
const MIN_TOKEN_CHARS: usize = 32;

/// Where the token generated for `data_dir` is kept.
pub fn token_file(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

/// The admin API's bearer token.
pub struct AdminToken {
    secret: String,
}

impl AdminToken {
    /// `ADMIN_TOKEN` if set, else the token file of the data directory,
    /// created with a new random token at first start.
    pub fn resolve(config: &Config) -> anyhow::Result<AdminToken> {
        if let Some(token) = config.admin_token.as_deref().filter(|t| !t.is_empty()) {
            return Ok(AdminToken {
                secret: checked(token).context("ADMIN_TOKEN")?,
            });
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.data_dir)
            .with_context(|| {
                format!("creating the data directory {}", config.data_dir.display())
            })?;
        let path = token_file(&config.data_dir);
        let secret = match create_token_file(&path) {
            Ok(secret) => {
                // Shown once, for the operator; later starts only say where it is.
                eprintln!(
                    "admin API token (generated, stored in {}; it is not shown again): {secret}",
                    path.display()
                );
                secret
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                tracing::info!("admin API token in {}", path.display());
                read_token_file(&path)?
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("creating the admin token file {}", path.display()));
            }
        };
        Ok(AdminToken { secret })
    }

    /// The key of the component cache's integrity tags.
    pub fn artifact_key(&self) -> ArtifactKey {
        ArtifactKey::derive(self.secret.as_bytes())
    }

    /// The key of a fleet's deployment record: only a holder of the
    /// fleet's admin token can write a record its replicas follow.
    pub fn fleet_key(&self) -> crate::fleet::RecordKey {
        crate::fleet::RecordKey::derive(self.secret.as_bytes())
    }
}

/// A token fit to guard the admin API and to go in a header.
fn checked(token: &str) -> anyhow::Result<String> {
    if token.len() < MIN_TOKEN_CHARS || !token.bytes().all(|b| b.is_ascii_graphic()) {
        anyhow::bail!(
            "the admin token must be at least {MIN_TOKEN_CHARS} visible ASCII characters (e.g. `openssl rand -hex 32`)"
        );
    }
    Ok(token.to_owned())
}

/// 256 bits from the OS, hex, in a new file only this user may read.
fn create_token_file(path: &Path) -> std::io::Result<String> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(std::io::Error::other)?;
    let secret: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(format!("{secret}\n").as_bytes())?;
    file.sync_all()?;
    Ok(secret)
}

/// The stored token, if the file is still as private as it was made.
fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let context = || format!("reading the admin token file {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(context)?;
    let metadata = file.metadata().with_context(context)?;
    if !metadata.is_file()
        || !writable_only_by_us(&metadata)
        || metadata.permissions().mode() & 0o077 != 0
    {
        anyhow::bail!(
            "refusing the admin token file {}: it must be a regular file of this user that nobody else may read or write (chmod 600 it)",
            path.display()
        );
    }
    let mut contents = String::new();
    file.read_to_string(&mut contents).with_context(context)?;
    checked(contents.trim())
        .with_context(|| format!("in {} (delete it to generate a new one)", path.display()))
}

pub struct AdminServer {
    pub address: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Serves until `stop` turns true, then finishes the calls in flight.
pub async fn start(
    config: &Config,
    token: &AdminToken,
    state: Arc<AppState>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<AdminServer> {
    let listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding the admin API on {}", config.admin_listen))?;
    let address = listener.local_addr()?;
    let socket = config
        .admin_socket
        .as_deref()
        .map(bind_private_socket)
        .transpose()?;
    tracing::info!("admin API on http://{address}/admin (bearer token required)");
    if let Some(path) = &config.admin_socket {
        tracing::info!("admin API on the Unix socket {}", path.display());
    }
    let guard = Guard {
        token_sha256: Sha256::digest(token.secret.as_bytes()).into(),
        own_origin: format!("http://{address}"),
    };
    let router = router(state, guard);
    let stopped = |mut stop: watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let tcp = axum::serve(listener, router.clone()).with_graceful_shutdown(stopped(stop.clone()));
    let task = tokio::spawn(async move {
        let unix = async {
            match socket {
                Some(socket) => {
                    axum::serve(socket, router)
                        .with_graceful_shutdown(stopped(stop))
                        .await
                }
                None => Ok(()),
            }
        };
        let (tcp, unix) = tokio::join!(tcp.into_future(), unix);
        for error in [tcp, unix].into_iter().filter_map(Result::err) {
            tracing::error!("admin API stopped: {error}");
        }
    });
    Ok(AdminServer { address, task })
}

/// Binds a Unix socket only this user may connect to: bound under a
/// temporary name, made 0600, then renamed into place, so it is never
/// reachable with looser permissions. A stale socket there is replaced;
/// any other file is not.
fn bind_private_socket(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    let context = || {
        format!(
            "binding the admin API on the Unix socket {}",
            path.display()
        )
    };
    if let Ok(existing) = std::fs::symlink_metadata(path)
        && !existing.file_type().is_socket()
    {
        anyhow::bail!("{} exists and is not a socket", path.display());
    }
    let binding = path.with_extension("binding");
    let _ = std::fs::remove_file(&binding);
    let socket = tokio::net::UnixListener::bind(&binding).with_context(context)?;
    std::fs::set_permissions(&binding, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&binding, path))
        .with_context(context)?;
    Ok(socket)
}

/// What every admin request is checked against.
struct Guard {
    /// Compared as digests: equal lengths, so the comparison's time says
    /// nothing about the token's length either.
    token_sha256: [u8; 32],
    /// `http://<listen address>`: the only `Origin` a request may carry.
    own_origin: String,
}

fn router(state: Arc<AppState>, guard: Guard) -> Router {
    Router::new()
        .route("/admin/health", get(health))
        .route("/admin/versions", get(list).post(upload))
        .route("/admin/versions/{version}/activate", post(activate))
        .route("/admin/rollback", post(rollback))
        .route("/admin/canary", post(canary))
        .route("/admin/canary/promote", post(promote))
        .route("/admin/canary/abort", post(abort))
        .layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES + 1))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(guard),
            require_token,
        ))
        .with_state(state)
}

/// Runs before any body is read.
async fn require_token(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    if is_cross_site(request.headers(), &guard.own_origin) {
        return failure(
            StatusCode::FORBIDDEN,
            "CROSS_SITE_REQUEST",
            "the admin API refuses requests from other sites",
        );
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let valid = presented.is_some_and(|presented| {
        Sha256::digest(presented.as_bytes())
            .as_slice()
            .ct_eq(&guard.token_sha256)
            .into()
    });
    if !valid {
        return failure(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "a valid admin bearer token is required",
        );
    }
    next.run(request).await
}

/// What browsers say about where a request comes from; other clients send
/// neither header.
fn is_cross_site(headers: &HeaderMap, own_origin: &str) -> bool {
    let foreign_origin = headers
        .get(header::ORIGIN)
        .is_some_and(|origin| origin.as_bytes() != own_origin.as_bytes());
    let fetched_cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|site| !matches!(site.as_bytes(), b"same-origin" | b"none"));
    foreign_origin || fetched_cross_site
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    crate::health::detailed(&state).await
}

/// One version as the admin API and `/admin/health` describe it.
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

fn admin_failure(error: DeployError) -> Response {
    let (status, code) = match &error {
        DeployError::Admin(AdminError::Rejected(_)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "COMPONENT_REJECTED")
        }
        DeployError::Admin(AdminError::Deployment(_)) | DeployError::Contended => {
            (StatusCode::CONFLICT, "DEPLOYMENT_CONFLICT")
        }
        DeployError::Admin(AdminError::UnknownVersion(_)) => {
            (StatusCode::NOT_FOUND, "UNKNOWN_VERSION")
        }
        DeployError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "FLEET_STORE_UNAVAILABLE"),
        DeployError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "FLEET_NOT_READY"),
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
    let Some(fleet) = &state.fleet else {
        return Json(json!({"versions": versions})).into_response();
    };
    match fleet.describe().await {
        Ok(fleet) => Json(json!({"versions": versions, "fleet": fleet})).into_response(),
        Err(error) => admin_failure(error),
    }
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
    request: Request,
) -> Response {
    let is_wasm = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/wasm"));
    if !is_wasm {
        return failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "upload the component with Content-Type: application/wasm",
        );
    }
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    let source = options.source.unwrap_or_else(|| "admin upload".to_owned());
    let started = Instant::now();
    let loaded = match deploy::upload(&state, &body, &source).await {
        Ok(component) => component,
        Err(error) => return admin_failure(error),
    };
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    if options.activate && state.runtime.active().sha256 != loaded.sha256 {
        let activated = Instant::now();
        let change = Change::Activate(loaded.sha256.clone());
        if let Err(error) = deploy::change(&state, change).await {
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

async fn activate(
    State(state): State<Arc<AppState>>,
    UrlPath(version): UrlPath<String>,
) -> Response {
    let started = Instant::now();
    match deploy::change(&state, Change::Activate(version)).await {
        Ok(()) => Json(json!({
            "active": describe(&state.runtime.active(), Some(Role::Active)),
            "activateMs": started.elapsed().as_secs_f64() * 1000.0,
        }))
        .into_response(),
        Err(error) => admin_failure(error),
    }
}

/// Makes `change` and answers with the active version.
async fn change_active(state: &AppState, change: Change) -> Response {
    match deploy::change(state, change).await {
        Ok(()) => Json(json!({"active": describe(&state.runtime.active(), Some(Role::Active))}))
            .into_response(),
        Err(error) => admin_failure(error),
    }
}

async fn rollback(State(state): State<Arc<AppState>>) -> Response {
    change_active(&state, Change::Rollback).await
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
    let change = Change::Canary {
        version: request.version,
        percent: request.percent,
    };
    if let Err(error) = deploy::change(&state, change).await {
        return admin_failure(error);
    }
    match state.runtime.deployment().canary.as_ref() {
        Some(canary) => Json(json!({
            "canary": describe(&canary.candidate, Some(Role::Canary)),
            "percent": canary.percent,
        }))
        .into_response(),
        None => failure(
            StatusCode::CONFLICT,
            "DEPLOYMENT_CONFLICT",
            "another change ended the canary already",
        ),
    }
}

async fn promote(State(state): State<Arc<AppState>>) -> Response {
    change_active(&state, Change::Promote).await
}

async fn abort(State(state): State<Arc<AppState>>) -> Response {
    change_active(&state, Change::Abort).await
}
