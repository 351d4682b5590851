//! What the REST adapters (`users`, `payments`) share: the HTTP client,
//! building request URLs from untrusted ids, reading answers with a size
//! bound, and telling how a request failed. What a status or a failure
//! means to the logic is `booking_adapters_core::rest`'s, the map the Spin
//! adapter applies too.

use std::time::Duration;

use booking_adapters_core::rest::TransportFailure;
use reqwest::redirect::Policy;
use reqwest::{Response, StatusCode, Url};

use crate::tls::TlsRoots;

/// The largest answer read from a service: theirs are a few hundred
/// bytes, and a bigger one must not fill the host's memory.
pub(crate) const MAX_BODY_BYTES: usize = 1 << 20;

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

/// Sends a request with the current span's trace context (`traceparent`),
/// so the User and Payment services continue the booking's trace.
pub(crate) trait SendTraced {
    fn send_traced(self) -> impl Future<Output = reqwest::Result<Response>> + Send;
}

impl SendTraced for reqwest::RequestBuilder {
    fn send_traced(self) -> impl Future<Output = reqwest::Result<Response>> + Send {
        match booking_telemetry::traceparent() {
            Some(traceparent) => self.header(booking_telemetry::traces::TRACEPARENT, traceparent),
            None => self,
        }
        .send()
    }
}

/// How a request failed, and what happened, for people.
pub(crate) type Failure = (TransportFailure, String);

/// What a failed reqwest call tells of its request: a failed connect (or
/// one never built) proves nothing reached the service.
pub(crate) fn failure(error: reqwest::Error) -> Failure {
    let failure = if error.is_connect() || error.is_builder() {
        TransportFailure::NotSent
    } else if error.is_timeout() {
        TransportFailure::TimedOut
    } else {
        TransportFailure::Broken
    };
    (failure, error.to_string())
}

/// The status and body of `response`, the body read up to
/// `MAX_BODY_BYTES`: a longer one is as unreadable as a broken one. (A
/// redirect is not followed; its status maps to an error like any other.)
pub(crate) async fn read(mut response: Response) -> Result<(StatusCode, Vec<u8>), Failure> {
    let status = response.status();
    let too_large = || {
        (
            TransportFailure::Broken,
            format!("answer over {MAX_BODY_BYTES} bytes"),
        )
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failure)? {
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
