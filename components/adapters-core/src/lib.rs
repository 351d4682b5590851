//! What the host's adapters (`host/adapters`) and the Spin adapters
//! (`components/spin-adapters`) share, written once as pure Rust: no I/O,
//! no WIT, no async, so it builds natively (tested here) and for
//! `wasm32-wasip2`. Each side only moves values between these functions
//! and its own transport (tonic, reqwest and rusqlite on the host;
//! `wasi:http`, Spin SQLite and Spin MQTT under Spin).
//!
//! - [`sqlite`]: the schema and its in-place migration, every statement on
//!   bookings, idempotency records and the event log (the outbox), and the
//!   row mapping with its one corrupt-row policy, all written against the
//!   one-statement [`sqlite::Database`] (rusqlite implements it with the
//!   `rusqlite` feature).
//! - [`grpc`]: gRPC status codes and the Cinema service's status → port
//!   error map.
//! - [`grpc_web`]: gRPC-Web over HTTP/1.1 (framing, trailers), for Spin.
//! - [`cinema`]: the prost messages of `proto/cinema.proto`.
//! - [`rest`]: the User and Payment services: URLs, bodies, and the status
//!   and transport failure → port error maps.

#![forbid(unsafe_code)]

pub mod cinema;
pub mod grpc;
pub mod grpc_web;
pub mod rest;
pub mod sqlite;
