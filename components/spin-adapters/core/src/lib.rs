//! Pure logic of the Spin adapter components (`components/spin-adapters`),
//! kept free of WIT and of any Spin or WASI API so it builds and is unit
//! tested natively (`cargo test -p spin-adapters-core`). The component
//! crate next door only moves values between these functions and the
//! Spin/WASI calls.
//!
//! - [`grpc_web`]: gRPC-Web over HTTP/1.1: request framing, response
//!   unframing (data and trailer frames), `grpc-status` → [`Error`].
//! - [`cinema`]: the prost messages of `proto/cinema.proto`.
//! - [`rest`]: URLs, bodies and status → [`Error`] mapping of the User and
//!   Payment services, as `host/adapters/src/{users,payments,rest}.rs`,
//!   and the Payment service's void of an idempotency key.
//! - [`store`]: the SQLite schema and its migration, and every operation
//!   on bookings, idempotency records and the event log (outbox), written
//!   against [`store::Database`] so the tests run them on rusqlite.
//! - [`event_json`]: the event JSON, byte-identical to what the host
//!   publishes to RabbitMQ, and its MQTT topic.

pub mod cinema;
pub mod event_json;
pub mod grpc_web;
pub mod model;
pub mod rest;
pub mod store;

pub use model::Error;
