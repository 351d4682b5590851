//! Bookings, idempotency records and the event log on Spin's SQLite
//! (`spin:sqlite/sqlite@3.0.0`): the schema, every statement with its
//! parameters, and the row mapping. Atomicity comes from single
//! statements: a versioned update is one `UPDATE … WHERE … AND version = ?`
//! whose changed-row count tells whether it won; inserts are
//! `ON CONFLICT DO NOTHING` with the same check. No statement depends on
//! a transaction spanning calls, so every instance of every adapter can
//! share the database.

use crate::model::{Booking, BookingStatus, Error, IdempotencyRecord, Result};

/// The value type of `spin:sqlite` (`integer`, `real`, `text`, `blob`, `null`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

impl Value {
    fn text(value: &str) -> Value {
        Value::Text(value.to_owned())
    }

    fn optional_text(value: &Option<String>) -> Value {
        value.as_deref().map_or(Value::Null, Value::text)
    }
}

/// A statement and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<Value>,
}

/// Largest page a caller may ask for (as the host's SQLite store).
pub const MAX_PAGE: u32 = 200;

/// Created idempotently when an adapter first touches the database in an
/// instance; one statement each, as `execute` runs one.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS bookings (
        id TEXT PRIMARY KEY, user_id TEXT NOT NULL, showtime_id TEXT NOT NULL,
        seats TEXT NOT NULL, total_cents INTEGER NOT NULL, currency TEXT NOT NULL,
        status TEXT NOT NULL, lock_id TEXT NOT NULL, lock_expires_at INTEGER NOT NULL,
        payment_transaction_id TEXT, failure_reason TEXT,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, version INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS bookings_by_user ON bookings (user_id, created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS bookings_by_expiry ON bookings (status, lock_expires_at)",
    "CREATE TABLE IF NOT EXISTS idempotency_records (
        user_id TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
        response TEXT, lease_expires_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        version INTEGER NOT NULL, PRIMARY KEY (user_id, key))",
    "CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency_records (expires_at)",
    "CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        booking_id TEXT NOT NULL, kind TEXT NOT NULL, occurred_at INTEGER NOT NULL,
        payload TEXT NOT NULL, published_at INTEGER)",
    "CREATE INDEX IF NOT EXISTS events_by_booking ON events (booking_id, seq)",
    "CREATE INDEX IF NOT EXISTS events_unpublished ON events (seq) WHERE published_at IS NULL",
];

/// SQLite integers are i64: refuse rather than wrap.
fn int(value: u64, what: &str) -> Result<Value> {
    i64::try_from(value)
        .map(Value::Integer)
        .map_err(|_| Error::Rejected(format!("{what} is too large")))
}

const BOOKING_COLUMNS: &str = "id, user_id, showtime_id, seats, total_cents, currency, status, lock_id, lock_expires_at, payment_transaction_id, failure_reason, created_at, updated_at, version";

pub fn insert_booking(b: &Booking) -> Result<Statement> {
    Ok(Statement {
        sql: "INSERT INTO bookings (id, user_id, showtime_id, seats, total_cents, currency, status, lock_id, lock_expires_at, payment_transaction_id, failure_reason, created_at, updated_at, version) \
              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (id) DO NOTHING",
        params: vec![
            Value::text(&b.id),
            Value::text(&b.user_id),
            Value::text(&b.showtime_id),
            Value::Text(seats_json(&b.seats)),
            int(b.total_cents, "total")?,
            Value::text(&b.currency),
            Value::text(b.status.as_str()),
            Value::text(&b.lock_id),
            int(b.lock_expires_at, "lock expiry")?,
            Value::optional_text(&b.payment_transaction_id),
            Value::optional_text(&b.failure_reason),
            int(b.created_at, "created-at")?,
            int(b.updated_at, "updated-at")?,
        ],
    })
}

/// The outcome of an insert from its changed-row count.
pub fn inserted(changes: u64, what: &str) -> Result<()> {
    if changes == 1 {
        Ok(())
    } else {
        Err(Error::Conflict(format!("{what} already exists")))
    }
}

pub fn get_booking(id: &str) -> Statement {
    Statement {
        sql: "SELECT id, user_id, showtime_id, seats, total_cents, currency, status, lock_id, lock_expires_at, payment_transaction_id, failure_reason, created_at, updated_at, version FROM bookings WHERE id = ?",
        params: vec![Value::text(id)],
    }
}

/// Identity fields (user, showtime, created-at) never change.
pub fn update_booking(b: &Booking, expected_version: u64) -> Result<Statement> {
    Ok(Statement {
        sql: "UPDATE bookings SET seats = ?, total_cents = ?, currency = ?, status = ?, lock_id = ?, lock_expires_at = ?, \
              payment_transaction_id = ?, failure_reason = ?, updated_at = ?, version = version + 1 \
              WHERE id = ? AND version = ?",
        params: vec![
            Value::Text(seats_json(&b.seats)),
            int(b.total_cents, "total")?,
            Value::text(&b.currency),
            Value::text(b.status.as_str()),
            Value::text(&b.lock_id),
            int(b.lock_expires_at, "lock expiry")?,
            Value::optional_text(&b.payment_transaction_id),
            Value::optional_text(&b.failure_reason),
            int(b.updated_at, "updated-at")?,
            Value::text(&b.id),
            int(expected_version, "version")?,
        ],
    })
}

pub fn booking_exists(id: &str) -> Statement {
    Statement {
        sql: "SELECT 1 FROM bookings WHERE id = ?",
        params: vec![Value::text(id)],
    }
}

/// The outcome of a versioned update: the new version if it changed the
/// row; otherwise `conflict` if the row exists (`exists` is asked only
/// then), `not-found` if not.
pub fn versioned_outcome(
    changes: u64,
    expected_version: u64,
    what: &str,
    exists: impl FnOnce() -> Result<bool>,
) -> Result<u64> {
    if changes == 1 {
        return Ok(expected_version + 1);
    }
    if exists()? {
        Err(Error::Conflict(format!(
            "{what} changed since version {expected_version}"
        )))
    } else {
        Err(Error::NotFound(what.to_owned()))
    }
}

/// Newest first, keyset-paged; asks for one row more than the page to
/// know whether another page follows.
pub fn list_by_user(user_id: &str, cursor: Option<&str>, limit: u32) -> Result<(Statement, u32)> {
    let limit = limit.clamp(1, MAX_PAGE);
    let (after_created, after_id) = match cursor {
        Some(cursor) => parse_cursor(cursor)?,
        // Every row qualifies: created_at < i64::MAX.
        None => (i64::MAX, String::new()),
    };
    Ok((
        Statement {
            sql: "SELECT id, user_id, showtime_id, seats, total_cents, currency, status, lock_id, lock_expires_at, payment_transaction_id, failure_reason, created_at, updated_at, version FROM bookings \
                  WHERE user_id = ? AND (created_at < ? OR (created_at = ? AND id < ?)) ORDER BY created_at DESC, id DESC LIMIT ?",
            params: vec![
                Value::text(user_id),
                Value::Integer(after_created),
                Value::Integer(after_created),
                Value::Text(after_id),
                Value::Integer(i64::from(limit) + 1),
            ],
        },
        limit,
    ))
}

/// Cuts the extra row off; the cursor is "<created_at>:<id>" of the last item.
pub fn page(mut items: Vec<Booking>, limit: u32) -> (Vec<Booking>, Option<String>) {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        let next = items
            .last()
            .map(|last| format!("{}:{}", last.created_at, last.id));
        (items, next)
    } else {
        (items, None)
    }
}

fn parse_cursor(cursor: &str) -> Result<(i64, String)> {
    let malformed = || Error::Rejected("malformed cursor".into());
    let (created_at, id) = cursor.split_once(':').ok_or_else(malformed)?;
    Ok((created_at.parse().map_err(|_| malformed())?, id.to_owned()))
}

pub fn list_expired_pending(now: u64, limit: u32) -> Result<Statement> {
    Ok(Statement {
        sql: "SELECT id, user_id, showtime_id, seats, total_cents, currency, status, lock_id, lock_expires_at, payment_transaction_id, failure_reason, created_at, updated_at, version FROM bookings \
              WHERE status = 'PENDING' AND lock_expires_at < ? ORDER BY lock_expires_at LIMIT ?",
        params: vec![
            int(now, "now")?,
            Value::Integer(i64::from(limit.clamp(1, MAX_PAGE))),
        ],
    })
}

fn seats_json(seats: &[String]) -> String {
    serde_json::to_string(seats).unwrap_or_else(|_| "[]".into())
}

fn corrupt(column: &str, detail: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("database: corrupt {column}: {detail}"))
}

fn get_text(row: &[Value], at: usize, column: &str) -> Result<String> {
    match row.get(at) {
        Some(Value::Text(text)) => Ok(text.clone()),
        other => Err(corrupt(column, format!("{other:?}"))),
    }
}

fn get_optional_text(row: &[Value], at: usize, column: &str) -> Result<Option<String>> {
    match row.get(at) {
        Some(Value::Null) => Ok(None),
        Some(Value::Text(text)) => Ok(Some(text.clone())),
        other => Err(corrupt(column, format!("{other:?}"))),
    }
}

fn get_u64(row: &[Value], at: usize, column: &str) -> Result<u64> {
    match row.get(at) {
        Some(Value::Integer(n)) if *n >= 0 => Ok(*n as u64),
        other => Err(corrupt(column, format!("{other:?}"))),
    }
}

/// A row of any `SELECT {BOOKING_COLUMNS}`.
pub fn booking_from_row(row: &[Value]) -> Result<Booking> {
    let _ = BOOKING_COLUMNS;
    let seats = get_text(row, 3, "seats")?;
    let status = get_text(row, 6, "status")?;
    Ok(Booking {
        id: get_text(row, 0, "id")?,
        user_id: get_text(row, 1, "user_id")?,
        showtime_id: get_text(row, 2, "showtime_id")?,
        seats: serde_json::from_str(&seats).map_err(|e| corrupt("seats", e))?,
        total_cents: get_u64(row, 4, "total_cents")?,
        currency: get_text(row, 5, "currency")?,
        status: BookingStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        lock_id: get_text(row, 7, "lock_id")?,
        lock_expires_at: get_u64(row, 8, "lock_expires_at")?,
        payment_transaction_id: get_optional_text(row, 9, "payment_transaction_id")?,
        failure_reason: get_optional_text(row, 10, "failure_reason")?,
        created_at: get_u64(row, 11, "created_at")?,
        updated_at: get_u64(row, 12, "updated_at")?,
        version: get_u64(row, 13, "version")?,
    })
}

pub fn insert_idempotency_record(r: &IdempotencyRecord) -> Result<Statement> {
    Ok(Statement {
        sql: "INSERT INTO idempotency_records (user_id, key, fingerprint, response, lease_expires_at, expires_at, version) \
              VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (user_id, key) DO NOTHING",
        params: vec![
            Value::text(&r.user_id),
            Value::text(&r.key),
            Value::text(&r.fingerprint),
            Value::optional_text(&r.response),
            int(r.lease_expires_at, "lease-expires-at")?,
            int(r.expires_at, "expires-at")?,
        ],
    })
}

pub fn get_idempotency_record(user_id: &str, key: &str) -> Statement {
    Statement {
        sql: "SELECT user_id, key, fingerprint, response, lease_expires_at, expires_at, version FROM idempotency_records WHERE user_id = ? AND key = ?",
        params: vec![Value::text(user_id), Value::text(key)],
    }
}

/// The identity (user, key) never changes.
pub fn update_idempotency_record(
    r: &IdempotencyRecord,
    expected_version: u64,
) -> Result<Statement> {
    Ok(Statement {
        sql: "UPDATE idempotency_records SET fingerprint = ?, response = ?, lease_expires_at = ?, expires_at = ?, version = version + 1 \
              WHERE user_id = ? AND key = ? AND version = ?",
        params: vec![
            Value::text(&r.fingerprint),
            Value::optional_text(&r.response),
            int(r.lease_expires_at, "lease-expires-at")?,
            int(r.expires_at, "expires-at")?,
            Value::text(&r.user_id),
            Value::text(&r.key),
            int(expected_version, "version")?,
        ],
    })
}

pub fn idempotency_record_exists(user_id: &str, key: &str) -> Statement {
    Statement {
        sql: "SELECT 1 FROM idempotency_records WHERE user_id = ? AND key = ?",
        params: vec![Value::text(user_id), Value::text(key)],
    }
}

/// Deletes up to `limit` expired records in one statement; the changed-row
/// count is how many went.
pub fn purge_idempotency_records(now: u64, limit: u32) -> Result<Statement> {
    Ok(Statement {
        sql: "DELETE FROM idempotency_records WHERE rowid IN \
              (SELECT rowid FROM idempotency_records WHERE expires_at < ? ORDER BY expires_at LIMIT ?)",
        params: vec![int(now, "now")?, Value::Integer(i64::from(limit))],
    })
}

pub fn idempotency_record_from_row(row: &[Value]) -> Result<IdempotencyRecord> {
    Ok(IdempotencyRecord {
        user_id: get_text(row, 0, "user_id")?,
        key: get_text(row, 1, "key")?,
        fingerprint: get_text(row, 2, "fingerprint")?,
        response: get_optional_text(row, 3, "response")?,
        lease_expires_at: get_u64(row, 4, "lease_expires_at")?,
        expires_at: get_u64(row, 5, "expires_at")?,
        version: get_u64(row, 6, "version")?,
    })
}

/// Appends an event to the log (idempotent by id), unpublished.
pub fn insert_event(event: &crate::model::Event) -> Result<Statement> {
    Ok(Statement {
        sql: "INSERT INTO events (id, booking_id, kind, occurred_at, payload, published_at) VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT (id) DO NOTHING",
        params: vec![
            Value::text(&event.id),
            Value::text(&event.booking_id),
            Value::text(event.kind.as_str()),
            int(event.occurred_at, "occurred-at")?,
            Value::Text(crate::event_json::to_json(event)),
        ],
    })
}

/// Payloads of one booking's events, in publication order.
pub fn event_history(booking_id: &str) -> Statement {
    Statement {
        sql: "SELECT payload FROM events WHERE booking_id = ? ORDER BY seq",
        params: vec![Value::text(booking_id)],
    }
}

/// The oldest unpublished events: (id, payload) rows.
pub fn unpublished_events(limit: u32) -> Statement {
    Statement {
        sql: "SELECT id, payload FROM events WHERE published_at IS NULL ORDER BY seq LIMIT ?",
        params: vec![Value::Integer(i64::from(limit))],
    }
}

pub fn mark_event_published(id: &str, now: u64) -> Result<Statement> {
    Ok(Statement {
        sql: "UPDATE events SET published_at = ? WHERE id = ? AND published_at IS NULL",
        params: vec![int(now, "now")?, Value::text(id)],
    })
}

pub fn text_column(row: &[Value], at: usize) -> Result<String> {
    get_text(row, at, "text column")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booking() -> Booking {
        Booking {
            id: "b1".into(),
            user_id: "u1".into(),
            showtime_id: "showtime_456".into(),
            seats: vec!["A1".into(), "A2".into()],
            total_cents: 3000,
            currency: "USD".into(),
            status: BookingStatus::PaymentFailed,
            lock_id: "l1".into(),
            lock_expires_at: 100,
            payment_transaction_id: None,
            failure_reason: Some("declined".into()),
            created_at: 10,
            updated_at: 11,
            version: 0,
        }
    }

    /// The row SQLite would return for what `insert_booking` stored.
    fn stored_row(statement: &Statement) -> Vec<Value> {
        let mut row = statement.params.clone();
        row.push(Value::Integer(1));
        row
    }

    #[test]
    fn a_booking_round_trips_through_its_row() {
        let insert = insert_booking(&booking()).unwrap();
        assert_eq!(insert.sql.matches('?').count(), insert.params.len());
        let back = booking_from_row(&stored_row(&insert)).unwrap();
        assert_eq!(
            back,
            Booking {
                version: 1,
                ..booking()
            }
        );
        assert_eq!(insert.params[6], Value::Text("PAYMENT_FAILED".into()));
        assert_eq!(insert.params[3], Value::Text(r#"["A1","A2"]"#.into()));
        assert_eq!(insert.params[9], Value::Null);
    }

    #[test]
    fn every_statement_binds_as_many_parameters_as_it_has_placeholders() {
        let r = IdempotencyRecord {
            user_id: "u".into(),
            key: "k".into(),
            fingerprint: "f".into(),
            response: None,
            lease_expires_at: 1,
            expires_at: 2,
            version: 0,
        };
        let event = crate::event_json::tests::event();
        for s in [
            insert_booking(&booking()).unwrap(),
            get_booking("b"),
            update_booking(&booking(), 3).unwrap(),
            booking_exists("b"),
            list_by_user("u", Some("5:b"), 10).unwrap().0,
            list_expired_pending(5, 10).unwrap(),
            insert_idempotency_record(&r).unwrap(),
            get_idempotency_record("u", "k"),
            update_idempotency_record(&r, 1).unwrap(),
            idempotency_record_exists("u", "k"),
            purge_idempotency_records(5, 10).unwrap(),
            insert_event(&event).unwrap(),
            event_history("b"),
            unpublished_events(5),
            mark_event_published("e", 5).unwrap(),
        ] {
            assert_eq!(s.sql.matches('?').count(), s.params.len(), "{}", s.sql);
        }
    }

    #[test]
    fn versioned_updates_are_conditional_and_report_the_outcome() {
        let update = update_booking(&booking(), 4).unwrap();
        assert!(update.sql.ends_with("WHERE id = ? AND version = ?"));
        assert_eq!(update.params.last(), Some(&Value::Integer(4)));
        assert_eq!(
            versioned_outcome(1, 4, "booking b1", || unreachable!()),
            Ok(5)
        );
        assert!(matches!(
            versioned_outcome(0, 4, "booking b1", || Ok(true)),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            versioned_outcome(0, 4, "booking b1", || Ok(false)),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(inserted(0, "booking b1"), Err(Error::Conflict(_))));
        assert_eq!(inserted(1, "booking b1"), Ok(()));
        let r = update_idempotency_record(
            &IdempotencyRecord {
                user_id: "u".into(),
                key: "k".into(),
                fingerprint: "f".into(),
                response: Some("{}".into()),
                lease_expires_at: 1,
                expires_at: 2,
                version: 7,
            },
            7,
        )
        .unwrap();
        assert!(
            r.sql
                .ends_with("WHERE user_id = ? AND key = ? AND version = ?")
        );
    }

    #[test]
    fn pages_and_cursors() {
        let (s, limit) = list_by_user("u", None, 0).unwrap();
        assert_eq!(limit, 1);
        assert_eq!(s.params[1], Value::Integer(i64::MAX));
        assert_eq!(s.params[4], Value::Integer(2));
        assert_eq!(list_by_user("u", None, 10_000).unwrap().1, MAX_PAGE);
        assert!(matches!(
            list_by_user("u", Some("garbage"), 3),
            Err(Error::Rejected(_))
        ));
        let (s, _) = list_by_user("u", Some("10:b1"), 3).unwrap();
        assert_eq!(s.params[1], Value::Integer(10));
        assert_eq!(s.params[3], Value::Text("b1".into()));

        let items: Vec<Booking> = (0..4)
            .map(|n| Booking {
                id: format!("b{n}"),
                created_at: 100 - n,
                ..booking()
            })
            .collect();
        let (first, next) = page(items.clone(), 3);
        assert_eq!(first.len(), 3);
        assert_eq!(next.as_deref(), Some("98:b2"));
        assert_eq!(page(items[..3].to_vec(), 3).1, None);
    }

    #[test]
    fn idempotency_records_round_trip_and_huge_numbers_are_refused() {
        let r = IdempotencyRecord {
            user_id: "u".into(),
            key: "k".into(),
            fingerprint: "f".into(),
            response: Some(r#"{"ok":true}"#.into()),
            lease_expires_at: 1,
            expires_at: 2,
            version: 0,
        };
        let mut row = insert_idempotency_record(&r).unwrap().params;
        row.push(Value::Integer(1));
        assert_eq!(
            idempotency_record_from_row(&row).unwrap(),
            IdempotencyRecord {
                version: 1,
                ..r.clone()
            }
        );
        assert!(matches!(
            insert_idempotency_record(&IdempotencyRecord {
                expires_at: u64::MAX,
                ..r
            }),
            Err(Error::Rejected(_))
        ));
    }

    #[test]
    fn corrupt_rows_are_unavailable_not_panics() {
        let mut row = stored_row(&insert_booking(&booking()).unwrap());
        row[6] = Value::Text("WEIRD".into());
        assert!(matches!(booking_from_row(&row), Err(Error::Unavailable(_))));
        assert!(matches!(
            booking_from_row(&row[..3]),
            Err(Error::Unavailable(_))
        ));
        row[6] = Value::Text("PENDING".into());
        row[4] = Value::Integer(-1);
        assert!(matches!(booking_from_row(&row), Err(Error::Unavailable(_))));
    }
}
