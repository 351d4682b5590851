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

/// Adds WASI, WASI-HTTP (types only: the guest gets no outgoing network)
/// and the booking imports to the linker.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::bindings::http::types::add_to_linker::<_, wasmtime_wasi_http::WasiHttp>(
        linker,
        &Default::default(),
        <RequestState as wasmtime_wasi_http::WasiHttpView>::http,
    )?;
    bindings::Logic::add_to_linker::<_, HasSelf<RequestState>>(linker, |state| state)?;
    Ok(())
}
