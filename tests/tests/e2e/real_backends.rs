//! The host on real backends: bookings in MongoDB (nx-27017 here) and
//! events relayed to RabbitMQ, started by scripts/test-services.sh
//! (`TEST_MONGODB_URL`, `TEST_RABBITMQ_URL`), and the host as a process
//! of its own SIGKILLed under load. Outside CI these tests skip without
//! the servers; in CI they fail.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use booking_peers::PaymentBehaviour;
use e2e_tests::process::HostProcess;

use crate::audit;
use e2e_tests::{Options, TestService, error_code};
use mongodb::bson::{Bson, Document, doc};
use serde_json::json;
use test_support::amqp::{self, Subscriber};
use test_support::{Proxy, service_url, unique};

/// Both servers' URLs, or `None` to skip.
fn servers() -> Option<(String, String)> {
    Some((
        service_url("TEST_MONGODB_URL")?,
        service_url("TEST_RABBITMQ_URL")?,
    ))
}

fn backend_args(
    mongodb_url: &str,
    database: &str,
    rabbitmq_url: &str,
    exchange: &str,
) -> Vec<String> {
    let mut args = mongodb_args(mongodb_url, database);
    args.extend(e2e_tests::args(&[
        "--rabbitmq-url",
        rabbitmq_url,
        "--rabbitmq-exchange",
        exchange,
    ]));
    args
}

fn mongodb_args(mongodb_url: &str, database: &str) -> Vec<String> {
    e2e_tests::args(&[
        "--mongodb-url",
        mongodb_url,
        "--mongodb-database",
        database,
        "--mongodb-timeout-ms",
        "3000",
    ])
}

/// A consumer of every event type on `exchange`, declared here as the host
/// declares it, so the queue exists before the first event.
async fn subscribe(url: &str, exchange: &str) -> Subscriber {
    Subscriber::declare_and_bind(url, exchange, "booking.#").await
}

async fn bookings_collection(url: &str, database: &str) -> mongodb::Collection<Document> {
    mongodb::Client::with_uri_str(url)
        .await
        .expect("a MongoDB client")
        .database(database)
        .collection("bookings")
}

#[tokio::test]
async fn create_and_pay_store_in_mongodb_and_publish_to_rabbitmq_in_order() {
    let Some((mongodb_url, rabbitmq_url)) = servers() else {
        return;
    };
    let (database, exchange) = (unique("e2e"), unique("e2e.booking.events"));
    let mut subscriber = subscribe(&rabbitmq_url, &exchange).await;
    let service = TestService::start(Options {
        extra_args: backend_args(&mongodb_url, &database, &rabbitmq_url, &exchange),
        ..Options::default()
    })
    .await;

    let booking_id = service
        .paid_booking("user_123", "showtime_456", &["C1", "C2"])
        .await;

    let stored = bookings_collection(&mongodb_url, &database)
        .await
        .find_one(doc! { "_id": &booking_id })
        .await
        .expect("MongoDB answers")
        .expect("the booking is in MongoDB");
    // The test server may hand back small Int64s as Int32.
    let integer = |key: &str| match stored.get(key) {
        Some(Bson::Int64(value)) => *value,
        Some(Bson::Int32(value)) => i64::from(*value),
        other => panic!("{key} is {other:?}"),
    };
    assert_eq!(stored.get_str("status"), Ok("CONFIRMED"), "{stored}");
    assert_eq!(stored.get_str("userId"), Ok("user_123"));
    assert!(integer("version") >= 2, "{stored}");
    assert_eq!(integer("totalCents"), 2400);
    assert!(stored.get_str("paymentTransactionId").is_ok(), "{stored}");

    let listed = service.events(&booking_id).await;
    let types: Vec<&str> = listed.iter().map(|(_, kind)| kind.as_str()).collect();
    assert_eq!(types, ["booking.created", "booking.confirmed"]);
    for (id, kind) in &listed {
        let received = subscriber
            .next(Duration::from_secs(10))
            .await
            .expect("the event reaches the queue");
        let body = received.body;
        assert_eq!(received.message_id.as_ref(), Some(id));
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["type"], kind.as_str());
        assert_eq!(body["bookingId"], booking_id.as_str());
        assert_eq!(body["seats"], json!(["C1", "C2"]));
        assert_eq!(body["amountCents"], 2400);
    }

    // The relay marks an event sent once the broker confirms it, which
    // may come after the consumer already holds it: the backlog drains
    // shortly after, not necessarily before this line.
    let deadline = Instant::now() + Duration::from_secs(10);
    let health = loop {
        let (status, health) = service.admin_health().await;
        assert_eq!(status, 200, "{health}");
        if health["checks"]["events"]["backlog"] == 0 || Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let events = &health["checks"]["events"];
    assert_eq!(health["checks"]["storage"]["status"], "up", "{health}");
    assert_eq!(events["status"], "up", "{health}");
    assert_eq!(events["broker"]["status"], "up", "{health}");
    assert_eq!(events["broker"]["exchange"], exchange.as_str(), "{health}");
    assert_eq!(events["backlog"], 0, "{health}");

    service.stop().await;
    subscriber.delete_exchange().await;
}

/// The host over TLS end to end, trusting the test CA through
/// `TLS_CA_FILE` alone: the reference Cinema (gRPC), User and Payment
/// services serve https only, RabbitMQ is reached over amqps. The seed
/// workflow runs, the charge lands at the TLS Payment service and the
/// events arrive (read back on the broker's plain listener).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_books_over_tls_to_every_peer_and_the_broker() {
    let (Some(amqps_url), Some(ca_file), Some(rabbitmq_url)) = (
        service_url("TEST_RABBITMQ_TLS_URL"),
        service_url("TEST_RABBITMQ_TLS_CA_FILE"),
        service_url("TEST_RABBITMQ_URL"),
    ) else {
        return;
    };
    // scripts/test-services.sh made the CA and a 127.0.0.1 certificate.
    let certificates = std::path::Path::new(&ca_file)
        .parent()
        .expect("a directory");
    let read = |name: &str| std::fs::read_to_string(certificates.join(name)).expect(name);
    let exchange = unique("e2e.tls.events");
    let mut subscriber = subscribe(&rabbitmq_url, &exchange).await;
    let service = TestService::start(Options {
        peers_tls: Some(booking_peers::PeersTls {
            cert_pem: read("server.pem"),
            key_pem: read("server.key"),
        }),
        extra_args: e2e_tests::args(&[
            "--tls-ca-file",
            &ca_file,
            "--rabbitmq-url",
            &amqps_url,
            "--rabbitmq-exchange",
            &exchange,
        ]),
        ..Options::default()
    })
    .await;
    for url in [
        &service.peers.cinema_url,
        &service.peers.users_url,
        &service.peers.payments_url,
    ] {
        assert!(url.starts_with("https://"), "{url}");
    }

    let booking_id = service
        .paid_booking("user_123", "showtime_456", &["D4"])
        .await;
    assert_eq!(service.peers.payments.charges_for_key(&booking_id).len(), 1);

    for kind in ["booking.created", "booking.confirmed"] {
        let body = subscriber
            .next(Duration::from_secs(10))
            .await
            .expect("the event crossed amqps")
            .body;
        assert_eq!(body["type"], kind, "{body}");
        assert_eq!(body["bookingId"], booking_id.as_str(), "{body}");
    }
    let (_, health) = service.admin_health().await;
    for dependency in ["cinema", "users", "payments"] {
        assert_eq!(
            health["checks"][dependency]["status"], "up",
            "{dependency}: {health}"
        );
    }
    assert_eq!(
        health["checks"]["events"]["broker"]["status"], "up",
        "{health}"
    );

    service.stop().await;
    subscriber.delete_exchange().await;
}

#[tokio::test]
async fn bookings_go_on_while_rabbitmq_is_away_and_every_event_arrives_after() {
    let Some((mongodb_url, rabbitmq_url)) = servers() else {
        return;
    };
    let (database, exchange) = (unique("e2e"), unique("e2e.booking.events"));
    let mut subscriber = subscribe(&rabbitmq_url, &exchange).await;
    let (broker, proxied) = Proxy::in_front_of(&rabbitmq_url).await;
    let service = TestService::start(Options {
        extra_args: backend_args(&mongodb_url, &database, &proxied, &exchange),
        ..Options::default()
    })
    .await;

    let bookings = 12;
    let mut booking_ids = Vec::new();
    let mut backlog_seen = 0;
    for n in 0..bookings {
        if n == 4 {
            broker.cut();
        }
        if n == 8 {
            let (_, health) = service.admin_health().await;
            backlog_seen = health["checks"]["events"]["backlog"].as_u64().unwrap_or(0);
            assert_eq!(
                health["checks"]["events"]["broker"]["status"], "down",
                "{health}"
            );
            broker.restore();
        }
        let seat = format!("{}{}", ["D", "E"][n / 10], n % 10 + 1);
        let booking_id = service
            .paid_booking("user_456", "showtime_456", &[&seat])
            .await;
        booking_ids.push(booking_id);
    }
    assert!(
        backlog_seen > 0,
        "events waited in the outbox during the outage"
    );

    // Every booking's events, as stored, in order.
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for booking_id in &booking_ids {
        let ids = service
            .events(booking_id)
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        expected.insert(booking_id.clone(), ids);
    }
    let published: usize = expected.values().map(Vec::len).sum();

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = 0;
    let mut seen = HashSet::new();
    let mut arrived: HashMap<String, Vec<String>> = HashMap::new();
    while seen.len() < published {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Some(message) = subscriber.next(remaining).await else {
            break;
        };
        received += 1;
        let id = message.id();
        if seen.insert(id.clone()) {
            let booking = message.body["bookingId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            arrived.entry(booking).or_default().push(id);
        }
    }
    let duplicates = received - seen.len();
    let lost = published - seen.len();
    eprintln!(
        "RabbitMQ outage during {bookings} bookings: {published} events published, {received} received, \
         {duplicates} duplicates dropped, {lost} lost (outbox backlog during the outage: {backlog_seen})"
    );
    assert_eq!(lost, 0, "every event arrives");
    for (booking_id, ids) in &expected {
        assert_eq!(
            arrived.get(booking_id),
            Some(ids),
            "booking {booking_id}: in order"
        );
    }

    service.stop().await;
    subscriber.delete_exchange().await;
}

#[tokio::test]
async fn a_dead_database_is_dependency_unavailable_and_the_host_recovers_by_itself() {
    let Some(mongodb_url) = service_url("TEST_MONGODB_URL") else {
        return;
    };
    let (database, proxied) = (unique("e2e"), Proxy::in_front_of(&mongodb_url).await);
    let (db_link, proxied_url) = proxied;
    let service = TestService::start(Options {
        extra_args: mongodb_args(&proxied_url, &database),
        ..Options::default()
    })
    .await;
    let booking_id = service
        .create_booking("user_789", "showtime_456", &["D5"])
        .await;

    db_link.cut();
    let query = "query($b: String!) { getBooking(bookingId: $b) { id status } }";
    let (_, body) = service.graphql(query, json!({"b": booking_id})).await;
    assert_eq!(error_code(&body), Some("DEPENDENCY_UNAVAILABLE"), "{body}");
    let (status, health) = service.health().await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(
        health,
        json!({"status": "degraded", "referencePeers": []}),
        "the public report names no dependency and no error"
    );
    let (status, health) = service.admin_health().await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["checks"]["storage"]["status"], "down", "{health}");
    assert!(health["checks"]["storage"]["error"].is_string(), "{health}");
    // Out of the balancer, but not restarted: the process still serves.
    assert_eq!(
        service.health_at("/health/ready").await,
        (503, json!({"status": "not ready"}))
    );
    assert_eq!(
        service.health_at("/health/live").await,
        (200, json!({"status": "live"}))
    );

    db_link.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = service.graphql(query, json!({"b": booking_id})).await;
        if body["data"]["getBooking"]["status"] == "PENDING" {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, health) = service.admin_health().await;
    assert_eq!(status, 200, "{health}");
    // Ready again once its report (at most a second old) catches up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while service.health_at("/health/ready").await.0 != 200 {
        assert!(Instant::now() < deadline, "not ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_on_one_database_never_oversell_and_expire_each_booking_once() {
    let Some((mongodb_url, rabbitmq_url)) = servers() else {
        return;
    };
    let (database, exchange) = (unique("two_hosts"), unique("two_hosts"));
    let options = || Options {
        seat_lock_seconds: 1,
        sweep_interval_seconds: 1,
        extra_args: backend_args(&mongodb_url, &database, &rabbitmq_url, &exchange),
        ..Options::default()
    };
    let first = Arc::new(TestService::start(options()).await);
    let second = first.second_host(options()).await;
    let hosts = [first.base_url.clone(), second.base_url.clone()];

    // 40 clients (one user each: the per-user hold limit is not what this
    // races), alternating hosts, each wanting two adjacent seats of row C:
    // every request overlaps its neighbours'.
    let requests = (0..40).map(|client| {
        let (first, host) = (first.clone(), hosts[client % 2].clone());
        let start = client % 9 + 1;
        let seats = vec![format!("C{start}"), format!("C{}", start + 1)];
        tokio::spawn(async move {
            first
                .graphql_at(
                    &host,
                    "mutation($u: String!, $n: [String!]!) { createBooking(userId: $u, showtimeId: \"showtime_456\", seatNumbers: $n) { success booking { id seats } } }",
                    json!({"u": format!("loadtest_user_{}", client + 1), "n": seats}),
                )
                .await
        })
    });
    let mut won = Vec::new();
    let mut bookings = Vec::new();
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert!(status < 500, "{body}");
        let created = &body["data"]["createBooking"];
        if created["success"] == true {
            bookings.push(created["booking"]["id"].as_str().unwrap().to_owned());
            won.extend(
                created["booking"]["seats"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned()),
            );
        } else {
            assert_eq!(error_code(&body), Some("SEATS_UNAVAILABLE"), "{body}");
        }
    }
    let distinct: HashSet<_> = won.iter().collect();
    assert_eq!(
        distinct.len(),
        won.len(),
        "a seat was sold twice across hosts: {won:?}"
    );
    assert!(!bookings.is_empty());

    // Both hosts sweep every second; each booking expires exactly once.
    for booking in &bookings {
        let expired = first
            .wait_for_status(booking, "EXPIRED", Duration::from_secs(15))
            .await;
        assert_eq!(expired["status"], "EXPIRED", "{expired}");
    }
    for booking in &bookings {
        let kinds = first.event_types(booking).await;
        assert_eq!(
            kinds,
            vec!["booking.created", "booking.expired"],
            "{booking}"
        );
    }
    second.stop().await;
    amqp::delete_exchange(&rabbitmq_url, &exchange).await;
}

/// The host SIGKILLed at random moments (≥ 10 times) under concurrent
/// create → pay load and restarted on the same data; then everything is
/// left to settle and audited against the peers' own records and a
/// RabbitMQ consumer bound before the run. Every figure must be 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_when_the_host_is_killed_under_load() {
    let Some(rabbitmq_url) = service_url("TEST_RABBITMQ_URL") else {
        return;
    };
    const KILLS: usize = 12;
    const CUSTOMERS: u64 = 8;
    const LOCK_SECONDS: u64 = 4;
    let exchange = unique("crash");
    let mut subscriber = subscribe(&rabbitmq_url, &exchange).await;
    let peers = e2e_tests::reference_peers(PaymentBehaviour::default()).await;
    let data_dir = tempfile::tempdir().expect("data dir");
    let lock = LOCK_SECONDS.to_string();
    let args = [
        "--rabbitmq-url",
        rabbitmq_url.as_str(),
        "--rabbitmq-exchange",
        exchange.as_str(),
        "--seat-lock-duration",
        lock.as_str(),
        "--sweep-interval",
        "1",
        "--auth-mode",
        "disabled",
    ];
    let binary = env!("CARGO_BIN_EXE_e2e-host");
    let mut host = HostProcess::start(binary, &peers, data_dir.path(), &args).await;
    let customers = audit::Customers::start(&host.base_url, CUSTOMERS);

    let mut pause = customers.seed;
    for _ in 0..KILLS {
        pause = pause
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(300 + (pause >> 33) % 1200)).await;
        host.signal("KILL");
        host.wait(Duration::from_secs(10))
            .await
            .expect("a killed host exits");
        host = HostProcess::start(binary, &peers, data_dir.path(), &args).await;
        customers.redirect(&host.base_url);
    }
    let users = customers.stop().await;

    let audit = audit::settle_and_audit(&host.base_url, &users, &peers, &mut subscriber).await;
    println!("crash test: {KILLS} SIGKILLs, {audit}");
    audit.assert_nothing_lost();
    subscriber.delete_exchange().await;
}
