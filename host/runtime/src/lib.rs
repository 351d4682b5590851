//! Runs the booking component in wasmtime.
//!
//! - `engine`: one shared `Engine` (pooling allocator, epoch interruption).
//! - `component`: a loaded, pre-linked logic component, its checks and
//!   its identity; `cache`: compiled artifacts on disk.
//! - `deployment`: active / previous / canary, swapped atomically.
//! - `state`: what one request's `Store` holds, and its limits.
//! - `imports`: the WIT imports, one module per interface, each forwarding
//!   to the logic's port traits (implemented for real in `booking-adapters`).
//! - `preinit`: pre-initialization of a component at build time
//!   (wasmtime-wizer), so its instances start with the schema built.
//! - `runtime`: instantiate per request, run the HTTP handler or the sweep;
//!   `runtime::versions`: load, activate, roll back and canary versions at
//!   runtime.

mod bindings;
mod cache;
pub mod component;
pub mod deployment;
pub mod engine;
mod imports;
pub mod preinit;
pub mod runtime;
mod state;

pub use cache::{ArtifactKey, CacheLocation, Compilation, writable_only_by_us};
pub use component::{LogicComponent, Rejection};
pub use engine::{EngineLimits, SandboxEngine};
pub use runtime::{
    AdminError, LOGIC_VERSION_HEADER, Overloaded, Role, Runtime, SweepReport, VersionInfo,
    find_by_prefix,
};
pub use state::OutboundHttpAllowlist;
