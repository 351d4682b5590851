//! Why a booking operation did not do what was asked. Every error has a
//! stable machine-readable code (what clients branch on; the message is
//! for people and may change) and says whether retrying the same request
//! can succeed.

use async_graphql::ErrorExtensions;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingError {
    /// The request itself is malformed; nothing was touched.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("user {0} not found")]
    UserNotFound(String),
    #[error("user {0} is inactive")]
    UserInactive(String),
    #[error("showtime {0} not found")]
    ShowtimeNotFound(String),
    /// Some seat is locked or booked by someone else, or the seats could
    /// not be kept until the booking was confirmed.
    #[error("{0}")]
    SeatsUnavailable(String),
    #[error("booking {0} not found")]
    BookingNotFound(String),
    /// The seat lock ran out before the booking was paid.
    #[error("booking {0} expired: its seat lock ran out before payment")]
    BookingExpired(String),
    /// The booking's status forbids the operation (e.g. paying a
    /// cancelled booking).
    #[error("{0}")]
    InvalidState(String),
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
    /// The charge may or may not have happened. Retrying processPayment is
    /// safe: it reuses the booking id as idempotency key, so the customer
    /// is never charged twice.
    #[error(
        "payment service did not answer in time ({0}); retry processPayment, it never charges twice"
    )]
    PaymentTimeout(String),
    /// The payment service refused the idempotency key (it was used for a
    /// different charge).
    #[error("payment conflict: {0}")]
    PaymentConflict(String),
    /// Another request changed the booking first (optimistic concurrency).
    #[error("{0}")]
    ConcurrentModification(String),
    #[error("{dependency} unavailable: {detail}")]
    DependencyUnavailable {
        dependency: &'static str,
        detail: String,
    },
    /// The dependency did not answer in time; the call may have taken
    /// effect.
    #[error("{dependency} did not answer in time: {detail}")]
    DependencyTimeout {
        dependency: &'static str,
        detail: String,
    },
    /// No valid bearer token came with a request that needs one.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not touch this user's bookings.
    #[error("{0}")]
    Forbidden(String),
    /// An idempotency key was sent again with other arguments.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// The first request with this idempotency key is still running.
    #[error("{0}")]
    IdempotencyKeyInUse(String),
    /// A dependency answered something the workflow cannot act on.
    #[error("internal error: {0}")]
    Internal(String),
}

impl BookingError {
    /// The stable code clients see in `extensions.code` and payloads.
    pub fn code(&self) -> &'static str {
        match self {
            BookingError::InvalidInput(_) => "INVALID_INPUT",
            BookingError::UserNotFound(_) => "USER_NOT_FOUND",
            BookingError::UserInactive(_) => "USER_INACTIVE",
            BookingError::ShowtimeNotFound(_) => "SHOWTIME_NOT_FOUND",
            BookingError::SeatsUnavailable(_) => "SEATS_UNAVAILABLE",
            BookingError::BookingNotFound(_) => "BOOKING_NOT_FOUND",
            BookingError::BookingExpired(_) => "BOOKING_EXPIRED",
            BookingError::InvalidState(_) => "INVALID_STATE",
            BookingError::PaymentDeclined(_) => "PAYMENT_DECLINED",
            BookingError::PaymentTimeout(_) => "PAYMENT_TIMEOUT",
            BookingError::PaymentConflict(_) => "PAYMENT_CONFLICT",
            BookingError::ConcurrentModification(_) => "CONCURRENT_MODIFICATION",
            BookingError::DependencyUnavailable { .. } => "DEPENDENCY_UNAVAILABLE",
            BookingError::DependencyTimeout { .. } => "DEPENDENCY_TIMEOUT",
            BookingError::Unauthenticated(_) => "UNAUTHENTICATED",
            BookingError::Forbidden(_) => "FORBIDDEN",
            BookingError::IdempotencyKeyReused(_) => "IDEMPOTENCY_KEY_REUSED",
            BookingError::IdempotencyKeyInUse(_) => "IDEMPOTENCY_KEY_IN_USE",
            BookingError::Internal(_) => "INTERNAL",
        }
    }

    /// Whether sending the same request again may succeed: the failure was
    /// transient and the workflow is idempotent under retry.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            BookingError::PaymentTimeout(_)
                | BookingError::ConcurrentModification(_)
                | BookingError::DependencyUnavailable { .. }
                | BookingError::DependencyTimeout { .. }
                | BookingError::IdempotencyKeyInUse(_)
        )
    }
}

/// `async_graphql` converts any `Display` into an error without
/// extensions; going through `extend()` attaches the code instead.
impl ErrorExtensions for BookingError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string()).extend_with(|_, extensions| {
            extensions.set("code", self.code());
            extensions.set("retryable", self.retryable());
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_errors_carry_code_and_retryable() {
        let error = BookingError::PaymentTimeout("charge".into()).extend();
        let extensions = error.extensions.expect("extensions");
        assert_eq!(
            extensions.get("code"),
            Some(&async_graphql::Value::from("PAYMENT_TIMEOUT"))
        );
        assert_eq!(
            extensions.get("retryable"),
            Some(&async_graphql::Value::from(true))
        );

        let error = BookingError::UserNotFound("u1".into()).extend();
        assert_eq!(error.message, "user u1 not found");
        let extensions = error.extensions.expect("extensions");
        assert_eq!(
            extensions.get("retryable"),
            Some(&async_graphql::Value::from(false))
        );
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let retryable: Vec<&str> = [
            BookingError::InvalidInput(String::new()),
            BookingError::SeatsUnavailable(String::new()),
            BookingError::PaymentDeclined(String::new()),
            BookingError::PaymentTimeout(String::new()),
            BookingError::PaymentConflict(String::new()),
            BookingError::ConcurrentModification(String::new()),
            BookingError::DependencyUnavailable {
                dependency: "x",
                detail: String::new(),
            },
            BookingError::DependencyTimeout {
                dependency: "x",
                detail: String::new(),
            },
            BookingError::Unauthenticated(String::new()),
            BookingError::Forbidden(String::new()),
            BookingError::IdempotencyKeyReused(String::new()),
            BookingError::IdempotencyKeyInUse(String::new()),
            BookingError::Internal(String::new()),
        ]
        .iter()
        .filter(|error| error.retryable())
        .map(BookingError::code)
        .collect();
        assert_eq!(
            retryable,
            [
                "PAYMENT_TIMEOUT",
                "CONCURRENT_MODIFICATION",
                "DEPENDENCY_UNAVAILABLE",
                "DEPENDENCY_TIMEOUT",
                "IDEMPOTENCY_KEY_IN_USE"
            ]
        );
    }
}
