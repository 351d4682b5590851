//! The invariants every run must end in, checked against the fakes' own
//! records (not against what the logic believes). None has an exception:
//!
//! 1. seats: no seat is confirmed to two bookings; every confirmed booking
//!    holds its seats and every booked seat belongs to a confirmed
//!    booking; no seat is left locked once every lock's time is up;
//! 2. money: charged − refunded is the price for a CONFIRMED booking and 0
//!    for any other; one charge per idempotency key, for a real booking,
//!    of its price; a booking records a refund exactly when it happened,
//!    and owes nothing once settled;
//! 3. every status change is allowed by `transition_event`, and each has
//!    exactly one event (after de-duplication by event id) of the right
//!    kind and status, committed in the write that made it; every refund
//!    has exactly one `booking.payment_refunded` event;
//! 4. every refusal a client saw carries a code, and what clients were
//!    told is true.

use std::collections::{BTreeMap, HashSet};

use booking_logic::model::{Booking, BookingStatus, Event, EventKind, SeatStatus};
use booking_logic::testing::LockState;
use booking_logic::workflow::transition_event;

use super::ledger::{Ledger, Reply};
use super::world::World;

struct Checker<'w> {
    world: &'w World,
    bookings: BTreeMap<String, Booking>,
    violations: Vec<String>,
}

/// Checks a settled run; the error lists every violation found.
pub fn check(world: &World, ledger: &Ledger) -> Result<(), String> {
    let mut checker = Checker {
        world,
        bookings: world
            .fakes
            .storage
            .all()
            .into_iter()
            .map(|booking| (booking.id.clone(), booking))
            .collect(),
        violations: Vec::new(),
    };
    checker.transitions_and_events();
    checker.seats();
    checker.money();
    checker.answers(ledger);
    if checker.violations.is_empty() {
        Ok(())
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
            if before.refunded_at.is_none() && after.refunded_at.is_some() {
                expected.push((EventKind::PaymentRefunded, after.status));
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
            if !rightful {
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

    fn money(&mut self) {
        let payments = &self.world.fakes.payments;
        let mut charged = 0;
        let bookings: Vec<Booking> = self.bookings.values().cloned().collect();
        for booking in &bookings {
            let id = &booking.id;
            if booking.status == BookingStatus::Pending {
                self.violation(format!("{id} is still PENDING after the final sweep"));
            }
            if let Some(due) = booking.settle_after {
                self.violation(format!("{id} still owes a settlement (due {due})"));
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
                if booking.refunded_at.is_some() {
                    self.violation(format!("{id} records a refund of a charge never made"));
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
            if booking.refunded_at.is_some() != refunded {
                self.violation(format!(
                    "{id} records refunded_at {:?}, but {transaction} refunded: {refunded}",
                    booking.refunded_at
                ));
            }
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
                ended => self.violation(format!(
                    "{id} is {} but {transaction} was never refunded (recorded: {})",
                    ended.as_str(),
                    recorded.is_some()
                )),
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
