//! What the REST adapters (`users`, `payments`) share: the HTTP client,
//! building request URLs from untrusted ids, reading answers with a size
//! bound, and reading the services' error bodies. How a status maps to a
//! port error differs per service, so that stays there.

use std::time::Duration;

use reqwest::redirect::Policy;
use reqwest::{Response, StatusCode, Url};
use serde::Deserialize;

use crate::tls::TlsRoots;

/// The largest answer read from a service: theirs are a few hundred
/// bytes, and a bigger one must not fill the host's memory.
pub(crate) const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: String,
}

/// A client that trusts `tls` for `https://` and follows no redirect: a
/// request carries a bearer token or card details, which must reach no
/// other host than the configured one.
pub(crate) fn client(
    tls: &TlsRoots,
    connect_timeout: Duration,
) -> anyhow::Result<reqwest::ClientBuilder> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls.client_config()?)
        .redirect(Policy::none())
        .connect_timeout(connect_timeout))
}

/// Why an answer could not be read.
pub(crate) enum ReadError {
    /// A 3xx: not followed, and not the service's answer.
    Redirected(String),
    /// Longer than `MAX_BODY_BYTES`.
    TooLarge(String),
    /// The connection failed while reading.
    Transport(reqwest::Error),
}

/// The status and body of `response`, the body read up to
/// `MAX_BODY_BYTES`.
pub(crate) async fn read(
    service: &str,
    mut response: Response,
) -> Result<(StatusCode, Vec<u8>), ReadError> {
    let status = response.status();
    if status.is_redirection() {
        return Err(ReadError::Redirected(format!(
            "{service}: HTTP {status}: redirects are not followed"
        )));
    }
    let too_large =
        || ReadError::TooLarge(format!("{service}: answer over {MAX_BODY_BYTES} bytes"));
    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// `base` with the segments appended, each percent-encoded.
pub(crate) fn url(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    // The adapters' constructors checked that the base can have path
    // segments.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// The service's `{"error","message"}` if it sent one, for people.
pub(crate) fn describe(service: &str, status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => format!("{service}: HTTP {status}: {}: {}", e.error, e.message),
        Err(_) => format!("{service}: HTTP {status}"),
    }
}
