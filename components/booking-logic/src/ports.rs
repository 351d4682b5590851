//! The logic's ports: one trait per WIT interface, with the same
//! operations and the same error kinds (`wit/booking.wit` is the source of
//! truth). The component implements them by calling WIT imports; the
//! native build and the tests implement them directly.

use std::sync::Arc;

use async_trait::async_trait;

use crate::model::{
    Booking, BookingPage, Caller, ChargeRequest, Event, IdempotencyRecord, PageRequest, Receipt,
    RefundReceipt, Seat, SeatLock, Showtime, Timestamp, User,
};

pub use booking_model::{PortError, PortResult};

#[async_trait]
pub trait Seats: Send + Sync {
    async fn get_showtime(&self, showtime_id: &str) -> PortResult<Showtime>;
    async fn seat_map(&self, showtime_id: &str) -> PortResult<Vec<Seat>>;
    async fn lock_seats(
        &self,
        showtime_id: &str,
        seats: &[String],
        holder: &str,
        ttl_seconds: u32,
    ) -> PortResult<SeatLock>;
    async fn confirm_seats(&self, lock_id: &str) -> PortResult<()>;
    /// Makes a live lock end `ttl_seconds` from now (never earlier than
    /// it does); returns when it ends.
    async fn extend_lock(&self, lock_id: &str, ttl_seconds: u32) -> PortResult<Timestamp>;
    async fn release_seats(&self, lock_id: &str) -> PortResult<()>;
}

#[async_trait]
pub trait Users: Send + Sync {
    async fn get_user(&self, user_id: &str) -> PortResult<User>;
    /// The caller behind a bearer token; `Rejected` if it is not valid.
    async fn authenticate(&self, token: &str) -> PortResult<Caller>;
}

#[async_trait]
pub trait Payments: Send + Sync {
    async fn charge(&self, request: &ChargeRequest) -> PortResult<Receipt>;
    async fn refund(&self, transaction_id: &str) -> PortResult<RefundReceipt>;
    /// Closes `idempotency_key` (later charges with it are `Rejected`) and
    /// returns the successful charge made with it before, if any.
    async fn void_charge(&self, idempotency_key: &str) -> PortResult<Option<Receipt>>;
}

#[async_trait]
pub trait Storage: Send + Sync {
    /// Stores a new booking with version 1 and its events, atomically;
    /// `Conflict` if the id exists.
    async fn insert(&self, booking: &Booking, events: &[Event]) -> PortResult<()>;
    async fn get(&self, booking_id: &str) -> PortResult<Option<Booking>>;
    /// Replaces the booking if its stored version is `expected_version`
    /// and appends `events` in the same atomic write; returns the new
    /// version.
    async fn update_if_version(
        &self,
        booking: &Booking,
        expected_version: u64,
        events: &[Event],
    ) -> PortResult<u64>;
    async fn list_by_user(&self, user_id: &str, page: &PageRequest) -> PortResult<BookingPage>;
    async fn list_expired_pending(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>>;
    /// Bookings whose `settle_after` is at or before `now`, earliest first.
    async fn list_unsettled(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>>;

    /// Stores a new record with version 1; `Conflict` if (user, key) exists.
    async fn insert_idempotency_record(&self, record: &IdempotencyRecord) -> PortResult<()>;
    async fn get_idempotency_record(
        &self,
        user_id: &str,
        key: &str,
    ) -> PortResult<Option<IdempotencyRecord>>;
    /// Replaces the record if its stored version is `expected_version`;
    /// returns the new version.
    async fn update_idempotency_record(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
    ) -> PortResult<u64>;
    /// Deletes up to `limit` records that expired before `now`.
    async fn purge_idempotency_records(&self, now: Timestamp, limit: u32) -> PortResult<u32>;
}

/// Reading events; they are written by `Storage` with their booking.
#[async_trait]
pub trait Events: Send + Sync {
    /// A booking's events in commit order.
    async fn history(&self, booking_id: &str) -> PortResult<Vec<Event>>;
}

/// Time and identity. In the component these come from WASI (wall clock,
/// random); tests and simulations control them.
pub trait Environment: Send + Sync {
    fn now(&self) -> Timestamp;
    /// A fresh unique id (used for bookings and events).
    fn new_id(&self) -> String;
}

/// Everything the logic talks to, bundled.
#[derive(Clone)]
pub struct Ports {
    pub seats: Arc<dyn Seats>,
    pub users: Arc<dyn Users>,
    pub payments: Arc<dyn Payments>,
    pub storage: Arc<dyn Storage>,
    pub events: Arc<dyn Events>,
    pub env: Arc<dyn Environment>,
}
