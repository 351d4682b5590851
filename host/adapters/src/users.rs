//! The `users` port over the User service's REST API
//! (`GET /users/{id}`).

use std::time::Duration;

use anyhow::ensure;
use async_trait::async_trait;
use booking_logic::model::User;
use booking_logic::ports::{PortError, PortResult, Users};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::rest::{describe, url};

#[derive(Debug, Clone)]
pub struct UsersConfig {
    /// e.g. `http://localhost:8001`.
    pub url: String,
    /// Per request (the seed's API_TIMEOUT).
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

pub struct RestUsers {
    client: reqwest::Client,
    base: Url,
}

#[derive(Deserialize)]
struct UserBody {
    id: String,
    name: String,
    email: String,
    active: bool,
}

impl RestUsers {
    pub fn new(config: &UsersConfig) -> anyhow::Result<Self> {
        let base = Url::parse(&config.url)?;
        ensure!(
            !base.cannot_be_a_base(),
            "user service URL {base} cannot have paths"
        );
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .build()?;
        Ok(RestUsers { client, base })
    }

    pub async fn health(&self) -> Result<(), String> {
        let response = self
            .client
            .get(url(&self.base, &["health"]))
            .send()
            .await
            .map_err(|e| transport_error(e).to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("users: health answered HTTP {}", response.status()))
        }
    }
}

#[async_trait]
impl Users for RestUsers {
    async fn get_user(&self, user_id: &str) -> PortResult<User> {
        // These would address the collection, not a user.
        if matches!(user_id, "" | "." | "..") {
            return Err(PortError::NotFound(format!("users: no user {user_id:?}")));
        }
        let response = self
            .client
            .get(url(&self.base, &["users", user_id]))
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        if !status.is_success() {
            let message = describe("users", status, &body);
            return Err(match status {
                StatusCode::NOT_FOUND => PortError::NotFound(message),
                s if s.is_server_error() => PortError::Unavailable(message),
                _ => PortError::Rejected(message),
            });
        }
        let user: UserBody = serde_json::from_slice(&body)
            .map_err(|e| PortError::Unavailable(format!("users: malformed user: {e}")))?;
        Ok(User {
            id: user.id,
            name: user.name,
            email: user.email,
            active: user.active,
        })
    }
}

/// No answer in time may still be an answer on the way; anything else
/// that failed the request means the service was not reached.
fn transport_error(error: reqwest::Error) -> PortError {
    let message = format!("users: {error}");
    if error.is_timeout() && !error.is_connect() {
        PortError::Timeout(message)
    } else {
        PortError::Unavailable(message)
    }
}
