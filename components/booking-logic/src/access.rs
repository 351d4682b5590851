//! Who is calling and what they may touch.
//!
//! The transport hands over the bearer token; `authenticate` asks the
//! User service (through the `users` port, which caches briefly) whom it
//! stands for. The rules are checked where the booking's owner is known:
//!
//! - mutations act only for the caller: `createBooking(userId)` needs
//!   `userId` = the caller, paying or cancelling needs the caller to own
//!   the booking;
//! - user-scoped reads (a booking, a user's bookings, a booking's events)
//!   are for the owner, or for a caller with the `support` role;
//! - showtimes and version fields are public.
//!
//! With `AUTH_MODE=disabled` (local experiments only) every request may
//! act for any user, as the original service did.

use crate::error::BookingError;
use crate::model::{Caller, Timestamp};
use crate::ports::{PortError, Users};
use crate::workflow::Workflow;

/// The role that may read every user's bookings.
pub const SUPPORT_ROLE: &str = "support";

/// The identity one request runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Authentication is switched off (`AUTH_MODE=disabled`).
    Unchecked,
    /// No token was sent.
    Anonymous,
    Caller(Caller),
}

impl Principal {
    /// The caller, if the operation needs one. `None` when auth is off.
    pub fn require(&self) -> Result<Option<&Caller>, BookingError> {
        match self {
            Principal::Unchecked => Ok(None),
            Principal::Anonymous => Err(BookingError::Unauthenticated(
                "this operation needs a valid token: send Authorization: Bearer <token>"
                    .to_string(),
            )),
            Principal::Caller(caller) => Ok(Some(caller)),
        }
    }

    /// May act (book, pay, cancel) for `user_id`: only as themselves.
    pub fn may_act_for(&self, user_id: &str) -> Result<(), BookingError> {
        match self.require()? {
            // Names nobody: the user id may be a booking's owner, which
            // the caller must not learn.
            Some(caller) if caller.user_id != user_id => Err(BookingError::Forbidden(
                "the caller may act only for their own account and bookings".to_string(),
            )),
            _ => Ok(()),
        }
    }

    /// May read `user_id`'s bookings: as themselves, or with the support
    /// role.
    pub fn may_read(&self, user_id: &str) -> Result<(), BookingError> {
        match self.require()? {
            Some(caller)
                if caller.user_id != user_id
                    && !caller.roles.iter().any(|role| role == SUPPORT_ROLE) =>
            {
                Err(BookingError::Forbidden(
                    "the caller may read only their own bookings".to_string(),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The value of an `Authorization` header, checked to be a bearer token.
pub fn bearer_token(header: &str) -> Result<&str, BookingError> {
    let (scheme, token) = header.trim().split_once(' ').unwrap_or((header, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(BookingError::Unauthenticated(
            "the Authorization header must be \"Bearer <token>\"".to_string(),
        ));
    }
    Ok(token)
}

/// Who a request (or a subscription) with `token` runs as: anyone when
/// auth is off, anonymous without a token, else the caller it stands for.
pub async fn principal(
    workflow: &Workflow,
    token: Option<&str>,
) -> Result<Principal, BookingError> {
    if !workflow.settings().auth_required {
        return Ok(Principal::Unchecked);
    }
    let Some(token) = token else {
        return Ok(Principal::Anonymous);
    };
    let ports = workflow.ports();
    authenticate(ports.users.as_ref(), token, ports.env.now())
        .await
        .map(Principal::Caller)
}

/// The caller behind `token`, asked of the User service.
pub async fn authenticate(
    users: &dyn Users,
    token: &str,
    now: Timestamp,
) -> Result<Caller, BookingError> {
    let invalid = || BookingError::Unauthenticated("the token is invalid or expired".to_string());
    match users.authenticate(token).await {
        Ok(caller) if caller.expires_at > now => Ok(caller),
        Ok(_) => Err(invalid()),
        Err(PortError::Rejected(_) | PortError::NotFound(_)) => Err(invalid()),
        Err(PortError::Timeout(detail)) => Err(BookingError::DependencyTimeout {
            dependency: "user service",
            detail,
        }),
        Err(other) => Err(BookingError::DependencyUnavailable {
            dependency: "user service",
            detail: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(user_id: &str, roles: &[&str]) -> Principal {
        Principal::Caller(Caller {
            user_id: user_id.to_string(),
            roles: roles.iter().map(|role| role.to_string()).collect(),
            expires_at: u64::MAX,
        })
    }

    #[test]
    fn callers_act_only_for_themselves_even_with_the_support_role() {
        assert!(caller("user_123", &[]).may_act_for("user_123").is_ok());
        let error = caller("user_456", &[]).may_act_for("user_123").unwrap_err();
        assert_eq!(error.code(), "FORBIDDEN");
        let error = caller("support_1", &[SUPPORT_ROLE])
            .may_act_for("user_123")
            .unwrap_err();
        assert_eq!(error.code(), "FORBIDDEN");
    }

    #[test]
    fn support_reads_everyone_and_others_only_themselves() {
        assert!(
            caller("support_1", &[SUPPORT_ROLE])
                .may_read("user_123")
                .is_ok()
        );
        assert!(caller("user_123", &[]).may_read("user_123").is_ok());
        let error = caller("user_456", &["reader"])
            .may_read("user_123")
            .unwrap_err();
        assert_eq!(error.code(), "FORBIDDEN");
    }

    #[test]
    fn refusals_name_neither_the_owner_nor_the_caller() {
        for error in [
            caller("user_456", &[]).may_act_for("user_123").unwrap_err(),
            caller("user_456", &[]).may_read("user_123").unwrap_err(),
        ] {
            let message = error.to_string();
            assert!(
                !message.contains("user_123") && !message.contains("user_456"),
                "{message}"
            );
        }
    }

    #[test]
    fn anonymous_is_unauthenticated_and_unchecked_may_do_anything() {
        for check in [
            Principal::Anonymous.may_act_for("user_123"),
            Principal::Anonymous.may_read("user_123"),
        ] {
            assert_eq!(check.unwrap_err().code(), "UNAUTHENTICATED");
        }
        assert!(Principal::Unchecked.may_act_for("anyone").is_ok());
        assert!(Principal::Unchecked.may_read("anyone").is_ok());
    }

    #[test]
    fn only_bearer_headers_with_a_token_are_accepted() {
        assert_eq!(bearer_token("Bearer abc").unwrap(), "abc");
        assert_eq!(bearer_token("bearer  abc ").unwrap(), "abc");
        for header in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "abc", ""] {
            assert_eq!(
                bearer_token(header).unwrap_err().code(),
                "UNAUTHENTICATED",
                "{header:?}"
            );
        }
    }
}
