//! The logic's ports implemented by calling the component's WIT imports.
//! Pure type mapping: every decision stays in `booking-logic`.

use std::sync::Arc;

use async_trait::async_trait;
use booking_logic::model::{
    Booking, BookingPage, BookingStatus, Caller, ChargeRequest, Event, EventKind,
    IdempotencyRecord, PageRequest, PricedSeat, Receipt, RefundReceipt, Seat, SeatLock, SeatStatus,
    Showtime, Timestamp, User,
};
use booking_logic::ports::{self, PortError, PortResult, Ports};

use crate::cinema::booking::{events, payments, seats, storage, types, users};

pub use types::Error as WitError;

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

fn port_error(error: WitError) -> PortError {
    match error {
        WitError::NotFound(m) => PortError::NotFound(m),
        WitError::Rejected(m) => PortError::Rejected(m),
        WitError::Conflict(m) => PortError::Conflict(m),
        WitError::Unavailable(m) => PortError::Unavailable(m),
        WitError::Timeout(m) => PortError::Timeout(m),
    }
}

struct WitSeats;

#[async_trait]
impl ports::Seats for WitSeats {
    async fn get_showtime(&self, showtime_id: &str) -> PortResult<Showtime> {
        let s = seats::get_showtime(showtime_id).map_err(port_error)?;
        Ok(Showtime {
            id: s.id,
            movie_id: s.movie_id,
            movie_title: s.movie_title,
            theater: s.theater,
            starts_at: s.starts_at,
            currency: s.currency,
            total_seats: s.total_seats,
            available_seats: s.available_seats,
        })
    }

    async fn seat_map(&self, showtime_id: &str) -> PortResult<Vec<Seat>> {
        let map = seats::seat_map(showtime_id).map_err(port_error)?;
        Ok(map
            .into_iter()
            .map(|seat| Seat {
                number: seat.number,
                row: seat.row,
                price_cents: seat.price_cents,
                status: match seat.status {
                    seats::SeatStatus::Available => SeatStatus::Available,
                    seats::SeatStatus::Locked => SeatStatus::Locked,
                    seats::SeatStatus::Booked => SeatStatus::Booked,
                },
            })
            .collect())
    }

    async fn lock_seats(
        &self,
        showtime_id: &str,
        numbers: &[String],
        holder: &str,
        ttl_seconds: u32,
    ) -> PortResult<SeatLock> {
        let lock =
            seats::lock_seats(showtime_id, numbers, holder, ttl_seconds).map_err(port_error)?;
        Ok(SeatLock {
            id: lock.id,
            showtime_id: lock.showtime_id,
            seats: lock
                .seats
                .into_iter()
                .map(|seat| PricedSeat {
                    number: seat.number,
                    price_cents: seat.price_cents,
                })
                .collect(),
            expires_at: lock.expires_at,
        })
    }

    async fn confirm_seats(&self, lock_id: &str) -> PortResult<()> {
        seats::confirm_seats(lock_id).map_err(port_error)
    }

    async fn release_seats(&self, lock_id: &str) -> PortResult<()> {
        seats::release_seats(lock_id).map_err(port_error)
    }
}

struct WitUsers;

#[async_trait]
impl ports::Users for WitUsers {
    async fn get_user(&self, user_id: &str) -> PortResult<User> {
        let user = users::get_user(user_id).map_err(port_error)?;
        Ok(User {
            id: user.id,
            name: user.name,
            email: user.email,
            active: user.active,
        })
    }

    async fn authenticate(&self, token: &str) -> PortResult<Caller> {
        let caller = users::authenticate(token).map_err(port_error)?;
        Ok(Caller {
            user_id: caller.user_id,
            roles: caller.roles,
            expires_at: caller.expires_at,
        })
    }
}

struct WitPayments;

#[async_trait]
impl ports::Payments for WitPayments {
    async fn charge(&self, request: &ChargeRequest) -> PortResult<Receipt> {
        let receipt = payments::charge(&payments::ChargeRequest {
            idempotency_key: request.idempotency_key.clone(),
            amount_cents: request.amount_cents,
            currency: request.currency.clone(),
            method: request.method.clone(),
            details: request.details.clone(),
            description: request.description.clone(),
        })
        .map_err(port_error)?;
        Ok(from_wit_receipt(receipt))
    }

    async fn refund(&self, transaction_id: &str) -> PortResult<RefundReceipt> {
        let refund = payments::refund(transaction_id).map_err(port_error)?;
        Ok(RefundReceipt {
            refund_id: refund.refund_id,
            transaction_id: refund.transaction_id,
            amount_cents: refund.amount_cents,
        })
    }

    async fn void_charge(&self, idempotency_key: &str) -> PortResult<Option<Receipt>> {
        Ok(payments::void_charge(idempotency_key)
            .map_err(port_error)?
            .map(from_wit_receipt))
    }
}

fn from_wit_receipt(receipt: payments::Receipt) -> Receipt {
    Receipt {
        transaction_id: receipt.transaction_id,
        amount_cents: receipt.amount_cents,
        currency: receipt.currency,
        charged_at: receipt.charged_at,
    }
}

struct WitStorage;

fn to_wit_status(status: BookingStatus) -> storage::BookingStatus {
    match status {
        BookingStatus::Pending => storage::BookingStatus::Pending,
        BookingStatus::Confirmed => storage::BookingStatus::Confirmed,
        BookingStatus::PaymentFailed => storage::BookingStatus::PaymentFailed,
        BookingStatus::Failed => storage::BookingStatus::Failed,
        BookingStatus::Cancelled => storage::BookingStatus::Cancelled,
        BookingStatus::Expired => storage::BookingStatus::Expired,
        BookingStatus::Refunded => storage::BookingStatus::Refunded,
    }
}

fn from_wit_status(status: storage::BookingStatus) -> BookingStatus {
    match status {
        storage::BookingStatus::Pending => BookingStatus::Pending,
        storage::BookingStatus::Confirmed => BookingStatus::Confirmed,
        storage::BookingStatus::PaymentFailed => BookingStatus::PaymentFailed,
        storage::BookingStatus::Failed => BookingStatus::Failed,
        storage::BookingStatus::Cancelled => BookingStatus::Cancelled,
        storage::BookingStatus::Expired => BookingStatus::Expired,
        storage::BookingStatus::Refunded => BookingStatus::Refunded,
    }
}

fn to_wit_booking(b: &Booking) -> storage::Booking {
    storage::Booking {
        id: b.id.clone(),
        user_id: b.user_id.clone(),
        showtime_id: b.showtime_id.clone(),
        seats: b.seats.clone(),
        total_cents: b.total_cents,
        currency: b.currency.clone(),
        status: to_wit_status(b.status),
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

fn from_wit_booking(b: storage::Booking) -> Booking {
    Booking {
        id: b.id,
        user_id: b.user_id,
        showtime_id: b.showtime_id,
        seats: b.seats,
        total_cents: b.total_cents,
        currency: b.currency,
        status: from_wit_status(b.status),
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

fn to_wit_record(r: &IdempotencyRecord) -> storage::IdempotencyRecord {
    storage::IdempotencyRecord {
        user_id: r.user_id.clone(),
        key: r.key.clone(),
        fingerprint: r.fingerprint.clone(),
        response: r.response.clone(),
        lease_expires_at: r.lease_expires_at,
        expires_at: r.expires_at,
        version: r.version,
    }
}

fn from_wit_record(r: storage::IdempotencyRecord) -> IdempotencyRecord {
    IdempotencyRecord {
        user_id: r.user_id,
        key: r.key,
        fingerprint: r.fingerprint,
        response: r.response,
        lease_expires_at: r.lease_expires_at,
        expires_at: r.expires_at,
        version: r.version,
    }
}

#[async_trait]
impl ports::Storage for WitStorage {
    async fn insert(&self, booking: &Booking, events: &[Event]) -> PortResult<()> {
        let events: Vec<storage::Event> = events.iter().map(to_wit_event).collect();
        storage::insert(&to_wit_booking(booking), &events).map_err(port_error)
    }

    async fn get(&self, booking_id: &str) -> PortResult<Option<Booking>> {
        Ok(storage::get(booking_id)
            .map_err(port_error)?
            .map(from_wit_booking))
    }

    async fn update_if_version(
        &self,
        booking: &Booking,
        expected_version: u64,
        events: &[Event],
    ) -> PortResult<u64> {
        let events: Vec<storage::Event> = events.iter().map(to_wit_event).collect();
        storage::update_if_version(&to_wit_booking(booking), expected_version, &events)
            .map_err(port_error)
    }

    async fn list_by_user(&self, user_id: &str, page: &PageRequest) -> PortResult<BookingPage> {
        let page = storage::list_by_user(
            user_id,
            &storage::PageRequest {
                cursor: page.cursor.clone(),
                limit: page.limit,
            },
        )
        .map_err(port_error)?;
        Ok(BookingPage {
            items: page.items.into_iter().map(from_wit_booking).collect(),
            next_cursor: page.next_cursor,
        })
    }

    async fn list_expired_pending(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        let expired = storage::list_expired_pending(now, limit).map_err(port_error)?;
        Ok(expired.into_iter().map(from_wit_booking).collect())
    }

    async fn list_unsettled(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        let due = storage::list_unsettled(now, limit).map_err(port_error)?;
        Ok(due.into_iter().map(from_wit_booking).collect())
    }

    async fn insert_idempotency_record(&self, record: &IdempotencyRecord) -> PortResult<()> {
        storage::insert_idempotency_record(&to_wit_record(record)).map_err(port_error)
    }

    async fn get_idempotency_record(
        &self,
        user_id: &str,
        key: &str,
    ) -> PortResult<Option<IdempotencyRecord>> {
        Ok(storage::get_idempotency_record(user_id, key)
            .map_err(port_error)?
            .map(from_wit_record))
    }

    async fn update_idempotency_record(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
    ) -> PortResult<u64> {
        storage::update_idempotency_record(&to_wit_record(record), expected_version)
            .map_err(port_error)
    }

    async fn purge_idempotency_records(&self, now: Timestamp, limit: u32) -> PortResult<u32> {
        storage::purge_idempotency_records(now, limit).map_err(port_error)
    }
}

fn to_wit_event(event: &Event) -> storage::Event {
    storage::Event {
        id: event.id.clone(),
        kind: match event.kind {
            EventKind::BookingCreated => storage::EventKind::BookingCreated,
            EventKind::BookingConfirmed => storage::EventKind::BookingConfirmed,
            EventKind::BookingPaymentFailed => storage::EventKind::BookingPaymentFailed,
            EventKind::BookingFailed => storage::EventKind::BookingFailed,
            EventKind::BookingCancelled => storage::EventKind::BookingCancelled,
            EventKind::BookingExpired => storage::EventKind::BookingExpired,
            EventKind::BookingRefunded => storage::EventKind::BookingRefunded,
            EventKind::PaymentRefunded => storage::EventKind::PaymentRefunded,
        },
        occurred_at: event.occurred_at,
        booking_id: event.booking_id.clone(),
        user_id: event.user_id.clone(),
        showtime_id: event.showtime_id.clone(),
        seats: event.seats.clone(),
        amount_cents: event.amount_cents,
        currency: event.currency.clone(),
        status: to_wit_status(event.status),
        reason: event.reason.clone(),
    }
}

fn from_wit_event(e: storage::Event) -> Event {
    Event {
        id: e.id,
        kind: match e.kind {
            storage::EventKind::BookingCreated => EventKind::BookingCreated,
            storage::EventKind::BookingConfirmed => EventKind::BookingConfirmed,
            storage::EventKind::BookingPaymentFailed => EventKind::BookingPaymentFailed,
            storage::EventKind::BookingFailed => EventKind::BookingFailed,
            storage::EventKind::BookingCancelled => EventKind::BookingCancelled,
            storage::EventKind::BookingExpired => EventKind::BookingExpired,
            storage::EventKind::BookingRefunded => EventKind::BookingRefunded,
            storage::EventKind::PaymentRefunded => EventKind::PaymentRefunded,
        },
        occurred_at: e.occurred_at,
        booking_id: e.booking_id,
        user_id: e.user_id,
        showtime_id: e.showtime_id,
        seats: e.seats,
        amount_cents: e.amount_cents,
        currency: e.currency,
        status: from_wit_status(e.status),
        reason: e.reason,
    }
}

struct WitEvents;

#[async_trait]
impl ports::Events for WitEvents {
    async fn history(&self, booking_id: &str) -> PortResult<Vec<Event>> {
        let history = events::history(booking_id).map_err(port_error)?;
        Ok(history.into_iter().map(from_wit_event).collect())
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
