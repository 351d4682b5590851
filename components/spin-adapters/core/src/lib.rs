//! What the Spin adapter component (`components/spin-adapters/component`)
//! does beyond what it shares with the host's adapters: everything else —
//! the SQLite schema and statements, the gRPC and REST error maps,
//! gRPC-Web framing — is `booking-adapters-core`'s, and the component only
//! moves values between those functions and the Spin/WASI calls.
//!
//! - [`outbox`]: Spin runs no background task, so the outbox is drained in
//!   the request, over MQTT: the drain and the topics.
//!
//! Kept free of WIT and of any Spin or WASI API, so it builds and is
//! tested natively (`cargo test -p spin-adapters-core`); its tests also
//! run the Spin storage — the shared statements one per call, as Spin's
//! `execute` runs them — on rusqlite (`tests/spin_sqlite.rs`), and the
//! wire logic against the reference peers (`tests/against_peers.rs`).

#![forbid(unsafe_code)]

pub mod outbox;
