//! The invariants every run must end in, checked against the fakes' own
//! records (not against what the logic believes):
//!
//! 1. seats: no seat is confirmed to two bookings; every confirmed booking
//!    holds its seats and every booked seat belongs to a confirmed
//!    booking; no seat is left locked once every lock's time is up;
//! 2. money: charged − refunded is the price for a CONFIRMED booking and 0
//!    for any other; one charge per idempotency key, for a real booking,
//!    of its price;
//! 3. every status change is allowed by `transition_event`, and each has
//!    exactly one event (after de-duplication by event id) of the right
//!    kind and status;
//! 4. every refusal a client saw carries a code, and what clients were
//!    told is true.
//!
//! The logic cannot always finish what a failure interrupted: a refund
//! or seat release that fails *after* the status was committed is not
//! retried by anyone, an event whose publication failed is not
//! re-published (no outbox), a status write that landed while its writer
//! could not find out is not followed up, and a charge whose answer never
//! reached the booking cannot be found again (the Payments port has no
//! lookup by idempotency key). Those outcomes are accepted only with the
//! evidence the journal holds for them, and counted as `Exemptions`.

use std::collections::{BTreeMap, HashSet};
use std::ops::AddAssign;

use booking_logic::model::{Booking, BookingStatus, Event, EventKind, SeatStatus};
use booking_logic::testing::LockState;
use booking_logic::workflow::transition_event;

use super::ledger::{Ledger, Reply, Request};
use super::world::World;

/// Known gaps of the logic met in a run, each backed by evidence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exemptions {
    /// A booking ended unconfirmed, its refund failed and is recorded as
    /// pending on the booking, and nobody retries it.
    pub refund_pending: u64,
    /// A charge the booking never learned of (its answer was lost, or
    /// recording it failed) on a booking that then ended unconfirmed; the
    /// client had been told to retry the payment.
    pub charge_unknown: u64,
    /// Seats confirmed for a booking that then ended unconfirmed, whose
    /// release failed.
    pub seats_not_released: u64,
    /// A status change whose event could not be published.
    pub event_lost: u64,
    /// A write that landed but whose writer could not tell (its answer
    /// was lost and so was the read-back), so it stopped before
    /// compensating and announcing: a missing event, refund or release.
    pub outcome_unknown: u64,
}

impl AddAssign for Exemptions {
    fn add_assign(&mut self, other: Exemptions) {
        self.refund_pending += other.refund_pending;
        self.charge_unknown += other.charge_unknown;
        self.seats_not_released += other.seats_not_released;
        self.event_lost += other.event_lost;
        self.outcome_unknown += other.outcome_unknown;
    }
}

struct Checker<'w> {
    world: &'w World,
    bookings: BTreeMap<String, Booking>,
    exemptions: Exemptions,
    violations: Vec<String>,
}

/// Checks a settled run; the error lists every violation found.
pub fn check(world: &World, ledger: &Ledger) -> Result<Exemptions, String> {
    let mut checker = Checker {
        world,
        bookings: world
            .fakes
            .storage
            .all()
            .into_iter()
            .map(|booking| (booking.id.clone(), booking))
            .collect(),
        exemptions: Exemptions::default(),
        violations: Vec::new(),
    };
    checker.transitions_and_events();
    checker.seats();
    checker.money(ledger);
    checker.answers(ledger);
    if checker.violations.is_empty() {
        Ok(checker.exemptions)
    } else {
        Err(checker.violations.join("\n"))
    }
}

impl Checker<'_> {
    fn violation(&mut self, message: String) {
        self.violations.push(message);
    }

    fn transitions_and_events(&mut self) {
        let mut seen = HashSet::new();
        let mut events: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        for event in self.world.fakes.events.published() {
            if seen.insert(event.id.clone()) {
                events
                    .entry(event.booking_id.clone())
                    .or_default()
                    .push(event);
            }
        }
        let bookings: Vec<Booking> = self.bookings.values().cloned().collect();
        for booking in &bookings {
            let versions = self.world.fakes.storage.versions(&booking.id);
            let expected = self.allowed_moves(booking, &versions);
            let published = events.remove(&booking.id).unwrap_or_default();
            self.one_event_per_move(booking, &expected, &published);
        }
        for (booking_id, orphans) in events {
            self.violation(format!(
                "{} event(s) for {booking_id}, which was never stored",
                orphans.len()
            ));
        }
    }

    /// The events the stored versions call for, after checking that each
    /// status change is one the state machine allows.
    fn allowed_moves(
        &mut self,
        booking: &Booking,
        versions: &[Booking],
    ) -> Vec<(EventKind, BookingStatus)> {
        let id = &booking.id;
        match versions.first() {
            Some(first) if first.version == 1 && first.status == BookingStatus::Pending => {}
            other => self.violation(format!("{id} was first stored as {other:?}")),
        }
        if versions.last() != Some(booking) {
            self.violation(format!("{id}: the store's history ends elsewhere"));
        }
        let mut expected = vec![(EventKind::BookingCreated, BookingStatus::Pending)];
        for pair in versions.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            if after.version != before.version + 1 {
                self.violation(format!(
                    "{id} went from version {} to {}",
                    before.version, after.version
                ));
            }
            if before.status == after.status {
                continue;
            }
            match transition_event(before.status, after.status) {
                Some(kind) => expected.push((kind, after.status)),
                None => self.violation(format!(
                    "{id} moved from {} to {}, which the state machine forbids",
                    before.status.as_str(),
                    after.status.as_str()
                )),
            }
        }
        expected
    }

    fn one_event_per_move(
        &mut self,
        booking: &Booking,
        expected: &[(EventKind, BookingStatus)],
        published: &[Event],
    ) {
        let id = &booking.id;
        for (kind, status) in expected {
            let matching: Vec<&Event> = published
                .iter()
                .filter(|event| event.kind == *kind)
                .collect();
            match matching.as_slice() {
                [event] if event.status == *status => {}
                [event] => self.violation(format!(
                    "{id}: {} says {} instead of {}",
                    kind.as_str(),
                    event.status.as_str(),
                    status.as_str()
                )),
                [] if self.world.journal.publish_failed(id, *kind) => {
                    self.exemptions.event_lost += 1;
                }
                [] if self.world.journal.outcome_unknown(id) => {
                    self.exemptions.outcome_unknown += 1;
                }
                [] => self.violation(format!("{id}: no {} event", kind.as_str())),
                many => self.violation(format!(
                    "{id}: {} distinct {} events",
                    many.len(),
                    kind.as_str()
                )),
            }
        }
        for event in published {
            if !expected.iter().any(|(kind, _)| *kind == event.kind) {
                self.violation(format!(
                    "{id}: {} event without that status change",
                    event.kind.as_str()
                ));
            }
        }
    }

    fn seats(&mut self) {
        let confirmed: Vec<Booking> = self
            .bookings
            .values()
            .filter(|booking| booking.status == BookingStatus::Confirmed)
            .cloned()
            .collect();
        for (n, first) in confirmed.iter().enumerate() {
            for second in &confirmed[n + 1..] {
                let shared: Vec<&String> = first
                    .seats
                    .iter()
                    .filter(|seat| {
                        first.showtime_id == second.showtime_id && second.seats.contains(seat)
                    })
                    .collect();
                if !shared.is_empty() {
                    self.violation(format!(
                        "seats {shared:?} of {} confirmed to both {} and {}",
                        first.showtime_id, first.id, second.id
                    ));
                }
            }
        }

        let locks = self.world.fakes.seats.locks();
        for booking in &confirmed {
            let held = locks.iter().any(|record| {
                record.lock.id == booking.lock_id
                    && record.holder == booking.id
                    && record.state == LockState::Confirmed
                    && record.lock.seats.len() == booking.seats.len()
                    && record
                        .lock
                        .seats
                        .iter()
                        .all(|seat| booking.seats.contains(&seat.number))
            });
            if !held {
                self.violation(format!(
                    "{} is CONFIRMED but its seats are not booked for it",
                    booking.id
                ));
            }
        }
        for record in locks
            .iter()
            .filter(|record| record.state == LockState::Confirmed)
        {
            let owner = self.bookings.get(&record.holder);
            let rightful = owner.is_some_and(|owner| {
                owner.status == BookingStatus::Confirmed && owner.lock_id == record.lock.id
            });
            if rightful {
                continue;
            }
            if self.world.journal.release_failed_last(&record.lock.id) {
                self.exemptions.seats_not_released += 1;
            } else if self.world.journal.outcome_unknown(&record.holder) {
                self.exemptions.outcome_unknown += 1;
            } else {
                self.violation(format!(
                    "seats of lock {} stay booked for {} ({:?})",
                    record.lock.id,
                    record.holder,
                    owner.map(|owner| owner.status)
                ));
            }
        }

        for showtime in &self.world.showtimes {
            for seat in &showtime.seats {
                if self.world.fakes.seats.seat_status(&showtime.id, seat)
                    == Some(SeatStatus::Locked)
                {
                    self.violation(format!(
                        "seat {seat} of {} is still locked after every lock expired",
                        showtime.id
                    ));
                }
            }
        }
    }

    fn money(&mut self, ledger: &Ledger) {
        let payments = &self.world.fakes.payments;
        let mut charged = 0;
        let bookings: Vec<Booking> = self.bookings.values().cloned().collect();
        for booking in &bookings {
            let id = &booking.id;
            if booking.status == BookingStatus::Pending {
                self.violation(format!("{id} is still PENDING after the final sweep"));
            }
            let Some(receipt) = payments.receipt(id) else {
                if matches!(
                    booking.status,
                    BookingStatus::Confirmed | BookingStatus::Refunded
                ) {
                    self.violation(format!(
                        "{id} is {} without a charge",
                        booking.status.as_str()
                    ));
                }
                if let Some(recorded) = &booking.payment_transaction_id {
                    self.violation(format!("{id} records {recorded}, which was never charged"));
                }
                continue;
            };
            charged += 1;
            let transaction = &receipt.transaction_id;
            if receipt.amount_cents != booking.total_cents || receipt.currency != booking.currency {
                self.violation(format!(
                    "{id} costs {} {} but was charged {} {}",
                    booking.total_cents, booking.currency, receipt.amount_cents, receipt.currency
                ));
            }
            let recorded = booking.payment_transaction_id.as_ref();
            if recorded.is_some_and(|recorded| recorded != transaction) {
                self.violation(format!(
                    "{id} records {recorded:?}, its charge is {transaction}"
                ));
            }
            let refunded = payments.is_refunded(transaction);
            match booking.status {
                BookingStatus::Confirmed if refunded || recorded != Some(transaction) => {
                    self.violation(format!(
                        "{id} is CONFIRMED, charge {transaction} recorded: {}, refunded: {refunded}",
                        recorded.is_some()
                    ));
                }
                BookingStatus::Refunded if !refunded => {
                    self.violation(format!("{id} is REFUNDED but {transaction} is not"));
                }
                BookingStatus::Confirmed | BookingStatus::Refunded | BookingStatus::Pending => {}
                _ if refunded => {}
                ended => self.unrefunded(ledger, booking, ended, transaction),
            }
        }
        let all = payments.charges().len();
        if all != charged {
            self.violation(format!(
                "{} charge(s) under keys that are no booking's id",
                all - charged
            ));
        }
    }

    /// A booking ended unconfirmed and its charge was not paid back: only
    /// the known gaps excuse it.
    fn unrefunded(
        &mut self,
        ledger: &Ledger,
        booking: &Booking,
        ended: BookingStatus,
        transaction: &str,
    ) {
        let id = &booking.id;
        let journal = &self.world.journal;
        let reason = booking.failure_reason.as_deref().unwrap_or_default();
        let recorded = booking.payment_transaction_id.is_some();
        if journal.refund_failed(transaction) {
            if recorded && !reason.contains("refund pending") {
                self.violation(format!(
                    "{id} is {} with {transaction} unrefunded, but its record says {reason:?}",
                    ended.as_str()
                ));
            }
            self.exemptions.refund_pending += 1;
            return;
        }
        if recorded && journal.outcome_unknown(id) {
            self.exemptions.outcome_unknown += 1;
            return;
        }
        let told_to_retry = ledger.exchanges().iter().any(|exchange| {
            exchange.booking_id.as_deref() == Some(id.as_str())
                && matches!(exchange.request, Request::Pay { .. })
                && exchange.retryable()
        });
        if !recorded && told_to_retry {
            self.exemptions.charge_unknown += 1;
            return;
        }
        self.violation(format!(
            "{id} is {} but {transaction} was never refunded (recorded: {recorded}, \
             receipt seen by the logic: {})",
            ended.as_str(),
            journal.saw_receipt(id)
        ));
    }

    /// What clients were told must be true, and every refusal coded.
    fn answers(&mut self, ledger: &Ledger) {
        for exchange in ledger.exchanges() {
            let booking = exchange
                .booking_id
                .as_ref()
                .and_then(|id| self.bookings.get(id))
                .cloned();
            let id = exchange.booking_id.clone().unwrap_or_default();
            match (&exchange.reply, booking) {
                (Reply::Refused(failure), _) if failure.code.is_empty() => {
                    self.violation(format!(
                        "{:?} of {id} refused without a code: {}",
                        exchange.request, failure.message
                    ));
                }
                (Reply::Refused(_) | Reply::Swept, _) => {}
                (Reply::Created | Reply::Paid(_) | Reply::Cancelled(_), None) => {
                    self.violation(format!(
                        "{id} was answered {:?} but is not stored",
                        exchange.reply
                    ));
                }
                (Reply::Created, Some(_)) => {}
                (Reply::Paid(paid), Some(booking)) => {
                    let true_now = if paid.success {
                        matches!(
                            booking.status,
                            BookingStatus::Confirmed | BookingStatus::Refunded
                        ) && paid.code.is_none()
                    } else {
                        booking.status == paid.status
                            && paid.code.as_deref().is_some_and(|code| !code.is_empty())
                    };
                    if !true_now {
                        self.violation(format!(
                            "{id}: payment answered {paid:?}, the booking ended {}",
                            booking.status.as_str()
                        ));
                    }
                }
                (Reply::Cancelled(status), Some(booking)) if booking.status != *status => {
                    self.violation(format!(
                        "{id}: cancellation answered {}, the booking ended {}",
                        status.as_str(),
                        booking.status.as_str()
                    ));
                }
                (Reply::Cancelled(_), Some(_)) => {}
            }
        }
    }
}
