//! GraphQL over WebSocket, the `graphql-transport-ws` protocol of the
//! `graphql-ws` library, on `GET /graphql` with `Upgrade: websocket`.
//! Close codes are the protocol's (4400 bad message, 4401 subscribe
//! before `connection_ack`, 4406 other subprotocol, 4408 no
//! `connection_init` in time, 4409 a live id reused, 4429 a second
//! `connection_init`), plus 1013 for a connection whose client reads
//! slower than its updates come or that missed updates, and 1001 for an
//! idle one or at shutdown: `graphql-ws` clients reconnect after both
//! and subscribe again, from a fresh snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Ended, Live, Subscription};
use crate::app::AppState;

const PROTOCOL: &str = "graphql-transport-ws";

/// Largest message a client may send (a subscribe with its document).
const MAX_MESSAGE_BYTES: usize = 64 << 10;

/// The read buffer's starting size: client messages are small.
const READ_BUFFER_BYTES: usize = 4 << 10;

/// Bytes queued in the socket's write buffer past which a client that
/// stopped reading is dropped.
const MAX_UNSENT_BYTES: usize = 256 << 10;

/// How long a close frame may take to reach a client that stopped
/// reading before the connection is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// `/graphql`: a WebSocket upgrade starts a session; anything else
/// is the component's (GraphiQL, queries over GET).
pub(crate) async fn graphql(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let upgrading = request
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if !upgrading {
        return crate::http::to_component(State(state), request).await;
    }
    let (mut parts, _) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let offered = parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim() == PROTOCOL);
    upgrade
        .protocols([PROTOCOL])
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        // Small buffers (the library's defaults are 128 KiB each way, too
        // much for thousands of idle subscribers), and a cap on what may
        // wait for a client that stopped reading.
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_UNSENT_BYTES)
        .on_upgrade(move |socket| async move {
            if offered {
                Session::run(state, socket).await;
            } else {
                let (mut sink, _) = socket.split();
                let _ = sink.send(close(4406, "Subprotocol not acceptable")).await;
            }
        })
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    }))
}

/// One connection: the reader (this task) handles the client's messages,
/// a writer task owns the socket's sending half, and each subscription
/// forwards its messages into the writer's bounded queue.
struct Session {
    state: Arc<AppState>,
    outgoing: mpsc::Sender<String>,
    /// Set once to close the connection with this code and reason.
    closing: watch::Sender<Option<(u16, String)>>,
    token: Option<String>,
    subscriptions: HashMap<String, JoinHandle<()>>,
}

impl Session {
    async fn run(state: Arc<AppState>, socket: WebSocket) {
        let limits = state.live.limits().clone();
        let (sink, mut stream) = socket.split();
        let (outgoing, queue) = mpsc::channel(limits.buffer);
        let (closing, closed) = watch::channel(None);
        let writer = tokio::spawn(write(sink, queue, closed, limits.keepalive, limits.idle));
        let mut session = Session {
            state: state.clone(),
            outgoing,
            closing,
            token: None,
            subscriptions: HashMap::new(),
        };
        let mut stopping = state.live.stopping();
        let mut acknowledged = false;
        let init_deadline = tokio::time::Instant::now() + limits.init_timeout;
        loop {
            let wait = if acknowledged {
                tokio::time::Instant::now() + limits.idle
            } else {
                init_deadline
            };
            let received = tokio::select! {
                biased;
                _ = async { stopping.wait_for(|stopped| *stopped).await.is_ok() } => {
                    session.close(1001, "the server is shutting down");
                    break;
                }
                () = session.closing.closed() => break,
                _ = wait_closing(&session.closing) => break,
                received = tokio::time::timeout_at(wait, stream.next()) => received,
            };
            let text = match received {
                Err(_) if acknowledged => {
                    session.close(1001, "idle: nothing received within the idle timeout");
                    break;
                }
                Err(_) => {
                    session.close(4408, "Connection initialisation timeout");
                    break;
                }
                Ok(None | Some(Err(_))) => break,
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(_)))) => break,
                Ok(Some(Ok(Message::Binary(_)))) => {
                    session.close(4400, "Invalid message received");
                    break;
                }
                Ok(Some(Ok(_))) => continue,
            };
            if !session.receive(text.as_str(), &mut acknowledged) {
                break;
            }
        }
        for (_, task) in session.subscriptions.drain() {
            task.abort();
        }
        drop(session);
        let _ = writer.await;
    }

    /// Handles one client message; false when the connection is closing.
    fn receive(&mut self, text: &str, acknowledged: &mut bool) -> bool {
        let Some(message) = serde_json::from_str::<Value>(text)
            .ok()
            .filter(Value::is_object)
        else {
            return self.close(4400, "Invalid message received");
        };
        let id = message.get("id").and_then(Value::as_str);
        match (message["type"].as_str(), id) {
            (Some("connection_init"), _) => {
                if *acknowledged {
                    return self.close(4429, "Too many initialisation requests");
                }
                self.token = token(&message["payload"]);
                *acknowledged = true;
                self.send(json!({ "type": "connection_ack" }))
            }
            (Some("ping"), _) => {
                let mut pong = json!({ "type": "pong" });
                if let Some(payload) = message.get("payload") {
                    pong["payload"] = payload.clone();
                }
                self.send(pong)
            }
            (Some("pong"), _) => true,
            (Some("subscribe"), Some(id)) if !id.is_empty() => {
                if !*acknowledged {
                    return self.close(4401, "Unauthorized");
                }
                let Some(payload) = message.get("payload").filter(|payload| payload.is_object())
                else {
                    return self.close(4400, "Invalid message received");
                };
                self.subscriptions.retain(|_, task| !task.is_finished());
                if self.subscriptions.contains_key(id) {
                    return self.close(4409, &format!("Subscriber for {id} already exists"));
                }
                let limit = self.state.live.limits().per_connection;
                if self.subscriptions.len() >= limit {
                    return self.send(json!({ "id": id, "type": "error", "payload": [{
                        "message": format!("a connection may hold at most {limit} subscriptions"),
                        "extensions": { "code": "TOO_MANY_SUBSCRIPTIONS" },
                    }]}));
                }
                let task = tokio::spawn(forward(
                    self.state.clone(),
                    id.to_owned(),
                    payload.to_string(),
                    self.token.clone(),
                    self.outgoing.clone(),
                    self.closing.clone(),
                ));
                self.subscriptions.insert(id.to_owned(), task);
                true
            }
            (Some("complete"), Some(id)) => {
                if let Some(task) = self.subscriptions.remove(id) {
                    task.abort();
                }
                true
            }
            _ => self.close(4400, "Invalid message received"),
        }
    }

    fn send(&self, message: Value) -> bool {
        queue(
            &self.state.live,
            &self.outgoing,
            &self.closing,
            message.to_string(),
        )
    }

    fn close(&self, code: u16, reason: &str) -> bool {
        shut(&self.closing, code, reason);
        false
    }
}

/// Returns once the session is to close.
async fn wait_closing(closing: &watch::Sender<Option<(u16, String)>>) {
    let mut closed = closing.subscribe();
    let _ = closed.wait_for(Option::is_some).await;
}

fn shut(closing: &watch::Sender<Option<(u16, String)>>, code: u16, reason: &str) {
    closing.send_if_modified(|current| {
        if current.is_some() {
            return false;
        }
        *current = Some((code, reason.to_owned()));
        true
    });
}

/// Queues a frame for the writer; a full queue means the client reads
/// slower than its messages come: the connection closes (1013).
fn queue(
    live: &Live,
    outgoing: &mpsc::Sender<String>,
    closing: &watch::Sender<Option<(u16, String)>>,
    text: String,
) -> bool {
    match outgoing.try_send(text) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            live.count_drop(Ended::SlowConsumer);
            shut(
                closing,
                1013,
                "slow consumer: updates came faster than they were read",
            );
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// One subscription: starts it, then forwards its messages until it or
/// the connection ends.
async fn forward(
    state: Arc<AppState>,
    id: String,
    request: String,
    token: Option<String>,
    outgoing: mpsc::Sender<String>,
    closing: watch::Sender<Option<(u16, String)>>,
) {
    let next = |payload: &str| {
        format!(
            r#"{{"id":{},"type":"next","payload":{payload}}}"#,
            json!(id)
        )
    };
    let complete = || json!({ "id": id, "type": "complete" }).to_string();
    let subscription = match state
        .live
        .subscribe(&state, &request, token.as_deref())
        .await
    {
        Ok(subscription) => subscription,
        Err(refused) => {
            queue(
                &state.live,
                &outgoing,
                &closing,
                format!(
                    r#"{{"id":{},"type":"error","payload":{}}}"#,
                    json!(id),
                    refused.0
                ),
            );
            return;
        }
    };
    let Subscription {
        initial,
        updates,
        ended,
        expires_at,
        membership: _membership,
    } = subscription;
    for message in &initial {
        if !queue(&state.live, &outgoing, &closing, next(message)) {
            return;
        }
    }
    let Some(mut updates) = updates else {
        queue(&state.live, &outgoing, &closing, complete());
        return;
    };
    let expiry = super::expiry(expires_at);
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            update = updates.recv() => match update {
                Some(message) => {
                    if !queue(&state.live, &outgoing, &closing, next(&message)) {
                        return;
                    }
                }
                None => {
                    match ended.get() {
                        Some(Ended::SlowConsumer) | None => shut(&closing, 1013, "slow consumer: updates came faster than they were read"),
                        Some(Ended::Gap) => shut(&closing, 1013, "updates were missed; subscribe again"),
                    }
                    return;
                }
            },
            () = &mut expiry => {
                queue(&state.live, &outgoing, &closing, next(&super::token_expired()));
                queue(&state.live, &outgoing, &closing, complete());
                return;
            }
        }
    }
}

/// The sending half: frames in order, a `ping` every `keepalive`; once
/// closing, the close frame (waiting at most `CLOSE_WAIT` for a client
/// that stopped reading), then the connection is dropped.
async fn write(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<String>,
    mut closed: watch::Receiver<Option<(u16, String)>>,
    keepalive: Duration,
    idle: Duration,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    loop {
        let frame = tokio::select! {
            biased;
            _ = async { closed.wait_for(Option::is_some).await.is_ok() } => break,
            frame = queue.recv() => match frame {
                Some(text) => Message::Text(text.into()),
                None => break,
            },
            _ = ping.tick() => Message::Text(r#"{"type":"ping"}"#.into()),
        };
        // A client that reads nothing at all for the idle time is gone.
        let sent = tokio::select! {
            biased;
            _ = async { closed.wait_for(Option::is_some).await.is_ok() } => break,
            sent = tokio::time::timeout(idle, sink.send(frame)) => sent,
        };
        if !matches!(sent, Ok(Ok(()))) {
            return;
        }
    }
    let (code, reason) = closed.borrow().clone().unwrap_or((1000, String::new()));
    let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(close(code, &reason))).await;
}

/// The bearer token of a `connection_init` payload:
/// `{"authorization": "Bearer <token>"}` (any case of the key).
fn token(payload: &Value) -> Option<String> {
    let value = payload
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))?
        .1
        .as_str()?;
    let token = value
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| value.trim().strip_prefix("bearer "))
        .unwrap_or(value)
        .trim();
    (!token.is_empty()).then(|| token.to_owned())
}
