//! The API as clients see it: HTTP requests in, JSON out, through the real
//! schema and workflow over the fakes. Starts with the original service's
//! four README documents, sent unchanged.

use std::sync::Arc;

use futures::executor::block_on;
use serde_json::{Value, json};

use super::*;
use crate::model::{BookingStatus, Timestamp};
use crate::ports::{PortError, Storage};
use crate::settings::Settings;
use crate::testing::seed_documents::{
    CREATE_BOOKING, GET_BOOKING, GET_USER_BOOKINGS, PROCESS_PAYMENT,
};
use crate::testing::{Fakes, Fault, Op};
use crate::workflow::Workflow;

const START: Timestamp = 1_700_000_000_000;

/// The workflow behind the API, as a transport holds it.
struct Api {
    workflow: Arc<Workflow>,
}

/// The README's scenario as the original service ran it: no tokens
/// (`AUTH_MODE=disabled`). The next booking id is `booking_123`, the id
/// its documents use.
fn setup() -> (Fakes, Api) {
    setup_with(Settings {
        auth_required: false,
        ..Settings::default()
    })
}

fn setup_with(settings: Settings) -> (Fakes, Api) {
    let fakes = Fakes::sample(START);
    fakes.env.script_ids(["booking_123"]);
    let workflow = Arc::new(Workflow::new(fakes.ports(), settings));
    (fakes, Api { workflow })
}

fn call(api: &Api, request: HttpRequest) -> HttpResponse {
    block_on(handle(api.workflow.clone(), request))
}

/// A request from a client that asks for `application/json`, as the
/// original service's clients do.
fn request(method: &str, path: &str, query: Option<&str>, body: &[u8]) -> HttpRequest {
    HttpRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: query.map(str::to_string),
        headers: vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Accept".to_string(), "application/json".to_string()),
        ],
        body: body.to_vec(),
    }
}

fn send(schema: &Api, request: HttpRequest) -> (u16, Value) {
    let response = call(schema, request);
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
fn graphql(schema: &Api, query: &str, variables: Value) -> Value {
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
    nested.push_str(&format!(
        "a: __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(12),
        " }".repeat(12)
    ));
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
fn the_seat_map_is_fetched_only_when_its_seats_are_selected() {
    let (fakes, schema) = setup();
    let showtime_only =
        "{ showtimeSeats(showtimeId: \"showtime_456\") { showtime { id availableSeats } } }";
    let body = graphql(&schema, showtime_only, Value::Null);
    assert_eq!(body["errors"], Value::Null, "{body}");
    assert_eq!(
        body["data"]["showtimeSeats"]["showtime"]["availableSeats"],
        10
    );
    assert_eq!(
        fakes.knobs.calls(Op::SeatMap),
        0,
        "no seat map without `seats`"
    );

    let with_seats = "{ showtimeSeats(showtimeId: \"showtime_456\") { seats { number status } } }";
    let body = graphql(&schema, with_seats, Value::Null);
    assert_eq!(body["errors"], Value::Null, "{body}");
    assert_eq!(body["data"]["showtimeSeats"]["seats"][0]["number"], "A1");
    assert_eq!(fakes.knobs.calls(Op::SeatMap), 1);

    let missing = "{ showtimeSeats(showtimeId: \"showtime_999\") { seats { number } } }";
    let body = graphql(&schema, missing, Value::Null);
    assert_eq!(error_code(&body), "SHOWTIME_NOT_FOUND", "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["showtimeSeats"]));
    assert_eq!(
        fakes.knobs.calls(Op::SeatMap),
        1,
        "an unknown showtime stops before its map"
    );
}

#[test]
fn fields_that_call_dependencies_and_pages_cost_what_they_fetch() {
    let (_fakes, schema) = setup();
    let flood: Vec<String> = (0..160)
        .map(|i| {
            format!("s{i}: showtimeSeats(showtimeId: \"showtime_456\") {{ showtime {{ id }} }}")
        })
        .collect();
    let body = graphql(&schema, &format!("{{ {} }}", flood.join(" ")), Value::Null);
    assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    assert_eq!(body["errors"][0]["message"], "Query is too complex.");

    // A page of 100 with many fields asks for a hundred bookings' worth.
    let big_page = "{ getUserBookings(userId: \"user_123\", first: 100) \
                    { id status seats totalAmount createdAt updatedAt } }";
    let body = graphql(&schema, big_page, Value::Null);
    assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");

    // What a front end asks for on one screen still fits.
    let screen = "{ showtimeSeats(showtimeId: \"showtime_456\") \
                    { showtime { id movieTitle theater startsAt availableSeats } \
                      seats { number row status price } } \
                  getUserBookings(userId: \"user_123\") \
                    { id status showtimeId seats totalAmount createdAt lockExpiresAt } \
                  logicVersion }";
    let body = graphql(&schema, screen, Value::Null);
    assert_eq!(body["errors"], Value::Null, "{body}");
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
        (
            request(
                "GET",
                "/graphql",
                Some(&format!("query={}", "x".repeat(MAX_BODY_BYTES))),
                b"",
            ),
            414,
            "URI_TOO_LONG",
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

    let response = call(&schema, request("DELETE", "/graphql", None, b""));

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
    with_charset.headers[0].1 = "application/json; charset=utf-8".to_string();
    let mut without = request("POST", "/graphql", None, body);
    without
        .headers
        .retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));

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

    let response = call(&schema, browser);

    assert_eq!(response.status, 200);
    assert_eq!(
        response.headers,
        [(
            "content-type".to_string(),
            "text/html; charset=utf-8".to_string()
        )]
    );
    let page = String::from_utf8(response.body).expect("UTF-8");
    assert!(
        page.contains("GraphiQL.createFetcher({ url: '/graphql' })"),
        "pointing at the endpoint"
    );
    for asset in [
        "/graphiql/react.production.min.js",
        "/graphiql/react-dom.production.min.js",
        "/graphiql/graphiql.min.js",
        "/graphiql/graphiql.min.css",
    ] {
        assert!(page.contains(asset), "loads {asset} from the host");
    }
    assert!(
        !page.contains("://"),
        "nothing from another origin (no CDN)"
    );
    assert!(
        page.contains("isHeadersEditorEnabled: true"),
        "a header editor for tokens"
    );
}

// --- GraphQL over HTTP: media types, status codes, batches, introspection

fn raw_post(body: &str, accept: Option<&str>) -> HttpRequest {
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    if let Some(accept) = accept {
        headers.push(("Accept".to_string(), accept.to_string()));
    }
    HttpRequest {
        method: "POST".to_string(),
        path: GRAPHQL_PATH.to_string(),
        query: None,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn content_type(response: &HttpResponse) -> &str {
    response
        .headers
        .iter()
        .find(|(name, _)| name == "content-type")
        .map(|(_, value)| value.as_str())
        .expect("a content type")
}

#[test]
fn the_response_media_type_follows_accept_and_decides_request_error_statuses() {
    let (_fakes, api) = setup();
    let parse_error = json!({ "query": "{ logicVersion" }).to_string();
    let unknown_field = json!({ "query": "{ noSuchField }" }).to_string();
    let fine = json!({ "query": "{ logicVersion }" }).to_string();
    const GRAPHQL_JSON: &str = "application/graphql-response+json";
    let cases = [
        (&parse_error, None, 200, "application/json"),
        (&unknown_field, None, 200, "application/json"),
        (&fine, None, 200, "application/json"),
        (
            &parse_error,
            Some("application/graphql-response+json"),
            400,
            GRAPHQL_JSON,
        ),
        (&parse_error, Some("*/*"), 200, "application/json"),
        (
            &parse_error,
            Some("application/graphql-response+json, */*"),
            400,
            GRAPHQL_JSON,
        ),
        (
            &parse_error,
            Some("application/json"),
            200,
            "application/json",
        ),
        (
            &unknown_field,
            Some("application/json"),
            200,
            "application/json",
        ),
        (
            &parse_error,
            Some("application/json, application/graphql-response+json;q=0.5"),
            200,
            "application/json",
        ),
        (
            &parse_error,
            Some("application/json;q=0.9, application/graphql-response+json"),
            400,
            GRAPHQL_JSON,
        ),
    ];
    for (body, accept, status, media) in cases {
        let response = call(&api, raw_post(body, accept));
        assert_eq!(
            (response.status, content_type(&response)),
            (status, media),
            "{body} with Accept {accept:?}"
        );
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        if status == 400 || body.get("errors").is_some() {
            assert!(error_code(&body).starts_with("GRAPHQL_"), "{body}");
        }
    }

    for accept in ["text/plain", "application/xml", "application/json;q=0"] {
        let response = call(&api, raw_post(&fine, Some(accept)));
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            (response.status, error_code(&body)),
            (406, "NOT_ACCEPTABLE")
        );
    }
}

#[test]
fn field_errors_are_200_even_with_graphql_response_json() {
    let (_fakes, api) = setup();
    let body = json!({ "query": "{ getBooking(bookingId: \"\") { id } }" }).to_string();
    let response = call(&api, raw_post(&body, None));
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!((response.status, error_code(&body)), (200, "INVALID_INPUT"));
}

#[test]
fn batches_run_each_operation_in_order_up_to_the_limit() {
    let (fakes, api) = setup_with(Settings {
        auth_required: false,
        max_batch_operations: 2,
        ..Settings::default()
    });
    let batch = json!([
        { "query": "mutation { createBooking(userId: \"user_123\", showtimeId: \"showtime_456\", seatNumbers: [\"A1\"]) { booking { id } } }" },
        { "query": "{ getBooking(bookingId: \"booking_123\") { status } }" },
    ])
    .to_string();
    let (status, body) = send(&api, request("POST", "/graphql", None, batch.as_bytes()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!([
            { "data": { "createBooking": { "booking": { "id": "booking_123" } } } },
            { "data": { "getBooking": { "status": "PENDING" } } },
        ])
    );

    let three = Value::Array(vec![json!({ "query": "{ logicVersion }" }); 3]).to_string();
    let (status, body) = send(&api, request("POST", "/graphql", None, three.as_bytes()));
    assert_eq!((status, error_code(&body)), (400, "BATCH_TOO_LARGE"));
    assert_eq!(fakes.seats.locks().len(), 1, "only the first batch ran");
}

#[test]
fn introspection_and_graphiql_can_be_switched_off() {
    let introspect = json!({ "query": "{ __schema { queryType { name } } }" }).to_string();
    let (_fakes, api) = setup();
    let (status, body) = send(
        &api,
        request("POST", "/graphql", None, introspect.as_bytes()),
    );
    assert_eq!(
        (status, &body["data"]["__schema"]["queryType"]["name"]),
        (200, &json!("Query"))
    );

    let (_fakes, api) = setup_with(Settings {
        auth_required: false,
        introspection: false,
        ..Settings::default()
    });
    let (_, body) = send(
        &api,
        request("POST", "/graphql", None, introspect.as_bytes()),
    );
    assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    let mut browser = request("GET", "/graphql", None, b"");
    browser.headers = vec![("Accept".to_string(), "text/html".to_string())];
    assert_eq!(
        call(&api, browser).status,
        406,
        "no GraphiQL without introspection"
    );
}

// --- Authentication and ownership

const HOUR_MS: u64 = 3_600_000;

/// Auth on (the default), with a second customer and a support agent.
fn secured() -> (Fakes, Api) {
    let (fakes, api) = setup_with(Settings::default());
    fakes.users.add_user("user_456", true);
    (fakes, api)
}

fn as_caller(token: &str, query: &str, variables: Value) -> HttpRequest {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let mut request = request("POST", "/graphql", None, body.as_bytes());
    request
        .headers
        .push(("Authorization".to_string(), format!("Bearer {token}")));
    request
}

const CREATE: &str = "mutation($user: String!, $seats: [String!]!, $key: String) {
  createBooking(userId: $user, showtimeId: \"showtime_456\", seatNumbers: $seats, idempotencyKey: $key) {
    success booking { id status totalCents }
  }
}";
const PAY: &str = "mutation($id: String!, $details: String!, $key: String) {
  processPayment(bookingId: $id, paymentMethod: \"credit_card\", paymentDetails: $details, idempotencyKey: $key) {
    success code booking { status paymentTransactionId }
  }
}";
const CANCEL: &str =
    "mutation($id: String!) { cancelBooking(bookingId: $id) { success booking { status } } }";
const READ: &str = "query($id: String!, $user: String!) {
  getBooking(bookingId: $id) { id }
  getUserBookings(userId: $user) { id }
  bookingEvents(bookingId: $id) { type }
}";

fn codes(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| error["extensions"]["code"].as_str().unwrap_or("?"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn without_a_token_only_public_fields_answer() {
    let (fakes, api) = secured();
    let (status, body) = send(
        &api,
        request(
            "POST",
            "/graphql",
            None,
            json!({ "query": "{ logicVersion showtimeSeats(showtimeId: \"showtime_456\") { showtime { id } } }" })
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(status, 200);
    assert_eq!(body["errors"], Value::Null, "{body}");

    let create = json!({ "query": CREATE, "variables": { "user": "user_123", "seats": ["A1"] } });
    let (status, body) = send(
        &api,
        request("POST", "/graphql", None, create.to_string().as_bytes()),
    );
    assert_eq!(
        (status, codes(&body)),
        (200, vec!["UNAUTHENTICATED"]),
        "{body}"
    );
    assert_eq!(body["data"]["createBooking"], Value::Null);
    assert!(fakes.seats.locks().is_empty(), "nothing was locked");
}

#[test]
fn a_bad_or_expired_token_is_a_401_with_a_challenge() {
    let (fakes, api) = secured();
    let expired = fakes.users.issue_token("user_123", &[], START - 1);
    for token in ["no-such-token", expired.as_str()] {
        let response = call(&api, as_caller(token, "{ logicVersion }", Value::Null));
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            (response.status, error_code(&body)),
            (401, "UNAUTHENTICATED")
        );
        assert!(response.headers.contains(&(
            "www-authenticate".to_string(),
            "Bearer error=\"invalid_token\"".to_string()
        )));
    }
    let mut basic = as_caller("x", "{ logicVersion }", Value::Null);
    basic.headers.last_mut().unwrap().1 = "Basic dXNlcjpwYXNz".to_string();
    assert_eq!(call(&api, basic).status, 401);
}

#[test]
fn an_unreachable_user_service_is_a_retryable_503() {
    let (fakes, api) = secured();
    let token = fakes.users.issue_token("user_123", &[], START + HOUR_MS);
    fakes.knobs.fail_next(
        Op::Authenticate,
        Fault::Fail(PortError::Unavailable("down".into())),
    );
    let response = call(&api, as_caller(&token, "{ logicVersion }", Value::Null));
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(
        (response.status, error_code(&body)),
        (503, "DEPENDENCY_UNAVAILABLE")
    );
    assert_eq!(body["errors"][0]["extensions"]["retryable"], true);
}

#[test]
fn callers_act_only_on_their_own_bookings_and_support_reads_all() {
    let (fakes, api) = secured();
    let owner = fakes.users.issue_token("user_123", &[], START + HOUR_MS);
    let other = fakes.users.issue_token("user_456", &[], START + HOUR_MS);
    let support = fakes
        .users
        .issue_token("support_1", &["support"], START + HOUR_MS);

    let (_, body) = send(
        &api,
        as_caller(
            &other,
            CREATE,
            json!({ "user": "user_123", "seats": ["A1"] }),
        ),
    );
    assert_eq!(codes(&body), ["FORBIDDEN"], "booking for someone else");
    let (_, body) = send(
        &api,
        as_caller(
            &owner,
            CREATE,
            json!({ "user": "user_123", "seats": ["A1"] }),
        ),
    );
    assert_eq!(body["data"]["createBooking"]["success"], true, "{body}");
    let reads = json!({ "id": "booking_123", "user": "user_123" });

    let (_, body) = send(&api, as_caller(&other, READ, reads.clone()));
    assert_eq!(codes(&body), ["FORBIDDEN"; 3], "{body}");
    for mutation in [PAY, CANCEL] {
        let variables = json!({ "id": "booking_123", "details": "card_token_xyz" });
        let (_, body) = send(&api, as_caller(&other, mutation, variables.clone()));
        assert_eq!(codes(&body), ["FORBIDDEN"], "{mutation}");
        let (_, body) = send(&api, as_caller(&support, mutation, variables));
        assert_eq!(
            codes(&body),
            ["FORBIDDEN"],
            "support may not act: {mutation}"
        );
    }
    assert!(fakes.payments.charges().is_empty(), "nobody was charged");
    assert_eq!(
        fakes.storage.booking("booking_123").unwrap().status,
        BookingStatus::Pending
    );

    for token in [&owner, &support] {
        let (_, body) = send(&api, as_caller(token, READ, reads.clone()));
        assert_eq!(body["errors"], Value::Null, "{body}");
        assert_eq!(body["data"]["getBooking"]["id"], "booking_123");
        assert_eq!(body["data"]["getUserBookings"][0]["id"], "booking_123");
    }
    let (_, body) = send(
        &api,
        as_caller(
            &owner,
            PAY,
            json!({ "id": "booking_123", "details": "card_token_xyz" }),
        ),
    );
    assert_eq!(body["data"]["processPayment"]["success"], true, "{body}");
}

// --- Idempotency keys

fn token_for(fakes: &Fakes, user: &str) -> String {
    fakes.users.issue_token(user, &[], START + 48 * HOUR_MS)
}

#[test]
fn a_replayed_create_returns_the_first_answer_and_books_once() {
    let (fakes, api) = secured();
    let token = token_for(&fakes, "user_123");
    let variables = json!({ "user": "user_123", "seats": ["A1", "A2"], "key": "key-1" });

    let (_, first) = send(&api, as_caller(&token, CREATE, variables.clone()));
    let (_, again) = send(&api, as_caller(&token, CREATE, variables.clone()));
    assert_eq!(
        first["data"]["createBooking"]["booking"]["id"], "booking_123",
        "{first}"
    );
    assert_eq!(first, again);
    assert_eq!(fakes.seats.locks().len(), 1, "one lock");
    assert_eq!(fakes.storage.all().len(), 1, "one booking");

    // The header works like the argument.
    let mut by_header = as_caller(
        &token,
        CREATE,
        json!({ "user": "user_123", "seats": ["A1", "A2"] }),
    );
    by_header
        .headers
        .push(("Idempotency-Key".to_string(), "key-1".to_string()));
    let (_, replay) = send(&api, by_header);
    assert_eq!(replay, first);

    // Other arguments under the same key are refused; nothing runs.
    let reused = json!({ "user": "user_123", "seats": ["B1"], "key": "key-1" });
    let (_, body) = send(&api, as_caller(&token, CREATE, reused));
    assert_eq!(codes(&body), ["IDEMPOTENCY_KEY_REUSED"]);
    assert_eq!(fakes.seats.locks().len(), 1);

    // Keys are per user: another user's "key-1" is a new request.
    let theirs = token_for(&fakes, "user_456");
    let (_, body) = send(
        &api,
        as_caller(
            &theirs,
            CREATE,
            json!({ "user": "user_456", "seats": ["B1"], "key": "key-1" }),
        ),
    );
    assert_eq!(body["data"]["createBooking"]["success"], true, "{body}");
    assert_eq!(fakes.storage.all().len(), 2);
}

#[test]
fn a_replayed_payment_charges_once_and_replays_a_decline_too() {
    let (fakes, api) = secured();
    let token = token_for(&fakes, "user_123");
    let mut ids = Vec::new();
    for seat in ["A1", "A2"] {
        let created = json!({ "user": "user_123", "seats": [seat] });
        let (_, body) = send(&api, as_caller(&token, CREATE, created));
        ids.push(body["data"]["createBooking"]["booking"]["id"].clone());
    }

    let pay = json!({ "id": ids[0], "details": "card_token_xyz", "key": "pay-1" });
    let (_, first) = send(&api, as_caller(&token, PAY, pay.clone()));
    let (_, again) = send(&api, as_caller(&token, PAY, pay));
    assert_eq!(first["data"]["processPayment"]["success"], true, "{first}");
    assert_eq!(first, again);
    assert_eq!(fakes.payments.charges().len(), 1);

    fakes.payments.decline_details("card_declined");
    let declined = json!({ "id": ids[1], "details": "card_declined", "key": "pay-2" });
    let (_, first) = send(&api, as_caller(&token, PAY, declined.clone()));
    let (_, again) = send(&api, as_caller(&token, PAY, declined));
    assert_eq!(
        first["data"]["processPayment"]["code"], "PAYMENT_DECLINED",
        "{first}"
    );
    assert_eq!(first, again);
}

#[test]
fn final_errors_are_replayed_and_retryable_ones_release_the_key() {
    let (fakes, api) = secured();
    let token = token_for(&fakes, "user_123");
    let variables = json!({ "user": "user_123", "seats": ["A1"], "key": "retry-me" });

    fakes.knobs.fail_next(
        Op::LockSeats,
        Fault::Fail(PortError::Unavailable("cinema down".into())),
    );
    let (_, body) = send(&api, as_caller(&token, CREATE, variables.clone()));
    assert_eq!(codes(&body), ["DEPENDENCY_UNAVAILABLE"]);
    let (_, body) = send(&api, as_caller(&token, CREATE, variables));
    assert_eq!(
        body["data"]["createBooking"]["success"], true,
        "the retry ran: {body}"
    );

    let taken = json!({ "user": "user_123", "seats": ["A1"], "key": "taken" });
    let (_, first) = send(&api, as_caller(&token, CREATE, taken.clone()));
    assert_eq!(codes(&first), ["SEATS_UNAVAILABLE"]);
    send(
        &api,
        as_caller(&token, CANCEL, json!({ "id": "booking_123" })),
    );
    let (_, again) = send(&api, as_caller(&token, CREATE, taken));
    assert_eq!(
        codes(&again),
        ["SEATS_UNAVAILABLE"],
        "the first answer, though A1 is free now"
    );
    assert_eq!(again["errors"][0]["extensions"]["replayed"], true);
}

#[test]
fn a_key_in_flight_is_a_retryable_conflict_until_its_lease_runs_out() {
    let (fakes, api) = secured();
    let token = token_for(&fakes, "user_123");
    let arguments =
        json!({ "userId": "user_123", "showtimeId": "showtime_456", "seatNumbers": ["A1"] });
    block_on(
        fakes
            .storage
            .insert_idempotency_record(&crate::model::IdempotencyRecord {
                user_id: "user_123".to_string(),
                key: "in-flight".to_string(),
                fingerprint: crate::idempotency::fingerprint("createBooking", &arguments),
                response: None,
                lease_expires_at: START
                    + u64::from(Settings::default().idempotency_lease_seconds) * 1000,
                expires_at: START + 24 * HOUR_MS,
                version: 1,
            }),
    )
    .unwrap();
    let variables = json!({ "user": "user_123", "seats": ["A1"], "key": "in-flight" });

    let (_, body) = send(&api, as_caller(&token, CREATE, variables.clone()));
    assert_eq!(codes(&body), ["IDEMPOTENCY_KEY_IN_USE"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["retryable"], true);
    assert!(fakes.seats.locks().is_empty());

    fakes
        .env
        .advance_ms(u64::from(Settings::default().idempotency_lease_seconds) * 1000);
    let (_, body) = send(&api, as_caller(&token, CREATE, variables));
    assert_eq!(
        body["data"]["createBooking"]["success"], true,
        "taken over: {body}"
    );
}

#[test]
fn malformed_keys_are_invalid_input() {
    let (fakes, api) = secured();
    let token = token_for(&fakes, "user_123");
    for key in [
        String::new(),
        "k".repeat(256),
        "tab\tkey".to_string(),
        "clé".to_string(),
    ] {
        let variables = json!({ "user": "user_123", "seats": ["A1"], "key": key });
        let (_, body) = send(&api, as_caller(&token, CREATE, variables));
        assert_eq!(codes(&body), ["INVALID_INPUT"], "{key:?}");
    }
    assert!(fakes.seats.locks().is_empty());
}

#[test]
fn the_sweep_forgets_answers_past_their_retention() {
    let (fakes, api) = secured();
    let token = token_for(&fakes, "user_123");
    let variables = json!({ "user": "user_123", "seats": ["A1"], "key": "old" });
    send(&api, as_caller(&token, CREATE, variables));
    assert_eq!(fakes.storage.idempotency_records().len(), 1);

    fakes.env.advance_ms(24 * HOUR_MS - 1);
    let report = block_on(api.workflow.sweep_expired(10)).unwrap();
    assert_eq!(report.idempotency_purged, 0, "kept for 24 h");
    fakes.env.advance_ms(2);
    let report = block_on(api.workflow.sweep_expired(10)).unwrap();
    assert_eq!(report.idempotency_purged, 1);
    assert!(fakes.storage.idempotency_records().is_empty());
}
