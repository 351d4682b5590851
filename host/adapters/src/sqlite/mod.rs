//! The embedded backend: bookings (`storage`) and their event log, which
//! is also the outbox (`events`), in one SQLite file (`database`).

mod database;
pub mod events;
pub mod storage;

pub use database::{Database, unavailable};
pub use events::SqliteEventLog;
pub use storage::SqliteStorage;

#[cfg(test)]
mod upgrade_tests;
