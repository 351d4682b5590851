//! WIT `subscriptions`: what starting a GraphQL subscription answers.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// A subscription that started (or a query or mutation sent over a
/// subscription transport, answered at once: no topic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// `showtime:<id>` or `booking:<id>`; none when `initial` is all.
    pub topic: Option<String>,
    /// What `project` takes for this subscription's changes.
    pub projection: String,
    /// The caller's user id, for per-user limits.
    pub owner: Option<String>,
    /// When the caller's token stops being valid.
    pub expires_at: Option<Timestamp>,
    /// The first messages (GraphQL responses as JSON).
    pub initial: Vec<String>,
}

/// A subscription refused before it started: a JSON array of GraphQL
/// errors, each with `extensions.code`.
pub type Refusal = String;
