//! The schema, and how a database of any earlier release — the host's or
//! Spin's — is brought up to it in place. [`migrate`] is idempotent and
//! safe to run from any number of instances at once (Spin runs it in
//! every instance; the host once per start, in a transaction). A database
//! already at [`SCHEMA_VERSION`] costs it one statement: under Spin every
//! request that uses the store pays for it.

use booking_model::PortResult;

use super::rows::get_text;
use super::{Database, Statement, Value};

/// The tables and indexes as first released; every database has at least
/// these, and gains the rest below.
const CREATE: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS bookings (
        id TEXT PRIMARY KEY, user_id TEXT NOT NULL, showtime_id TEXT NOT NULL,
        seats TEXT NOT NULL, total_cents INTEGER NOT NULL, currency TEXT NOT NULL,
        status TEXT NOT NULL, lock_id TEXT NOT NULL, lock_expires_at INTEGER NOT NULL,
        payment_transaction_id TEXT, failure_reason TEXT,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, version INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS bookings_by_user ON bookings (user_id, created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS bookings_by_expiry ON bookings (status, lock_expires_at)",
    // The first answer to a mutation sent with an idempotency key, per user.
    "CREATE TABLE IF NOT EXISTS idempotency_records (
        user_id TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
        response TEXT, lease_expires_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        version INTEGER NOT NULL, PRIMARY KEY (user_id, key))",
    "CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency_records (expires_at)",
    // `published_at`: when the broker took it (or, with no broker, when
    // it was stored); NULL while it waits in the outbox.
    "CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        booking_id TEXT NOT NULL, kind TEXT NOT NULL, occurred_at INTEGER NOT NULL,
        payload TEXT NOT NULL, published_at INTEGER)",
    "CREATE INDEX IF NOT EXISTS events_by_booking ON events (booking_id, seq)",
];

/// A column added since the first release.
struct Added {
    table: &'static str,
    column: &'static str,
    alter: &'static str,
    /// Run once, by whoever added the column.
    then: Option<&'static str>,
}

/// In the order they were added.
const ADDED: &[Added] = &[
    Added {
        table: "bookings",
        column: "charge_attempted_at",
        alter: "ALTER TABLE bookings ADD COLUMN charge_attempted_at INTEGER",
        then: None,
    },
    Added {
        table: "bookings",
        column: "refunded_at",
        alter: "ALTER TABLE bookings ADD COLUMN refunded_at INTEGER",
        then: None,
    },
    Added {
        table: "bookings",
        column: "settle_after",
        alter: "ALTER TABLE bookings ADD COLUMN settle_after INTEGER",
        // Bookings that ended under a build without settlement may still
        // owe a refund or a seat release it gave up on: settle each once
        // (every step is idempotent, so one that owed nothing loses nothing).
        then: Some(
            "UPDATE bookings SET settle_after = 0 WHERE status NOT IN ('PENDING', 'CONFIRMED')",
        ),
    },
    Added {
        table: "bookings",
        column: "settle_attempts",
        alter: "ALTER TABLE bookings ADD COLUMN settle_attempts INTEGER NOT NULL DEFAULT 0",
        then: None,
    },
    // The outbox hand-over: non-null only inside a write (see `AFTER`).
    Added {
        table: "bookings",
        column: "new_events",
        alter: "ALTER TABLE bookings ADD COLUMN new_events TEXT",
        then: None,
    },
    // Host logs from before the outbox (Spin's always had the column).
    Added {
        table: "events",
        column: "published_at",
        alter: "ALTER TABLE events ADD COLUMN published_at INTEGER",
        // The log was those builds' only sink, so their events count as
        // delivered: a relay started later must not replay the history.
        then: Some("UPDATE events SET published_at = occurred_at"),
    },
    // The W3C trace context of the request that wrote the event, which
    // the relay puts on the message (the host's; Spin writes none).
    Added {
        table: "events",
        column: "trace_parent",
        alter: "ALTER TABLE events ADD COLUMN trace_parent TEXT",
        then: None,
    },
];

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

/// What needs the added columns.
const AFTER: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS events_unpublished ON events (seq) WHERE published_at IS NULL",
    // The sweep's settling, in `list_unsettled`'s order; most bookings
    // owe nothing and stay out of it.
    "CREATE INDEX IF NOT EXISTS bookings_by_settle_after ON bookings (settle_after, id) WHERE settle_after IS NOT NULL",
    // The host's earlier index for the same, superseded by the one above.
    "DROP INDEX IF EXISTS bookings_unsettled",
    concat!(
        "CREATE TRIGGER IF NOT EXISTS bookings_events_on_insert AFTER INSERT ON bookings",
        append_new_events!()
    ),
    concat!(
        "CREATE TRIGGER IF NOT EXISTS bookings_events_on_update AFTER UPDATE OF new_events ON bookings",
        append_new_events!()
    ),
];

/// The number of migration steps (a test holds it to that), recorded in
/// SQLite's `user_version` once all have run. Steps are only ever
/// appended, so a database at this version or above (a newer release's)
/// needs none of them. A macro, because PRAGMA takes no parameters.
macro_rules! schema_version {
    () => {
        19
    };
}
pub const SCHEMA_VERSION: i64 = schema_version!();
const RECORD_VERSION: &str = concat!("PRAGMA user_version = ", schema_version!());

/// Creates the schema or brings an existing database up to it.
pub fn migrate(db: &impl Database) -> PortResult<()> {
    if schema_version(db)? >= SCHEMA_VERSION {
        return Ok(());
    }
    for sql in CREATE {
        db.run(Statement::plain(sql))?;
    }
    for added in ADDED {
        if has_column(db, added)? {
            continue;
        }
        match db.run(Statement::plain(added.alter)) {
            Ok(_) => {
                if let Some(then) = added.then {
                    db.run(Statement::plain(then))?;
                }
            }
            // Another instance may have added it in between (and run `then`).
            Err(error) => {
                if !has_column(db, added)? {
                    return Err(error);
                }
            }
        }
    }
    for sql in AFTER {
        db.run(Statement::plain(sql))?;
    }
    db.run(Statement::plain(RECORD_VERSION))?;
    Ok(())
}

/// What `migrate` last recorded; 0 for a new database or one of a release
/// before versions were recorded.
pub fn schema_version(db: &impl Database) -> PortResult<i64> {
    let outcome = db.run(Statement::plain(
        "SELECT user_version FROM pragma_user_version",
    ))?;
    match outcome.rows.first().and_then(|row| row.first()) {
        Some(Value::Integer(version)) => Ok(*version),
        other => Err(super::unavailable(format!(
            "the schema version is not a number: {other:?}"
        ))),
    }
}

fn has_column(db: &impl Database, added: &Added) -> PortResult<bool> {
    let columns = db.run(Statement::new(
        "SELECT name FROM pragma_table_info(?)",
        vec![Value::text(added.table)],
    ))?;
    for row in &columns.rows {
        if get_text(row, 0, "column name")? == added.column {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_version_counts_the_steps() {
        assert_eq!(
            SCHEMA_VERSION as usize,
            CREATE.len() + ADDED.len() + AFTER.len(),
            "a step was added: raise schema_version!"
        );
    }

    #[test]
    fn added_columns_are_named_by_their_statements() {
        for added in ADDED {
            assert!(
                added.alter.starts_with(&format!(
                    "ALTER TABLE {} ADD COLUMN {} ",
                    added.table, added.column
                )),
                "{}",
                added.alter
            );
        }
    }
}
