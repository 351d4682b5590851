//! The MongoDB backend: bookings (`storage`) with their events embedded
//! in the same documents until the relay moves them (`events`), on one
//! driver client (`database`).

mod database;
pub mod events;
pub mod storage;

pub use database::{DEFAULT_DATABASE, Durability, MongoConfig, MongoDatabase, Operation};
pub use events::MongoEventLog;
pub use storage::MongoStorage;
