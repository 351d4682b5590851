//! `events` on the embedded database: an append-only event log in the
//! same file as the bookings, which is also the outbox when a broker is
//! configured. Appending is idempotent by event id, so a retried publish
//! never duplicates.

use std::sync::Arc;

use async_trait::async_trait;
use booking_logic::model::Event;
use booking_logic::ports::{Events, PortError, PortResult};
use rusqlite::params;
use rusqlite::types::Value;
use tokio::sync::Notify;

use crate::outbox::{Delivery, Outbox, now_ms, published_at_on_write};
use crate::sqlite::{Database, unavailable};

#[derive(Clone)]
pub struct SqliteEventLog {
    db: Database,
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

    pub async fn health(&self) -> Result<(), String> {
        self.db.health().await
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
}

fn decode(payload: &str) -> PortResult<Event> {
    serde_json::from_str(payload)
        .map_err(|e| PortError::Unavailable(format!("corrupt event in the log: {e}")))
}

#[async_trait]
impl Events for SqliteEventLog {
    async fn publish(&self, event: &Event) -> PortResult<()> {
        let payload =
            serde_json::to_string(event).map_err(|e| PortError::Rejected(e.to_string()))?;
        let (id, booking_id, kind) = (
            event.id.clone(),
            event.booking_id.clone(),
            event.kind.as_str(),
        );
        let occurred_at = i64::try_from(event.occurred_at)
            .map_err(|_| PortError::Rejected("occurred-at is too large".into()))?;
        let published_at = published_at_on_write(self.delivery).map(|at| at as i64);
        self.db
            .run(move |connection| {
                connection
                    .execute(
                        "INSERT INTO events (id, booking_id, kind, occurred_at, payload, published_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                        params![id, booking_id, kind, occurred_at, payload, published_at],
                    )
                    .map_err(unavailable)?;
                Ok(())
            })
            .await?;
        self.written.notify_one();
        Ok(())
    }

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

    async fn mark_published(&self, event_ids: &[String]) -> PortResult<()> {
        let ids = event_ids.to_vec();
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

#[cfg(test)]
mod tests {
    use booking_logic::model::{BookingStatus, EventKind};

    use super::*;

    fn event(id: &str, booking: &str, kind: EventKind) -> Event {
        Event {
            id: id.into(),
            kind,
            occurred_at: 1,
            booking_id: booking.into(),
            user_id: "u1".into(),
            showtime_id: "s1".into(),
            seats: vec!["A1".into()],
            amount_cents: 1500,
            currency: "USD".into(),
            status: BookingStatus::Pending,
            reason: None,
        }
    }

    #[tokio::test]
    async fn history_is_in_publication_order_and_republishing_does_not_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteEventLog::new(Database::open(&dir.path().join("events.sqlite3")).unwrap());
        log.publish(&event("e1", "b1", EventKind::BookingCreated))
            .await
            .unwrap();
        log.publish(&event("x1", "b2", EventKind::BookingCreated))
            .await
            .unwrap();
        log.publish(&event("e2", "b1", EventKind::BookingConfirmed))
            .await
            .unwrap();
        log.publish(&event("e1", "b1", EventKind::BookingCreated))
            .await
            .unwrap();

        let history = log.history("b1").await.unwrap();
        let kinds: Vec<_> = history.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![EventKind::BookingCreated, EventKind::BookingConfirmed]
        );
        assert_eq!(history[0], event("e1", "b1", EventKind::BookingCreated));

        let tail: Vec<_> = log
            .tail(2)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(tail, vec!["x1", "e2"]);
    }

    #[tokio::test]
    async fn as_an_outbox_it_hands_out_unpublished_events_in_order_until_marked() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("outbox.sqlite3")).unwrap();
        let log = SqliteEventLog::with_delivery(db, Delivery::Relayed);
        for (id, booking, kind) in [
            ("e1", "b1", EventKind::BookingCreated),
            ("x1", "b2", EventKind::BookingCreated),
            ("e2", "b1", EventKind::BookingConfirmed),
        ] {
            log.publish(&event(id, booking, kind)).await.unwrap();
        }
        let ids =
            |events: Vec<Event>| -> Vec<String> { events.into_iter().map(|e| e.id).collect() };
        assert_eq!(log.backlog().await.unwrap(), 3);
        assert_eq!(ids(log.unpublished(2).await.unwrap()), ["e1", "x1"]);
        log.mark_published(&["e1".into(), "x1".into()])
            .await
            .unwrap();
        assert_eq!(ids(log.unpublished(10).await.unwrap()), ["e2"]);
        assert_eq!(log.backlog().await.unwrap(), 1);
        assert_eq!(log.history("b1").await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn with_no_broker_events_are_delivered_once_stored() {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteEventLog::new(Database::open(&dir.path().join("log.sqlite3")).unwrap());
        log.publish(&event("e1", "b1", EventKind::BookingCreated))
            .await
            .unwrap();
        assert_eq!(log.backlog().await.unwrap(), 0);
        assert!(log.unpublished(10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_log_from_before_the_outbox_is_not_replayed_to_a_new_relay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        {
            let old = rusqlite::Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, \
                 booking_id TEXT NOT NULL, kind TEXT NOT NULL, occurred_at INTEGER NOT NULL, payload TEXT NOT NULL);",
            )
            .unwrap();
            let payload =
                serde_json::to_string(&event("old", "b1", EventKind::BookingCreated)).unwrap();
            old.execute(
                "INSERT INTO events (id, booking_id, kind, occurred_at, payload) VALUES ('old', 'b1', 'booking.created', 1, ?1)",
                [payload],
            )
            .unwrap();
        }
        let log = SqliteEventLog::with_delivery(Database::open(&path).unwrap(), Delivery::Relayed);
        assert_eq!(log.backlog().await.unwrap(), 0);
        log.publish(&event("new", "b1", EventKind::BookingConfirmed))
            .await
            .unwrap();
        let pending: Vec<_> = log
            .unpublished(10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(pending, ["new"]);
        assert_eq!(log.history("b1").await.unwrap().len(), 2);
    }
}
