//! The host on real backends: bookings in MongoDB (nx-27017 here) and
//! events relayed to RabbitMQ, started by scripts/test-services.sh
//! (`TEST_MONGODB_URL`, `TEST_RABBITMQ_URL`). Outside CI these tests skip
//! without the servers; in CI they fail.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use e2e_tests::servers::{Proxy, service_url, unique};
use e2e_tests::{Options, TestService, error_code};
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use mongodb::bson::{Bson, Document, doc};
use serde_json::{Value, json};

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
    [
        ("--mongodb-url", mongodb_url),
        ("--mongodb-database", database),
        ("--mongodb-timeout-ms", "3000"),
        ("--rabbitmq-url", rabbitmq_url),
        ("--rabbitmq-exchange", exchange),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value.to_owned()])
    .collect()
}

/// A queue bound to every event type of the exchange (declared here as the
/// host declares it, so the queue exists before the first event).
struct Subscriber {
    _connection: Connection,
    channel: Channel,
    consumer: Consumer,
    exchange: String,
}

impl Subscriber {
    async fn bind(url: &str, exchange: &str) -> Subscriber {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("consumer connects");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("exchange");
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue");
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.into(),
                "booking.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "e2e".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        Subscriber {
            _connection: connection,
            channel,
            consumer,
            exchange: exchange.to_owned(),
        }
    }

    /// The next event body with its message id, or `None` after `wait`.
    async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        let delivery = tokio::time::timeout(wait, self.consumer.next())
            .await
            .ok()??
            .expect("a delivery");
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
            .expect("a message id");
        Some((
            message_id,
            serde_json::from_slice(&delivery.data).expect("a JSON body"),
        ))
    }

    async fn delete_exchange(self) {
        delete_exchange(&self.channel, &self.exchange).await;
    }
}

/// Deletes `exchange`, and the host's durable alternate exchange and queue
/// for it, which would outlive the run.
async fn delete_exchange(channel: &Channel, exchange: &str) {
    let unrouted = format!("{exchange}.unrouted");
    let _ = channel
        .queue_delete(unrouted.as_str().into(), QueueDeleteOptions::default())
        .await;
    for exchange in [exchange, unrouted.as_str()] {
        let _ = channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await;
    }
}

async fn bookings_collection(url: &str, database: &str) -> mongodb::Collection<Document> {
    mongodb::Client::with_uri_str(url)
        .await
        .expect("a MongoDB client")
        .database(database)
        .collection("bookings")
}

/// The booking's events as the API lists them: (id, type).
async fn listed_events(service: &TestService, booking_id: &str) -> Vec<(String, String)> {
    let data = service
        .data(
            "query($b: String!) { bookingEvents(bookingId: $b) { id type } }",
            json!({"b": booking_id}),
        )
        .await;
    data["bookingEvents"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| {
            (
                event["id"].as_str().unwrap_or_default().to_owned(),
                event["type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn create_and_pay_store_in_mongodb_and_publish_to_rabbitmq_in_order() {
    let Some((mongodb_url, rabbitmq_url)) = servers() else {
        return;
    };
    let (database, exchange) = (unique("e2e"), unique("e2e.booking.events"));
    let mut subscriber = Subscriber::bind(&rabbitmq_url, &exchange).await;
    let service = TestService::start(Options {
        extra_args: backend_args(&mongodb_url, &database, &rabbitmq_url, &exchange),
        ..Options::default()
    })
    .await;

    let booking_id = service
        .create_booking("user_123", "showtime_456", &["C1", "C2"])
        .await;
    let (status, paid) = service.pay(&booking_id, "card_token_xyz").await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["data"]["processPayment"]["success"], true, "{paid}");

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

    let listed = listed_events(&service, &booking_id).await;
    let types: Vec<&str> = listed.iter().map(|(_, kind)| kind.as_str()).collect();
    assert_eq!(types, ["booking.created", "booking.confirmed"]);
    for (id, kind) in &listed {
        let (message_id, body) = subscriber
            .next(Duration::from_secs(10))
            .await
            .expect("the event reaches the queue");
        assert_eq!(&message_id, id);
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["type"], kind.as_str());
        assert_eq!(body["bookingId"], booking_id.as_str());
        assert_eq!(body["seats"], json!(["C1", "C2"]));
        assert_eq!(body["amountCents"], 2400);
    }

    let (status, health) = service.health().await;
    assert_eq!(status, 200, "{health}");
    let events = &health["checks"]["events"];
    assert_eq!(health["checks"]["storage"]["status"], "up", "{health}");
    assert_eq!(events["status"], "up", "{health}");
    assert_eq!(events["broker"]["status"], "up", "{health}");
    assert_eq!(events["broker"]["exchange"], exchange.as_str(), "{health}");
    assert_eq!(events["backlog"], 0, "{health}");

    service.stop().await;
    subscriber.delete_exchange().await;
}

#[tokio::test]
async fn bookings_go_on_while_rabbitmq_is_away_and_every_event_arrives_after() {
    let Some((mongodb_url, rabbitmq_url)) = servers() else {
        return;
    };
    let (database, exchange) = (unique("e2e"), unique("e2e.booking.events"));
    let mut subscriber = Subscriber::bind(&rabbitmq_url, &exchange).await;
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
            let (_, health) = service.health().await;
            backlog_seen = health["checks"]["events"]["backlog"].as_u64().unwrap_or(0);
            assert_eq!(
                health["checks"]["events"]["broker"]["status"], "down",
                "{health}"
            );
            broker.restore();
        }
        let seat = format!("{}{}", ["D", "E"][n / 10], n % 10 + 1);
        let booking_id = service
            .create_booking("user_456", "showtime_456", &[&seat])
            .await;
        let (_, paid) = service.pay(&booking_id, "card_token_xyz").await;
        assert_eq!(paid["data"]["processPayment"]["success"], true, "{paid}");
        booking_ids.push(booking_id);
    }
    assert!(
        backlog_seen > 0,
        "events waited in the outbox during the outage"
    );

    // Every booking's events, as stored, in order.
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for booking_id in &booking_ids {
        let ids = listed_events(&service, booking_id)
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
        let Some((id, body)) = subscriber.next(remaining).await else {
            break;
        };
        received += 1;
        if seen.insert(id.clone()) {
            let booking = body["bookingId"].as_str().unwrap_or_default().to_owned();
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
        extra_args: vec![
            "--mongodb-url".into(),
            proxied_url,
            "--mongodb-database".into(),
            database,
            "--mongodb-timeout-ms".into(),
            "3000".into(),
        ],
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
    assert_eq!(health["checks"]["storage"]["status"], "down", "{health}");

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
    let (status, health) = service.health().await;
    assert_eq!(status, 200, "{health}");
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
    let first = std::sync::Arc::new(TestService::start(options()).await);
    let second = first.second_host(options()).await;
    let hosts = [first.base_url.clone(), second.base_url.clone()];

    // 40 clients, alternating hosts, each wanting two adjacent seats of
    // row C: every request overlaps its neighbours'.
    let requests = (0..40).map(|client| {
        let (first, host) = (first.clone(), hosts[client % 2].clone());
        let start = client % 9 + 1;
        let seats = vec![format!("C{start}"), format!("C{}", start + 1)];
        tokio::spawn(async move {
            first
                .graphql_at(
                    &host,
                    "mutation($n: [String!]!) { createBooking(userId: \"user_789\", showtimeId: \"showtime_456\", seatNumbers: $n) { success booking { id seats } } }",
                    json!({"n": seats}),
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
    let connection = Connection::connect(&rabbitmq_url, ConnectionProperties::default())
        .await
        .expect("connects");
    delete_exchange(
        &connection.create_channel().await.expect("channel"),
        &exchange,
    )
    .await;
}
