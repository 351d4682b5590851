//! Publishes events to RabbitMQ: a durable topic exchange, routing key =
//! event type (`booking.created`, …), persistent JSON messages whose
//! `message_id` is the event id (consumers de-duplicate on it), publisher
//! confirms. Only the relay calls it; the booking workflow never waits on
//! the broker.
//!
//! Nothing confirmed is dropped for want of a consumer: the exchange is
//! declared with an alternate exchange (`<exchange>.unrouted`, fanout, one
//! durable queue of the same name), so an event no queue is bound for
//! lands there. Messages are `mandatory`: where nothing routes them (an
//! exchange declared before without the alternate exchange, or its queue
//! deleted) the broker returns them, they are reported as `Unroutable`
//! (kept in the outbox) and `health` says so.
//!
//! Confirms are pipelined: up to `confirm_window` messages are published,
//! then their confirms awaited together, under one deadline per window.
//!
//! One connection with one confirm-mode channel, opened on first use and
//! dropped on any failure, so the next call reconnects: the broker may come
//! and go while the host runs.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use booking_model::Event;
use futures::{FutureExt, StreamExt};
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    DefaultConnectionBuilder, ExchangeKind, PublisherConfirm,
};
use tokio::sync::{Mutex, watch};

use crate::changes::Changes;

use crate::Adapter;
use crate::outbox::Unsent;
use crate::tls::TlsRoots;

/// The exchange used when none is configured.
pub const DEFAULT_EXCHANGE: &str = "booking.events";

/// Messages in flight before their confirms are awaited, when not configured.
pub const DEFAULT_CONFIRM_WINDOW: usize = 64;

/// The broker's answer to a redeclaration with other arguments.
fn precondition_failed(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(amqp)
            if *amqp.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
    )
}

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

#[derive(Debug, Clone)]
pub struct RabbitConfig {
    /// `amqp://user:password@host:port/vhost`, or `amqps://…` (TLS).
    pub url: String,
    pub exchange: String,
    /// Deadline for connecting and for each window's confirms.
    pub timeout: Duration,
    /// Messages published before awaiting their confirms (at least 1).
    pub confirm_window: usize,
    /// Trusted for an `amqps://` URL.
    pub tls: TlsRoots,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker: {0}")]
    Broker(String),
    #[error("broker: no confirm within {0:?}")]
    NoConfirm(Duration),
    #[error("broker refused event {0} (nack)")]
    Nacked(String),
    #[error("broker returned event {0} as unroutable: no queue takes it")]
    Unroutable(String),
    #[error("event {0} cannot be encoded: {1}")]
    Encoding(String, String),
}

impl PublishError {
    /// Whether the connection is unusable after this, so it is dropped.
    fn breaks_link(&self) -> bool {
        matches!(self, PublishError::Broker(_) | PublishError::NoConfirm(_))
    }
}

struct Link {
    /// Owns the socket; the channel dies with it.
    _connection: Connection,
    channel: Channel,
}

pub struct RabbitPublisher {
    config: RabbitConfig,
    link: Mutex<Option<Link>>,
    /// Events the broker returned in the latest `publish`; `health` reports
    /// them until a publish goes through without returns.
    returned: AtomicUsize,
}

impl RabbitPublisher {
    /// Does not connect: the broker may be down at start-up.
    pub fn new(config: RabbitConfig) -> RabbitPublisher {
        RabbitPublisher {
            config,
            link: Mutex::new(None),
            returned: AtomicUsize::new(0),
        }
    }

    pub fn exchange(&self) -> &str {
        &self.config.exchange
    }

    /// Where events no queue is bound for go: an exchange and a durable
    /// queue of this name.
    pub fn alternate_exchange(&self) -> String {
        format!("{}.unrouted", self.config.exchange)
    }

    /// Publishes the events in order, `confirm_window` at a time, and
    /// waits for the broker's confirms. One result per event: `Ok` means
    /// the broker has the message in a queue (a subscriber's or the
    /// alternate exchange's). A failure that breaks the connection drops
    /// it and fails the events not yet sent, so the next call starts afresh.
    /// Each message carries its event's `traceparent` as a header.
    pub async fn publish(&self, events: &[Unsent]) -> Vec<Result<(), PublishError>> {
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
        let mut results = Vec::with_capacity(events.len());
        for window in events.chunks(self.config.confirm_window.max(1)) {
            let outcome = match tokio::time::timeout(
                self.config.timeout,
                self.publish_window(&channel, window),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => window
                    .iter()
                    .map(|_| Err(PublishError::NoConfirm(self.config.timeout)))
                    .collect(),
            };
            let broken = outcome
                .iter()
                .any(|result| result.as_ref().is_err_and(PublishError::breaks_link));
            results.extend(outcome);
            if broken {
                *link = None;
                let unsent = events.len() - results.len();
                results.extend((0..unsent).map(|_| {
                    Err(PublishError::Broker(
                        "not sent: the connection failed on an earlier event".into(),
                    ))
                }));
                break;
            }
        }
        let returned = results
            .iter()
            .filter(|result| matches!(result, Err(PublishError::Unroutable(_))))
            .count();
        self.returned.store(returned, Ordering::Relaxed);
        results
    }

    /// Publishes every event of the window, then awaits all their confirms.
    async fn publish_window(
        &self,
        channel: &Channel,
        events: &[Unsent],
    ) -> Vec<Result<(), PublishError>> {
        let mut sent = Vec::with_capacity(events.len());
        for unsent in events {
            sent.push(self.send(channel, unsent).await);
        }
        let mut confirmations = Vec::with_capacity(events.len());
        for confirm in sent {
            confirmations.push(match confirm {
                Ok(confirm) => confirm
                    .await
                    .map_err(|error| PublishError::Broker(error.to_string())),
                Err(error) => Err(error),
            });
        }
        // lapin hands a returned message to whichever confirm completes
        // next, which with several in flight need not be its own: match
        // returns to events by message id.
        let mut returned = HashSet::new();
        let acked: Vec<Result<bool, PublishError>> = confirmations
            .into_iter()
            .map(|confirmation| {
                let confirmation = confirmation?;
                let acked = match &confirmation {
                    Confirmation::Ack(_) => true,
                    Confirmation::Nack(_) => false,
                    Confirmation::NotRequested => {
                        return Err(PublishError::Broker(
                            "the channel is not in confirm mode".into(),
                        ));
                    }
                };
                if let Some(message) = confirmation.take_message() {
                    returned.extend(
                        message
                            .delivery
                            .properties
                            .message_id()
                            .as_ref()
                            .map(|id| id.to_string()),
                    );
                }
                Ok(acked)
            })
            .collect();
        events
            .iter()
            .map(|unsent| &unsent.event)
            .zip(acked)
            .map(|(event, acked)| match acked? {
                _ if returned.contains(event.id.as_str()) => {
                    Err(PublishError::Unroutable(event.id.clone()))
                }
                true => Ok(()),
                false => Err(PublishError::Nacked(event.id.clone())),
            })
            .collect()
    }

    async fn send(
        &self,
        channel: &Channel,
        unsent: &Unsent,
    ) -> Result<PublisherConfirm, PublishError> {
        let event = &unsent.event;
        let body = serde_json::to_vec(event)
            .map_err(|error| PublishError::Encoding(event.id.clone(), error.to_string()))?;
        let properties = BasicProperties::default()
            .with_message_id(event.id.as_str().into())
            .with_content_type("application/json".into())
            .with_type(event.kind.as_str().into())
            .with_app_id("booking-host".into())
            .with_timestamp(event.occurred_at / 1000)
            .with_delivery_mode(PERSISTENT)
            .with_headers(trace_headers(unsent.traceparent.as_deref()));
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
        let (connection, channel) = self.declared().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Link {
            _connection: connection,
            channel,
        })
    }

    /// A new connection and a channel on which the exchange (with its
    /// alternate exchange) is declared.
    async fn declared(&self) -> lapin::Result<(Connection, Channel)> {
        // The TLS settings only apply to an `amqps://` URL.
        let tls = OwnedTLSConfig {
            identity: None,
            cert_chain: self.config.tls.extra_pem().map(str::to_owned),
        };
        let connection = DefaultConnectionBuilder::new()?
            .with_uri_str(self.config.url.clone())
            .with_properties(
                ConnectionProperties::default().with_connection_name("booking-host".into()),
            )
            .with_tls_config(tls)
            .connect()
            .await?;
        let channel = connection.create_channel().await?;
        let unrouted = self.alternate_exchange();
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                unrouted.as_str().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                unrouted.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                unrouted.as_str().into(),
                unrouted.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "alternate-exchange".into(),
            AMQPValue::LongString(unrouted.as_str().into()),
        );
        let declared = channel
            .exchange_declare(
                self.config.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                arguments,
            )
            .await;
        let channel = match declared {
            Ok(()) => channel,
            // Declared before without it (an older host, a consumer): the
            // broker refuses other arguments and closes the channel. Use the
            // exchange as it is; returns keep what it cannot route.
            Err(error) if precondition_failed(&error) => {
                tracing::warn!(
                    exchange = %self.config.exchange, alternate_exchange = %unrouted,
                    "the exchange exists without this alternate exchange: events no queue is bound for \
                     stay in the outbox (set the alternate exchange by policy to route them there)"
                );
                connection.create_channel().await?
            }
            Err(error) => return Err(error),
        };
        Ok((connection, channel))
    }

    /// Follows every event on the exchange, whichever host relayed it, into
    /// `changes` (live updates for subscribers) until `stop`: a queue of
    /// this host's own (server-named, exclusive, deleted with the
    /// connection) bound to every routing key, without acknowledgements —
    /// a live view, not a delivery. Reconnects with backoff; whatever was
    /// published while it was away is announced as a gap.
    pub async fn follow(&self, changes: &Changes, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let followed = tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => return,
                followed = self.follow_once(changes) => followed,
            };
            changes.gap();
            if let Err(error) = followed {
                tracing::warn!(
                    "following the broker for live updates: {error}; retrying in {backoff:?}"
                );
            }
            tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    async fn follow_once(&self, changes: &Changes) -> Result<(), String> {
        let (_connection, channel) = tokio::time::timeout(self.config.timeout, self.declared())
            .await
            .map_err(|_| format!("no connection within {:?}", self.config.timeout))?
            .map_err(|error| error.to_string())?;
        self.consume(&channel, changes)
            .await
            .map_err(|error| error.to_string())
    }

    async fn consume(&self, channel: &Channel, changes: &Changes) -> lapin::Result<()> {
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
            .await?;
        channel
            .queue_bind(
                queue.name().clone(),
                self.config.exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut consumer = channel
            .basic_consume(
                queue.name().clone(),
                "live-updates".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    exclusive: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        // Events published before the queue was bound are not in it.
        changes.gap();
        while let Some(delivery) = consumer.next().await {
            let mut events = Vec::new();
            let mut next = Some(delivery);
            // What is already here goes out as one batch.
            while let Some(delivery) = next.take() {
                match Event::from_json(&String::from_utf8_lossy(&delivery?.data)) {
                    Ok(event) => events.push(event),
                    Err(error) => tracing::warn!("live updates: skipping a message: {error}"),
                }
                if events.len() < FOLLOW_BATCH {
                    next = consumer.next().now_or_never().flatten();
                }
            }
            changes.publish(events);
        }
        Ok(())
    }
}

/// Most events handed to subscribers as one batch.
const FOLLOW_BATCH: usize = 256;

#[async_trait]
impl Adapter for RabbitPublisher {
    const NAME: &'static str = "broker";
    type Config = RabbitConfig;

    async fn from_config(config: RabbitConfig) -> anyhow::Result<Self> {
        Ok(RabbitPublisher::new(config))
    }

    /// Up when a connection is open or can be opened now, and the latest
    /// publish had no event returned as unroutable.
    async fn health(&self) -> Result<(), String> {
        let mut link = self.link.lock().await;
        self.connected(&mut link)
            .await
            .map_err(|error| error.to_string())?;
        match self.returned.load(Ordering::Relaxed) {
            0 => Ok(()),
            returned => Err(format!(
                "{returned} event(s) returned as unroutable (no queue bound for them, nor to {}); they stay in the outbox",
                self.alternate_exchange()
            )),
        }
    }
}

/// The AMQP headers of a message: its W3C trace context, if any.
fn trace_headers(traceparent: Option<&str>) -> FieldTable {
    let mut headers = FieldTable::default();
    if let Some(traceparent) = traceparent {
        headers.insert(
            booking_telemetry::traces::TRACEPARENT.into(),
            AMQPValue::LongString(traceparent.into()),
        );
    }
    headers
}
