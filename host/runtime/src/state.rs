//! What one request's `Store` holds: WASI and WASI-HTTP contexts, the
//! ports the imports forward to, memory limits, and the time spent in host
//! calls (so the CPU deadline only counts guest execution).

use std::future::Future;
use std::time::{Duration, Instant};

use booking_logic::ports::Ports;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: SandboxHttpHooks,
    table: ResourceTable,
    pub limits: StoreLimits,
    pub ports: Ports,
    started: Instant,
    time_in_host: Duration,
}

impl RequestState {
    pub fn new(
        ports: Ports,
        guest_env: &[(String, String)],
        component_sha256: &str,
        memory_bytes: usize,
    ) -> RequestState {
        // No files, no sockets, no inherited environment: the guest sees only
        // its settings (and its own identity) and reaches the world through
        // the booking imports.
        let wasi = WasiCtx::builder()
            .envs(guest_env)
            .env("LOGIC_SHA256", component_sha256)
            .inherit_stderr()
            .build();
        RequestState {
            wasi,
            http: WasiHttpCtx::new(),
            http_hooks: SandboxHttpHooks,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            ports,
            started: Instant::now(),
            time_in_host: Duration::ZERO,
        }
    }

    /// Runs one host call, booking its duration as host time.
    pub async fn host_call<T>(&mut self, call: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let result = call.await;
        self.time_in_host += start.elapsed();
        result
    }

    /// Wall time since the request started minus time spent in host calls.
    pub fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.time_in_host)
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// The guest serves HTTP but never sends it: the linker has no
/// `wasi:http/outgoing-handler`, and should one ever be linked, these hooks
/// refuse every outgoing request.
struct SandboxHttpHooks;

impl WasiHttpHooks for SandboxHttpHooks {
    fn send_request(
        &mut self,
        _request: hyper::Request<HyperOutgoingBody>,
        _options: Option<RequestOptions>,
        _io: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<Output = Result<(hyper::Response<HyperOutgoingBody>, OutgoingIo), HttpError>>
            + Send,
    > {
        Box::new(async { Err(HttpError::HttpRequestDenied) })
    }
}

type OutgoingIo = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
