//! Plain data shared by the ports and the workflow. Field for field the
//! records of `wit/booking.wit`.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
pub type Timestamp = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Showtime {
    pub id: String,
    pub movie_id: String,
    pub movie_title: String,
    pub theater: String,
    pub starts_at: Timestamp,
    pub currency: String,
    pub total_seats: u32,
    pub available_seats: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum SeatStatus {
    Available,
    Locked,
    Booked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub number: String,
    pub row: String,
    pub price_cents: u64,
    pub status: SeatStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedSeat {
    pub number: String,
    pub price_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatLock {
    pub id: String,
    pub showtime_id: String,
    pub seats: Vec<PricedSeat>,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub active: bool,
}

/// Whom a bearer token stands for (WIT `users.caller`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub roles: Vec<String>,
    pub expires_at: Timestamp,
}

/// The first answer to a mutation sent with an idempotency key (WIT
/// `storage.idempotency-record`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Keys are scoped per user: (user_id, key) is the identity.
    pub user_id: String,
    pub key: String,
    /// Digest of the operation and its arguments.
    pub fingerprint: String,
    /// The stored answer (JSON); `None` while the first request runs.
    pub response: Option<String>,
    /// While `response` is `None`, the first request owns the key until
    /// then; afterwards a retry may take it over.
    pub lease_expires_at: Timestamp,
    /// When the record may be forgotten.
    pub expires_at: Timestamp,
    /// Set by the store: 1 on insert, +1 per update.
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub idempotency_key: String,
    pub amount_cents: u64,
    pub currency: String,
    pub method: String,
    pub details: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub transaction_id: String,
    pub amount_cents: u64,
    pub currency: String,
    pub charged_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReceipt {
    pub refund_id: String,
    pub transaction_id: String,
    pub amount_cents: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BookingStatus {
    Pending,
    Confirmed,
    PaymentFailed,
    Failed,
    Cancelled,
    Expired,
    Refunded,
}

impl BookingStatus {
    /// Whether the booking is over: no further status except that a
    /// CONFIRMED booking may still become REFUNDED. Ended bookings are
    /// settled (seats freed, money returned) by the workflow.
    pub fn is_ended(self) -> bool {
        !matches!(self, BookingStatus::Pending | BookingStatus::Confirmed)
    }

    /// The wire name, e.g. `PAYMENT_FAILED` (as in GraphQL and events).
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Pending => "PENDING",
            BookingStatus::Confirmed => "CONFIRMED",
            BookingStatus::PaymentFailed => "PAYMENT_FAILED",
            BookingStatus::Failed => "FAILED",
            BookingStatus::Cancelled => "CANCELLED",
            BookingStatus::Expired => "EXPIRED",
            BookingStatus::Refunded => "REFUNDED",
        }
    }
}

/// Serializable so an idempotent answer can be stored and replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub id: String,
    pub user_id: String,
    pub showtime_id: String,
    pub seats: Vec<String>,
    pub total_cents: u64,
    pub currency: String,
    pub status: BookingStatus,
    pub lock_id: String,
    pub lock_expires_at: Timestamp,
    pub payment_transaction_id: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: u64,
    /// When the latest charge attempt started (written before the charge
    /// is sent): a charge may exist while `payment_transaction_id` is none.
    #[serde(default)]
    pub charge_attempted_at: Option<Timestamp>,
    /// When the Payment service confirmed the refund of the charge.
    #[serde(default)]
    pub refunded_at: Option<Timestamp>,
    /// When the sweep should next settle what the booking owes; `None`
    /// once nothing is.
    #[serde(default)]
    pub settle_after: Option<Timestamp>,
    /// Settle attempts that failed so far (for backoff).
    #[serde(default)]
    pub settle_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub cursor: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingPage {
    pub items: Vec<Booking>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "booking.created")]
    BookingCreated,
    #[serde(rename = "booking.confirmed")]
    BookingConfirmed,
    #[serde(rename = "booking.payment_failed")]
    BookingPaymentFailed,
    #[serde(rename = "booking.failed")]
    BookingFailed,
    #[serde(rename = "booking.cancelled")]
    BookingCancelled,
    #[serde(rename = "booking.expired")]
    BookingExpired,
    #[serde(rename = "booking.refunded")]
    BookingRefunded,
    #[serde(rename = "booking.payment_refunded")]
    PaymentRefunded,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::BookingCreated,
        EventKind::BookingConfirmed,
        EventKind::BookingPaymentFailed,
        EventKind::BookingFailed,
        EventKind::BookingCancelled,
        EventKind::BookingExpired,
        EventKind::BookingRefunded,
        EventKind::PaymentRefunded,
    ];

    /// The routing key / wire name, e.g. `booking.created`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::BookingCreated => "booking.created",
            EventKind::BookingConfirmed => "booking.confirmed",
            EventKind::BookingPaymentFailed => "booking.payment_failed",
            EventKind::BookingFailed => "booking.failed",
            EventKind::BookingCancelled => "booking.cancelled",
            EventKind::BookingExpired => "booking.expired",
            EventKind::BookingRefunded => "booking.refunded",
            EventKind::PaymentRefunded => "booking.payment_refunded",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// A domain event, committed with the booking write it announces; its
/// serde JSON form is what the relay carries on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub occurred_at: Timestamp,
    pub booking_id: String,
    pub user_id: String,
    pub showtime_id: String,
    pub seats: Vec<String>,
    pub amount_cents: u64,
    pub currency: String,
    pub status: BookingStatus,
    pub reason: Option<String>,
}

/// What one sweep did (WIT `maintenance.sweep-report`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Bookings moved to EXPIRED by this call.
    pub expired: u32,
    /// Bookings another sweeper or request changed first.
    pub skipped: u32,
    /// Idempotency records past their retention, deleted.
    pub idempotency_purged: u32,
    /// Ended bookings whose seats, charge and refund are now settled.
    pub settled: u32,
    /// Bookings that still owe something; retried with backoff.
    pub unsettled: u32,
}

impl SweepReport {
    /// Counts a booking that was just settled (or tried to be).
    pub fn count_settlement(&mut self, booking: &Booking) {
        if booking.settle_after.is_none() {
            self.settled = self.settled.saturating_add(1);
        } else {
            self.unsettled = self.unsettled.saturating_add(1);
        }
    }
}
