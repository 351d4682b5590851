//! Bad input gets a clear error with a code, never a 5xx.

use e2e_tests::{Options, TestService, error_code};
use serde_json::{Value, json};

const CREATE: &str = "mutation($u: String!, $s: String!, $n: [String!]!) { createBooking(userId: $u, showtimeId: $s, seatNumbers: $n) { success booking { id } } }";

async fn create_error(service: &TestService, user: &str, showtime: &str, seats: Value) -> String {
    let (status, body) = service
        .graphql(CREATE, json!({"u": user, "s": showtime, "n": seats}))
        .await;
    assert!(status < 500, "status {status}: {body}");
    error_code(&body)
        .unwrap_or_else(|| panic!("no error code in {body}"))
        .to_owned()
}

#[tokio::test]
async fn unknown_ids_and_bad_seat_lists_are_refused_with_codes() {
    let service = TestService::start(Options::default()).await;
    let long_user = "u".repeat(10_000);
    let many: Vec<String> = (1..=1000).map(|n| format!("A{n}")).collect();
    let cases = [
        ("nobody", "showtime_456", json!(["A1"]), "USER_NOT_FOUND"),
        (
            "user_inactive",
            "showtime_456",
            json!(["A1"]),
            "USER_INACTIVE",
        ),
        (
            "user_123",
            "showtime_000",
            json!(["A1"]),
            "SHOWTIME_NOT_FOUND",
        ),
        ("user_123", "showtime_456", json!([]), "INVALID_INPUT"),
        (
            "user_123",
            "showtime_456",
            json!(["A1", "A1"]),
            "INVALID_INPUT",
        ),
        (
            "user_123",
            "showtime_456",
            json!(["A1; DROP"]),
            "INVALID_INPUT",
        ),
        ("user_123", "showtime_456", json!(["Z99"]), "INVALID_INPUT"),
        ("user_123", "showtime_456", json!(many), "INVALID_INPUT"),
        ("", "showtime_456", json!(["A1"]), "INVALID_INPUT"),
        (
            long_user.as_str(),
            "showtime_456",
            json!(["A1"]),
            "INVALID_INPUT",
        ),
    ];
    for (user, showtime, seats, code) in cases {
        let case = format!("{user:.20} {showtime} {:.40}", seats.to_string());
        assert_eq!(
            create_error(&service, user, showtime, seats).await,
            code,
            "{case}"
        );
    }
    // Nothing was locked by any of these.
    assert!(
        service
            .seats_with_status("showtime_456", "LOCKED")
            .await
            .is_empty()
    );

    let (status, body) = service.pay("no-such-booking", "card_token_xyz").await;
    assert!(status < 500);
    assert_eq!(error_code(&body), Some("BOOKING_NOT_FOUND"), "{body}");
    let missing = service
        .data(
            "{ getBooking(bookingId: \"no-such-booking\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(missing["getBooking"], Value::Null);
    service.stop().await;
}

#[tokio::test]
async fn malformed_graphql_and_http_are_client_errors_with_codes() {
    let service = TestService::start(Options::default()).await;
    let documents = [
        // wrong type
        "mutation { createBooking(userId: \"user_123\", showtimeId: \"showtime_456\", seatNumbers: 5) { success } }",
        // missing argument
        "mutation { createBooking(userId: \"user_123\") { success } }",
        // unknown field
        "{ getBooking(bookingId: \"x\") { nope } }",
        // not GraphQL
        "this is not graphql {{{",
    ];
    for document in documents {
        let (status, body) = service.graphql(document, json!({})).await;
        assert!((200..500).contains(&status), "{document}: status {status}");
        assert!(error_code(&body).is_some(), "{document}: no code in {body}");
    }

    let url = format!("{}/graphql", service.base_url);
    let not_json = service
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.unwrap();
    assert!(error_code(&body).is_some(), "{body}");

    let huge = service
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(vec![b' '; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);

    let mutation_over_get = service
        .client
        .get(&url)
        .query(&[(
            "query",
            "mutation { cancelBooking(bookingId: \"x\") { success } }",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(mutation_over_get.status(), 405);
    service.stop().await;
}
