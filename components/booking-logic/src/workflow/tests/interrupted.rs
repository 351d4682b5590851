//! Operations interrupted halfway by faults, as the deterministic
//! simulation (`tests/simulation`) found them: one test per bug it found,
//! naming the seed that found it. The seeds stay in the simulation's
//! regression list; these tests pin the fixed behaviour independently of
//! how the seeds' schedules drift as the logic changes.

use crate::testing::Chaos;

use super::*;

/// Fails the `n`th call of `op` (counting from 1) with `fault`, for each
/// `(op, n, fault)`.
fn fail_nth(faults: Vec<(Op, usize, Fault)>) -> Option<Chaos> {
    let mut calls: Vec<(Op, usize)> = Vec::new();
    Some(Box::new(move |called| {
        let seen = match calls.iter_mut().find(|(op, _)| *op == called) {
            Some((_, seen)) => seen,
            None => {
                calls.push((called, 0));
                &mut calls.last_mut().expect("just pushed").1
            }
        };
        *seen += 1;
        let seen = *seen;
        faults
            .iter()
            .find(|(op, n, _)| *op == called && *n == seen)
            .map(|(_, _, fault)| fault.clone())
    }))
}

fn unavailable(detail: &str) -> Fault {
    Fault::Fail(PortError::Unavailable(detail.into()))
}

/// Seeds 382, 2254, 2344: two requests both believed they made the same
/// move (one write landed but timed out, the identical other one read it
/// back as its own) and each published an event with a fresh id.
#[test]
fn events_are_named_after_the_booking_and_the_version_of_their_move() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    pay(&workflow, &booking.id).unwrap();

    let ids: Vec<String> = fakes
        .events
        .published()
        .into_iter()
        .map(|event| event.id)
        .collect();

    assert_eq!(
        ids,
        [format!("{}-v1", booking.id), format!("{}-v3", booking.id)]
    );
}

/// Seeds 8, 215: the refund failed and so did the write noting it, and
/// the booking kept a failure reason claiming the payment was refunded.
#[test]
fn a_refund_is_never_recorded_as_done_before_it_is() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes.knobs.fail_next(
        Op::ConfirmSeats,
        Fault::Fail(PortError::Conflict("lock expired".into())),
    );
    fakes
        .knobs
        .fail_next(Op::Refund, unavailable("payments down"));
    // Recording the charge, committing FAILED, then noting the refund.
    fakes.knobs.set_chaos(fail_nth(vec![(
        Op::UpdateIfVersion,
        3,
        unavailable("store down"),
    )]));

    let outcome = pay(&workflow, &booking.id).unwrap();

    let failed = stored(&fakes, &booking.id);
    assert_eq!(failed.status, BookingStatus::Failed);
    assert_eq!(
        failed.failure_reason.as_deref(),
        Some("seat lock expired before confirmation; refund pending")
    );
    assert!(outcome.message().contains("refund pending"));
    assert!(!fakes.payments.is_refunded("txn-1"));
}

/// Seed 1: the charge went through, recording it was refused with an
/// answer the workflow reported as final, and the client stopped with
/// the money taken and the booking unpaid.
#[test]
fn a_charge_whose_recording_is_refused_is_retryable_and_the_retry_confirms() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes.knobs.fail_next(
        Op::UpdateIfVersion,
        Fault::Fail(PortError::NotFound("lost track".into())),
    );

    let error = pay(&workflow, &booking.id).unwrap_err();

    assert!(error.retryable(), "{error:?}");
    assert!(
        error.to_string().contains("retry processPayment"),
        "{error}"
    );
    assert!(pay(&workflow, &booking.id).unwrap().succeeded());
    assert_eq!(fakes.payments.charges().len(), 1);
}

/// Seed 426: the CONFIRMED write landed but its answer and the read-back
/// were lost; the retry replayed the success and nobody ever published
/// `booking.confirmed`.
#[test]
fn a_confirmation_the_payment_could_not_verify_is_announced_by_the_retry() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    // The CONFIRMED write (after recording the charge) lands unanswered,
    // and the read-back (after the read that loads the booking) fails.
    fakes.knobs.set_chaos(fail_nth(vec![
        (
            Op::UpdateIfVersion,
            2,
            Fault::FailAfterEffect(PortError::Timeout("slow".into())),
        ),
        (Op::Get, 2, Fault::Fail(PortError::Timeout("slow".into()))),
    ]));

    let error = pay(&workflow, &booking.id).unwrap_err();

    assert_eq!(error.code(), "DEPENDENCY_TIMEOUT");
    assert_eq!(stored(&fakes, &booking.id).status, BookingStatus::Confirmed);
    assert_eq!(kinds(&fakes, &booking.id), [EventKind::BookingCreated]);

    let replayed = pay(&workflow, &booking.id).unwrap();

    assert!(replayed.replayed);
    assert_eq!(
        kinds(&fakes, &booking.id),
        [EventKind::BookingCreated, EventKind::BookingConfirmed]
    );
    pay(&workflow, &booking.id).unwrap();
    assert_eq!(kinds(&fakes, &booking.id).len(), 2, "published once");
}

/// Seeds 202, 453: cancelling a confirmed booking refunded it, then the
/// seat release or the REFUNDED write failed with an answer reported as
/// final: the client stopped, the booking stayed CONFIRMED unpaid.
#[test]
fn after_the_refund_a_cancellation_stays_retryable_until_it_finishes() {
    for fault in [
        (Op::ReleaseSeats, PortError::Rejected("no".into())),
        (
            Op::UpdateIfVersion,
            PortError::NotFound("lost track".into()),
        ),
    ] {
        let (fakes, workflow) = setup();
        let booking = create(&workflow, &["A1"]);
        pay(&workflow, &booking.id).unwrap();
        fakes.knobs.fail_next(fault.0, Fault::Fail(fault.1.clone()));

        let error = run(workflow.cancel_booking(&booking.id)).unwrap_err();

        assert!(error.retryable(), "{fault:?}: {error:?}");
        assert_eq!(stored(&fakes, &booking.id).status, BookingStatus::Confirmed);
        let refunded = run(workflow.cancel_booking(&booking.id)).unwrap();
        assert_eq!(refunded.status, BookingStatus::Refunded);
        assert_eq!(fakes.payments.refunds().len(), 1);
        assert_eq!(seat(&fakes, "A1"), SeatStatus::Available);
    }
}

/// Seed 652: the first refund went through but timed out; the retry's
/// refund was refused, reported as final, and the booking stayed
/// CONFIRMED with its money paid back.
#[test]
fn a_refused_refund_of_a_confirmed_booking_is_retryable() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    pay(&workflow, &booking.id).unwrap();
    fakes.knobs.fail_next(
        Op::Refund,
        Fault::FailAfterEffect(PortError::Timeout("slow".into())),
    );
    fakes.knobs.fail_next(
        Op::Refund,
        Fault::Fail(PortError::Rejected("unknown transaction".into())),
    );

    let first = run(workflow.cancel_booking(&booking.id)).unwrap_err();
    let second = run(workflow.cancel_booking(&booking.id)).unwrap_err();

    assert!(first.retryable() && second.retryable(), "{second:?}");
    let refunded = run(workflow.cancel_booking(&booking.id)).unwrap();
    assert_eq!(refunded.status, BookingStatus::Refunded);
}

/// Seeds 3146, 5644: the retry of a cancellation that had already
/// refunded could not even load the booking (an answer the contract does
/// not foresee from a read), reported as final.
#[test]
fn an_unexpected_answer_from_a_dependency_is_retryable() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    fakes
        .knobs
        .fail_next(Op::Get, Fault::Fail(PortError::Conflict("confused".into())));

    let error = run(workflow.cancel_booking(&booking.id)).unwrap_err();

    assert_eq!(error.code(), "DEPENDENCY_UNAVAILABLE");
    assert!(error.retryable());
}
