//! The two ways a client reaches the logic: calling the workflow (as the
//! component's HTTP handler does after parsing) or sending GraphQL through
//! `http::handle`, so that the mapping of every failure to a GraphQL error
//! with `extensions.code` is exercised under the same faults. Both give
//! the client the same view: an answer or a coded failure. Each request
//! runs `in_process`: when the fakes kill the process serving it, the
//! request is dropped where it stands and the client sees the connection
//! fail.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use booking_logic::BookingError;
use booking_logic::http::{self, HttpRequest};
use booking_logic::model::BookingStatus;
use serde_json::{Value, json};

use super::world::World;

/// What a client sees when a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub retryable: bool,
    pub message: String,
}

impl From<BookingError> for Failure {
    fn from(error: BookingError) -> Failure {
        Failure {
            code: error.code().to_string(),
            retryable: error.retryable(),
            message: error.to_string(),
        }
    }
}

/// The answer to a payment that ran to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paid {
    pub success: bool,
    pub code: Option<String>,
    pub status: BookingStatus,
}

/// What a client sees when the process serving its request dies.
pub const PROCESS_DIED: &str = "PROCESS_DIED";

/// Runs `request` as one process serving it would: if a port call kills
/// that process (`Fault::Crash`), the request's future is dropped at once,
/// mid-flight, and the client sees a transport failure. The executor is
/// single-threaded, so the crash flag seen right after polling this
/// request was raised by this request's own call.
pub async fn in_process<T>(
    world: &World,
    request: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let mut request = pin!(request);
    poll_fn(|context| {
        let polled = request.as_mut().poll(context);
        if world.fakes.knobs.take_crashed() {
            return Poll::Ready(Err(Failure {
                code: PROCESS_DIED.to_string(),
                retryable: true,
                message: "the connection closed without an answer".to_string(),
            }));
        }
        polled
    })
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Workflow,
    GraphQl,
}

pub async fn create(
    world: &World,
    via: Via,
    user: &str,
    showtime: &str,
    seats: Vec<String>,
) -> Result<String, Failure> {
    match via {
        Via::Workflow => Ok(world
            .workflow
            .create_booking(user, showtime, seats)
            .await?
            .booking
            .id),
        Via::GraphQl => {
            let data = graphql(
                world,
                "mutation($u: String!, $s: String!, $seats: [String!]!) { \
                 createBooking(userId: $u, showtimeId: $s, seatNumbers: $seats) { \
                 success code booking { id status } } }",
                json!({ "u": user, "s": showtime, "seats": seats }),
                "createBooking",
            )
            .await?;
            text(&data["booking"]["id"])
        }
    }
}

pub async fn pay(world: &World, via: Via, booking_id: &str, card: &str) -> Result<Paid, Failure> {
    match via {
        Via::Workflow => {
            let outcome = world
                .workflow
                .process_payment(booking_id, "credit_card", card)
                .await?;
            Ok(Paid {
                success: outcome.succeeded(),
                code: outcome.failure.map(|failure| failure.code().to_string()),
                status: outcome.booking.status,
            })
        }
        Via::GraphQl => {
            let data = graphql(
                world,
                "mutation($b: String!, $d: String!) { \
                 processPayment(bookingId: $b, paymentMethod: \"credit_card\", paymentDetails: $d) { \
                 success code booking { status } } }",
                json!({ "b": booking_id, "d": card }),
                "processPayment",
            )
            .await?;
            Ok(Paid {
                success: data["success"] == Value::Bool(true),
                code: data["code"].as_str().map(str::to_string),
                status: status(&data["booking"]["status"])?,
            })
        }
    }
}

pub async fn cancel(world: &World, via: Via, booking_id: &str) -> Result<BookingStatus, Failure> {
    match via {
        Via::Workflow => Ok(world.workflow.cancel_booking(booking_id).await?.status),
        Via::GraphQl => {
            let data = graphql(
                world,
                "mutation($b: String!) { cancelBooking(bookingId: $b) { success booking { status } } }",
                json!({ "b": booking_id }),
                "cancelBooking",
            )
            .await?;
            status(&data["booking"]["status"])
        }
    }
}

/// Runs one mutation over HTTP and returns its field's data, or the
/// failure its first error describes. An error without a code is not a
/// failure the client can act on, so it is reported with an empty code
/// for the invariant checker to flag.
async fn graphql(
    world: &World,
    query: &str,
    variables: Value,
    field: &str,
) -> Result<Value, Failure> {
    let request = HttpRequest {
        method: "POST".to_string(),
        path: http::GRAPHQL_PATH.to_string(),
        query: None,
        headers: vec![("content-type".to_string(), "application/json".to_string())],
        body: json!({ "query": query, "variables": variables })
            .to_string()
            .into_bytes(),
    };
    let response = http::handle(world.workflow.clone(), request).await;
    let body: Value = serde_json::from_slice(&response.body).map_err(|error| Failure {
        code: String::new(),
        retryable: false,
        message: format!(
            "HTTP {} with a body that is not JSON: {error}",
            response.status
        ),
    })?;
    if response.status != 200 {
        return Err(Failure {
            code: String::new(),
            retryable: false,
            message: format!("HTTP {}: {body}", response.status),
        });
    }
    if let Some(error) = body["errors"].as_array().and_then(|errors| errors.first()) {
        return Err(Failure {
            code: error["extensions"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            retryable: error["extensions"]["retryable"] == Value::Bool(true),
            message: error["message"].as_str().unwrap_or_default().to_string(),
        });
    }
    Ok(body["data"][field].clone())
}

fn text(value: &Value) -> Result<String, Failure> {
    value.as_str().map(str::to_string).ok_or_else(|| Failure {
        code: String::new(),
        retryable: false,
        message: format!("expected a string in the response, got {value}"),
    })
}

fn status(value: &Value) -> Result<BookingStatus, Failure> {
    let name = text(value)?;
    BookingStatus::parse(&name).ok_or_else(|| Failure {
        code: String::new(),
        retryable: false,
        message: format!("unknown booking status {name}"),
    })
}
