//! The WIT imports, one module per interface, each the same shape:
//! `impl Host for RequestState` forwarding to the matching port trait.
//! The record conversions are generated (`bindings.rs`); no decisions
//! are made here.

mod events;
mod payments;
mod seats;
mod storage;
mod users;

use std::future::Future;
use std::time::Instant;

use booking_logic::ports::Ports;
use booking_model::PortResult;
use booking_telemetry::metrics::{PortErrorLabels, PortLabels};
use tracing::Instrument;
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::{self, types::Error};
use crate::state::RequestState;

impl bindings::types::Host for RequestState {}

impl RequestState {
    /// One call of a port, made by `start`: in a span of its own (a
    /// child of the request's, the parent of the adapter's outbound
    /// call) and counted in `booking_port_*`.
    /// (`&mut`: the state is `Send` but not `Sync`.)
    async fn call<'a, T, F>(
        &'a mut self,
        port: &'static str,
        call: &'static str,
        start: impl FnOnce(&'a Ports) -> F,
    ) -> PortResult<T>
    where
        F: Future<Output = PortResult<T>>,
    {
        let span = tracing::info_span!(
            "port call",
            otel.name = %format_args!("{port}.{call}"),
            otel.kind = "client",
            port,
            call,
        );
        let RequestState {
            ports,
            port_metrics: metrics,
            ..
        } = self;
        let started = Instant::now();
        let result = start(ports).instrument(span).await;
        let labels = PortLabels { port, call };
        metrics.calls.get_or_create(&labels).inc();
        metrics
            .duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            let kind = error.kind();
            metrics
                .errors
                .get_or_create(&PortErrorLabels { port, call, kind })
                .inc();
        }
        result
    }
}

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
