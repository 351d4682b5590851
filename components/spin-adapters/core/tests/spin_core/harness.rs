//! The booking-logic `Storage` and `Events` ports over the operations of
//! `spin_adapters_core::store`, on a real SQLite file through rusqlite:
//! the Spin adapter's storage with rusqlite in place of Spin's `execute`.
//! Like Spin, every statement runs on its own (autocommit) and every
//! `SpinSqlite::open` is a connection of its own, so several of them on
//! one file race as Spin's instances do.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use booking_logic::model as logic;
use booking_logic::ports::{Events, PortError, PortResult, Storage};
use spin_adapters_core::model as core;
use spin_adapters_core::store::{self, Database, Outcome, Statement, Value};

pub struct SpinSqlite {
    connection: Mutex<rusqlite::Connection>,
}

impl SpinSqlite {
    /// Opens (creating or migrating) the database at `path`.
    pub fn open(path: &Path) -> SpinSqlite {
        let db = SpinSqlite::unmigrated(path);
        store::migrate(&db).expect("migrate");
        db
    }

    /// A connection that has not run the migration.
    pub fn unmigrated(path: &Path) -> SpinSqlite {
        SpinSqlite {
            connection: Mutex::new(rusqlite::Connection::open(path).expect("open SQLite")),
        }
    }

    /// The raw connection, to set up or inspect what the statements did.
    pub fn raw(&self) -> MutexGuard<'_, rusqlite::Connection> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn to_sql(value: Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as Sql;
    match value {
        Value::Integer(n) => Sql::Integer(n),
        Value::Real(x) => Sql::Real(x),
        Value::Text(s) => Sql::Text(s),
        Value::Blob(b) => Sql::Blob(b),
        Value::Null => Sql::Null,
    }
}

fn from_sql(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Real(x) => Value::Real(x),
        ValueRef::Text(s) => Value::Text(String::from_utf8_lossy(s).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Null => Value::Null,
    }
}

impl Database for SpinSqlite {
    /// As Spin's in-process SQLite does it: prepare, step every row, then
    /// ask the connection for its change count.
    fn run(&self, statement: Statement) -> core::Result<Outcome> {
        let error = |e: rusqlite::Error| core::Error::Unavailable(format!("database: {e}"));
        let connection = self.raw();
        let mut prepared = connection.prepare_cached(statement.sql).map_err(error)?;
        let columns = prepared.column_count();
        let mut rows = prepared
            .query(rusqlite::params_from_iter(
                statement.params.into_iter().map(to_sql),
            ))
            .map_err(error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(error)? {
            out.push(
                (0..columns)
                    .map(|at| row.get_ref(at).map(from_sql))
                    .collect::<Result<_, _>>()
                    .map_err(error)?,
            );
        }
        drop(rows);
        drop(prepared);
        Ok(Outcome {
            rows: out,
            changes: connection.changes(),
        })
    }
}

fn port_error(error: core::Error) -> PortError {
    match error {
        core::Error::NotFound(m) => PortError::NotFound(m),
        core::Error::Rejected(m) => PortError::Rejected(m),
        core::Error::Conflict(m) => PortError::Conflict(m),
        core::Error::Unavailable(m) => PortError::Unavailable(m),
        core::Error::Timeout(m) => PortError::Timeout(m),
    }
}

fn status_in(status: logic::BookingStatus) -> core::BookingStatus {
    match status {
        logic::BookingStatus::Pending => core::BookingStatus::Pending,
        logic::BookingStatus::Confirmed => core::BookingStatus::Confirmed,
        logic::BookingStatus::PaymentFailed => core::BookingStatus::PaymentFailed,
        logic::BookingStatus::Failed => core::BookingStatus::Failed,
        logic::BookingStatus::Cancelled => core::BookingStatus::Cancelled,
        logic::BookingStatus::Expired => core::BookingStatus::Expired,
        logic::BookingStatus::Refunded => core::BookingStatus::Refunded,
    }
}

fn status_out(status: core::BookingStatus) -> logic::BookingStatus {
    match status {
        core::BookingStatus::Pending => logic::BookingStatus::Pending,
        core::BookingStatus::Confirmed => logic::BookingStatus::Confirmed,
        core::BookingStatus::PaymentFailed => logic::BookingStatus::PaymentFailed,
        core::BookingStatus::Failed => logic::BookingStatus::Failed,
        core::BookingStatus::Cancelled => logic::BookingStatus::Cancelled,
        core::BookingStatus::Expired => logic::BookingStatus::Expired,
        core::BookingStatus::Refunded => logic::BookingStatus::Refunded,
    }
}

fn kind_in(kind: logic::EventKind) -> core::EventKind {
    match kind {
        logic::EventKind::BookingCreated => core::EventKind::BookingCreated,
        logic::EventKind::BookingConfirmed => core::EventKind::BookingConfirmed,
        logic::EventKind::BookingPaymentFailed => core::EventKind::BookingPaymentFailed,
        logic::EventKind::BookingFailed => core::EventKind::BookingFailed,
        logic::EventKind::BookingCancelled => core::EventKind::BookingCancelled,
        logic::EventKind::BookingExpired => core::EventKind::BookingExpired,
        logic::EventKind::BookingRefunded => core::EventKind::BookingRefunded,
        logic::EventKind::PaymentRefunded => core::EventKind::PaymentRefunded,
    }
}

fn kind_out(kind: core::EventKind) -> logic::EventKind {
    match kind {
        core::EventKind::BookingCreated => logic::EventKind::BookingCreated,
        core::EventKind::BookingConfirmed => logic::EventKind::BookingConfirmed,
        core::EventKind::BookingPaymentFailed => logic::EventKind::BookingPaymentFailed,
        core::EventKind::BookingFailed => logic::EventKind::BookingFailed,
        core::EventKind::BookingCancelled => logic::EventKind::BookingCancelled,
        core::EventKind::BookingExpired => logic::EventKind::BookingExpired,
        core::EventKind::BookingRefunded => logic::EventKind::BookingRefunded,
        core::EventKind::PaymentRefunded => logic::EventKind::PaymentRefunded,
    }
}

fn booking_in(b: &logic::Booking) -> core::Booking {
    core::Booking {
        id: b.id.clone(),
        user_id: b.user_id.clone(),
        showtime_id: b.showtime_id.clone(),
        seats: b.seats.clone(),
        total_cents: b.total_cents,
        currency: b.currency.clone(),
        status: status_in(b.status),
        lock_id: b.lock_id.clone(),
        lock_expires_at: b.lock_expires_at,
        payment_transaction_id: b.payment_transaction_id.clone(),
        failure_reason: b.failure_reason.clone(),
        created_at: b.created_at,
        updated_at: b.updated_at,
        version: b.version,
        charge_attempted_at: b.charge_attempted_at,
        refunded_at: b.refunded_at,
        settle_after: b.settle_after,
        settle_attempts: b.settle_attempts,
    }
}

fn booking_out(b: core::Booking) -> logic::Booking {
    logic::Booking {
        id: b.id,
        user_id: b.user_id,
        showtime_id: b.showtime_id,
        seats: b.seats,
        total_cents: b.total_cents,
        currency: b.currency,
        status: status_out(b.status),
        lock_id: b.lock_id,
        lock_expires_at: b.lock_expires_at,
        payment_transaction_id: b.payment_transaction_id,
        failure_reason: b.failure_reason,
        created_at: b.created_at,
        updated_at: b.updated_at,
        version: b.version,
        charge_attempted_at: b.charge_attempted_at,
        refunded_at: b.refunded_at,
        settle_after: b.settle_after,
        settle_attempts: b.settle_attempts,
    }
}

pub fn event_in(e: &logic::Event) -> core::Event {
    core::Event {
        id: e.id.clone(),
        kind: kind_in(e.kind),
        occurred_at: e.occurred_at,
        booking_id: e.booking_id.clone(),
        user_id: e.user_id.clone(),
        showtime_id: e.showtime_id.clone(),
        seats: e.seats.clone(),
        amount_cents: e.amount_cents,
        currency: e.currency.clone(),
        status: status_in(e.status),
        reason: e.reason.clone(),
    }
}

fn event_out(e: core::Event) -> logic::Event {
    logic::Event {
        id: e.id,
        kind: kind_out(e.kind),
        occurred_at: e.occurred_at,
        booking_id: e.booking_id,
        user_id: e.user_id,
        showtime_id: e.showtime_id,
        seats: e.seats,
        amount_cents: e.amount_cents,
        currency: e.currency,
        status: status_out(e.status),
        reason: e.reason,
    }
}

fn events_in(events: &[logic::Event]) -> Vec<core::Event> {
    events.iter().map(event_in).collect()
}

fn record_in(r: &logic::IdempotencyRecord) -> core::IdempotencyRecord {
    core::IdempotencyRecord {
        user_id: r.user_id.clone(),
        key: r.key.clone(),
        fingerprint: r.fingerprint.clone(),
        response: r.response.clone(),
        lease_expires_at: r.lease_expires_at,
        expires_at: r.expires_at,
        version: r.version,
    }
}

fn record_out(r: core::IdempotencyRecord) -> logic::IdempotencyRecord {
    logic::IdempotencyRecord {
        user_id: r.user_id,
        key: r.key,
        fingerprint: r.fingerprint,
        response: r.response,
        lease_expires_at: r.lease_expires_at,
        expires_at: r.expires_at,
        version: r.version,
    }
}

fn bookings_out(items: Vec<core::Booking>) -> Vec<logic::Booking> {
    items.into_iter().map(booking_out).collect()
}

#[async_trait]
impl Storage for SpinSqlite {
    async fn insert(&self, booking: &logic::Booking, events: &[logic::Event]) -> PortResult<()> {
        store::insert_booking(self, &booking_in(booking), &events_in(events)).map_err(port_error)
    }

    async fn get(&self, booking_id: &str) -> PortResult<Option<logic::Booking>> {
        store::get_booking(self, booking_id)
            .map(|found| found.map(booking_out))
            .map_err(port_error)
    }

    async fn update_if_version(
        &self,
        booking: &logic::Booking,
        expected_version: u64,
        events: &[logic::Event],
    ) -> PortResult<u64> {
        store::update_booking(
            self,
            &booking_in(booking),
            expected_version,
            &events_in(events),
        )
        .map_err(port_error)
    }

    async fn list_by_user(
        &self,
        user_id: &str,
        page: &logic::PageRequest,
    ) -> PortResult<logic::BookingPage> {
        let (items, next_cursor) =
            store::list_by_user(self, user_id, page.cursor.as_deref(), page.limit)
                .map_err(port_error)?;
        Ok(logic::BookingPage {
            items: bookings_out(items),
            next_cursor,
        })
    }

    async fn list_expired_pending(
        &self,
        now: logic::Timestamp,
        limit: u32,
    ) -> PortResult<Vec<logic::Booking>> {
        store::list_expired_pending(self, now, limit)
            .map(bookings_out)
            .map_err(port_error)
    }

    async fn list_unsettled(
        &self,
        now: logic::Timestamp,
        limit: u32,
    ) -> PortResult<Vec<logic::Booking>> {
        store::list_unsettled(self, now, limit)
            .map(bookings_out)
            .map_err(port_error)
    }

    async fn insert_idempotency_record(&self, record: &logic::IdempotencyRecord) -> PortResult<()> {
        store::insert_idempotency_record(self, &record_in(record)).map_err(port_error)
    }

    async fn get_idempotency_record(
        &self,
        user_id: &str,
        key: &str,
    ) -> PortResult<Option<logic::IdempotencyRecord>> {
        store::get_idempotency_record(self, user_id, key)
            .map(|found| found.map(record_out))
            .map_err(port_error)
    }

    async fn update_idempotency_record(
        &self,
        record: &logic::IdempotencyRecord,
        expected_version: u64,
    ) -> PortResult<u64> {
        store::update_idempotency_record(self, &record_in(record), expected_version)
            .map_err(port_error)
    }

    async fn purge_idempotency_records(
        &self,
        now: logic::Timestamp,
        limit: u32,
    ) -> PortResult<u32> {
        store::purge_idempotency_records(self, now, limit).map_err(port_error)
    }
}

#[async_trait]
impl Events for SpinSqlite {
    async fn history(&self, booking_id: &str) -> PortResult<Vec<logic::Event>> {
        store::event_history(self, booking_id)
            .map(|events| events.into_iter().map(event_out).collect())
            .map_err(port_error)
    }
}
