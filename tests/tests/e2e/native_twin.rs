//! `--logic native`, the benchmarks' baseline, serves the same API through
//! the same adapters as the component, and says so in `x-logic-version`.

use e2e_tests::{Options, TestService};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_twin_books_and_pays_like_the_component() {
    let service = TestService::start(Options {
        extra_args: vec!["--logic".into(), "native".into()],
        ..Options::default()
    })
    .await;
    let response = service
        .client
        .post(format!("{}/graphql", service.base_url))
        .json(&json!({"query": "{ logicVersion }"}))
        .send()
        .await
        .expect("the service answers");
    assert_eq!(response.headers()["x-logic-version"], "native");

    let booking = service
        .create_booking("user_123", "showtime_456", &["A1", "A2"])
        .await;
    let (status, paid) = service.pay(&booking, "card_token_xyz").await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["data"]["processPayment"]["success"], true, "{paid}");
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
