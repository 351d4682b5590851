//! The Spin-native adapter component of the booking service (issue #8).
//!
//! The booking component imports five `cinema:booking` interfaces. Under
//! our host they are native code; under Spin this component exports them,
//! built only on what Spin gives a component:
//!
//! | interface  | on                                                         |
//! |------------|------------------------------------------------------------|
//! | `seats`    | outbound HTTP/1.1, gRPC-Web to the Cinema service          |
//! | `users`    | outbound HTTP, the User service's REST API                 |
//! | `payments` | outbound HTTP, the Payment service's REST API              |
//! | `storage`  | Spin SQLite, single statements (booking + its events)     |
//! | `events`   | Spin SQLite (event log = outbox) + Spin MQTT to RabbitMQ   |
//!
//! **One component for all five, not one per interface**: Spin
//! instantiates each `[component.booking.dependencies]` entry separately,
//! and the booking component also imports the types-only
//! `cinema:booking/types` interface, which no Spin host provides. A single
//! component exporting the whole package (types included) satisfies every
//! `cinema:booking` import with one manifest key (`"cinema:booking"`) and
//! one instance per request, and nothing of ours is left for Spin to
//! provide. The `http-only` feature builds the three HTTP interfaces alone
//! (settings from environment variables) so that part runs under any
//! `wasi:http` host — the tests run it in wasmtime against the reference
//! peers.
//!
//! Everything with logic in it is in `spin-adapters-core` (natively
//! tested); this crate is WIT glue and Spin/WASI calls, compiled for
//! `wasm32` only.

#[cfg(target_arch = "wasm32")]
mod glue;
