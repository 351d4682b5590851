//! WIT `storage`: durable bookings and idempotency records.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// In WIT order. The wire name (GraphQL, events, the stores' status
/// column) is the SCREAMING_SNAKE_CASE form, e.g. `PAYMENT_FAILED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    pub const ALL: [BookingStatus; 7] = [
        BookingStatus::Pending,
        BookingStatus::Confirmed,
        BookingStatus::PaymentFailed,
        BookingStatus::Failed,
        BookingStatus::Cancelled,
        BookingStatus::Expired,
        BookingStatus::Refunded,
    ];

    /// The wire name, e.g. `PAYMENT_FAILED`.
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

    pub fn parse(name: &str) -> Option<BookingStatus> {
        BookingStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
    }

    /// Whether the booking is over: no further status except that a
    /// CONFIRMED booking may still become REFUNDED. Ended bookings are
    /// settled (seats freed, money returned) by the workflow.
    pub fn is_ended(self) -> bool {
        !matches!(self, BookingStatus::Pending | BookingStatus::Confirmed)
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
    /// Why the booking ended in a failure state, for people.
    pub failure_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Set by the store: 1 on insert, +1 on every update.
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
    /// Opaque cursor from a previous page (`paging::Cursor`).
    pub cursor: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingPage {
    /// Newest first.
    pub items: Vec<Booking>,
    pub next_cursor: Option<String>,
}

/// The first answer to a mutation sent with an idempotency key.
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
