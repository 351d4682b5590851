//! The WIT imports, one module per interface, each the same shape:
//! `impl Host for RequestState` forwarding to the matching port trait,
//! plus the record conversions. No decisions are made here.

mod events;
mod payments;
mod seats;
mod storage;
mod users;

use booking_logic::ports::PortError;
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::{self, types::Error};
use crate::state::RequestState;

impl bindings::types::Host for RequestState {}

fn wit_error(error: PortError) -> Error {
    match error {
        PortError::NotFound(m) => Error::NotFound(m),
        PortError::Rejected(m) => Error::Rejected(m),
        PortError::Conflict(m) => Error::Conflict(m),
        PortError::Unavailable(m) => Error::Unavailable(m),
        PortError::Timeout(m) => Error::Timeout(m),
    }
}

/// Adds WASI, WASI-HTTP (types and `outgoing-handler`; every outgoing
/// request goes through `SandboxHttpHooks`, which sends it only to the
/// hosts of the runtime's outbound allowlist, by default none) and the
/// booking imports to the linker.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    bindings::Logic::add_to_linker::<_, HasSelf<RequestState>>(linker, |state| state)?;
    Ok(())
}
