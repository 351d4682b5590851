//! `booking-host probe`: a health check for images without a shell or
//! curl (the Dockerfile's `HEALTHCHECK`). One GET with a 2 s deadline;
//! success is a 2xx answer, anything else (a refused connection, a
//! timeout, another status) an error, so the process exits 1. Plain HTTP
//! only, as the host's listeners serve it: the client loads no CA
//! certificates, so it needs none on the machine.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

/// The whole probe: connect, send, read the status.
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// URL to GET. Default: `/health/live` on this host's GraphQL
    /// listener (`BOOKING_LISTEN`), through loopback when it listens on
    /// every address (`http://127.0.0.1:8000/health/live` by default).
    #[arg(long)]
    pub url: Option<String>,
}

/// GETs the URL; `Ok` when it answers 2xx within `TIMEOUT`.
pub async fn run(args: ProbeArgs, listen: SocketAddr) -> anyhow::Result<()> {
    let url = args.url.unwrap_or_else(|| default_url(listen));
    anyhow::ensure!(
        url.starts_with("http://"),
        "{url}: the probe speaks plain HTTP (http://…), as the host's listeners do"
    );
    let client = reqwest::Client::builder()
        // reqwest's default TLS setup reads the system's CAs, and fails
        // where there are none.
        .tls_certs_only(Vec::<reqwest::Certificate>::new())
        // A proxy from the environment must not answer for this process.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .build()
        .context("building the probe's HTTP client")?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "GET {url}: {status}");
    println!("GET {url}: {status}");
    Ok(())
}

/// `/health/live` on the listener's port; a wildcard address is reached
/// through loopback.
fn default_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/health/live", SocketAddr::new(ip, listen.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_is_the_listener_through_loopback() {
        let url = |listen: &str| default_url(listen.parse().unwrap());
        assert_eq!(url("127.0.0.1:8000"), "http://127.0.0.1:8000/health/live");
        assert_eq!(url("0.0.0.0:8000"), "http://127.0.0.1:8000/health/live");
        assert_eq!(url("[::]:8080"), "http://[::1]:8080/health/live");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3:80/health/live");
    }
}
