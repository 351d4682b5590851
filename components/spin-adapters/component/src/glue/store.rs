//! `storage` and `events` on Spin SQLite; committed events are relayed to
//! RabbitMQ over Spin's outbound MQTT.
//!
//! The operations are `booking_adapters_core::sqlite`'s, the host's too: a
//! booking write and its events are one statement (see there), so once
//! `insert` or `update-if-version` returns ok the events are durable in
//! the log, the outbox. Spin runs no background task, so the relay happens
//! in the request (`spin_adapters_core::outbox`): after a write that
//! committed events, and at the start of each sweep
//! (`list-expired-pending`), the oldest unpublished events go out over
//! MQTT (QoS 1, at least once) in commit order, each marked published
//! only after the broker took it; the first failure stops the drain, and
//! the rest wait for the next one. A relay failure never fails the write
//! that preceded it. With no `mqtt_address` set, the log is the only sink.

use std::cell::RefCell;
use std::rc::Rc;

use booking_adapters_core::sqlite::{self as store, Database, Outcome, Statement, Value};
use booking_model::{Event, PortError, PortResult};
use spin_adapters_core::outbox;
use spin_sdk::mqtt;
use spin_sdk::sqlite3 as sqlite;

use super::exports::cinema::booking::events;
use super::exports::cinema::booking::storage::{self, Event as WitEvent};
use super::{Adapters, WitResult, config, wit, wit_list};

const DATABASE: (&str, &str) = ("sqlite_database", "SQLITE_DATABASE");
const MQTT_ADDRESS: (&str, &str) = ("mqtt_address", "MQTT_ADDRESS");
const MQTT_USERNAME: (&str, &str) = ("mqtt_username", "MQTT_USERNAME");
const MQTT_PASSWORD: (&str, &str) = ("mqtt_password", "MQTT_PASSWORD");
/// Events relayed per drain at most.
const DRAIN_BATCH: u32 = 32;

thread_local! {
    /// One connection per instance (instances are per request), opened
    /// and migrated by the first call that needs it: a Spin SQLite open
    /// and a statement each cost a host call.
    static CONNECTION: RefCell<Option<Rc<Db>>> = const { RefCell::new(None) };
}

fn db_error(error: sqlite::Error) -> PortError {
    store::unavailable(format!("{error:?}"))
}

struct Db(sqlite::Connection);

impl Db {
    /// The instance's connection.
    fn open() -> PortResult<Rc<Db>> {
        if let Some(db) = CONNECTION.with_borrow(Option::clone) {
            return Ok(db);
        }
        let name = config::required(DATABASE).unwrap_or_else(|_| "default".into());
        let db = Db(sqlite::Connection::open(&name).map_err(db_error)?);
        store::migrate(&db)?;
        let db = Rc::new(db);
        CONNECTION.set(Some(db.clone()));
        Ok(db)
    }
}

impl Database for Db {
    fn run(&self, statement: Statement) -> PortResult<Outcome> {
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

fn model_events(events: Vec<WitEvent>) -> Vec<Event> {
    events.into_iter().map(Into::into).collect()
}

/// Relays what the outbox holds (see the module doc). Failures are only
/// logged: the events stay in the outbox for the next drain.
fn relay(db: &Db) {
    if let Err(error) = try_relay(db) {
        eprintln!("spin-adapters: events wait in the outbox: {error}");
    }
}

fn try_relay(db: &Db) -> PortResult<()> {
    let Ok(address) = config::required(MQTT_ADDRESS) else {
        return store::mark_all_published(db, now_ms());
    };
    let mqtt_error =
        |what: &str, error: mqtt::Error| PortError::Unavailable(format!("MQTT {what}: {error:?}"));
    // Opened on the first event, so a drain with nothing to do costs no connection.
    let mut connection = None;
    outbox::drain_outbox(db, DRAIN_BATCH, now_ms(), |kind, payload| {
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
                &outbox::mqtt_topic(kind),
                payload.as_bytes(),
                mqtt::Qos::AtLeastOnce,
            )
            .map_err(|e| mqtt_error("publish", e))
    })
    .map(drop)
}

/// A booking write and its events; relays them once committed.
fn write<T>(
    events: Vec<WitEvent>,
    write: impl FnOnce(&Db, &[Event]) -> PortResult<T>,
) -> PortResult<T> {
    let db = Db::open()?;
    let events = model_events(events);
    let written = write(&db, &events)?;
    if !events.is_empty() {
        relay(&db);
    }
    Ok(written)
}

impl storage::Guest for Adapters {
    fn insert(booking: storage::Booking, events: Vec<WitEvent>) -> WitResult<()> {
        wit(write(events, |db, events| {
            store::insert_booking(db, &booking.into(), events)
        }))
    }

    fn get(booking_id: String) -> WitResult<Option<storage::Booking>> {
        (|| store::get_booking(&*Db::open()?, &booking_id))()
            .map(|found| found.map(Into::into))
            .map_err(Into::into)
    }

    fn update_if_version(
        booking: storage::Booking,
        expected_version: u64,
        events: Vec<WitEvent>,
    ) -> WitResult<u64> {
        wit(write(events, |db, events| {
            store::update_booking(db, &booking.into(), expected_version, events)
        }))
    }

    fn list_by_user(
        user_id: String,
        page: storage::PageRequest,
    ) -> WitResult<storage::BookingPage> {
        wit((|| {
            store::list_by_user(&*Db::open()?, &user_id, &page.into())
        })())
    }

    /// The sweep's first call, so also its relay of stranded events.
    fn list_expired_pending(now: u64, limit: u32) -> WitResult<Vec<storage::Booking>> {
        wit_list((|| {
            let db = Db::open()?;
            relay(&db);
            store::list_expired_pending(&*db, now, limit)
        })())
    }

    fn list_unsettled(now: u64, limit: u32) -> WitResult<Vec<storage::Booking>> {
        wit_list((|| store::list_unsettled(&*Db::open()?, now, limit))())
    }

    fn insert_idempotency_record(record: storage::IdempotencyRecord) -> WitResult<()> {
        wit((|| {
            store::insert_idempotency_record(&*Db::open()?, &record.into())
        })())
    }

    fn get_idempotency_record(
        user_id: String,
        key: String,
    ) -> WitResult<Option<storage::IdempotencyRecord>> {
        (|| store::get_idempotency_record(&*Db::open()?, &user_id, &key))()
            .map(|found| found.map(Into::into))
            .map_err(Into::into)
    }

    fn update_idempotency_record(
        record: storage::IdempotencyRecord,
        expected_version: u64,
    ) -> WitResult<u64> {
        wit((|| {
            store::update_idempotency_record(&*Db::open()?, &record.into(), expected_version)
        })())
    }

    fn purge_idempotency_records(now: u64, limit: u32) -> WitResult<u32> {
        wit((|| {
            store::purge_idempotency_records(&*Db::open()?, now, limit)
        })())
    }
}

impl events::Guest for Adapters {
    fn history(booking_id: String) -> WitResult<Vec<WitEvent>> {
        wit_list((|| store::event_history(&*Db::open()?, &booking_id))())
    }
}
