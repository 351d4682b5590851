//! The HTTP front: `/health` is answered by the host; everything else goes
//! to a fresh instance of the booking component (or, with `--logic
//! native`, to the logic compiled into the host).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::{BodyExt, Limited};

use booking_runtime::runtime::error_response;
use booking_runtime::{HttpError, LOGIC_VERSION_HEADER};

use crate::app::AppState;

/// Largest request body handed to the component.
pub const MAX_BODY_BYTES: usize = 1 << 20;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .fallback(to_component)
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            with_logic_version,
        ))
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let (healthy, body) = crate::health::report(&state).await;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn to_component(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let declared_length = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared_length.is_some_and(|length| length > MAX_BODY_BYTES) {
        return too_large();
    }
    if let Some(native) = &state.native {
        return native.handle(request).await;
    }
    let (parts, body) = request.into_parts();
    // Chunked bodies have no declared length: cut them off while streaming.
    let body = Limited::new(body, MAX_BODY_BYTES).map_err(|error| {
        if error.is::<http_body_util::LengthLimitError>() {
            HttpError::HttpRequestBodySize(None)
        } else {
            HttpError::InternalError(Some(error.to_string()))
        }
    });
    let request = Request::from_parts(parts, body);
    match state.runtime.handle(request).await {
        Ok(response) => response.map(Body::new),
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
