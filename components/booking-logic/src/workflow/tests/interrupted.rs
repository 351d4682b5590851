//! Operations interrupted halfway by faults, as the deterministic
//! simulation (`tests/simulation`) found them: one test per bug it found,
//! naming the seed that found it. The seeds stay in the simulation's
//! regression list; these tests pin the fixed behaviour independently of
//! how the seeds' schedules drift as the logic changes.

use crate::ports::Payments;
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

    // v2 marks the charge attempt, v3 records the charge: no events.
    assert_eq!(
        ids,
        [format!("{}-v1", booking.id), format!("{}-v4", booking.id)]
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
    // Marking the attempt, recording the charge, committing FAILED, then
    // recording the settlement.
    fakes.knobs.set_chaos(fail_nth(vec![(
        Op::UpdateIfVersion,
        4,
        unavailable("store down"),
    )]));

    let outcome = pay(&workflow, &booking.id).unwrap();

    assert!(!outcome.succeeded());
    let failed = stored(&fakes, &booking.id);
    assert_eq!(failed.status, BookingStatus::Failed);
    assert_eq!(failed.refunded_at, None);
    assert!(failed.settle_after.is_some(), "still owed");
    assert!(!fakes.payments.is_refunded("txn-1"));
}

/// Seed 1: the charge went through, recording it was refused with an
/// answer the workflow reported as final, and the client stopped with
/// the money taken and the booking unpaid.
#[test]
fn a_charge_whose_recording_is_refused_is_retryable_and_the_retry_confirms() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    // The first write marks the attempt; the second records the charge.
    fakes.knobs.set_chaos(fail_nth(vec![(
        Op::UpdateIfVersion,
        2,
        Fault::Fail(PortError::NotFound("lost track".into())),
    )]));

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
/// `booking.confirmed`. Now the event is part of that write.
#[test]
fn a_confirmation_whose_answer_was_lost_carries_its_event() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    // The CONFIRMED write (after marking the attempt and recording the
    // charge) lands unanswered, and the read-back fails.
    fakes.knobs.set_chaos(fail_nth(vec![
        (
            Op::UpdateIfVersion,
            3,
            Fault::FailAfterEffect(PortError::Timeout("slow".into())),
        ),
        (Op::Get, 2, Fault::Fail(PortError::Timeout("slow".into()))),
    ]));

    let error = pay(&workflow, &booking.id).unwrap_err();

    assert_eq!(error.code(), "DEPENDENCY_TIMEOUT");
    assert_eq!(stored(&fakes, &booking.id).status, BookingStatus::Confirmed);
    assert_eq!(
        kinds(&fakes, &booking.id),
        [EventKind::BookingCreated, EventKind::BookingConfirmed]
    );

    let replayed = pay(&workflow, &booking.id).unwrap();

    assert!(replayed.replayed);
    assert_eq!(kinds(&fakes, &booking.id).len(), 2, "committed once");
}

/// Seeds 202, 453: cancelling a confirmed booking refunded it, then the
/// seat release or the REFUNDED write failed with an answer reported as
/// final: the client stopped, the booking stayed CONFIRMED unpaid. Now
/// the decision is committed first and whatever fails after it is owed
/// and settled by the sweep.
#[test]
fn a_cancellation_is_committed_before_its_effects_and_the_sweep_finishes_them() {
    for fault in [
        (Op::ReleaseSeats, PortError::Rejected("no".into())),
        (Op::Refund, PortError::Rejected("no".into())),
    ] {
        let (fakes, workflow) = setup();
        let booking = create(&workflow, &["A1"]);
        pay(&workflow, &booking.id).unwrap();
        fakes.knobs.fail_next(fault.0, Fault::Fail(fault.1.clone()));

        let cancelled = run(workflow.cancel_booking(&booking.id)).unwrap();

        assert_eq!(cancelled.status, BookingStatus::Refunded, "{fault:?}");
        let due = cancelled.settle_after.expect("owed");
        fakes.env.set_now(due);
        assert_eq!(run(workflow.sweep_expired(10)).unwrap().settled, 1);
        assert_eq!(fakes.payments.refunds().len(), 1);
        assert!(stored(&fakes, &booking.id).refunded_at.is_some());
        assert_eq!(seat(&fakes, "A1"), SeatStatus::Available);
    }
}

/// Seed 652: the first refund went through but timed out; the retry's
/// refund was refused, reported as final, and the booking stayed
/// CONFIRMED with its money paid back.
#[test]
fn a_refund_that_timed_out_then_was_refused_is_retried_until_recorded() {
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

    let cancelled = run(workflow.cancel_booking(&booking.id)).unwrap();
    assert_eq!(cancelled.status, BookingStatus::Refunded);
    for _ in 0..2 {
        let due = stored(&fakes, &booking.id).settle_after.expect("owed");
        fakes.env.set_now(due);
        run(workflow.sweep_expired(10)).unwrap();
    }

    let settled = stored(&fakes, &booking.id);
    assert!(settled.refunded_at.is_some());
    assert_eq!(settled.settle_after, None);
    assert_eq!(fakes.payments.refunds().len(), 1);
}

/// A crash between the charge and recording it: the booking only has the
/// attempt mark. When it ends, settling voids the key, learns of the
/// charge and refunds it; an attempt that never charged is settled at
/// once, and its key charges no more.
#[test]
fn a_crashed_charge_attempt_is_found_and_refunded_when_the_booking_ends() {
    let (fakes, workflow) = setup();
    let charged = create(&workflow, &["A1"]);
    let uncharged = create(&workflow, &["A2"]);
    // The process "dies" after the charge: its receipt is never recorded.
    fakes.knobs.set_chaos(fail_nth(vec![(
        Op::UpdateIfVersion,
        2,
        Fault::Crash {
            after_effect: false,
        },
    )]));
    let crashed = run(futures::future::select(
        Box::pin(workflow.process_payment(&charged.id, "credit_card", "tok")),
        Box::pin(async {}),
    ));
    assert!(matches!(crashed, futures::future::Either::Right(_)));
    assert!(fakes.knobs.take_crashed());
    fakes.knobs.set_chaos(None);
    fakes
        .knobs
        .fail_next(Op::Charge, unavailable("process died before the charge"));
    pay(&workflow, &uncharged.id).unwrap_err();
    assert_eq!(stored(&fakes, &charged.id).payment_transaction_id, None);
    assert_eq!(fakes.payments.charges().len(), 1);

    let cancelled = run(workflow.cancel_booking(&uncharged.id)).unwrap();
    assert_eq!(cancelled.settle_after, None, "settled: nothing was charged");
    fakes.env.set_now(charged.lock_expires_at + 1);
    let report = run(workflow.sweep_expired(10)).unwrap();

    assert_eq!((report.expired, report.settled), (1, 1));
    let refunded = stored(&fakes, &charged.id);
    assert_eq!(refunded.status, BookingStatus::Expired);
    assert_eq!(refunded.payment_transaction_id.as_deref(), Some("txn-1"));
    assert!(refunded.refunded_at.is_some());
    assert!(fakes.payments.is_refunded("txn-1"));
    // The voided keys charge no more: a late retry cannot take money.
    let late = run(fakes.payments.charge(&ChargeRequest {
        idempotency_key: uncharged.id.clone(),
        amount_cents: uncharged.total_cents,
        currency: uncharged.currency.clone(),
        method: "credit_card".into(),
        details: "tok".into(),
        description: String::new(),
    }));
    assert!(matches!(late, Err(PortError::Rejected(_))), "{late:?}");
}

/// A charge that lands after the booking ended without it (the sweep
/// expired it while the payment ran) is recorded on the ended booking and
/// refunded, instead of being reported and forgotten.
#[test]
fn a_charge_arriving_after_the_booking_ended_is_adopted_and_refunded() {
    let (fakes, workflow) = setup();
    let booking = create(&workflow, &["A1"]);
    // While the charge is on its way, a sweep expires the booking (a
    // version that knows nothing of this charge).
    let storage = fakes.storage.clone();
    let id = booking.id.clone();
    fakes.knobs.set_chaos(Some(Box::new(move |op| {
        if op == Op::Charge {
            let current = storage.booking(&id).expect("stored");
            storage.put(Booking {
                status: BookingStatus::Expired,
                version: current.version + 1,
                ..current
            });
        }
        None
    })));

    let error = pay(&workflow, &booking.id).unwrap_err();

    assert_eq!(error.code(), "CONCURRENT_MODIFICATION", "{error}");
    assert!(error.to_string().contains("refunded"), "{error}");
    let ended = stored(&fakes, &booking.id);
    assert_eq!(ended.status, BookingStatus::Expired);
    assert_eq!(ended.payment_transaction_id.as_deref(), Some("txn-1"));
    assert!(ended.refunded_at.is_some());
    assert!(fakes.payments.is_refunded("txn-1"));
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
