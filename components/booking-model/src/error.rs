//! WIT `types.error`: why a call to a dependency failed.

use std::fmt;

/// Why a port call failed. The kind tells the logic what to compensate;
/// the message is for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    /// The thing asked for does not exist. Nothing changed.
    NotFound(String),
    /// Understood and refused (a declined card, an unknown seat).
    Rejected(String),
    /// The current state forbids it (held seats, a stale version).
    Conflict(String),
    /// The dependency could not be reached. Nothing changed.
    Unavailable(String),
    /// No answer in time: the call may have taken effect.
    Timeout(String),
}

pub type PortResult<T> = Result<T, PortError>;

impl PortError {
    /// The kind as a metric label: `not_found`, `rejected`, `conflict`,
    /// `unavailable` or `timeout`.
    pub fn kind(&self) -> &'static str {
        match self {
            PortError::NotFound(_) => "not_found",
            PortError::Rejected(_) => "rejected",
            PortError::Conflict(_) => "conflict",
            PortError::Unavailable(_) => "unavailable",
            PortError::Timeout(_) => "timeout",
        }
    }
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, message) = match self {
            PortError::NotFound(m) => ("not found", m),
            PortError::Rejected(m) => ("rejected", m),
            PortError::Conflict(m) => ("conflict", m),
            PortError::Unavailable(m) => ("unavailable", m),
            PortError::Timeout(m) => ("timeout", m),
        };
        write!(f, "{kind}: {message}")
    }
}

impl std::error::Error for PortError {}
