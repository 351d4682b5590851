//! Publishes events to RabbitMQ: a durable topic exchange, routing key =
//! event type (`booking.created`, …), persistent JSON messages whose
//! `message_id` is the event id (consumers de-duplicate on it), publisher
//! confirms. Only the relay calls it; the booking workflow never waits on
//! the broker.
//!
//! One connection with one confirm-mode channel, opened on first use and
//! dropped on any failure, so the next call reconnects: the broker may come
//! and go while the host runs.

use std::time::Duration;

use booking_logic::model::Event;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    PublisherConfirm,
};
use tokio::sync::Mutex;

/// The exchange used when none is configured.
pub const DEFAULT_EXCHANGE: &str = "booking.events";

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

#[derive(Debug, Clone)]
pub struct RabbitConfig {
    /// `amqp://user:password@host:port/vhost`.
    pub url: String,
    pub exchange: String,
    /// Deadline for connecting and for each batch's confirms.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker: {0}")]
    Broker(String),
    #[error("broker: no confirm within {0:?}")]
    NoConfirm(Duration),
    #[error("broker refused event {0} (nack)")]
    Nacked(String),
    #[error("event {0} cannot be encoded: {1}")]
    Encoding(String, String),
}

struct Link {
    /// Owns the socket; the channel dies with it.
    _connection: Connection,
    channel: Channel,
}

pub struct RabbitPublisher {
    config: RabbitConfig,
    link: Mutex<Option<Link>>,
}

impl RabbitPublisher {
    /// Does not connect: the broker may be down at start-up.
    pub fn new(config: RabbitConfig) -> RabbitPublisher {
        RabbitPublisher {
            config,
            link: Mutex::new(None),
        }
    }

    pub fn exchange(&self) -> &str {
        &self.config.exchange
    }

    /// Up when a connection is open or can be opened now.
    pub async fn health(&self) -> Result<(), String> {
        let mut link = self.link.lock().await;
        self.connected(&mut link)
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    }

    /// Publishes the events in order and waits for the broker's confirms.
    /// One result per event: `Ok` means the broker has the message (or had
    /// no queue bound for it and logged that). Any failure drops the
    /// connection, so the next call starts afresh.
    pub async fn publish(&self, events: &[Event]) -> Vec<Result<(), PublishError>> {
        let mut link = self.link.lock().await;
        let channel = match self.connected(&mut link).await {
            Ok(channel) => channel,
            Err(error) => {
                let message = error.to_string();
                return events
                    .iter()
                    .map(|_| Err(PublishError::Broker(message.clone())))
                    .collect();
            }
        };
        let mut pending = Vec::with_capacity(events.len());
        for event in events {
            pending.push(self.send(&channel, event).await);
        }
        let mut results = Vec::with_capacity(events.len());
        for (event, sent) in events.iter().zip(pending) {
            let result = match sent {
                Ok(confirm) => match tokio::time::timeout(self.config.timeout, confirm).await {
                    Ok(Ok(confirmation)) => self.confirmed(event, confirmation),
                    Ok(Err(error)) => Err(PublishError::Broker(error.to_string())),
                    Err(_) => Err(PublishError::NoConfirm(self.config.timeout)),
                },
                Err(error) => Err(error),
            };
            results.push(result);
        }
        if results.iter().any(|result| {
            matches!(
                result,
                Err(PublishError::Broker(_) | PublishError::NoConfirm(_))
            )
        }) {
            *link = None;
        }
        results
    }

    async fn send(
        &self,
        channel: &Channel,
        event: &Event,
    ) -> Result<PublisherConfirm, PublishError> {
        let body = serde_json::to_vec(event)
            .map_err(|error| PublishError::Encoding(event.id.clone(), error.to_string()))?;
        let properties = BasicProperties::default()
            .with_message_id(event.id.as_str().into())
            .with_content_type("application/json".into())
            .with_type(event.kind.as_str().into())
            .with_app_id("booking-host".into())
            .with_timestamp(event.occurred_at / 1000)
            .with_delivery_mode(PERSISTENT);
        channel
            .basic_publish(
                self.config.exchange.as_str().into(),
                event.kind.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &body,
                properties,
            )
            .await
            .map_err(|error| PublishError::Broker(error.to_string()))
    }

    fn confirmed(&self, event: &Event, confirmation: Confirmation) -> Result<(), PublishError> {
        match confirmation {
            Confirmation::Ack(returned) => {
                // `mandatory` makes the broker say when no queue is bound
                // for this type. Nobody subscribes to it, so there is no one
                // to lose it for; holding it back would stall every later
                // event behind it.
                if returned.is_some() {
                    tracing::warn!(
                        event = %event.id, routing_key = event.kind.as_str(), exchange = %self.config.exchange,
                        "no queue is bound for this event type; the broker dropped it"
                    );
                }
                Ok(())
            }
            Confirmation::Nack(_) => Err(PublishError::Nacked(event.id.clone())),
            Confirmation::NotRequested => Err(PublishError::Broker(
                "the channel is not in confirm mode".into(),
            )),
        }
    }

    /// The open channel, connecting (and declaring the exchange) if needed.
    async fn connected(&self, link: &mut Option<Link>) -> Result<Channel, PublishError> {
        if let Some(open) = link.as_ref()
            && open.channel.status().connected()
        {
            return Ok(open.channel.clone());
        }
        *link = None;
        let opened = tokio::time::timeout(self.config.timeout, self.open())
            .await
            .map_err(|_| {
                PublishError::Broker(format!("no connection within {:?}", self.config.timeout))
            })?
            .map_err(|error| PublishError::Broker(error.to_string()))?;
        let channel = opened.channel.clone();
        *link = Some(opened);
        Ok(channel)
    }

    async fn open(&self) -> lapin::Result<Link> {
        let connection = Connection::connect(
            &self.config.url,
            ConnectionProperties::default().with_connection_name("booking-host".into()),
        )
        .await?;
        let channel = connection.create_channel().await?;
        channel
            .exchange_declare(
                self.config.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Link {
            _connection: connection,
            channel,
        })
    }
}
