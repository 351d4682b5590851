//! `storage` on the embedded SQLite database: versioned single-row updates
//! (`UPDATE … WHERE id = ? AND version = ?`), each in one transaction with
//! the rows of its events (the event log, `events.rs`), keyset paging per
//! user. The idempotency records are versioned the same way, keyed by
//! (user, key).

use async_trait::async_trait;
use booking_logic::ports::{PortError, PortResult, Storage};
use booking_model::{
    Booking, BookingPage, BookingStatus, Event, IdempotencyRecord, PageRequest, Timestamp,
};
use rusqlite::{OptionalExtension, Row, params};

use crate::Adapter;
use crate::sqlite::events::{SqliteEventLog, append};
use crate::sqlite::{Database, unavailable};

/// Largest page a caller may ask for.
const MAX_PAGE: u32 = 200;

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
}

const COLUMNS: &str = "id, user_id, showtime_id, seats, total_cents, currency, status, lock_id, \
     lock_expires_at, payment_transaction_id, failure_reason, created_at, updated_at, version, \
     charge_attempted_at, refunded_at, settle_after, settle_attempts";

fn status_name(status: BookingStatus) -> &'static str {
    match status {
        BookingStatus::Pending => "PENDING",
        BookingStatus::Confirmed => "CONFIRMED",
        BookingStatus::PaymentFailed => "PAYMENT_FAILED",
        BookingStatus::Failed => "FAILED",
        BookingStatus::Cancelled => "CANCELLED",
        BookingStatus::Expired => "EXPIRED",
        BookingStatus::Refunded => "REFUNDED",
    }
}

fn parse_status(name: &str) -> Option<BookingStatus> {
    [
        BookingStatus::Pending,
        BookingStatus::Confirmed,
        BookingStatus::PaymentFailed,
        BookingStatus::Failed,
        BookingStatus::Cancelled,
        BookingStatus::Expired,
        BookingStatus::Refunded,
    ]
    .into_iter()
    .find(|status| status_name(*status) == name)
}

fn invalid_column(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, message.into())
}

fn read_booking(row: &Row<'_>) -> rusqlite::Result<Booking> {
    let seats: String = row.get(3)?;
    let status: String = row.get(6)?;
    Ok(Booking {
        id: row.get(0)?,
        user_id: row.get(1)?,
        showtime_id: row.get(2)?,
        seats: serde_json::from_str(&seats).map_err(|e| invalid_column(3, e.to_string()))?,
        total_cents: row.get::<_, i64>(4)? as u64,
        currency: row.get(5)?,
        status: parse_status(&status)
            .ok_or_else(|| invalid_column(6, format!("unknown status {status}")))?,
        lock_id: row.get(7)?,
        lock_expires_at: row.get::<_, i64>(8)? as u64,
        payment_transaction_id: row.get(9)?,
        failure_reason: row.get(10)?,
        created_at: row.get::<_, i64>(11)? as u64,
        updated_at: row.get::<_, i64>(12)? as u64,
        version: row.get::<_, i64>(13)? as u64,
        charge_attempted_at: row.get::<_, Option<i64>>(14)?.map(|at| at as u64),
        refunded_at: row.get::<_, Option<i64>>(15)?.map(|at| at as u64),
        settle_after: row.get::<_, Option<i64>>(16)?.map(|at| at as u64),
        settle_attempts: row.get(17)?,
    })
}

const RECORD_COLUMNS: &str =
    "user_id, key, fingerprint, response, lease_expires_at, expires_at, version";

fn read_record(row: &Row<'_>) -> rusqlite::Result<IdempotencyRecord> {
    Ok(IdempotencyRecord {
        user_id: row.get(0)?,
        key: row.get(1)?,
        fingerprint: row.get(2)?,
        response: row.get(3)?,
        lease_expires_at: row.get::<_, i64>(4)? as u64,
        expires_at: row.get::<_, i64>(5)? as u64,
        version: row.get::<_, i64>(6)? as u64,
    })
}

/// SQLite integers are i64; our timestamps and cents fit comfortably, but
/// refuse rather than wrap if a caller sends something absurd.
fn sql_int(value: u64, what: &str) -> PortResult<i64> {
    i64::try_from(value).map_err(|_| PortError::Rejected(format!("{what} is too large")))
}

fn sql_time(value: Option<u64>, what: &str) -> PortResult<Option<i64>> {
    value.map(|value| sql_int(value, what)).transpose()
}

/// A booking's fields as SQL values, checked before any statement runs.
struct SqlBooking {
    booking: Booking,
    seats: String,
    total: i64,
    lock_expires: i64,
    created: i64,
    updated: i64,
    charge_attempted: Option<i64>,
    refunded: Option<i64>,
    settle_after: Option<i64>,
}

impl SqlBooking {
    fn new(booking: &Booking) -> PortResult<SqlBooking> {
        Ok(SqlBooking {
            seats: serde_json::to_string(&booking.seats)
                .map_err(|e| PortError::Rejected(e.to_string()))?,
            total: sql_int(booking.total_cents, "total")?,
            lock_expires: sql_int(booking.lock_expires_at, "lock expiry")?,
            created: sql_int(booking.created_at, "created-at")?,
            updated: sql_int(booking.updated_at, "updated-at")?,
            charge_attempted: sql_time(booking.charge_attempted_at, "charge-attempted-at")?,
            refunded: sql_time(booking.refunded_at, "refunded-at")?,
            settle_after: sql_time(booking.settle_after, "settle-after")?,
            booking: booking.clone(),
        })
    }
}

/// `list_unsettled`: `?1` now, `?2` the limit. Served by the partial
/// index `bookings_unsettled` (a comparison implies NOT NULL).
fn unsettled_query() -> String {
    format!(
        "SELECT {COLUMNS} FROM bookings WHERE settle_after <= ?1 ORDER BY settle_after, id LIMIT ?2"
    )
}

/// Cursor = "<created_at>:<id>" of the last item of the previous page.
fn parse_cursor(cursor: &str) -> PortResult<(i64, String)> {
    let (created_at, id) = cursor
        .split_once(':')
        .ok_or_else(|| PortError::Rejected("malformed cursor".into()))?;
    let created_at = created_at
        .parse()
        .map_err(|_| PortError::Rejected("malformed cursor".into()))?;
    Ok((created_at, id.to_owned()))
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn insert(&self, booking: &Booking, events: &[Event]) -> PortResult<()> {
        let row = SqlBooking::new(booking)?;
        let (delivery, announced) = (self.log.delivery(), !events.is_empty());
        let events = events.to_vec();
        self.db
            .run(move |connection| {
                let b = &row.booking;
                let transaction = connection.transaction().map_err(unavailable)?;
                let inserted = transaction
                    .execute(
                        &format!(
                            "INSERT INTO bookings ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
                             ?10, ?11, ?12, ?13, 1, ?14, ?15, ?16, ?17) ON CONFLICT (id) DO NOTHING"
                        ),
                        params![
                            b.id,
                            b.user_id,
                            b.showtime_id,
                            row.seats,
                            row.total,
                            b.currency,
                            status_name(b.status),
                            b.lock_id,
                            row.lock_expires,
                            b.payment_transaction_id,
                            b.failure_reason,
                            row.created,
                            row.updated,
                            row.charge_attempted,
                            row.refunded,
                            row.settle_after,
                            b.settle_attempts
                        ],
                    )
                    .map_err(unavailable)?;
                if inserted == 0 {
                    return Err(PortError::Conflict(format!("booking {} already exists", b.id)));
                }
                append(&transaction, delivery, &events)?;
                transaction.commit().map_err(unavailable)
            })
            .await?;
        if announced {
            self.log.notify_written();
        }
        Ok(())
    }

    async fn get(&self, booking_id: &str) -> PortResult<Option<Booking>> {
        let id = booking_id.to_owned();
        self.db
            .run(move |connection| {
                connection
                    .query_row(
                        &format!("SELECT {COLUMNS} FROM bookings WHERE id = ?1"),
                        [id],
                        read_booking,
                    )
                    .optional()
                    .map_err(unavailable)
            })
            .await
    }

    async fn update_if_version(
        &self,
        booking: &Booking,
        expected_version: u64,
        events: &[Event],
    ) -> PortResult<u64> {
        let row = SqlBooking::new(booking)?;
        let expected = sql_int(expected_version, "version")?;
        let (delivery, announced) = (self.log.delivery(), !events.is_empty());
        let events = events.to_vec();
        let version = self
            .db
            .run(move |connection| {
                let b = &row.booking;
                let transaction = connection.transaction().map_err(unavailable)?;
                // Identity fields (user, showtime, created-at) never change.
                let updated_rows = transaction
                    .execute(
                        "UPDATE bookings SET seats = ?1, total_cents = ?2, currency = ?3, status = ?4, \
                         lock_id = ?5, lock_expires_at = ?6, payment_transaction_id = ?7, \
                         failure_reason = ?8, updated_at = ?9, charge_attempted_at = ?10, \
                         refunded_at = ?11, settle_after = ?12, settle_attempts = ?13, \
                         version = version + 1 WHERE id = ?14 AND version = ?15",
                        params![
                            row.seats,
                            row.total,
                            b.currency,
                            status_name(b.status),
                            b.lock_id,
                            row.lock_expires,
                            b.payment_transaction_id,
                            b.failure_reason,
                            row.updated,
                            row.charge_attempted,
                            row.refunded,
                            row.settle_after,
                            b.settle_attempts,
                            b.id,
                            expected
                        ],
                    )
                    .map_err(unavailable)?;
                if updated_rows == 1 {
                    append(&transaction, delivery, &events)?;
                    transaction.commit().map_err(unavailable)?;
                    return Ok(expected_version + 1);
                }
                let exists = transaction
                    .query_row("SELECT 1 FROM bookings WHERE id = ?1", [&b.id], |_| Ok(()))
                    .optional()
                    .map_err(unavailable)?
                    .is_some();
                Err(if exists {
                    PortError::Conflict(format!("booking {} changed since version {expected_version}", b.id))
                } else {
                    PortError::NotFound(format!("booking {}", b.id))
                })
            })
            .await?;
        if announced {
            self.log.notify_written();
        }
        Ok(version)
    }

    async fn list_by_user(&self, user_id: &str, page: &PageRequest) -> PortResult<BookingPage> {
        let user_id = user_id.to_owned();
        let limit = page.limit.clamp(1, MAX_PAGE);
        let after = page.cursor.as_deref().map(parse_cursor).transpose()?;
        self.db
            .run(move |connection| {
                let (after_created, after_id) = after.unwrap_or((i64::MAX, String::new()));
                // Without a cursor every row qualifies: created_at < i64::MAX.
                let mut statement = connection
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM bookings WHERE user_id = ?1 \
                         AND (created_at < ?2 OR (created_at = ?2 AND id < ?3)) \
                         ORDER BY created_at DESC, id DESC LIMIT ?4"
                    ))
                    .map_err(unavailable)?;
                let mut items = statement
                    .query_map(
                        params![user_id, after_created, after_id, i64::from(limit) + 1],
                        read_booking,
                    )
                    .map_err(unavailable)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(unavailable)?;
                let next_cursor = if items.len() > limit as usize {
                    items.truncate(limit as usize);
                    items
                        .last()
                        .map(|last| format!("{}:{}", last.created_at, last.id))
                } else {
                    None
                };
                Ok(BookingPage { items, next_cursor })
            })
            .await
    }

    async fn list_expired_pending(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        let now = sql_int(now, "now")?;
        let limit = limit.clamp(1, MAX_PAGE);
        self.db
            .run(move |connection| {
                let mut statement = connection
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM bookings WHERE status = 'PENDING' AND lock_expires_at < ?1 \
                         ORDER BY lock_expires_at LIMIT ?2"
                    ))
                    .map_err(unavailable)?;
                statement
                    .query_map(params![now, limit], read_booking)
                    .map_err(unavailable)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(unavailable)
            })
            .await
    }

    async fn list_unsettled(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        let now = sql_int(now, "now")?;
        let limit = limit.clamp(1, MAX_PAGE);
        self.db
            .run(move |connection| {
                let mut statement = connection
                    .prepare_cached(&unsettled_query())
                    .map_err(unavailable)?;
                statement
                    .query_map(params![now, limit], read_booking)
                    .map_err(unavailable)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(unavailable)
            })
            .await
    }

    async fn insert_idempotency_record(&self, record: &IdempotencyRecord) -> PortResult<()> {
        let r = record.clone();
        let (lease, expires) = (
            sql_int(r.lease_expires_at, "lease expiry")?,
            sql_int(r.expires_at, "expiry")?,
        );
        self.db
            .run(move |connection| {
                let inserted = connection
                    .execute(
                        &format!(
                            "INSERT INTO idempotency_records ({RECORD_COLUMNS}) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1) ON CONFLICT DO NOTHING"
                        ),
                        params![r.user_id, r.key, r.fingerprint, r.response, lease, expires],
                    )
                    .map_err(unavailable)?;
                if inserted == 0 {
                    return Err(PortError::Conflict(format!(
                        "idempotency key {} of {} already exists",
                        r.key, r.user_id
                    )));
                }
                Ok(())
            })
            .await
    }

    async fn get_idempotency_record(
        &self,
        user_id: &str,
        key: &str,
    ) -> PortResult<Option<IdempotencyRecord>> {
        let (user_id, key) = (user_id.to_owned(), key.to_owned());
        self.db
            .run(move |connection| {
                connection
                    .query_row(
                        &format!(
                            "SELECT {RECORD_COLUMNS} FROM idempotency_records \
                             WHERE user_id = ?1 AND key = ?2"
                        ),
                        [user_id, key],
                        read_record,
                    )
                    .optional()
                    .map_err(unavailable)
            })
            .await
    }

    async fn update_idempotency_record(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
    ) -> PortResult<u64> {
        let r = record.clone();
        let (lease, expires, expected) = (
            sql_int(r.lease_expires_at, "lease expiry")?,
            sql_int(r.expires_at, "expiry")?,
            sql_int(expected_version, "version")?,
        );
        self.db
            .run(move |connection| {
                let updated_rows = connection
                    .execute(
                        "UPDATE idempotency_records SET fingerprint = ?1, response = ?2, \
                         lease_expires_at = ?3, expires_at = ?4, version = version + 1 \
                         WHERE user_id = ?5 AND key = ?6 AND version = ?7",
                        params![
                            r.fingerprint,
                            r.response,
                            lease,
                            expires,
                            r.user_id,
                            r.key,
                            expected
                        ],
                    )
                    .map_err(unavailable)?;
                if updated_rows == 1 {
                    return Ok(expected_version + 1);
                }
                let exists = connection
                    .query_row(
                        "SELECT 1 FROM idempotency_records WHERE user_id = ?1 AND key = ?2",
                        [&r.user_id, &r.key],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(unavailable)?
                    .is_some();
                Err(if exists {
                    PortError::Conflict(format!(
                        "idempotency key {} of {} changed since version {expected_version}",
                        r.key, r.user_id
                    ))
                } else {
                    PortError::NotFound(format!("idempotency key {} of {}", r.key, r.user_id))
                })
            })
            .await
    }

    async fn purge_idempotency_records(&self, now: Timestamp, limit: u32) -> PortResult<u32> {
        let now = sql_int(now, "now")?;
        self.db
            .run(move |connection| {
                // Bundled SQLite has no DELETE … LIMIT: pick the rows first.
                let deleted = connection
                    .execute(
                        "DELETE FROM idempotency_records WHERE rowid IN \
                         (SELECT rowid FROM idempotency_records WHERE expires_at < ?1 \
                          ORDER BY expires_at LIMIT ?2)",
                        params![now, limit],
                    )
                    .map_err(unavailable)?;
                Ok(u32::try_from(deleted).unwrap_or(u32::MAX))
            })
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

    #[tokio::test]
    async fn listing_unsettled_bookings_uses_the_partial_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("plan.sqlite3")).unwrap();
        let plan = db
            .run(|connection| {
                connection
                    .query_row(
                        &format!("EXPLAIN QUERY PLAN {}", unsettled_query()),
                        params![5, 3],
                        |row| row.get::<_, String>(3),
                    )
                    .map_err(unavailable)
            })
            .await
            .unwrap();
        assert!(plan.contains("bookings_unsettled"), "{plan}");
    }
}
