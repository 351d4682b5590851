//! The transactional outbox seen from the relay. Each store (SQLite,
//! MongoDB) writes a booking and the events of that move in one atomic
//! write, so its event log is the outbox: the relay (`relay.rs`) forwards
//! the unpublished events to the broker, marking each published only once
//! the broker has confirmed it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use booking_logic::ports::PortResult;
use booking_model::{Event, Timestamp};
use tokio::sync::Notify;

/// What happens to an event once the log has stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The log is the only sink: an event counts as delivered once stored.
    Stored,
    /// A relay forwards every stored event to a broker.
    Relayed,
}

/// What an event log is built from as an `Adapter`, whichever the
/// backend: where its database is (`database`: a SQLite file's path, or
/// `MongoConfig`), and what becomes of an event once stored. The storage
/// of the same backend is then built from the log.
#[derive(Debug, Clone)]
pub struct LogConfig<D> {
    pub database: D,
    pub delivery: Delivery,
}

/// An event waiting for the broker, with the W3C `traceparent` of the
/// request that stored it (when that request was traced), which the
/// relay sends along so a consumer continues the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsent {
    pub event: Event,
    pub traceparent: Option<String>,
}

impl From<Event> for Unsent {
    fn from(event: Event) -> Unsent {
        Unsent {
            event,
            traceparent: None,
        }
    }
}

#[async_trait]
pub trait Outbox: Send + Sync {
    /// Unpublished events, at most `limit`, oldest bookings first and each
    /// booking's in commit order, with their trace context.
    async fn unsent(&self, limit: u32) -> PortResult<Vec<Unsent>>;

    /// What the relay sends this round: [`Outbox::unsent`]'s events, of
    /// bookings no other relay sending the same log holds. A log several
    /// hosts relay (MongoDB) leases each booking to one relay for a
    /// while, so their relays divide the work instead of each sending
    /// every event; a relay that dies leaves its leases to run out.
    async fn claim(&self, limit: u32) -> PortResult<Vec<Unsent>> {
        self.unsent(limit).await
    }

    /// [`Outbox::unsent`]'s events alone.
    async fn unpublished(&self, limit: u32) -> PortResult<Vec<Event>> {
        let unsent = self.unsent(limit).await?;
        Ok(unsent.into_iter().map(|unsent| unsent.event).collect())
    }

    /// Records that the broker confirmed these events (whole events: a
    /// store may file them under their booking). Marking one again is
    /// harmless.
    async fn mark_published(&self, events: &[Event]) -> PortResult<()>;

    /// How many events wait for the broker.
    async fn backlog(&self) -> PortResult<u64>;

    /// Notified after every write that stored events, so the relay need
    /// not poll hard.
    fn written(&self) -> Arc<Notify>;
}

/// The host's wall clock in milliseconds, for `published_at` marks.
pub fn now_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as Timestamp)
        .unwrap_or_default()
}

/// `published_at` of a freshly stored event: now when the log is the
/// sink, none while it waits for the relay.
pub fn published_at_on_write(delivery: Delivery) -> Option<Timestamp> {
    match delivery {
        Delivery::Stored => Some(now_ms()),
        Delivery::Relayed => None,
    }
}
