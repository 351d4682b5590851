//! The booking page (`/book`): sign in as a demo user, watch a showtime's
//! seats change live, hold seats with a countdown (and extend it), pay,
//! and watch the booking's status — a plain page over the public API
//! (`/graphql` and its WebSocket subscriptions), with its files vendored
//! into the binary (`assets/book/README.md`): no CDN, no build step.
//! `POST /book/login` passes a sign-in to the User service, so the page
//! needs no other origin.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::AppState;

const PAGE: &[u8] = include_bytes!("../assets/book/index.html");

/// The page's files; `graphql-ws.min.js` is asked for with `?v=<version>`.
const FILES: &[(&str, &str, &[u8], &str)] = &[
    (
        "book.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/book/book.js"),
        "no-cache",
    ),
    (
        "book.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/book/book.css"),
        "no-cache",
    ),
    (
        "graphql-ws.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/book/graphql-ws.min.js"),
        "public, max-age=31536000, immutable",
    ),
];

/// Only what the page itself loads and connects to.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(crate) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
        .into_response()
}

pub(crate) async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(file, ..)| *file == name) {
        Some((_, content_type, bytes, cache)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, *cache),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *bytes,
        )
            .into_response(),
        None => failure(StatusCode::NOT_FOUND, "NOT_FOUND", "no such file"),
    }
}

/// `{"userId", "password"}` → the User service's `{"token", "userId", …}`.
pub(crate) async fn login(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let credentials = serde_json::from_slice::<Value>(&body).ok().filter(|value| {
        value["userId"]
            .as_str()
            .is_some_and(|id| !id.is_empty() && id.len() <= 128)
            && value["password"]
                .as_str()
                .is_some_and(|password| password.len() <= 256)
    });
    let Some(credentials) = credentials else {
        return failure(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "send {\"userId\": \"…\", \"password\": \"…\"}",
        );
    };
    let credentials =
        json!({ "userId": credentials["userId"], "password": credentials["password"] });
    match state.dependencies.users.login(&credentials).await {
        Ok((200, body)) => match serde_json::from_slice::<Value>(&body) {
            Ok(signed_in) if signed_in["token"].is_string() => Json(json!({
                "token": signed_in["token"],
                "userId": signed_in["userId"],
                "expiresAt": signed_in["expiresAt"],
            }))
            .into_response(),
            _ => failure(
                StatusCode::BAD_GATEWAY,
                "DEPENDENCY_UNAVAILABLE",
                "the user service answered without a token",
            ),
        },
        Ok((401 | 403, _)) => failure(
            StatusCode::UNAUTHORIZED,
            "LOGIN_FAILED",
            "unknown or inactive user, or wrong password",
        ),
        Ok((status, _)) => {
            tracing::warn!(status, "the user service refused a sign-in");
            failure(
                StatusCode::BAD_GATEWAY,
                "DEPENDENCY_UNAVAILABLE",
                "the user service could not sign in",
            )
        }
        Err(error) => {
            tracing::warn!("signing in failed: {error}");
            failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "DEPENDENCY_UNAVAILABLE",
                "the user service is unavailable; retry later",
            )
        }
    }
}

fn failure(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}
