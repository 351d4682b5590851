//! The Spin adapters' `http-only` build, run end to end under our own
//! host (issue #8): `target/spin/booking_http_adapters.wasm` is the
//! unchanged booking component with `cinema:booking/{seats,users,payments}`
//! plugged by the adapter, which calls the reference peers itself over
//! `wasi:http/outgoing-handler` — gRPC-Web over HTTP/1.1 to the Cinema
//! peer, REST to the User and Payment peers. Storage and events stay host
//! imports. The host lets those requests out only to the hosts of
//! `--outbound-http-allow`.

use std::path::PathBuf;

use e2e_tests::{Options, TestService, args, authority, error_code, target_dir};
use serde_json::{Value, json};

/// The composition `scripts/spin-check.sh` builds.
fn composed_component() -> PathBuf {
    let path = target_dir().join("spin/booking_http_adapters.wasm");
    assert!(
        path.exists(),
        "{} is missing: run scripts/spin-check.sh first (it composes the booking \
         component with the http-only Spin adapter)",
        path.display()
    );
    path
}

/// The composition, allowed to reach the peers.
async fn start(auth_required: bool) -> TestService {
    TestService::start(Options {
        component: composed_component(),
        outbound_http_to_peers: true,
        auth_required,
        ..Options::default()
    })
    .await
}

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_workflow_runs_through_the_adapters_against_the_peers() {
    let service = start(false).await;

    // createBooking: user and showtime over REST and gRPC-Web, seats locked
    // at the Cinema peer (the composition does not import `seats`: only the
    // adapter's gRPC-Web call can have locked them).
    let created = service
        .data(
            "mutation { createBooking(userId: \"user_123\", showtimeId: \"showtime_456\", seatNumbers: [\"A1\", \"A2\"]) { success lockId booking { id status totalAmount } } }",
            json!({}),
        )
        .await["createBooking"]
        .clone();
    assert_eq!(created["success"], true, "{created}");
    assert_eq!(created["booking"]["status"], "PENDING");
    assert_eq!(created["booking"]["totalAmount"], "30.00");
    let booking_id = created["booking"]["id"].as_str().unwrap().to_owned();
    let locks = service.peers.cinema.live_locks("showtime_456");
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0].seats, ["A1", "A2"]);
    assert_eq!(created["lockId"], locks[0].id.as_str());
    assert_eq!(
        service.seats_with_status("showtime_456", "LOCKED").await,
        ["A1", "A2"],
        "the seat map, read through gRPC-Web"
    );

    // processPayment: charged at the Payment peer, seats confirmed.
    let (status, body) = service.pay(&booking_id, "card_token_xyz").await;
    assert_eq!(status, 200, "{body}");
    let paid = &body["data"]["processPayment"];
    assert_eq!(paid["success"], true, "{body}");
    assert_eq!(paid["booking"]["status"], "CONFIRMED");
    let charges = service.peers.payments.charges();
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0].amount_cents, 3000);
    assert_eq!(
        paid["booking"]["paymentTransactionId"],
        charges[0].transaction_id.as_str()
    );
    assert_eq!(
        service.peers.cinema.booked_seats("showtime_456"),
        ["A1", "A2"]
    );

    // getBooking: CONFIRMED, from the host's storage; events from the host.
    let booking = service.booking(&booking_id).await;
    assert_eq!(booking["status"], "CONFIRMED", "{booking}");
    assert_eq!(
        service.event_types(&booking_id).await,
        ["booking.created", "booking.confirmed"]
    );

    // A declined card: PAYMENT_FAILED, nothing charged, seats released.
    let declined = service
        .create_booking("user_456", "showtime_456", &["B1", "B2"])
        .await;
    let outcome = service.pay_failing(&declined, "card_declined").await;
    assert_eq!(outcome["code"], "PAYMENT_DECLINED");
    assert_eq!(outcome["booking"]["status"], "PAYMENT_FAILED");
    assert!(service.peers.payments.charges_for_key(&declined).is_empty());
    assert!(
        service.peers.cinema.live_locks("showtime_456").is_empty(),
        "the declined booking's seats are released at the Cinema peer"
    );
    let available = service.seats_with_status("showtime_456", "AVAILABLE").await;
    assert!(
        available.contains(&"B1".to_owned()) && available.contains(&"B2".to_owned()),
        "{available:?}"
    );
    assert_eq!(service.peers.payments.charges().len(), 1);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_through_the_adapters_auth_me() {
    let service = start(true).await;
    let alice = service.login("user_123").await;
    let bob = service.login("user_456").await;
    let create = "mutation($u: String!) { createBooking(userId: $u, showtimeId: \"showtime_456\", seatNumbers: [\"C1\"]) { success booking { id userId } } }";

    // A made-up token: the adapter's GET /auth/me answers 401.
    let (status, body) = service
        .graphql_as("not-a-token", "{ logicVersion }", Value::Null)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (401, Some("UNAUTHENTICATED")),
        "{body}"
    );

    // Bob may not book for Alice; Alice may.
    let (status, body) = service
        .graphql_as(&bob, create, json!({"u": "user_123"}))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (200, Some("FORBIDDEN")),
        "{body}"
    );
    let (status, body) = service
        .graphql_as(&alice, create, json!({"u": "user_123"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["createBooking"]["success"], true, "{body}");
    assert_eq!(
        body["data"]["createBooking"]["booking"]["userId"],
        "user_123"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_allowlist_the_adapters_calls_are_refused_cleanly() {
    let create = "mutation { createBooking(userId: \"user_123\", showtimeId: \"showtime_456\", seatNumbers: [\"D1\"]) { success } }";

    // No allowlist (the default): the component gets neither network nor
    // the services' URLs.
    let service = TestService::start(Options {
        component: composed_component(),
        ..Options::default()
    })
    .await;
    let (status, body) = service.graphql(create, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(error_code(&body), Some("DEPENDENCY_UNAVAILABLE"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["retryable"], true, "{body}");
    assert!(service.peers.cinema.live_locks("showtime_456").is_empty());

    // An allowlist that names another host: the URLs reach the guest, the
    // requests are denied by the host before anything is sent.
    let denied = service
        .second_host(Options {
            component: composed_component(),
            extra_args: args(&["--outbound-http-allow", "127.0.0.1:9"]),
            ..Options::default()
        })
        .await;
    for query in [
        create,
        "{ showtimeSeats(showtimeId: \"showtime_456\") { seats { number } } }",
    ] {
        let (status, body) = service.graphql_at(&denied.base_url, query, json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(error_code(&body), Some("DEPENDENCY_UNAVAILABLE"), "{body}");
        // The client learns which service failed, not the host's answer
        // (it names internal addresses); that goes to the guest's log.
        assert!(
            message(&body).ends_with("service is unavailable; retry later")
                && !message(&body).contains("HttpRequestDenied"),
            "{body}"
        );
    }
    assert!(service.peers.cinema.live_locks("showtime_456").is_empty());
    assert!(service.peers.payments.charges().is_empty());

    // Cinema and users allowed, payments not: the booking is made, the
    // charge is denied before it is sent — unavailable (nothing charged,
    // retry later), not a timeout — and the booking stays PENDING.
    let no_payments = service
        .second_host(Options {
            component: composed_component(),
            extra_args: args(&[
                "--outbound-http-allow",
                &format!(
                    "{},{}",
                    authority(&service.peers.cinema_url),
                    authority(&service.peers.users_url)
                ),
            ]),
            ..Options::default()
        })
        .await;
    let (_, body) = service
        .graphql_at(&no_payments.base_url, create, json!({}))
        .await;
    assert_eq!(body["data"]["createBooking"]["success"], true, "{body}");
    let (_, body) = service
        .graphql_at(
            &no_payments.base_url,
            "{ getUserBookings(userId: \"user_123\") { id } }",
            Value::Null,
        )
        .await;
    let booking_id = body["data"]["getUserBookings"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = service
        .graphql_at(
            &no_payments.base_url,
            "mutation($b: String!) { processPayment(bookingId: $b, paymentMethod: \"credit_card\", paymentDetails: \"card_token_xyz\") { success code booking { status } } }",
            json!({"b": booking_id}),
        )
        .await;
    assert_eq!(error_code(&body), Some("DEPENDENCY_UNAVAILABLE"), "{body}");
    assert_eq!(
        message(&body),
        "the payment service is unavailable; retry later",
        "{body}"
    );
    assert!(service.peers.payments.charges().is_empty());
    let (_, body) = service
        .graphql_at(
            &no_payments.base_url,
            "query($b: String!) { getBooking(bookingId: $b) { status } }",
            json!({"b": booking_id}),
        )
        .await;
    assert_eq!(body["data"]["getBooking"]["status"], "PENDING", "{body}");

    // No host crashed: they still answer.
    for base_url in [&service.base_url, &denied.base_url, &no_payments.base_url] {
        let (status, body) = service
            .graphql_at(base_url, "{ logicVersion }", Value::Null)
            .await;
        assert_eq!((status, body.get("errors")), (200, None), "{body}");
    }
    denied.stop().await;
    no_payments.stop().await;
    service.stop().await;
}

/// Waiting for a slow peer inside the guest (a WASI poll on an outgoing
/// request) is not guest CPU time: a 1.5 s charge passes a 300 ms CPU
/// limit, while a guest that computes for that long is stopped
/// (sandbox.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_a_slow_peer_does_not_count_against_the_cpu_limit() {
    let service = TestService::start(Options {
        component: composed_component(),
        outbound_http_to_peers: true,
        extra_args: args(&["--request-cpu-ms", "300"]),
        ..Options::default()
    })
    .await;
    let booking = service
        .create_booking("user_123", "showtime_456", &["E1"])
        .await;
    let started = std::time::Instant::now();
    let (status, body) = service.pay(&booking, "card_slow").await;
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1500),
        "the peer was slow"
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["processPayment"]["success"], true, "{body}");
    assert_eq!(service.peers.payments.charges_for_key(&booking).len(), 1);
    service.stop().await;
}
