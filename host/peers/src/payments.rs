//! The Payment service's reference server (REST), with Stripe-style
//! idempotency keys.
//!
//! Routes:
//! - `GET /health` → `{"status":"ok"}`
//! - `POST /payments` with `{"idempotency_key","amount_cents","currency",
//!   "method","details","description"}` → 201 `{"transaction_id",
//!   "status":"succeeded","amount_cents","currency","created_at_ms"}`.
//!   400 `{"error":"invalid_request"}` for a zero amount, an empty key or
//!   currency, or a malformed body (nothing is recorded).
//! - `POST /payments/{transaction_id}/refund` → 200 `{"refund_id",
//!   "transaction_id","amount_cents","status":"refunded"}`; the same
//!   refund again on every call; 404 for an unknown transaction.
//! - `GET /payments/{transaction_id}` → the charge, with `"refunded"`.
//! - `POST /payments/void` with `{"idempotency_key": K}` → 200
//!   `{"idempotency_key": K, "voided": true, "charge": C}`, `C` being the
//!   succeeded charge made under `K` as `GET /payments/{transaction_id}`
//!   shows it, or null if `K` was declined or never used. From then on a
//!   new charge with `K` gets 402 `{"error":"idempotency_key_voided"}`
//!   (a replay of a charge made before still gets its receipt). Voiding
//!   again answers the same.
//! - `GET /payments` → every charge, oldest first.
//!
//! Idempotency: the first request for a key decides its answer (success or
//! decline) and the answer is stored. A request with the same key and the
//! same amount, currency, method and details gets the stored status and
//! body back and charges nothing; the same key with other terms gets 409
//! `{"error":"idempotency_key_reused"}`. Concurrent requests with one key
//! are serialised by the ledger's mutex, so they never charge twice.
//!
//! Test payment details (the `details` field):
//! - `card_declined`: 402 `{"error":"card_declined","message":...}`. The
//!   decline is stored under the key like a success.
//! - `card_slow`: succeeds, but every response for the key (replays too)
//!   is sent only after `PaymentBehaviour::slow_delay`. The charge is
//!   recorded before the wait, as a slow processor would have it.
//! - `card_lost_reply`: the charge is recorded as succeeded at once, but
//!   the key's first response is held back for
//!   `PaymentBehaviour::lost_reply_delay`, as if the reply got lost after
//!   the money moved. Replays of the key answer at once with the stored
//!   result.
//! - anything else (e.g. `card_token_xyz`): succeeds at once.

mod ledger;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::clock::now_ms;
use ledger::{Answer, Attempt, ChargeRequest, Ledger};

pub use ledger::{Charge, Refund};

/// How the test payment details misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentBehaviour {
    /// How long every `card_slow` response takes.
    pub slow_delay: Duration,
    /// How long the first response of a `card_lost_reply` key takes.
    pub lost_reply_delay: Duration,
}

impl Default for PaymentBehaviour {
    fn default() -> Self {
        PaymentBehaviour {
            slow_delay: Duration::from_millis(1500),
            lost_reply_delay: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestCard {
    Declined,
    Slow,
    LostReply,
    Normal,
}

impl TestCard {
    fn of(details: &str) -> Self {
        match details {
            "card_declined" => TestCard::Declined,
            "card_slow" => TestCard::Slow,
            "card_lost_reply" => TestCard::LostReply,
            _ => TestCard::Normal,
        }
    }
}

/// Shared handle on the payment service's state: the server uses it, tests
/// inspect it.
#[derive(Clone)]
pub struct PaymentsState {
    ledger: Arc<Mutex<Ledger>>,
    behaviour: PaymentBehaviour,
}

impl PaymentsState {
    pub fn new(behaviour: PaymentBehaviour) -> Self {
        PaymentsState {
            ledger: Arc::new(Mutex::new(Ledger::default())),
            behaviour,
        }
    }

    /// Every charge, oldest first.
    pub fn charges(&self) -> Vec<Charge> {
        self.ledger().charges().to_vec()
    }

    pub fn charge(&self, transaction_id: &str) -> Option<Charge> {
        self.ledger().get(transaction_id).cloned()
    }

    /// The charges made under one idempotency key: never more than one.
    pub fn charges_for_key(&self, idempotency_key: &str) -> Vec<Charge> {
        self.ledger()
            .charges()
            .iter()
            .filter(|charge| charge.idempotency_key == idempotency_key)
            .cloned()
            .collect()
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // Ledger methods do not panic half-way, so a poisoned lock still
        // holds consistent state.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub fn router(state: PaymentsState) -> Router {
    Router::new()
        .route("/health", get(crate::health))
        .route("/payments", post(create_payment).get(list_payments))
        .route("/payments/void", post(void_payment))
        .route("/payments/{transaction_id}", get(get_payment))
        .route("/payments/{transaction_id}/refund", post(refund_payment))
        .with_state(state)
}

async fn create_payment(
    State(state): State<PaymentsState>,
    body: Result<Json<ChargeRequest>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return invalid_request(&rejection.body_text()),
    };
    if let Err(problem) = validate(&request) {
        return invalid_request(problem);
    }

    let card = TestCard::of(&request.details);
    let attempt = state
        .ledger()
        .charge(&request, card == TestCard::Declined, now_ms());
    let Attempt { answer, first } = match attempt {
        Ok(attempt) => attempt,
        Err(reused) => {
            tracing::info!(key = %request.idempotency_key, "idempotency key reused");
            return error(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                &reused.to_string(),
            );
        }
    };
    tracing::info!(
        key = %request.idempotency_key, status = %answer.status, replay = !first,
        amount_cents = request.amount_cents, "charge answered"
    );

    let delay = match card {
        TestCard::Slow => Some(state.behaviour.slow_delay),
        TestCard::LostReply if first => Some(state.behaviour.lost_reply_delay),
        _ => None,
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    answer.into_response()
}

fn validate(request: &ChargeRequest) -> Result<(), &'static str> {
    if request.idempotency_key.is_empty() {
        return Err("idempotency_key must not be empty");
    }
    if request.amount_cents == 0 {
        return Err("amount_cents must be positive");
    }
    if request.currency.is_empty() {
        return Err("currency must not be empty");
    }
    Ok(())
}

async fn refund_payment(
    State(state): State<PaymentsState>,
    Path(transaction_id): Path<String>,
) -> Response {
    let refund = state.ledger().refund(&transaction_id);
    match refund {
        Some(refund) => {
            tracing::info!(%transaction_id, refund_id = %refund.refund_id, "refunded");
            Json(refund).into_response()
        }
        None => transaction_not_found(&transaction_id),
    }
}

async fn get_payment(
    State(state): State<PaymentsState>,
    Path(transaction_id): Path<String>,
) -> Response {
    match state.charge(&transaction_id) {
        Some(charge) => Json(charge).into_response(),
        None => transaction_not_found(&transaction_id),
    }
}

async fn list_payments(State(state): State<PaymentsState>) -> Json<Vec<Charge>> {
    Json(state.charges())
}

#[derive(serde::Deserialize)]
struct VoidRequest {
    idempotency_key: String,
}

async fn void_payment(
    State(state): State<PaymentsState>,
    body: Result<Json<VoidRequest>, JsonRejection>,
) -> Response {
    let key = match body {
        Ok(Json(request)) if !request.idempotency_key.is_empty() => request.idempotency_key,
        Ok(_) => return invalid_request("idempotency_key must not be empty"),
        Err(rejection) => return invalid_request(&rejection.body_text()),
    };
    let charge = state.ledger().void(&key).cloned();
    tracing::info!(%key, charged = charge.is_some(), "idempotency key voided");
    Json(json!({ "idempotency_key": key, "voided": true, "charge": charge })).into_response()
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

fn invalid_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn transaction_not_found(transaction_id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "transaction_not_found",
        &format!("transaction {transaction_id} not found"),
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::Value;
    use tokio::net::TcpListener;

    use super::*;

    async fn serve(behaviour: PaymentBehaviour) -> (PaymentsState, String) {
        let state = PaymentsState::new(behaviour);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        tokio::spawn(axum::serve(listener, router(state.clone())).into_future());
        (state, url)
    }

    fn body(key: &str, details: &str, amount_cents: u64) -> Value {
        json!({
            "idempotency_key": key,
            "amount_cents": amount_cents,
            "currency": "USD",
            "method": "credit_card",
            "details": details,
            "description": "test",
        })
    }

    async fn post(url: &str, body: &Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{url}/payments"))
            .json(body)
            .send()
            .await
            .expect("reachable");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_with_one_key_charge_once() {
        let (state, url) = serve(PaymentBehaviour::default()).await;
        let requests: Vec<_> = (0..20)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(
                    async move { post(&url, &body("same-key", "card_token_xyz", 900)).await },
                )
            })
            .collect();

        let mut transaction_ids = HashSet::new();
        for request in requests {
            let (status, body) = request.await.expect("task");
            assert_eq!(status, 201, "{body}");
            transaction_ids.insert(body["transaction_id"].as_str().map(str::to_owned));
        }
        assert_eq!(transaction_ids.len(), 1, "{transaction_ids:?}");
        assert_eq!(state.charges_for_key("same-key").len(), 1);
        assert_eq!(state.charges().len(), 1);
    }

    #[tokio::test]
    async fn test_cards_and_validation() {
        let behaviour = PaymentBehaviour {
            slow_delay: Duration::from_millis(300),
            lost_reply_delay: Duration::from_secs(30),
        };
        let (state, url) = serve(behaviour).await;

        let (status, declined) = post(&url, &body("k1", "card_declined", 500)).await;
        assert_eq!(
            (status, declined["error"].as_str()),
            (402, Some("card_declined"))
        );
        assert!(state.charges_for_key("k1").is_empty());

        let started = std::time::Instant::now();
        let (status, _) = post(&url, &body("k2", "card_slow", 500)).await;
        assert_eq!(status, 201);
        assert!(started.elapsed() >= behaviour.slow_delay);

        // The first answer is held back 30 s; the charge exists at once.
        let first = tokio::spawn({
            let url = url.clone();
            async move { post(&url, &body("k3", "card_lost_reply", 500)).await }
        });
        let charged = wait_for_charge(&state, "k3").await;
        let (status, replay) = post(&url, &body("k3", "card_lost_reply", 500)).await;
        assert_eq!(status, 201);
        assert_eq!(
            replay["transaction_id"].as_str(),
            Some(charged.transaction_id.as_str())
        );
        assert!(!first.is_finished());
        first.abort();

        let (status, reused) = post(&url, &body("k2", "card_slow", 501)).await;
        assert_eq!(
            (status, reused["error"].as_str()),
            (409, Some("idempotency_key_reused"))
        );

        for invalid in [
            body("", "x", 1),
            body("k4", "x", 0),
            json!({"amount_cents": 5}),
        ] {
            let (status, answer) = post(&url, &invalid).await;
            assert_eq!(
                (status, answer["error"].as_str()),
                (400, Some("invalid_request"))
            );
        }
        assert_eq!(state.charges().len(), 2);
    }

    #[tokio::test]
    async fn a_void_answers_the_charge_of_its_key_and_refuses_later_charges() {
        let (_state, url) = serve(PaymentBehaviour::default()).await;
        let (_, charged) = post(&url, &body("paid", "card_token_xyz", 700)).await;
        post(&url, &body("declined", "card_declined", 700)).await;
        let void = async |key: &str| {
            let response = reqwest::Client::new()
                .post(format!("{url}/payments/void"))
                .json(&json!({ "idempotency_key": key }))
                .send()
                .await
                .expect("reachable");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json body"))
        };
        let (status, voided) = void("paid").await;
        assert_eq!((status, &voided["voided"]), (200, &json!(true)));
        assert_eq!(
            voided["charge"]["transaction_id"],
            charged["transaction_id"]
        );
        assert_eq!(voided["charge"]["amount_cents"], 700);
        for key in ["declined", "never"] {
            let (status, voided) = void(key).await;
            assert_eq!((status, &voided["charge"]), (200, &Value::Null), "{key}");
        }
        let (status, late) = post(&url, &body("never", "card_token_xyz", 700)).await;
        assert_eq!(
            (status, late["error"].as_str()),
            (402, Some("idempotency_key_voided"))
        );
    }

    async fn wait_for_charge(state: &PaymentsState, key: &str) -> Charge {
        for _ in 0..100 {
            if let Some(charge) = state.charges_for_key(key).pop() {
                return charge;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no charge recorded for {key}");
    }
}
