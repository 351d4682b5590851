//! Per-request execution: a fresh `Store` and instance for every HTTP
//! request and every sweep, so no state leaks between requests and a trap
//! or runaway guest only ever fails its own request. Which version serves
//! is `versions`' business (load, activate, roll back, canary).

mod versions;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use booking_logic::model::{Refusal, Subscription as Started};
use booking_logic::ports::Ports;
use booking_model::Event;
use booking_model::report::{REPORT_HEADER, RequestReport};
use booking_telemetry::Metrics;
use booking_telemetry::metrics::{TrapCause, TrapLabels};
use booking_telemetry::prometheus_client::metrics::gauge::Gauge;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use wasmtime::component::Linker;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::bindings::Logic;
use crate::bindings::exports::cinema::booking::subscriptions::SubscribeRequest;
use crate::cache::{ArtifactCache, CacheLocation};
use crate::component::LogicComponent;
use crate::deployment::{Deployment, roll};
use crate::engine::{EPOCH_TICK, MAINTENANCE_SLOTS, SandboxEngine};
use crate::imports;
use crate::state::{OutboundHttpAllowlist, RequestState};

/// Response header naming the sha256 of the component that answered.
pub const LOGIC_VERSION_HEADER: &str = "x-logic-version";

/// What a sweep did: the logic's own record, so both builds report alike.
pub use booking_model::SweepReport;
pub use versions::{AdminError, Role, VersionInfo, find_by_prefix};

/// No instance slot freed within the queue wait: the request is shed
/// rather than queued without end.
#[derive(Debug, thiserror::Error)]
#[error("no instance slot freed within {0:?}")]
pub struct Overloaded(pub Duration);

pub struct Runtime {
    engine: SandboxEngine,
    linker: Linker<RequestState>,
    cache: Option<Arc<ArtifactCache>>,
    deployment: ArcSwap<Deployment>,
    /// Every loaded version by sha256, deployed or not.
    loaded: Mutex<BTreeMap<String, Arc<LogicComponent>>>,
    /// Admin operations read-modify-write the deployment: one at a time.
    admin: tokio::sync::Mutex<()>,
    requests: AtomicU64,
    /// One permit per request slot of the pool: past the pool's size,
    /// requests wait here for a slot (up to the queue wait) instead of
    /// failing to instantiate (a 2,000-client flash sale would otherwise
    /// see 500s; BENCHMARKS.md).
    slots: Arc<Semaphore>,
    /// The slots kept for the sweep and smoke tests: requests holding
    /// every request slot cannot stop expiry.
    maintenance: Arc<Semaphore>,
    ports: Ports,
    /// Settings handed to the guest as its environment variables.
    guest_env: Vec<(String, String)>,
    /// Hosts the guest may send HTTP to (none unless `with_outbound_http`).
    outbound_http: Arc<OutboundHttpAllowlist>,
    /// Where the sandbox, its imports and version changes are counted
    /// (a private set unless `with_metrics`).
    metrics: Arc<Metrics>,
}

/// A slot of the instance pool; request slots count in
/// `booking_sandbox_instances_in_use` while held.
struct Slot {
    _permit: OwnedSemaphorePermit,
    in_use: Option<Gauge>,
}

impl Slot {
    fn request(permit: OwnedSemaphorePermit, in_use: &Gauge) -> Slot {
        in_use.inc();
        Slot {
            _permit: permit,
            in_use: Some(in_use.clone()),
        }
    }

    fn maintenance(permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            _permit: permit,
            in_use: None,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(in_use) = &self.in_use {
            in_use.dec();
        }
    }
}

impl Runtime {
    /// Loads, checks and activates the first component.
    pub async fn new(
        engine: SandboxEngine,
        cache: Option<CacheLocation>,
        ports: Ports,
        guest_env: Vec<(String, String)>,
        component_bytes: &[u8],
        component_source: &str,
    ) -> anyhow::Result<Runtime> {
        let mut linker = Linker::new(&engine.engine);
        imports::add_to_linker(&mut linker)?;
        let cache = cache
            .map(|location| ArtifactCache::open(location, &engine.engine).map(Arc::new))
            .transpose()?;
        let first = LogicComponent::prepare(
            &engine.engine,
            &linker,
            cache.as_deref(),
            component_bytes,
            component_source,
        )
        .map(Arc::new)?;
        let slots = Arc::new(Semaphore::new(
            engine.limits.max_concurrent_instances as usize,
        ));
        let runtime = Runtime {
            slots,
            maintenance: Arc::new(Semaphore::new(MAINTENANCE_SLOTS as usize)),
            engine,
            linker,
            cache,
            deployment: ArcSwap::from_pointee(Deployment::new(first.clone())),
            loaded: Mutex::new(BTreeMap::from([(first.sha256.clone(), first.clone())])),
            admin: tokio::sync::Mutex::new(()),
            requests: AtomicU64::new(0),
            ports,
            guest_env,
            outbound_http: Arc::default(),
            metrics: Arc::default(),
        };
        runtime.smoke_test(&first).await?;
        Ok(runtime)
    }

    /// Lets the guest send HTTP to these hosts (`host:port`), as Spin's
    /// `allowed_outbound_hosts`; every other outgoing request is denied.
    pub fn with_outbound_http(mut self, allowed: OutboundHttpAllowlist) -> Self {
        self.outbound_http = Arc::new(allowed);
        self
    }

    /// Counts into `metrics` from now on (the one set the host exports).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        metrics
            .sandbox
            .slots
            .set(i64::from(self.engine.limits.max_concurrent_instances));
        self.metrics = metrics;
        self.publish_deployment(&self.deployment.load());
        self
    }

    fn new_store(&self, component: &LogicComponent) -> Store<RequestState> {
        let limits = &self.engine.limits;
        let state = RequestState::new(
            self.ports.clone(),
            &self.guest_env,
            &component.sha256,
            limits.memory_bytes,
            self.outbound_http.clone(),
            self.metrics.ports.clone(),
        );
        self.metrics.sandbox.instantiations.inc();
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|state| &mut state.limits);
        let cpu_time = limits.cpu_time;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut store| {
            if store.data_mut().count_running_tick(EPOCH_TICK) > cpu_time {
                store.data_mut().exhaust_cpu();
                return Err(wasmtime::format_err!(
                    "the request ran guest code for longer than the {cpu_time:?} limit"
                ));
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// Creates a store and an instance of the active component, then drops
    /// both without calling it: the fixed sandbox cost every request pays,
    /// measured on its own by the benchmarks.
    pub async fn instantiate_and_drop(&self) -> anyhow::Result<()> {
        let _slot = self.slots.acquire().await?;
        let active = self.active();
        let mut store = self.new_store(&active);
        active.proxy_pre.instantiate_async(&mut store).await?;
        Ok(())
    }

    /// Serves one HTTP request with a fresh instance of the deployed
    /// component (or the canary, for its share of requests), cut at
    /// `deadline`. The response names the version that served it in
    /// `x-logic-version`. Fails with [`Overloaded`] when no slot frees
    /// within the queue wait.
    pub async fn handle<B>(
        &self,
        request: hyper::Request<B>,
        deadline: Instant,
    ) -> anyhow::Result<hyper::Response<HyperOutgoingBody>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let queue_wait = self.engine.limits.queue_wait;
        let sandbox = &self.metrics.sandbox;
        sandbox.waiting.inc();
        let waited = tokio::time::timeout(queue_wait, self.slots.clone().acquire_owned()).await;
        sandbox.waiting.dec();
        let Ok(permit) = waited else {
            sandbox.shed.inc();
            return Err(Overloaded(queue_wait).into());
        };
        let slot = Slot::request(permit?, &sandbox.in_use);
        let draw = roll(self.requests.fetch_add(1, Ordering::Relaxed));
        let component = self.deployment.load().pick(draw).clone();
        let mut response = self
            .handle_with(&component, request, slot, deadline)
            .await?;
        if let Ok(version) = hyper::header::HeaderValue::from_str(&component.sha256) {
            response.headers_mut().insert(LOGIC_VERSION_HEADER, version);
        }
        Ok(response)
    }

    async fn handle_with<B>(
        &self,
        component: &LogicComponent,
        request: hyper::Request<B>,
        slot: Slot,
        deadline: Instant,
    ) -> anyhow::Result<hyper::Response<HyperOutgoingBody>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let mut store = self.new_store(component);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let outparam = store.data_mut().http().new_response_outparam(sender)?;
        let proxy = component.proxy_pre.instantiate_async(&mut store).await?;

        // The guest keeps streaming the body after it hands over the
        // response head, so it runs on its own task (in the request's
        // span). Past the deadline the call is dropped where it stands,
        // as if the process had died.
        let traps = self.metrics.sandbox.traps.clone();
        let guest = tokio::spawn(tracing::Instrument::in_current_span(async move {
            let call = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam);
            let handled = match tokio::time::timeout_at(deadline, call).await {
                Ok(handled) => handled.map_err(|trap| (store.data().trap_cause(), trap)),
                Err(_) => Err((
                    TrapCause::deadline,
                    wasmtime::format_err!("the request ran past its deadline"),
                )),
            };
            let handled = handled.map_err(|(cause, trap)| {
                traps.get_or_create(&TrapLabels { cause }).inc();
                tracing::warn!(?cause, "the sandbox stopped the request: {trap:#}");
                trap
            });
            // The pool gets the instance's slot back when the store goes:
            // only then may the permit let the next request in.
            drop(store);
            drop(slot);
            handled
        }));
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
        let _slot = self.maintenance.acquire().await?;
        let active = self.active();
        let mut store = self.new_store(&active);
        let logic = active.logic_pre.instantiate_async(&mut store).await?;
        let deadline = self.engine.limits.deadline;
        let sweep = logic
            .cinema_booking_maintenance()
            .call_sweep_expired(&mut store, limit);
        let report = tokio::time::timeout(deadline, sweep)
            .await
            .map_err(|_| anyhow::anyhow!("the sweep ran past its {deadline:?} deadline"))?
            .map_err(anyhow::Error::from)
            .context("the sweep trapped")?
            .map_err(|error| anyhow::anyhow!("the sweep failed: {error:?}"))?;
        Ok(report.into())
    }
}

impl Runtime {
    /// Starts a subscription (`booking_logic::live::start`) on a fresh
    /// instance of the active component: the outer error is the sandbox's
    /// (no slot, a trap, the deadline), the inner the logic's refusal.
    pub async fn start_subscription(
        &self,
        request: &str,
        token: Option<&str>,
    ) -> anyhow::Result<Result<Started, Refusal>> {
        let request = SubscribeRequest {
            request: request.to_owned(),
            token: token.map(str::to_owned),
        };
        let (_slot, mut store, logic) = self.logic_instance().await?;
        let call = logic
            .cinema_booking_subscriptions()
            .call_start(&mut store, &request);
        let started = self.within_deadline(call).await?;
        Ok(started.map(|started| Started {
            topic: started.topic,
            projection: started.projection,
            owner: started.owner,
            expires_at: started.expires_at,
            initial: started.initial,
        }))
    }

    /// What `events` look like to the subscribers of `projection`
    /// (`booking_logic::live::project`), on a fresh instance.
    pub async fn project(&self, projection: &str, events: &[Event]) -> anyhow::Result<Vec<String>> {
        let events: Vec<String> = events.iter().map(Event::to_json).collect();
        let (_slot, mut store, logic) = self.logic_instance().await?;
        let call = logic
            .cinema_booking_subscriptions()
            .call_project(&mut store, projection, &events);
        self.within_deadline(call).await
    }

    /// A fresh instance of the active component in a request slot, which
    /// it waits for at most the queue wait.
    async fn logic_instance(&self) -> anyhow::Result<(Slot, Store<RequestState>, Logic)> {
        let queue_wait = self.engine.limits.queue_wait;
        let Ok(permit) = tokio::time::timeout(queue_wait, self.slots.clone().acquire_owned()).await
        else {
            self.metrics.sandbox.shed.inc();
            return Err(Overloaded(queue_wait).into());
        };
        let slot = Slot::request(permit?, &self.metrics.sandbox.in_use);
        let active = self.active();
        let mut store = self.new_store(&active);
        let logic = active.logic_pre.instantiate_async(&mut store).await?;
        Ok((slot, store, logic))
    }

    async fn within_deadline<T>(
        &self,
        call: impl Future<Output = wasmtime::Result<T>>,
    ) -> anyhow::Result<T> {
        let deadline = self.engine.limits.deadline;
        tokio::time::timeout(deadline, call)
            .await
            .map_err(|_| anyhow::anyhow!("the call ran past its {deadline:?} deadline"))?
            .map_err(anyhow::Error::from)
            .context("the component trapped")
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
    // Reported as the logic reports its own errors, for the metrics.
    let report = RequestReport {
        error_codes: vec![code.to_string()],
        ..RequestReport::default()
    };
    if let Ok(report) = hyper::header::HeaderValue::from_str(&report.to_header()) {
        response.headers_mut().insert(REPORT_HEADER, report);
    }
    response
}
