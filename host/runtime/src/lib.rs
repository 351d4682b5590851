//! Runs the booking component in wasmtime.
//!
//! - `engine`: one shared `Engine` (pooling allocator, epoch interruption).
//! - `component`: a loaded, pre-linked logic component and its identity.
//! - `state`: what one request's `Store` holds, and its limits.
//! - `imports`: the WIT imports, one module per interface, each forwarding
//!   to the logic's port traits (implemented for real in `booking-adapters`).
//! - `runtime`: instantiate per request, run the HTTP handler or the sweep.

mod bindings;
pub mod component;
pub mod engine;
mod imports;
pub mod runtime;
mod state;

pub use component::LogicComponent;
pub use engine::{EngineLimits, SandboxEngine};
pub use runtime::{Runtime, SweepReport};
pub use wasmtime_wasi_http::Error as HttpError;
