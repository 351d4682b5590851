//! The logic's ports implemented by calling the component's WIT imports.
//! Pure forwarding: the record conversions are generated
//! (`booking_model::wit_conversions!`), every decision stays in
//! `booking-logic`.

use std::cell::Cell;
use std::sync::Arc;

use async_trait::async_trait;
use booking_logic::ports::{self, Ports};
use booking_model::{
    Booking, BookingPage, Caller, ChargeRequest, Event, IdempotencyRecord, PageRequest, PortResult,
    Receipt, RefundReceipt, Seat, SeatLock, Showtime, Timestamp, User,
};

use crate::cinema::booking::{events, payments, seats, storage, users};

pub use crate::cinema::booking::types::Error as WitError;

booking_model::wit_conversions! {
    package: crate::cinema::booking,
    maintenance: crate::exports::cinema::booking::maintenance,
}

pub fn ports() -> Ports {
    Ports {
        seats: Arc::new(WitSeats),
        users: Arc::new(WitUsers),
        payments: Arc::new(WitPayments),
        storage: Arc::new(WitStorage),
        events: Arc::new(WitEvents),
        env: Arc::new(WasiEnvironment),
    }
}

thread_local! {
    /// Whether this instance (so this request) called `storage` or
    /// `events`: under Spin the first such call opens the database.
    static STORE_USED: Cell<bool> = const { Cell::new(false) };
}

/// See `STORE_USED`.
pub fn store_used() -> bool {
    STORE_USED.get()
}

fn wit_events(events: &[Event]) -> Vec<storage::Event> {
    events.iter().cloned().map(Into::into).collect()
}

fn model<W: Into<M>, M>(items: Vec<W>) -> Vec<M> {
    items.into_iter().map(Into::into).collect()
}

struct WitSeats;

#[async_trait]
impl ports::Seats for WitSeats {
    async fn get_showtime(&self, showtime_id: &str) -> PortResult<Showtime> {
        Ok(seats::get_showtime(showtime_id)?.into())
    }

    async fn seat_map(&self, showtime_id: &str) -> PortResult<Vec<Seat>> {
        Ok(model(seats::seat_map(showtime_id)?))
    }

    async fn lock_seats(
        &self,
        showtime_id: &str,
        numbers: &[String],
        holder: &str,
        ttl_seconds: u32,
    ) -> PortResult<SeatLock> {
        Ok(seats::lock_seats(showtime_id, numbers, holder, ttl_seconds)?.into())
    }

    async fn confirm_seats(&self, lock_id: &str) -> PortResult<()> {
        Ok(seats::confirm_seats(lock_id)?)
    }

    async fn extend_lock(&self, lock_id: &str, ttl_seconds: u32) -> PortResult<Timestamp> {
        Ok(seats::extend_lock(lock_id, ttl_seconds)?)
    }

    async fn release_seats(&self, lock_id: &str) -> PortResult<()> {
        Ok(seats::release_seats(lock_id)?)
    }
}

struct WitUsers;

#[async_trait]
impl ports::Users for WitUsers {
    async fn get_user(&self, user_id: &str) -> PortResult<User> {
        Ok(users::get_user(user_id)?.into())
    }

    async fn authenticate(&self, token: &str) -> PortResult<Caller> {
        Ok(users::authenticate(token)?.into())
    }
}

struct WitPayments;

#[async_trait]
impl ports::Payments for WitPayments {
    async fn charge(&self, request: &ChargeRequest) -> PortResult<Receipt> {
        Ok(payments::charge(&request.clone().into())?.into())
    }

    async fn refund(&self, transaction_id: &str) -> PortResult<RefundReceipt> {
        Ok(payments::refund(transaction_id)?.into())
    }

    async fn void_charge(&self, idempotency_key: &str) -> PortResult<Option<Receipt>> {
        Ok(payments::void_charge(idempotency_key)?.map(Into::into))
    }
}

struct WitStorage;

#[async_trait]
impl ports::Storage for WitStorage {
    async fn insert(&self, booking: &Booking, events: &[Event]) -> PortResult<()> {
        STORE_USED.set(true);
        Ok(storage::insert(
            &booking.clone().into(),
            &wit_events(events),
        )?)
    }

    async fn get(&self, booking_id: &str) -> PortResult<Option<Booking>> {
        STORE_USED.set(true);
        Ok(storage::get(booking_id)?.map(Into::into))
    }

    async fn update_if_version(
        &self,
        booking: &Booking,
        expected_version: u64,
        events: &[Event],
    ) -> PortResult<u64> {
        STORE_USED.set(true);
        Ok(storage::update_if_version(
            &booking.clone().into(),
            expected_version,
            &wit_events(events),
        )?)
    }

    async fn list_by_user(&self, user_id: &str, page: &PageRequest) -> PortResult<BookingPage> {
        STORE_USED.set(true);
        Ok(storage::list_by_user(user_id, &page.clone().into())?.into())
    }

    async fn list_expired_pending(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        STORE_USED.set(true);
        Ok(model(storage::list_expired_pending(now, limit)?))
    }

    async fn list_unsettled(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        STORE_USED.set(true);
        Ok(model(storage::list_unsettled(now, limit)?))
    }

    async fn insert_idempotency_record(&self, record: &IdempotencyRecord) -> PortResult<()> {
        STORE_USED.set(true);
        Ok(storage::insert_idempotency_record(&record.clone().into())?)
    }

    async fn get_idempotency_record(
        &self,
        user_id: &str,
        key: &str,
    ) -> PortResult<Option<IdempotencyRecord>> {
        STORE_USED.set(true);
        Ok(storage::get_idempotency_record(user_id, key)?.map(Into::into))
    }

    async fn update_idempotency_record(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
    ) -> PortResult<u64> {
        STORE_USED.set(true);
        Ok(storage::update_idempotency_record(
            &record.clone().into(),
            expected_version,
        )?)
    }

    async fn purge_idempotency_records(&self, now: Timestamp, limit: u32) -> PortResult<u32> {
        STORE_USED.set(true);
        Ok(storage::purge_idempotency_records(now, limit)?)
    }
}

struct WitEvents;

#[async_trait]
impl ports::Events for WitEvents {
    async fn history(&self, booking_id: &str) -> PortResult<Vec<Event>> {
        STORE_USED.set(true);
        Ok(model(events::history(booking_id)?))
    }
}

/// Time and ids from WASI: the wall clock and the host's random source.
struct WasiEnvironment;

impl ports::Environment for WasiEnvironment {
    fn now(&self) -> Timestamp {
        let now = wasip2::clocks::wall_clock::now();
        now.seconds * 1000 + u64::from(now.nanoseconds / 1_000_000)
    }

    fn new_id(&self) -> String {
        let high = wasip2::random::random::get_random_u64();
        let low = wasip2::random::random::get_random_u64();
        // RFC 4122 version 4 layout, so ids look like the UUIDs the host uses.
        let high = (high & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
        let low = (low & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xffff,
            high & 0xffff,
            low >> 48,
            low & 0xffff_ffff_ffff
        )
    }
}
