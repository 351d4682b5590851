//! Settings. Under Spin they are Spin variables (declared in spin.toml,
//! set with `SPIN_VARIABLE_*` or a provider); the `http-only` build reads
//! the same settings from environment variables instead.

use booking_adapters_core::rest::ServiceUrl;
use booking_model::PortError;

/// (Spin variable, environment variable).
pub const CINEMA_URL: (&str, &str) = ("cinema_service_url", "CINEMA_SERVICE_URL");
pub const USERS_URL: (&str, &str) = ("user_service_url", "USER_SERVICE_URL");
pub const PAYMENTS_URL: (&str, &str) = ("payment_service_url", "PAYMENT_SERVICE_URL");
pub const API_TIMEOUT: (&str, &str) = ("api_timeout_seconds", "API_TIMEOUT");
pub const PAYMENT_TIMEOUT: (&str, &str) = ("payment_timeout_seconds", "PAYMENT_TIMEOUT");

fn get(name: (&str, &str)) -> Option<String> {
    #[cfg(feature = "http-only")]
    {
        std::env::var(name.1).ok().filter(|v| !v.is_empty())
    }
    #[cfg(not(feature = "http-only"))]
    {
        spin_sdk::variables::get(name.0)
            .ok()
            .filter(|v| !v.is_empty())
    }
}

pub fn required(name: (&str, &str)) -> Result<String, PortError> {
    get(name).ok_or_else(|| {
        PortError::Unavailable(format!(
            "setting {} (Spin variable) / {} (environment) is not set",
            name.0, name.1
        ))
    })
}

pub fn service_url(name: (&str, &str)) -> Result<ServiceUrl, PortError> {
    let url = required(name)?;
    // The seed's host:port form means plain HTTP, as in the host.
    let url = if url.contains("://") {
        url
    } else {
        format!("http://{url}")
    };
    ServiceUrl::parse(&url).map_err(PortError::Unavailable)
}

pub fn seconds(name: (&str, &str), default: u64) -> std::time::Duration {
    let seconds = get(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default);
    std::time::Duration::from_secs(seconds.max(1))
}
