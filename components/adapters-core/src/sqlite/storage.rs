//! `storage`: bookings and idempotency records, each operation one
//! statement (plus, after a refused compare-and-swap, one read to tell
//! `conflict` from `not-found`). A booking write carries its events in
//! `new_events`, which the schema's triggers move into the log within the
//! same statement.

use booking_model::paging::{self, Cursor};
use booking_model::{
    Booking, BookingPage, Event, IdempotencyRecord, PageRequest, PortError, PortResult, Timestamp,
};

use super::rows::{self, booking_columns, record_columns, seats_json};
use super::{Database, Statement, Value};

/// The `new_events` parameter: null for none, so the triggers stay idle.
fn new_events(events: &[Event]) -> Value {
    if events.is_empty() {
        return Value::Null;
    }
    let payloads: Vec<String> = events.iter().map(Event::to_json).collect();
    // A list of strings always serialises.
    Value::Text(serde_json::to_string(&payloads).unwrap_or_default())
}

fn insert_booking_statement(b: &Booking, events: &[Event]) -> PortResult<Statement> {
    Ok(Statement::new(
        concat!(
            "INSERT INTO bookings (",
            booking_columns!(),
            ", new_events) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO NOTHING"
        ),
        vec![
            Value::text(&b.id),
            Value::text(&b.user_id),
            Value::text(&b.showtime_id),
            Value::Text(seats_json(&b.seats)),
            Value::int(b.total_cents, "total")?,
            Value::text(&b.currency),
            Value::text(b.status.as_str()),
            Value::text(&b.lock_id),
            Value::int(b.lock_expires_at, "lock expiry")?,
            Value::optional_text(&b.payment_transaction_id),
            Value::optional_text(&b.failure_reason),
            Value::int(b.created_at, "created-at")?,
            Value::int(b.updated_at, "updated-at")?,
            Value::optional_int(b.charge_attempted_at, "charge-attempted-at")?,
            Value::optional_int(b.refunded_at, "refunded-at")?,
            Value::optional_int(b.settle_after, "settle-after")?,
            Value::Integer(i64::from(b.settle_attempts)),
            new_events(events),
        ],
    ))
}

/// Stores a new booking at version 1 with its events, in one statement;
/// `conflict` (and nothing written) if the id exists.
pub fn insert_booking(db: &impl Database, b: &Booking, events: &[Event]) -> PortResult<()> {
    let changes = db.run(insert_booking_statement(b, events)?)?.changes;
    inserted(changes, &format!("booking {}", b.id))
}

/// The outcome of an insert from its changed-row count.
fn inserted(changes: u64, what: &str) -> PortResult<()> {
    if changes == 1 {
        Ok(())
    } else {
        Err(PortError::Conflict(format!("{what} already exists")))
    }
}

pub fn get_booking(db: &impl Database, id: &str) -> PortResult<Option<Booking>> {
    let statement = Statement::new(
        concat!("SELECT ", booking_columns!(), " FROM bookings WHERE id = ?"),
        vec![Value::text(id)],
    );
    Ok(rows::bookings(db.run(statement)?)?.into_iter().next())
}

/// Identity fields (user, showtime, created-at) never change.
fn update_booking_statement(
    b: &Booking,
    expected_version: u64,
    events: &[Event],
) -> PortResult<Statement> {
    Ok(Statement::new(
        "UPDATE bookings SET seats = ?, total_cents = ?, currency = ?, status = ?, lock_id = ?, lock_expires_at = ?, \
         payment_transaction_id = ?, failure_reason = ?, updated_at = ?, charge_attempted_at = ?, refunded_at = ?, \
         settle_after = ?, settle_attempts = ?, new_events = ?, version = version + 1 \
         WHERE id = ? AND version = ?",
        vec![
            Value::Text(seats_json(&b.seats)),
            Value::int(b.total_cents, "total")?,
            Value::text(&b.currency),
            Value::text(b.status.as_str()),
            Value::text(&b.lock_id),
            Value::int(b.lock_expires_at, "lock expiry")?,
            Value::optional_text(&b.payment_transaction_id),
            Value::optional_text(&b.failure_reason),
            Value::int(b.updated_at, "updated-at")?,
            Value::optional_int(b.charge_attempted_at, "charge-attempted-at")?,
            Value::optional_int(b.refunded_at, "refunded-at")?,
            Value::optional_int(b.settle_after, "settle-after")?,
            Value::Integer(i64::from(b.settle_attempts)),
            new_events(events),
            Value::text(&b.id),
            Value::int(expected_version, "version")?,
        ],
    ))
}

/// Replaces the booking if it is still at `expected_version` and appends
/// `events`, in one statement; returns the new version.
pub fn update_booking(
    db: &impl Database,
    b: &Booking,
    expected_version: u64,
    events: &[Event],
) -> PortResult<u64> {
    let changes = db
        .run(update_booking_statement(b, expected_version, events)?)?
        .changes;
    versioned_outcome(
        changes,
        expected_version,
        &format!("booking {}", b.id),
        || {
            let exists = Statement::new(
                "SELECT 1 FROM bookings WHERE id = ?",
                vec![Value::text(&b.id)],
            );
            Ok(!db.run(exists)?.rows.is_empty())
        },
    )
}

/// The outcome of a versioned update: the new version if it changed the
/// row; otherwise `conflict` if the row exists (`exists` is asked only
/// then), `not-found` if not.
fn versioned_outcome(
    changes: u64,
    expected_version: u64,
    what: &str,
    exists: impl FnOnce() -> PortResult<bool>,
) -> PortResult<u64> {
    if changes == 1 {
        return Ok(expected_version + 1);
    }
    if exists()? {
        Err(PortError::Conflict(format!(
            "{what} changed since version {expected_version}"
        )))
    } else {
        Err(PortError::NotFound(what.to_owned()))
    }
}

/// Newest first, keyset-paged after the cursor; asks for one row more
/// than the page to know whether another page follows.
fn list_by_user_statement(user_id: &str, page: &PageRequest) -> PortResult<(Statement, u32)> {
    let limit = paging::clamp_limit(page.limit);
    let after = Cursor::after(page.cursor.as_deref())?;
    Ok((
        Statement::new(
            concat!(
                "SELECT ",
                booking_columns!(),
                " FROM bookings WHERE user_id = ? AND (created_at < ? OR (created_at = ? AND id < ?)) \
                 ORDER BY created_at DESC, id DESC LIMIT ?"
            ),
            vec![
                Value::text(user_id),
                Value::Integer(after.created_at),
                Value::Integer(after.created_at),
                Value::Text(after.id),
                Value::Integer(i64::from(limit) + 1),
            ],
        ),
        limit,
    ))
}

/// One page of a user's bookings, newest first, and the next page's cursor.
pub fn list_by_user(
    db: &impl Database,
    user_id: &str,
    page: &PageRequest,
) -> PortResult<BookingPage> {
    let (statement, limit) = list_by_user_statement(user_id, page)?;
    Ok(paging::page(rows::bookings(db.run(statement)?)?, limit))
}

/// PENDING bookings whose lock expired before `now`, oldest first.
pub fn list_expired_pending(
    db: &impl Database,
    now: Timestamp,
    limit: u32,
) -> PortResult<Vec<Booking>> {
    let statement = Statement::new(
        concat!(
            "SELECT ",
            booking_columns!(),
            " FROM bookings WHERE status = 'PENDING' AND lock_expires_at < ? ORDER BY lock_expires_at LIMIT ?"
        ),
        vec![
            Value::int(now, "now")?,
            Value::Integer(i64::from(paging::clamp_limit(limit))),
        ],
    );
    rows::bookings(db.run(statement)?)
}

/// Bookings due to be settled (`settle_after` at or before `now`),
/// earliest first, through the index `bookings_by_settle_after` (a
/// comparison implies NOT NULL).
pub fn list_unsettled(db: &impl Database, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
    rows::bookings(db.run(list_unsettled_statement(now, limit)?)?)
}

pub(crate) fn list_unsettled_statement(now: Timestamp, limit: u32) -> PortResult<Statement> {
    Ok(Statement::new(
        concat!(
            "SELECT ",
            booking_columns!(),
            " FROM bookings WHERE settle_after <= ? ORDER BY settle_after, id LIMIT ?"
        ),
        vec![
            Value::int(now, "now")?,
            Value::Integer(i64::from(paging::clamp_limit(limit))),
        ],
    ))
}

fn insert_idempotency_record_statement(r: &IdempotencyRecord) -> PortResult<Statement> {
    Ok(Statement::new(
        concat!(
            "INSERT INTO idempotency_records (",
            record_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (user_id, key) DO NOTHING"
        ),
        vec![
            Value::text(&r.user_id),
            Value::text(&r.key),
            Value::text(&r.fingerprint),
            Value::optional_text(&r.response),
            Value::int(r.lease_expires_at, "lease-expires-at")?,
            Value::int(r.expires_at, "expires-at")?,
        ],
    ))
}

/// Stores a new record at version 1; `conflict` if (user, key) exists.
pub fn insert_idempotency_record(db: &impl Database, r: &IdempotencyRecord) -> PortResult<()> {
    let changes = db.run(insert_idempotency_record_statement(r)?)?.changes;
    inserted(
        changes,
        &format!("idempotency record {}/{}", r.user_id, r.key),
    )
}

pub fn get_idempotency_record(
    db: &impl Database,
    user_id: &str,
    key: &str,
) -> PortResult<Option<IdempotencyRecord>> {
    let statement = Statement::new(
        concat!(
            "SELECT ",
            record_columns!(),
            " FROM idempotency_records WHERE user_id = ? AND key = ?"
        ),
        vec![Value::text(user_id), Value::text(key)],
    );
    db.run(statement)?
        .rows
        .first()
        .map(|row| rows::record(row))
        .transpose()
}

/// The identity (user, key) never changes.
fn update_idempotency_record_statement(
    r: &IdempotencyRecord,
    expected_version: u64,
) -> PortResult<Statement> {
    Ok(Statement::new(
        "UPDATE idempotency_records SET fingerprint = ?, response = ?, lease_expires_at = ?, expires_at = ?, version = version + 1 \
         WHERE user_id = ? AND key = ? AND version = ?",
        vec![
            Value::text(&r.fingerprint),
            Value::optional_text(&r.response),
            Value::int(r.lease_expires_at, "lease-expires-at")?,
            Value::int(r.expires_at, "expires-at")?,
            Value::text(&r.user_id),
            Value::text(&r.key),
            Value::int(expected_version, "version")?,
        ],
    ))
}

/// Replaces the record if it is still at `expected_version`; returns the
/// new version.
pub fn update_idempotency_record(
    db: &impl Database,
    r: &IdempotencyRecord,
    expected_version: u64,
) -> PortResult<u64> {
    let changes = db
        .run(update_idempotency_record_statement(r, expected_version)?)?
        .changes;
    let what = format!("idempotency record {}/{}", r.user_id, r.key);
    versioned_outcome(changes, expected_version, &what, || {
        let exists = Statement::new(
            "SELECT 1 FROM idempotency_records WHERE user_id = ? AND key = ?",
            vec![Value::text(&r.user_id), Value::text(&r.key)],
        );
        Ok(!db.run(exists)?.rows.is_empty())
    })
}

/// Deletes up to `limit` records expired before `now`, oldest first, in
/// one statement (bundled SQLite has no `DELETE … LIMIT`); returns how
/// many went.
pub fn purge_idempotency_records(
    db: &impl Database,
    now: Timestamp,
    limit: u32,
) -> PortResult<u32> {
    let statement = Statement::new(
        "DELETE FROM idempotency_records WHERE rowid IN \
         (SELECT rowid FROM idempotency_records WHERE expires_at < ? ORDER BY expires_at LIMIT ?)",
        vec![Value::int(now, "now")?, Value::Integer(i64::from(limit))],
    );
    let changes = db.run(statement)?.changes;
    Ok(u32::try_from(changes).unwrap_or(u32::MAX))
}

#[cfg(test)]
pub(crate) mod tests {
    use booking_model::{BookingStatus, EventKind};

    use super::*;

    pub(crate) fn booking() -> Booking {
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
            charge_attempted_at: Some(12),
            refunded_at: None,
            settle_after: Some(13),
            settle_attempts: 2,
        }
    }

    /// The parameters of `b`'s insert (without events).
    pub(crate) fn insert_params(b: &Booking) -> Vec<Value> {
        insert_booking_statement(b, &[]).unwrap().params
    }

    pub(crate) fn event() -> Event {
        Event {
            id: "b1-v1".into(),
            kind: EventKind::BookingPaymentFailed,
            occurred_at: 1_700_000_000_123,
            booking_id: "b1".into(),
            user_id: "u1".into(),
            showtime_id: "showtime_456".into(),
            seats: vec!["A1".into(), "A2".into()],
            amount_cents: 3000,
            currency: "USD".into(),
            status: BookingStatus::PaymentFailed,
            reason: Some("card \"declined\" ✓".into()),
        }
    }

    fn record(expires_at: u64) -> IdempotencyRecord {
        IdempotencyRecord {
            user_id: "u".into(),
            key: "k".into(),
            fingerprint: "f".into(),
            response: None,
            lease_expires_at: 1,
            expires_at,
            version: 0,
        }
    }

    fn page(cursor: Option<&str>, limit: u32) -> PageRequest {
        PageRequest {
            cursor: cursor.map(str::to_owned),
            limit,
        }
    }

    #[test]
    fn every_statement_binds_as_many_parameters_as_it_has_placeholders() {
        for s in [
            insert_booking_statement(&booking(), &[event()]).unwrap(),
            update_booking_statement(&booking(), 3, &[]).unwrap(),
            list_by_user_statement("u", &page(Some("5:b"), 10))
                .unwrap()
                .0,
            list_unsettled_statement(5, 10).unwrap(),
            insert_idempotency_record_statement(&record(2)).unwrap(),
            update_idempotency_record_statement(&record(2), 1).unwrap(),
        ] {
            assert_eq!(s.sql.matches('?').count(), s.params.len(), "{}", s.sql);
        }
    }

    #[test]
    fn writes_carry_their_events_as_a_json_list_of_payloads_or_null() {
        let insert = insert_booking_statement(&booking(), &[event()]).unwrap();
        let Some(Value::Text(list)) = insert.params.last() else {
            panic!("no events parameter: {:?}", insert.params.last());
        };
        let payloads: Vec<String> = serde_json::from_str(list).unwrap();
        assert_eq!(payloads, [event().to_json()]);
        let update = update_booking_statement(&booking(), 3, &[]).unwrap();
        assert!(update.sql.contains("new_events = ?"));
        assert_eq!(update.params[13], Value::Null);
    }

    #[test]
    fn versioned_outcomes() {
        assert_eq!(
            versioned_outcome(1, 4, "booking b1", || unreachable!()),
            Ok(5)
        );
        assert!(matches!(
            versioned_outcome(0, 4, "booking b1", || Ok(true)),
            Err(PortError::Conflict(_))
        ));
        assert!(matches!(
            versioned_outcome(0, 4, "booking b1", || Ok(false)),
            Err(PortError::NotFound(_))
        ));
        assert!(matches!(
            inserted(0, "booking b1"),
            Err(PortError::Conflict(_))
        ));
        assert_eq!(inserted(1, "booking b1"), Ok(()));
    }

    #[test]
    fn pages_follow_the_paging_rules() {
        let (s, limit) = list_by_user_statement("u", &page(None, 0)).unwrap();
        assert_eq!(limit, 1);
        assert_eq!(s.params[1], Value::Integer(i64::MAX));
        assert_eq!(s.params[4], Value::Integer(2));
        assert_eq!(
            list_by_user_statement("u", &page(None, 10_000)).unwrap().1,
            paging::MAX_PAGE
        );
        assert!(matches!(
            list_by_user_statement("u", &page(Some("garbage"), 3)),
            Err(PortError::Rejected(_))
        ));
        let (s, _) = list_by_user_statement("u", &page(Some("10:b1"), 3)).unwrap();
        assert_eq!(s.params[1], Value::Integer(10));
        assert_eq!(s.params[3], Value::Text("b1".into()));
    }

    #[test]
    fn huge_numbers_are_refused() {
        let huge = Booking {
            settle_after: Some(u64::MAX),
            ..booking()
        };
        assert!(matches!(
            insert_booking_statement(&huge, &[]),
            Err(PortError::Rejected(_))
        ));
        assert!(matches!(
            insert_idempotency_record_statement(&record(u64::MAX)),
            Err(PortError::Rejected(_))
        ));
    }
}
