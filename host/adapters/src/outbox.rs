//! The transactional outbox seen from the relay. Each event log (SQLite,
//! MongoDB) stores events next to the bookings and is the outbox too: an
//! event is written durably by `Events::publish` before the workflow
//! reports success, and the relay (`relay.rs`) forwards the unpublished
//! ones to the broker, marking each published only once the broker has
//! confirmed it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use booking_logic::model::{Event, Timestamp};
use booking_logic::ports::PortResult;
use tokio::sync::Notify;

/// What happens to an event once the log has stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The log is the only sink: an event counts as delivered once stored.
    Stored,
    /// A relay forwards every stored event to a broker.
    Relayed,
}

#[async_trait]
pub trait Outbox: Send + Sync {
    /// The oldest unpublished events, at most `limit`, in publication
    /// order (so in order per booking).
    async fn unpublished(&self, limit: u32) -> PortResult<Vec<Event>>;

    /// Records that the broker confirmed these events.
    async fn mark_published(&self, event_ids: &[String]) -> PortResult<()>;

    /// How many events wait for the broker.
    async fn backlog(&self) -> PortResult<u64>;

    /// Notified after every event stored, so the relay need not poll hard.
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
