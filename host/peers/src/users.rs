//! The User service's reference server (REST): users, and the bearer
//! tokens clients sign in with.
//!
//! - `GET /health` → `{"status":"ok"}`
//! - `GET /users/{id}` → 200 `{"id","name","email","active"}`, or 404
//!   `{"error":"user_not_found","message":...}`
//! - `POST /auth/login` with `{"userId","password"}` → 200 `{"token",
//!   "userId","roles","expiresAt"}` (ms since the Unix epoch); 401
//!   `{"error":"invalid_credentials"}` for an unknown user or a wrong
//!   password, 401 `{"error":"user_inactive"}` for an inactive user, 400
//!   `{"error":"invalid_request"}` for a malformed body.
//! - `GET /auth/me` with `Authorization: Bearer <token>` → 200 `{"userId",
//!   "roles","expiresAt"}`, or 401 `{"error":"invalid_token"}` if the
//!   header is missing or the token unknown, revoked or expired.
//! - `POST /auth/logout` with `Authorization: Bearer <token>` → 204, the
//!   token revoked (also if it was not valid: logging out twice is fine);
//!   401 `{"error":"invalid_token"}` without a bearer token.
//!
//! Demo credentials: every catalog user (`user_123`, `support_1`,
//! `loadtest_user_42`, …) has the password `demo` (`DEMO_PASSWORD`).
//! `support_1` has the role `support`; everyone else has no roles. Tokens
//! are random, kept in memory with their expiry (`PeersConfig::token_ttl`,
//! default 1 h) and forgotten on restart.

mod sessions;

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::catalog;
use crate::clock::now_ms;
use sessions::Sessions;

/// The password of every demo user.
pub const DEMO_PASSWORD: &str = "demo";

/// How long a token is valid unless configured otherwise.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The service's live state: the tokens it issued.
#[derive(Clone)]
pub struct UsersState {
    sessions: Sessions,
}

impl UsersState {
    pub fn new(token_ttl: Duration) -> UsersState {
        UsersState {
            sessions: Sessions::new(token_ttl),
        }
    }
}

pub fn router(state: UsersState) -> Router {
    Router::new()
        .route("/health", get(crate::health))
        .route("/users/{id}", get(get_user))
        .route("/auth/login", post(login))
        .route("/auth/me", get(me))
        .route("/auth/logout", post(logout))
        .with_state(state)
}

async fn get_user(Path(id): Path<String>) -> Response {
    match catalog::user(&id) {
        Some(user) => Json(user).into_response(),
        None => {
            tracing::debug!(user_id = %id, "unknown user");
            error(
                StatusCode::NOT_FOUND,
                "user_not_found",
                &format!("user {id} not found"),
            )
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Login {
    user_id: String,
    password: String,
}

async fn login(
    State(state): State<UsersState>,
    body: Result<Json<Login>, JsonRejection>,
) -> Response {
    let Ok(Json(login)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected {\"userId\",\"password\"}",
        );
    };
    // One answer for both, so the endpoint does not tell who exists.
    let user = catalog::user(&login.user_id).filter(|_| login.password == DEMO_PASSWORD);
    let Some(user) = user else {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "unknown user or wrong password",
        );
    };
    if !user.active {
        return error(
            StatusCode::UNAUTHORIZED,
            "user_inactive",
            &format!("user {} is inactive", user.id),
        );
    }
    let (token, session) = state.sessions.issue(&user.id, now_ms());
    Json(json!({
        "token": token,
        "userId": session.user_id,
        "roles": catalog::roles(&session.user_id),
        "expiresAt": session.expires_at_ms,
    }))
    .into_response()
}

async fn me(State(state): State<UsersState>, headers: HeaderMap) -> Response {
    let session = bearer(&headers).and_then(|token| state.sessions.check(token, now_ms()));
    match session {
        Some(session) => Json(json!({
            "userId": session.user_id,
            "roles": catalog::roles(&session.user_id),
            "expiresAt": session.expires_at_ms,
        }))
        .into_response(),
        None => invalid_token(),
    }
}

async fn logout(State(state): State<UsersState>, headers: HeaderMap) -> Response {
    match bearer(&headers) {
        Some(token) => {
            state.sessions.revoke(token);
            StatusCode::NO_CONTENT.into_response()
        }
        None => invalid_token(),
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn invalid_token() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "missing, unknown or expired bearer token",
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use tokio::net::TcpListener;

    use super::*;

    async fn serve(token_ttl: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let app = router(UsersState::new(token_ttl));
        tokio::spawn(axum::serve(listener, app).into_future());
        url
    }

    async fn login(url: &str, user_id: &str, password: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{url}/auth/login"))
            .json(&json!({ "userId": user_id, "password": password }))
            .send()
            .await
            .expect("reachable");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }

    async fn me(url: &str, authorization: Option<&str>) -> (u16, Value) {
        let mut request = reqwest::Client::new().get(format!("{url}/auth/me"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("reachable");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }

    async fn logout(url: &str, token: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("{url}/auth/logout"))
            .bearer_auth(token)
            .send()
            .await
            .expect("reachable")
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn demo_users_log_in_and_their_token_says_who_they_are() {
        let url = serve(DEFAULT_TOKEN_TTL).await;
        let before = now_ms();
        let (status, body) = login(&url, "user_123", "demo").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["userId"], "user_123");
        assert_eq!(body["roles"], json!([]));
        let expires_at = body["expiresAt"].as_u64().expect("ms");
        assert!(expires_at >= before + 3_600_000 && expires_at <= now_ms() + 3_600_000);
        let token = body["token"].as_str().expect("token").to_owned();

        let (status, caller) = me(&url, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, 200, "{caller}");
        assert_eq!(
            caller,
            json!({ "userId": "user_123", "roles": [], "expiresAt": expires_at })
        );

        let (status, support) = login(&url, "support_1", "demo").await;
        assert_eq!(status, 200, "{support}");
        assert_eq!(support["roles"], json!(["support"]));
        let support_token = support["token"].as_str().expect("token");
        assert_ne!(support_token, token);
        let (_, caller) = me(&url, Some(&format!("bearer {support_token}"))).await;
        assert_eq!(caller["roles"], json!(["support"]));

        let (status, _) = login(&url, "loadtest_user_42", "demo").await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn wrong_passwords_unknown_and_inactive_users_cannot_log_in() {
        let url = serve(DEFAULT_TOKEN_TTL).await;
        for (user, password, code) in [
            ("user_123", "wrong", "invalid_credentials"),
            ("user_123", "", "invalid_credentials"),
            ("nobody", "demo", "invalid_credentials"),
            ("user_inactive", "demo", "user_inactive"),
        ] {
            let (status, body) = login(&url, user, password).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some(code)),
                "{user}"
            );
            assert!(body.get("token").is_none());
        }
        let response = reqwest::Client::new()
            .post(format!("{url}/auth/login"))
            .body("{\"userId\":")
            .header("content-type", "application/json")
            .send()
            .await
            .expect("reachable");
        assert_eq!(response.status().as_u16(), 400);
    }

    #[tokio::test]
    async fn bad_expired_and_revoked_tokens_are_invalid() {
        let url = serve(Duration::from_millis(300)).await;
        for header in [
            None,
            Some("Bearer"),
            Some("Bearer forged"),
            Some("Basic dXNlcg=="),
        ] {
            let (status, body) = me(&url, header).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some("invalid_token"))
            );
        }

        let (_, body) = login(&url, "user_456", "demo").await;
        let token = body["token"].as_str().expect("token").to_owned();
        let bearer = format!("Bearer {token}");
        assert_eq!(me(&url, Some(&bearer)).await.0, 200);
        assert_eq!(logout(&url, &token).await, 204);
        assert_eq!(me(&url, Some(&bearer)).await.0, 401, "revoked");
        assert_eq!(logout(&url, &token).await, 204, "logging out twice is fine");

        let (_, body) = login(&url, "user_456", "demo").await;
        let bearer = format!("Bearer {}", body["token"].as_str().expect("token"));
        assert_eq!(me(&url, Some(&bearer)).await.0, 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(me(&url, Some(&bearer)).await.0, 401, "expired");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_logins_get_distinct_working_tokens() {
        let url = serve(DEFAULT_TOKEN_TTL).await;
        let logins: Vec<_> = (1..=20)
            .map(|n| {
                let url = url.clone();
                tokio::spawn(async move {
                    let user = format!("loadtest_user_{n}");
                    let (_, body) = login(&url, &user, "demo").await;
                    let token = body["token"].as_str().expect("token").to_owned();
                    let (_, caller) = me(&url, Some(&format!("Bearer {token}"))).await;
                    assert_eq!(caller["userId"].as_str(), Some(user.as_str()));
                    token
                })
            })
            .collect();
        let mut tokens = std::collections::HashSet::new();
        for login in logins {
            tokens.insert(login.await.expect("task"));
        }
        assert_eq!(tokens.len(), 20);
    }
}
