//! GraphQL over Server-Sent Events, the `graphql-sse` protocol in
//! distinct connections mode: `POST /graphql/stream` with the GraphQL
//! request as JSON (or `GET` with `query`, `variables`, `operationName`
//! in the query string) and `Accept: text/event-stream`; the token in
//! `Authorization`. One subscription per response: `event: next` per
//! message, `event: complete` at its end.
//!
//! A refused subscription is a `next` with the errors, then `complete`,
//! on a 200: `graphql-sse` clients retry any other status as a network
//! failure. A subscription the host drops (slow reader, missed updates,
//! shutdown) ends without `complete`, which those clients reconnect
//! after, from a fresh snapshot.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use serde_json::{Value, json};

use super::Subscription;
use crate::app::AppState;

/// Largest request accepted.
const MAX_REQUEST_BYTES: usize = 64 << 10;

pub(crate) async fn post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > MAX_REQUEST_BYTES {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "the request is too large",
        );
    }
    respond(state, &headers, String::from_utf8_lossy(&body).into_owned()).await
}

pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut request = json!({});
    for (name, value) in params {
        match name.as_str() {
            "query" | "operationName" => request[name] = Value::String(value),
            "variables" | "extensions" => match serde_json::from_str::<Value>(&value) {
                Ok(parsed) => request[name] = parsed,
                Err(_) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        "BAD_REQUEST",
                        &format!("{name} must be JSON"),
                    );
                }
            },
            _ => {}
        }
    }
    respond(state, &headers, request.to_string()).await
}

async fn respond(state: Arc<AppState>, headers: &HeaderMap, request: String) -> Response {
    let accepts_events = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("text/event-stream"));
    if !accepts_events {
        return refuse(
            StatusCode::NOT_ACCEPTABLE,
            "NOT_ACCEPTABLE",
            "this path answers text/event-stream (graphql-sse); send queries to /graphql",
        );
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            let value = value.trim();
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or(value)
                .trim()
                .to_owned()
        });
    let events = match state
        .live
        .subscribe(&state, &request, token.as_deref())
        .await
    {
        Ok(subscription) => stream(state.clone(), subscription),
        Err(refused) => {
            let errors = format!(r#"{{"errors":{}}}"#, refused.0);
            stream::iter([next(&errors), complete()]).boxed()
        }
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(events.map(Ok::<_, Infallible>)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A request this path cannot take at all (not a subscription refusal).
fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })),
    )
        .into_response()
}

fn next(payload: &str) -> Bytes {
    Bytes::from(format!("event: next\ndata: {payload}\n\n"))
}

fn complete() -> Bytes {
    Bytes::from_static(b"event: complete\ndata:\n\n")
}

/// The subscription's events: its first messages, then its updates with
/// a keep-alive comment when idle, until it ends, its token expires or
/// the host stops.
fn stream(
    state: Arc<AppState>,
    subscription: Subscription,
) -> futures::stream::BoxStream<'static, Bytes> {
    let keepalive = state.live.limits().keepalive;
    let mut stopping = state.live.stopping();
    let Subscription {
        initial,
        updates,
        expires_at,
        membership,
        ..
    } = subscription;
    let first = stream::iter(
        initial
            .into_iter()
            .map(|message| next(&message))
            .collect::<Vec<_>>(),
    );
    let Some(mut updates) = updates else {
        return first.chain(stream::iter([complete()])).boxed();
    };
    // A task writes into a queue of one the body reads: when the client
    // goes, the body is dropped, the task's next send fails and it ends,
    // leaving the group.
    let (sender, body) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        let _membership = membership;
        let expiry = super::expiry(expires_at);
        tokio::pin!(expiry);
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        loop {
            let chunk = tokio::select! {
                biased;
                _ = async { stopping.wait_for(|stopped| *stopped).await.is_ok() } => return,
                update = updates.recv() => match update {
                    Some(message) => next(&message),
                    None => return,
                },
                () = &mut expiry => {
                    let _ = sender.send(next(&super::token_expired())).await;
                    let _ = sender.send(complete()).await;
                    return;
                }
                _ = ticks.tick() => Bytes::from_static(b":\n\n"),
            };
            if sender.send(chunk).await.is_err() {
                return;
            }
        }
    });
    let rest = stream::unfold(body, |mut body| async move {
        body.recv().await.map(|chunk| (chunk, body))
    });
    first.chain(rest).boxed()
}
