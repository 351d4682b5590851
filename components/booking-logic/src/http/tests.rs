//! The API as clients see it: HTTP requests in, JSON out, through the real
//! schema and workflow over the fakes. Starts with the original service's
//! four README documents, sent unchanged.

use std::sync::Arc;

use futures::executor::block_on;
use serde_json::{Value, json};

use super::*;
use crate::model::Timestamp;
use crate::ports::PortError;
use crate::schema::build_schema;
use crate::settings::Settings;
use crate::testing::{Fakes, Fault, Op};
use crate::workflow::Workflow;

const START: Timestamp = 1_700_000_000_000;

const CREATE_BOOKING: &str = r#"mutation CreateBooking {
  createBooking(
    userId: "user_123"
    showtimeId: "showtime_456"
    seatNumbers: ["A1", "A2"]
  ) {
    success
    message
    lockId
    booking {
      id
      userId
      showtimeId
      seats
      totalAmount
      status
      createdAt
    }
  }
}"#;

const PROCESS_PAYMENT: &str = r#"mutation ProcessPayment {
  processPayment(
    bookingId: "booking_123"
    paymentMethod: "credit_card"
    paymentDetails: "card_token_xyz"
  ) {
    success
    message
    booking {
      id
      status
      paymentTransactionId
    }
  }
}"#;

const GET_BOOKING: &str = r#"query GetBooking {
  getBooking(bookingId: "booking_123") {
    id
    userId
    showtimeId
    seats
    totalAmount
    status
    createdAt
    updatedAt
  }
}"#;

const GET_USER_BOOKINGS: &str = r#"query GetUserBookings {
  getUserBookings(userId: "user_123") {
    id
    showtimeId
    seats
    totalAmount
    status
    createdAt
  }
}"#;

/// The README's scenario; the next booking id is `booking_123`, the id
/// its documents use.
fn setup() -> (Fakes, BookingSchema) {
    let fakes = Fakes::sample(START);
    fakes.env.script_ids(["booking_123"]);
    let schema = build_schema(Arc::new(Workflow::new(fakes.ports(), Settings::default())));
    (fakes, schema)
}

fn request(method: &str, path: &str, query: Option<&str>, body: &[u8]) -> HttpRequest {
    HttpRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: query.map(str::to_string),
        headers: vec![("Content-Type".to_string(), "application/json".to_string())],
        body: body.to_vec(),
    }
}

fn send(schema: &BookingSchema, request: HttpRequest) -> (u16, Value) {
    let response = block_on(handle(schema, request));
    assert!(
        response
            .headers
            .contains(&("content-type".to_string(), "application/json".to_string())),
        "{:?}",
        response.headers
    );
    let body = serde_json::from_slice(&response.body).expect("a JSON body");
    (response.status, body)
}

/// POSTs a GraphQL request; GraphQL answers are always 200.
fn graphql(schema: &BookingSchema, query: &str, variables: Value) -> Value {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let (status, body) = send(schema, request("POST", "/graphql", None, body.as_bytes()));
    assert_eq!(status, 200, "{body}");
    body
}

fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

#[test]
fn the_original_services_documents_run_unchanged() {
    let (_fakes, schema) = setup();

    let created = graphql(&schema, CREATE_BOOKING, Value::Null);
    assert_eq!(created["errors"], Value::Null, "{created}");
    let payload = &created["data"]["createBooking"];
    assert_eq!(payload["success"], true);
    assert_eq!(payload["lockId"], "lock-1");
    assert!(
        payload["message"]
            .as_str()
            .unwrap()
            .contains("booking created")
    );
    assert_eq!(
        payload["booking"],
        json!({
            "id": "booking_123",
            "userId": "user_123",
            "showtimeId": "showtime_456",
            "seats": ["A1", "A2"],
            "totalAmount": "30.00",
            "status": "PENDING",
            "createdAt": "2023-11-14T22:13:20.000Z",
        })
    );

    let paid = graphql(&schema, PROCESS_PAYMENT, Value::Null);
    assert_eq!(
        paid["data"]["processPayment"],
        json!({
            "success": true,
            "message": "payment processed; booking confirmed",
            "booking": {
                "id": "booking_123",
                "status": "CONFIRMED",
                "paymentTransactionId": "txn-1",
            },
        }),
        "{paid}"
    );

    let fetched = graphql(&schema, GET_BOOKING, Value::Null);
    let booking = &fetched["data"]["getBooking"];
    assert_eq!(booking["status"], "CONFIRMED");
    assert_eq!(booking["totalAmount"], "30.00");
    assert_eq!(booking["seats"], json!(["A1", "A2"]));
    assert_eq!(booking["updatedAt"], "2023-11-14T22:13:20.000Z");

    let listed = graphql(&schema, GET_USER_BOOKINGS, Value::Null);
    let bookings = listed["data"]["getUserBookings"]
        .as_array()
        .expect("a list");
    assert_eq!(bookings.len(), 1, "{listed}");
    assert_eq!(bookings[0]["id"], "booking_123");
    assert_eq!(bookings[0]["status"], "CONFIRMED");
}

#[test]
fn refused_requests_are_errors_with_a_code_and_a_null_field() {
    let (_fakes, schema) = setup();

    let body = graphql(&schema, PROCESS_PAYMENT, Value::Null);

    assert_eq!(body["data"], json!({ "processPayment": null }));
    assert_eq!(error_code(&body), "BOOKING_NOT_FOUND");
    assert_eq!(body["errors"][0]["extensions"]["retryable"], false);
    assert_eq!(body["errors"][0]["path"], json!(["processPayment"]));
    assert_eq!(
        body["errors"][0]["message"],
        "booking booking_123 not found"
    );
}

#[test]
fn retryable_failures_say_so() {
    let (fakes, schema) = setup();
    fakes.knobs.fail_next(
        Op::GetUser,
        Fault::Fail(PortError::Unavailable("user service down".into())),
    );

    let body = graphql(&schema, CREATE_BOOKING, Value::Null);

    assert_eq!(body["data"]["createBooking"], Value::Null);
    assert_eq!(error_code(&body), "DEPENDENCY_UNAVAILABLE");
    assert_eq!(body["errors"][0]["extensions"]["retryable"], true);
}

#[test]
fn a_declined_payment_is_a_payload_with_success_false() {
    let (fakes, schema) = setup();
    fakes.payments.decline_details("card_token_xyz");
    graphql(&schema, CREATE_BOOKING, Value::Null);

    let body = graphql(
        &schema,
        "mutation { processPayment(bookingId: \"booking_123\", paymentMethod: \"credit_card\", \
         paymentDetails: \"card_token_xyz\") { success message code booking { status failureReason } } }",
        Value::Null,
    );

    assert_eq!(body["errors"], Value::Null, "{body}");
    let payload = &body["data"]["processPayment"];
    assert_eq!(payload["success"], false);
    assert_eq!(payload["code"], "PAYMENT_DECLINED");
    assert_eq!(payload["message"], "payment declined: card declined");
    assert_eq!(payload["booking"]["status"], "PAYMENT_FAILED");
    assert_eq!(
        payload["booking"]["failureReason"],
        "payment declined: card declined"
    );
}

#[test]
fn cancel_booking_reports_the_stored_booking() {
    let (fakes, schema) = setup();
    graphql(&schema, CREATE_BOOKING, Value::Null);
    graphql(&schema, PROCESS_PAYMENT, Value::Null);

    let body = graphql(
        &schema,
        "mutation($id: String!) { cancelBooking(bookingId: $id) { success message code booking { status } } }",
        json!({ "id": "booking_123" }),
    );

    assert_eq!(
        body["data"]["cancelBooking"],
        json!({
            "success": true,
            "message": "booking REFUNDED: cancelled by the customer; payment refunded",
            "code": null,
            "booking": { "status": "REFUNDED" },
        }),
        "{body}"
    );
    assert!(fakes.payments.is_refunded("txn-1"));

    let again = graphql(
        &schema,
        "mutation { cancelBooking(bookingId: \"booking_123\") { success } }",
        Value::Null,
    );
    assert_eq!(error_code(&again), "INVALID_STATE");
}

#[test]
fn get_booking_is_null_for_an_unknown_booking() {
    let (_fakes, schema) = setup();

    let body = graphql(&schema, GET_BOOKING, Value::Null);

    assert_eq!(body, json!({ "data": { "getBooking": null } }));
}

#[test]
fn the_other_queries_expose_seats_events_pages_and_the_version() {
    let (fakes, schema) = setup();
    graphql(&schema, CREATE_BOOKING, Value::Null);
    fakes.env.advance_ms(1);
    graphql(
        &schema,
        "mutation { createBooking(userId: \"user_123\", showtimeId: \"showtime_456\", seatNumbers: [\"B1\"]) { success } }",
        Value::Null,
    );

    let body = graphql(
        &schema,
        r#"{
          logicVersion
          showtimeSeats(showtimeId: "showtime_456") {
            showtime { id movieTitle theater startsAt currency totalSeats availableSeats }
            seats { number row priceCents price status }
          }
          bookingEvents(bookingId: "booking_123") { type status amountCents bookingId }
          userBookingsPage(userId: "user_123", first: 1) { items { id totalCents currency lockExpiresAt events { type } } nextCursor }
        }"#,
        Value::Null,
    );

    assert_eq!(body["errors"], Value::Null, "{body}");
    let data = &body["data"];
    assert_eq!(data["logicVersion"], env!("CARGO_PKG_VERSION"));
    let showtime = &data["showtimeSeats"]["showtime"];
    assert_eq!(showtime["totalSeats"], 10);
    assert_eq!(showtime["availableSeats"], 7);
    assert_eq!(showtime["currency"], "USD");
    assert_eq!(showtime["startsAt"], "2023-11-15T22:13:20.000Z");
    assert_eq!(
        data["showtimeSeats"]["seats"][0],
        json!({ "number": "A1", "row": "A", "priceCents": 1500, "price": "15.00", "status": "LOCKED" })
    );
    assert_eq!(
        data["bookingEvents"],
        json!([{ "type": "booking.created", "status": "PENDING", "amountCents": 3000, "bookingId": "booking_123" }])
    );
    let page = &data["userBookingsPage"];
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["items"][0]["id"], "id-1", "newest first");
    assert_eq!(page["items"][0]["totalCents"], 1500);
    assert_eq!(
        page["items"][0]["lockExpiresAt"],
        "2023-11-14T22:18:20.001Z"
    );
    assert_eq!(
        page["items"][0]["events"],
        json!([{ "type": "booking.created" }])
    );
    let cursor = page["nextCursor"].as_str().expect("a next page");

    let next = graphql(
        &schema,
        "query($after: String) { userBookingsPage(userId: \"user_123\", first: 1, after: $after) { items { id } nextCursor } }",
        json!({ "after": cursor }),
    );
    assert_eq!(
        next["data"]["userBookingsPage"],
        json!({ "items": [{ "id": "booking_123" }], "nextCursor": null })
    );
}

#[test]
fn out_of_range_page_sizes_are_invalid_input() {
    let (_fakes, schema) = setup();

    for first in [0, -5, 101] {
        let body = graphql(
            &schema,
            "query($first: Int) { getUserBookings(userId: \"user_123\", first: $first) { id } }",
            json!({ "first": first }),
        );
        assert_eq!(error_code(&body), "INVALID_INPUT", "{first}");
    }
}

#[test]
fn graphql_syntax_and_validation_errors_carry_codes() {
    let (_fakes, schema) = setup();
    let cases = [
        ("mutation { createBooking(", "GRAPHQL_PARSE_FAILED"),
        ("", "GRAPHQL_PARSE_FAILED"),
        ("{ getBooking { id } }", "GRAPHQL_VALIDATION_FAILED"),
        (
            "{ getBooking(bookingId: 5) { id } }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
        ("{ noSuchField }", "GRAPHQL_VALIDATION_FAILED"),
        (
            "query Q { logicVersion } query R { logicVersion }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
    ];
    for (query, code) in cases {
        let body = graphql(&schema, query, Value::Null);
        assert_eq!(error_code(&body), code, "{query}: {body}");
        assert_eq!(body["data"], Value::Null, "{query}: {body}");
    }

    let body = graphql(
        &schema,
        "query($id: String!) { getBooking(bookingId: $id) { id } }",
        json!({ "id": 5 }),
    );
    assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
}

#[test]
fn depth_complexity_and_fragment_bombs_are_refused() {
    let (_fakes, schema) = setup();
    let deep = "{ getBooking(bookingId: \"b\") { events { id } } }";
    assert_eq!(graphql(&schema, deep, Value::Null)["errors"], Value::Null);

    let mut nested = String::from("{ userBookingsPage(userId: \"u\") { items { id } } ");
    nested.push_str("a: __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } }");
    let body = graphql(&schema, &nested, Value::Null);
    assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too deep"),
        "{body}"
    );

    let wide: Vec<String> = (0..600).map(|i| format!("v{i}: logicVersion")).collect();
    let body = graphql(&schema, &format!("{{ {} }}", wide.join(" ")), Value::Null);
    assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED");
    assert_eq!(body["errors"][0]["message"], "Query is too complex.");

    // Each fragment spreads the next three times: 3^12 selections once
    // inlined, from a document of a few kilobytes.
    let mut bomb = String::from("query { getBooking(bookingId: \"b\") { ...G0 } }");
    for level in 0..12 {
        bomb.push_str(&format!(
            " fragment G{level} on Booking {{ id ... on Booking {{ ...G{next} }} \
             ... on Booking {{ ...G{next} }} ... on Booking {{ ...G{next} }} }}",
            next = level + 1
        ));
    }
    bomb.push_str(" fragment G12 on Booking { id }");
    let body = graphql(&schema, &bomb, Value::Null);
    assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
}

#[test]
fn malformed_requests_get_4xx_json_with_a_code() {
    let (_fakes, schema) = setup();
    let cases: Vec<(HttpRequest, u16, &str)> = vec![
        (
            request("POST", "/graphql", None, b"{not json"),
            400,
            "BAD_REQUEST",
        ),
        (request("POST", "/graphql", None, b"[]"), 400, "BAD_REQUEST"),
        (request("POST", "/graphql", None, b"{}"), 400, "BAD_REQUEST"),
        (request("POST", "/graphql", None, b""), 400, "BAD_REQUEST"),
        (
            request("POST", "/graphql", None, br#"{"query": 5}"#),
            400,
            "BAD_REQUEST",
        ),
        (
            request(
                "POST",
                "/graphql",
                None,
                br#"{"query": "{ logicVersion }", "variables": [1]}"#,
            ),
            400,
            "BAD_REQUEST",
        ),
        (request("POST", "/nope", None, b"{}"), 404, "NOT_FOUND"),
        (
            request("PUT", "/graphql", None, b"{}"),
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (request("GET", "/graphql", None, b""), 400, "BAD_REQUEST"),
        (
            request("GET", "/graphql", Some("query=%zz"), b""),
            400,
            "BAD_REQUEST",
        ),
        (
            request(
                "GET",
                "/graphql",
                Some("query=%7B+logicVersion+%7D&variables=nope"),
                b"",
            ),
            400,
            "BAD_REQUEST",
        ),
        (
            request("POST", "/graphql", None, &vec![b' '; MAX_BODY_BYTES + 1]),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ];
    for (request, status, code) in cases {
        let described = format!("{} {} {:?}", request.method, request.path, request.query);
        let (got_status, body) = send(&schema, request);
        assert_eq!(
            (got_status, error_code(&body)),
            (status, code),
            "{described}: {body}"
        );
    }

    let mut wrong_type = request("POST", "/graphql", None, b"query=x");
    wrong_type.headers = vec![(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    let (status, body) = send(&schema, wrong_type);
    assert_eq!((status, error_code(&body)), (415, "UNSUPPORTED_MEDIA_TYPE"));
}

#[test]
fn a_405_says_which_methods_are_allowed() {
    let (_fakes, schema) = setup();

    let response = block_on(handle(&schema, request("DELETE", "/graphql", None, b"")));

    assert_eq!(response.status, 405);
    assert!(
        response
            .headers
            .contains(&("allow".to_string(), "GET, POST".to_string()))
    );
}

#[test]
fn post_accepts_json_with_parameters_or_no_content_type() {
    let (_fakes, schema) = setup();
    let body = br#"{"query": "query V { logicVersion }", "operationName": "V"}"#;

    let mut with_charset = request("POST", "/graphql", None, body);
    with_charset.headers = vec![(
        "content-type".to_string(),
        "application/json; charset=utf-8".to_string(),
    )];
    let mut without = request("POST", "/graphql", None, body);
    without.headers.clear();

    for request in [with_charset, without] {
        let (status, body) = send(&schema, request);
        assert_eq!(status, 200);
        assert_eq!(body["data"]["logicVersion"], env!("CARGO_PKG_VERSION"));
    }
}

#[test]
fn get_runs_queries_with_variables_but_refuses_mutations() {
    let (fakes, schema) = setup();

    let query = "query=query+V(%24id%3A+String!)+%7B+getBooking(bookingId%3A+%24id)+%7B+id+%7D+logicVersion+%7D\
                 &variables=%7B%22id%22%3A%22booking_123%22%7D&operationName=V";
    let (status, body) = send(&schema, request("GET", "/graphql", Some(query), b""));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({ "getBooking": null, "logicVersion": env!("CARGO_PKG_VERSION") })
    );

    let mutation = "query=mutation+%7B+cancelBooking(bookingId%3A+%22b%22)+%7B+success+%7D+%7D";
    let (status, body) = send(&schema, request("GET", "/graphql", Some(mutation), b""));
    assert_eq!((status, error_code(&body)), (405, "METHOD_NOT_ALLOWED"));

    // A document holding a query and a mutation: the selected operation
    // decides.
    let mixed = "query=query+Q+%7B+logicVersion+%7D+mutation+M+%7B+cancelBooking(bookingId%3A+%22b%22)+%7B+success+%7D+%7D";
    let (status, _) = send(
        &schema,
        request(
            "GET",
            "/graphql",
            Some(&format!("{mixed}&operationName=Q")),
            b"",
        ),
    );
    assert_eq!(status, 200);
    let (status, _) = send(
        &schema,
        request(
            "GET",
            "/graphql",
            Some(&format!("{mixed}&operationName=M")),
            b"",
        ),
    );
    assert_eq!(status, 405);
    assert_eq!(fakes.knobs.calls(Op::Get), 1, "only the query ran");
}

#[test]
fn browsers_get_graphiql() {
    let (_fakes, schema) = setup();
    let mut browser = request("GET", "/graphql", None, b"");
    browser.headers = vec![(
        "Accept".to_string(),
        "text/html,application/xhtml+xml".to_string(),
    )];

    let response = block_on(handle(&schema, browser));

    assert_eq!(response.status, 200);
    assert_eq!(
        response.headers,
        [(
            "content-type".to_string(),
            "text/html; charset=utf-8".to_string()
        )]
    );
    let page = String::from_utf8(response.body).expect("UTF-8");
    assert!(page.contains("graphiql"), "a GraphiQL page");
    assert!(page.contains("/graphql"), "pointing at the endpoint");
}
