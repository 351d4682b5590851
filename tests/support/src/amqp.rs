//! A consumer of what is published to a RabbitMQ exchange, on an
//! exclusive queue of its own, and the clean-up of an exchange the host
//! (or `RabbitPublisher`) declared: the exchange, its alternate exchange
//! `<exchange>.unrouted` and that one's durable queue, which outlive the
//! test's connections.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};

/// The messages routed to a queue bound to one exchange.
pub struct Subscriber {
    _connection: Connection,
    channel: Channel,
    consumer: Consumer,
    exchange: String,
}

/// One message as a consumer sees it.
#[derive(Debug)]
pub struct Received {
    pub routing_key: String,
    pub message_id: Option<String>,
    pub content_type: Option<String>,
    pub delivery_mode: Option<u8>,
    /// The `traceparent` header (W3C trace context), if any.
    pub traceparent: Option<String>,
    pub body: serde_json::Value,
    /// The body as it came, for byte-for-byte comparisons.
    pub bytes: Vec<u8>,
}

impl Received {
    /// The message id, which every event carries.
    pub fn id(&self) -> String {
        self.message_id.clone().expect("a message id")
    }
}

impl Subscriber {
    /// Subscribes to the routing keys matching `pattern` on `exchange`,
    /// which must exist (a publisher declared it).
    pub async fn bind(url: &str, exchange: &str, pattern: &str) -> Subscriber {
        let (connection, channel) = open(url).await;
        Subscriber::on(connection, channel, exchange, pattern).await
    }

    /// Declares `exchange` first (a durable topic exchange, as the host
    /// declares it, but without an alternate exchange), so the queue
    /// exists before the host publishes its first event.
    pub async fn declare_and_bind(url: &str, exchange: &str, pattern: &str) -> Subscriber {
        let (connection, channel) = open(url).await;
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
        Subscriber::on(connection, channel, exchange, pattern).await
    }

    async fn on(
        connection: Connection,
        channel: Channel,
        exchange: &str,
        pattern: &str,
    ) -> Subscriber {
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
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        let consumer = consume_on(&channel, queue.name().as_str()).await;
        Subscriber {
            _connection: connection,
            channel,
            consumer,
            exchange: exchange.to_owned(),
        }
    }

    /// The next message, or `None` after `wait` without one.
    pub async fn next(&mut self, wait: Duration) -> Option<Received> {
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
            traceparent: properties
                .headers()
                .as_ref()
                .and_then(|headers| headers.inner().get("traceparent"))
                .and_then(|value| match value {
                    lapin::types::AMQPValue::LongString(text) => Some(text.to_string()),
                    _ => None,
                }),
            body: serde_json::from_slice(&delivery.data).expect("a JSON body"),
            bytes: delivery.data,
        })
    }

    /// Deletes the exchange and its alternate exchange and queue.
    pub async fn delete_exchange(self) {
        delete_on(&self.channel, &self.exchange).await;
    }
}

/// Consumes `queue`, an existing one (say an alternate exchange's); keep
/// the connection as long as the consumer.
pub async fn consume(url: &str, queue: &str) -> (Connection, Consumer) {
    let (connection, channel) = open(url).await;
    let consumer = consume_on(&channel, queue).await;
    (connection, consumer)
}

/// Deletes `exchange` and its alternate exchange and queue, over a
/// connection of its own.
pub async fn delete_exchange(url: &str, exchange: &str) {
    let (_connection, channel) = open(url).await;
    delete_on(&channel, exchange).await;
}

async fn open(url: &str) -> (Connection, Channel) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("the consumer connects");
    let channel = connection.create_channel().await.expect("channel");
    (connection, channel)
}

async fn consume_on(channel: &Channel, queue: &str) -> Consumer {
    channel
        .basic_consume(
            queue.into(),
            "test".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume")
}

async fn delete_on(channel: &Channel, exchange: &str) {
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
