//! `events`: the append-only log in the bookings' database, which is also
//! the outbox. Writes append to it through the schema's triggers (see
//! [`super::storage`]); here are the reads, and what a delivery — the
//! host's relay, Spin's in-request drain — marks.

use booking_model::{Event, EventKind, PortResult, Timestamp};

use super::rows::{corrupt, get_optional_text, get_text, get_u64};
use super::{Database, Statement, Value};

/// Decodes the `payload` column of every row.
fn payloads(db: &impl Database, statement: Statement) -> PortResult<Vec<Event>> {
    db.run(statement)?
        .rows
        .iter()
        .map(|row| Event::from_json(&get_text(row, 0, "payload")?))
        .collect()
}

/// One booking's events, in commit order.
pub fn event_history(db: &impl Database, booking_id: &str) -> PortResult<Vec<Event>> {
    payloads(
        db,
        Statement::new(
            "SELECT payload FROM events WHERE booking_id = ? ORDER BY seq",
            vec![Value::text(booking_id)],
        ),
    )
}

/// The newest `limit` events of the whole log, oldest first.
pub fn event_tail(db: &impl Database, limit: u32) -> PortResult<Vec<Event>> {
    payloads(
        db,
        Statement::new(
            "SELECT payload FROM (SELECT seq, payload FROM events ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            vec![Value::Integer(i64::from(limit))],
        ),
    )
}

/// An event waiting in the outbox, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpublished {
    pub id: String,
    pub kind: EventKind,
    /// The event JSON ([`Event::to_json`]), byte for byte as written.
    pub payload: String,
    /// The W3C `traceparent` of the write, when the writer traced it.
    pub trace_parent: Option<String>,
}

impl Unpublished {
    pub fn event(&self) -> PortResult<Event> {
        Event::from_json(&self.payload)
    }
}

/// The oldest unpublished events, at most `limit`, in commit order.
pub fn unpublished(db: &impl Database, limit: u32) -> PortResult<Vec<Unpublished>> {
    let statement = Statement::new(
        "SELECT id, kind, payload, trace_parent FROM events WHERE published_at IS NULL \
         ORDER BY seq LIMIT ?",
        vec![Value::Integer(i64::from(limit))],
    );
    db.run(statement)?
        .rows
        .iter()
        .map(|row| {
            let kind = get_text(row, 1, "event kind")?;
            Ok(Unpublished {
                id: get_text(row, 0, "event id")?,
                kind: EventKind::parse(&kind).ok_or_else(|| corrupt("event kind", &kind))?,
                payload: get_text(row, 2, "payload")?,
                trace_parent: get_optional_text(row, 3, "trace parent")?,
            })
        })
        .collect()
}

/// Records the trace context of the write that stored these events.
pub fn set_trace_parent<'a>(
    db: &impl Database,
    ids: impl IntoIterator<Item = &'a str>,
    trace_parent: &str,
) -> PortResult<()> {
    for id in ids {
        db.run(Statement::new(
            "UPDATE events SET trace_parent = ? WHERE id = ?",
            vec![Value::text(trace_parent), Value::text(id)],
        ))?;
    }
    Ok(())
}

/// Marks these events delivered at `at`; one marked already keeps its mark.
pub fn mark_published<'a>(
    db: &impl Database,
    ids: impl IntoIterator<Item = &'a str>,
    at: Timestamp,
) -> PortResult<()> {
    let at = Value::int(at, "published-at")?;
    for id in ids {
        db.run(Statement::new(
            "UPDATE events SET published_at = ? WHERE id = ? AND published_at IS NULL",
            vec![at.clone(), Value::text(id)],
        ))?;
    }
    Ok(())
}

/// With no broker the log is the only sink: everything counts as published.
pub fn mark_all_published(db: &impl Database, at: Timestamp) -> PortResult<()> {
    db.run(Statement::new(
        "UPDATE events SET published_at = ? WHERE published_at IS NULL",
        vec![Value::int(at, "published-at")?],
    ))
    .map(drop)
}

/// How many events wait in the outbox.
pub fn backlog(db: &impl Database) -> PortResult<u64> {
    let outcome = db.run(Statement::plain(
        "SELECT COUNT(*) FROM events WHERE published_at IS NULL",
    ))?;
    match outcome.rows.first() {
        Some(row) => get_u64(row, 0, "backlog"),
        None => Err(corrupt("backlog", "no count")),
    }
}
