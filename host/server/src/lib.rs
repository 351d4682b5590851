//! The booking service's native host as a library, so end-to-end tests can
//! start it in-process on real sockets; `main.rs` is the CLI around it.

mod admin;
pub mod admin_cli;
pub mod app;
pub mod config;
mod dependencies;
mod health;
mod http;
pub mod logic;
mod sweeper;
mod watch;
