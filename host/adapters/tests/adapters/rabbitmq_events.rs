//! The RabbitMQ publisher and the outbox relay against a real broker
//! (`TEST_RABBITMQ_URL`, and its TLS listener `TEST_RABBITMQ_TLS_URL` with
//! the CA `TEST_RABBITMQ_TLS_CA_FILE`, from scripts/test-services.sh), with a consumer on
//! a queue bound to the exchange. Each test uses an exchange of its own
//! (and so an alternate exchange and unrouted queue of its own).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use booking_adapters::Adapter;
use booking_adapters::mongo::events::MongoEventLog;
use booking_adapters::mongo::storage::MongoStorage;
use booking_adapters::outbox::{Delivery, Outbox, Unsent};
use booking_adapters::rabbitmq::{PublishError, RabbitConfig, RabbitPublisher};
use booking_adapters::relay::{self, RelayConfig};
use booking_adapters::sqlite::Database;
use booking_adapters::sqlite::events::SqliteEventLog;
use booking_adapters::sqlite::storage::SqliteStorage;
use booking_adapters::tls::TlsRoots;
use booking_logic::model::{Event, EventKind};
use booking_logic::ports::Storage;
use booking_logic::testing::contract;
use futures::StreamExt;
use test_support::amqp::{self, Received, Subscriber};
use test_support::{Proxy, service_url, unique};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::{event, mongo_database};

fn publisher(url: &str, exchange: &str) -> RabbitPublisher {
    publisher_trusting(url, exchange, TlsRoots::default())
}

fn publisher_trusting(url: &str, exchange: &str, tls: TlsRoots) -> RabbitPublisher {
    RabbitPublisher::new(RabbitConfig {
        url: url.to_owned(),
        exchange: exchange.to_owned(),
        timeout: Duration::from_secs(2),
        confirm_window: 64,
        tls,
    })
}

/// The relay from `outbox` to `publisher` on a task of its own, polling
/// every `idle_poll` and backing off from 50 ms up to `max_backoff`; it
/// stops between rounds once the sender sends `true`.
fn spawn_relay(
    outbox: Arc<dyn Outbox>,
    publisher: Arc<RabbitPublisher>,
    idle_poll: Duration,
    max_backoff: Duration,
) -> (watch::Sender<bool>, JoinHandle<()>) {
    let (stop_relay, stop) = watch::channel(false);
    let config = RelayConfig {
        batch: 50,
        idle_poll,
        min_backoff: Duration::from_millis(50),
        max_backoff,
    };
    let relay = tokio::spawn(relay::run(
        outbox,
        publisher,
        config,
        booking_telemetry::metrics::RelayMetrics::default(),
        stop,
    ));
    (stop_relay, relay)
}

#[tokio::test]
async fn confirmed_events_reach_a_bound_queue_as_json_with_their_id() {
    let Some(url) = service_url("TEST_RABBITMQ_URL") else {
        return;
    };
    let exchange = unique("test.booking.events");
    let publisher = publisher(&url, &exchange);
    assert_eq!(publisher.health().await, Ok(()), "connects and declares");
    let mut subscriber = Subscriber::bind(&url, &exchange, "booking.*").await;

    let events = [
        event("e1", "b1", EventKind::BookingCreated),
        event("e2", "b1", EventKind::BookingPaymentFailed),
    ];
    // The first carries the trace context of the write that stored it.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut unsent = untraced(&events);
    unsent[0].traceparent = Some(traceparent.to_owned());
    let results = publisher.publish(&unsent).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    for (sent, traced) in events.iter().zip([Some(traceparent), None]) {
        let received = subscriber
            .next(Duration::from_secs(5))
            .await
            .expect("the event arrives");
        assert_eq!(received.routing_key, sent.kind.as_str());
        assert_eq!(received.message_id.as_deref(), Some(sent.id.as_str()));
        assert_eq!(received.content_type.as_deref(), Some("application/json"));
        assert_eq!(received.delivery_mode, Some(2), "persistent");
        assert_eq!(received.traceparent.as_deref(), traced);
        assert_eq!(received.body, serde_json::to_value(sent).unwrap());
        assert_eq!(received.body["type"], sent.kind.as_str());
        assert_eq!(received.body["bookingId"], "b1");
    }
    subscriber.delete_exchange().await;
}

#[tokio::test]
async fn an_event_no_queue_is_bound_for_lands_in_the_unrouted_queue() {
    let Some(url) = service_url("TEST_RABBITMQ_URL") else {
        return;
    };
    let exchange = unique("test.booking.events");
    let publisher = publisher(&url, &exchange);
    let results = publisher
        .publish(&[event("e1", "b1", EventKind::BookingCreated).into()])
        .await;
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(publisher.health().await, Ok(()));

    let alternate = publisher.alternate_exchange();
    assert_eq!(
        alternate,
        format!("{exchange}.unrouted"),
        "the name clean-up uses"
    );
    let (_connection, mut unrouted) = amqp::consume(&url, &alternate).await;
    let delivery = tokio::time::timeout(Duration::from_secs(5), unrouted.next())
        .await
        .expect("the event is in the unrouted queue")
        .expect("a delivery")
        .expect("a delivery");
    assert_eq!(
        delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str()),
        Some("e1")
    );
    assert_eq!(delivery.routing_key.as_str(), "booking.created");
    amqp::delete_exchange(&url, &exchange).await;
}

/// On an exchange declared before without the alternate exchange (as an
/// older host or a consumer would), nothing takes an event nobody
/// subscribes to: the broker returns it, the relay leaves it in the
/// outbox, health says so, and once a queue is bound for it it goes out.
#[tokio::test]
async fn a_returned_event_stays_in_the_outbox_and_health_reports_it() {
    let Some(url) = service_url("TEST_RABBITMQ_URL") else {
        return;
    };
    let exchange = unique("test.booking.events");
    // A consumer declares the exchange, plain.
    let mut created = Subscriber::declare_and_bind(&url, &exchange, "booking.created").await;
    let publisher = Arc::new(publisher(&url, &exchange));
    assert_eq!(
        publisher.health().await,
        Ok(()),
        "uses the exchange as it is"
    );

    // Returns are matched to their events even amid routable ones in one
    // window of confirms.
    let mixed = [
        event("m1", "mb1", EventKind::BookingCreated),
        event("m2", "mb2", EventKind::BookingExpired),
        event("m3", "mb3", EventKind::BookingCreated),
    ];
    let results = publisher.publish(&untraced(&mixed)).await;
    assert!(results[0].is_ok(), "{results:?}");
    assert!(
        matches!(&results[1], Err(PublishError::Unroutable(id)) if id == "m2"),
        "{results:?}"
    );
    assert!(results[2].is_ok(), "{results:?}");
    let health = publisher
        .health()
        .await
        .expect_err("health reports the return");
    assert!(health.contains("1 event(s) returned"), "{health}");
    for expected in ["m1", "m3"] {
        let received = created
            .next(Duration::from_secs(5))
            .await
            .expect("routable ones arrive");
        assert_eq!(received.message_id.as_deref(), Some(expected));
    }

    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("outbox.sqlite3")).unwrap();
    let log = Arc::new(SqliteEventLog::with_delivery(db, Delivery::Relayed));
    let storage = SqliteStorage::new(log.as_ref().clone());
    for (id, booking_id, kind) in [
        ("r1", "rb1", EventKind::BookingCreated),
        ("r2", "rb2", EventKind::BookingExpired),
    ] {
        storage
            .insert(
                &contract::booking(booking_id, "user_123", 1),
                &[event(id, booking_id, kind)],
            )
            .await
            .unwrap();
    }
    let (_stop, relay) = spawn_relay(
        log.clone(),
        publisher.clone(),
        Duration::from_millis(100),
        Duration::from_millis(200),
    );
    let received = created
        .next(Duration::from_secs(5))
        .await
        .expect("r1 goes out");
    assert_eq!(received.message_id.as_deref(), Some("r1"));
    // Several relay rounds retry r2; it is returned every time.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        log.backlog().await.unwrap(),
        1,
        "r2 is not marked published"
    );
    assert!(publisher.health().await.is_err());

    let mut expired = Subscriber::bind(&url, &exchange, "booking.expired").await;
    let received = expired
        .next(Duration::from_secs(5))
        .await
        .expect("r2 goes out once routable");
    assert_eq!(received.message_id.as_deref(), Some("r2"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while log.backlog().await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "r2 was not marked published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        publisher.health().await,
        Ok(()),
        "nothing is held back any more"
    );
    relay.abort();
    expired.delete_exchange().await;
}

#[tokio::test]
async fn five_hundred_events_are_confirmed_in_pipelined_windows() {
    let Some(url) = service_url("TEST_RABBITMQ_URL") else {
        return;
    };
    let exchange = unique("test.booking.events");
    let publisher = publisher(&url, &exchange);
    assert_eq!(publisher.health().await, Ok(()));
    let mut subscriber = Subscriber::bind(&url, &exchange, "booking.*").await;
    // 500 = 7 full windows of 64 and a partial one.
    let events: Vec<Event> = (0..500)
        .map(|n| {
            event(
                &format!("p{n}"),
                &format!("pb{n}"),
                EventKind::BookingCreated,
            )
        })
        .collect();
    let results = publisher.publish(&untraced(&events)).await;
    assert_eq!(results.len(), 500);
    let failed: Vec<_> = results.iter().filter(|result| result.is_err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    for sent in &events {
        let received = subscriber
            .next(Duration::from_secs(10))
            .await
            .expect("every confirmed event arrives");
        assert_eq!(
            received.message_id.as_deref(),
            Some(sent.id.as_str()),
            "in order"
        );
    }
    subscriber.delete_exchange().await;
}

#[tokio::test]
async fn an_unreachable_broker_fails_every_event_of_the_batch() {
    let Some(url) = service_url("TEST_RABBITMQ_URL") else {
        return;
    };
    let (proxy, dead) = Proxy::in_front_of(&url).await;
    proxy.cut();
    let publisher = publisher(&dead, &unique("test.booking.events"));
    let results = publisher
        .publish(&untraced(&[
            event("e1", "b1", EventKind::BookingCreated),
            event("e2", "b2", EventKind::BookingCreated),
        ]))
        .await;
    assert!(results.iter().all(Result::is_err), "{results:?}");
    assert!(publisher.health().await.is_err());
}

#[tokio::test]
async fn events_published_over_amqps_trusting_the_ca_are_consumed() {
    let (Some(url), Some(tls_url), Some(ca_file)) = (
        service_url("TEST_RABBITMQ_URL"),
        service_url("TEST_RABBITMQ_TLS_URL"),
        service_url("TEST_RABBITMQ_TLS_CA_FILE"),
    ) else {
        return;
    };
    assert!(tls_url.starts_with("amqps://"), "{tls_url}");
    let exchange = unique("test.booking.events");
    let roots = TlsRoots::with_ca_file(std::path::Path::new(&ca_file)).expect("the test CA");
    let over_tls = publisher_trusting(&tls_url, &exchange, roots);
    assert_eq!(over_tls.health().await, Ok(()), "connects over TLS");
    // The same broker, read over its plain listener.
    let mut subscriber = Subscriber::bind(&url, &exchange, "booking.*").await;
    let sent = event("e_tls", "b_tls", EventKind::BookingConfirmed);
    let results = over_tls
        .publish(&untraced(std::slice::from_ref(&sent)))
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let received = subscriber
        .next(Duration::from_secs(5))
        .await
        .expect("the event arrives");
    assert_eq!(received.message_id.as_deref(), Some("e_tls"));
    assert_eq!(received.body, serde_json::to_value(&sent).unwrap());
    subscriber.delete_exchange().await;

    // Without the CA the broker's certificate is not trusted: a broker
    // error at once, not a hang.
    let untrusted = publisher(&tls_url, &exchange);
    let started = Instant::now();
    let results = untrusted
        .publish(&untraced(std::slice::from_ref(&sent)))
        .await;
    assert!(
        matches!(results.as_slice(), [Err(PublishError::Broker(_))]),
        "{results:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// Commits bookings' moves with their events through `storage` into
/// `log`, cuts the broker off in the middle, and checks that once it is
/// back the consumer has every event, in order per booking, and nothing
/// was lost.
async fn relay_drains_through_an_outage<L>(url: &str, storage: Arc<dyn Storage>, log: Arc<L>)
where
    L: Outbox + 'static,
{
    let exchange = unique("test.booking.events");
    let (proxy, proxied) = Proxy::in_front_of(url).await;
    let publisher = Arc::new(publisher(&proxied, &exchange));
    assert_eq!(publisher.health().await, Ok(()));
    let mut subscriber = Subscriber::bind(url, &exchange, "booking.*").await;
    let (stop_relay, relay) = spawn_relay(
        log.clone(),
        publisher.clone(),
        Duration::from_millis(200),
        Duration::from_millis(500),
    );

    let kinds = [
        EventKind::BookingCreated,
        EventKind::BookingConfirmed,
        EventKind::BookingRefunded,
    ];
    let mut published: Vec<Event> = Vec::new();
    let mut publish_round = async |round: &str| {
        for (moves, kind) in kinds.into_iter().enumerate() {
            for booking in 0..10 {
                let booking_id = format!("{round}-b{booking}");
                let event = event(
                    &format!("{round}-{booking}-{}", kind.as_str()),
                    &booking_id,
                    kind,
                );
                let record = contract::booking(&booking_id, "user_123", 1);
                let events = std::slice::from_ref(&event);
                if moves == 0 {
                    storage.insert(&record, events).await
                } else {
                    storage
                        .update_if_version(&record, moves as u64, events)
                        .await
                        .map(drop)
                }
                .expect("the outbox takes it");
                published.push(event);
            }
        }
    };

    publish_round("before").await;
    let mut received: Vec<Received> = Vec::new();
    while received.len() < 30 {
        received.push(
            subscriber
                .next(Duration::from_secs(10))
                .await
                .expect("events before the outage arrive"),
        );
    }

    proxy.cut();
    publish_round("during").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let backlog = log.backlog().await.unwrap();
    assert!(backlog > 0, "nothing can be sent while the broker is away");
    assert!(publisher.health().await.is_err());

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.backlog().await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "the backlog did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Everything confirmed is in the queue; drain it.
    while let Some(message) = subscriber.next(Duration::from_millis(500)).await {
        received.push(message);
    }
    stop_relay.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), relay)
        .await
        .expect("the relay stops between rounds when told to")
        .unwrap();

    let mut first_seen: Vec<String> = Vec::new();
    let mut unique_ids = HashSet::new();
    for message in &received {
        let id = message.message_id.clone().expect("a message id");
        assert_eq!(message.body["id"], id.as_str());
        if unique_ids.insert(id.clone()) {
            first_seen.push(id);
        }
    }
    let duplicates = received.len() - unique_ids.len();
    let lost: Vec<_> = published
        .iter()
        .filter(|event| !unique_ids.contains(&event.id))
        .collect();
    eprintln!(
        "outage run: {} published, {} received, {duplicates} duplicates dropped, {} lost (backlog at the cut: {backlog})",
        published.len(),
        received.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost: {lost:?}");

    // In order per booking, by first delivery.
    let position: HashMap<&str, usize> = first_seen
        .iter()
        .enumerate()
        .map(|(n, id)| (id.as_str(), n))
        .collect();
    let mut by_booking: HashMap<&str, Vec<&Event>> = HashMap::new();
    for event in &published {
        by_booking.entry(&event.booking_id).or_default().push(event);
    }
    for (booking, events) in by_booking {
        let order: Vec<usize> = events.iter().map(|e| position[e.id.as_str()]).collect();
        assert!(
            order.windows(2).all(|pair| pair[0] < pair[1]),
            "booking {booking} out of order: {order:?}"
        );
    }
    subscriber.delete_exchange().await;
}

#[tokio::test]
async fn the_relay_drains_the_sqlite_outbox_through_a_broker_outage() {
    let Some(url) = service_url("TEST_RABBITMQ_URL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("outbox.sqlite3")).unwrap();
    let log = SqliteEventLog::with_delivery(db, Delivery::Relayed);
    let storage = Arc::new(SqliteStorage::new(log.clone()));
    relay_drains_through_an_outage(&url, storage, Arc::new(log)).await;
}

#[tokio::test]
async fn the_relay_drains_the_mongodb_outbox_through_a_broker_outage() {
    let (Some(url), Some(db)) = (service_url("TEST_RABBITMQ_URL"), mongo_database().await) else {
        return;
    };
    let log = MongoEventLog::open(db, Delivery::Relayed).await.unwrap();
    let storage = Arc::new(MongoStorage::open(log.clone()).await.unwrap());
    relay_drains_through_an_outage(&url, storage, Arc::new(log)).await;
}

/// Events to publish, without trace context.
fn untraced(events: &[Event]) -> Vec<Unsent> {
    events.iter().cloned().map(Unsent::from).collect()
}
