//! WIT `users`: the User service and the bearer tokens it issues.

use crate::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub active: bool,
}

/// Whom a bearer token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    /// e.g. "support", which may read every booking.
    pub roles: Vec<String>,
    pub expires_at: Timestamp,
}
