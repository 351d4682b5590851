//! What the REST adapters (`users`, `payments`) share: building request
//! URLs from untrusted ids, and reading the services' error bodies. How a
//! status maps to a port error differs per service, so that stays there.

use reqwest::{StatusCode, Url};
use serde::Deserialize;

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: String,
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
