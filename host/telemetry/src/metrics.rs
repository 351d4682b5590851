//! Every metric the host exports, registered once (README, "Operations",
//! lists them; `ops/` dashboards and alerts use exactly these names).
//! Labels are bounded: operation names and error codes come from the
//! logic's schema and error list (`booking_model::report` checks their
//! shape), ports and calls are the WIT's, versions are the few loaded.
//! No id of a booking, user or request is ever a label.

use std::fmt::Write;
use std::time::Duration;

use booking_model::report::{self, IdempotencyOutcome, RequestReport};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::process::ProcessCollector;

/// Seconds, from 1 ms to 10 s: a read answers in about 1 ms, the
/// deadline of a request is seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

fn latencies<L: Clone + std::hash::Hash + Eq>() -> Latencies<L> {
    Family::new_with_constructor(latency)
}

/// The whole set, shared by the HTTP front, the runtime, the relay and
/// the sweeper; each part clones the families it records into.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http: HttpMetrics,
    pub sandbox: SandboxMetrics,
    pub ports: PortMetrics,
    pub outbox: OutboxMetrics,
    pub relay: RelayMetrics,
    pub live: LiveMetrics,
    pub sweeper: SweeperMetrics,
    pub idempotency: IdempotencyMetrics,
    pub versions: VersionMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The root field the request ran (`createBooking`), `batch`, or
    /// `none` when no operation ran (refused before, or not GraphQL).
    pub operation: String,
    pub r#type: OperationType,
    pub outcome: Outcome,
    /// The first 12 hex digits of the sha256 of the logic that answered.
    pub version: String,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum OperationType {
    query,
    mutation,
    none,
}

impl From<report::OperationType> for OperationType {
    fn from(kind: report::OperationType) -> OperationType {
        match kind {
            report::OperationType::Query => OperationType::query,
            report::OperationType::Mutation => OperationType::mutation,
        }
    }
}

/// The code of a request shed at capacity (the host's 503).
pub const OVERLOADED: &str = "OVERLOADED";

/// How a request ended, as an operator groups it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    /// Answered without errors.
    ok,
    /// Answered with GraphQL errors a client caused or must handle (a
    /// declined card, taken seats, a bad query), status below 500.
    error,
    /// Status 500 or above, except shedding.
    server_error,
    /// Refused at capacity (503 `OVERLOADED`) or by a rate limit (429).
    shed,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: String,
}

#[derive(Clone, Debug)]
pub struct HttpMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Latencies<RequestLabels>,
    pub graphql_errors: Family<CodeLabels, Counter>,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum TrapCause {
    /// The guest trapped on its own (a panic, an unreachable).
    trap,
    /// Ran guest code past the CPU budget of a request.
    cpu_limit,
    /// Asked for memory past the budget of a request.
    memory_limit,
    /// Still running at the request's deadline, cut where it stood.
    deadline,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrapLabels {
    pub cause: TrapCause,
}

#[derive(Clone, Debug)]
pub struct SandboxMetrics {
    pub instantiations: Counter,
    pub traps: Family<TrapLabels, Counter>,
    /// Request slots of the instance pool held now.
    pub in_use: Gauge,
    /// Requests waiting for a slot now.
    pub waiting: Gauge,
    /// Request slots in the pool.
    pub slots: Gauge,
    /// Requests refused because no slot freed within the queue wait.
    pub shed: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PortLabels {
    pub port: &'static str,
    pub call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PortErrorLabels {
    pub port: &'static str,
    pub call: &'static str,
    pub kind: &'static str,
}

/// The WIT imports as the guest called them.
#[derive(Clone, Debug)]
pub struct PortMetrics {
    pub calls: Family<PortLabels, Counter>,
    pub errors: Family<PortErrorLabels, Counter>,
    pub duration: Latencies<PortLabels>,
}

#[derive(Clone, Debug)]
pub struct OutboxMetrics {
    /// Stored events the broker has not confirmed yet.
    pub backlog: Gauge,
    /// Age of the oldest of them, in seconds (0 when none waits).
    pub oldest_age_seconds: Gauge,
}

#[derive(Clone, Debug, Default)]
pub struct RelayMetrics {
    pub published: Counter,
    pub failures: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// `slow_consumer` or `gap`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct LiveMetrics {
    /// GraphQL subscriptions open on this host.
    pub subscriptions: Gauge,
    /// Subscriptions the host ended, by why.
    pub dropped: Family<DropLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub outcome: RunOutcome,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RunOutcome {
    ok,
    failed,
}

#[derive(Clone, Debug)]
pub struct SweeperMetrics {
    pub runs: Family<RunLabels, Counter>,
    pub expired: Counter,
    /// Ended bookings whose seats, charge and refund are now settled.
    pub settled: Counter,
    /// Settlements that still owe something (a refund, a release): retried.
    pub retried: Counter,
    pub idempotency_purged: Counter,
}

#[derive(Clone, Debug)]
pub struct IdempotencyMetrics {
    pub replays: Counter,
    pub conflicts: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    /// `active`, `canary` or `previous`.
    pub role: &'static str,
    pub version: String,
    pub label: String,
}

#[derive(Clone, Debug)]
pub struct VersionMetrics {
    /// 1 for each deployed version and its role; replaced on every change.
    pub info: Family<VersionLabels, Gauge>,
    pub swaps: Counter,
    pub rollbacks: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let http = HttpMetrics {
            requests: Family::default(),
            duration: latencies(),
            graphql_errors: Family::default(),
        };
        let sandbox = SandboxMetrics {
            instantiations: Counter::default(),
            traps: Family::default(),
            in_use: Gauge::default(),
            waiting: Gauge::default(),
            slots: Gauge::default(),
            shed: Counter::default(),
        };
        let ports = PortMetrics {
            calls: Family::default(),
            errors: Family::default(),
            duration: latencies(),
        };
        let outbox = OutboxMetrics {
            backlog: Gauge::default(),
            oldest_age_seconds: Gauge::default(),
        };
        let relay = RelayMetrics {
            published: Counter::default(),
            failures: Counter::default(),
        };
        let live = LiveMetrics::default();
        let sweeper = SweeperMetrics {
            runs: Family::default(),
            expired: Counter::default(),
            settled: Counter::default(),
            retried: Counter::default(),
            idempotency_purged: Counter::default(),
        };
        let idempotency = IdempotencyMetrics {
            replays: Counter::default(),
            conflicts: Counter::default(),
        };
        let versions = VersionMetrics {
            info: Family::default(),
            swaps: Counter::default(),
            rollbacks: Counter::default(),
        };

        let booking = registry.sub_registry_with_prefix("booking");
        booking.register(
            "http_requests",
            "Requests to the GraphQL endpoint, by root field, operation type, outcome and logic version",
            http.requests.clone(),
        );
        booking.register(
            "http_request_duration_seconds",
            "Time from a request's headers to its whole answer",
            http.duration.clone(),
        );
        booking.register(
            "graphql_errors",
            "Errors answered, by extensions.code",
            http.graphql_errors.clone(),
        );
        booking.register(
            "sandbox_instantiations",
            "Component instances created (one per request and per sweep)",
            sandbox.instantiations.clone(),
        );
        booking.register(
            "sandbox_traps",
            "Instances stopped by a trap, a CPU or memory limit, or the deadline",
            sandbox.traps.clone(),
        );
        booking.register(
            "sandbox_instances_in_use",
            "Request slots of the instance pool held now",
            sandbox.in_use.clone(),
        );
        booking.register(
            "sandbox_instances_waiting",
            "Requests waiting for a slot of the instance pool",
            sandbox.waiting.clone(),
        );
        booking.register(
            "sandbox_instance_slots",
            "Request slots of the instance pool (MAX_CONCURRENT_REQUESTS)",
            sandbox.slots.clone(),
        );
        booking.register(
            "sandbox_shed",
            "Requests refused with 503 because no slot freed within the queue wait",
            sandbox.shed.clone(),
        );
        booking.register(
            "port_calls",
            "Calls of the logic to its WIT imports, by port and call",
            ports.calls.clone(),
        );
        booking.register(
            "port_errors",
            "Failed WIT import calls, by port, call and error kind",
            ports.errors.clone(),
        );
        booking.register(
            "port_call_duration_seconds",
            "Time of one WIT import call, including the dependency",
            ports.duration.clone(),
        );
        booking.register(
            "outbox_backlog_events",
            "Stored events the broker has not confirmed yet",
            outbox.backlog.clone(),
        );
        booking.register(
            "outbox_oldest_unsent_age_seconds",
            "Age of the oldest event the broker has not confirmed yet",
            outbox.oldest_age_seconds.clone(),
        );
        booking.register(
            "relay_published",
            "Events the broker confirmed",
            relay.published.clone(),
        );
        booking.register(
            "relay_failures",
            "Relay rounds that stopped on a failure (outbox or broker)",
            relay.failures.clone(),
        );
        booking.register(
            "live_subscriptions",
            "GraphQL subscriptions open on this host",
            live.subscriptions.clone(),
        );
        booking.register(
            "live_dropped",
            "Subscriptions the host ended: a slow consumer, or updates missed (a gap)",
            live.dropped.clone(),
        );
        booking.register(
            "sweeper_runs",
            "Calls of the component's sweep, by outcome",
            sweeper.runs.clone(),
        );
        booking.register(
            "sweeper_expired",
            "Bookings the sweep moved to EXPIRED",
            sweeper.expired.clone(),
        );
        booking.register(
            "sweeper_settled",
            "Ended bookings the sweep reconciled: seats released, charges voided or refunded",
            sweeper.settled.clone(),
        );
        booking.register(
            "sweeper_retried",
            "Settlements (refunds, releases, voids) that failed and are retried with backoff",
            sweeper.retried.clone(),
        );
        booking.register(
            "sweeper_idempotency_purged",
            "Idempotency records past their retention, deleted",
            sweeper.idempotency_purged.clone(),
        );
        booking.register(
            "idempotency_replays",
            "Mutations answered from their idempotency key's stored answer",
            idempotency.replays.clone(),
        );
        booking.register(
            "idempotency_conflicts",
            "Idempotency keys refused: reused with other arguments, or still in use",
            idempotency.conflicts.clone(),
        );
        booking.register(
            "logic_version",
            "1 for each deployed logic version, by role (active, canary, previous)",
            versions.info.clone(),
        );
        booking.register(
            "logic_swaps",
            "Changes of the active logic version (activate, promote)",
            versions.swaps.clone(),
        );
        booking.register(
            "logic_rollbacks",
            "Rollbacks to the previous logic version",
            versions.rollbacks.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector::new()));

        Metrics {
            registry,
            http,
            sandbox,
            ports,
            outbox,
            relay,
            live,
            sweeper,
            idempotency,
            versions,
        }
    }

    /// Counts one answered request from its report (the logic's, or the
    /// host's own error answer), its status and the version that served.
    pub fn record_request(
        &self,
        report: &RequestReport,
        status: u16,
        version: String,
        elapsed: Duration,
    ) {
        let (operation, r#type) = match &report.operation {
            Some((kind, field)) => (field.clone(), (*kind).into()),
            None => ("none".to_string(), OperationType::none),
        };
        let outcome = match status {
            429 => Outcome::shed,
            503 if report.error_codes.iter().any(|code| code == OVERLOADED) => Outcome::shed,
            500.. => Outcome::server_error,
            400.. => Outcome::error,
            _ if report.error_codes.is_empty() => Outcome::ok,
            _ => Outcome::error,
        };
        let labels = RequestLabels {
            operation,
            r#type,
            outcome,
            version,
        };
        self.http.requests.get_or_create(&labels).inc();
        self.http
            .duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        for code in &report.error_codes {
            self.http
                .graphql_errors
                .get_or_create(&CodeLabels { code: code.clone() })
                .inc();
        }
        match report.idempotency {
            Some(IdempotencyOutcome::Replay) => self.idempotency.replays.inc(),
            Some(IdempotencyOutcome::Conflict) => self.idempotency.conflicts.inc(),
            None => 0,
        };
    }

    /// The Prometheus text exposition of every metric now.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
            let _ = writeln!(text, "# encoding the metrics failed");
        }
        text
    }
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A version label: the sha256's first 12 hex digits, as the logs show it.
pub fn short_version(sha256: &str) -> String {
    sha256.chars().take(12).collect()
}
