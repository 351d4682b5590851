//! Real implementations of the booking logic's ports, one module per WIT
//! interface, each the same shape: a struct built from its config that
//! implements the port trait and reports its own health.
//!
//! Storage and the event log come in two backends that share a file or a
//! database each (`sqlite.rs`, `mongo.rs`); the event log doubles as the
//! outbox (`outbox.rs`) that the relay (`relay.rs`) forwards to RabbitMQ
//! (`rabbitmq.rs`).

pub mod events;
pub mod mongo;
pub mod mongo_events;
pub mod mongo_storage;
pub mod outbox;
pub mod payments;
pub mod rabbitmq;
pub mod relay;
mod rest;
pub mod seats;
pub mod sqlite;
pub mod storage;
pub mod tls;
pub mod users;
