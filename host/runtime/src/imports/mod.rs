//! The WIT imports, one module per interface, each the same shape:
//! `impl Host for RequestState` forwarding to the matching port trait.
//! The record conversions are generated (`bindings.rs`); no decisions
//! are made here.

mod events;
mod payments;
mod seats;
mod storage;
mod users;

use booking_model::PortResult;
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::{self, types::Error};
use crate::state::RequestState;

impl bindings::types::Host for RequestState {}

/// A port's answer as the guest's: the record and the error converted.
trait Answer<T> {
    fn answer<W: From<T>>(self) -> Result<W, Error>;
}

impl<T> Answer<T> for PortResult<T> {
    fn answer<W: From<T>>(self) -> Result<W, Error> {
        self.map(W::from).map_err(Error::from)
    }
}

/// A list of records converted, either way.
fn wit<A, B: From<A>>(items: Vec<A>) -> Vec<B> {
    items.into_iter().map(B::from).collect()
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
