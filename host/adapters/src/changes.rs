//! Live updates: the committed events this host shows its subscribers
//! (`host/server/src/live`), as they happen. Where they come from:
//!
//! - with a broker, every host follows the exchange
//!   (`RabbitPublisher::follow`), so a subscriber on one replica sees a
//!   booking made on another;
//! - without one (the embedded store, one process), the store announces
//!   its own writes ([`Announcing`]) once they committed.
//!
//! A view, not a delivery: a subscriber that falls behind, or a feed
//! that lost events (the broker went away, a lagging receiver), gets a
//! [`Change::Gap`] and starts again from a fresh snapshot. Events never
//! go missing for the outbox: that is the relay's, at least once.

use std::sync::Arc;

use async_trait::async_trait;
use booking_logic::ports::{PortResult, Storage};
use booking_model::{Booking, BookingPage, Event, IdempotencyRecord, PageRequest, Timestamp};
use tokio::sync::broadcast;

/// What a feed carries.
#[derive(Debug, Clone)]
pub enum Change {
    /// Events committed together or delivered together, in commit order
    /// per booking.
    Events(Arc<[Event]>),
    /// Events may have been missed: what subscribers show may be stale.
    Gap,
}

/// The host's one feed of changes; every subscription group listens.
#[derive(Clone)]
pub struct Changes {
    sender: broadcast::Sender<Change>,
}

/// Batches a slow listener may fall behind by before it gets a gap.
const BACKLOG: usize = 4096;

impl Default for Changes {
    fn default() -> Self {
        Changes {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Changes {
    pub fn publish(&self, events: Vec<Event>) {
        if !events.is_empty() {
            // No listener yet is not an error: nobody watches.
            let _ = self.sender.send(Change::Events(events.into()));
        }
    }

    pub fn gap(&self) {
        let _ = self.sender.send(Change::Gap);
    }

    pub fn listen(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}

/// A store that announces the events of each write it committed.
pub struct Announcing {
    pub store: Arc<dyn Storage>,
    pub changes: Changes,
}

#[async_trait]
impl Storage for Announcing {
    async fn insert(&self, booking: &Booking, events: &[Event]) -> PortResult<()> {
        self.store.insert(booking, events).await?;
        self.changes.publish(events.to_vec());
        Ok(())
    }

    async fn get(&self, booking_id: &str) -> PortResult<Option<Booking>> {
        self.store.get(booking_id).await
    }

    async fn update_if_version(
        &self,
        booking: &Booking,
        expected_version: u64,
        events: &[Event],
    ) -> PortResult<u64> {
        let version = self
            .store
            .update_if_version(booking, expected_version, events)
            .await?;
        self.changes.publish(events.to_vec());
        Ok(version)
    }

    async fn list_by_user(&self, user_id: &str, page: &PageRequest) -> PortResult<BookingPage> {
        self.store.list_by_user(user_id, page).await
    }

    async fn list_expired_pending(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        self.store.list_expired_pending(now, limit).await
    }

    async fn list_unsettled(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        self.store.list_unsettled(now, limit).await
    }

    async fn insert_idempotency_record(&self, record: &IdempotencyRecord) -> PortResult<()> {
        self.store.insert_idempotency_record(record).await
    }

    async fn get_idempotency_record(
        &self,
        user_id: &str,
        key: &str,
    ) -> PortResult<Option<IdempotencyRecord>> {
        self.store.get_idempotency_record(user_id, key).await
    }

    async fn update_idempotency_record(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
    ) -> PortResult<u64> {
        self.store
            .update_idempotency_record(record, expected_version)
            .await
    }

    async fn purge_idempotency_records(&self, now: Timestamp, limit: u32) -> PortResult<u32> {
        self.store.purge_idempotency_records(now, limit).await
    }
}
