//! A small blocking HTTP client on `wasi:http/outgoing-handler` (Spin's
//! outbound HTTP). The WIT functions we export are synchronous, so
//! blocking on the pollables is all we need.

use std::time::Duration;

use booking_adapters_core::rest::{ServiceUrl, TransportFailure};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

pub type Failure = (TransportFailure, String);

pub fn send(
    method: Method,
    url: &ServiceUrl,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, Failure> {
    let not_sent = |detail: String| (TransportFailure::NotSent, detail);
    let entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&entries).map_err(|e| not_sent(format!("bad header: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let scheme = if url.scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_method(&method)
        .and(request.set_scheme(Some(&scheme)))
        .and(request.set_authority(Some(&url.authority)))
        .and(request.set_path_with_query(Some(path)))
        .map_err(|()| not_sent(format!("cannot address {}{path}", url.authority)))?;
    let outgoing_body = request
        .body()
        .map_err(|()| not_sent("no request body".into()))?;

    // A host may not support every timeout; what it ignores, it ignores.
    let options = RequestOptions::new();
    let nanos = Some(timeout.as_nanos().min(u64::MAX as u128) as u64);
    let _ = options.set_connect_timeout(nanos);
    let _ = options.set_first_byte_timeout(nanos);
    let _ = options.set_between_bytes_timeout(nanos);

    let pending = outgoing_handler::handle(request, Some(options)).map_err(classify)?;
    if let Some(bytes) = body {
        let stream = outgoing_body
            .write()
            .map_err(|()| (TransportFailure::Broken, "no request body stream".into()))?;
        for chunk in bytes.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| {
                (
                    TransportFailure::Broken,
                    format!("writing the request: {e:?}"),
                )
            })?;
        }
        drop(stream);
    }
    OutgoingBody::finish(outgoing_body, None).map_err(classify)?;

    let response = loop {
        match pending.get() {
            Some(result) => break result,
            None => pending.subscribe().block(),
        }
    };
    let response = response
        .map_err(|()| (TransportFailure::Broken, "response already taken".into()))?
        .map_err(classify)?;
    let status = response.status();
    let headers = response.headers().entries();
    let incoming = response
        .consume()
        .map_err(|()| (TransportFailure::Broken, "no response body".into()))?;
    let body = read_all(&incoming)?;
    drop(IncomingBody::finish(incoming));
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn read_all(incoming: &IncomingBody) -> Result<Vec<u8>, Failure> {
    let stream = incoming
        .stream()
        .map_err(|()| (TransportFailure::Broken, "no response body stream".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                let detail = error.to_debug_string();
                let failure = match wasip2::http::types::http_error_code(&error) {
                    Some(code) => classify(code).0,
                    None => TransportFailure::Broken,
                };
                return Err((failure, format!("reading the response: {detail}")));
            }
        }
    }
    Ok(body)
}

/// Which failures prove nothing reached the service, which are timeouts.
fn classify(code: ErrorCode) -> Failure {
    let failure = match &code {
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_)
        | ErrorCode::HttpRequestDenied
        | ErrorCode::HttpRequestUriInvalid
        | ErrorCode::HttpRequestMethodInvalid => TransportFailure::NotSent,
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            TransportFailure::TimedOut
        }
        _ => TransportFailure::Broken,
    };
    (failure, format!("{code:?}"))
}
