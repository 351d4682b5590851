//! Real implementations of the booking logic's ports, one module per WIT
//! interface, each the same shape (`adapter.rs`): a struct built from its
//! config that implements its port trait and [`Adapter`] — its name, its
//! construction, its health check.
//!
//! Storage and the event log come in two backends, a module each with
//! the same files (`sqlite/`, `mongo/`: `database`, `storage`, `events`);
//! the event log doubles as the outbox (`outbox.rs`) that the relay
//! (`relay.rs`) forwards to RabbitMQ (`rabbitmq.rs`).

mod adapter;
pub mod changes;
pub mod mongo;
pub mod outbox;
pub mod payments;
pub mod rabbitmq;
pub mod relay;
mod rest;
pub mod seats;
pub mod sqlite;
pub mod tls;
pub mod users;

pub use adapter::{Adapter, HealthCheck};
