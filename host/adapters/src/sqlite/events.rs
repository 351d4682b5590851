//! `events` on the embedded database: an append-only event log in the
//! same file as the bookings, which is also the outbox when a broker is
//! configured. A write of `SqliteStorage` appends its events within its
//! own statement; the reads and the relay's marks are
//! `booking_adapters_core::sqlite`'s statements.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use booking_adapters_core::sqlite as sql;
use booking_logic::ports::{Events, PortResult};
use booking_model::Event;
use tokio::sync::Notify;

use crate::Adapter;
use crate::outbox::{Delivery, LogConfig, Outbox, Unsent, now_ms};
use crate::sqlite::{Database, unavailable};

#[derive(Clone)]
pub struct SqliteEventLog {
    pub(crate) db: Database,
    delivery: Delivery,
    written: Arc<Notify>,
}

impl SqliteEventLog {
    /// The log as the only sink of events.
    pub fn new(db: Database) -> SqliteEventLog {
        SqliteEventLog::with_delivery(db, Delivery::Stored)
    }

    pub fn with_delivery(db: Database, delivery: Delivery) -> SqliteEventLog {
        SqliteEventLog {
            db,
            delivery,
            written: Arc::new(Notify::new()),
        }
    }

    /// The newest `limit` events of the whole log, oldest first (for the
    /// `events` CLI subcommand and diagnostics).
    pub async fn tail(&self, limit: u32) -> PortResult<Vec<Event>> {
        self.db
            .run(move |connection| sql::event_tail(connection, limit))
            .await
    }

    /// The delivery of the events a write stores.
    pub(crate) fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// Wakes the relay; called after a write with events committed.
    pub(crate) fn notify_written(&self) {
        self.written.notify_one();
    }
}

#[async_trait]
impl Events for SqliteEventLog {
    async fn history(&self, booking_id: &str) -> PortResult<Vec<Event>> {
        let booking_id = booking_id.to_owned();
        self.db
            .run(move |connection| sql::event_history(connection, &booking_id))
            .await
    }
}

#[async_trait]
impl Outbox for SqliteEventLog {
    async fn unsent(&self, limit: u32) -> PortResult<Vec<Unsent>> {
        self.db
            .run(move |connection| {
                sql::unpublished(connection, limit)?
                    .into_iter()
                    .map(|stored| {
                        Ok(Unsent {
                            event: stored.event()?,
                            traceparent: stored.trace_parent,
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn mark_published(&self, events: &[Event]) -> PortResult<()> {
        let ids: Vec<String> = events.iter().map(|event| event.id.clone()).collect();
        let now = now_ms();
        self.db
            .run(move |connection| {
                let transaction = connection.transaction().map_err(unavailable)?;
                sql::mark_published(&*transaction, ids.iter().map(String::as_str), now)?;
                transaction.commit().map_err(unavailable)
            })
            .await
    }

    async fn backlog(&self) -> PortResult<u64> {
        self.db.run(|connection| sql::backlog(connection)).await
    }

    fn written(&self) -> Arc<Notify> {
        self.written.clone()
    }
}

#[async_trait]
impl Adapter for SqliteEventLog {
    const NAME: &'static str = "events";
    /// The database file, created with its schema if missing.
    type Config = LogConfig<PathBuf>;

    async fn from_config(config: LogConfig<PathBuf>) -> anyhow::Result<Self> {
        let db = Database::open(&config.database)?;
        Ok(SqliteEventLog::with_delivery(db, config.delivery))
    }

    async fn health(&self) -> Result<(), String> {
        self.db.health().await
    }
}

#[cfg(test)]
mod tests {
    use booking_logic::ports::Storage;
    use booking_logic::testing::contract::{booking, event};
    use booking_model::EventKind;

    use super::*;
    use crate::sqlite::storage::SqliteStorage;

    #[tokio::test]
    async fn the_tail_is_the_newest_events_of_every_booking_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteEventLog::new(Database::open(&dir.path().join("events.sqlite3")).unwrap());
        let storage = SqliteStorage::new(log.clone());
        let (one, other) = (booking("b1", "u1", 1), booking("b2", "u1", 1));
        storage
            .insert(&one, &[event(&one, EventKind::BookingCreated, "v1")])
            .await
            .unwrap();
        storage
            .insert(&other, &[event(&other, EventKind::BookingCreated, "v1")])
            .await
            .unwrap();
        storage
            .update_if_version(&one, 1, &[event(&one, EventKind::BookingCancelled, "v2")])
            .await
            .unwrap();
        let tail: Vec<_> = log
            .tail(2)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(tail, ["b2-v1", "b1-v2"]);
    }

    #[tokio::test]
    async fn a_log_from_before_the_outbox_is_not_replayed_to_a_new_relay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        let old_booking = booking("b1", "u1", 1);
        {
            let old = rusqlite::Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, \
                 booking_id TEXT NOT NULL, kind TEXT NOT NULL, occurred_at INTEGER NOT NULL, payload TEXT NOT NULL);",
            )
            .unwrap();
            let payload =
                serde_json::to_string(&event(&old_booking, EventKind::BookingCreated, "v1"))
                    .unwrap();
            old.execute(
                "INSERT INTO events (id, booking_id, kind, occurred_at, payload) VALUES ('b1-v1', 'b1', 'booking.created', 1, ?1)",
                [payload],
            )
            .unwrap();
        }
        let log = SqliteEventLog::with_delivery(Database::open(&path).unwrap(), Delivery::Relayed);
        assert_eq!(log.backlog().await.unwrap(), 0);
        SqliteStorage::new(log.clone())
            .insert(
                &old_booking,
                &[event(&old_booking, EventKind::BookingConfirmed, "v2")],
            )
            .await
            .unwrap();
        let pending: Vec<_> = log
            .unpublished(10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(pending, ["b1-v2"]);
        assert_eq!(log.history("b1").await.unwrap().len(), 2);
    }
}
