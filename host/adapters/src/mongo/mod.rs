//! The MongoDB backend: bookings (`storage`) with their events embedded
//! in the same documents until the relay moves them (`events`), on one
//! driver client (`database`); and, for a fleet of hosts on one
//! database, the deployment they share (`fleet`).

mod database;
pub mod events;
pub mod fleet;
pub mod storage;

pub use database::{DEFAULT_DATABASE, Durability, MongoConfig, MongoDatabase, Operation};
pub use events::MongoEventLog;
pub use fleet::{FleetDeployment, MongoFleet, ReplicaStatus};
pub use storage::MongoStorage;
