//! The booking service's logic: the workflow (`workflow`), its GraphQL
//! schema (`schema`) and the GraphQL-over-HTTP handling (`http`), written
//! and subscriptions (`live`), written
//! against the traits in `ports` so the same code runs inside the
//! `booking` component and natively. The records it handles are
//! `booking-model`'s (re-exported as `model`).

#![forbid(unsafe_code)]

pub mod access;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod live;
pub mod ports;
mod query_cost;
mod query_string;
pub mod schema;
pub mod settings;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod validation;
pub mod workflow;

pub use booking_model as model;
pub use error::BookingError;
pub use settings::Settings;
pub use workflow::Workflow;
