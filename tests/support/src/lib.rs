//! Helpers shared by the tests of several crates (a dev-dependency of
//! `booking-adapters` and `e2e-tests`, and used by `booking-bench`): where the real test servers are
//! and a proxy to cut them off (`servers`), throwaway TLS CAs and a TLS
//! front (`tls`), a consumer of the events on RabbitMQ (`amqp`), HAProxy
//! in front of several hosts (`haproxy`), and the
//! Spin CLI with `spin.toml` rewritten for a run of its own (`spin`).
//! Nothing here knows the booking crates.

pub mod amqp;
pub mod haproxy;
pub mod servers;
pub mod spin;
pub mod tls;

pub use servers::{Proxy, service_url, unique};
