//! The User service's reference server (REST).
//!
//! - `GET /health` → `{"status":"ok"}`
//! - `GET /users/{id}` → 200 `{"id","name","email","active"}`, or 404
//!   `{"error":"user_not_found","message":...}`

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::catalog;

pub fn router() -> Router {
    Router::new()
        .route("/health", get(crate::health))
        .route("/users/{id}", get(get_user))
}

async fn get_user(Path(id): Path<String>) -> Response {
    match catalog::user(&id) {
        Some(user) => Json(user).into_response(),
        None => {
            tracing::debug!(user_id = %id, "unknown user");
            (
                StatusCode::NOT_FOUND,
                Json(json!({
                    "error": "user_not_found",
                    "message": format!("user {id} not found"),
                })),
            )
                .into_response()
        }
    }
}
