//! What one request's `Store` holds: WASI and WASI-HTTP contexts, the
//! ports the imports forward to, memory limits, and how many epoch ticks
//! found the guest running (its CPU time, for the deadline).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use booking_logic::ports::Ports;
use booking_telemetry::metrics::{PortMetrics, TrapCause};
use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
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
    pub limits: MemoryBudget,
    pub ports: Ports,
    /// Where the imports count their calls.
    pub port_metrics: PortMetrics,
    running_ticks: u32,
    /// Set when the CPU budget ran out (the epoch callback's trap).
    cpu_exhausted: bool,
}

impl RequestState {
    pub fn new(
        ports: Ports,
        guest_env: &[(String, String)],
        component_sha256: &str,
        memory_bytes: usize,
        outbound_http: Arc<OutboundHttpAllowlist>,
        port_metrics: PortMetrics,
    ) -> RequestState {
        // No files, no sockets, no inherited environment: the guest sees only
        // its settings (and its own identity) and reaches the world through
        // the booking imports, plus outgoing HTTP to the allowlisted hosts.
        let wasi = WasiCtx::builder()
            .envs(guest_env)
            .env("LOGIC_SHA256", component_sha256)
            .stderr(GuestStderr::new(component_sha256))
            .build();
        RequestState {
            wasi,
            http: WasiHttpCtx::new(),
            http_hooks: SandboxHttpHooks { outbound_http },
            table: ResourceTable::new(),
            limits: MemoryBudget {
                limits: StoreLimitsBuilder::new()
                    .memory_size(memory_bytes)
                    .trap_on_grow_failure(true)
                    .build(),
                exhausted: false,
            },
            ports,
            port_metrics,
            running_ticks: 0,
            cpu_exhausted: false,
        }
    }

    /// Notes that the guest ran out of CPU time; its trap follows.
    pub fn exhaust_cpu(&mut self) {
        self.cpu_exhausted = true;
    }

    /// Why this instance's call failed: a budget it ran out of, else a
    /// trap of its own.
    pub fn trap_cause(&self) -> TrapCause {
        if self.cpu_exhausted {
            TrapCause::cpu_limit
        } else if self.limits.exhausted {
            TrapCause::memory_limit
        } else {
            TrapCause::trap
        }
    }

    /// Counts one epoch tick that found guest code running and returns the
    /// guest's CPU time so far. The epoch callback only runs while guest
    /// code runs, so waiting on a port, a WASI poll or the scheduler costs
    /// nothing; a call that spans ticks is counted at most once when the
    /// guest resumes, one tick of over-count per such call.
    pub fn count_running_tick(&mut self, tick: Duration) -> Duration {
        self.running_ticks = self.running_ticks.saturating_add(1);
        tick.saturating_mul(self.running_ticks)
    }
}

/// wasmtime's limits, remembering whether a growth was refused (then
/// trapped), so the trap is counted as a memory-limit kill.
pub struct MemoryBudget {
    limits: StoreLimits,
    exhausted: bool,
}

impl ResourceLimiter for MemoryBudget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grown = self.limits.memory_growing(current, desired, maximum);
        if !matches!(grown, Ok(true)) {
            self.exhausted = true;
        }
        grown
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grown = self.limits.table_growing(current, desired, maximum);
        if !matches!(grown, Ok(true)) {
            self.exhausted = true;
        }
        grown
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
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

/// Bytes of stderr one instance may send to the host's log; the rest is
/// counted and dropped, so a chatty or hostile guest cannot flood it.
pub const GUEST_STDERR_BYTES: usize = 16 << 10;

/// What one instance wrote to stderr: forwarded to the host's log line
/// by line (`guest_stderr` target) up to `GUEST_STDERR_BYTES`, then
/// dropped. The drop count is logged when the instance goes.
#[derive(Clone)]
struct GuestStderr(Arc<Mutex<StderrBudget>>);

struct StderrBudget {
    component: String,
    /// The unfinished last line.
    line: Vec<u8>,
    forwarded: usize,
    dropped: usize,
}

impl GuestStderr {
    fn new(component_sha256: &str) -> GuestStderr {
        GuestStderr(Arc::new(Mutex::new(StderrBudget {
            component: component_sha256.chars().take(12).collect(),
            line: Vec::new(),
            forwarded: 0,
            dropped: 0,
        })))
    }

    fn write(&self, bytes: &[u8]) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take(bytes);
    }
}

impl StderrBudget {
    fn take(&mut self, bytes: &[u8]) {
        let kept = bytes.len().min(GUEST_STDERR_BYTES - self.forwarded);
        self.forwarded += kept;
        self.dropped += bytes.len() - kept;
        for piece in bytes[..kept].split_inclusive(|&byte| byte == b'\n') {
            self.line.extend_from_slice(piece);
            if piece.ends_with(b"\n") {
                self.log_line();
            }
        }
    }

    fn log_line(&mut self) {
        let line = String::from_utf8_lossy(&self.line);
        let line = line.trim_end_matches(['\r', '\n']);
        tracing::warn!(target: "guest_stderr", component = %self.component, "{line}");
        self.line.clear();
    }
}

impl Drop for StderrBudget {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.log_line();
        }
        if self.dropped > 0 {
            tracing::warn!(
                target: "guest_stderr",
                component = %self.component,
                dropped_bytes = self.dropped,
                "guest stderr past the {GUEST_STDERR_BYTES}-byte limit of one instance was dropped"
            );
        }
    }
}

impl IsTerminal for GuestStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStderr {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Always ready, never blocks: writes past the budget are only counted.
#[wasmtime_wasi::async_trait]
impl OutputStream for GuestStderr {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        GuestStderr::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStderr {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestStderr {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Hosts the guest may send HTTP requests to, as `host:port` (Spin's
/// `allowed_outbound_hosts`, without wildcards). Empty, the default: none.
#[derive(Debug, Clone, Default)]
pub struct OutboundHttpAllowlist {
    authorities: Vec<String>,
}

impl OutboundHttpAllowlist {
    /// `host:port` entries; a scheme prefix (`http://`) and a trailing `/`
    /// are tolerated, the port is required. Hosts compare case-insensitively.
    pub fn new(allowed: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let mut authorities = Vec::new();
        for entry in allowed {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let bare = entry.split_once("://").map_or(entry, |(_, rest)| rest);
            let bare = bare.trim_end_matches('/');
            let authority: hyper::http::uri::Authority = bare
                .parse()
                .map_err(|e| anyhow::anyhow!("outbound HTTP allowlist entry {entry:?}: {e}"))?;
            let (Some(port), false) = (authority.port_u16(), authority.as_str().contains('@'))
            else {
                anyhow::bail!("outbound HTTP allowlist entry {entry:?}: expected host:port");
            };
            authorities.push(format!("{}:{port}", authority.host()).to_ascii_lowercase());
        }
        Ok(OutboundHttpAllowlist { authorities })
    }

    pub fn is_empty(&self) -> bool {
        self.authorities.is_empty()
    }

    /// Whether a request to `uri` may be sent: http or https, and its
    /// `host:port` (port defaulted from the scheme) listed.
    pub fn allows(&self, uri: &hyper::Uri) -> bool {
        let default_port = match uri.scheme_str() {
            Some("http") => 80,
            Some("https") => 443,
            _ => return false,
        };
        let Some(authority) = uri.authority() else {
            return false;
        };
        if authority.as_str().contains('@') {
            return false;
        }
        let port = authority.port_u16().unwrap_or(default_port);
        let wanted = format!("{}:{port}", authority.host()).to_ascii_lowercase();
        self.authorities.contains(&wanted)
    }
}

/// The guest serves HTTP, and sends it only to the hosts of the allowlist
/// (none by default): any other outgoing request is refused with
/// `HTTP-request-denied` before anything is sent.
/// With the default (empty) allowlist it sends nothing.
#[derive(Default)]
pub(crate) struct SandboxHttpHooks {
    outbound_http: Arc<OutboundHttpAllowlist>,
}

impl WasiHttpHooks for SandboxHttpHooks {
    fn send_request(
        &mut self,
        request: hyper::Request<HyperOutgoingBody>,
        options: Option<RequestOptions>,
        _io: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<Output = Result<(hyper::Response<HyperOutgoingBody>, OutgoingIo), HttpError>>
            + Send,
    > {
        use http_body_util::BodyExt;
        if !self.outbound_http.allows(request.uri()) {
            tracing::debug!(uri = %request.uri(), "outgoing HTTP request denied");
            // The guest may still be writing the body: take it and throw it
            // away, so what the guest sees is the denial, not a broken pipe
            // (which a client must read as "maybe sent").
            let mut body = request.into_body();
            tokio::spawn(async move { while let Some(Ok(_)) = body.frame().await {} });
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as OutgoingIo,
            ))
        })
    }
}

type OutgoingIo = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

#[cfg(test)]
mod tests {
    use super::{GUEST_STDERR_BYTES, GuestStderr, OutboundHttpAllowlist};

    #[test]
    fn guest_stderr_forwards_its_budget_and_counts_the_rest() {
        let stderr = GuestStderr::new("0123456789abcdef");
        stderr.write(&vec![b'x'; GUEST_STDERR_BYTES - 2]);
        stderr.write(b"yz\nmore");
        let budget = stderr.0.lock().unwrap();
        assert_eq!(budget.component, "0123456789ab");
        assert_eq!(budget.forwarded, GUEST_STDERR_BYTES);
        assert_eq!(budget.dropped, "\nmore".len());
        assert_eq!(
            budget.line.len(),
            GUEST_STDERR_BYTES,
            "an unfinished line waits"
        );
    }

    fn allows(list: &[&str], uri: &str) -> bool {
        OutboundHttpAllowlist::new(list.iter().map(|s| s.to_string()))
            .unwrap()
            .allows(&uri.parse().unwrap())
    }

    #[test]
    fn only_listed_authorities_over_http_or_https() {
        let list = [
            "127.0.0.1:8001",
            "Payments.example:443",
            "http://cinema:80/",
        ];
        assert!(allows(&list, "http://127.0.0.1:8001/users/u1"));
        assert!(!allows(&list, "http://127.0.0.1:8002/payments"));
        assert!(!allows(&list, "http://127.0.0.1/"));
        assert!(allows(&list, "https://payments.example/payments"));
        assert!(!allows(&list, "http://payments.example/payments"));
        assert!(allows(
            &list,
            "http://cinema/cinema.CinemaService/LockSeats"
        ));
        assert!(!allows(&list, "ftp://127.0.0.1:8001/"));
        assert!(!allows(&list, "http://user@127.0.0.1:8001/"));
        assert!(!allows(&[], "http://127.0.0.1:8001/"));
    }

    #[test]
    fn entries_need_a_port() {
        assert!(OutboundHttpAllowlist::new(["example.com".to_string()]).is_err());
        assert!(
            OutboundHttpAllowlist::new(["".to_string(), " ".to_string()])
                .unwrap()
                .is_empty()
        );
    }
}
