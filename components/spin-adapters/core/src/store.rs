//! Bookings, idempotency records and the event log (the outbox) on SQLite
//! as Spin offers it (`spin:sqlite/sqlite@3.0.0`): one statement per
//! `execute`, then the changed-row count. Every operation is written here
//! once, against [`Database`], so the component runs it on Spin's
//! connection and the tests run the very same statements on rusqlite.
//!
//! Atomicity comes from single statements. A versioned update is one
//! `UPDATE … WHERE … AND version = ?` whose changed-row count tells
//! whether it won; inserts are `ON CONFLICT DO NOTHING` with the same
//! check. **A booking write and its events are one statement too**: the
//! row carries the move's event payloads in `new_events`, and a trigger
//! appends them to `events` and clears the column within that statement,
//! which SQLite commits or rolls back as a whole (trigger included). Spin's
//! interface has no batch call, and a `BEGIN … COMMIT` spread over several
//! `execute` calls would hold the database's write lock across guest code
//! and depend on the host keeping one connection per handle (a remote
//! libSQL backend need not); the single statement depends on neither.

use crate::event_json;
use crate::model::{Booking, BookingStatus, Error, Event, EventKind, IdempotencyRecord, Result};

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

impl Statement {
    fn plain(sql: &'static str) -> Statement {
        Statement {
            sql,
            params: Vec::new(),
        }
    }
}

/// What a statement returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub rows: Vec<Vec<Value>>,
    /// Rows the statement itself inserted, updated or deleted (SQLite's
    /// `changes()`: changes made by triggers are not counted).
    pub changes: u64,
}

/// A connection that runs one statement at a time.
pub trait Database {
    fn run(&self, statement: Statement) -> Result<Outcome>;
}

/// Largest page a caller may ask for (as the host's SQLite store).
pub const MAX_PAGE: u32 = 200;

/// The tables as first released; existing databases have exactly these.
const CREATE: &[&str] = &[
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

/// Columns added to `bookings` since, in order: (name, how to add it).
/// `new_events` is the outbox hand-over, non-null only inside a write.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    (
        "charge_attempted_at",
        "ALTER TABLE bookings ADD COLUMN charge_attempted_at INTEGER",
    ),
    (
        "refunded_at",
        "ALTER TABLE bookings ADD COLUMN refunded_at INTEGER",
    ),
    (
        "settle_after",
        "ALTER TABLE bookings ADD COLUMN settle_after INTEGER",
    ),
    (
        "settle_attempts",
        "ALTER TABLE bookings ADD COLUMN settle_attempts INTEGER NOT NULL DEFAULT 0",
    ),
    (
        "new_events",
        "ALTER TABLE bookings ADD COLUMN new_events TEXT",
    ),
];

const SETTLE_ENDED_BEFORE_SETTLING: &str =
    "UPDATE bookings SET settle_after = 0 WHERE status NOT IN ('PENDING', 'CONFIRMED')";

/// Appends the payloads in `NEW.new_events` (a JSON array of event JSON
/// strings) to the log in array order, then clears the column. The
/// `WHEN` guard also stops the clearing update from firing it again.
macro_rules! append_new_events {
    () => {
        " WHEN NEW.new_events IS NOT NULL BEGIN
            INSERT INTO events (id, booking_id, kind, occurred_at, payload)
                SELECT json_extract(value, '$.id'), json_extract(value, '$.bookingId'),
                       json_extract(value, '$.type'), json_extract(value, '$.occurredAt'), value
                FROM json_each(NEW.new_events) ORDER BY key;
            UPDATE bookings SET new_events = NULL WHERE id = NEW.id;
        END"
    };
}

/// Needs the added columns.
const AFTER_MIGRATION: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS bookings_by_settle_after ON bookings (settle_after, id) WHERE settle_after IS NOT NULL",
    concat!(
        "CREATE TRIGGER IF NOT EXISTS bookings_events_on_insert AFTER INSERT ON bookings",
        append_new_events!()
    ),
    concat!(
        "CREATE TRIGGER IF NOT EXISTS bookings_events_on_update AFTER UPDATE OF new_events ON bookings",
        append_new_events!()
    ),
];

/// Creates the schema or brings an existing database up to it; safe to
/// run from any number of instances at once.
pub fn migrate(db: &impl Database) -> Result<()> {
    for sql in CREATE {
        db.run(Statement::plain(sql))?;
    }
    let present = booking_columns(db)?;
    for (column, alter) in ADDED_COLUMNS {
        if present.iter().any(|c| c == column) {
            continue;
        }
        match db.run(Statement::plain(alter)) {
            // Bookings that ended under a build without settlement may
            // still owe a refund or a seat release it gave up on: settle
            // each once (every step is idempotent).
            Ok(_) if *column == "settle_after" => {
                db.run(Statement::plain(SETTLE_ENDED_BEFORE_SETTLING))?;
            }
            Ok(_) => {}
            // Another instance may have added it in between (and settled).
            Err(error) => {
                if !booking_columns(db)?.iter().any(|c| c == column) {
                    return Err(error);
                }
            }
        }
    }
    for sql in AFTER_MIGRATION {
        db.run(Statement::plain(sql))?;
    }
    Ok(())
}

fn booking_columns(db: &impl Database) -> Result<Vec<String>> {
    db.run(Statement::plain(
        "SELECT name FROM pragma_table_info('bookings')",
    ))?
    .rows
    .iter()
    .map(|row| get_text(row, 0, "column name"))
    .collect()
}

/// SQLite integers are i64: refuse rather than wrap.
fn int(value: u64, what: &str) -> Result<Value> {
    i64::try_from(value)
        .map(Value::Integer)
        .map_err(|_| Error::Rejected(format!("{what} is too large")))
}

fn optional_int(value: Option<u64>, what: &str) -> Result<Value> {
    value.map_or(Ok(Value::Null), |value| int(value, what))
}

/// The column list of every booking `SELECT`, read by `booking_from_row`.
macro_rules! booking_columns {
    () => {
        "id, user_id, showtime_id, seats, total_cents, currency, status, lock_id, lock_expires_at, \
         payment_transaction_id, failure_reason, created_at, updated_at, version, \
         charge_attempted_at, refunded_at, settle_after, settle_attempts"
    };
}

/// The `new_events` parameter: null for none, so the trigger stays idle.
fn new_events(events: &[Event]) -> Value {
    if events.is_empty() {
        return Value::Null;
    }
    let payloads: Vec<String> = events.iter().map(event_json::to_json).collect();
    // A list of strings always serialises.
    Value::Text(serde_json::to_string(&payloads).unwrap_or_default())
}

fn insert_booking_statement(b: &Booking, events: &[Event]) -> Result<Statement> {
    Ok(Statement {
        sql: concat!(
            "INSERT INTO bookings (",
            booking_columns!(),
            ", new_events) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO NOTHING"
        ),
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
            optional_int(b.charge_attempted_at, "charge-attempted-at")?,
            optional_int(b.refunded_at, "refunded-at")?,
            optional_int(b.settle_after, "settle-after")?,
            Value::Integer(i64::from(b.settle_attempts)),
            new_events(events),
        ],
    })
}

/// Stores a new booking at version 1 with its events, in one statement;
/// `conflict` (and nothing written) if the id exists.
pub fn insert_booking(db: &impl Database, b: &Booking, events: &[Event]) -> Result<()> {
    let changes = db.run(insert_booking_statement(b, events)?)?.changes;
    inserted(changes, &format!("booking {}", b.id))
}

/// The outcome of an insert from its changed-row count.
fn inserted(changes: u64, what: &str) -> Result<()> {
    if changes == 1 {
        Ok(())
    } else {
        Err(Error::Conflict(format!("{what} already exists")))
    }
}

pub fn get_booking(db: &impl Database, id: &str) -> Result<Option<Booking>> {
    let statement = Statement {
        sql: concat!("SELECT ", booking_columns!(), " FROM bookings WHERE id = ?"),
        params: vec![Value::text(id)],
    };
    Ok(bookings(db.run(statement)?)?.into_iter().next())
}

/// Identity fields (user, showtime, created-at) never change.
fn update_booking_statement(
    b: &Booking,
    expected_version: u64,
    events: &[Event],
) -> Result<Statement> {
    Ok(Statement {
        sql: "UPDATE bookings SET seats = ?, total_cents = ?, currency = ?, status = ?, lock_id = ?, lock_expires_at = ?, \
              payment_transaction_id = ?, failure_reason = ?, updated_at = ?, charge_attempted_at = ?, refunded_at = ?, \
              settle_after = ?, settle_attempts = ?, new_events = ?, version = version + 1 \
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
            optional_int(b.charge_attempted_at, "charge-attempted-at")?,
            optional_int(b.refunded_at, "refunded-at")?,
            optional_int(b.settle_after, "settle-after")?,
            Value::Integer(i64::from(b.settle_attempts)),
            new_events(events),
            Value::text(&b.id),
            int(expected_version, "version")?,
        ],
    })
}

/// Replaces the booking if it is still at `expected_version` and appends
/// `events`, in one statement; returns the new version.
pub fn update_booking(
    db: &impl Database,
    b: &Booking,
    expected_version: u64,
    events: &[Event],
) -> Result<u64> {
    let changes = db
        .run(update_booking_statement(b, expected_version, events)?)?
        .changes;
    versioned_outcome(
        changes,
        expected_version,
        &format!("booking {}", b.id),
        || {
            let exists = Statement {
                sql: "SELECT 1 FROM bookings WHERE id = ?",
                params: vec![Value::text(&b.id)],
            };
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
fn list_by_user_statement(
    user_id: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<(Statement, u32)> {
    let limit = limit.clamp(1, MAX_PAGE);
    let (after_created, after_id) = match cursor {
        Some(cursor) => parse_cursor(cursor)?,
        // Every row qualifies: created_at < i64::MAX.
        None => (i64::MAX, String::new()),
    };
    Ok((
        Statement {
            sql: concat!(
                "SELECT ",
                booking_columns!(),
                " FROM bookings WHERE user_id = ? AND (created_at < ? OR (created_at = ? AND id < ?)) \
                 ORDER BY created_at DESC, id DESC LIMIT ?"
            ),
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

/// One page of a user's bookings, newest first, and the next page's cursor.
pub fn list_by_user(
    db: &impl Database,
    user_id: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<(Vec<Booking>, Option<String>)> {
    let (statement, limit) = list_by_user_statement(user_id, cursor, limit)?;
    Ok(page(bookings(db.run(statement)?)?, limit))
}

/// Cuts the extra row off; the cursor is "<created_at>:<id>" of the last item.
fn page(mut items: Vec<Booking>, limit: u32) -> (Vec<Booking>, Option<String>) {
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

/// PENDING bookings whose lock expired before `now`, oldest first.
pub fn list_expired_pending(db: &impl Database, now: u64, limit: u32) -> Result<Vec<Booking>> {
    let statement = Statement {
        sql: concat!(
            "SELECT ",
            booking_columns!(),
            " FROM bookings WHERE status = 'PENDING' AND lock_expires_at < ? ORDER BY lock_expires_at LIMIT ?"
        ),
        params: vec![
            int(now, "now")?,
            Value::Integer(i64::from(limit.clamp(1, MAX_PAGE))),
        ],
    };
    bookings(db.run(statement)?)
}

/// Bookings due to be settled (`settle_after` at or before `now`),
/// earliest first, through `bookings_by_settle_after`.
pub fn list_unsettled(db: &impl Database, now: u64, limit: u32) -> Result<Vec<Booking>> {
    bookings(db.run(list_unsettled_statement(now, limit)?)?)
}

fn list_unsettled_statement(now: u64, limit: u32) -> Result<Statement> {
    Ok(Statement {
        sql: concat!(
            "SELECT ",
            booking_columns!(),
            " FROM bookings WHERE settle_after <= ? ORDER BY settle_after, id LIMIT ?"
        ),
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

fn get_optional_u64(row: &[Value], at: usize, column: &str) -> Result<Option<u64>> {
    match row.get(at) {
        Some(Value::Null) => Ok(None),
        _ => get_u64(row, at, column).map(Some),
    }
}

fn get_u32(row: &[Value], at: usize, column: &str) -> Result<u32> {
    let n = get_u64(row, at, column)?;
    u32::try_from(n).map_err(|_| corrupt(column, n))
}

fn bookings(outcome: Outcome) -> Result<Vec<Booking>> {
    outcome
        .rows
        .iter()
        .map(|row| booking_from_row(row))
        .collect()
}

/// A row of any `SELECT booking_columns!()`.
fn booking_from_row(row: &[Value]) -> Result<Booking> {
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
        charge_attempted_at: get_optional_u64(row, 14, "charge_attempted_at")?,
        refunded_at: get_optional_u64(row, 15, "refunded_at")?,
        settle_after: get_optional_u64(row, 16, "settle_after")?,
        settle_attempts: get_u32(row, 17, "settle_attempts")?,
    })
}

fn insert_idempotency_record_statement(r: &IdempotencyRecord) -> Result<Statement> {
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

/// Stores a new record at version 1; `conflict` if (user, key) exists.
pub fn insert_idempotency_record(db: &impl Database, r: &IdempotencyRecord) -> Result<()> {
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
) -> Result<Option<IdempotencyRecord>> {
    let statement = Statement {
        sql: "SELECT user_id, key, fingerprint, response, lease_expires_at, expires_at, version FROM idempotency_records WHERE user_id = ? AND key = ?",
        params: vec![Value::text(user_id), Value::text(key)],
    };
    db.run(statement)?
        .rows
        .first()
        .map(|row| idempotency_record_from_row(row))
        .transpose()
}

/// The identity (user, key) never changes.
fn update_idempotency_record_statement(
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

/// Replaces the record if it is still at `expected_version`; returns the
/// new version.
pub fn update_idempotency_record(
    db: &impl Database,
    r: &IdempotencyRecord,
    expected_version: u64,
) -> Result<u64> {
    let changes = db
        .run(update_idempotency_record_statement(r, expected_version)?)?
        .changes;
    let what = format!("idempotency record {}/{}", r.user_id, r.key);
    versioned_outcome(changes, expected_version, &what, || {
        let exists = Statement {
            sql: "SELECT 1 FROM idempotency_records WHERE user_id = ? AND key = ?",
            params: vec![Value::text(&r.user_id), Value::text(&r.key)],
        };
        Ok(!db.run(exists)?.rows.is_empty())
    })
}

/// Deletes up to `limit` records expired before `now`, oldest first, in
/// one statement; returns how many went.
pub fn purge_idempotency_records(db: &impl Database, now: u64, limit: u32) -> Result<u32> {
    let statement = Statement {
        sql: "DELETE FROM idempotency_records WHERE rowid IN \
              (SELECT rowid FROM idempotency_records WHERE expires_at < ? ORDER BY expires_at LIMIT ?)",
        params: vec![int(now, "now")?, Value::Integer(i64::from(limit))],
    };
    let changes = db.run(statement)?.changes;
    Ok(u32::try_from(changes).unwrap_or(u32::MAX))
}

fn idempotency_record_from_row(row: &[Value]) -> Result<IdempotencyRecord> {
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

/// One booking's events, in commit order.
pub fn event_history(db: &impl Database, booking_id: &str) -> Result<Vec<Event>> {
    let statement = Statement {
        sql: "SELECT payload FROM events WHERE booking_id = ? ORDER BY seq",
        params: vec![Value::text(booking_id)],
    };
    db.run(statement)?
        .rows
        .iter()
        .map(|row| event_json::from_json(&get_text(row, 0, "payload")?))
        .collect()
}

/// Hands the oldest unpublished events (up to `limit`) to `publish` in
/// commit order as (kind, payload), marking each published only after
/// `publish` took it. Stops at the first failure, so no event overtakes
/// an earlier one; the rest wait for the next drain. Returns how many
/// were published.
pub fn drain_outbox(
    db: &impl Database,
    limit: u32,
    now: u64,
    mut publish: impl FnMut(EventKind, &str) -> Result<()>,
) -> Result<u32> {
    let pending = Statement {
        sql: "SELECT id, kind, payload FROM events WHERE published_at IS NULL ORDER BY seq LIMIT ?",
        params: vec![Value::Integer(i64::from(limit))],
    };
    let mut published = 0;
    for row in db.run(pending)?.rows {
        let id = get_text(&row, 0, "event id")?;
        let kind = get_text(&row, 1, "event kind")?;
        let kind = EventKind::parse(&kind).ok_or_else(|| corrupt("event kind", &kind))?;
        publish(kind, &get_text(&row, 2, "payload")?)?;
        db.run(Statement {
            sql: "UPDATE events SET published_at = ? WHERE id = ? AND published_at IS NULL",
            params: vec![int(now, "now")?, Value::Text(id)],
        })?;
        published += 1;
    }
    Ok(published)
}

/// With no broker the log is the only sink: everything counts as published.
pub fn mark_all_published(db: &impl Database, now: u64) -> Result<()> {
    db.run(Statement {
        sql: "UPDATE events SET published_at = ? WHERE published_at IS NULL",
        params: vec![int(now, "now")?],
    })
    .map(drop)
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
            charge_attempted_at: Some(12),
            refunded_at: None,
            settle_after: Some(13),
            settle_attempts: 2,
        }
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
            insert_booking_statement(&booking(), std::slice::from_ref(&event)).unwrap(),
            update_booking_statement(&booking(), 3, &[]).unwrap(),
            list_by_user_statement("u", Some("5:b"), 10).unwrap().0,
            list_unsettled_statement(5, 10).unwrap(),
            insert_idempotency_record_statement(&r).unwrap(),
            update_idempotency_record_statement(&r, 1).unwrap(),
        ] {
            assert_eq!(s.sql.matches('?').count(), s.params.len(), "{}", s.sql);
        }
    }

    #[test]
    fn writes_carry_their_events_as_a_json_list_of_payloads_or_null() {
        let event = crate::event_json::tests::event();
        let insert = insert_booking_statement(&booking(), std::slice::from_ref(&event)).unwrap();
        let Some(Value::Text(list)) = insert.params.last() else {
            panic!("no events parameter: {:?}", insert.params.last());
        };
        let payloads: Vec<String> = serde_json::from_str(list).unwrap();
        assert_eq!(payloads, [crate::event_json::to_json(&event)]);
        let update = update_booking_statement(&booking(), 3, &[]).unwrap();
        assert!(update.sql.contains("new_events = ?"));
        assert_eq!(update.params[13], Value::Null);
    }

    #[test]
    fn added_columns_are_named_by_their_statements_and_read_back_by_position() {
        for (column, alter) in ADDED_COLUMNS {
            assert!(
                alter.starts_with(&format!("ALTER TABLE bookings ADD COLUMN {column} ")),
                "{alter}"
            );
        }
        let columns: Vec<&str> = booking_columns!().split(", ").map(str::trim).collect();
        assert_eq!(columns.len(), 18);
        assert_eq!(
            &columns[14..],
            [
                "charge_attempted_at",
                "refunded_at",
                "settle_after",
                "settle_attempts"
            ]
        );
    }

    #[test]
    fn versioned_outcomes() {
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
    }

    #[test]
    fn pages_and_cursors() {
        let (s, limit) = list_by_user_statement("u", None, 0).unwrap();
        assert_eq!(limit, 1);
        assert_eq!(s.params[1], Value::Integer(i64::MAX));
        assert_eq!(s.params[4], Value::Integer(2));
        assert_eq!(
            list_by_user_statement("u", None, 10_000).unwrap().1,
            MAX_PAGE
        );
        assert!(matches!(
            list_by_user_statement("u", Some("garbage"), 3),
            Err(Error::Rejected(_))
        ));
        let (s, _) = list_by_user_statement("u", Some("10:b1"), 3).unwrap();
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
    fn huge_numbers_are_refused() {
        assert!(matches!(
            insert_booking_statement(
                &Booking {
                    settle_after: Some(u64::MAX),
                    ..booking()
                },
                &[]
            ),
            Err(Error::Rejected(_))
        ));
        let r = IdempotencyRecord {
            user_id: "u".into(),
            key: "k".into(),
            fingerprint: "f".into(),
            response: None,
            lease_expires_at: 1,
            expires_at: u64::MAX,
            version: 0,
        };
        assert!(matches!(
            insert_idempotency_record_statement(&r),
            Err(Error::Rejected(_))
        ));
    }

    /// The row SQLite returns for `booking()` at version 1.
    fn row() -> Vec<Value> {
        let mut row = insert_booking_statement(&booking(), &[]).unwrap().params;
        row.pop(); // new_events is not selected
        row.insert(13, Value::Integer(1));
        row
    }

    #[test]
    fn rows_map_back_and_corrupt_rows_are_unavailable_not_panics() {
        assert_eq!(
            booking_from_row(&row()).unwrap(),
            Booking {
                version: 1,
                ..booking()
            }
        );
        let mut bad = row();
        bad[6] = Value::Text("WEIRD".into());
        assert!(matches!(booking_from_row(&bad), Err(Error::Unavailable(_))));
        assert!(matches!(
            booking_from_row(&row()[..3]),
            Err(Error::Unavailable(_))
        ));
        let mut bad = row();
        bad[4] = Value::Integer(-1);
        assert!(matches!(booking_from_row(&bad), Err(Error::Unavailable(_))));
        let mut bad = row();
        bad[17] = Value::Integer(i64::from(u32::MAX) + 1);
        assert!(matches!(booking_from_row(&bad), Err(Error::Unavailable(_))));
    }
}
