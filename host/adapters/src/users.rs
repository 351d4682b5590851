//! The `users` port over the User service's REST API (`GET /users/{id}`,
//! and `GET /auth/me` with the client's bearer token to authenticate it;
//! its answers are cached briefly, see `auth_cache`).

mod auth_cache;

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::ensure;
use async_trait::async_trait;
use booking_adapters_core::rest as rest_core;
use booking_logic::ports::{PortError, PortResult, Users};
use booking_model::{Caller, User};
use reqwest::Url;

use self::auth_cache::{Answer, AuthCache};
use crate::Adapter;
use crate::rest::{Failure, SendTraced, read, url};
use crate::tls::TlsRoots;

/// How long an authenticated token is trusted without asking again (at
/// most until it expires): a revoked token may work this much longer.
pub const DEFAULT_AUTH_CACHE_TTL: Duration = Duration::from_secs(30);

/// Tokens remembered at most; more evict the oldest.
const AUTH_CACHE_CAPACITY: usize = 10_000;

#[derive(Debug, Clone)]
pub struct UsersConfig {
    /// e.g. `http://localhost:8001`.
    pub url: String,
    /// Per request (the seed's API_TIMEOUT).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Trusted for an `https://` URL.
    pub tls: TlsRoots,
}

/// What `RestUsers` is built from as an [`Adapter`]: the service, and
/// how long an authenticated token is trusted (`with_auth_cache_ttl`).
#[derive(Debug, Clone)]
pub struct RestUsersConfig {
    pub service: UsersConfig,
    pub auth_cache_ttl: Duration,
}

pub struct RestUsers {
    client: reqwest::Client,
    base: Url,
    auth_cache: Mutex<AuthCache>,
}

impl RestUsers {
    pub fn new(config: &UsersConfig) -> anyhow::Result<Self> {
        let base = Url::parse(&config.url)?;
        ensure!(
            !base.cannot_be_a_base(),
            "user service URL {base} cannot have paths"
        );
        let client = crate::rest::client(&config.tls, config.connect_timeout)?
            .timeout(config.timeout)
            .build()?;
        Ok(RestUsers {
            client,
            base,
            auth_cache: Mutex::new(AuthCache::new(DEFAULT_AUTH_CACHE_TTL, AUTH_CACHE_CAPACITY)),
        })
    }

    /// Trusts an authenticated token for `ttl` (zero: ask every time)
    /// instead of `DEFAULT_AUTH_CACHE_TTL`.
    pub fn with_auth_cache_ttl(self, ttl: Duration) -> Self {
        RestUsers {
            auth_cache: Mutex::new(AuthCache::new(ttl, AUTH_CACHE_CAPACITY)),
            ..self
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, AuthCache> {
        // The cache holds no invariant a panic could break half-way.
        self.auth_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Signs a user in (`POST /auth/login`), for the host's booking page:
    /// the service's status and JSON body, passed on as they are.
    pub async fn login(&self, credentials: &serde_json::Value) -> PortResult<(u16, Vec<u8>)> {
        let response = self
            .client
            .post(url(&self.base, &["auth", "login"]))
            .json(credentials)
            .send_traced()
            .await
            .map_err(transport_error)?;
        let (status, body) = read(response).await.map_err(read_error)?;
        Ok((status.as_u16(), body))
    }

    async fn fetch_caller(&self, authorization: String) -> PortResult<Caller> {
        let response = self
            .client
            .get(url(&self.base, &["auth", "me"]))
            .header(reqwest::header::AUTHORIZATION, authorization)
            .send_traced()
            .await
            .map_err(transport_error)?;
        let (status, body) = read(response).await.map_err(read_error)?;
        if !status.is_success() {
            return Err(rest_core::auth_status_error(status.as_u16(), &body));
        }
        Ok(rest_core::parse_caller(&body)?.into())
    }
}

#[async_trait]
impl Users for RestUsers {
    async fn get_user(&self, user_id: &str) -> PortResult<User> {
        if rest_core::is_unaddressable(user_id) {
            return Err(PortError::NotFound(format!("users: no user {user_id:?}")));
        }
        let response = self
            .client
            .get(url(&self.base, &["users", user_id]))
            .send_traced()
            .await
            .map_err(transport_error)?;
        let (status, body) = read(response).await.map_err(read_error)?;
        if !status.is_success() {
            return Err(rest_core::users_status_error(status.as_u16(), &body));
        }
        Ok(rest_core::parse_user(&body)?.into())
    }

    async fn authenticate(&self, token: &str) -> PortResult<Caller> {
        // Never log the token itself.
        let authorization = rest_core::bearer(token)?;
        match self.cache().get(token, Instant::now()) {
            Some(Answer::Valid(caller)) => return Ok(caller),
            Some(Answer::Rejected) => {
                return Err(PortError::Rejected("users: token rejected recently".into()));
            }
            None => {}
        }
        let caller = match self.fetch_caller(authorization).await {
            Ok(caller) => caller,
            Err(rejected @ PortError::Rejected(_)) => {
                self.cache().put_rejected(token, Instant::now());
                return Err(rejected);
            }
            Err(other) => return Err(other),
        };
        let valid_for = Duration::from_millis(caller.expires_at.saturating_sub(now_ms()));
        self.cache().put(token, &caller, valid_for, Instant::now());
        Ok(caller)
    }
}

/// Milliseconds since the Unix epoch, the unit of token expiry.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn read_error((failure, detail): Failure) -> PortError {
    rest_core::users_transport_error(failure, &detail)
}

/// No answer in time may still be an answer on the way; anything else
/// that failed the request means the service was not reached.
fn transport_error(error: reqwest::Error) -> PortError {
    read_error(crate::rest::failure(error))
}

#[async_trait]
impl Adapter for RestUsers {
    const NAME: &'static str = "users";
    type Config = RestUsersConfig;

    async fn from_config(config: RestUsersConfig) -> anyhow::Result<Self> {
        Ok(RestUsers::new(&config.service)?.with_auth_cache_ttl(config.auth_cache_ttl))
    }

    async fn health(&self) -> Result<(), String> {
        let response = self
            .client
            .get(url(&self.base, &["health"]))
            .send_traced()
            .await
            .map_err(|e| transport_error(e).to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("users: health answered HTTP {}", response.status()))
        }
    }
}
