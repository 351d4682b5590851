//! The contract's data as plain Rust: field for field the records, enums
//! and error of `wit/booking.wit`, one module per WIT interface. Every
//! side of the contract uses these types — the logic (`booking-logic`),
//! the component glue, the host's WIT imports and adapters, and the Spin
//! adapters — and converts to and from its own WIT bindings with the
//! code [`wit_conversions!`] generates, so a record is written down once
//! here and once in WIT.
//!
//! Depends on serde only: it builds for the component, the host and Spin.

#![forbid(unsafe_code)]

mod error;
mod event;
mod maintenance;
pub mod paging;
mod payments;
pub mod report;
mod seats;
mod storage;
mod subscriptions;
mod users;
#[doc(hidden)]
pub mod wit;

pub use error::{PortError, PortResult};
pub use event::{Event, EventKind};
pub use maintenance::SweepReport;
pub use payments::{ChargeRequest, Receipt, RefundReceipt};
pub use seats::{PricedSeat, Seat, SeatLock, SeatStatus, Showtime};
pub use storage::{Booking, BookingPage, BookingStatus, IdempotencyRecord, PageRequest};
pub use subscriptions::{Refusal, Subscription};
pub use users::{Caller, User};

/// Milliseconds since the Unix epoch, UTC (WIT `types.timestamp`).
pub type Timestamp = u64;
