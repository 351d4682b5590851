//! Bookings, idempotency records and the event log (the outbox) on SQLite,
//! written once for the host (rusqlite, `host/adapters/src/sqlite`) and
//! for Spin (`spin:sqlite`, `components/spin-adapters`): the schema and
//! its migration ([`schema`]), every statement and its outcome
//! ([`storage`], [`events`]), and the row mapping ([`rows`]), against
//! [`Database`], a connection that runs one statement at a time — the
//! most Spin's interface offers. rusqlite implements it with the
//! `rusqlite` feature.
//!
//! **Atomicity comes from single statements.** A versioned update is one
//! `UPDATE … WHERE … AND version = ?` whose changed-row count tells
//! whether it won; inserts are `ON CONFLICT DO NOTHING` with the same
//! check. A booking write and its events are one statement too: the row
//! carries the move's event payloads in `new_events`, and a trigger
//! appends them to `events` and clears the column within that statement,
//! which SQLite commits or rolls back as a whole (trigger included). Spin
//! has no batch call, and a `BEGIN … COMMIT` spread over several calls
//! would hold the write lock across guest code and depend on the host
//! keeping one connection per handle (a remote libSQL backend need not);
//! the single statement depends on neither. The host may still wrap a
//! write and a follow-up (marking the events of a broker-less log
//! delivered) in a transaction of its own.
//!
//! **One corrupt-row policy.** A row that does not read back as the
//! model (an unknown status, a negative or oversized number, bad JSON, a
//! wrong type, a missing column) is `unavailable`, naming the column; a
//! corrupt event payload likewise. Nothing panics, nothing wraps.

pub mod events;
pub mod rows;
#[cfg(feature = "rusqlite")]
mod rusqlite;
pub mod schema;
pub mod storage;

use booking_model::{PortError, PortResult};

pub use events::{
    Unpublished, backlog, event_history, event_tail, mark_all_published, mark_published,
    set_trace_parent, unpublished,
};
pub use schema::migrate;
pub use storage::{
    get_booking, get_idempotency_record, insert_booking, insert_idempotency_record, list_by_user,
    list_expired_pending, list_unsettled, purge_idempotency_records, update_booking,
    update_idempotency_record,
};

/// The value type of SQLite (and of `spin:sqlite`: `integer`, `real`,
/// `text`, `blob`, `null`).
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

    /// SQLite integers are i64: refuse rather than wrap.
    fn int(value: u64, what: &str) -> PortResult<Value> {
        i64::try_from(value)
            .map(Value::Integer)
            .map_err(|_| PortError::Rejected(format!("{what} is too large")))
    }

    fn optional_int(value: Option<u64>, what: &str) -> PortResult<Value> {
        value.map_or(Ok(Value::Null), |value| Value::int(value, what))
    }
}

/// A statement and its parameters (`?` placeholders, in order).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<Value>,
}

impl Statement {
    fn new(sql: &'static str, params: Vec<Value>) -> Statement {
        Statement { sql, params }
    }

    fn plain(sql: &'static str) -> Statement {
        Statement::new(sql, Vec::new())
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
    fn run(&self, statement: Statement) -> PortResult<Outcome>;
}

/// How a database failure reads: `unavailable`, naming the database.
pub fn unavailable(error: impl std::fmt::Display) -> PortError {
    PortError::Unavailable(format!("database: {error}"))
}
