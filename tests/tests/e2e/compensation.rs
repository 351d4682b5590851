//! Every failure path of the workflow, driven through the reference peers'
//! documented failure inputs, ends in the right state with seats released
//! or money refunded, and the right events.

use std::time::Duration;

use booking_peers::PaymentBehaviour;
use e2e_tests::{Options, TestService, args, error_code, scenarios, slow_payments};

#[tokio::test]
async fn a_declined_card_fails_the_booking_and_releases_its_seats() {
    let service = TestService::start(Options::default()).await;
    scenarios::a_declined_card_releases_the_seats(&service, &service.peers).await;
    service.stop().await;
}

#[tokio::test]
async fn a_lost_payment_reply_leaves_the_booking_retryable_and_never_charges_twice() {
    let service = TestService::start(Options {
        payment_timeout_seconds: 1,
        payments: PaymentBehaviour {
            lost_reply_delay: Duration::from_secs(3),
            ..PaymentBehaviour::default()
        },
        ..Options::default()
    })
    .await;
    scenarios::a_lost_payment_reply_is_retried_without_a_second_charge(&service, &service.peers)
        .await;
    service.stop().await;
}

#[tokio::test]
async fn a_lock_that_expires_during_payment_is_refunded_and_the_booking_fails() {
    // The lock lasts 1 s; the slow card answers after 2 s, so the seats
    // can no longer be confirmed once the money is taken.
    let service = TestService::start(Options {
        seat_lock_seconds: 1,
        payment_timeout_seconds: 5,
        payments: slow_payments(Duration::from_secs(2)),
        ..Options::default()
    })
    .await;
    let booking = service
        .create_booking("user_123", "showtime_456", &["D1", "D2"])
        .await;

    let outcome = service.pay_failing(&booking, "card_slow").await;
    assert_eq!(outcome["booking"]["status"], "FAILED");

    let charges = service.peers.payments.charges_for_key(&booking);
    assert_eq!(charges.len(), 1);
    assert!(
        charges[0].refunded,
        "the charge must be refunded: {charges:?}"
    );
    let booked = service.seats_with_status("showtime_456", "BOOKED").await;
    assert!(!booked.contains(&"D1".to_owned()));
    assert_eq!(
        service.event_types(&booking).await,
        vec![
            "booking.created",
            "booking.failed",
            "booking.payment_refunded"
        ]
    );
    let failed = service.booking(&booking).await;
    assert!(failed["refundedAt"].is_string(), "{failed}");
    assert_eq!(failed["settlementPending"], false, "{failed}");
    service.stop().await;
}

#[tokio::test]
async fn cancelling_releases_a_pending_booking_and_refunds_a_confirmed_one() {
    let service = TestService::start(Options::default()).await;
    let cancel = "mutation($b: String!) { cancelBooking(bookingId: $b) { success code booking { status } } }";

    let pending = service
        .create_booking("user_456", "showtime_456", &["E1"])
        .await;
    let data = service
        .data(cancel, serde_json::json!({"b": pending}))
        .await;
    assert_eq!(
        data["cancelBooking"]["booking"]["status"], "CANCELLED",
        "{data}"
    );
    assert!(
        service
            .seats_with_status("showtime_456", "AVAILABLE")
            .await
            .contains(&"E1".to_owned())
    );
    assert_eq!(
        service.event_types(&pending).await,
        vec!["booking.created", "booking.cancelled"]
    );

    let confirmed = service
        .create_booking("user_456", "showtime_456", &["E2"])
        .await;
    let (_, paid) = service.pay(&confirmed, "card_token_xyz").await;
    assert_eq!(
        paid["data"]["processPayment"]["booking"]["status"], "CONFIRMED",
        "{paid}"
    );
    let data = service
        .data(cancel, serde_json::json!({"b": confirmed}))
        .await;
    assert_eq!(
        data["cancelBooking"]["booking"]["status"], "REFUNDED",
        "{data}"
    );
    assert!(service.peers.payments.charges_for_key(&confirmed)[0].refunded);
    assert!(
        service
            .seats_with_status("showtime_456", "AVAILABLE")
            .await
            .contains(&"E2".to_owned())
    );
    assert_eq!(
        service.event_types(&confirmed).await,
        vec![
            "booking.created",
            "booking.confirmed",
            "booking.refunded",
            "booking.payment_refunded"
        ]
    );
    let refunded = service.booking(&confirmed).await;
    assert!(refunded["refundedAt"].is_string(), "{refunded}");
    assert_eq!(refunded["settlementPending"], false, "{refunded}");
    let cancelled = service.booking(&pending).await;
    assert_eq!(
        cancelled["refundedAt"],
        serde_json::Value::Null,
        "never charged"
    );
    assert_eq!(cancelled["settlementPending"], false, "{cancelled}");

    // Nothing left to cancel.
    let (_, again) = service
        .graphql(cancel, serde_json::json!({"b": confirmed}))
        .await;
    assert_eq!(error_code(&again), Some("INVALID_STATE"), "{again}");
    service.stop().await;
}

#[tokio::test]
async fn an_unpaid_booking_expires_and_its_seats_can_be_booked_by_someone_else() {
    let service = TestService::start(Options {
        seat_lock_seconds: 1,
        sweep_interval_seconds: 1,
        ..Options::default()
    })
    .await;
    let booking = service
        .create_booking("user_123", "showtime_789", &["A5", "A6"])
        .await;

    let expired = service
        .wait_for_status(&booking, "EXPIRED", Duration::from_secs(10))
        .await;
    assert_eq!(expired["status"], "EXPIRED", "{expired}");
    assert_eq!(
        service.event_types(&booking).await,
        vec!["booking.created", "booking.expired"]
    );

    // Paying an expired booking is refused without charging.
    let (_, late) = service.pay(&booking, "card_token_xyz").await;
    assert!(
        matches!(error_code(&late), Some("INVALID_STATE" | "BOOKING_EXPIRED")),
        "{late}"
    );
    assert!(service.peers.payments.charges_for_key(&booking).is_empty());

    let other = service
        .create_booking("user_456", "showtime_789", &["A5", "A6"])
        .await;
    assert_ne!(other, booking);
    service.stop().await;
}

/// The host cuts a request at its deadline while the charge it sent is
/// made but not yet answered, as a crash would: the booking never learns
/// of the money. Once it ends, settling voids the key, finds the charge
/// and refunds it.
#[tokio::test]
async fn a_charge_cut_off_by_the_request_deadline_is_found_and_refunded() {
    let service = TestService::start(Options {
        payments: slow_payments(Duration::from_secs(3)),
        extra_args: args(&["--request-timeout-seconds", "1"]),
        ..Options::default()
    })
    .await;
    let booking = service
        .create_booking("user_123", "showtime_456", &["D4"])
        .await;

    let (status, body) = service.pay(&booking, "card_slow").await;
    assert_eq!(
        (status, error_code(&body)),
        (500, Some("INTERNAL")),
        "{body}"
    );
    let charges = service.peers.payments.charges_for_key(&booking);
    assert_eq!(charges.len(), 1, "the charge was made");
    let stored = service.booking(&booking).await;
    assert_eq!(stored["status"], "PENDING");
    assert_eq!(stored["paymentTransactionId"], serde_json::Value::Null);

    let (_, cancelled) = service
        .graphql(
            "mutation($b: String!) { cancelBooking(bookingId: $b) { success booking { status refundedAt settlementPending paymentTransactionId } } }",
            serde_json::json!({ "b": booking }),
        )
        .await;
    let cancelled = &cancelled["data"]["cancelBooking"]["booking"];
    assert_eq!(cancelled["status"], "CANCELLED", "{cancelled}");
    assert_eq!(
        cancelled["paymentTransactionId"].as_str(),
        Some(charges[0].transaction_id.as_str())
    );
    assert!(cancelled["refundedAt"].is_string(), "{cancelled}");
    assert_eq!(cancelled["settlementPending"], false);
    let refunded = service.peers.payments.charges_for_key(&booking);
    assert!(refunded[0].refunded, "the money is back");
    assert_eq!(
        service.event_types(&booking).await,
        vec![
            "booking.created",
            "booking.cancelled",
            "booking.payment_refunded"
        ]
    );
    // The voided key takes no more money, whoever retries.
    let (_, late) = service.pay(&booking, "card_token_xyz").await;
    assert_eq!(error_code(&late), Some("INVALID_STATE"), "{late}");
    assert_eq!(service.peers.payments.charges_for_key(&booking).len(), 1);
    service.stop().await;
}
