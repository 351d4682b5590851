//! Test harness: starts the reference peers and the booking host in-process
//! on loopback ports (real gRPC, real HTTP), with the built component, and
//! talks GraphQL to it like any client; `process` runs it as a child
//! process instead.

pub mod process;
pub mod scenarios;

use std::path::{Path, PathBuf};
use std::time::Duration;

use booking_host::app::RunningService;
use booking_peers::{PaymentBehaviour, PeersConfig, PeersTls, RunningPeers};
use clap::Parser;
use serde_json::{Value, json};

/// The build's target directory (`CARGO_TARGET_DIR`, or the workspace's
/// `target/`), where the scripts put the components they build.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A built component, `scripts/build-components.sh` makes them.
pub fn component(name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2/guest")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-components.sh first",
        path.display()
    );
    path
}

/// The `host:port` of an `http://` URL, as `--outbound-http-allow` takes it.
pub fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// Command-line words, for `Options::extra_args` and the like.
pub fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| word.to_string()).collect()
}

/// Payments whose `card_slow` answers after `delay` (charged at once).
pub fn slow_payments(delay: Duration) -> PaymentBehaviour {
    PaymentBehaviour {
        slow_delay: delay,
        ..PaymentBehaviour::default()
    }
}

/// The reference peers on loopback ports, paying as `payments` says.
pub async fn reference_peers(payments: PaymentBehaviour) -> RunningPeers {
    booking_peers::start(PeersConfig {
        payments,
        ..PeersConfig::default()
    })
    .await
    .expect("starting the reference peers")
}

/// POSTs a GraphQL document to the host at `base_url`; returns (HTTP
/// status, JSON body).
pub async fn graphql(
    client: &reqwest::Client,
    base_url: &str,
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let response = client
        .post(format!("{base_url}/graphql"))
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .expect("the service answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// Logs in at the reference User service at `users_url` (password
/// "demo"); returns the bearer token.
pub async fn login(client: &reqwest::Client, users_url: &str, user_id: &str) -> String {
    let response = client
        .post(format!("{users_url}/auth/login"))
        .json(&json!({"userId": user_id, "password": "demo"}))
        .send()
        .await
        .expect("the user service answers");
    assert_eq!(response.status(), 200, "login of {user_id}");
    let body: Value = response.json().await.expect("a JSON body");
    body["token"].as_str().expect("a token").to_owned()
}

pub struct Options {
    pub component: PathBuf,
    pub seat_lock_seconds: u32,
    pub payment_timeout_seconds: u64,
    pub sweep_interval_seconds: u64,
    pub payments: PaymentBehaviour,
    /// Instance pool size (`--max-concurrent-requests`).
    pub max_concurrent_requests: u32,
    /// Whether requests need tokens. Off by default: most suites test the
    /// workflow, and `auth.rs` tests authentication on its own.
    pub auth_required: bool,
    /// Lets the component send HTTP to the peers itself
    /// (`--outbound-http-allow` with their `host:port`s, known only once
    /// they run): for a component with its own adapters.
    pub outbound_http_to_peers: bool,
    /// The User service the host calls instead of the reference one
    /// (e.g. a fake that counts calls).
    pub user_service_url: Option<String>,
    /// A data directory the test keeps (to restart a host on it); unset:
    /// a fresh temporary one.
    pub data_dir: Option<PathBuf>,
    /// Serve the reference peers over TLS with this certificate (their
    /// URLs are then `https://`).
    pub peers_tls: Option<PeersTls>,
    pub extra_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            component: component("booking_component"),
            seat_lock_seconds: 300,
            payment_timeout_seconds: 5,
            sweep_interval_seconds: 3600,
            payments: PaymentBehaviour::default(),
            max_concurrent_requests: 64,
            auth_required: false,
            outbound_http_to_peers: false,
            user_service_url: None,
            data_dir: None,
            peers_tls: None,
            extra_args: Vec::new(),
        }
    }
}

impl Options {
    /// The defaults, with `words` on the host's command line.
    pub fn with_args(words: &[&str]) -> Options {
        Options {
            extra_args: args(words),
            ..Options::default()
        }
    }
}

/// A host's data directory: a temporary one, or one the test keeps.
enum DataDir {
    Temporary(tempfile::TempDir),
    Kept(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Temporary(dir) => dir.path(),
            DataDir::Kept(path) => path,
        }
    }
}

/// Starts a booking host against `peers`, in its own data directory.
async fn start_host(peers: &RunningPeers, options: Options) -> (RunningService, DataDir) {
    let data_dir = match options.data_dir.clone() {
        Some(path) => DataDir::Kept(path),
        None => DataDir::Temporary(tempfile::tempdir().expect("a temporary data directory")),
    };
    let mut args: Vec<String> = [
        "booking-host",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec();
    let settings = [
        ("--component", options.component.display().to_string()),
        ("--data-dir", data_dir.path().display().to_string()),
        ("--cinema-service-url", peers.cinema_url.clone()),
        (
            "--user-service-url",
            options
                .user_service_url
                .clone()
                .unwrap_or_else(|| peers.users_url.clone()),
        ),
        ("--payment-service-url", peers.payments_url.clone()),
        (
            "--seat-lock-duration",
            options.seat_lock_seconds.to_string(),
        ),
        (
            "--payment-timeout",
            options.payment_timeout_seconds.to_string(),
        ),
        ("--api-timeout", "5".to_owned()),
        (
            "--max-concurrent-requests",
            options.max_concurrent_requests.to_string(),
        ),
        (
            "--auth-mode",
            if options.auth_required {
                "required"
            } else {
                "disabled"
            }
            .to_owned(),
        ),
        (
            "--sweep-interval",
            options.sweep_interval_seconds.to_string(),
        ),
    ];
    for (flag, value) in settings {
        args.push(flag.to_owned());
        args.push(value);
    }
    if options.outbound_http_to_peers {
        let authorities =
            [&peers.cinema_url, &peers.users_url, &peers.payments_url].map(|url| authority(url));
        args.push("--outbound-http-allow".to_owned());
        args.push(authorities.join(","));
    }
    args.extend(options.extra_args);
    let config = booking_host::config::Cli::parse_from(args).config;
    let service = booking_host::app::start(config)
        .await
        .expect("starting the booking host");
    (service, data_dir)
}

/// A further host beside a `TestService`: same peers, its own process
/// state (and, given the same backend flags, the same database).
pub struct SecondHost {
    pub base_url: String,
    service: RunningService,
    _data_dir: DataDir,
}

impl SecondHost {
    pub async fn stop(self) {
        self.service.stop().await.expect("clean shutdown");
    }
}

/// A GraphQL client of one booking service (our host or `spin up`), with
/// the calls the tests make; `TestService` and `spin::SpinService` deref
/// to it.
pub struct Api {
    pub base_url: String,
    /// The User service the service authenticates against, for logins.
    pub users_url: String,
    pub client: reqwest::Client,
}

pub struct TestService {
    api: Api,
    pub admin_url: String,
    /// `http://…/metrics`.
    pub metrics_url: String,
    pub peers: RunningPeers,
    pub component_sha256: String,
    /// The token the host generated in its data directory (none when the
    /// test passed `--admin-token`).
    pub admin_token: Option<String>,
    service: RunningService,
    data_dir: DataDir,
}

impl std::ops::Deref for TestService {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestService {
    pub async fn start(options: Options) -> TestService {
        let peers = booking_peers::start(PeersConfig {
            payments: options.payments,
            tls: options.peers_tls.clone(),
            ..PeersConfig::default()
        })
        .await
        .expect("starting the reference peers");
        let (service, data_dir) = start_host(&peers, options).await;
        let admin_token = std::fs::read_to_string(data_dir.path().join("admin-token"))
            .ok()
            .map(|token| token.trim().to_owned());
        TestService {
            api: Api::new(
                format!("http://{}", service.address),
                peers.users_url.clone(),
            ),
            admin_url: format!("http://{}/admin", service.admin_address),
            metrics_url: format!("http://{}/metrics", service.metrics_address),
            component_sha256: service.component_sha256.clone(),
            admin_token,
            peers,
            service,
            data_dir,
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// A request to the admin API (`path` below `/admin/`) with the
    /// generated token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let token = self
            .admin_token
            .as_deref()
            .expect("the host generated an admin token");
        self.client
            .request(method, format!("{}/{path}", self.admin_url))
            .bearer_auth(token)
    }

    /// `GET /admin/<path>` without a token.
    pub async fn admin_anonymous(&self, path: &str) -> reqwest::Response {
        self.get_url(format!("{}/{path}", self.admin_url)).await
    }

    /// `GET /admin/health`, the detailed report: (HTTP status, JSON body).
    pub async fn admin_health(&self) -> (u16, Value) {
        let response = self
            .admin(reqwest::Method::GET, "health")
            .send()
            .await
            .expect("the admin API answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    pub async fn stop(self) {
        self.service.stop().await.expect("clean shutdown");
    }

    /// Starts another host on the same peers, with this host's admin
    /// token unless the options name one: hosts on one MongoDB are one
    /// fleet, whose replicas share the token its record is signed with.
    pub async fn second_host(&self, mut options: Options) -> SecondHost {
        if let Some(token) = &self.admin_token
            && !options.extra_args.iter().any(|arg| arg == "--admin-token")
        {
            options.extra_args.extend(args(&["--admin-token", token]));
        }
        let (service, data_dir) = start_host(&self.peers, options).await;
        SecondHost {
            base_url: format!("http://{}", service.address),
            service,
            _data_dir: data_dir,
        }
    }
}

impl Api {
    pub fn new(base_url: String, users_url: String) -> Api {
        Api {
            base_url,
            users_url,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        }
    }

    /// POSTs a GraphQL document to any host; returns (HTTP status, JSON body).
    pub async fn graphql_at(&self, base_url: &str, query: &str, variables: Value) -> (u16, Value) {
        graphql(&self.client, base_url, query, variables).await
    }

    /// Logs in at the reference User service (password "demo"); returns
    /// the bearer token.
    pub async fn login(&self, user_id: &str) -> String {
        login(&self.client, &self.users_url, user_id).await
    }

    /// A `POST /graphql` of `query`, to add headers to and send: for
    /// what the response carries beyond its JSON.
    pub fn graphql_request(&self, query: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/graphql", self.base_url))
            .json(&json!({ "query": query }))
    }

    /// `GET <base_url><path>` (the answer whatever its status).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_url(format!("{}{path}", self.base_url)).await
    }

    async fn get_url(&self, url: String) -> reqwest::Response {
        self.client
            .get(url)
            .send()
            .await
            .expect("the service answers")
    }

    /// POSTs a GraphQL document with extra headers (e.g. a token);
    /// returns (HTTP status, JSON body).
    pub async fn graphql_with(
        &self,
        headers: &[(&str, &str)],
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base_url))
            .json(&json!({"query": query, "variables": variables}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// POSTs a GraphQL document with `token` as the bearer token; returns
    /// (HTTP status, JSON body).
    pub async fn graphql_as(&self, token: &str, query: &str, variables: Value) -> (u16, Value) {
        let authorization = format!("Bearer {token}");
        self.graphql_with(&[("authorization", &authorization)], query, variables)
            .await
    }

    /// The public `GET /health`, status only: (HTTP status, JSON body).
    pub async fn health(&self) -> (u16, Value) {
        self.health_at("/health").await
    }

    /// A health endpoint's status and JSON body (`/health/live`, …).
    pub async fn health_at(&self, path: &str) -> (u16, Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// POSTs a GraphQL document; returns (HTTP status, JSON body).
    pub async fn graphql(&self, query: &str, variables: Value) -> (u16, Value) {
        self.graphql_at(&self.base_url, query, variables).await
    }

    /// The data of a GraphQL call that must succeed.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.graphql(query, variables).await;
        assert_eq!(status, 200, "unexpected status, body: {body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Creates a booking that must succeed; returns its id.
    pub async fn create_booking(&self, user: &str, showtime: &str, seats: &[&str]) -> String {
        let data = self
            .data(
                "mutation($u: String!, $s: String!, $n: [String!]!) { createBooking(userId: $u, showtimeId: $s, seatNumbers: $n) { success booking { id } } }",
                json!({"u": user, "s": showtime, "n": seats}),
            )
            .await;
        assert_eq!(data["createBooking"]["success"], true, "{data}");
        data["createBooking"]["booking"]["id"]
            .as_str()
            .expect("a booking id")
            .to_owned()
    }

    /// Creates a booking and pays it with a card that works, both of
    /// which must succeed; returns its id.
    pub async fn paid_booking(&self, user: &str, showtime: &str, seats: &[&str]) -> String {
        let booking_id = self.create_booking(user, showtime, seats).await;
        let (status, paid) = self.pay(&booking_id, "card_token_xyz").await;
        assert_eq!(status, 200, "{paid}");
        assert_eq!(paid["data"]["processPayment"]["success"], true, "{paid}");
        booking_id
    }

    /// Pays `booking_id` with `details`, which the workflow must turn into
    /// a failure (`success: false`); returns the `processPayment` answer.
    pub async fn pay_failing(&self, booking_id: &str, details: &str) -> Value {
        let (status, body) = self.pay(booking_id, details).await;
        assert_eq!(status, 200, "{body}");
        let outcome = &body["data"]["processPayment"];
        assert_eq!(outcome["success"], false, "{body}");
        outcome.clone()
    }

    pub async fn pay(&self, booking_id: &str, details: &str) -> (u16, Value) {
        self.graphql(
            "mutation($b: String!, $d: String!) { processPayment(bookingId: $b, paymentMethod: \"credit_card\", paymentDetails: $d) { success message code booking { id status paymentTransactionId failureReason } } }",
            json!({"b": booking_id, "d": details}),
        )
        .await
    }

    pub async fn booking(&self, booking_id: &str) -> Value {
        let data = self
            .data(
                "query($b: String!) { getBooking(bookingId: $b) { id status seats totalCents paymentTransactionId failureReason refundedAt settlementPending } }",
                json!({"b": booking_id}),
            )
            .await;
        data["getBooking"].clone()
    }

    /// A booking's events as the API lists them, in order: (id, type).
    pub async fn events(&self, booking_id: &str) -> Vec<(String, String)> {
        let data = self
            .data(
                "query($b: String!) { bookingEvents(bookingId: $b) { id type } }",
                json!({"b": booking_id}),
            )
            .await;
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        data["bookingEvents"]
            .as_array()
            .expect("a list of events")
            .iter()
            .map(|event| (text(&event["id"]), text(&event["type"])))
            .collect()
    }

    /// Event types of a booking, in order.
    pub async fn event_types(&self, booking_id: &str) -> Vec<String> {
        let events = self.events(booking_id).await;
        events.into_iter().map(|(_, kind)| kind).collect()
    }

    /// Seat numbers of a showtime with the given status (AVAILABLE, LOCKED, BOOKED).
    pub async fn seats_with_status(&self, showtime: &str, status: &str) -> Vec<String> {
        let data = self
            .data(
                "query($s: String!) { showtimeSeats(showtimeId: $s) { seats { number status } } }",
                json!({"s": showtime}),
            )
            .await;
        data["showtimeSeats"]["seats"]
            .as_array()
            .expect("a seat map")
            .iter()
            .filter(|seat| seat["status"] == status)
            .map(|seat| seat["number"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Polls until `booking_id` has `status` or the deadline passes.
    pub async fn wait_for_status(
        &self,
        booking_id: &str,
        status: &str,
        deadline: Duration,
    ) -> Value {
        let start = std::time::Instant::now();
        loop {
            let booking = self.booking(booking_id).await;
            if booking["status"] == status || start.elapsed() > deadline {
                return booking;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The first error's `extensions.code`.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}
