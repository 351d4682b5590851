//! The booking-logic `Storage` and `Events` ports over the operations of
//! `booking_adapters_core::sqlite`, on a real SQLite file through rusqlite:
//! the Spin adapter's storage with rusqlite in place of Spin's `execute`.
//! Like Spin, every statement runs on its own (autocommit) and every
//! `SpinSqlite::open` is a connection of its own, so several of them on
//! one file race as Spin's instances do.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use booking_adapters_core::sqlite::{self as store, Database, Outcome, Statement};
use booking_logic::model as logic;
use booking_logic::ports::{Events, PortResult, Storage};

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

impl Database for SpinSqlite {
    /// As Spin's in-process SQLite does it: prepare, step every row, then
    /// ask the connection for its change count.
    fn run(&self, statement: Statement) -> PortResult<Outcome> {
        Database::run(&*self.raw(), statement)
    }
}

#[async_trait]
impl Storage for SpinSqlite {
    async fn insert(&self, booking: &logic::Booking, events: &[logic::Event]) -> PortResult<()> {
        store::insert_booking(self, booking, events)
    }

    async fn get(&self, booking_id: &str) -> PortResult<Option<logic::Booking>> {
        store::get_booking(self, booking_id)
    }

    async fn update_if_version(
        &self,
        booking: &logic::Booking,
        expected_version: u64,
        events: &[logic::Event],
    ) -> PortResult<u64> {
        store::update_booking(self, booking, expected_version, events)
    }

    async fn list_by_user(
        &self,
        user_id: &str,
        page: &logic::PageRequest,
    ) -> PortResult<logic::BookingPage> {
        store::list_by_user(self, user_id, page)
    }

    async fn list_expired_pending(
        &self,
        now: logic::Timestamp,
        limit: u32,
    ) -> PortResult<Vec<logic::Booking>> {
        store::list_expired_pending(self, now, limit)
    }

    async fn list_unsettled(
        &self,
        now: logic::Timestamp,
        limit: u32,
    ) -> PortResult<Vec<logic::Booking>> {
        store::list_unsettled(self, now, limit)
    }

    async fn insert_idempotency_record(&self, record: &logic::IdempotencyRecord) -> PortResult<()> {
        store::insert_idempotency_record(self, record)
    }

    async fn get_idempotency_record(
        &self,
        user_id: &str,
        key: &str,
    ) -> PortResult<Option<logic::IdempotencyRecord>> {
        store::get_idempotency_record(self, user_id, key)
    }

    async fn update_idempotency_record(
        &self,
        record: &logic::IdempotencyRecord,
        expected_version: u64,
    ) -> PortResult<u64> {
        store::update_idempotency_record(self, record, expected_version)
    }

    async fn purge_idempotency_records(
        &self,
        now: logic::Timestamp,
        limit: u32,
    ) -> PortResult<u32> {
        store::purge_idempotency_records(self, now, limit)
    }
}

#[async_trait]
impl Events for SpinSqlite {
    async fn history(&self, booking_id: &str) -> PortResult<Vec<logic::Event>> {
        store::event_history(self, booking_id)
    }
}
