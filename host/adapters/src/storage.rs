//! `storage` on the embedded SQLite database: versioned single-row updates
//! (`UPDATE … WHERE id = ? AND version = ?`), keyset paging per user. The
//! idempotency records are versioned the same way, keyed by (user, key).

use async_trait::async_trait;
use booking_logic::model::{
    Booking, BookingPage, BookingStatus, IdempotencyRecord, PageRequest, Timestamp,
};
use booking_logic::ports::{PortError, PortResult, Storage};
use rusqlite::{OptionalExtension, Row, params};

use crate::sqlite::{Database, unavailable};

/// Largest page a caller may ask for.
const MAX_PAGE: u32 = 200;

#[derive(Clone)]
pub struct SqliteStorage {
    db: Database,
}

impl SqliteStorage {
    pub fn new(db: Database) -> SqliteStorage {
        SqliteStorage { db }
    }

    pub async fn health(&self) -> Result<(), String> {
        self.db.health().await
    }
}

const COLUMNS: &str = "id, user_id, showtime_id, seats, total_cents, currency, status, lock_id, \
     lock_expires_at, payment_transaction_id, failure_reason, created_at, updated_at, version";

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
    async fn insert(&self, booking: &Booking) -> PortResult<()> {
        let b = booking.clone();
        let seats =
            serde_json::to_string(&b.seats).map_err(|e| PortError::Rejected(e.to_string()))?;
        let (total, expires, created, updated) = (
            sql_int(b.total_cents, "total")?,
            sql_int(b.lock_expires_at, "lock expiry")?,
            sql_int(b.created_at, "created-at")?,
            sql_int(b.updated_at, "updated-at")?,
        );
        self.db
            .run(move |connection| {
                let inserted = connection
                    .execute(
                        &format!(
                            "INSERT INTO bookings ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1) \
                             ON CONFLICT (id) DO NOTHING"
                        ),
                        params![
                            b.id,
                            b.user_id,
                            b.showtime_id,
                            seats,
                            total,
                            b.currency,
                            status_name(b.status),
                            b.lock_id,
                            expires,
                            b.payment_transaction_id,
                            b.failure_reason,
                            created,
                            updated
                        ],
                    )
                    .map_err(unavailable)?;
                if inserted == 0 {
                    return Err(PortError::Conflict(format!("booking {} already exists", b.id)));
                }
                Ok(())
            })
            .await
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

    async fn update_if_version(&self, booking: &Booking, expected_version: u64) -> PortResult<u64> {
        let b = booking.clone();
        let seats =
            serde_json::to_string(&b.seats).map_err(|e| PortError::Rejected(e.to_string()))?;
        let (total, expires, updated, expected) = (
            sql_int(b.total_cents, "total")?,
            sql_int(b.lock_expires_at, "lock expiry")?,
            sql_int(b.updated_at, "updated-at")?,
            sql_int(expected_version, "version")?,
        );
        self.db
            .run(move |connection| {
                // Identity fields (user, showtime, created-at) never change.
                let updated_rows = connection
                    .execute(
                        "UPDATE bookings SET seats = ?1, total_cents = ?2, currency = ?3, status = ?4, \
                         lock_id = ?5, lock_expires_at = ?6, payment_transaction_id = ?7, \
                         failure_reason = ?8, updated_at = ?9, version = version + 1 \
                         WHERE id = ?10 AND version = ?11",
                        params![
                            seats,
                            total,
                            b.currency,
                            status_name(b.status),
                            b.lock_id,
                            expires,
                            b.payment_transaction_id,
                            b.failure_reason,
                            updated,
                            b.id,
                            expected
                        ],
                    )
                    .map_err(unavailable)?;
                if updated_rows == 1 {
                    return Ok(expected_version + 1);
                }
                let exists = connection
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
            .await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn booking(
        id: &str,
        user: &str,
        created_at: u64,
        status: BookingStatus,
        lock_expires_at: u64,
    ) -> Booking {
        Booking {
            id: id.into(),
            user_id: user.into(),
            showtime_id: "showtime_456".into(),
            seats: vec!["A1".into(), "A2".into()],
            total_cents: 3000,
            currency: "USD".into(),
            status,
            lock_id: format!("lock-{id}"),
            lock_expires_at,
            payment_transaction_id: None,
            failure_reason: None,
            created_at,
            updated_at: created_at,
            version: 0,
        }
    }

    fn open() -> (tempfile::TempDir, SqliteStorage) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("test.sqlite3")).unwrap();
        (dir, SqliteStorage::new(db))
    }

    #[tokio::test]
    async fn versioned_updates_let_exactly_one_writer_win() {
        let (_dir, storage) = open();
        let original = booking("b1", "u1", 10, BookingStatus::Pending, 100);
        storage.insert(&original).await.unwrap();
        assert!(matches!(
            storage.insert(&original).await,
            Err(PortError::Conflict(_))
        ));

        let stored = storage.get("b1").await.unwrap().unwrap();
        assert_eq!(stored.version, 1);
        assert_eq!(stored.seats, original.seats);

        let mut confirmed = stored.clone();
        confirmed.status = BookingStatus::Confirmed;
        confirmed.payment_transaction_id = Some("tx".into());
        assert_eq!(storage.update_if_version(&confirmed, 1).await.unwrap(), 2);

        let mut expired = stored;
        expired.status = BookingStatus::Expired;
        assert!(matches!(
            storage.update_if_version(&expired, 1).await,
            Err(PortError::Conflict(_))
        ));
        let now = storage.get("b1").await.unwrap().unwrap();
        assert_eq!((now.status, now.version), (BookingStatus::Confirmed, 2));
        assert_eq!(now.payment_transaction_id.as_deref(), Some("tx"));

        let ghost = booking("ghost", "u1", 1, BookingStatus::Pending, 1);
        assert!(matches!(
            storage.update_if_version(&ghost, 1).await,
            Err(PortError::NotFound(_))
        ));
        assert_eq!(storage.get("ghost").await.unwrap(), None);
    }

    #[tokio::test]
    async fn concurrent_updates_of_one_version_have_one_winner() {
        let (_dir, storage) = open();
        storage
            .insert(&booking("b1", "u1", 10, BookingStatus::Pending, 100))
            .await
            .unwrap();
        let stored = storage.get("b1").await.unwrap().unwrap();
        let attempts = (0..20).map(|_| {
            let (storage, mut update) = (storage.clone(), stored.clone());
            update.status = BookingStatus::Cancelled;
            tokio::spawn(async move { storage.update_if_version(&update, 1).await })
        });
        let mut winners = 0;
        for attempt in attempts {
            if attempt.await.unwrap().is_ok() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn user_listing_pages_newest_first_without_gaps_or_repeats() {
        let (_dir, storage) = open();
        for n in 0..7u64 {
            storage
                .insert(&booking(
                    &format!("b{n}"),
                    "u1",
                    100 + n / 2,
                    BookingStatus::Pending,
                    1,
                ))
                .await
                .unwrap();
        }
        storage
            .insert(&booking("other", "u2", 500, BookingStatus::Pending, 1))
            .await
            .unwrap();

        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = storage
                .list_by_user("u1", &PageRequest { cursor, limit: 3 })
                .await
                .unwrap();
            assert!(page.items.len() <= 3);
            seen.extend(page.items.iter().map(|b| (b.created_at, b.id.clone())));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut expected = seen.clone();
        expected.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, expected, "newest first");
        assert_eq!(seen.len(), 7);
        assert!(matches!(
            storage
                .list_by_user(
                    "u1",
                    &PageRequest {
                        cursor: Some("garbage".into()),
                        limit: 3
                    }
                )
                .await,
            Err(PortError::Rejected(_))
        ));
    }

    #[tokio::test]
    async fn only_pending_bookings_past_their_lock_are_expired_candidates() {
        let (_dir, storage) = open();
        storage
            .insert(&booking("late", "u1", 1, BookingStatus::Pending, 50))
            .await
            .unwrap();
        storage
            .insert(&booking("later", "u1", 1, BookingStatus::Pending, 40))
            .await
            .unwrap();
        storage
            .insert(&booking("fresh", "u1", 1, BookingStatus::Pending, 500))
            .await
            .unwrap();
        storage
            .insert(&booking("paid", "u1", 1, BookingStatus::Confirmed, 10))
            .await
            .unwrap();
        let due = storage.list_expired_pending(100, 10).await.unwrap();
        let ids: Vec<_> = due.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(
            ids,
            vec!["later", "late"],
            "oldest lock first, only PENDING"
        );
        assert_eq!(storage.list_expired_pending(100, 1).await.unwrap().len(), 1);
    }

    fn record(user: &str, key: &str, expires_at: u64) -> IdempotencyRecord {
        IdempotencyRecord {
            user_id: user.into(),
            key: key.into(),
            fingerprint: "createBooking:1234".into(),
            response: None,
            lease_expires_at: 50,
            expires_at,
            version: 0,
        }
    }

    #[tokio::test]
    async fn idempotency_records_are_inserted_once_per_user_and_key() {
        let (_dir, storage) = open();
        storage
            .insert_idempotency_record(&record("u1", "k1", 100))
            .await
            .unwrap();
        assert!(matches!(
            storage
                .insert_idempotency_record(&record("u1", "k1", 999))
                .await,
            Err(PortError::Conflict(_))
        ));
        // Keys are scoped per user.
        storage
            .insert_idempotency_record(&record("u2", "k1", 100))
            .await
            .unwrap();
        let stored = storage
            .get_idempotency_record("u1", "k1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored,
            IdempotencyRecord {
                version: 1,
                ..record("u1", "k1", 100)
            },
            "the first insert stays, at version 1"
        );
        assert_eq!(
            storage.get_idempotency_record("u1", "other").await,
            Ok(None)
        );
    }

    #[tokio::test]
    async fn idempotency_record_updates_are_compare_and_swap() {
        let (_dir, storage) = open();
        storage
            .insert_idempotency_record(&record("u1", "k1", 100))
            .await
            .unwrap();
        let answered = IdempotencyRecord {
            response: Some(r#"{"data":{}}"#.into()),
            expires_at: 200,
            ..record("u1", "k1", 100)
        };
        assert_eq!(storage.update_idempotency_record(&answered, 1).await, Ok(2));
        assert!(matches!(
            storage.update_idempotency_record(&answered, 1).await,
            Err(PortError::Conflict(_))
        ));
        assert_eq!(storage.update_idempotency_record(&answered, 2).await, Ok(3));
        let stored = storage
            .get_idempotency_record("u1", "k1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored,
            IdempotencyRecord {
                version: 3,
                ..answered.clone()
            }
        );
        assert!(matches!(
            storage
                .update_idempotency_record(&record("u1", "ghost", 1), 1)
                .await,
            Err(PortError::NotFound(_))
        ));

        let attempts = (0..20).map(|_| {
            let (storage, update) = (storage.clone(), answered.clone());
            tokio::spawn(async move { storage.update_idempotency_record(&update, 3).await })
        });
        let mut winners = 0;
        for attempt in attempts {
            if attempt.await.unwrap().is_ok() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn purging_deletes_expired_records_oldest_first_up_to_the_limit() {
        let (_dir, storage) = open();
        for (key, expires_at) in [("a", 30), ("b", 10), ("c", 20), ("d", 100)] {
            storage
                .insert_idempotency_record(&record("u1", key, expires_at))
                .await
                .unwrap();
        }
        assert_eq!(storage.purge_idempotency_records(50, 2).await, Ok(2));
        for (key, kept) in [("a", true), ("b", false), ("c", false), ("d", true)] {
            let found = storage.get_idempotency_record("u1", key).await.unwrap();
            assert_eq!(found.is_some(), kept, "{key}");
        }
        // Expiring exactly now is not yet before now.
        assert_eq!(storage.purge_idempotency_records(30, 10).await, Ok(0));
        assert_eq!(storage.purge_idempotency_records(1_000, 10).await, Ok(2));
        assert_eq!(storage.purge_idempotency_records(1_000, 10).await, Ok(0));
    }

    #[tokio::test]
    async fn bookings_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("durable.sqlite3");
        {
            let storage = SqliteStorage::new(Database::open(&path).unwrap());
            storage
                .insert(&booking("kept", "u1", 1, BookingStatus::Pending, 1))
                .await
                .unwrap();
        }
        let storage = SqliteStorage::new(Database::open(&path).unwrap());
        assert!(storage.get("kept").await.unwrap().is_some());
    }
}
