//! `storage` and `events` on Spin SQLite; events are also forwarded to
//! RabbitMQ over Spin's outbound MQTT.
//!
//! `publish` first appends the event to the log in SQLite (the outbox, as
//! in the host), so once it returns ok the event is durable. It then
//! drains the outbox, oldest first, over MQTT (QoS 1, at least once),
//! marking each event published after the broker took it, and stops at
//! the first failure so events of a booking stay in order; an event the
//! broker did not take waits for the next `publish` (any booking's). With
//! no `mqtt_address` set, the log is the only sink.

use std::cell::Cell;

use spin_adapters_core::event_json;
use spin_adapters_core::model::{self as core, Error};
use spin_adapters_core::store::{self, Statement, Value};
use spin_sdk::mqtt;
use spin_sdk::sqlite3 as sqlite;

use super::exports::cinema::booking::events::{self, Event as WitEvent, EventKind as WitEventKind};
use super::exports::cinema::booking::storage::{self, BookingStatus as WitStatus};
use super::exports::cinema::booking::types::Error as WitError;
use super::{Adapters, config, wit_error};

type WitResult<T> = Result<T, WitError>;

const DATABASE: (&str, &str) = ("sqlite_database", "SQLITE_DATABASE");
const MQTT_ADDRESS: (&str, &str) = ("mqtt_address", "MQTT_ADDRESS");
const MQTT_USERNAME: (&str, &str) = ("mqtt_username", "MQTT_USERNAME");
const MQTT_PASSWORD: (&str, &str) = ("mqtt_password", "MQTT_PASSWORD");
/// Events forwarded per `publish` at most.
const DRAIN_BATCH: u32 = 32;

thread_local! {
    /// The schema is created once per instance (instances are per request).
    static SCHEMA_READY: Cell<bool> = const { Cell::new(false) };
}

fn db_error(error: sqlite::Error) -> Error {
    Error::Unavailable(format!("database: {error:?}"))
}

struct Db(sqlite::Connection);

impl Db {
    fn open() -> Result<Db, Error> {
        let name = config::required(DATABASE).unwrap_or_else(|_| "default".into());
        let connection = sqlite::Connection::open(&name).map_err(db_error)?;
        let db = Db(connection);
        if !SCHEMA_READY.get() {
            for sql in store::SCHEMA {
                db.0.execute(sql, &[]).map_err(db_error)?;
            }
            SCHEMA_READY.set(true);
        }
        Ok(db)
    }

    /// Runs a statement; returns its rows and the changed-row count.
    fn run(&self, statement: Statement) -> Result<(Vec<Vec<Value>>, u64), Error> {
        let params: Vec<sqlite::Value> = statement.params.into_iter().map(to_sqlite).collect();
        let result = self.0.execute(statement.sql, &params).map_err(db_error)?;
        let rows = result
            .rows
            .into_iter()
            .map(|row| row.values.into_iter().map(from_sqlite).collect())
            .collect();
        Ok((rows, self.0.changes()))
    }

    fn rows(&self, statement: Statement) -> Result<Vec<Vec<Value>>, Error> {
        self.run(statement).map(|(rows, _)| rows)
    }

    fn changes(&self, statement: Statement) -> Result<u64, Error> {
        self.run(statement).map(|(_, changes)| changes)
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

const STATUSES: [(WitStatus, core::BookingStatus); 7] = [
    (WitStatus::Pending, core::BookingStatus::Pending),
    (WitStatus::Confirmed, core::BookingStatus::Confirmed),
    (WitStatus::PaymentFailed, core::BookingStatus::PaymentFailed),
    (WitStatus::Failed, core::BookingStatus::Failed),
    (WitStatus::Cancelled, core::BookingStatus::Cancelled),
    (WitStatus::Expired, core::BookingStatus::Expired),
    (WitStatus::Refunded, core::BookingStatus::Refunded),
];

fn status_in(status: WitStatus) -> core::BookingStatus {
    STATUSES
        .iter()
        .find(|(w, _)| *w == status)
        .map(|(_, c)| *c)
        .unwrap_or(core::BookingStatus::Pending)
}

fn status_out(status: core::BookingStatus) -> WitStatus {
    STATUSES
        .iter()
        .find(|(_, c)| *c == status)
        .map(|(w, _)| *w)
        .unwrap_or(WitStatus::Pending)
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
    }
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

fn bookings(rows: Vec<Vec<Value>>) -> Result<Vec<storage::Booking>, Error> {
    rows.iter()
        .map(|row| store::booking_from_row(row).map(booking_out))
        .collect()
}

impl storage::Guest for Adapters {
    fn insert(booking: storage::Booking) -> WitResult<()> {
        (|| {
            let booking = booking_in(booking);
            let db = Db::open()?;
            let changes = db.changes(store::insert_booking(&booking)?)?;
            store::inserted(changes, &format!("booking {}", booking.id))
        })()
        .map_err(wit_error)
    }

    fn get(booking_id: String) -> WitResult<Option<storage::Booking>> {
        (|| {
            let rows = Db::open()?.rows(store::get_booking(&booking_id))?;
            Ok(bookings(rows)?.into_iter().next())
        })()
        .map_err(wit_error)
    }

    fn update_if_version(booking: storage::Booking, expected_version: u64) -> WitResult<u64> {
        (|| {
            let booking = booking_in(booking);
            let db = Db::open()?;
            let changes = db.changes(store::update_booking(&booking, expected_version)?)?;
            store::versioned_outcome(
                changes,
                expected_version,
                &format!("booking {}", booking.id),
                || Ok(!db.rows(store::booking_exists(&booking.id))?.is_empty()),
            )
        })()
        .map_err(wit_error)
    }

    fn list_by_user(
        user_id: String,
        page: storage::PageRequest,
    ) -> WitResult<storage::BookingPage> {
        (|| {
            let (statement, limit) =
                store::list_by_user(&user_id, page.cursor.as_deref(), page.limit)?;
            let rows = Db::open()?.rows(statement)?;
            let items = rows
                .iter()
                .map(|row| store::booking_from_row(row))
                .collect::<Result<Vec<_>, _>>()?;
            let (items, next_cursor) = store::page(items, limit);
            Ok(storage::BookingPage {
                items: items.into_iter().map(booking_out).collect(),
                next_cursor,
            })
        })()
        .map_err(wit_error)
    }

    fn list_expired_pending(now: u64, limit: u32) -> WitResult<Vec<storage::Booking>> {
        (|| bookings(Db::open()?.rows(store::list_expired_pending(now, limit)?)?))()
            .map_err(wit_error)
    }

    fn insert_idempotency_record(record: storage::IdempotencyRecord) -> WitResult<()> {
        (|| {
            let record = record_in(record);
            let changes = Db::open()?.changes(store::insert_idempotency_record(&record)?)?;
            store::inserted(
                changes,
                &format!("idempotency record {}/{}", record.user_id, record.key),
            )
        })()
        .map_err(wit_error)
    }

    fn get_idempotency_record(
        user_id: String,
        key: String,
    ) -> WitResult<Option<storage::IdempotencyRecord>> {
        (|| {
            let rows = Db::open()?.rows(store::get_idempotency_record(&user_id, &key))?;
            rows.first()
                .map(|row| store::idempotency_record_from_row(row).map(record_out))
                .transpose()
        })()
        .map_err(wit_error)
    }

    fn update_idempotency_record(
        record: storage::IdempotencyRecord,
        expected_version: u64,
    ) -> WitResult<u64> {
        (|| {
            let record = record_in(record);
            let db = Db::open()?;
            let changes =
                db.changes(store::update_idempotency_record(&record, expected_version)?)?;
            let what = format!("idempotency record {}/{}", record.user_id, record.key);
            store::versioned_outcome(changes, expected_version, &what, || {
                Ok(!db
                    .rows(store::idempotency_record_exists(
                        &record.user_id,
                        &record.key,
                    ))?
                    .is_empty())
            })
        })()
        .map_err(wit_error)
    }

    fn purge_idempotency_records(now: u64, limit: u32) -> WitResult<u32> {
        (|| {
            let changes = Db::open()?.changes(store::purge_idempotency_records(now, limit)?)?;
            Ok(u32::try_from(changes).unwrap_or(u32::MAX))
        })()
        .map_err(wit_error)
    }
}

const KINDS: [(WitEventKind, core::EventKind); 7] = [
    (
        WitEventKind::BookingCreated,
        core::EventKind::BookingCreated,
    ),
    (
        WitEventKind::BookingConfirmed,
        core::EventKind::BookingConfirmed,
    ),
    (
        WitEventKind::BookingPaymentFailed,
        core::EventKind::BookingPaymentFailed,
    ),
    (WitEventKind::BookingFailed, core::EventKind::BookingFailed),
    (
        WitEventKind::BookingCancelled,
        core::EventKind::BookingCancelled,
    ),
    (
        WitEventKind::BookingExpired,
        core::EventKind::BookingExpired,
    ),
    (
        WitEventKind::BookingRefunded,
        core::EventKind::BookingRefunded,
    ),
];

fn event_in(e: WitEvent) -> core::Event {
    core::Event {
        id: e.id,
        kind: KINDS
            .iter()
            .find(|(w, _)| *w == e.kind)
            .map(|(_, c)| *c)
            .unwrap_or(core::EventKind::BookingCreated),
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
        kind: KINDS
            .iter()
            .find(|(_, c)| *c == e.kind)
            .map(|(w, _)| *w)
            .unwrap_or(WitEventKind::BookingCreated),
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

/// Forwards the oldest unpublished events over MQTT; stops at the first
/// failure. Failures are only logged: the events stay in the outbox.
fn drain_outbox(db: &Db) {
    let Ok(address) = config::required(MQTT_ADDRESS) else {
        // No broker: the log is the only sink, as in the host.
        let _ = mark_all_published(db);
        return;
    };
    let username = config::required(MQTT_USERNAME).unwrap_or_default();
    let password = config::required(MQTT_PASSWORD).unwrap_or_default();
    let connection = match mqtt::Connection::open(&address, &username, &password, 30) {
        Ok(connection) => connection,
        Err(error) => {
            eprintln!(
                "spin-adapters: MQTT connection failed, events wait in the outbox: {error:?}"
            );
            return;
        }
    };
    let Ok(rows) = db.rows(store::unpublished_events(DRAIN_BATCH)) else {
        return;
    };
    for row in rows {
        let (Ok(id), Ok(payload)) = (store::text_column(&row, 0), store::text_column(&row, 1))
        else {
            return;
        };
        let Ok(event) = event_json::from_json(&payload) else {
            return;
        };
        let topic = event_json::mqtt_topic(event.kind);
        if let Err(error) =
            connection.publish(&topic, &payload.into_bytes(), mqtt::Qos::AtLeastOnce)
        {
            eprintln!(
                "spin-adapters: MQTT publish of {id} failed, it waits in the outbox: {error:?}"
            );
            return;
        }
        let Ok(mark) = store::mark_event_published(&id, now_ms()) else {
            return;
        };
        if db.changes(mark).is_err() {
            return;
        }
    }
}

fn mark_all_published(db: &Db) -> Result<(), Error> {
    for row in db.rows(store::unpublished_events(DRAIN_BATCH))? {
        db.changes(store::mark_event_published(
            &store::text_column(&row, 0)?,
            now_ms(),
        )?)?;
    }
    Ok(())
}

impl events::Guest for Adapters {
    fn publish(event: WitEvent) -> WitResult<()> {
        (|| {
            let event = event_in(event);
            let db = Db::open()?;
            // Idempotent by id: a retried publish never duplicates.
            db.changes(store::insert_event(&event)?)?;
            drain_outbox(&db);
            Ok(())
        })()
        .map_err(wit_error)
    }

    fn history(booking_id: String) -> WitResult<Vec<WitEvent>> {
        (|| {
            let rows = Db::open()?.rows(store::event_history(&booking_id))?;
            rows.iter()
                .map(|row| event_json::from_json(&store::text_column(row, 0)?).map(event_out))
                .collect::<Result<Vec<_>, Error>>()
        })()
        .map_err(wit_error)
    }
}
