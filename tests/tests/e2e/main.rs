//! The end-to-end tests, one binary: the real host, component and peers
//! over loopback sockets (see `e2e_tests`), one module per area.

mod audit;
mod auth;
mod bad_input;
mod compensation;
mod contention;
mod graphiql_browser;
mod hot_swap;
mod live;
mod native_twin;
mod observability;
mod preinit;
mod quotas;
mod real_backends;
mod sandbox;
mod scale_out;
mod seed_documents;
mod spin_adapters;
mod spin_up;
