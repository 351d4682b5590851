//! Request rate limits per client IP and per bearer token (GCRA via
//! `governor`), checked before a request takes an instance slot. A client
//! over its rate gets a 429 with `Retry-After` and the code
//! `RATE_LIMITED`.
//!
//! The host does not know users (the component asks the User service), so
//! the per-user limit is keyed by the bearer token: by a keyed hash of
//! it, so no token is kept in memory. Tokens are issued per login, so a
//! user holding several tokens has several budgets; invalid tokens are
//! limited as well, before they reach the User service. The per-IP limit
//! keys by the TCP peer address, which the serve path provides as axum's
//! `ConnectInfo<SocketAddr>`; behind a proxy that is the proxy's address.

use std::hash::{BuildHasher, Hash, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use booking_runtime::runtime::error_response;

use crate::config::Config;

/// How often keys whose budget is full again are dropped, which bounds
/// the limiters' memory by the clients seen in about this long.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(10);

/// Requests per second per client IP and per token (0 = off), and the
/// burst both allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub per_ip: u32,
    pub per_user: u32,
    pub burst: u32,
}

pub struct RateLimits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_token: Option<DefaultKeyedRateLimiter<u64>>,
    token_hasher: RandomState,
    clock: DefaultClock,
    last_forget: Mutex<Instant>,
}

impl RateLimits {
    pub fn new(settings: RateLimitSettings) -> RateLimits {
        RateLimits {
            per_ip: keyed(settings.per_ip, settings.burst),
            per_token: keyed(settings.per_user, settings.burst),
            token_hasher: RandomState::new(),
            clock: DefaultClock::default(),
            last_forget: Mutex::new(Instant::now()),
        }
    }

    pub fn from_config(config: &Config) -> RateLimits {
        RateLimits::new(RateLimitSettings {
            per_ip: config.rate_limit_per_ip,
            per_user: config.rate_limit_per_user,
            burst: config.rate_limit_burst,
        })
    }

    /// `Err(wait)` when the peer or the token is over its rate; a refused
    /// request uses no budget of the other limit.
    fn check(&self, peer: Option<IpAddr>, token: Option<&HeaderValue>) -> Result<(), Duration> {
        self.forget_idle_keys();
        if let (Some(limiter), Some(ip)) = (&self.per_ip, peer) {
            limiter
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(self.clock.now()))?;
        }
        if let (Some(limiter), Some(token)) = (&self.per_token, token) {
            let key = self.token_hasher.hash_one(token.as_bytes());
            limiter
                .check_key(&key)
                .map_err(|not_until| not_until.wait_time_from(self.clock.now()))?;
        }
        Ok(())
    }

    /// Drops the keys of clients whose budget is full again (they are
    /// indistinguishable from new ones), at most every
    /// `FORGET_IDLE_EVERY`, by whichever request comes first.
    fn forget_idle_keys(&self) {
        let Ok(mut last) = self.last_forget.try_lock() else {
            return;
        };
        if last.elapsed() < FORGET_IDLE_EVERY {
            return;
        }
        *last = Instant::now();
        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_token {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many clients the limiters remember now.
    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        self.per_ip.as_ref().map_or(0, |limiter| limiter.len())
            + self.per_token.as_ref().map_or(0, |limiter| limiter.len())
    }
}

/// A limiter of `per_second` (none for 0) allowing `burst` at once.
fn keyed<K: Hash + Eq + Clone>(per_second: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    // A burst below the rate would refuse a steady client.
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

/// The middleware: refuses requests over a limit with 429.
pub async fn enforce(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let token = request.headers().get(header::AUTHORIZATION);
    match limits.check(peer, token) {
        Ok(()) => next.run(request).await,
        Err(wait) => too_many_requests(wait),
    }
}

fn too_many_requests(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = error_response(
        429,
        "RATE_LIMITED",
        &format!("too many requests; retry in {} s", seconds.max(1)),
    )
    .map(Body::new);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;

    /// A server with only the limits in front of a trivial handler, with
    /// the peer address as the real serve path provides it.
    async fn serve(settings: RateLimitSettings) -> (String, Arc<RateLimits>) {
        let limits = Arc::new(RateLimits::new(settings));
        let app = Router::new().route("/", get(|| async { "ok" })).layer(
            axum::middleware::from_fn_with_state(limits.clone(), enforce),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        (format!("http://{address}/"), limits)
    }

    async fn get_with(url: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = reqwest::Client::new().get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    #[tokio::test]
    async fn a_token_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
        let (url, _) = serve(RateLimitSettings {
            per_ip: 0,
            per_user: 1,
            burst: 2,
        })
        .await;
        for _ in 0..2 {
            assert_eq!(get_with(&url, Some("token-a")).await.status(), 200);
        }
        let refused = get_with(&url, Some("token-a")).await;
        assert_eq!(refused.status(), 429);
        let retry_after: u64 = refused.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");

        assert_eq!(get_with(&url, Some("token-b")).await.status(), 200);
        for _ in 0..5 {
            assert_eq!(get_with(&url, None).await.status(), 200, "no token");
        }
    }

    #[tokio::test]
    async fn a_client_ip_over_its_rate_gets_429_whatever_the_token() {
        let (url, _) = serve(RateLimitSettings {
            per_ip: 1,
            per_user: 0,
            burst: 3,
        })
        .await;
        for n in 0..3 {
            let token = format!("token-{n}");
            assert_eq!(get_with(&url, Some(&token)).await.status(), 200);
        }
        assert_eq!(get_with(&url, Some("fresh")).await.status(), 429);
        assert_eq!(get_with(&url, None).await.status(), 429);
    }

    #[tokio::test]
    async fn zero_switches_both_limits_off() {
        let (url, limits) = serve(RateLimitSettings {
            per_ip: 0,
            per_user: 0,
            burst: 1,
        })
        .await;
        for _ in 0..50 {
            assert_eq!(get_with(&url, Some("t")).await.status(), 200);
        }
        assert_eq!(limits.tracked_keys(), 0);
    }

    #[test]
    fn clients_whose_budget_refilled_are_forgotten() {
        let limits = RateLimits::new(RateLimitSettings {
            per_ip: 1_000,
            per_user: 1_000,
            burst: 1_000,
        });
        for n in 0..5_000u32 {
            let token = HeaderValue::from_str(&format!("Bearer {n}")).unwrap();
            let ip = IpAddr::from(n.to_be_bytes());
            limits.check(Some(ip), Some(&token)).unwrap();
        }
        assert_eq!(limits.tracked_keys(), 10_000);
        // Each key spent one of 1,000 per second: full again after 1 ms.
        std::thread::sleep(Duration::from_millis(20));
        *limits.last_forget.lock().unwrap() = Instant::now() - FORGET_IDLE_EVERY;
        limits.check(None, None).unwrap();
        assert_eq!(limits.tracked_keys(), 0);
    }
}
