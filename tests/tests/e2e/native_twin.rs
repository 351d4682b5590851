//! `--logic native`, the benchmarks' baseline, serves the same API through
//! the same adapters as the component, and says so in `x-logic-version`.

use e2e_tests::{Options, TestService};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_twin_books_and_pays_like_the_component() {
    let service = TestService::start(Options::with_args(&["--logic", "native"])).await;
    let response = service
        .graphql_request("{ logicVersion }")
        .send()
        .await
        .expect("the service answers");
    assert_eq!(response.headers()["x-logic-version"], "native");

    let booking = service
        .paid_booking("user_123", "showtime_456", &["A1", "A2"])
        .await;
    assert_eq!(service.booking(&booking).await["status"], "CONFIRMED");
    assert_eq!(
        service.event_types(&booking).await,
        ["booking.created", "booking.confirmed"]
    );
    assert_eq!(
        service.seats_with_status("showtime_456", "BOOKED").await,
        ["A1", "A2"]
    );
    service.stop().await;
}
