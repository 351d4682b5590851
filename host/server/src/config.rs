//! Configuration: the original service's variables plus our own, each
//! settable by flag or environment variable (`.env.example` lists them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// How much longer an idempotency lease lasts than the request timeout.
const LEASE_SLACK_SECONDS: u64 = 5;

#[derive(Debug, Parser)]
#[command(
    name = "booking-host",
    version,
    about = "Movie-ticket booking service (WebAssembly logic, native host)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve GraphQL over HTTP (the default).
    Serve,
    /// Manage logic versions of a running host through its admin API.
    Admin(crate::admin_cli::AdminArgs),
    /// Pre-initialize a logic component: run its `wizer-initialize` once
    /// and write the component that starts from the memory it left
    /// (`scripts/build-components.sh` does this to the shipped ones).
    Preinit {
        /// The component as compiled.
        input: PathBuf,
        /// Where to write the pre-initialized component.
        output: PathBuf,
    },
    /// Print the newest events of the embedded event log as JSON lines.
    Events {
        /// Only the events of this booking.
        #[arg(long)]
        booking_id: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Exit 0 if the host answers a health check (GET, 2 s timeout), else
    /// 1: the container image's HEALTHCHECK, which has no shell or curl.
    Probe(crate::probe::ProbeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// This host's name in its fleet (hosts sharing one MONGODB_URL share
    /// one deployment of the logic; `admin list` shows each replica's).
    /// Unset: `<hostname>-<pid>`. On Kubernetes, the pod's name.
    #[arg(long, env = "REPLICA_ID")]
    pub replica_id: Option<String>,

    /// Address of the GraphQL endpoint.
    #[arg(long, env = "BOOKING_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// Address of the admin API (deploy, roll back, canary, detailed health).
    #[arg(long, env = "ADMIN_LISTEN", default_value = "127.0.0.1:9000")]
    pub admin_listen: SocketAddr,

    /// Address of the Prometheus endpoint (`GET /metrics`), apart from the
    /// public API.
    #[arg(long, env = "METRICS_LISTEN", default_value = "127.0.0.1:9464")]
    pub metrics_listen: SocketAddr,

    /// Log lines as `text` or `json` (one object per line, with the
    /// request's `request_id` and `trace_id`).
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: booking_telemetry::LogFormat,

    /// Bearer token the admin API requires (`Authorization: Bearer …`), at
    /// least 32 characters. Unset: a random one generated at first start
    /// into `<data dir>/admin-token` (0600) and reused.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Also serve the admin API on this Unix socket, created 0600 (only
    /// this user may connect); the bearer token is still required.
    #[arg(long, env = "ADMIN_SOCKET")]
    pub admin_socket: Option<PathBuf>,

    /// Watch this directory: a new `.wasm` in it is loaded as a candidate.
    #[arg(long, env = "COMPONENT_WATCH_DIR")]
    pub watch_dir: Option<PathBuf>,

    /// Activate components from the watched directory once they pass the
    /// checks, instead of keeping them as candidates.
    #[arg(long, env = "COMPONENT_WATCH_ACTIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub watch_activate: bool,

    /// The booking logic component (.wasm).
    #[arg(
        long,
        env = "BOOKING_COMPONENT",
        default_value = "target/wasm32-wasip2/guest/booking_component.wasm"
    )]
    pub component: PathBuf,

    /// Which build runs the booking logic: `wasm`, the component above, or
    /// `native`, the same logic compiled into the host — a baseline for
    /// benchmarks. The component is loaded either way (admin API, health).
    #[arg(long, env = "BOOKING_LOGIC", value_enum, default_value = "wasm")]
    pub logic: crate::native_twin::LogicMode,

    /// Directory of the embedded database (bookings and the event log).
    #[arg(long, env = "BOOKING_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// MongoDB connection string (`mongodb://…`): bookings and the event
    /// log live there. Unset: the embedded SQLite store.
    #[arg(long, env = "MONGODB_URL", hide_env_values = true)]
    pub mongodb_url: Option<String>,

    /// MongoDB database. Unset: the one named in MONGODB_URL's path, else
    /// `movietickets`.
    #[arg(long, env = "MONGODB_DATABASE")]
    pub mongodb_database: Option<String>,

    /// Milliseconds one MongoDB operation may take.
    #[arg(long, env = "MONGODB_TIMEOUT_MS", default_value_t = 5000)]
    pub mongodb_timeout_ms: u64,

    /// MongoDB write concern `w`: `majority`, a number of members, or a
    /// tag-set name. Overrides MONGODB_URL's `w`.
    #[arg(long, env = "MONGODB_WRITE_CONCERN", default_value = "majority")]
    pub mongodb_write_concern: String,

    /// Whether MongoDB acknowledges a write only once it is journaled
    /// (write concern `j`). Overrides MONGODB_URL's `journal`.
    #[arg(long, env = "MONGODB_JOURNAL", default_value_t = true, action = clap::ArgAction::Set)]
    pub mongodb_journal: bool,

    /// MongoDB read concern level: `majority`, `local`, `available` or
    /// `linearizable`. Overrides MONGODB_URL's `readConcernLevel`.
    #[arg(long, env = "MONGODB_READ_CONCERN", default_value = "majority")]
    pub mongodb_read_concern: String,

    /// RabbitMQ connection string (`amqp://…`, `amqps://…` for TLS): events stored in the outbox
    /// are relayed there. Unset: the event log is the only sink.
    #[arg(long, env = "RABBITMQ_URL", hide_env_values = true)]
    pub rabbitmq_url: Option<String>,

    /// RabbitMQ topic exchange the events go to (routing key = event type).
    #[arg(long, env = "RABBITMQ_EXCHANGE", default_value = booking_adapters::rabbitmq::DEFAULT_EXCHANGE)]
    pub rabbitmq_exchange: String,

    /// Events published to RabbitMQ before their confirms are awaited
    /// (each window has API_TIMEOUT to be confirmed; 0 counts as 1).
    #[arg(long, env = "RABBITMQ_CONFIRM_WINDOW", default_value_t = booking_adapters::rabbitmq::DEFAULT_CONFIRM_WINDOW)]
    pub rabbitmq_confirm_window: usize,

    /// Cinema service gRPC endpoint (`host:port`, `http://host:port`, or
    /// `https://host:port` for TLS).
    #[arg(long, env = "CINEMA_SERVICE_URL")]
    pub cinema_service_url: Option<String>,

    /// User service base URL.
    #[arg(long, env = "USER_SERVICE_URL")]
    pub user_service_url: Option<String>,

    /// Payment service base URL.
    #[arg(long, env = "PAYMENT_SERVICE_URL")]
    pub payment_service_url: Option<String>,

    /// Serve the Cinema, User and Payment services whose URL is unset with
    /// the in-process reference peers — demos and local runs only: their
    /// Payment service approves every card and their User service logs
    /// anyone in with the password `demo`. Off: every URL must be set.
    #[arg(long, env = "REFERENCE_PEERS", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub reference_peers: bool,

    /// Where the in-process reference User service listens, when it is
    /// started; clients log in there (`POST /auth/login`). `scripts/run.sh`
    /// sets 127.0.0.1:8001; the default picks a free port.
    #[arg(long, env = "REFERENCE_USERS_LISTEN", default_value = "127.0.0.1:0")]
    pub reference_users_listen: SocketAddr,

    /// PEM CA bundle that every TLS connection to a backend trusts besides
    /// the public roots (`https://` services, `amqps://`, MongoDB with TLS:
    /// there it is the `tlsCAFile`, trusted alone, unless MONGODB_URL names
    /// one).
    #[arg(long, env = "TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,

    /// Seconds a booking holds its seats before it must be paid.
    #[arg(long, env = "SEAT_LOCK_DURATION", default_value_t = 300)]
    pub seat_lock_duration: u32,

    /// Seconds a PENDING booking may hold its seats in all, extensions
    /// included (the logic's default, 900 or `SEAT_LOCK_DURATION` if
    /// longer, when unset).
    #[arg(long, env = "LOCK_MAX_HOLD_SECONDS")]
    pub lock_max_hold_seconds: Option<u32>,

    /// Seconds to wait for the payment service to answer a charge.
    #[arg(long, env = "PAYMENT_TIMEOUT", default_value_t = 30)]
    pub payment_timeout: u64,

    /// Seconds to wait for any other dependency call.
    #[arg(long, env = "API_TIMEOUT", default_value_t = 30)]
    pub api_timeout: u64,

    /// Most seats one booking may hold.
    #[arg(long, env = "MAX_SEATS_PER_BOOKING", default_value_t = 10)]
    pub max_seats_per_booking: u32,

    /// Most PENDING bookings holding seats one user may have at once.
    #[arg(long, env = "MAX_PENDING_BOOKINGS_PER_USER", default_value_t = 3)]
    pub max_pending_bookings_per_user: u32,

    /// Most seats one user's PENDING bookings may hold in one showtime.
    #[arg(long, env = "MAX_SEATS_PER_USER_PER_SHOWTIME", default_value_t = 10)]
    pub max_seats_per_user_per_showtime: u32,

    /// Requests per second one client IP may send (0 = unlimited); bursts
    /// of `RATE_LIMIT_BURST` pass at once. Off by default: behind a proxy
    /// every client has the proxy's address.
    #[arg(long, env = "RATE_LIMIT_PER_IP", default_value_t = 0)]
    pub rate_limit_per_ip: u32,

    /// Requests per second one bearer token may send (0 = unlimited).
    #[arg(long, env = "RATE_LIMIT_PER_USER", default_value_t = 20)]
    pub rate_limit_per_user: u32,

    /// How many requests beyond the steady rate a client may send at once.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 100)]
    pub rate_limit_burst: u32,

    /// Seconds between sweeps for expired unpaid bookings.
    #[arg(long, env = "SWEEP_INTERVAL", default_value_t = 5)]
    pub sweep_interval: u64,

    /// Linear memory one request may use, in MiB.
    #[arg(long, env = "REQUEST_MEMORY_MB", default_value_t = 64)]
    pub request_memory_mb: usize,

    /// Milliseconds of guest CPU time one request may use.
    #[arg(long, env = "REQUEST_CPU_MS", default_value_t = 2000)]
    pub request_cpu_ms: u64,

    /// Seconds one request (or sweep) may take in all, from its headers
    /// on: reading its body, waiting for a slot and the guest call with
    /// its waits on dependencies. Past it the instance is dropped and the
    /// client gets an error. Idempotency leases outlast it.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_seconds: u64,

    /// Seconds a client has to send a request's headers once it starts
    /// one (or while its keep-alive connection idles); then the
    /// connection is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_seconds: u64,

    /// Seconds a client has to send a whole request body (at most the
    /// request timeout); then it gets 408 REQUEST_TIMEOUT. The body is
    /// read before the request takes an instance slot.
    #[arg(long, env = "BODY_READ_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_read_timeout_seconds: u64,

    /// Milliseconds a request waits for a free instance slot; then it gets
    /// 503 OVERLOADED with `Retry-After`.
    #[arg(long, env = "QUEUE_TIMEOUT_MS", default_value_t = 5000)]
    pub queue_timeout_ms: u64,

    /// Client connections served at once; further ones wait in the
    /// listen backlog until one closes.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// GraphQL subscriptions one WebSocket connection may hold.
    #[arg(long, env = "SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub subscriptions_per_connection: u32,

    /// GraphQL subscriptions one user may hold on this host, over all
    /// connections.
    #[arg(long, env = "SUBSCRIPTIONS_PER_USER", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub subscriptions_per_user: u32,

    /// GraphQL subscriptions this host holds at once (each keeps at most
    /// `SUBSCRIPTION_BUFFER` messages): further ones are refused with
    /// TOO_MANY_SUBSCRIPTIONS.
    #[arg(long, env = "SUBSCRIPTIONS_MAX", default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub subscriptions_max: u32,

    /// Messages waiting for one subscriber (and for one WebSocket
    /// connection) before it counts as a slow consumer and is dropped.
    #[arg(long, env = "SUBSCRIPTION_BUFFER", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub subscription_buffer: u32,

    /// Seconds between keep-alives (WebSocket `ping`, SSE comment).
    #[arg(long, env = "SUBSCRIPTION_KEEPALIVE_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub subscription_keepalive_seconds: u64,

    /// Seconds a WebSocket client may send nothing (not even a `pong`)
    /// before it is closed (1001).
    #[arg(long, env = "SUBSCRIPTION_IDLE_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub subscription_idle_seconds: u64,

    /// Milliseconds a WebSocket client has to send `connection_init`
    /// (then 4408).
    #[arg(long, env = "SUBSCRIPTION_INIT_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub subscription_init_timeout_ms: u64,

    /// `required`: mutations and user-scoped queries need
    /// `Authorization: Bearer <token>` from the User service. `disabled`:
    /// anyone may act for any user — local experiments only.
    #[arg(long, env = "AUTH_MODE", value_enum, default_value_t = AuthMode::Required)]
    pub auth_mode: AuthMode,

    /// Seconds the User service's answer about a token is reused.
    #[arg(long, env = "AUTH_CACHE_SECONDS", default_value_t = 30)]
    pub auth_cache_seconds: u64,

    /// Whether the schema answers introspection and GraphiQL is served.
    #[arg(long, env = "GRAPHQL_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphql_introspection: bool,

    /// Deepest selection nesting a GraphQL document may have.
    #[arg(long, env = "GRAPHQL_MAX_DEPTH", default_value_t = 15)]
    pub graphql_max_depth: u32,

    /// Most complexity points a GraphQL document may cost.
    #[arg(long, env = "GRAPHQL_MAX_COMPLEXITY", default_value_t = 500)]
    pub graphql_max_complexity: u32,

    /// Most operations in one batched request.
    #[arg(long, env = "GRAPHQL_MAX_BATCH", default_value_t = 10)]
    pub graphql_max_batch: u32,

    /// Hours the first answer to an idempotency key is kept (at least 24).
    #[arg(long, env = "IDEMPOTENCY_RETENTION_HOURS", default_value_t = 24)]
    pub idempotency_retention_hours: u32,

    /// Largest response body one request may produce, in KiB; a larger
    /// one is cut off and answered with 502 RESPONSE_TOO_LARGE.
    #[arg(long, env = "MAX_RESPONSE_KB", default_value_t = 4096)]
    pub max_response_kb: usize,

    /// Hosts (`host:port`, comma-separated) the component may send HTTP to
    /// itself, as Spin's `allowed_outbound_hosts`: for a component with its
    /// own adapters (the Spin `http-only` build). Empty: no outgoing HTTP.
    /// When set, the guest also gets the dependency URLs and timeouts.
    #[arg(long, env = "OUTBOUND_HTTP_ALLOW", value_delimiter = ',')]
    pub outbound_http_allow: Vec<String>,

    /// Requests that may run at once (instance pool size).
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 256)]
    pub max_concurrent_requests: u32,

    /// Seconds a SIGTERM/SIGINT leaves requests in flight to finish (and
    /// the sweeper and event relay to end their current round) before the
    /// host exits anyway. Keep it under the orchestrator's kill timeout
    /// (Kubernetes: terminationGracePeriodSeconds, 30 by default).
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,

    /// Verbose logs.
    #[arg(long, env = "DEBUG", default_value_t = false, action = clap::ArgAction::Set)]
    pub debug: bool,
}

impl Config {
    /// `REPLICA_ID`, else `<hostname>-<pid>`: unique per process.
    pub fn replica_id(&self) -> String {
        self.replica_id.clone().unwrap_or_else(|| {
            let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|name| name.trim().to_owned())
                .unwrap_or_else(|_| "host".to_owned());
            format!("{hostname}-{}", std::process::id())
        })
    }

    pub fn payment_timeout(&self) -> Duration {
        Duration::from_secs(self.payment_timeout)
    }

    pub fn api_timeout(&self) -> Duration {
        Duration::from_secs(self.api_timeout)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    pub fn live_limits(&self) -> crate::live::LiveLimits {
        crate::live::LiveLimits {
            per_connection: self.subscriptions_per_connection as usize,
            per_user: self.subscriptions_per_user as usize,
            max_subscribers: self.subscriptions_max as usize,
            buffer: self.subscription_buffer as usize,
            keepalive: Duration::from_secs(self.subscription_keepalive_seconds),
            idle: Duration::from_secs(self.subscription_idle_seconds),
            init_timeout: Duration::from_millis(self.subscription_init_timeout_ms),
        }
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_seconds)
    }

    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_seconds)
    }

    pub fn queue_timeout(&self) -> Duration {
        Duration::from_millis(self.queue_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    pub fn mongodb_timeout(&self) -> Duration {
        Duration::from_millis(self.mongodb_timeout_ms)
    }

    pub fn mongodb_durability(&self) -> booking_adapters::mongo::Durability {
        booking_adapters::mongo::Durability {
            write: self.mongodb_write_concern.clone(),
            journal: self.mongodb_journal,
            read: self.mongodb_read_concern.clone(),
        }
    }

    pub fn tls_roots(&self) -> anyhow::Result<booking_adapters::tls::TlsRoots> {
        match &self.tls_ca_file {
            Some(path) => booking_adapters::tls::TlsRoots::with_ca_file(path)
                .map_err(|error| error.context("TLS_CA_FILE")),
            None => Ok(booking_adapters::tls::TlsRoots::default()),
        }
    }

    /// The hosts the component may send HTTP to; none by default.
    pub fn outbound_http(&self) -> anyhow::Result<booking_runtime::OutboundHttpAllowlist> {
        booking_runtime::OutboundHttpAllowlist::new(self.outbound_http_allow.iter().cloned())
    }

    /// With an outbound allowlist, what a component with its own adapters
    /// needs besides `guest_env`: the services' resolved URLs (the
    /// reference peers' when unset) and the timeouts. Nothing otherwise.
    pub fn outbound_guest_env(&self, services: &ServiceUrls) -> Vec<(String, String)> {
        if self
            .outbound_http_allow
            .iter()
            .all(|host| host.trim().is_empty())
        {
            return Vec::new();
        }
        [
            ("CINEMA_SERVICE_URL", services.cinema.clone()),
            ("USER_SERVICE_URL", services.users.clone()),
            ("PAYMENT_SERVICE_URL", services.payments.clone()),
            ("API_TIMEOUT", self.api_timeout.to_string()),
            ("PAYMENT_TIMEOUT", self.payment_timeout.to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
    }

    /// Settings the booking logic reads from its environment.
    pub fn guest_env(&self) -> Vec<(String, String)> {
        let auth_mode = match self.auth_mode {
            AuthMode::Required => "required",
            AuthMode::Disabled => "disabled",
        };
        [
            ("SEAT_LOCK_DURATION", self.seat_lock_duration.to_string()),
            (
                "MAX_SEATS_PER_BOOKING",
                self.max_seats_per_booking.to_string(),
            ),
            (
                "MAX_PENDING_BOOKINGS_PER_USER",
                self.max_pending_bookings_per_user.to_string(),
            ),
            (
                "MAX_SEATS_PER_USER_PER_SHOWTIME",
                self.max_seats_per_user_per_showtime.to_string(),
            ),
            ("AUTH_MODE", auth_mode.to_string()),
            (
                "LOCK_MAX_HOLD_SECONDS",
                self.lock_max_hold_seconds
                    .map(|seconds| seconds.to_string())
                    .unwrap_or_default(),
            ),
            // A key's first request must own it for as long as it can run:
            // the request timeout, plus slack for clocks and scheduling.
            (
                "IDEMPOTENCY_LEASE_SECONDS",
                (self.request_timeout_seconds + LEASE_SLACK_SECONDS).to_string(),
            ),
            (
                "GRAPHQL_INTROSPECTION",
                self.graphql_introspection.to_string(),
            ),
            ("GRAPHQL_MAX_DEPTH", self.graphql_max_depth.to_string()),
            (
                "GRAPHQL_MAX_COMPLEXITY",
                self.graphql_max_complexity.to_string(),
            ),
            ("GRAPHQL_MAX_BATCH", self.graphql_max_batch.to_string()),
            (
                "IDEMPOTENCY_RETENTION_HOURS",
                self.idempotency_retention_hours.to_string(),
            ),
            // Each answer reports its operation and error codes to
            // `http::observe`, which removes the header.
            ("HOST_REPORT", "true".to_string()),
        ]
        .into_iter()
        // Unset: the logic's own default.
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (name.to_string(), value))
        .collect()
    }
}

/// Where the Cinema, User and Payment services are, once resolved.
#[derive(Debug, Clone, Default)]
pub struct ServiceUrls {
    pub cinema: String,
    pub users: String,
    pub payments: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    Required,
    Disabled,
}
