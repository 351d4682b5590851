//! The booking component: `booking-logic` wired to WIT. Imports become the
//! logic's ports (`imports`), and the two exports — the GraphQL-over-HTTP
//! handler and the expiry sweep — run the logic on a fresh instance per
//! call. No state survives a call: everything lives behind `storage`.
//!
//! What every call would build the same way is built once, at build time:
//! `booking-host preinit` runs `wizer-initialize` (the schema) and ships
//! the memory it leaves, so each instance starts from it. `hash_keys`
//! gives each request hash keys of its own all the same.

mod hash_keys;
mod imports;

use std::sync::Arc;

use booking_logic::http::{self as graphql_http, HttpRequest};
use booking_logic::settings::Settings;
use booking_logic::workflow::Workflow;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

wit_bindgen::generate!({
    path: "../../wit",
    world: "booking-service-build",
    with: {
        "wasi:http/types@0.2.12": wasip2::http::types,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
    },
});

use exports::cinema::booking::maintenance::{self, SweepReport};
use exports::cinema::booking::subscriptions::{self, SubscribeRequest, Subscription};
use exports::wasi::http::incoming_handler;

struct Component;

/// Heap every instance starts with beyond what the schema took. A request
/// that fits in it never grows its memory: on a pooled slot each growth
/// costs the host an `mprotect` (a TLB shootdown on every core) then, and
/// another when the slot is reused. Untouched, it costs no memory.
const HEAP_HEADROOM: usize = 2 << 20;

export!(Component);

impl Guest for Component {
    fn wizer_initialize() {
        booking_logic::schema::schema();
        hash_keys::locate();
        // Allocated and freed: the snapshot's memory is that much larger,
        // and free for the allocator to hand out.
        drop(std::hint::black_box(Vec::<u8>::with_capacity(
            HEAP_HEADROOM,
        )));
    }
}

/// Settings come from the component's environment (WASI `environment`),
/// which both our host and Spin set from their configuration.
fn workflow() -> Result<Workflow, String> {
    let settings = Settings::from_lookup(|name| std::env::var(name).ok())?;
    Ok(Workflow::new(imports::ports(), settings))
}

impl incoming_handler::Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let responder = wstd::http::server::Responder::new(response_out);
        wstd::runtime::block_on(async move {
            let workflow = workflow().map(Arc::new);
            let response = answer(request, &workflow).await;
            if let Err(error) = responder.respond(into_wstd(response)).await {
                eprintln!("booking component: sending the response failed: {error:?}");
            }
            // The client has its whole answer: the request's share of the
            // sweep, where the host has no timer for it, costs it nothing.
            if let Ok(workflow) = workflow
                && workflow.settings().sweep_on_requests_seconds.is_some()
                && checks_sweep_claim()
                && let Err(error) = workflow.sweep_if_due().await
            {
                eprintln!("booking component: the request's sweep failed: {error}");
            }
        });
    }
}

/// Requests that did not touch the store check the sweep's claim one
/// time in this many, so reads alone still sweep.
const SWEEP_CHECK_SAMPLE: u64 = 16;

/// Whether this request reads the sweep's claim. Where the store is a
/// database opened per instance (Spin), the read costs a request that
/// already used it one statement, and any other the open as well.
fn checks_sweep_claim() -> bool {
    imports::store_used()
        || wasip2::random::random::get_random_u64().is_multiple_of(SWEEP_CHECK_SAMPLE)
}

async fn answer(
    request: IncomingRequest,
    workflow: &Result<Arc<Workflow>, String>,
) -> graphql_http::HttpResponse {
    if let Err(message) = hash_keys::renew() {
        return graphql_http::error_response(500, "INTERNAL", message);
    }
    let request = match read_request(request).await {
        Ok(request) => request,
        Err(message) => return graphql_http::error_response(400, "BAD_REQUEST", &message),
    };
    match workflow {
        Ok(workflow) => graphql_http::handle(workflow.clone(), request).await,
        Err(message) => graphql_http::error_response(500, "CONFIGURATION_INVALID", message),
    }
}

impl maintenance::Guest for Component {
    fn sweep_expired(limit: u32) -> Result<SweepReport, imports::WitError> {
        let workflow = workflow().map_err(imports::WitError::Unavailable)?;
        let report = futures::executor::block_on(workflow.sweep_expired(limit))
            .map_err(|error| imports::WitError::Unavailable(error.to_string()))?;
        Ok(report.into())
    }
}

/// Subscriptions: the host holds the connections and calls these once
/// per subscriber at the start and once per batch of changes
/// (`booking_logic::live`).
impl subscriptions::Guest for Component {
    fn start(request: SubscribeRequest) -> Result<Subscription, String> {
        hash_keys::renew().map_err(internal_refusal)?;
        let workflow = workflow().map_err(|message| internal_refusal(&message))?;
        let started = futures::executor::block_on(booking_logic::live::start(
            Arc::new(workflow),
            &request.request,
            request.token.as_deref(),
        ))?;
        Ok(Subscription {
            topic: started.topic,
            projection: started.projection,
            owner: started.owner,
            expires_at: started.expires_at,
            initial: started.initial,
        })
    }

    fn project(projection: String, events: Vec<String>) -> Vec<String> {
        let workflow = match hash_keys::renew()
            .map_err(str::to_string)
            .and_then(|()| workflow())
        {
            Ok(workflow) => workflow,
            Err(message) => return vec![internal_message(&message)],
        };
        let events = match events
            .iter()
            .map(|event| booking_model::Event::from_json(event))
            .collect()
        {
            Ok(events) => events,
            Err(error) => return vec![internal_message(&error.to_string())],
        };
        futures::executor::block_on(booking_logic::live::project(
            Arc::new(workflow),
            &projection,
            events,
        ))
    }
}

fn internal_refusal(message: &str) -> String {
    booking_logic::live::refusal(message, "CONFIGURATION_INVALID")
}

fn internal_message(message: &str) -> String {
    booking_logic::live::error_message(message, "CONFIGURATION_INVALID")
}

async fn read_request(request: IncomingRequest) -> Result<HttpRequest, String> {
    let request = wstd::http::request::try_from_incoming(request).map_err(|e| e.to_string())?;
    let (parts, mut body) = request.into_parts();
    let body = body
        .contents()
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?
        .to_vec();
    let headers = parts.headers.iter();
    Ok(HttpRequest::new(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query(),
        headers.map(|(name, value)| (name.as_str(), value.as_bytes())),
        body,
    ))
}

fn into_wstd(response: graphql_http::HttpResponse) -> wstd::http::Response<wstd::http::Body> {
    let mut builder = wstd::http::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(wstd::http::Body::from(response.body))
        .unwrap_or_else(|_| {
            wstd::http::Response::new(wstd::http::Body::from("invalid response headers"))
        })
}
