//! `events` on the embedded database: an append-only event log. Appending
//! is idempotent by event id, so a retried publish never duplicates.

use async_trait::async_trait;
use booking_logic::model::Event;
use booking_logic::ports::{Events, PortError, PortResult};
use rusqlite::params;

use crate::sqlite::{Database, unavailable};

#[derive(Clone)]
pub struct SqliteEventLog {
    db: Database,
}

impl SqliteEventLog {
    pub fn new(db: Database) -> SqliteEventLog {
        SqliteEventLog { db }
    }

    pub async fn health(&self) -> Result<(), String> {
        self.db.health().await
    }

    /// The newest `limit` events of the whole log, oldest first (for the
    /// `events` CLI subcommand and diagnostics).
    pub async fn tail(&self, limit: u32) -> PortResult<Vec<Event>> {
        self.db
            .run(move |connection| {
                let mut statement = connection
                    .prepare_cached(
                        "SELECT payload FROM (SELECT seq, payload FROM events ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
                    )
                    .map_err(unavailable)?;
                let payloads = statement
                    .query_map([limit], |row| row.get::<_, String>(0))
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
        self.db
            .run(move |connection| {
                connection
                    .execute(
                        "INSERT INTO events (id, booking_id, kind, occurred_at, payload) VALUES (?1, ?2, ?3, ?4, ?5) \
                         ON CONFLICT (id) DO NOTHING",
                        params![id, booking_id, kind, occurred_at, payload],
                    )
                    .map_err(unavailable)?;
                Ok(())
            })
            .await
    }

    async fn history(&self, booking_id: &str) -> PortResult<Vec<Event>> {
        let booking_id = booking_id.to_owned();
        self.db
            .run(move |connection| {
                let mut statement = connection
                    .prepare_cached("SELECT payload FROM events WHERE booking_id = ?1 ORDER BY seq")
                    .map_err(unavailable)?;
                let payloads = statement
                    .query_map([booking_id], |row| row.get::<_, String>(0))
                    .map_err(unavailable)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(unavailable)?;
                payloads.iter().map(|payload| decode(payload)).collect()
            })
            .await
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
}
