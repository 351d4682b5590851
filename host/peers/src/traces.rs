//! The trace context the peers received: every request with a W3C
//! `traceparent` is logged with its trace id (`peer`, `trace_id` fields),
//! and the latest ids are kept, so a test can tell that the booking host
//! carried its trace to each peer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// How many (peer, trace id) pairs are kept, newest last.
const KEPT: usize = 1_000;

#[derive(Clone, Default)]
pub struct SeenTraces(Arc<Mutex<VecDeque<(&'static str, String)>>>);

impl SeenTraces {
    /// Logs and keeps the trace id of a `traceparent` value, if well formed
    /// (`00-<32 hex trace id>-<16 hex span id>-<flags>`).
    pub fn note(&self, peer: &'static str, traceparent: Option<&str>) {
        let Some(trace_id) = traceparent.and_then(trace_id_of) else {
            return;
        };
        tracing::info!(peer, trace_id, "traced request");
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() == KEPT {
            seen.pop_front();
        }
        seen.push_back((peer, trace_id.to_owned()));
    }

    /// Whether `peer` received a request of trace `trace_id`.
    pub fn saw(&self, peer: &str, trace_id: &str) -> bool {
        let seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        seen.iter().any(|(by, id)| *by == peer && id == trace_id)
    }
}

fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    (trace_id.len() == 32 && trace_id.bytes().all(|byte| byte.is_ascii_hexdigit()))
        .then_some(trace_id)
}

/// The REST peers' middleware.
pub async fn note_http(
    State((peer, seen)): State<(&'static str, SeenTraces)>,
    request: Request,
    next: Next,
) -> Response {
    let traceparent = request.headers().get("traceparent");
    seen.note(peer, traceparent.and_then(|value| value.to_str().ok()));
    next.run(request).await
}
