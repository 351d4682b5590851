//! What the booking host tells its operators (README, "Operations"):
//! `metrics` (every Prometheus series, registered once), `process` (the
//! standard `process_*` series), `traces` (the log and trace subscriber,
//! the W3C trace context on every wire).

pub mod metrics;
mod process;
pub mod traces;

pub use metrics::Metrics;
pub use prometheus_client;
pub use traces::{LogFormat, Telemetry, traceparent};
