//! `events` on the embedded database: an append-only event log in the
//! same file as the bookings, which is also the outbox when a broker is
//! configured. `SqliteStorage` appends a write's events (`append`) in the
//! transaction of that write.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use booking_logic::ports::{Events, PortError, PortResult};
use booking_model::Event;
use rusqlite::types::Value;
use rusqlite::{Connection, params};
use tokio::sync::Notify;

use crate::Adapter;
use crate::outbox::{Delivery, LogConfig, Outbox, now_ms, published_at_on_write};
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
        self.query(
            "SELECT payload FROM (SELECT seq, payload FROM events ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
            Value::Integer(i64::from(limit)),
        )
        .await
    }

    /// The events a one-parameter query selects, decoded.
    async fn query(&self, sql: &'static str, parameter: Value) -> PortResult<Vec<Event>> {
        self.db
            .run(move |connection| {
                let mut statement = connection.prepare_cached(sql).map_err(unavailable)?;
                let payloads = statement
                    .query_map([parameter], |row| row.get::<_, String>(0))
                    .map_err(unavailable)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(unavailable)?;
                payloads.iter().map(|payload| decode(payload)).collect()
            })
            .await
    }

    /// The delivery of events a write stores, for `append`.
    pub(crate) fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// Wakes the relay; called after a write with events committed.
    pub(crate) fn notify_written(&self) {
        self.written.notify_one();
    }
}

/// Appends `events` to the log inside the caller's transaction: unique by
/// id, so a second write of an event fails the whole transaction.
pub(crate) fn append(
    connection: &Connection,
    delivery: Delivery,
    events: &[Event],
) -> PortResult<()> {
    let mut statement = connection
        .prepare_cached(
            "INSERT INTO events (id, booking_id, kind, occurred_at, payload, published_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(unavailable)?;
    for event in events {
        let payload =
            serde_json::to_string(event).map_err(|e| PortError::Rejected(e.to_string()))?;
        let occurred_at = i64::try_from(event.occurred_at)
            .map_err(|_| PortError::Rejected("occurred-at is too large".into()))?;
        let published_at = published_at_on_write(delivery).map(|at| at as i64);
        statement
            .execute(params![
                event.id,
                event.booking_id,
                event.kind.as_str(),
                occurred_at,
                payload,
                published_at
            ])
            .map_err(unavailable)?;
    }
    Ok(())
}

fn decode(payload: &str) -> PortResult<Event> {
    serde_json::from_str(payload)
        .map_err(|e| PortError::Unavailable(format!("corrupt event in the log: {e}")))
}

#[async_trait]
impl Events for SqliteEventLog {
    async fn history(&self, booking_id: &str) -> PortResult<Vec<Event>> {
        self.query(
            "SELECT payload FROM events WHERE booking_id = ?1 ORDER BY seq",
            Value::Text(booking_id.to_owned()),
        )
        .await
    }
}

#[async_trait]
impl Outbox for SqliteEventLog {
    async fn unpublished(&self, limit: u32) -> PortResult<Vec<Event>> {
        self.query(
            "SELECT payload FROM events WHERE published_at IS NULL ORDER BY seq LIMIT ?1",
            Value::Integer(i64::from(limit)),
        )
        .await
    }

    async fn mark_published(&self, events: &[Event]) -> PortResult<()> {
        let ids: Vec<String> = events.iter().map(|event| event.id.clone()).collect();
        let now = now_ms() as i64;
        self.db
            .run(move |connection| {
                let transaction = connection.transaction().map_err(unavailable)?;
                {
                    let mut statement = transaction
                        .prepare_cached(
                            "UPDATE events SET published_at = ?1 WHERE id = ?2 AND published_at IS NULL",
                        )
                        .map_err(unavailable)?;
                    for id in &ids {
                        statement.execute(params![now, id]).map_err(unavailable)?;
                    }
                }
                transaction.commit().map_err(unavailable)
            })
            .await
    }

    async fn backlog(&self) -> PortResult<u64> {
        self.db
            .run(|connection| {
                connection
                    .query_row(
                        "SELECT COUNT(*) FROM events WHERE published_at IS NULL",
                        [],
                        |row| row.get::<_, i64>(0),
                    )
                    .map(|count| count as u64)
                    .map_err(unavailable)
            })
            .await
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
