//! `storage` and `events` on Spin SQLite; committed events are relayed to
//! RabbitMQ over Spin's outbound MQTT.
//!
//! The operations are `spin_adapters_core::store`'s: a booking write and
//! its events are one statement (see there), so once `insert` or
//! `update-if-version` returns ok the events are durable in the log, the
//! outbox. Spin runs no background task, so the relay happens in the
//! request: after a write that committed events, and at the start of each
//! sweep (`list-expired-pending`), the oldest unpublished events go out
//! over MQTT (QoS 1, at least once) in commit order, each marked published
//! only after the broker took it; the first failure stops the drain, and
//! the rest wait for the next one. A relay failure never fails the write
//! that preceded it. With no `mqtt_address` set, the log is the only sink.

use std::cell::Cell;

use spin_adapters_core::event_json;
use spin_adapters_core::model::{self as core, Error};
use spin_adapters_core::store::{self, Database, Outcome, Statement, Value};
use spin_sdk::mqtt;
use spin_sdk::sqlite3 as sqlite;

use super::exports::cinema::booking::events;
use super::exports::cinema::booking::storage::{
    self, BookingStatus as WitStatus, Event as WitEvent, EventKind as WitEventKind,
};
use super::exports::cinema::booking::types::Error as WitError;
use super::{Adapters, config, wit_error};

type WitResult<T> = Result<T, WitError>;

const DATABASE: (&str, &str) = ("sqlite_database", "SQLITE_DATABASE");
const MQTT_ADDRESS: (&str, &str) = ("mqtt_address", "MQTT_ADDRESS");
const MQTT_USERNAME: (&str, &str) = ("mqtt_username", "MQTT_USERNAME");
const MQTT_PASSWORD: (&str, &str) = ("mqtt_password", "MQTT_PASSWORD");
/// Events relayed per drain at most.
const DRAIN_BATCH: u32 = 32;

thread_local! {
    /// The schema is migrated once per instance (instances are per request).
    static SCHEMA_READY: Cell<bool> = const { Cell::new(false) };
}

fn db_error(error: sqlite::Error) -> Error {
    Error::Unavailable(format!("database: {error:?}"))
}

struct Db(sqlite::Connection);

impl Db {
    fn open() -> Result<Db, Error> {
        let name = config::required(DATABASE).unwrap_or_else(|_| "default".into());
        let db = Db(sqlite::Connection::open(&name).map_err(db_error)?);
        if !SCHEMA_READY.get() {
            store::migrate(&db)?;
            SCHEMA_READY.set(true);
        }
        Ok(db)
    }
}

impl Database for Db {
    fn run(&self, statement: Statement) -> Result<Outcome, Error> {
        let params: Vec<sqlite::Value> = statement.params.into_iter().map(to_sqlite).collect();
        let result = self.0.execute(statement.sql, &params).map_err(db_error)?;
        let rows = result
            .rows
            .into_iter()
            .map(|row| row.values.into_iter().map(from_sqlite).collect())
            .collect();
        Ok(Outcome {
            rows,
            changes: self.0.changes(),
        })
    }
}

fn to_sqlite(value: Value) -> sqlite::Value {
    match value {
        Value::Integer(n) => sqlite::Value::Integer(n),
        Value::Real(x) => sqlite::Value::Real(x),
        Value::Text(s) => sqlite::Value::Text(s),
        Value::Blob(b) => sqlite::Value::Blob(b),
        Value::Null => sqlite::Value::Null,
    }
}

fn from_sqlite(value: sqlite::Value) -> Value {
    match value {
        sqlite::Value::Integer(n) => Value::Integer(n),
        sqlite::Value::Real(x) => Value::Real(x),
        sqlite::Value::Text(s) => Value::Text(s),
        sqlite::Value::Blob(b) => Value::Blob(b),
        sqlite::Value::Null => Value::Null,
    }
}

fn now_ms() -> u64 {
    let now = wasip2::clocks::wall_clock::now();
    now.seconds * 1000 + u64::from(now.nanoseconds / 1_000_000)
}

fn status_in(status: WitStatus) -> core::BookingStatus {
    match status {
        WitStatus::Pending => core::BookingStatus::Pending,
        WitStatus::Confirmed => core::BookingStatus::Confirmed,
        WitStatus::PaymentFailed => core::BookingStatus::PaymentFailed,
        WitStatus::Failed => core::BookingStatus::Failed,
        WitStatus::Cancelled => core::BookingStatus::Cancelled,
        WitStatus::Expired => core::BookingStatus::Expired,
        WitStatus::Refunded => core::BookingStatus::Refunded,
    }
}

fn status_out(status: core::BookingStatus) -> WitStatus {
    match status {
        core::BookingStatus::Pending => WitStatus::Pending,
        core::BookingStatus::Confirmed => WitStatus::Confirmed,
        core::BookingStatus::PaymentFailed => WitStatus::PaymentFailed,
        core::BookingStatus::Failed => WitStatus::Failed,
        core::BookingStatus::Cancelled => WitStatus::Cancelled,
        core::BookingStatus::Expired => WitStatus::Expired,
        core::BookingStatus::Refunded => WitStatus::Refunded,
    }
}

fn kind_in(kind: WitEventKind) -> core::EventKind {
    match kind {
        WitEventKind::BookingCreated => core::EventKind::BookingCreated,
        WitEventKind::BookingConfirmed => core::EventKind::BookingConfirmed,
        WitEventKind::BookingPaymentFailed => core::EventKind::BookingPaymentFailed,
        WitEventKind::BookingFailed => core::EventKind::BookingFailed,
        WitEventKind::BookingCancelled => core::EventKind::BookingCancelled,
        WitEventKind::BookingExpired => core::EventKind::BookingExpired,
        WitEventKind::BookingRefunded => core::EventKind::BookingRefunded,
        WitEventKind::PaymentRefunded => core::EventKind::PaymentRefunded,
    }
}

fn kind_out(kind: core::EventKind) -> WitEventKind {
    match kind {
        core::EventKind::BookingCreated => WitEventKind::BookingCreated,
        core::EventKind::BookingConfirmed => WitEventKind::BookingConfirmed,
        core::EventKind::BookingPaymentFailed => WitEventKind::BookingPaymentFailed,
        core::EventKind::BookingFailed => WitEventKind::BookingFailed,
        core::EventKind::BookingCancelled => WitEventKind::BookingCancelled,
        core::EventKind::BookingExpired => WitEventKind::BookingExpired,
        core::EventKind::BookingRefunded => WitEventKind::BookingRefunded,
        core::EventKind::PaymentRefunded => WitEventKind::PaymentRefunded,
    }
}

fn booking_in(b: storage::Booking) -> core::Booking {
    core::Booking {
        id: b.id,
        user_id: b.user_id,
        showtime_id: b.showtime_id,
        seats: b.seats,
        total_cents: b.total_cents,
        currency: b.currency,
        status: status_in(b.status),
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

fn booking_out(b: core::Booking) -> storage::Booking {
    storage::Booking {
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

fn bookings_out(items: Vec<core::Booking>) -> Vec<storage::Booking> {
    items.into_iter().map(booking_out).collect()
}

fn event_in(e: WitEvent) -> core::Event {
    core::Event {
        id: e.id,
        kind: kind_in(e.kind),
        occurred_at: e.occurred_at,
        booking_id: e.booking_id,
        user_id: e.user_id,
        showtime_id: e.showtime_id,
        seats: e.seats,
        amount_cents: e.amount_cents,
        currency: e.currency,
        status: status_in(e.status),
        reason: e.reason,
    }
}

fn event_out(e: core::Event) -> WitEvent {
    WitEvent {
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

fn events_in(events: Vec<WitEvent>) -> Vec<core::Event> {
    events.into_iter().map(event_in).collect()
}

fn record_in(r: storage::IdempotencyRecord) -> core::IdempotencyRecord {
    core::IdempotencyRecord {
        user_id: r.user_id,
        key: r.key,
        fingerprint: r.fingerprint,
        response: r.response,
        lease_expires_at: r.lease_expires_at,
        expires_at: r.expires_at,
        version: r.version,
    }
}

fn record_out(r: core::IdempotencyRecord) -> storage::IdempotencyRecord {
    storage::IdempotencyRecord {
        user_id: r.user_id,
        key: r.key,
        fingerprint: r.fingerprint,
        response: r.response,
        lease_expires_at: r.lease_expires_at,
        expires_at: r.expires_at,
        version: r.version,
    }
}

/// Relays what the outbox holds (see the module doc). Failures are only
/// logged: the events stay in the outbox for the next drain.
fn relay(db: &Db) {
    if let Err(error) = try_relay(db) {
        eprintln!("spin-adapters: events wait in the outbox: {error}");
    }
}

fn try_relay(db: &Db) -> Result<(), Error> {
    let Ok(address) = config::required(MQTT_ADDRESS) else {
        return store::mark_all_published(db, now_ms());
    };
    let mqtt_error =
        |what: &str, error: mqtt::Error| Error::Unavailable(format!("MQTT {what}: {error:?}"));
    // Opened on the first event, so a drain with nothing to do costs no connection.
    let mut connection = None;
    store::drain_outbox(db, DRAIN_BATCH, now_ms(), |kind, payload| {
        let connection = match &mut connection {
            Some(connection) => connection,
            None => {
                let username = config::required(MQTT_USERNAME).unwrap_or_default();
                let password = config::required(MQTT_PASSWORD).unwrap_or_default();
                let opened = mqtt::Connection::open(&address, &username, &password, 30)
                    .map_err(|e| mqtt_error("connection", e))?;
                connection.insert(opened)
            }
        };
        connection
            .publish(
                &event_json::mqtt_topic(kind),
                payload.as_bytes(),
                mqtt::Qos::AtLeastOnce,
            )
            .map_err(|e| mqtt_error("publish", e))
    })
    .map(drop)
}

impl storage::Guest for Adapters {
    fn insert(booking: storage::Booking, events: Vec<WitEvent>) -> WitResult<()> {
        (|| {
            let db = Db::open()?;
            let events = events_in(events);
            store::insert_booking(&db, &booking_in(booking), &events)?;
            if !events.is_empty() {
                relay(&db);
            }
            Ok(())
        })()
        .map_err(wit_error)
    }

    fn get(booking_id: String) -> WitResult<Option<storage::Booking>> {
        (|| Ok(store::get_booking(&Db::open()?, &booking_id)?.map(booking_out)))()
            .map_err(wit_error)
    }

    fn update_if_version(
        booking: storage::Booking,
        expected_version: u64,
        events: Vec<WitEvent>,
    ) -> WitResult<u64> {
        (|| {
            let db = Db::open()?;
            let events = events_in(events);
            let version =
                store::update_booking(&db, &booking_in(booking), expected_version, &events)?;
            if !events.is_empty() {
                relay(&db);
            }
            Ok(version)
        })()
        .map_err(wit_error)
    }

    fn list_by_user(
        user_id: String,
        page: storage::PageRequest,
    ) -> WitResult<storage::BookingPage> {
        (|| {
            let (items, next_cursor) =
                store::list_by_user(&Db::open()?, &user_id, page.cursor.as_deref(), page.limit)?;
            Ok(storage::BookingPage {
                items: bookings_out(items),
                next_cursor,
            })
        })()
        .map_err(wit_error)
    }

    /// The sweep's first call, so also its relay of stranded events.
    fn list_expired_pending(now: u64, limit: u32) -> WitResult<Vec<storage::Booking>> {
        (|| {
            let db = Db::open()?;
            relay(&db);
            Ok(bookings_out(store::list_expired_pending(&db, now, limit)?))
        })()
        .map_err(wit_error)
    }

    fn list_unsettled(now: u64, limit: u32) -> WitResult<Vec<storage::Booking>> {
        (|| {
            Ok(bookings_out(store::list_unsettled(
                &Db::open()?,
                now,
                limit,
            )?))
        })()
        .map_err(wit_error)
    }

    fn insert_idempotency_record(record: storage::IdempotencyRecord) -> WitResult<()> {
        (|| store::insert_idempotency_record(&Db::open()?, &record_in(record)))().map_err(wit_error)
    }

    fn get_idempotency_record(
        user_id: String,
        key: String,
    ) -> WitResult<Option<storage::IdempotencyRecord>> {
        (|| Ok(store::get_idempotency_record(&Db::open()?, &user_id, &key)?.map(record_out)))()
            .map_err(wit_error)
    }

    fn update_idempotency_record(
        record: storage::IdempotencyRecord,
        expected_version: u64,
    ) -> WitResult<u64> {
        (|| store::update_idempotency_record(&Db::open()?, &record_in(record), expected_version))()
            .map_err(wit_error)
    }

    fn purge_idempotency_records(now: u64, limit: u32) -> WitResult<u32> {
        (|| store::purge_idempotency_records(&Db::open()?, now, limit))().map_err(wit_error)
    }
}

impl events::Guest for Adapters {
    fn history(booking_id: String) -> WitResult<Vec<WitEvent>> {
        (|| {
            let events = store::event_history(&Db::open()?, &booking_id)?;
            Ok(events.into_iter().map(event_out).collect())
        })()
        .map_err(wit_error)
    }
}
