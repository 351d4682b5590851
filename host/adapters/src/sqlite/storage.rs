//! `storage` on the embedded SQLite database, with the statements of
//! `booking_adapters_core::sqlite` (the Spin adapter's too): versioned
//! single-row updates (`UPDATE … WHERE id = ? AND version = ?`), each
//! carrying its events into the log (`events.rs`) within the same
//! statement, keyset paging per user. The idempotency records are
//! versioned the same way, keyed by (user, key).

use async_trait::async_trait;
use booking_adapters_core::sqlite as sql;
use booking_logic::ports::{PortResult, Storage};
use booking_model::{Booking, BookingPage, Event, IdempotencyRecord, PageRequest, Timestamp};
use rusqlite::Connection;

use crate::Adapter;
use crate::outbox::published_at_on_write;
use crate::sqlite::events::SqliteEventLog;
use crate::sqlite::{Database, unavailable};

#[derive(Clone)]
pub struct SqliteStorage {
    db: Database,
    /// Where the events of each write go, in the same database.
    log: SqliteEventLog,
}

impl SqliteStorage {
    pub fn new(log: SqliteEventLog) -> SqliteStorage {
        SqliteStorage {
            db: log.db.clone(),
            log,
        }
    }

    /// A booking write and its events, in one transaction: the write's
    /// statement appends the events to the log; with no broker they are
    /// marked delivered as they are stored. Wakes the relay once
    /// committed.
    async fn write<T: Send + 'static>(
        &self,
        events: &[Event],
        write: impl FnOnce(&Connection, &[Event]) -> PortResult<T> + Send + 'static,
    ) -> PortResult<T> {
        let events = events.to_vec();
        let announced = !events.is_empty();
        let delivery = self.log.delivery();
        // Read here: the blocking thread below is outside the request's span.
        let traceparent = booking_telemetry::traceparent().filter(|_| announced);
        let written = self
            .db
            .run(move |connection| {
                let transaction = connection.transaction().map_err(unavailable)?;
                let written = write(&transaction, &events)?;
                let ids = || events.iter().map(|e| e.id.as_str());
                if let Some(at) = published_at_on_write(delivery).filter(|_| announced) {
                    sql::mark_published(&*transaction, ids(), at)?;
                } else if let Some(traceparent) = &traceparent {
                    sql::set_trace_parent(&*transaction, ids(), traceparent)?;
                }
                transaction.commit().map_err(unavailable)?;
                Ok(written)
            })
            .await?;
        if announced {
            self.log.notify_written();
        }
        Ok(written)
    }

    /// One statement (or a read) outside any transaction.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> PortResult<T> + Send + 'static,
    ) -> PortResult<T> {
        self.db.run(move |connection| read(connection)).await
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn insert(&self, booking: &Booking, events: &[Event]) -> PortResult<()> {
        let booking = booking.clone();
        self.write(events, move |db, events| {
            sql::insert_booking(db, &booking, events)
        })
        .await
    }

    async fn get(&self, booking_id: &str) -> PortResult<Option<Booking>> {
        let id = booking_id.to_owned();
        self.read(move |db| sql::get_booking(db, &id)).await
    }

    async fn update_if_version(
        &self,
        booking: &Booking,
        expected_version: u64,
        events: &[Event],
    ) -> PortResult<u64> {
        let booking = booking.clone();
        self.write(events, move |db, events| {
            sql::update_booking(db, &booking, expected_version, events)
        })
        .await
    }

    async fn list_by_user(&self, user_id: &str, page: &PageRequest) -> PortResult<BookingPage> {
        let (user_id, page) = (user_id.to_owned(), page.clone());
        self.read(move |db| sql::list_by_user(db, &user_id, &page))
            .await
    }

    async fn list_expired_pending(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        self.read(move |db| sql::list_expired_pending(db, now, limit))
            .await
    }

    async fn list_unsettled(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        self.read(move |db| sql::list_unsettled(db, now, limit))
            .await
    }

    async fn insert_idempotency_record(&self, record: &IdempotencyRecord) -> PortResult<()> {
        let record = record.clone();
        self.read(move |db| sql::insert_idempotency_record(db, &record))
            .await
    }

    async fn get_idempotency_record(
        &self,
        user_id: &str,
        key: &str,
    ) -> PortResult<Option<IdempotencyRecord>> {
        let (user_id, key) = (user_id.to_owned(), key.to_owned());
        self.read(move |db| sql::get_idempotency_record(db, &user_id, &key))
            .await
    }

    async fn update_idempotency_record(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
    ) -> PortResult<u64> {
        let record = record.clone();
        self.read(move |db| sql::update_idempotency_record(db, &record, expected_version))
            .await
    }

    async fn purge_idempotency_records(&self, now: Timestamp, limit: u32) -> PortResult<u32> {
        self.read(move |db| sql::purge_idempotency_records(db, now, limit))
            .await
    }
}

#[async_trait]
impl Adapter for SqliteStorage {
    const NAME: &'static str = "storage";
    /// The log its writes append their events to, in the same database.
    type Config = SqliteEventLog;

    async fn from_config(log: SqliteEventLog) -> anyhow::Result<Self> {
        Ok(SqliteStorage::new(log))
    }

    async fn health(&self) -> Result<(), String> {
        self.db.health().await
    }
}

#[cfg(test)]
mod tests {
    use booking_logic::testing::contract::booking;
    use booking_model::BookingStatus;

    use super::*;

    #[tokio::test]
    async fn bookings_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("durable.sqlite3");
        let kept = Booking {
            settle_after: Some(5),
            ..booking("kept", "u1", 1)
        };
        {
            let storage = SqliteStorage::new(SqliteEventLog::new(Database::open(&path).unwrap()));
            storage.insert(&kept, &[]).await.unwrap();
        }
        let storage = SqliteStorage::new(SqliteEventLog::new(Database::open(&path).unwrap()));
        assert_eq!(
            storage.get("kept").await,
            Ok(Some(Booking { version: 1, ..kept }))
        );
    }

    #[tokio::test]
    async fn a_file_from_before_settling_gains_the_columns_and_keeps_its_bookings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        {
            let old = rusqlite::Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE bookings (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, \
                 showtime_id TEXT NOT NULL, seats TEXT NOT NULL, total_cents INTEGER NOT NULL, \
                 currency TEXT NOT NULL, status TEXT NOT NULL, lock_id TEXT NOT NULL, \
                 lock_expires_at INTEGER NOT NULL, payment_transaction_id TEXT, \
                 failure_reason TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, \
                 version INTEGER NOT NULL); \
                 INSERT INTO bookings VALUES ('old', 'u1', 's1', '[\"A1\"]', 1500, 'USD', \
                 'CONFIRMED', 'lock-old', 9, 'txn-old', NULL, 1, 2, 3); \
                 INSERT INTO bookings VALUES ('ended', 'u1', 's1', '[\"A2\"]', 1500, 'USD', \
                 'FAILED', 'lock-ended', 9, 'txn-ended', 'refund pending', 1, 2, 2);",
            )
            .unwrap();
        }
        let storage = SqliteStorage::new(SqliteEventLog::new(Database::open(&path).unwrap()));
        let old = storage.get("old").await.unwrap().expect("kept");
        assert_eq!(
            (
                old.status,
                old.version,
                old.payment_transaction_id.as_deref()
            ),
            (BookingStatus::Confirmed, 3, Some("txn-old"))
        );
        assert_eq!(
            (
                old.charge_attempted_at,
                old.refunded_at,
                old.settle_after,
                old.settle_attempts
            ),
            (None, None, None, 0),
            "owes nothing"
        );
        // An ended booking from before settling is settled once: whatever
        // that build gave up on (a refund, a release) is done now.
        let ended = storage.get("ended").await.unwrap().expect("kept");
        assert_eq!(ended.settle_after, Some(0));
        assert_eq!(
            storage.list_unsettled(0, 10).await.unwrap(),
            vec![ended.clone()]
        );
        let settled = Booking {
            settle_after: None,
            ..ended
        };
        assert_eq!(storage.update_if_version(&settled, 2, &[]).await, Ok(3));
        let settling = Booking {
            status: BookingStatus::Refunded,
            settle_after: Some(7),
            settle_attempts: 1,
            ..old
        };
        assert_eq!(storage.update_if_version(&settling, 3, &[]).await, Ok(4));
        assert_eq!(
            storage.list_unsettled(7, 10).await.unwrap(),
            vec![Booking {
                version: 4,
                ..settling
            }]
        );
    }
}
