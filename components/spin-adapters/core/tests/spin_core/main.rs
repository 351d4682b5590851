//! The Spin adapters' core logic tested natively, one binary: the gRPC-Web
//! and REST mapping against the real reference peers (`against_peers`),
//! and the storage statements on a real SQLite as the booking-logic ports
//! (`spin_sqlite`, through `harness`).

mod against_peers;
mod harness;
mod spin_sqlite;
