//! Many clients racing for overlapping seats: no seat is held twice.

use std::collections::HashSet;
use std::sync::Arc;

use e2e_tests::{Options, TestService, error_code};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_bookings_for_overlapping_seats_never_share_a_seat() {
    let service = Arc::new(TestService::start(Options::default()).await);
    // Each client wants two adjacent seats of row A (A1..A10), so every
    // request overlaps with its neighbours'.
    let requests = (0..50).map(|client| {
        let service = service.clone();
        let first = client % 9 + 1;
        let seats = vec![format!("A{first}"), format!("A{}", first + 1)];
        tokio::spawn(async move {
            let (status, body) = service
                .graphql(
                    "mutation($n: [String!]!) { createBooking(userId: \"user_789\", showtimeId: \"showtime_456\", seatNumbers: $n) { success booking { id seats } } }",
                    json!({"n": seats}),
                )
                .await;
            (status, body)
        })
    });
    let mut won_seats = Vec::new();
    let mut winners = 0;
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert!(status < 500, "{body}");
        if body["data"]["createBooking"]["success"] == true {
            winners += 1;
            for seat in body["data"]["createBooking"]["booking"]["seats"]
                .as_array()
                .unwrap()
            {
                won_seats.push(seat.as_str().unwrap().to_owned());
            }
        } else {
            assert_eq!(error_code(&body), Some("SEATS_UNAVAILABLE"), "{body}");
        }
    }
    let distinct: HashSet<_> = won_seats.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        won_seats.len(),
        "a seat was sold twice: {won_seats:?}"
    );
    assert!(
        (1..=5).contains(&winners),
        "{winners} winners for 10 seats in pairs"
    );
    // The cinema agrees: exactly the winners' seats are locked.
    let mut locked = service.seats_with_status("showtime_456", "LOCKED").await;
    let mut won: Vec<_> = distinct.into_iter().collect();
    locked.sort();
    won.sort();
    assert_eq!(locked, won);
}
