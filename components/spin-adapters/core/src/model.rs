//! Plain mirrors of the WIT records the adapters handle
//! (`wit/booking.wit`), so the logic here needs no bindings.

/// `cinema:booking/types.error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    NotFound(String),
    Rejected(String),
    Conflict(String),
    Unavailable(String),
    Timeout(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, message) = match self {
            Error::NotFound(m) => ("not found", m),
            Error::Rejected(m) => ("rejected", m),
            Error::Conflict(m) => ("conflict", m),
            Error::Unavailable(m) => ("unavailable", m),
            Error::Timeout(m) => ("timeout", m),
        };
        write!(f, "{kind}: {message}")
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// `storage.booking-status`, in WIT order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    /// The wire name (events, GraphQL, the SQLite column), e.g. `PAYMENT_FAILED`.
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
        BookingStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// `storage.event-kind`, in WIT order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    BookingCreated,
    BookingConfirmed,
    BookingPaymentFailed,
    BookingFailed,
    BookingCancelled,
    BookingExpired,
    BookingRefunded,
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

    /// The event type and AMQP routing key, e.g. `booking.created`.
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
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub id: String,
    pub user_id: String,
    pub showtime_id: String,
    pub seats: Vec<String>,
    pub total_cents: u64,
    pub currency: String,
    pub status: BookingStatus,
    pub lock_id: String,
    pub lock_expires_at: u64,
    pub payment_transaction_id: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    pub version: u64,
    pub charge_attempted_at: Option<u64>,
    pub refunded_at: Option<u64>,
    pub settle_after: Option<u64>,
    pub settle_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub user_id: String,
    pub key: String,
    pub fingerprint: String,
    pub response: Option<String>,
    pub lease_expires_at: u64,
    pub expires_at: u64,
    pub version: u64,
}

/// `storage.event`: committed with the booking write it announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub kind: EventKind,
    pub occurred_at: u64,
    pub booking_id: String,
    pub user_id: String,
    pub showtime_id: String,
    pub seats: Vec<String>,
    pub amount_cents: u64,
    pub currency: String,
    pub status: BookingStatus,
    pub reason: Option<String>,
}
