//! Logs and traces: one `tracing` subscriber writes the log (text, or
//! JSON with `LOG_FORMAT=json`) and, when an OTLP endpoint is set, sends
//! spans over OTLP/HTTP. The W3C `traceparent` crosses every wire: read
//! from the client's request, written on the Cinema (gRPC metadata),
//! User and Payment (HTTP headers) calls and on every event message.

use std::str::FromStr;

use anyhow::Context as _;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The header of the W3C trace context, on every wire.
pub const TRACEPARENT: &str = "traceparent";

/// The service name in traces unless `OTEL_SERVICE_NAME` says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "booking-service";

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, with the fields of the request's span
    /// (`request_id`, `trace_id`, the operation).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(format: &str) -> Result<LogFormat, String> {
        match format.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("LOG_FORMAT is text or json, not {other:?}")),
        }
    }
}

/// Flushes the spans still buffered when dropped (at shutdown).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn tracing(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("flushing the last spans failed: {error}");
        }
    }
}

/// Installs the process's subscriber: `RUST_LOG` (else `default_filter`)
/// chooses what is logged; spans are exported at INFO and above. Fails on an OTLP setting it cannot
/// honour rather than running untraced by surprise.
pub fn init(format: LogFormat, default_filter: &str) -> anyhow::Result<Telemetry> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = otlp_provider()?;
    // Spans are exported at INFO whatever `RUST_LOG` says: the log's
    // level must not switch tracing off.
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("booking"))
            .with_filter(LevelFilter::INFO)
    });
    let log = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    // The request's span stays on at any level: every line logged during
    // a request carries its `request_id` and `trace_id`.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_filter))
        .add_directive(concat!(module_path!(), "=info").parse()?);
    tracing_subscriber::registry()
        .with(spans)
        .with(log.with_filter(filter))
        .try_init()
        .context("installing the log subscriber")?;
    Ok(Telemetry { provider })
}

fn setting(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// An OTLP/HTTP exporter configured by the standard variables
/// (`OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, `…_HEADERS`, `…_TIMEOUT`,
/// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`);
/// none when no endpoint is set or the SDK is disabled.
fn otlp_provider() -> anyhow::Result<Option<SdkTracerProvider>> {
    let endpoint = setting("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| setting("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let disabled = setting("OTEL_SDK_DISABLED").is_some_and(|value| value == "true")
        || setting("OTEL_TRACES_EXPORTER").is_some_and(|value| value == "none");
    if endpoint.is_none() || disabled {
        return Ok(None);
    }
    let protocol = setting("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| setting("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".to_string());
    anyhow::ensure!(
        protocol == "http/protobuf",
        "OTEL_EXPORTER_OTLP_PROTOCOL={protocol:?}: this host exports http/protobuf only \
         (an OpenTelemetry Collector takes it on port 4318)"
    );
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .context("building the OTLP span exporter")?;
    let mut resource = Resource::builder();
    if setting("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(DEFAULT_SERVICE_NAME);
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

/// A request's span, child of the client's `traceparent` when it sent
/// one. Its `trace_id` field (in JSON logs) is the trace's, also when
/// spans are not exported.
pub fn request_span(
    method: &str,
    path: &str,
    headers: &http::HeaderMap,
    request_id: &str,
) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{method} {path}"),
        otel.kind = "server",
        http.request.method = %method,
        url.path = %path,
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        graphql.operation.name = tracing::field::Empty,
        graphql.operation.type = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent.clone());
    let exported = span.context().span().span_context().trace_id();
    let received = parent.span().span_context().trace_id();
    let trace_id = if exported != opentelemetry::trace::TraceId::INVALID {
        exported
    } else {
        received
    };
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
    span
}

/// The `traceparent` of the current span, to send with an outbound call
/// or to store with an event; none when nothing is traced.
pub fn traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}
