//! Limits against one client taking more than its share: seats held per
//! user, request rates per token and per client IP, GraphQL cost.

use e2e_tests::{Options, TestService, args, error_code};
use serde_json::{Value, json};

const CREATE_FLASH: &str = "mutation($n: [String!]!) { createBooking(userId: \"user_123\", showtimeId: \"showtime_flash\", seatNumbers: $n) { success booking { id } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_cannot_lock_a_whole_flash_showtime() {
    let service = TestService::start(Options::default()).await;
    // Fifty bookings of ten seats would lock all 500 seats.
    let mut created = 0;
    for call in 0..50 {
        let seats: Vec<String> = (0..10)
            .map(|n| {
                let index = call * 10 + n;
                format!(
                    "{}{}",
                    char::from(b'A' + (index / 25) as u8),
                    index % 25 + 1
                )
            })
            .collect();
        let (status, body) = service.graphql(CREATE_FLASH, json!({"n": seats})).await;
        assert_eq!(status, 200, "{body}");
        if body["data"]["createBooking"]["success"] == true {
            created += 1;
        } else {
            assert_eq!(error_code(&body), Some("HOLD_LIMIT_EXCEEDED"), "{body}");
        }
    }
    assert_eq!(created, 1, "ten seats per user and showtime by default");
    let held: usize = service
        .peers
        .cinema
        .live_locks("showtime_flash")
        .iter()
        .map(|lock| lock.seats.len())
        .sum();
    assert_eq!(held, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_is_told_when_to_come_back() {
    let service = TestService::start(Options {
        auth_required: true,
        extra_args: args(&["--rate-limit-per-user", "1", "--rate-limit-burst", "3"]),
        ..Options::default()
    })
    .await;
    let token = service.login("user_123").await;
    let send = |token: String| {
        service
            .graphql_request("{ logicVersion }")
            .bearer_auth(token)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(send(token.clone()).await.unwrap().status(), 200);
    }
    let refused = send(token.clone()).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    // Another token (another login) is not held back.
    let other = service.login("user_456").await;
    assert_eq!(send(other).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ip_over_its_rate_gets_429() {
    let service = TestService::start(Options::with_args(&[
        "--rate-limit-per-ip",
        "1",
        "--rate-limit-burst",
        "2",
    ]))
    .await;
    let statuses = [
        service.graphql("{ logicVersion }", Value::Null).await.0,
        service.graphql("{ logicVersion }", Value::Null).await.0,
        service.graphql("{ logicVersion }", Value::Null).await.0,
    ];
    assert_eq!(statuses, [200, 200, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliased_seat_maps_are_too_costly_for_one_document() {
    let service = TestService::start(Options::default()).await;
    let flood: Vec<String> = (0..160)
        .map(|i| {
            format!("s{i}: showtimeSeats(showtimeId: \"showtime_flash\") {{ seats {{ number }} }}")
        })
        .collect();
    let (_, body) = service
        .graphql(&format!("{{ {} }}", flood.join(" ")), Value::Null)
        .await;
    assert_eq!(
        error_code(&body),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{body}"
    );
    let (_, body) = service
        .graphql(
            "{ showtimeSeats(showtimeId: \"showtime_flash\") { showtime { id } seats { number status price } } }",
            Value::Null,
        )
        .await;
    assert_eq!(body["errors"], Value::Null, "{body}");
}
