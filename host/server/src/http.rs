//! The HTTP front: `/health` (and `/health/live`, `/health/ready`) and
//! GraphiQL's scripts and styles
//! (`/graphiql/<file>`) are answered by the host; everything else goes
//! to a fresh instance of the booking component (or, with `--logic
//! native`, to the logic compiled into the host).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use http_body_util::{BodyExt, Full, Limited};
use tokio::time::Instant;

use booking_logic::model::report::{REPORT_HEADER, RequestReport};
use booking_runtime::runtime::error_response;
use booking_runtime::{LOGIC_VERSION_HEADER, Overloaded};
use booking_telemetry::metrics::short_version;
use tracing::Instrument;

use crate::app::AppState;

/// Largest request body handed to the component.
pub const MAX_BODY_BYTES: usize = 1 << 20;

pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/health", crate::health::public_route())
        .route("/health/live", crate::health::live_route())
        .route("/health/ready", crate::health::ready_route());
    if state.graphiql_assets {
        router = router.route("/graphiql/{file}", get(graphiql_asset));
    }
    router = router
        .route("/graphql", any(crate::live::ws::graphql))
        .route(
            "/graphql/stream",
            get(crate::live::sse::get).post(crate::live::sse::post),
        )
        .route("/book", get(crate::book::page))
        .route("/book/login", post(crate::book::login))
        .route("/book/{file}", get(crate::book::file));
    router
        .fallback(to_component)
        .layer(axum::middleware::from_fn_with_state(
            state.rate_limits.clone(),
            crate::rate_limit::enforce,
        ))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            with_logic_version,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_in_flight,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Names a request for its logs, and the client: the client's
/// `x-request-id` when it is short and printable, else a new one.
const REQUEST_ID_HEADER: &str = "x-request-id";

/// Runs the request in its span (a child of the client's `traceparent`)
/// and counts it: `booking_http_*`, `booking_graphql_errors_total`,
/// idempotency. The operation and error codes come from the logic's
/// report (or the host's own error answers), which is removed here.
/// Health and GraphiQL files are not counted: probes would drown the
/// API's numbers.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|id| id.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let counted = !(request.uri().path().starts_with("/health")
        || request.uri().path().starts_with("/graphiql/"));
    let span = booking_telemetry::traces::request_span(
        request.method().as_str(),
        request.uri().path(),
        request.headers(),
        &request_id,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let report = response
        .headers_mut()
        .remove(REPORT_HEADER)
        .and_then(|report| report.to_str().ok().map(RequestReport::from_header))
        .unwrap_or_default();
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if let Some((kind, field)) = &report.operation {
        span.record("graphql.operation.name", field.as_str());
        span.record("graphql.operation.type", kind.as_str());
    }
    tracing::debug!(parent: &span, status, elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "request answered");
    if counted {
        let version = response
            .headers()
            .get(LOGIC_VERSION_HEADER)
            .and_then(|version| version.to_str().ok())
            .map(short_version)
            .unwrap_or_default();
        state
            .metrics
            .record_request(&report, status, version, started.elapsed());
    }
    response
}

/// Keeps `AppState::in_flight` up to date, so a shutdown can tell how many
/// requests its grace period cut.
async fn count_in_flight(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    /// Decrements on drop: a request whose client went away counts down too.
    struct Running<'a>(&'a AppState);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
    state.in_flight.fetch_add(1, Ordering::Relaxed);
    let _running = Running(&state);
    next.run(request).await
}

/// GraphiQL's page (served by the component at `GET /graphql`) loads
/// these instead of a CDN, so it works offline. Vendored by
/// `scripts/vendor-graphiql.sh`; versions in `assets/graphiql/README.md`.
const GRAPHIQL_ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql/react-dom.production.min.js"),
    ),
];

/// The page asks for `?v=<version>`, so a new vendored version is a new
/// URL and these may be cached for good.
async fn graphiql_asset(Path(file): Path<String>) -> Response {
    match GRAPHIQL_ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *bytes,
        )
            .into_response(),
        None => error_response(404, "NOT_FOUND", "no such GraphiQL file").map(Body::new),
    }
}

pub(crate) async fn to_component(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let deadline = Instant::now() + state.request_timeout;
    let declared_length = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared_length.is_some_and(|length| length > MAX_BODY_BYTES) {
        return too_large();
    }
    // The whole body is read before the request takes an instance slot,
    // so a client that trickles it holds a connection, never a slot.
    let (parts, body) = request.into_parts();
    let body_deadline = deadline.min(Instant::now() + state.body_read_timeout);
    let body =
        match tokio::time::timeout_at(body_deadline, Limited::new(body, MAX_BODY_BYTES).collect())
            .await
        {
            Ok(Ok(collected)) => collected.to_bytes(),
            // Chunked bodies have no declared length: cut off while reading.
            Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => return too_large(),
            Ok(Err(error)) => {
                let message = format!("reading the request body failed: {error}");
                return error_response(400, "BAD_REQUEST", &message).map(Body::new);
            }
            Err(_) => {
                return error_response(
                    408,
                    "REQUEST_TIMEOUT",
                    "the request body did not arrive in time",
                )
                .map(Body::new);
            }
        };
    if let Some(native) = &state.native {
        let request = Request::from_parts(parts, Body::from(body));
        return capped(native.handle(request).await, state.max_response_bytes).await;
    }
    let request = Request::from_parts(parts, Full::new(body));
    match state.runtime.handle(request, deadline).await {
        Ok(response) => capped(response.map(Body::new), state.max_response_bytes).await,
        Err(error) if error.is::<Overloaded>() => {
            tracing::warn!("shedding a request: {error}");
            let mut response = error_response(
                503,
                booking_telemetry::metrics::OVERLOADED,
                "the service is at capacity; retry shortly",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response.map(Body::new)
        }
        Err(error) => {
            tracing::error!("request failed in the component: {error:#}");
            error_response(
                500,
                "INTERNAL",
                "the request failed inside the booking logic",
            )
            .map(Body::new)
        }
    }
}

/// Reads the whole body, up to `max_bytes`. A larger answer is a logic
/// bug or an attack on clients: it is dropped (the guest stops when its
/// stream is closed) and answered with 502. Reading it here also turns a
/// guest that traps halfway through its body into a clean 500 instead of
/// a truncated 200.
async fn capped(response: Response, max_bytes: usize) -> Response {
    let (parts, body) = response.into_parts();
    match Limited::new(body, max_bytes).collect().await {
        Ok(collected) => Response::from_parts(parts, Body::from(collected.to_bytes())),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            tracing::warn!(max_bytes, "a response exceeded the size limit");
            let message = format!("the response was larger than the {max_bytes}-byte limit");
            error_response(502, "RESPONSE_TOO_LARGE", &message).map(Body::new)
        }
        Err(error) => {
            tracing::error!("the response body failed: {error}");
            error_response(
                500,
                "INTERNAL",
                "the request failed inside the booking logic",
            )
            .map(Body::new)
        }
    }
}

/// Every response names a logic version: the one that served it (set by
/// the runtime) or, for host-answered routes, the active one.
async fn with_logic_version(
    State(state): State<Arc<AppState>>,
    mut response: Response,
) -> Response {
    if !response.headers().contains_key(LOGIC_VERSION_HEADER)
        && let Ok(version) = HeaderValue::from_str(&state.runtime.active().sha256)
    {
        response.headers_mut().insert(LOGIC_VERSION_HEADER, version);
    }
    response
}

fn too_large() -> Response {
    let message = format!("request body larger than {MAX_BODY_BYTES} bytes");
    error_response(413, "PAYLOAD_TOO_LARGE", &message).map(Body::new)
}
