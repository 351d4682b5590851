//! The RabbitMQ publisher and the outbox relay against a real broker
//! (`TEST_RABBITMQ_URL`, from scripts/test-services.sh), with a consumer on
//! a queue bound to the exchange. Each test uses an exchange of its own.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use booking_adapters::events::SqliteEventLog;
use booking_adapters::mongo::{Durability, MongoConfig, MongoDatabase};
use booking_adapters::mongo_events::MongoEventLog;
use booking_adapters::mongo_storage::MongoStorage;
use booking_adapters::outbox::{Delivery, Outbox};
use booking_adapters::rabbitmq::{RabbitConfig, RabbitPublisher};
use booking_adapters::relay::{self, RelayConfig};
use booking_adapters::sqlite::Database;
use booking_adapters::storage::SqliteStorage;
use booking_logic::model::{Event, EventKind};
use booking_logic::ports::Storage;
use booking_logic::testing::contract;
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use support::{Proxy, event, service_url, unique};

fn publisher(url: &str, exchange: &str) -> RabbitPublisher {
    RabbitPublisher::new(RabbitConfig {
        url: url.to_owned(),
        exchange: exchange.to_owned(),
        timeout: Duration::from_secs(2),
    })
}

/// A consumer of everything published to `exchange`, on its own
/// exclusive queue. The exchange must exist (the publisher declares it).
struct Subscriber {
    _connection: Connection,
    channel: Channel,
    consumer: Consumer,
    exchange: String,
}

/// One message as a consumer sees it.
struct Received {
    routing_key: String,
    message_id: Option<String>,
    content_type: Option<String>,
    delivery_mode: Option<u8>,
    body: serde_json::Value,
}

impl Subscriber {
    async fn bind(url: &str, exchange: &str) -> Subscriber {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("consumer connects");
        let channel = connection.create_channel().await.expect("channel");
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
                "booking.*".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "test".into(),
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

    /// The next message, or `None` after `wait` without one.
    async fn next(&mut self, wait: Duration) -> Option<Received> {
        let delivery = tokio::time::timeout(wait, self.consumer.next())
            .await
            .ok()??
            .expect("a delivery");
        let properties = &delivery.properties;
        Some(Received {
            routing_key: delivery.routing_key.to_string(),
            message_id: properties.message_id().as_ref().map(|id| id.to_string()),
            content_type: properties.content_type().as_ref().map(|t| t.to_string()),
            delivery_mode: *properties.delivery_mode(),
            body: serde_json::from_slice(&delivery.data).expect("a JSON body"),
        })
    }

    async fn delete_exchange(self) {
        let _ = self
            .channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
    }
}

#[tokio::test]
async fn confirmed_events_reach_a_bound_queue_as_json_with_their_id() {
    let Some(url) = service_url("TEST_RABBITMQ_URL") else {
        return;
    };
    let exchange = unique("test.booking.events");
    let publisher = publisher(&url, &exchange);
    assert_eq!(publisher.health().await, Ok(()), "connects and declares");
    let mut subscriber = Subscriber::bind(&url, &exchange).await;

    let events = [
        event("e1", "b1", EventKind::BookingCreated),
        event("e2", "b1", EventKind::BookingPaymentFailed),
    ];
    let results = publisher.publish(&events).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    for sent in &events {
        let received = subscriber
            .next(Duration::from_secs(5))
            .await
            .expect("the event arrives");
        assert_eq!(received.routing_key, sent.kind.as_str());
        assert_eq!(received.message_id.as_deref(), Some(sent.id.as_str()));
        assert_eq!(received.content_type.as_deref(), Some("application/json"));
        assert_eq!(received.delivery_mode, Some(2), "persistent");
        assert_eq!(received.body, serde_json::to_value(sent).unwrap());
        assert_eq!(received.body["type"], sent.kind.as_str());
        assert_eq!(received.body["bookingId"], "b1");
    }
    subscriber.delete_exchange().await;
}

#[tokio::test]
async fn events_nobody_subscribes_to_do_not_block_the_rest() {
    let Some(url) = service_url("TEST_RABBITMQ_URL") else {
        return;
    };
    let exchange = unique("test.booking.events");
    let publisher = publisher(&url, &exchange);
    let results = publisher
        .publish(&[event("e1", "b1", EventKind::BookingCreated)])
        .await;
    assert!(results[0].is_ok(), "{results:?}");
    let subscriber = Subscriber::bind(&url, &exchange).await;
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
        .publish(&[
            event("e1", "b1", EventKind::BookingCreated),
            event("e2", "b2", EventKind::BookingCreated),
        ])
        .await;
    assert!(results.iter().all(Result::is_err), "{results:?}");
    assert!(publisher.health().await.is_err());
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
    let mut subscriber = Subscriber::bind(url, &exchange).await;
    let relay = tokio::spawn(relay::run(
        log.clone(),
        publisher.clone(),
        RelayConfig {
            batch: 50,
            idle_poll: Duration::from_millis(200),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
        },
    ));

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
    relay.abort();

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
    let (Some(url), Some(mongo)) = (
        service_url("TEST_RABBITMQ_URL"),
        service_url("TEST_MONGODB_URL"),
    ) else {
        return;
    };
    let db = MongoDatabase::connect(&MongoConfig {
        url: mongo,
        database: Some(unique("test")),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        durability: Durability::default(),
    })
    .await
    .unwrap();
    let log = MongoEventLog::open(db, Delivery::Relayed).await.unwrap();
    let storage = Arc::new(MongoStorage::open(log.clone()).await.unwrap());
    relay_drains_through_an_outage(&url, storage, Arc::new(log)).await;
}
