//! Per-request execution: a fresh `Store` and instance for every HTTP
//! request and every sweep, so no state leaks between requests and a trap
//! or runaway guest only ever fails its own request.

use std::sync::Arc;

use anyhow::Context;
use booking_logic::ports::Ports;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use wasmtime::component::Linker;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::component::LogicComponent;
use crate::engine::SandboxEngine;
use crate::imports;
use crate::state::RequestState;

pub struct SweepReport {
    pub expired: u32,
    pub skipped: u32,
}

pub struct Runtime {
    engine: SandboxEngine,
    component: Arc<LogicComponent>,
    ports: Ports,
    /// Settings handed to the guest as its environment variables.
    guest_env: Vec<(String, String)>,
}

impl Runtime {
    pub fn new(
        engine: SandboxEngine,
        component_bytes: &[u8],
        component_source: &str,
        ports: Ports,
        guest_env: Vec<(String, String)>,
    ) -> anyhow::Result<Runtime> {
        let mut linker = Linker::new(&engine.engine);
        imports::add_to_linker(&mut linker)?;
        let component = Arc::new(LogicComponent::compile(
            &engine.engine,
            &linker,
            component_bytes,
            component_source,
        )?);
        Ok(Runtime {
            engine,
            component,
            ports,
            guest_env,
        })
    }

    pub fn component(&self) -> &Arc<LogicComponent> {
        &self.component
    }

    fn new_store(&self) -> Store<RequestState> {
        let limits = &self.engine.limits;
        let state = RequestState::new(self.ports.clone(), &self.guest_env, limits.memory_bytes);
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|state| &mut state.limits);
        let cpu_time = limits.cpu_time;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |store| {
            if store.data().guest_time() > cpu_time {
                return Err(wasmtime::format_err!(
                    "the request ran guest code for longer than the {cpu_time:?} limit"
                ));
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// Serves one HTTP request with a fresh instance of the component.
    pub async fn handle<B>(
        &self,
        request: hyper::Request<B>,
    ) -> anyhow::Result<hyper::Response<HyperOutgoingBody>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let mut store = self.new_store();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let outparam = store.data_mut().http().new_response_outparam(sender)?;
        let proxy = self
            .component
            .proxy_pre
            .instantiate_async(&mut store)
            .await?;

        // The guest keeps streaming the body after it hands over the
        // response head, so it runs on its own task.
        let guest = tokio::spawn(async move {
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(anyhow::anyhow!(
                "the component answered with an error: {code:?}"
            )),
            // The guest ended without answering: report why.
            Err(_) => match guest.await {
                Ok(Ok(())) => Err(anyhow::anyhow!("the component returned without a response")),
                Ok(Err(trap)) => Err(anyhow::Error::from(trap).context("the component failed")),
                Err(join) => Err(anyhow::anyhow!("the request task failed: {join}")),
            },
        }
    }

    /// Runs the component's expiry sweep once.
    pub async fn sweep_expired(&self, limit: u32) -> anyhow::Result<SweepReport> {
        let mut store = self.new_store();
        let logic = self
            .component
            .logic_pre
            .instantiate_async(&mut store)
            .await?;
        let report = logic
            .cinema_booking_maintenance()
            .call_sweep_expired(&mut store, limit)
            .await
            .map_err(anyhow::Error::from)
            .context("the sweep trapped")?
            .map_err(|error| anyhow::anyhow!("the sweep failed: {error:?}"))?;
        Ok(SweepReport {
            expired: report.expired,
            skipped: report.skipped,
        })
    }
}

/// A JSON GraphQL-style error body, for failures that happen outside the
/// guest (traps, limits), so clients always get `extensions.code`.
pub fn error_response(
    status: u16,
    code: &str,
    message: &str,
) -> hyper::Response<HyperOutgoingBody> {
    let body = serde_json::json!({"errors": [{"message": message, "extensions": {"code": code}}]})
        .to_string();
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
