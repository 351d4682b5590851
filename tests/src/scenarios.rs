//! Workflow scenarios both hosts must pass alike: each takes a GraphQL
//! client and the reference peers it calls, so `tests/e2e/compensation.rs`
//! runs it against our host and `tests/e2e/spin_up.rs` under `spin up`.

use booking_peers::RunningPeers;

use crate::{Api, error_code};

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
