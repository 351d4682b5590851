//! The workflow against the in-memory fakes: every operation, every
//! compensation path, races made deterministic with interleaving.

use std::future::Future;
use std::sync::Arc;

use futures::executor::block_on;
use futures::future::join;

use super::*;
use crate::model::{SeatStatus, Timestamp};
use crate::ports::{Environment, PortError, Seats};
use crate::testing::{Fakes, Fault, LockState, Op};

const START: Timestamp = 1_700_000_000_000;
const LOCK_SECONDS: u64 = 300;

fn run<F: Future>(future: F) -> F::Output {
    block_on(future)
}

fn setup() -> (Fakes, Workflow) {
    let fakes = Fakes::sample(START);
    let workflow = Workflow::new(fakes.ports(), Settings::default());
    (fakes, workflow)
}

fn seats(numbers: &[&str]) -> Vec<String> {
    numbers.iter().map(|number| number.to_string()).collect()
}

fn create(workflow: &Workflow, numbers: &[&str]) -> Booking {
    run(workflow.create_booking("user_123", "showtime_456", seats(numbers)))
        .expect("booking created")
        .booking
}

fn pay(workflow: &Workflow, booking_id: &str) -> Result<PaymentOutcome, BookingError> {
    run(workflow.process_payment(booking_id, "credit_card", "card_token_xyz"))
}

fn stored(fakes: &Fakes, booking_id: &str) -> Booking {
    fakes.storage.booking(booking_id).expect("booking stored")
}

fn seat(fakes: &Fakes, number: &str) -> SeatStatus {
    fakes
        .seats
        .seat_status("showtime_456", number)
        .expect("seat exists")
}

fn kinds(fakes: &Fakes, booking_id: &str) -> Vec<EventKind> {
    fakes.events.kinds(booking_id)
}

// ---- createBooking -------------------------------------------------------

#[test]
fn create_locks_the_seats_and_stores_a_pending_booking() {
    let (fakes, workflow) = setup();
    fakes.env.script_ids(["booking_1"]);

    let created =
        run(workflow.create_booking("user_123", "showtime_456", seats(&["A1", "A2"]))).unwrap();

    let booking = created.booking;
    assert_eq!(booking.id, "booking_1");
    assert_eq!(booking.status, BookingStatus::Pending);
    assert_eq!(booking.total_cents, 3000);
    assert_eq!(booking.currency, "USD");
    assert_eq!(booking.seats, seats(&["A1", "A2"]));
    assert_eq!(booking.lock_id, created.lock_id);
    assert_eq!(booking.lock_expires_at, START + LOCK_SECONDS * 1000);
    assert_eq!(booking.created_at, START);
    assert_eq!(stored(&fakes, "booking_1"), booking);
    assert_eq!(booking.version, 1);
    assert_eq!(
        fakes.seats.lock_holder(&created.lock_id).as_deref(),
        Some("booking_1"),
        "the booking id holds the lock"
    );
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Locked);
    assert_eq!(seat(&fakes, "A3"), SeatStatus::Available);
    assert_eq!(kinds(&fakes, "booking_1"), [EventKind::BookingCreated]);
    let event = &fakes.events.published()[0];
    assert_eq!(event.amount_cents, 3000);
    assert_eq!(event.status, BookingStatus::Pending);
}

#[test]
fn create_uses_the_configured_lock_duration_and_seat_limit() {
    let fakes = Fakes::sample(START);
    let settings = Settings {
        seat_lock_seconds: 60,
        max_seats_per_booking: 2,
        ..Settings::default()
    };
    let workflow = Workflow::new(fakes.ports(), settings);

    let booking = create(&workflow, &["A1", "A2"]);
    assert_eq!(booking.lock_expires_at, START + 60_000);
    let error =
        run(workflow.create_booking("user_123", "showtime_456", seats(&["B1", "B2", "B3"])))
            .unwrap_err();
    assert_eq!(error.code(), "INVALID_INPUT");
}

#[test]
fn create_refuses_bad_input_before_calling_anything() {
    let (fakes, workflow) = setup();
    let long = "x".repeat(129);
    let eleven: Vec<String> = (1..=11).map(|n| format!("C{n}")).collect();
    let cases: Vec<(&str, &str, Vec<String>)> = vec![
        ("", "showtime_456", seats(&["A1"])),
        (&long, "showtime_456", seats(&["A1"])),
        ("user 123", "showtime_456", seats(&["A1"])),
        ("user_123", "", seats(&["A1"])),
        ("user_123", "show\ttime", seats(&["A1"])),
        ("user_123", "showtime_456", vec![]),
        ("user_123", "showtime_456", eleven),
        ("user_123", "showtime_456", seats(&["A1", "A1"])),
        ("user_123", "showtime_456", seats(&["A-1"])),
        ("user_123", "showtime_456", seats(&["A123456789"])),
    ];
    for (user, showtime, numbers) in cases {
        let error = run(workflow.create_booking(user, showtime, numbers.clone())).unwrap_err();
        assert_eq!(
            error.code(),
            "INVALID_INPUT",
            "{user:?} {showtime:?} {numbers:?}"
        );
    }
    assert_eq!(fakes.knobs.calls(Op::GetUser), 0);
    assert_eq!(fakes.knobs.calls(Op::LockSeats), 0);
    assert!(fakes.storage.all().is_empty());
}

#[test]
fn create_refuses_unknown_or_inactive_users_and_unknown_showtimes() {
    let (fakes, workflow) = setup();
    let cases = [
        ("nobody", "showtime_456", "USER_NOT_FOUND"),
        ("user_inactive", "showtime_456", "USER_INACTIVE"),
        ("user_123", "showtime_999", "SHOWTIME_NOT_FOUND"),
    ];
    for (user, showtime, code) in cases {
        let error = run(workflow.create_booking(user, showtime, seats(&["A1"]))).unwrap_err();
        assert_eq!(error.code(), code);
        assert!(!error.retryable());
    }
    assert_eq!(fakes.knobs.calls(Op::LockSeats), 0);
    assert!(fakes.storage.all().is_empty());
}

#[test]
fn create_refuses_seats_someone_else_holds_and_unknown_seats() {
    let (fakes, workflow) = setup();
    create(&workflow, &["A1", "A2"]);

    let error =
        run(workflow.create_booking("user_123", "showtime_456", seats(&["A2", "A3"]))).unwrap_err();
    assert_eq!(error.code(), "SEATS_UNAVAILABLE");
    assert_eq!(seat(&fakes, "A3"), SeatStatus::Available, "all or nothing");

    let error =
        run(workflow.create_booking("user_123", "showtime_456", seats(&["Z9"]))).unwrap_err();
    assert_eq!(error.code(), "INVALID_INPUT");
    assert_eq!(fakes.storage.all().len(), 1);
}

// ---- per-user hold limits -------------------------------------------------

fn holding(fakes: &Fakes) -> Vec<Booking> {
    fakes
        .storage
        .all()
        .into_iter()
        .filter(|booking| booking.status == BookingStatus::Pending)
        .collect()
}

#[test]
fn a_user_keeps_only_so_many_pending_bookings() {
    let (fakes, workflow) = setup();
    let first = create(&workflow, &["A1"]);
    create(&workflow, &["A2"]);
    create(&workflow, &["A3"]);
    let locks_taken = fakes.knobs.calls(Op::LockSeats);

    let error =
        run(workflow.create_booking("user_123", "showtime_456", seats(&["A4"]))).unwrap_err();

    assert_eq!(error.code(), "HOLD_LIMIT_EXCEEDED");
    assert!(!error.retryable());
    assert!(error.to_string().contains("at most 3"), "{error}");
    assert_eq!(
        fakes.knobs.calls(Op::LockSeats),
        locks_taken,
        "nothing locked"
    );
    assert_eq!(seat(&fakes, "A4"), SeatStatus::Available);
    // A paid booking holds nothing any more; neither does an expired lock.
    assert!(pay(&workflow, &first.id).unwrap().succeeded());
    create(&workflow, &["A4"]);
    fakes.env.advance_secs(LOCK_SECONDS);
    create(&workflow, &["A5"]);
}

#[test]
fn a_user_holds_only_so_many_seats_of_one_showtime() {
    let fakes = Fakes::sample(START);
    let settings = Settings {
        max_seats_per_user_per_showtime: 4,
        ..Settings::default()
    };
    let workflow = Workflow::new(fakes.ports(), settings);
    create(&workflow, &["A1", "A2", "A3"]);

    let error =
        run(workflow.create_booking("user_123", "showtime_456", seats(&["B1", "B2"]))).unwrap_err();

    assert_eq!(error.code(), "HOLD_LIMIT_EXCEEDED");
    assert!(error.to_string().contains("exceed 4"), "{error}");
    assert_eq!(seat(&fakes, "B1"), SeatStatus::Available);
    create(&workflow, &["B1"]);
}

#[test]
fn racing_creates_of_one_user_never_keep_more_than_the_limit() {
    let fakes = Fakes::sample(START);
    let settings = Settings {
        max_pending_bookings_per_user: 1,
        ..Settings::default()
    };
    let workflow = Workflow::new(fakes.ports(), settings);
    fakes.knobs.set_interleaving(true);

    let (first, second) = run(join(
        workflow.create_booking("user_123", "showtime_456", seats(&["A1"])),
        workflow.create_booking("user_123", "showtime_456", seats(&["A2"])),
    ));

    // Both passed the first count; the recount after storing makes at
    // least one withdraw (both may), and a withdrawn one frees its seats.
    let kept = [&first, &second]
        .iter()
        .filter(|outcome| outcome.is_ok())
        .count();
    assert!(kept <= 1, "{first:?} {second:?}");
    for outcome in [&first, &second] {
        if let Err(error) = outcome {
            assert_eq!(error.code(), "HOLD_LIMIT_EXCEEDED");
        }
    }
    assert_eq!(holding(&fakes).len(), kept);
    let locked = ["A1", "A2"]
        .iter()
        .filter(|number| seat(&fakes, number) == SeatStatus::Locked)
        .count();
    assert_eq!(locked, kept);
    for withdrawn in fakes
        .storage
        .all()
        .iter()
        .filter(|booking| booking.status == BookingStatus::Cancelled)
    {
        assert_eq!(
            withdrawn.failure_reason.as_deref(),
            Some(REASON_OVER_HOLD_LIMIT)
        );
        assert!(withdrawn.settle_after.is_none(), "settled at once");
    }
}

#[test]
fn the_hold_count_pages_through_recent_bookings() {
    let fakes = Fakes::sample(START);
    let settings = Settings {
        max_pending_bookings_per_user: 1,
        ..Settings::default()
    };
    let workflow = Workflow::new(fakes.ports(), settings);
    let pending = create(&workflow, &["A1"]);
    // A page and a half of newer, ended bookings hide the PENDING one
    // from the first page.
    for n in 0..150 {
        let mut ended = pending.clone();
        ended.id = format!("ended_{n:03}");
        ended.status = BookingStatus::Cancelled;
        ended.created_at = START + 1 + n;
        fakes.storage.put(ended);
    }
    fakes.env.advance_ms(500);

    let error =
        run(workflow.create_booking("user_123", "showtime_456", seats(&["A2"]))).unwrap_err();

    assert_eq!(error.code(), "HOLD_LIMIT_EXCEEDED");
    assert!(fakes.knobs.calls(Op::ListByUser) >= 2);
}

#[test]
fn create_maps_dependency_outages_to_retryable_errors() {
    let (fakes, workflow) = setup();
    fakes.knobs.fail_next(
        Op::GetUser,
        Fault::Fail(PortError::Unavailable("down".into())),
    );
    let error =
        run(workflow.create_booking("user_123", "showtime_456", seats(&["A1"]))).unwrap_err();
    assert_eq!(error.code(), "DEPENDENCY_UNAVAILABLE");
    assert!(error.retryable());

    fakes.knobs.fail_next(
        Op::LockSeats,
        Fault::Fail(PortError::Timeout("slow".into())),
    );
    let error =
        run(workflow.create_booking("user_123", "showtime_456", seats(&["A1"]))).unwrap_err();
    assert_eq!(error.code(), "DEPENDENCY_TIMEOUT");
    assert!(error.retryable());
    assert!(fakes.storage.all().is_empty());
}

#[test]
fn create_releases_the_lock_when_the_booking_cannot_be_stored() {
    let (fakes, workflow) = setup();
    fakes.knobs.fail_next(
        Op::Insert,
        Fault::Fail(PortError::Unavailable("store down".into())),
    );

    let error =
        run(workflow.create_booking("user_123", "showtime_456", seats(&["A1", "A2"]))).unwrap_err();

    assert_eq!(error.code(), "DEPENDENCY_UNAVAILABLE");
    assert_eq!(fakes.seats.lock_state("lock-1"), Some(LockState::Released));
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Available);
    assert!(fakes.storage.all().is_empty());
    assert!(fakes.events.published().is_empty());
}

#[test]
fn create_treats_an_insert_timeout_as_success_when_the_booking_landed() {
    let (fakes, workflow) = setup();
    fakes.knobs.fail_next(
        Op::Insert,
        Fault::FailAfterEffect(PortError::Timeout("slow".into())),
    );

    let booking = create(&workflow, &["A1"]);

    assert_eq!(stored(&fakes, &booking.id).status, BookingStatus::Pending);
    assert_eq!(
        fakes.seats.lock_state(&booking.lock_id),
        Some(LockState::Held)
    );
}

#[test]
fn create_releases_the_lock_after_an_insert_timeout_that_did_not_land() {
    let (fakes, workflow) = setup();
    fakes
        .knobs
        .fail_next(Op::Insert, Fault::Fail(PortError::Timeout("slow".into())));

    let error =
        run(workflow.create_booking("user_123", "showtime_456", seats(&["A1"]))).unwrap_err();

    assert_eq!(error.code(), "DEPENDENCY_TIMEOUT");
    assert_eq!(fakes.seats.lock_state("lock-1"), Some(LockState::Released));
    assert!(fakes.storage.all().is_empty());
}

#[test]
fn a_failed_insert_commits_no_event() {
    let (fakes, workflow) = setup();
    fakes.knobs.fail_next(
        Op::Insert,
        Fault::Fail(PortError::Unavailable("disk gone".into())),
    );

    let error =
        run(workflow.create_booking("user_123", "showtime_456", seats(&["A1"]))).unwrap_err();

    assert_eq!(error.code(), "DEPENDENCY_UNAVAILABLE");
    assert!(fakes.storage.all().is_empty());
    assert!(fakes.events.published().is_empty());
}

// ---- processPayment ------------------------------------------------------

#[test]
fn pay_charges_once_and_confirms() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1", "A2"]);

    let outcome = pay(&workflow, &booking.id).unwrap();

    assert!(outcome.succeeded());
    assert!(!outcome.replayed);
    assert_eq!(outcome.message(), "payment processed; booking confirmed");
    assert_eq!(outcome.booking.status, BookingStatus::Confirmed);
    assert_eq!(
        outcome.booking.payment_transaction_id.as_deref(),
        Some("txn-1")
    );
    assert_eq!(outcome.booking, stored(&fakes, &booking.id));
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Booked);
    assert_eq!(
        kinds(&fakes, &booking.id),
        [EventKind::BookingCreated, EventKind::BookingConfirmed]
    );
    let request = fakes
        .payments
        .charge_request(&booking.id)
        .expect("charged by booking id");
    assert_eq!(request.amount_cents, 3000);
    assert_eq!(request.currency, "USD");
    assert_eq!(request.method, "credit_card");
    assert_eq!(request.details, "card_token_xyz");
}

#[test]
fn paying_a_confirmed_booking_replays_without_charging() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    pay(&workflow, &booking.id).unwrap();

    let again = pay(&workflow, &booking.id).unwrap();

    assert!(again.succeeded());
    assert!(again.replayed);
    assert_eq!(again.booking.status, BookingStatus::Confirmed);
    assert_eq!(fakes.knobs.calls(Op::Charge), 1);
    assert_eq!(fakes.payments.charges().len(), 1);
    assert_eq!(kinds(&fakes, &booking.id).len(), 2, "no new event");
}

#[test]
fn a_declined_payment_fails_the_booking_and_frees_the_seats() {
    let (fakes, workflow) = setup();
    fakes.payments.decline_details("card_declined");
    let booking = create(&workflow, &["A1"]);

    let outcome =
        run(workflow.process_payment(&booking.id, "credit_card", "card_declined")).unwrap();

    assert!(!outcome.succeeded());
    assert_eq!(
        outcome.failure.as_ref().map(BookingError::code),
        Some("PAYMENT_DECLINED")
    );
    assert_eq!(outcome.booking.status, BookingStatus::PaymentFailed);
    assert_eq!(
        stored(&fakes, &booking.id).status,
        BookingStatus::PaymentFailed
    );
    assert!(
        outcome
            .booking
            .failure_reason
            .as_deref()
            .unwrap_or("")
            .contains("declined"),
        "{:?}",
        outcome.booking.failure_reason
    );
    assert_eq!(
        fakes.seats.lock_state(&booking.lock_id),
        Some(LockState::Released)
    );
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Available);
    assert_eq!(
        kinds(&fakes, &booking.id),
        [EventKind::BookingCreated, EventKind::BookingPaymentFailed]
    );
    assert!(fakes.payments.charges().is_empty());

    let error = pay(&workflow, &booking.id).unwrap_err();
    assert_eq!(error.code(), "INVALID_STATE");
}

#[test]
fn a_payment_timeout_keeps_the_booking_pending_and_the_retry_charges_once() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes.knobs.fail_next(
        Op::Charge,
        Fault::FailAfterEffect(PortError::Timeout("no answer".into())),
    );

    let error = pay(&workflow, &booking.id).unwrap_err();

    assert_eq!(error.code(), "PAYMENT_TIMEOUT");
    assert!(error.retryable());
    let pending = stored(&fakes, &booking.id);
    assert_eq!(pending.status, BookingStatus::Pending);
    assert_eq!(pending.payment_transaction_id, None);
    assert_eq!(fakes.payments.charges().len(), 1, "the charge went through");

    let outcome = pay(&workflow, &booking.id).unwrap();

    assert!(outcome.succeeded());
    assert_eq!(fakes.knobs.calls(Op::Charge), 2);
    assert_eq!(fakes.payments.charges().len(), 1, "never charged twice");
    assert_eq!(
        outcome.booking.payment_transaction_id.as_deref(),
        Some("txn-1")
    );
}

#[test]
fn payment_outages_and_key_conflicts_leave_the_booking_pending() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    for (error, code) in [
        (
            PortError::Unavailable("down".into()),
            "DEPENDENCY_UNAVAILABLE",
        ),
        (PortError::Conflict("key reused".into()), "PAYMENT_CONFLICT"),
    ] {
        fakes.knobs.fail_next(Op::Charge, Fault::Fail(error));
        assert_eq!(pay(&workflow, &booking.id).unwrap_err().code(), code);
        assert_eq!(stored(&fakes, &booking.id).status, BookingStatus::Pending);
    }
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Locked);
    assert!(fakes.payments.charges().is_empty());
}

#[test]
fn paying_after_the_lock_expired_expires_the_booking_without_charging() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes.env.advance_secs(LOCK_SECONDS);

    let error = pay(&workflow, &booking.id).unwrap_err();

    assert_eq!(error.code(), "BOOKING_EXPIRED");
    let expired = stored(&fakes, &booking.id);
    assert_eq!(expired.status, BookingStatus::Expired);
    assert_eq!(
        expired.failure_reason.as_deref(),
        Some("seat lock expired before payment")
    );
    assert_eq!(
        fakes.seats.lock_state(&booking.lock_id),
        Some(LockState::Released)
    );
    assert_eq!(fakes.knobs.calls(Op::Charge), 0);
    assert_eq!(
        kinds(&fakes, &booking.id),
        [EventKind::BookingCreated, EventKind::BookingExpired]
    );
    assert_eq!(
        pay(&workflow, &booking.id).unwrap_err().code(),
        "INVALID_STATE"
    );
}

#[test]
fn a_lost_seat_lock_after_the_charge_refunds_and_fails_the_booking() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1", "A2"]);
    // The lock disappears behind the booking's back (e.g. an operator).
    run(fakes.seats.release_seats(&booking.lock_id)).unwrap();

    let outcome = pay(&workflow, &booking.id).unwrap();

    assert!(!outcome.succeeded());
    assert_eq!(
        outcome.failure.as_ref().map(BookingError::code),
        Some("SEATS_UNAVAILABLE")
    );
    assert_eq!(outcome.message(), "seat lock expired before confirmation");
    let failed = stored(&fakes, &booking.id);
    assert_eq!(failed.status, BookingStatus::Failed);
    assert_eq!(failed.payment_transaction_id.as_deref(), Some("txn-1"));
    assert_eq!(
        failed.failure_reason.as_deref(),
        Some("seat lock expired before confirmation")
    );
    assert_eq!(failed.refunded_at, Some(fakes.env.now()));
    assert_eq!(failed.settle_after, None, "nothing owed");
    assert!(fakes.payments.is_refunded("txn-1"));
    assert_eq!(
        kinds(&fakes, &booking.id),
        [
            EventKind::BookingCreated,
            EventKind::BookingFailed,
            EventKind::PaymentRefunded
        ]
    );
    let event = fakes.events.published().pop().unwrap();
    assert_eq!(event.status, BookingStatus::Failed);
    assert_eq!(event.reason, failed.failure_reason);
}

#[test]
fn a_failed_refund_stays_owed_and_the_sweep_retries_it_with_backoff() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes.knobs.fail_next(
        Op::ConfirmSeats,
        Fault::Fail(PortError::Conflict("lock expired".into())),
    );
    fakes.knobs.fail_next(
        Op::Refund,
        Fault::Fail(PortError::Unavailable("payments down".into())),
    );

    let outcome = pay(&workflow, &booking.id).unwrap();

    assert!(!outcome.succeeded());
    let failed = stored(&fakes, &booking.id);
    assert_eq!(failed.status, BookingStatus::Failed);
    assert_eq!(failed.refunded_at, None);
    assert_eq!(failed.settle_attempts, 1);
    let retry_at = failed.settle_after.expect("the refund is still owed");
    assert!(retry_at > fakes.env.now(), "backs off");
    assert!(!fakes.payments.is_refunded("txn-1"));
    assert_eq!(
        fakes.events.published().pop().unwrap().kind,
        EventKind::BookingFailed
    );

    // Not yet due: the sweep leaves it alone.
    let report = run(workflow.sweep_expired(10)).unwrap();
    assert_eq!((report.settled, report.unsettled), (0, 0));
    // Due, and the Payment service is down again: the wait doubles.
    fakes.env.set_now(retry_at);
    fakes.knobs.fail_next(
        Op::Refund,
        Fault::Fail(PortError::Unavailable("payments down".into())),
    );
    assert_eq!(run(workflow.sweep_expired(10)).unwrap().unsettled, 1);
    let again = stored(&fakes, &booking.id);
    assert_eq!(again.settle_attempts, 2);
    assert_eq!(
        again.settle_after.unwrap() - retry_at,
        2 * (retry_at - failed.updated_at)
    );
    // Then it goes through, once.
    fakes.env.set_now(again.settle_after.unwrap());
    assert_eq!(run(workflow.sweep_expired(10)).unwrap().settled, 1);
    let settled = stored(&fakes, &booking.id);
    assert_eq!(settled.refunded_at, Some(fakes.env.now()));
    assert_eq!(settled.settle_after, None);
    assert!(fakes.payments.is_refunded("txn-1"));
    assert_eq!(
        kinds(&fakes, &booking.id).last(),
        Some(&EventKind::PaymentRefunded)
    );
    assert_eq!(run(workflow.sweep_expired(10)).unwrap().settled, 0);
}

#[test]
fn a_seat_service_outage_at_confirmation_keeps_the_charge_and_the_retry_confirms() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes.knobs.fail_next(
        Op::ConfirmSeats,
        Fault::Fail(PortError::Unavailable("cinema down".into())),
    );

    let error = pay(&workflow, &booking.id).unwrap_err();

    assert_eq!(error.code(), "DEPENDENCY_UNAVAILABLE");
    let pending = stored(&fakes, &booking.id);
    assert_eq!(pending.status, BookingStatus::Pending);
    assert_eq!(
        pending.payment_transaction_id.as_deref(),
        Some("txn-1"),
        "the charge is traceable"
    );

    let outcome = pay(&workflow, &booking.id).unwrap();

    assert!(outcome.succeeded());
    assert_eq!(fakes.payments.charges().len(), 1);
    assert_eq!(fakes.knobs.calls(Op::ConfirmSeats), 2);
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Booked);
}

#[test]
fn a_store_outage_while_recording_the_charge_is_retryable_without_double_charge() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes.knobs.fail_next(
        Op::UpdateIfVersion,
        Fault::Fail(PortError::Unavailable("store down".into())),
    );

    let error = pay(&workflow, &booking.id).unwrap_err();

    assert_eq!(error.code(), "DEPENDENCY_UNAVAILABLE");
    assert_eq!(stored(&fakes, &booking.id).status, BookingStatus::Pending);
    assert_eq!(fakes.knobs.calls(Op::ConfirmSeats), 0);

    let outcome = pay(&workflow, &booking.id).unwrap();
    assert!(outcome.succeeded());
    assert_eq!(fakes.payments.charges().len(), 1);
}

#[test]
fn every_status_change_is_committed_with_its_event_and_nothing_else_is() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);

    assert!(pay(&workflow, &booking.id).unwrap().succeeded());

    // Versions: 1 created, 2 charge attempt, 3 charge recorded, 4 confirmed.
    let events: Vec<(String, EventKind)> = fakes
        .events
        .published()
        .into_iter()
        .map(|event| (event.id, event.kind))
        .collect();
    assert_eq!(
        events,
        [
            (format!("{}-v1", booking.id), EventKind::BookingCreated),
            (format!("{}-v4", booking.id), EventKind::BookingConfirmed),
        ]
    );
    let versions = fakes.storage.versions(&booking.id);
    assert!(versions[1].charge_attempted_at.is_some());
    assert_eq!(versions[1].payment_transaction_id, None);
}

#[test]
fn paying_refuses_bad_input_unknown_and_finished_bookings() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    let gets = fakes.knobs.calls(Op::Get);
    for (id, method, details) in [
        ("", "credit_card", "tok"),
        (booking.id.as_str(), "", "tok"),
        (booking.id.as_str(), "credit card", "tok"),
        (booking.id.as_str(), "credit_card", "  "),
        (booking.id.as_str(), "credit_card", "tok\n"),
    ] {
        let error = run(workflow.process_payment(id, method, details)).unwrap_err();
        assert_eq!(
            error.code(),
            "INVALID_INPUT",
            "{id:?} {method:?} {details:?}"
        );
    }
    assert_eq!(fakes.knobs.calls(Op::Get), gets, "refused before any read");

    assert_eq!(
        pay(&workflow, "booking_404").unwrap_err().code(),
        "BOOKING_NOT_FOUND"
    );

    run(workflow.cancel_booking(&booking.id)).unwrap();
    let error = pay(&workflow, &booking.id).unwrap_err();
    assert_eq!(error.code(), "INVALID_STATE");
    assert!(error.to_string().contains("CANCELLED"), "{error}");
    assert_eq!(fakes.knobs.calls(Op::Charge), 0);
}

#[test]
fn two_concurrent_payments_charge_once_and_both_report_success() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes.knobs.set_interleaving(true);

    let (first, second) = run(join(
        workflow.process_payment(&booking.id, "credit_card", "tok"),
        workflow.process_payment(&booking.id, "credit_card", "tok"),
    ));

    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(first.succeeded() && second.succeeded());
    assert!(
        first.replayed != second.replayed,
        "exactly one did the work"
    );
    assert_eq!(fakes.payments.charges().len(), 1);
    assert_eq!(stored(&fakes, &booking.id).status, BookingStatus::Confirmed);
    assert_eq!(
        kinds(&fakes, &booking.id),
        [EventKind::BookingCreated, EventKind::BookingConfirmed]
    );
}

#[test]
fn a_payment_racing_a_cancellation_never_keeps_the_money() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes.knobs.set_interleaving(true);

    let (paid, cancelled) = run(join(
        workflow.process_payment(&booking.id, "credit_card", "tok"),
        workflow.cancel_booking(&booking.id),
    ));

    // Exactly one of them wins the booking's write; whoever loses
    // changes nothing, and no money is kept unless it stays CONFIRMED.
    let final_state = stored(&fakes, &booking.id);
    match (paid, cancelled) {
        (Ok(outcome), Err(error)) => {
            assert!(outcome.succeeded());
            assert_eq!(error.code(), "CONCURRENT_MODIFICATION");
            assert_eq!(final_state.status, BookingStatus::Confirmed);
            assert!(fakes.payments.refunds().is_empty());
        }
        (Err(_), Ok(cancelled)) => {
            assert_eq!(cancelled.status, BookingStatus::Cancelled);
            assert_eq!(final_state.status, BookingStatus::Cancelled);
            assert_eq!(final_state.settle_after, None);
            for charge in fakes.payments.charges() {
                assert!(fakes.payments.is_refunded(&charge.transaction_id));
            }
            assert_eq!(seat(&fakes, "A1"), SeatStatus::Available);
        }
        other => panic!("exactly one must win: {other:?}"),
    }
}

// ---- cancelBooking -------------------------------------------------------

#[test]
fn cancelling_a_pending_booking_frees_the_seats() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);

    let cancelled = run(workflow.cancel_booking(&booking.id)).unwrap();

    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert_eq!(
        cancelled.failure_reason.as_deref(),
        Some("cancelled by the customer")
    );
    assert_eq!(cancelled, stored(&fakes, &booking.id));
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Available);
    assert_eq!(fakes.knobs.calls(Op::Refund), 0);
    assert_eq!(
        kinds(&fakes, &booking.id),
        [EventKind::BookingCreated, EventKind::BookingCancelled]
    );
}

#[test]
fn cancelling_a_pending_booking_with_a_recorded_charge_refunds_it() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes.knobs.fail_next(
        Op::ConfirmSeats,
        Fault::Fail(PortError::Timeout("slow".into())),
    );
    assert_eq!(
        pay(&workflow, &booking.id).unwrap_err().code(),
        "DEPENDENCY_TIMEOUT"
    );

    let cancelled = run(workflow.cancel_booking(&booking.id)).unwrap();

    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert_eq!(
        cancelled.failure_reason.as_deref(),
        Some("cancelled by the customer")
    );
    assert!(cancelled.refunded_at.is_some());
    assert!(fakes.payments.is_refunded("txn-1"));
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Available);
}

#[test]
fn cancelling_a_confirmed_booking_refunds_and_frees_the_seats() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1", "A2"]);
    pay(&workflow, &booking.id).unwrap();

    let refunded = run(workflow.cancel_booking(&booking.id)).unwrap();

    assert_eq!(refunded.status, BookingStatus::Refunded);
    assert!(fakes.payments.is_refunded("txn-1"));
    assert_eq!(fakes.payments.refunds()[0].amount_cents, 3000);
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Available);
    assert_eq!(seat(&fakes, "A2"), SeatStatus::Available);
    assert_eq!(
        kinds(&fakes, &booking.id),
        [
            EventKind::BookingCreated,
            EventKind::BookingConfirmed,
            EventKind::BookingRefunded,
            EventKind::PaymentRefunded
        ]
    );
}

#[test]
fn a_cancellation_whose_refund_fails_is_committed_and_the_sweep_pays_back() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    pay(&workflow, &booking.id).unwrap();
    fakes.knobs.fail_next(
        Op::Refund,
        Fault::Fail(PortError::Unavailable("payments down".into())),
    );
    fakes.knobs.fail_next(
        Op::ReleaseSeats,
        Fault::Fail(PortError::Unavailable("cinema down".into())),
    );

    let cancelled = run(workflow.cancel_booking(&booking.id)).unwrap();

    // The decision stands; the money and the seats are owed.
    assert_eq!(cancelled.status, BookingStatus::Refunded);
    assert_eq!(cancelled.refunded_at, None);
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Booked);
    assert!(fakes.payments.refunds().is_empty());

    fakes.env.set_now(cancelled.settle_after.unwrap());
    let report = run(workflow.sweep_expired(10)).unwrap();
    assert_eq!((report.settled, report.unsettled), (1, 0));
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Available);
    assert_eq!(fakes.payments.refunds().len(), 1);
    assert!(stored(&fakes, &booking.id).refunded_at.is_some());
}

#[test]
fn finished_bookings_cannot_be_cancelled() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    run(workflow.cancel_booking(&booking.id)).unwrap();

    let error = run(workflow.cancel_booking(&booking.id)).unwrap_err();
    assert_eq!(error.code(), "INVALID_STATE");
    assert_eq!(
        run(workflow.cancel_booking("booking_404"))
            .unwrap_err()
            .code(),
        "BOOKING_NOT_FOUND"
    );
    assert_eq!(kinds(&fakes, &booking.id).len(), 2, "no second event");
}

#[test]
fn the_loser_of_a_version_conflict_changes_nothing() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes.knobs.fail_next(
        Op::UpdateIfVersion,
        Fault::Fail(PortError::Conflict("stale".into())),
    );

    let error = run(workflow.cancel_booking(&booking.id)).unwrap_err();

    assert_eq!(error.code(), "CONCURRENT_MODIFICATION");
    assert!(error.retryable());
    assert!(error.to_string().contains("PENDING"), "re-read: {error}");
    assert_eq!(fakes.knobs.calls(Op::ReleaseSeats), 0, "no compensation");
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Locked);
    assert_eq!(kinds(&fakes, &booking.id), [EventKind::BookingCreated]);
}

#[test]
fn a_status_write_that_timed_out_but_landed_counts_as_done() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes.knobs.fail_next(
        Op::UpdateIfVersion,
        Fault::FailAfterEffect(PortError::Timeout("slow".into())),
    );

    let cancelled = run(workflow.cancel_booking(&booking.id)).unwrap();

    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    // 2: the move (timed out, landed); 3: its settlement.
    assert_eq!(cancelled.version, 3);
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Available);
    assert_eq!(
        kinds(&fakes, &booking.id),
        [EventKind::BookingCreated, EventKind::BookingCancelled]
    );
}

#[test]
fn the_state_machine_allows_exactly_the_documented_moves() {
    use BookingStatus as S;
    let all = [
        S::Pending,
        S::Confirmed,
        S::PaymentFailed,
        S::Failed,
        S::Cancelled,
        S::Expired,
        S::Refunded,
    ];
    let allowed: Vec<(S, S)> = all
        .iter()
        .flat_map(|from| all.iter().map(move |to| (*from, *to)))
        .filter(|(from, to)| transition_event(*from, *to).is_some())
        .collect();
    assert_eq!(
        allowed,
        [
            (S::Pending, S::Confirmed),
            (S::Pending, S::PaymentFailed),
            (S::Pending, S::Failed),
            (S::Pending, S::Cancelled),
            (S::Pending, S::Expired),
            (S::Confirmed, S::Refunded),
        ]
    );
}

#[test]
fn the_transition_function_refuses_moves_outside_the_state_machine() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    let confirmed = pay(&workflow, &booking.id).unwrap().booking;

    let error =
        run(workflow.transition(confirmed.clone(), BookingStatus::Expired, "late")).unwrap_err();
    assert_eq!(error.code(), "INVALID_STATE");
    let error = run(workflow.transition(booking, BookingStatus::Refunded, "")).unwrap_err();
    assert_eq!(error.code(), "INVALID_STATE");
    assert_eq!(stored(&fakes, &confirmed.id), confirmed);
}

// ---- sweeper -------------------------------------------------------------

#[test]
fn the_sweeper_expires_only_overdue_bookings() {
    let (fakes, workflow) = setup();
    let first = create(&workflow, &["A1"]);
    let second = create(&workflow, &["A2"]);
    fakes.env.advance_ms(LOCK_SECONDS * 1000 + 1);
    let fresh = create(&workflow, &["A3"]);

    let report = run(workflow.sweep_expired(10)).unwrap();

    assert_eq!(
        report,
        SweepReport {
            expired: 2,
            skipped: 0,
            idempotency_purged: 0,
            settled: 2,
            unsettled: 0,
        }
    );
    for booking in [&first, &second] {
        let expired = stored(&fakes, &booking.id);
        assert_eq!(expired.status, BookingStatus::Expired);
        assert_eq!(
            fakes.seats.lock_state(&booking.lock_id),
            Some(LockState::Released)
        );
        assert_eq!(
            kinds(&fakes, &booking.id),
            [EventKind::BookingCreated, EventKind::BookingExpired]
        );
    }
    assert_eq!(stored(&fakes, &fresh.id).status, BookingStatus::Pending);
    assert_eq!(seat(&fakes, "A3"), SeatStatus::Locked);
    assert_eq!(
        run(workflow.sweep_expired(10)).unwrap(),
        SweepReport::default()
    );
}

#[test]
fn reading_a_pending_booking_past_its_lock_expires_it_as_the_sweep_would() {
    let (fakes, workflow) = setup();
    let lapsed = create(&workflow, &["A1"]);
    fakes.env.advance_ms(LOCK_SECONDS * 1000 + 1);
    let fresh = create(&workflow, &["A2"]);

    // The plain read changes nothing; the client's read expires it.
    let plain = run(workflow.get_booking(&lapsed.id)).unwrap().unwrap();
    assert_eq!(plain.status, BookingStatus::Pending);
    let plain_copy = plain.clone();
    let read = run(workflow.expire_if_lapsed(plain)).unwrap();
    assert_eq!(read.status, BookingStatus::Expired);
    assert_eq!(stored(&fakes, &lapsed.id).status, BookingStatus::Expired);
    assert_eq!(
        fakes.seats.lock_state(&lapsed.lock_id),
        Some(LockState::Released)
    );
    assert_eq!(
        kinds(&fakes, &lapsed.id),
        [EventKind::BookingCreated, EventKind::BookingExpired]
    );
    // Read again: once only.
    run(workflow.expire_if_lapsed(stored(&fakes, &lapsed.id))).unwrap();
    assert_eq!(kinds(&fakes, &lapsed.id).len(), 2);
    // A stale copy (another reader expired it first): the stored state.
    let stale = run(workflow.expire_if_lapsed(plain_copy)).unwrap();
    assert_eq!(stale.status, BookingStatus::Expired);
    assert_eq!(kinds(&fakes, &lapsed.id).len(), 2);
    let fresh_read = run(workflow.expire_if_lapsed(fresh)).unwrap();
    assert_eq!(fresh_read.status, BookingStatus::Pending);
}

#[test]
fn requests_sweep_once_per_interval_when_asked_to() {
    let (fakes, workflow) = setup();
    assert_eq!(
        run(workflow.sweep_if_due()).unwrap(),
        None,
        "off by default"
    );

    let workflow = Workflow::new(
        fakes.ports(),
        Settings {
            sweep_on_requests_seconds: Some(10),
            ..Settings::default()
        },
    );
    let lapsed = create(&workflow, &["A1"]);
    fakes.env.advance_ms(LOCK_SECONDS * 1000 + 1);
    let first = run(workflow.sweep_if_due()).unwrap();
    assert_eq!(first.map(|report| report.expired), Some(1));
    assert_eq!(stored(&fakes, &lapsed.id).status, BookingStatus::Expired);

    // The interval is claimed: later requests in it do not sweep.
    assert_eq!(run(workflow.sweep_if_due()).unwrap(), None, "claimed");

    // A later interval: its first request sweeps, the next does not.
    let second = create(&workflow, &["A2"]);
    fakes.env.advance_ms(LOCK_SECONDS * 1000 + 1);
    assert_eq!(
        run(workflow.sweep_if_due()).unwrap().map(|r| r.expired),
        Some(1)
    );
    assert_eq!(run(workflow.sweep_if_due()).unwrap(), None, "claimed");
    assert_eq!(stored(&fakes, &second.id).status, BookingStatus::Expired);

    // The next interval is free again.
    fakes.env.advance_secs(10);
    assert!(run(workflow.sweep_if_due()).unwrap().is_some());
}

#[test]
fn the_sweeper_respects_its_limit() {
    let (fakes, workflow) = setup();
    for number in ["A1", "A2", "A3"] {
        create(&workflow, &[number]);
    }
    fakes.env.advance_secs(LOCK_SECONDS + 1);

    assert_eq!(run(workflow.sweep_expired(2)).unwrap().expired, 2);
    assert_eq!(run(workflow.sweep_expired(2)).unwrap().expired, 1);
}

#[test]
fn two_concurrent_sweepers_expire_each_booking_exactly_once() {
    let (fakes, workflow) = setup();
    let bookings = [create(&workflow, &["A1"]), create(&workflow, &["A2"])];
    fakes.env.advance_ms(LOCK_SECONDS * 1000 + 1);
    fakes.knobs.set_interleaving(true);
    let other = Workflow::new(fakes.ports(), Settings::default());

    let (mine, theirs) = run(join(workflow.sweep_expired(10), other.sweep_expired(10)));

    let (mine, theirs) = (mine.unwrap(), theirs.unwrap());
    assert_eq!(mine.expired + theirs.expired, 2);
    assert_eq!(mine.skipped + theirs.skipped, 2, "both saw both bookings");
    for booking in &bookings {
        assert_eq!(stored(&fakes, &booking.id).status, BookingStatus::Expired);
        assert_eq!(
            kinds(&fakes, &booking.id),
            [EventKind::BookingCreated, EventKind::BookingExpired]
        );
    }
    assert_eq!(
        fakes.knobs.calls(Op::ReleaseSeats),
        2,
        "losers compensate nothing"
    );
}

#[test]
fn the_sweeper_refunds_a_recorded_charge() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes.knobs.fail_next(
        Op::ConfirmSeats,
        Fault::Fail(PortError::Unavailable("down".into())),
    );
    pay(&workflow, &booking.id).unwrap_err();
    fakes.env.advance_ms(LOCK_SECONDS * 1000 + 1);

    assert_eq!(run(workflow.sweep_expired(10)).unwrap().expired, 1);

    let expired = stored(&fakes, &booking.id);
    assert_eq!(expired.status, BookingStatus::Expired);
    assert_eq!(
        expired.failure_reason.as_deref(),
        Some("seat lock expired before payment")
    );
    assert!(expired.refunded_at.is_some());
    assert!(fakes.payments.is_refunded("txn-1"));
}

#[test]
fn the_sweeper_reports_a_store_outage() {
    let (fakes, workflow) = setup();
    fakes.knobs.fail_next(
        Op::ListExpiredPending,
        Fault::Fail(PortError::Unavailable("store down".into())),
    );

    let error = run(workflow.sweep_expired(10)).unwrap_err();

    assert_eq!(error.code(), "DEPENDENCY_UNAVAILABLE");
}

// ---- queries -------------------------------------------------------------

#[test]
fn get_booking_returns_none_for_unknown_ids() {
    let (_fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);

    assert_eq!(
        run(workflow.get_booking(&booking.id)).unwrap(),
        Some(booking)
    );
    assert_eq!(run(workflow.get_booking("booking_404")).unwrap(), None);
    assert_eq!(
        run(workflow.get_booking("")).unwrap_err().code(),
        "INVALID_INPUT"
    );
}

#[test]
fn user_bookings_page_newest_first() {
    let (fakes, workflow) = setup();
    let mut ids = Vec::new();
    for number in ["A1", "A2", "A3"] {
        ids.push(create(&workflow, &[number]).id);
        fakes.env.advance_ms(1);
    }

    let first = run(workflow.user_bookings(
        "user_123",
        PageRequest {
            cursor: None,
            limit: 2,
        },
    ))
    .unwrap();
    let first_ids: Vec<&str> = first.items.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(first_ids, [ids[2].as_str(), ids[1].as_str()]);

    let second = run(workflow.user_bookings(
        "user_123",
        PageRequest {
            cursor: first.next_cursor.clone(),
            limit: 2,
        },
    ))
    .unwrap();
    let second_ids: Vec<&str> = second.items.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(second_ids, [ids[0].as_str()]);
    assert_eq!(second.next_cursor, None);

    for page in [
        PageRequest {
            cursor: None,
            limit: 0,
        },
        PageRequest {
            cursor: None,
            limit: 101,
        },
        PageRequest {
            cursor: Some("garbage".into()),
            limit: 2,
        },
    ] {
        assert_eq!(
            run(workflow.user_bookings("user_123", page))
                .unwrap_err()
                .code(),
            "INVALID_INPUT"
        );
    }
}

#[test]
fn showtime_seats_reflect_locks_and_bookings() {
    let (_fakes, workflow) = setup();
    let locked = create(&workflow, &["A1"]);
    let paid = create(&workflow, &["A2"]);
    pay(&workflow, &paid.id).unwrap();

    let showtime = run(workflow.find_showtime("showtime_456")).unwrap();
    let seats = run(workflow.seat_map("showtime_456")).unwrap();

    assert_eq!(showtime.total_seats, 10);
    assert_eq!(showtime.available_seats, 8);
    let status = |number: &str| {
        seats
            .iter()
            .find(|seat| seat.number == number)
            .map(|seat| seat.status)
    };
    assert_eq!(status("A1"), Some(SeatStatus::Locked));
    assert_eq!(status("A2"), Some(SeatStatus::Booked));
    assert_eq!(status("A3"), Some(SeatStatus::Available));
    assert_eq!(locked.status, BookingStatus::Pending);
    for missing in [
        run(workflow.find_showtime("showtime_999")).unwrap_err(),
        run(workflow.seat_map("showtime_999")).unwrap_err(),
    ] {
        assert_eq!(missing.code(), "SHOWTIME_NOT_FOUND");
    }
}

#[test]
fn booking_events_come_from_the_event_log_in_order() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    pay(&workflow, &booking.id).unwrap();

    let events = run(workflow.booking_events(&booking.id)).unwrap();

    let kinds: Vec<EventKind> = events.iter().map(|event| event.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::BookingCreated, EventKind::BookingConfirmed]
    );
    assert_eq!(events[1].status, BookingStatus::Confirmed);
    assert_ne!(events[0].id, events[1].id);
    fakes
        .knobs
        .fail_next(Op::History, Fault::Fail(PortError::Timeout("slow".into())));
    assert_eq!(
        run(workflow.booking_events(&booking.id))
            .unwrap_err()
            .code(),
        "DEPENDENCY_TIMEOUT"
    );
}

#[test]
fn workflows_share_nothing_but_the_ports() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    let other = Arc::new(Workflow::new(fakes.ports(), Settings::default()));

    let outcome = pay(&other, &booking.id).unwrap();

    assert!(outcome.succeeded());
    assert_eq!(
        run(workflow.get_booking(&booking.id))
            .unwrap()
            .map(|b| b.status),
        Some(BookingStatus::Confirmed)
    );
}

#[test]
fn the_booking_fee_is_added_once_to_the_seat_prices() {
    let fakes = Fakes::sample(START);
    let settings = Settings {
        booking_fee_cents: 150,
        ..Settings::default()
    };
    let workflow = Workflow::new(fakes.ports(), settings);
    let booking = create(&workflow, &["A1", "A2"]);
    assert_eq!(booking.total_cents, 2 * 1500 + 150);
}

mod interrupted;

#[test]
fn extending_a_lock_moves_its_end_up_to_the_cap_and_announces_it() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    let created_at = booking.created_at;
    // Settings::default(): 300 s locks, holds of at most 900 s.
    fakes.env.advance_secs(100);
    let extended = run(workflow.extend_lock(&booking.id)).expect("extended");
    assert_eq!(extended.lock_expires_at, created_at + 400_000);
    assert_eq!(
        stored(&fakes, &booking.id).lock_expires_at,
        created_at + 400_000
    );
    assert_eq!(
        kinds(&fakes, &booking.id),
        [EventKind::BookingCreated, EventKind::BookingLockExtended]
    );
    fakes.env.advance_secs(250);
    let extended = run(workflow.extend_lock(&booking.id)).expect("extended again");
    assert_eq!(extended.lock_expires_at, created_at + 650_000);
    fakes.env.advance_secs(250);
    let capped = run(workflow.extend_lock(&booking.id)).expect("up to the cap");
    assert_eq!(capped.lock_expires_at, created_at + 900_000);
    let refused = run(workflow.extend_lock(&booking.id)).unwrap_err();
    assert_eq!(refused.code(), "LOCK_EXTENSION_LIMIT");
    // The seat stays held until the booking's own end, then the booking
    // expires as any other.
    assert_eq!(seat(&fakes, "A1"), SeatStatus::Locked);
    fakes.env.advance_secs(301);
    let refused = run(workflow.extend_lock(&booking.id)).unwrap_err();
    assert_eq!(refused.code(), "BOOKING_EXPIRED");
    assert_eq!(stored(&fakes, &booking.id).status, BookingStatus::Expired);
}

#[test]
fn only_a_pending_booking_with_a_live_lock_is_extended() {
    let (fakes, workflow) = setup();
    let paid = create(&workflow, &["A1"]);
    pay(&workflow, &paid.id).expect("paid");
    assert_eq!(
        run(workflow.extend_lock(&paid.id)).unwrap_err().code(),
        "INVALID_STATE"
    );
    assert_eq!(
        run(workflow.extend_lock("nobody")).unwrap_err().code(),
        "BOOKING_NOT_FOUND"
    );
    // The Cinema let the lock go (say, another host released it): the
    // booking is not extended and says so.
    let booking = create(&workflow, &["A2"]);
    run(fakes.seats.release_seats(&booking.lock_id)).expect("released");
    fakes.env.advance_secs(10);
    assert_eq!(
        run(workflow.extend_lock(&booking.id)).unwrap_err().code(),
        "BOOKING_EXPIRED"
    );
    assert_eq!(stored(&fakes, &booking.id).version, 1);
}
