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
    /// The detail (what the payment client saw) is logged, not answered.
    #[error(
        "the payment service did not answer in time; retry processPayment, it never charges twice"
    )]
    PaymentTimeout(String),
    /// The charge went through but the booking could not be finished;
    /// retrying processPayment finishes it without charging again.
    #[error("the payment went through; retry processPayment to finish the booking")]
    PaymentUnfinished(String),
    /// The payment service refused the idempotency key (it was used for a
    /// different charge).
    #[error("payment conflict: {0}")]
    PaymentConflict(String),
    /// Another request changed the booking first (optimistic concurrency).
    #[error("{0}")]
    ConcurrentModification(String),
    /// Clients learn which dependency failed, never its answer (it may
    /// name internal hosts); `detail` goes to the log.
    #[error("the {dependency} is unavailable; retry later")]
    DependencyUnavailable {
        dependency: &'static str,
        detail: String,
    },
    /// The dependency did not answer in time; the call may have taken
    /// effect.
    #[error("the {dependency} did not answer in time; retry later")]
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
    /// The user already holds as many seats or PENDING bookings as one
    /// account may (`MAX_PENDING_BOOKINGS_PER_USER`,
    /// `MAX_SEATS_PER_USER_PER_SHOWTIME`).
    #[error("{0}")]
    HoldLimitExceeded(String),
    /// The seat lock already runs as long as it may: a PENDING booking
    /// holds its seats at most `LOCK_MAX_HOLD_SECONDS` after creation.
    #[error("{0}")]
    LockExtensionLimit(String),
    /// A dependency answered something the workflow cannot act on; the
    /// detail goes to the log.
    #[error("internal error; the service log has the detail")]
    Internal(String),
}

impl BookingError {
    /// The codes of a refused idempotency key: reused with other
    /// arguments, and still in use by its first request.
    pub const IDEMPOTENCY_CONFLICT_CODES: [&'static str; 2] =
        ["IDEMPOTENCY_KEY_REUSED", "IDEMPOTENCY_KEY_IN_USE"];

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
            BookingError::DependencyUnavailable { .. } | BookingError::PaymentUnfinished(_) => {
                "DEPENDENCY_UNAVAILABLE"
            }
            BookingError::DependencyTimeout { .. } => "DEPENDENCY_TIMEOUT",
            BookingError::Unauthenticated(_) => "UNAUTHENTICATED",
            BookingError::Forbidden(_) => "FORBIDDEN",
            BookingError::IdempotencyKeyReused(_) => Self::IDEMPOTENCY_CONFLICT_CODES[0],
            BookingError::IdempotencyKeyInUse(_) => Self::IDEMPOTENCY_CONFLICT_CODES[1],
            BookingError::HoldLimitExceeded(_) => "HOLD_LIMIT_EXCEEDED",
            BookingError::LockExtensionLimit(_) => "LOCK_EXTENSION_LIMIT",
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
                | BookingError::PaymentUnfinished(_)
                | BookingError::DependencyTimeout { .. }
                | BookingError::IdempotencyKeyInUse(_)
        )
    }

    /// What a dependency said, kept out of the client's message
    /// (`Display`); `None` for errors that have nothing to hide.
    pub fn hidden_detail(&self) -> Option<&str> {
        match self {
            BookingError::PaymentTimeout(detail)
            | BookingError::PaymentUnfinished(detail)
            | BookingError::DependencyUnavailable { detail, .. }
            | BookingError::DependencyTimeout { detail, .. }
            | BookingError::Internal(detail) => Some(detail),
            _ => None,
        }
    }

    /// Writes the hidden detail to stderr (the host's log), as the error
    /// is answered.
    pub fn log_hidden_detail(&self) {
        if let Some(detail) = self.hidden_detail() {
            eprintln!("{} ({}): {detail}", self.code(), self);
        }
    }
}

/// `async_graphql` converts any `Display` into an error without
/// extensions; going through `extend()` attaches the code instead.
impl ErrorExtensions for BookingError {
    fn extend(&self) -> async_graphql::Error {
        self.log_hidden_detail();
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
    fn dependency_answers_stay_out_of_client_messages() {
        let leaky = "http://payments.internal:8002/charges: connection refused";
        for error in [
            BookingError::DependencyUnavailable {
                dependency: "payment service",
                detail: leaky.into(),
            },
            BookingError::DependencyTimeout {
                dependency: "payment service",
                detail: leaky.into(),
            },
            BookingError::PaymentTimeout(leaky.into()),
            BookingError::Internal(leaky.into()),
        ] {
            let message = error.extend().message;
            assert!(!message.contains("internal:8002"), "{message}");
            assert_eq!(error.hidden_detail(), Some(leaky));
        }
        let unavailable = BookingError::DependencyUnavailable {
            dependency: "payment service",
            detail: leaky.into(),
        };
        assert_eq!(
            unavailable.to_string(),
            "the payment service is unavailable; retry later"
        );
        assert_eq!(BookingError::Forbidden("x".into()).hidden_detail(), None);
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
            BookingError::HoldLimitExceeded(String::new()),
            BookingError::LockExtensionLimit(String::new()),
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
