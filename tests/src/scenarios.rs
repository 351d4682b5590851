//! Workflow scenarios both hosts must pass alike: each takes a GraphQL
//! client and the reference peers it calls, so `tests/e2e/compensation.rs`
//! runs it against our host and `tests/e2e/spin_up.rs` under `spin up`.

use booking_logic::testing::seed_documents::{
    CREATE_BOOKING, GET_BOOKING, GET_USER_BOOKINGS, PROCESS_PAYMENT,
};
use booking_peers::RunningPeers;
use serde_json::json;

use crate::{Api, error_code};

/// The original service's README documents, sent as written (only the
/// booking id replaced by the real one): the whole workflow, one charge,
/// the events, and a second payment replayed rather than charged.
pub async fn the_seed_documents_run_the_whole_workflow(api: &Api, peers: &RunningPeers) {
    let created = api.data(CREATE_BOOKING, json!({})).await["createBooking"].clone();
    assert_eq!(created["success"], true, "{created}");
    assert!(created["lockId"].as_str().is_some_and(|id| !id.is_empty()));
    let booking = &created["booking"];
    assert_eq!(booking["userId"], "user_123");
    assert_eq!(booking["showtimeId"], "showtime_456");
    assert_eq!(booking["seats"], json!(["A1", "A2"]));
    assert_eq!(booking["status"], "PENDING");
    // Row A costs 15.00 a seat in the demo catalog.
    assert_eq!(booking["totalAmount"], "30.00");
    let booking_id = booking["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.seats_with_status("showtime_456", "LOCKED").await,
        vec!["A1", "A2"]
    );
    // Locked at the Cinema itself (under Spin: only the adapter's
    // gRPC-Web call can have done it).
    let locks = peers.cinema.live_locks("showtime_456");
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(locks[0].seats, ["A1", "A2"]);
    assert_eq!(created["lockId"], locks[0].id.as_str());

    let paid = api
        .data(
            &PROCESS_PAYMENT.replace("booking_123", &booking_id),
            json!({}),
        )
        .await;
    let paid = &paid["processPayment"];
    assert_eq!(paid["success"], true, "{paid}");
    assert_eq!(paid["booking"]["status"], "CONFIRMED");
    let transaction = paid["booking"]["paymentTransactionId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        api.seats_with_status("showtime_456", "BOOKED").await,
        vec!["A1", "A2"]
    );

    let fetched = api
        .data(&GET_BOOKING.replace("booking_123", &booking_id), json!({}))
        .await;
    let fetched = &fetched["getBooking"];
    assert_eq!(fetched["id"], booking_id.as_str());
    assert_eq!(fetched["status"], "CONFIRMED");
    assert!(
        fetched["updatedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{fetched}"
    );

    let listed = api.data(GET_USER_BOOKINGS, json!({})).await;
    let listed = listed["getUserBookings"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|b| b["id"] == booking_id.as_str() && b["status"] == "CONFIRMED"),
        "{listed:?}"
    );

    assert_eq!(
        api.event_types(&booking_id).await,
        vec!["booking.created", "booking.confirmed"]
    );
    let charge = peers.payments.charges_for_key(&booking_id);
    assert_eq!(charge.len(), 1, "exactly one charge");
    assert_eq!(charge[0].transaction_id, transaction);
    assert_eq!(charge[0].amount_cents, 3000);

    // Paying again is an idempotent replay, not a second charge.
    let (_, replay) = api.pay(&booking_id, "card_token_xyz").await;
    assert_eq!(
        replay["data"]["processPayment"]["booking"]["status"], "CONFIRMED",
        "{replay}"
    );
    assert_eq!(peers.payments.charges_for_key(&booking_id).len(), 1);
}

/// A declined card: PAYMENT_FAILED, seats B1 and B2 free again, no money
/// taken, and the booking cannot be paid again.
pub async fn a_declined_card_releases_the_seats(api: &Api, peers: &RunningPeers) {
    let booking = api
        .create_booking("user_123", "showtime_456", &["B1", "B2"])
        .await;

    let outcome = api.pay_failing(&booking, "card_declined").await;
    assert_eq!(outcome["code"], "PAYMENT_DECLINED", "{outcome}");
    assert_eq!(outcome["booking"]["status"], "PAYMENT_FAILED", "{outcome}");

    let available = api.seats_with_status("showtime_456", "AVAILABLE").await;
    assert!(
        ["B1", "B2"]
            .iter()
            .all(|seat| available.iter().any(|free| free == seat)),
        "{available:?}"
    );
    assert!(peers.cinema.live_locks("showtime_456").is_empty());
    assert_eq!(
        api.event_types(&booking).await,
        vec!["booking.created", "booking.payment_failed"]
    );
    assert!(
        peers.payments.charges_for_key(&booking).is_empty(),
        "a declined card takes no money"
    );
    let (_, again) = api.pay(&booking, "card_token_xyz").await;
    assert_eq!(error_code(&again), Some("INVALID_STATE"), "{again}");
}

/// The Payment service charges but its reply comes after the payment
/// timeout (the host's must be shorter than the peers' `lost_reply_delay`):
/// PAYMENT_TIMEOUT with the booking still PENDING; the retry replays the
/// same idempotency key, so the charge that did happen is found, not
/// repeated.
pub async fn a_lost_payment_reply_is_retried_without_a_second_charge(
    api: &Api,
    peers: &RunningPeers,
) {
    let booking = api
        .create_booking("user_123", "showtime_456", &["C1"])
        .await;

    let (status, body) = api.pay(&booking, "card_lost_reply").await;
    assert!(status < 500, "{body}");
    assert_eq!(error_code(&body), Some("PAYMENT_TIMEOUT"), "{body}");
    assert_eq!(api.booking(&booking).await["status"], "PENDING");

    let (_, retried) = api.pay(&booking, "card_lost_reply").await;
    let outcome = &retried["data"]["processPayment"];
    assert_eq!(outcome["success"], true, "{retried}");
    assert_eq!(outcome["booking"]["status"], "CONFIRMED");
    let charges = peers.payments.charges_for_key(&booking);
    assert_eq!(charges.len(), 1, "one charge, not two: {charges:?}");
    assert_eq!(
        outcome["booking"]["paymentTransactionId"],
        charges[0].transaction_id.as_str()
    );
    assert_eq!(
        api.event_types(&booking).await,
        vec!["booking.created", "booking.confirmed"]
    );
}
