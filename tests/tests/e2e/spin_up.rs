//! The booking component under a real `spin up` (Spin 4.x, issue 16): the
//! shipped `spin.toml` with its component paths made absolute and its
//! outbound hosts pointed at reference peers of the test's own. Each test
//! runs its own `spin up` on a free port, from a state directory of its
//! own (Spin keeps its SQLite data and logs there), and stops it. The CLI
//! is `SPIN_BIN`, else `../shared/tools/spin.xz` unpacked; without either
//! the tests skip loudly, and fail in CI.

use std::net::TcpListener;
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use booking_logic::model::Event;
use booking_peers::{PaymentBehaviour, PeersConfig, RunningPeers};
use e2e_tests::{Api, component, error_code, scenarios, target_dir};
use serde_json::json;
use test_support::amqp::Subscriber;
use test_support::spin::{self, Manifest};
use test_support::{service_url, unique};

/// What a test changes of the shipped configuration.
#[derive(Default)]
struct SpinOptions {
    /// Variables set beside (or instead of) the peers' URLs.
    variables: Vec<(&'static str, String)>,
    /// Variables passed as `SPIN_VARIABLE_<NAME>` in Spin's environment;
    /// the others as `spin up --variable name=value`.
    through_environment: Vec<&'static str>,
    /// Whether requests need tokens (the component's default); off, as in
    /// the host's suites, where a test is about the workflow.
    auth_required: bool,
    /// `spin up --env NAME=value`: the component's environment beyond
    /// the manifest's.
    environment: Vec<(&'static str, &'static str)>,
    /// `allowed_outbound_hosts`; unset: the three peers.
    allowed_outbound_hosts: Option<Vec<String>>,
    payments: PaymentBehaviour,
}

struct SpinService {
    api: Api,
    peers: RunningPeers,
    spin: Child,
    dir: tempfile::TempDir,
}

impl Deref for SpinService {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for SpinService {
    fn drop(&mut self) {
        let _ = self.spin.kill();
        let _ = self.spin.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

impl SpinService {
    /// `spin up` of the shipped manifest against fresh reference peers;
    /// `None` (after a loud message) when no Spin CLI is at hand outside CI.
    async fn start(options: SpinOptions) -> Option<SpinService> {
        let spin = spin::cli(&target_dir().join("spin-cli"))?;
        let peers = booking_peers::start(PeersConfig {
            payments: options.payments,
            ..PeersConfig::default()
        })
        .await
        .expect("starting the reference peers");
        let allowed = options.allowed_outbound_hosts.unwrap_or_else(|| {
            let mut hosts = vec![
                peers.cinema_url.clone(),
                peers.users_url.clone(),
                peers.payments_url.clone(),
            ];
            // The broker a test names, without the query (`client_id`).
            hosts.extend(options.variables.iter().filter_map(|(name, value)| {
                let broker = value.split('?').next()?;
                (*name == "mqtt_address" && !broker.is_empty()).then(|| broker.to_owned())
            }));
            hosts
        });
        let manifest = Manifest::of_workspace()
            .and_then(|manifest| {
                manifest.with_components(
                    &component("booking_component"),
                    &target_dir().join("spin/spin_adapters.wasm"),
                )
            })
            .expect("spin.toml rewritten")
            .with_allowed_outbound_hosts(&allowed);
        let dir = tempfile::tempdir().expect("a state directory");
        let manifest_path = dir.path().join("spin.toml");
        std::fs::write(&manifest_path, manifest.text()).expect("writing spin.toml");

        let port = free_port();
        let mut command = Command::new(&spin);
        command
            .arg("up")
            .arg("--from")
            .arg(&manifest_path)
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        let mut variables = vec![
            ("cinema_service_url", peers.cinema_url.clone()),
            ("user_service_url", peers.users_url.clone()),
            ("payment_service_url", peers.payments_url.clone()),
            // No broker unless a test names one.
            ("mqtt_address", String::new()),
            ("api_timeout_seconds", "5".to_owned()),
        ];
        for (name, value) in options.variables {
            variables.retain(|(set, _)| *set != name);
            variables.push((name, value));
        }
        for (name, value) in &variables {
            if options.through_environment.contains(name) {
                command.env(format!("SPIN_VARIABLE_{}", name.to_uppercase()), value);
            } else {
                command.args(["--variable", &format!("{name}={value}")]);
            }
        }
        if !options.auth_required {
            command.args(["--env", "AUTH_MODE=disabled"]);
        }
        for (name, value) in &options.environment {
            command.args(["--env", &format!("{name}={value}")]);
        }
        let log = std::fs::File::create(dir.path().join("spin-up.log")).expect("a log file");
        let child = command
            .env("HOME", dir.path())
            .env("RUST_LOG", "warn")
            .current_dir(dir.path())
            .stdout(Stdio::from(log.try_clone().expect("the log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", spin.display()));
        let service = SpinService {
            api: Api::new(format!("http://127.0.0.1:{port}"), peers.users_url.clone()),
            peers,
            spin: child,
            dir,
        };
        service.wait_until_serving().await;
        Some(service)
    }

    /// Spin compiles the component at start: a few seconds.
    async fn wait_until_serving(&self) {
        let started = Instant::now();
        loop {
            let answer = self
                .client
                .post(format!("{}/graphql", self.base_url))
                .json(&json!({"query": "{ logicVersion }"}))
                .send()
                .await;
            if answer.is_ok_and(|response| response.status() == 200) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "spin up did not serve within 120 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A booking's status as Spin's SQLite file (the manifest's
    /// `default` database, under the state directory) has it.
    fn stored_status(&self, booking_id: &str) -> String {
        let path = self.dir.path().join(".spin/sqlite_db.db");
        let db = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap_or_else(|error| panic!("opening {}: {error}", path.display()));
        db.query_row(
            "SELECT status FROM bookings WHERE id = ?",
            [booking_id],
            |row| row.get(0),
        )
        .unwrap_or_else(|error| panic!("booking {booking_id} in {}: {error}", path.display()))
    }

    /// What `spin up` printed, and the component's own stdio logs.
    fn log(&self) -> String {
        let mut text =
            std::fs::read_to_string(self.dir.path().join("spin-up.log")).unwrap_or_default();
        let logs: PathBuf = self.dir.path().join(".spin/logs");
        for entry in std::fs::read_dir(logs).into_iter().flatten().flatten() {
            text.push_str(&format!("\n--- {}\n", entry.path().display()));
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        text
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_documents_run_under_spin_up() {
    let Some(service) = SpinService::start(SpinOptions::default()).await else {
        return;
    };

    scenarios::the_seed_documents_run_the_whole_workflow(&service, &service.peers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_under_spin_releases_the_seats() {
    let Some(service) = SpinService::start(SpinOptions::default()).await else {
        return;
    };
    scenarios::a_declined_card_releases_the_seats(&service, &service.peers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_payment_reply_under_spin_is_retried_without_a_second_charge() {
    let Some(service) = SpinService::start(SpinOptions {
        variables: vec![("payment_timeout_seconds", "1".to_owned())],
        payments: PaymentBehaviour {
            lost_reply_delay: Duration::from_secs(3),
            ..PaymentBehaviour::default()
        },
        ..SpinOptions::default()
    })
    .await
    else {
        return;
    };
    scenarios::a_lost_payment_reply_is_retried_without_a_second_charge(&service, &service.peers)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_under_spin_are_checked_at_the_user_service() {
    let Some(service) = SpinService::start(SpinOptions {
        auth_required: true,
        ..SpinOptions::default()
    })
    .await
    else {
        return;
    };
    let create = "mutation($u: String!) { createBooking(userId: $u, showtimeId: \"showtime_456\", seatNumbers: [\"E1\"]) { success booking { id } } }";

    let (_, missing) = service.graphql(create, json!({"u": "user_123"})).await;
    assert_eq!(error_code(&missing), Some("UNAUTHENTICATED"), "{missing}");

    let owner = service.login("user_123").await;
    let (_, created) = service
        .graphql_as(&owner, create, json!({"u": "user_123"}))
        .await;
    assert_eq!(
        created["data"]["createBooking"]["success"], true,
        "{created}"
    );
    let booking = created["data"]["createBooking"]["booking"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let read = "query($b: String!) { getBooking(bookingId: $b) { id status } }";
    let (_, own) = service
        .graphql_as(&owner, read, json!({"b": booking}))
        .await;
    assert_eq!(own["data"]["getBooking"]["status"], "PENDING", "{own}");

    let other = service.login("user_456").await;
    let (_, foreign) = service
        .graphql_as(&other, read, json!({"b": booking}))
        .await;
    assert_eq!(error_code(&foreign), Some("FORBIDDEN"), "{foreign}");
    let (_, forged) = service
        .graphql_as("not-a-token", read, json!({"b": booking}))
        .await;
    assert_eq!(error_code(&forged), Some("UNAUTHENTICATED"), "{forged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_under_spin_replays_the_first_answer() {
    let Some(service) = SpinService::start(SpinOptions::default()).await else {
        return;
    };
    let create = "mutation { createBooking(userId: \"user_123\", showtimeId: \"showtime_456\", seatNumbers: [\"D5\"]) { success booking { id } } }";
    let headers = [("idempotency-key", "spin-replay-1")];
    let (first_status, first) = service.graphql_with(&headers, create, json!({})).await;
    let (second_status, second) = service.graphql_with(&headers, create, json!({})).await;
    assert_eq!(
        (first_status, second_status),
        (200, 200),
        "{first} {second}"
    );
    assert_eq!(first["data"]["createBooking"]["success"], true, "{first}");
    assert_eq!(first, second, "the replay is the first answer");
    let booking = first["data"]["createBooking"]["booking"]["id"]
        .as_str()
        .unwrap();
    assert_eq!(service.booking(booking).await["status"], "PENDING");
    assert_eq!(
        service.peers.cinema.live_locks("showtime_456").len(),
        1,
        "one lock: the replay did not book again"
    );
}

/// The peers' URLs given as `SPIN_VARIABLE_*` reach the adapter as well
/// as `--variable` does: the workflow runs (the shipped defaults point at
/// ports the allow-list of this run does not have).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_variables_from_the_environment_reach_the_adapter() {
    let Some(service) = SpinService::start(SpinOptions {
        through_environment: vec![
            "cinema_service_url",
            "user_service_url",
            "payment_service_url",
        ],
        ..SpinOptions::default()
    })
    .await
    else {
        return;
    };
    let booking = service
        .paid_booking("user_123", "showtime_456", &["D6"])
        .await;
    assert_eq!(service.booking(&booking).await["status"], "CONFIRMED");
}

/// A URL moved off the allow-list is refused by Spin: the client hears at
/// once which dependency and why, rather than waiting on a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_off_the_allow_list_is_a_prompt_dependency_error_naming_the_cause() {
    let unlisted = format!("http://127.0.0.1:{}", free_port());
    let Some(service) = SpinService::start(SpinOptions {
        variables: vec![("user_service_url", unlisted)],
        ..SpinOptions::default()
    })
    .await
    else {
        return;
    };
    let started = Instant::now();
    let (_, body) = service
        .graphql(
            "mutation { createBooking(userId: \"user_123\", showtimeId: \"showtime_456\", seatNumbers: [\"D7\"]) { success } }",
            json!({}),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no hang: {body}"
    );
    assert_eq!(error_code(&body), Some("DEPENDENCY_UNAVAILABLE"), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("user service"), "{body}");
    // The client learns which dependency, never the details; the
    // operator's log says why.
    let log = service.log();
    assert!(log.contains("HttpRequestDenied"), "{log}");
}

/// Events leave Spin over MQTT (RabbitMQ's plugin, which publishes to
/// `amq.topic`: topic `booking/created` becomes routing key
/// `booking.created`) and reach an AMQP consumer in commit order, each
/// body byte for byte what the host's relay publishes for that event
/// (`serde_json` of the shared `Event` record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_rabbitmq_over_mqtt_in_order_encoded_as_the_host_encodes_them() {
    let (Some(mqtt_url), Some(rabbitmq_url)) = (
        service_url("TEST_RABBITMQ_MQTT_URL"),
        service_url("TEST_RABBITMQ_URL"),
    ) else {
        return;
    };
    let mut subscriber = Subscriber::bind(&rabbitmq_url, "amq.topic", "booking.#").await;
    // A client id of its own: MQTT lets one session per id live.
    let address = format!("{mqtt_url}?client_id={}", unique("booking-spin"));
    let Some(service) = SpinService::start(SpinOptions {
        variables: vec![("mqtt_address", address)],
        ..SpinOptions::default()
    })
    .await
    else {
        return;
    };

    let booking = service
        .paid_booking("user_123", "showtime_456", &["E1", "E2"])
        .await;
    let stored = service.events(&booking).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    let mut arrived = Vec::new();
    while arrived.len() < stored.len() {
        let message = subscriber
            .next(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "the events arrive over MQTT: {:?}\n{}",
                    arrived,
                    service.log()
                )
            });
        // amq.topic is shared: other runs' events pass by.
        if message.body["bookingId"] == booking.as_str() {
            arrived.push(message);
        }
    }
    for ((id, kind), message) in stored.iter().zip(&arrived) {
        assert_eq!(message.body["id"], id.as_str(), "in commit order");
        assert_eq!(&message.routing_key, kind);
        let event: Event = serde_json::from_slice(&message.bytes).expect("an event record");
        assert_eq!(
            serde_json::to_vec(&event).expect("encodes"),
            message.bytes,
            "byte-identical to the host's encoding"
        );
    }
}

/// A one-second lock, and a sweep on requests every second.
fn short_locks() -> SpinOptions {
    SpinOptions {
        environment: vec![
            ("SEAT_LOCK_DURATION", "1"),
            ("SWEEP_ON_REQUESTS_SECONDS", "1"),
        ],
        ..SpinOptions::default()
    }
}

/// Spin has no timer: a PENDING booking read past its lock expires then,
/// with its seats released and its event, as the host's sweeper would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_spin_a_booking_read_past_its_lock_expires() {
    let Some(service) = SpinService::start(short_locks()).await else {
        return;
    };
    let booking = service
        .create_booking("user_123", "showtime_456", &["E3", "E4"])
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    assert_eq!(service.booking(&booking).await["status"], "EXPIRED");
    assert!(service.peers.cinema.live_locks("showtime_456").is_empty());
    let available = service.seats_with_status("showtime_456", "AVAILABLE").await;
    assert!(available.iter().any(|seat| seat == "E3"), "{available:?}");
    assert_eq!(
        service.event_types(&booking).await,
        vec!["booking.created", "booking.expired"]
    );
}

/// Nobody reads the booking: other requests' sweep expires it, and pays
/// back what a crashed attempt might have charged, once per interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_spin_other_requests_sweep_lapsed_bookings() {
    let Some(service) = SpinService::start(short_locks()).await else {
        return;
    };
    let booking = service
        .create_booking("user_123", "showtime_456", &["E5"])
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // Unrelated requests; the listing below does not expire on read.
    let listed = "query { getUserBookings(userId: \"user_123\") { id status } }";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        service.data("{ logicVersion }", json!({})).await;
        let bookings = service.data(listed, json!({})).await;
        let status = bookings["getUserBookings"]
            .as_array()
            .and_then(|all| all.iter().find(|b| b["id"] == booking.as_str()))
            .map(|b| b["status"].clone());
        if status == Some(json!("EXPIRED")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not swept: {bookings}\n{}",
            service.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(service.peers.cinema.live_locks("showtime_456").is_empty());
    assert_eq!(
        service.event_types(&booking).await,
        vec!["booking.created", "booking.expired"]
    );
}

/// Requests that never touch the store skip the sweep's claim check
/// except for a random one in 16, so a stream of them alone still sweeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_spin_requests_that_skip_the_store_still_sweep_now_and_then() {
    let Some(service) = SpinService::start(short_locks()).await else {
        return;
    };
    let booking = service
        .create_booking("user_123", "showtime_456", &["E6"])
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // Read behind Spin's back: any booking query would sweep by itself.
    let mut requests = 0;
    while service.stored_status(&booking) != "EXPIRED" {
        assert!(
            requests < 800,
            "not swept after {requests} requests that skip the store:\n{}",
            service.log()
        );
        for _ in 0..20 {
            service.data("{ logicVersion }", json!({})).await;
        }
        requests += 20;
    }
    assert_eq!(
        service.event_types(&booking).await,
        vec!["booking.created", "booking.expired"]
    );
}
