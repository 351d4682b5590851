//! Which build of the booking logic serves requests and runs the sweep:
//! the WebAssembly component (the product) or its native twin, the same
//! `booking-logic` crate compiled into the host. The twin exists so
//! benchmarks can measure what the sandbox costs with everything else —
//! adapters, HTTP front, storage — equal (BENCHMARKS.md).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use booking_logic::http::{self as graphql_http, HttpRequest, HttpResponse};
use booking_logic::ports::Ports;
use booking_logic::{Settings, Workflow};
use booking_runtime::{LOGIC_VERSION_HEADER, SweepReport};
use http_body_util::{BodyExt, Limited};

use crate::http::MAX_BODY_BYTES;

/// `--logic`: which build runs the booking logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogicMode {
    /// A fresh instance of the component per request (the product).
    Wasm,
    /// The same logic compiled into the host (a benchmark baseline).
    Native,
}

/// Names the native twin in `x-logic-version`, so no response of it can be
/// mistaken for one from a component.
const NATIVE_VERSION: &str = "native";

/// The logic compiled into the host, configured like the component.
pub struct NativeLogic {
    ports: Ports,
    settings: Settings,
}

impl NativeLogic {
    /// `guest_env` is what the component gets as its environment, so both
    /// builds read the same settings.
    pub fn new(ports: Ports, guest_env: &[(String, String)]) -> anyhow::Result<NativeLogic> {
        let settings = Settings::from_lookup(|name| {
            guest_env
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        })
        .map_err(anyhow::Error::msg)?;
        Ok(NativeLogic { ports, settings })
    }

    /// A workflow per call, like a component instance per call; the
    /// schema is built once, as any native GraphQL server builds it (the
    /// component's is built at build time, by the pre-initializer).
    fn workflow(&self) -> Workflow {
        Workflow::new(self.ports.clone(), self.settings.clone())
    }

    pub async fn handle(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        // The front already refused declared lengths over the limit; this
        // cuts off chunked bodies the same way the component's path does.
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes().to_vec(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                let message = format!("request body larger than {MAX_BODY_BYTES} bytes");
                return into_response(graphql_http::error_response(
                    413,
                    "PAYLOAD_TOO_LARGE",
                    &message,
                ));
            }
            Err(error) => {
                let message = format!("reading the body failed: {error}");
                return into_response(graphql_http::error_response(400, "BAD_REQUEST", &message));
            }
        };
        let request = HttpRequest::new(
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query(),
            parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes())),
            body,
        );
        let workflow = std::sync::Arc::new(self.workflow());
        into_response(graphql_http::handle(workflow, request).await)
    }

    pub async fn sweep_expired(&self, limit: u32) -> anyhow::Result<SweepReport> {
        Ok(self.workflow().sweep_expired(limit).await?)
    }
}

fn into_response(response: HttpResponse) -> Response {
    let mut builder = Response::builder().status(response.status).header(
        LOGIC_VERSION_HEADER,
        HeaderValue::from_static(NATIVE_VERSION),
    );
    for (name, value) in &response.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            builder = builder.header(name, value);
        }
    }
    builder
        .body(Body::from(response.body))
        .unwrap_or_else(|_| Response::new(Body::from("invalid response status")))
}
