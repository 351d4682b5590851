//! The booking workflow: create (lock seats, store a PENDING booking), pay
//! (charge, confirm the seats, CONFIRMED), cancel, and the sweeper that
//! expires unpaid bookings.
//!
//! The logic owns no state: every fact lives behind a port, and every
//! status change is an optimistic-concurrency write
//! (`Storage::update_if_version`) made by `Workflow::transition`. That
//! write is the commit point:
//!
//! - Leaving PENDING for a failure state (PAYMENT_FAILED, FAILED,
//!   CANCELLED, EXPIRED) releases the seat lock and refunds a recorded
//!   charge *after* the write, so when two requests race (a payment and
//!   the sweeper, two sweepers) only the winner compensates, and a loser
//!   never frees seats a concurrent payment has just confirmed.
//! - CONFIRMED can only become REFUNDED, so cancelling a confirmed booking
//!   refunds and releases *before* the write: if the refund fails nothing
//!   has changed and the client can simply retry (refunds are idempotent).
//! - A refund made after the write is recorded as pending in that write
//!   and as done only once it happened, so the record never claims money
//!   was paid back when it was not.
//! - Events are published after the write. The stored state is the truth:
//!   a failed publish is reported on stderr and does not fail the
//!   operation (a durable outbox will close that gap). An event's id is
//!   the booking id and the version its move was committed as, so
//!   publishing it again (a replayed confirmation, two requests that both
//!   believe they made the move) yields one event after de-duplication.
//!
//! Payments use the booking id as idempotency key, so any retry of
//! `process_payment` (after a timeout, an outage, a crash) reaches the
//! same charge and never charges twice. Once money has moved (a charge,
//! the refund of a cancelled confirmation) every later failure is
//! reported as retryable, and so is any answer a dependency's contract
//! does not foresee: the retry repeats only idempotent steps, and a
//! client that stopped instead would leave the booking halfway.
//!
//! `tests/simulation` runs this workflow against faulty fakes under
//! thousands of seeded schedules and checks its invariants, including the
//! gaps that remain (see `tests/simulation/invariants.rs`).

use std::collections::HashSet;

use crate::error::BookingError;
use crate::model::{
    Booking, BookingPage, BookingStatus, ChargeRequest, Event, EventKind, PageRequest, Seat,
    Showtime, SweepReport,
};
use crate::ports::{PortError, Ports};
use crate::settings::Settings;
use crate::validation;

/// Dependency names used in error messages.
const SEAT_SERVICE: &str = "seat service";
const USER_SERVICE: &str = "user service";
const PAYMENT_SERVICE: &str = "payment service";
const BOOKING_STORE: &str = "booking store";
const EVENT_LOG: &str = "event log";

/// Failure reasons stored on bookings, for people.
const REASON_EXPIRED: &str = "seat lock expired before payment";
const REASON_LOCK_LOST: &str = "seat lock expired before confirmation";
const REASON_CANCELLED: &str = "cancelled by the customer";

/// A freshly created PENDING booking and the lock holding its seats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedBooking {
    pub booking: Booking,
    pub lock_id: String,
}

/// How a payment attempt that ran to the end turned out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOutcome {
    /// The booking as stored after the attempt.
    pub booking: Booking,
    /// Why the booking ended in a failure state (PAYMENT_DECLINED for
    /// PAYMENT_FAILED, SEATS_UNAVAILABLE for FAILED); `None` when it is
    /// CONFIRMED.
    pub failure: Option<BookingError>,
    /// The booking was already CONFIRMED: nothing was charged this time.
    pub replayed: bool,
}

impl PaymentOutcome {
    fn confirmed(booking: Booking, replayed: bool) -> PaymentOutcome {
        PaymentOutcome {
            booking,
            failure: None,
            replayed,
        }
    }

    fn failed(booking: Booking, failure: BookingError) -> PaymentOutcome {
        PaymentOutcome {
            booking,
            failure: Some(failure),
            replayed: false,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }

    /// A sentence for the customer.
    pub fn message(&self) -> String {
        match (&self.failure, self.replayed) {
            (Some(failure), _) => failure.to_string(),
            (None, true) => "booking already confirmed; no new charge was made".to_string(),
            (None, false) => "payment processed; booking confirmed".to_string(),
        }
    }
}

/// A showtime with the current status of every seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowtimeSeats {
    pub showtime: Showtime,
    pub seats: Vec<Seat>,
}

/// The event announcing a move from `from` to `to`, or `None` when the
/// move is not allowed. This table is the booking state machine.
pub fn transition_event(from: BookingStatus, to: BookingStatus) -> Option<EventKind> {
    use BookingStatus as S;
    match (from, to) {
        (S::Pending, S::Confirmed) => Some(EventKind::BookingConfirmed),
        (S::Pending, S::PaymentFailed) => Some(EventKind::BookingPaymentFailed),
        (S::Pending, S::Failed) => Some(EventKind::BookingFailed),
        (S::Pending, S::Cancelled) => Some(EventKind::BookingCancelled),
        (S::Pending, S::Expired) => Some(EventKind::BookingExpired),
        (S::Confirmed, S::Refunded) => Some(EventKind::BookingRefunded),
        _ => None,
    }
}

/// The booking workflow over a set of ports.
pub struct Workflow {
    ports: Ports,
    settings: Settings,
}

/// Where recording a charge on the booking left it.
enum Charged {
    /// PENDING with the charge recorded: go on and confirm the seats.
    Pending(Booking),
    /// A concurrent attempt already confirmed it with this same charge.
    Confirmed(Booking),
}

impl Workflow {
    pub fn new(ports: Ports, settings: Settings) -> Workflow {
        Workflow { ports, settings }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Locks the seats and stores a PENDING booking holding them until the
    /// lock expires. Either the booking exists with its lock, or the lock
    /// is released again and an error is returned.
    pub async fn create_booking(
        &self,
        user_id: &str,
        showtime_id: &str,
        seat_numbers: Vec<String>,
    ) -> Result<CreatedBooking, BookingError> {
        validation::id("userId", user_id)?;
        validation::id("showtimeId", showtime_id)?;
        validation::seats(&seat_numbers, self.settings.max_seats_per_booking)?;

        let user = self
            .ports
            .users
            .get_user(user_id)
            .await
            .map_err(|error| match error {
                PortError::NotFound(_) => BookingError::UserNotFound(user_id.to_string()),
                other => dependency(USER_SERVICE, other),
            })?;
        if !user.active {
            return Err(BookingError::UserInactive(user_id.to_string()));
        }
        let showtime = self.showtime(showtime_id).await?;

        // The booking id doubles as lock holder and payment idempotency
        // key, so it is chosen before anything is locked.
        let booking_id = self.ports.env.new_id();
        let lock = self
            .ports
            .seats
            .lock_seats(
                showtime_id,
                &seat_numbers,
                &booking_id,
                self.settings.seat_lock_seconds,
            )
            .await
            .map_err(|error| match error {
                PortError::Conflict(detail) => BookingError::SeatsUnavailable(format!(
                    "some seats are already locked or booked: {detail}"
                )),
                PortError::Rejected(detail) => BookingError::InvalidInput(detail),
                PortError::NotFound(_) => BookingError::ShowtimeNotFound(showtime_id.to_string()),
                other => dependency(SEAT_SERVICE, other),
            })?;

        // The price is what the lock says, seat by seat; a lock that does
        // not cover exactly the requested seats would charge a wrong total.
        let locked: HashSet<&str> = lock.seats.iter().map(|seat| seat.number.as_str()).collect();
        let requested: HashSet<&str> = seat_numbers.iter().map(String::as_str).collect();
        let total_cents = lock
            .seats
            .iter()
            .try_fold(self.settings.booking_fee_cents, |total, seat| {
                total.checked_add(seat.price_cents)
            });
        let total_cents = match total_cents {
            Some(total) if locked == requested && lock.seats.len() == seat_numbers.len() => total,
            _ => {
                self.release_quietly(&booking_id, &lock.id).await;
                return Err(BookingError::Internal(format!(
                    "seat lock {} does not price exactly the requested seats",
                    lock.id
                )));
            }
        };

        let now = self.ports.env.now();
        let booking = Booking {
            id: booking_id,
            user_id: user_id.to_string(),
            showtime_id: showtime_id.to_string(),
            seats: seat_numbers,
            total_cents,
            currency: showtime.currency,
            status: BookingStatus::Pending,
            lock_id: lock.id.clone(),
            lock_expires_at: lock.expires_at,
            payment_transaction_id: None,
            failure_reason: None,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        if let Err(error) = self.insert(&booking).await {
            // Compensate: without a stored booking nobody would ever pay
            // for or release these seats before the lock runs out.
            self.release_quietly(&booking.id, &lock.id).await;
            return Err(error);
        }
        self.announce(EventKind::BookingCreated, &booking, booking.version)
            .await;
        Ok(CreatedBooking {
            booking,
            lock_id: lock.id,
        })
    }

    /// Charges a PENDING booking and confirms its seats. Safe to retry
    /// with the same arguments after any error: the charge is idempotent
    /// per booking and a CONFIRMED booking replays its success.
    pub async fn process_payment(
        &self,
        booking_id: &str,
        method: &str,
        details: &str,
    ) -> Result<PaymentOutcome, BookingError> {
        validation::id("bookingId", booking_id)?;
        validation::id("paymentMethod", method)?;
        validation::text(
            "paymentDetails",
            details,
            validation::MAX_PAYMENT_DETAILS_CHARS,
        )?;

        let booking = self.load(booking_id).await?;
        match booking.status {
            BookingStatus::Pending => {}
            BookingStatus::Confirmed => return Ok(self.replay_confirmed(booking).await),
            other => {
                return Err(BookingError::InvalidState(format!(
                    "booking {booking_id} is {}; only a PENDING booking can be paid",
                    other.as_str()
                )));
            }
        }
        if self.ports.env.now() >= booking.lock_expires_at {
            self.transition(booking, BookingStatus::Expired, REASON_EXPIRED)
                .await?;
            return Err(BookingError::BookingExpired(booking_id.to_string()));
        }

        let request = ChargeRequest {
            idempotency_key: booking.id.clone(),
            amount_cents: booking.total_cents,
            currency: booking.currency.clone(),
            method: method.to_string(),
            details: details.to_string(),
            description: format!(
                "booking {} for showtime {}, seats {}",
                booking.id,
                booking.showtime_id,
                booking.seats.join(", ")
            ),
        };
        let receipt = match self.ports.payments.charge(&request).await {
            Ok(receipt) => receipt,
            Err(PortError::Rejected(reason)) => {
                let booking = self
                    .transition(
                        booking,
                        BookingStatus::PaymentFailed,
                        &format!("payment declined: {reason}"),
                    )
                    .await?;
                return Ok(PaymentOutcome::failed(
                    booking,
                    BookingError::PaymentDeclined(reason),
                ));
            }
            // The booking stays PENDING: a retry reuses the idempotency
            // key and so reaches the charge that may already exist.
            Err(PortError::Timeout(detail)) => return Err(BookingError::PaymentTimeout(detail)),
            Err(PortError::Conflict(detail)) => {
                return Err(BookingError::PaymentConflict(detail));
            }
            Err(other) => return Err(dependency(PAYMENT_SERVICE, other)),
        };

        // The money has moved: whatever fails from here on must keep the
        // client retrying (the retry reaches the same charge), or the
        // charge would be left unrecorded or the booking unconfirmed.
        self.finish_payment(booking, &receipt.transaction_id)
            .await
            .map_err(|error| {
                retry_to_finish(
                    error,
                    BOOKING_STORE,
                    "the payment went through; retry processPayment to finish the booking",
                )
            })
    }

    /// Records the charge on the booking, confirms the seats, then the
    /// booking (or fails it and refunds when the seats are gone).
    async fn finish_payment(
        &self,
        booking: Booking,
        transaction_id: &str,
    ) -> Result<PaymentOutcome, BookingError> {
        let booking = match self.record_charge(booking, transaction_id).await? {
            Charged::Pending(booking) => booking,
            Charged::Confirmed(booking) => return Ok(self.replay_confirmed(booking).await),
        };
        let booking_id = booking.id.clone();

        match self.ports.seats.confirm_seats(&booking.lock_id).await {
            Ok(()) => match self.transition(booking, BookingStatus::Confirmed, "").await {
                Ok(booking) => Ok(PaymentOutcome::confirmed(booking, false)),
                // A concurrent attempt with the same charge got there
                // first: same money, same seats, so report its success.
                Err(BookingError::ConcurrentModification(message)) => {
                    match self.load(&booking_id).await {
                        Ok(current) if current.status == BookingStatus::Confirmed => {
                            Ok(self.replay_confirmed(current).await)
                        }
                        _ => Err(BookingError::ConcurrentModification(message)),
                    }
                }
                Err(other) => Err(other),
            },
            // Unreachable, slow or down: the booking stays PENDING with its
            // charge recorded; a retry re-charges with the same key (same
            // receipt) and confirms again (confirming is idempotent).
            Err(error @ (PortError::Unavailable(_) | PortError::Timeout(_))) => {
                Err(dependency(SEAT_SERVICE, error))
            }
            // The lock is gone: the seats cannot be booked any more, so
            // the charge is refunded and the booking fails.
            Err(PortError::Conflict(_) | PortError::NotFound(_) | PortError::Rejected(_)) => {
                let booking = self
                    .transition(booking, BookingStatus::Failed, REASON_LOCK_LOST)
                    .await?;
                let reason = booking
                    .failure_reason
                    .clone()
                    .unwrap_or_else(|| REASON_LOCK_LOST.to_string());
                Ok(PaymentOutcome::failed(
                    booking,
                    BookingError::SeatsUnavailable(reason),
                ))
            }
        }
    }

    /// Cancels a PENDING booking (seats released, any charge refunded:
    /// CANCELLED) or a CONFIRMED one (refunded, seats released: REFUNDED).
    pub async fn cancel_booking(&self, booking_id: &str) -> Result<Booking, BookingError> {
        validation::id("bookingId", booking_id)?;
        let booking = self.load(booking_id).await?;
        match booking.status {
            BookingStatus::Pending => {
                self.transition(booking, BookingStatus::Cancelled, REASON_CANCELLED)
                    .await
            }
            BookingStatus::Confirmed => {
                // Effects first (see the module doc): if either fails the
                // booking is still CONFIRMED and a retry repeats both.
                // Every refund failure is retryable: refunds are idempotent,
                // and an earlier attempt that timed out may have paid the
                // money back already, so giving up here could leave the
                // booking CONFIRMED without its money.
                if let Some(transaction_id) = &booking.payment_transaction_id {
                    self.ports.payments.refund(transaction_id).await.map_err(
                        |error| match error {
                            error @ (PortError::Unavailable(_) | PortError::Timeout(_)) => {
                                dependency(PAYMENT_SERVICE, error)
                            }
                            other => BookingError::DependencyUnavailable {
                                dependency: PAYMENT_SERVICE,
                                detail: format!(
                                    "it refused to refund {transaction_id} ({other}); retry cancelBooking"
                                ),
                            },
                        },
                    )?;
                }
                // The money is back: whatever fails from here on must keep
                // the client retrying, or the booking would stay CONFIRMED
                // without its money.
                let reason = if booking.payment_transaction_id.is_some() {
                    format!("{REASON_CANCELLED}; payment refunded")
                } else {
                    REASON_CANCELLED.to_string()
                };
                let finished = match self.ports.seats.release_seats(&booking.lock_id).await {
                    Ok(()) => {
                        self.transition(booking, BookingStatus::Refunded, &reason)
                            .await
                    }
                    // Any lock can be released, so every failure is
                    // transient as far as the logic can tell.
                    Err(PortError::Timeout(detail)) => Err(BookingError::DependencyTimeout {
                        dependency: SEAT_SERVICE,
                        detail,
                    }),
                    Err(other) => Err(BookingError::DependencyUnavailable {
                        dependency: SEAT_SERVICE,
                        detail: other.to_string(),
                    }),
                };
                finished.map_err(|error| {
                    retry_to_finish(
                        error,
                        BOOKING_STORE,
                        "the payment was refunded; retry cancelBooking to finish",
                    )
                })
            }
            other => Err(BookingError::InvalidState(format!(
                "booking {booking_id} is {}; only PENDING or CONFIRMED bookings can be cancelled",
                other.as_str()
            ))),
        }
    }

    /// The booking, or `None` if there is no such booking.
    pub async fn get_booking(&self, booking_id: &str) -> Result<Option<Booking>, BookingError> {
        validation::id("bookingId", booking_id)?;
        self.ports
            .storage
            .get(booking_id)
            .await
            .map_err(|error| dependency(BOOKING_STORE, error))
    }

    /// One page of a user's bookings, newest first.
    pub async fn user_bookings(
        &self,
        user_id: &str,
        page: PageRequest,
    ) -> Result<BookingPage, BookingError> {
        validation::id("userId", user_id)?;
        validation::cursor(page.cursor.as_deref())?;
        if page.limit == 0 || page.limit > validation::MAX_PAGE_SIZE {
            return Err(BookingError::InvalidInput(format!(
                "page size must be between 1 and {}",
                validation::MAX_PAGE_SIZE
            )));
        }
        self.ports
            .storage
            .list_by_user(user_id, &page)
            .await
            .map_err(|error| match error {
                PortError::Rejected(detail) => {
                    BookingError::InvalidInput(format!("after is not a valid cursor: {detail}"))
                }
                other => dependency(BOOKING_STORE, other),
            })
    }

    /// A showtime and its seat map.
    pub async fn showtime_seats(&self, showtime_id: &str) -> Result<ShowtimeSeats, BookingError> {
        validation::id("showtimeId", showtime_id)?;
        let showtime = self.showtime(showtime_id).await?;
        let seats = self
            .ports
            .seats
            .seat_map(showtime_id)
            .await
            .map_err(|error| match error {
                PortError::NotFound(_) => BookingError::ShowtimeNotFound(showtime_id.to_string()),
                other => dependency(SEAT_SERVICE, other),
            })?;
        Ok(ShowtimeSeats { showtime, seats })
    }

    /// The events published for a booking, oldest first.
    pub async fn booking_events(&self, booking_id: &str) -> Result<Vec<Event>, BookingError> {
        validation::id("bookingId", booking_id)?;
        self.ports
            .events
            .history(booking_id)
            .await
            .map_err(|error| dependency(EVENT_LOG, error))
    }

    /// Expires up to `limit` PENDING bookings whose seat lock has run out.
    /// Several sweepers (or a sweeper and a payment) may race: the
    /// versioned write lets exactly one of them expire a booking; the
    /// others count it as skipped and touch nothing.
    pub async fn sweep_expired(&self, limit: u32) -> Result<SweepReport, BookingError> {
        let now = self.ports.env.now();
        let due = self
            .ports
            .storage
            .list_expired_pending(now, limit)
            .await
            .map_err(|error| dependency(BOOKING_STORE, error))?;
        let mut report = SweepReport::default();
        for booking in due {
            match self
                .transition(booking, BookingStatus::Expired, REASON_EXPIRED)
                .await
            {
                Ok(_) => report.expired = report.expired.saturating_add(1),
                // Someone else moved it first (it may no longer be PENDING
                // when we get to it): theirs to compensate, not ours.
                Err(BookingError::ConcurrentModification(_) | BookingError::InvalidState(_)) => {
                    report.skipped = report.skipped.saturating_add(1);
                }
                // The store is failing: stop; the next sweep resumes.
                Err(other) => return Err(other),
            }
        }
        report.idempotency_purged = self
            .ports
            .storage
            .purge_idempotency_records(now, limit)
            .await
            .map_err(|error| dependency(BOOKING_STORE, error))?;
        Ok(report)
    }

    /// The one place a booking changes status: checks the move against
    /// the state machine, writes it only if nobody changed the booking
    /// since it was read, compensates when a PENDING booking ends without
    /// being confirmed, and publishes exactly one event. `reason` is the
    /// failure reason recorded for people (empty for none).
    async fn transition(
        &self,
        booking: Booking,
        to: BookingStatus,
        reason: &str,
    ) -> Result<Booking, BookingError> {
        let from = booking.status;
        let Some(kind) = transition_event(from, to) else {
            return Err(BookingError::InvalidState(format!(
                "booking {} is {} and cannot become {}",
                booking.id,
                from.as_str(),
                to.as_str()
            )));
        };
        let compensate = from == BookingStatus::Pending && to != BookingStatus::Confirmed;
        let refund = if compensate {
            booking.payment_transaction_id.clone()
        } else {
            None
        };
        let mut next = booking.clone();
        next.status = to;
        // Until the refund is known to have happened, the record says it
        // is pending: then no failure past this point can leave a booking
        // claiming money was paid back when it was not.
        next.failure_reason = with_note(reason, refund.as_ref().map(|_| "refund pending"));
        next.updated_at = self.ports.env.now();
        let committed = self.store(next, booking.version).await?;
        // The event is named after the version the move was committed
        // as: whoever publishes it (again) publishes the same event.
        let moved_as = committed.version;

        if compensate {
            self.release_quietly(&committed.id, &committed.lock_id)
                .await;
        }
        let settled = match refund {
            Some(transaction_id) => self.pay_back(committed, reason, &transaction_id).await,
            None => committed,
        };
        self.announce(kind, &settled, moved_as).await;
        Ok(settled)
    }

    /// Refunds the charge of a booking that has just ended and records
    /// how that went (status unchanged). A failed refund stays visible on
    /// the booking so it can be paid back by hand until refunds are
    /// retried automatically.
    async fn pay_back(&self, booking: Booking, reason: &str, transaction_id: &str) -> Booking {
        let outcome = match self.ports.payments.refund(transaction_id).await {
            Ok(_) => "payment refunded".to_string(),
            Err(error) => {
                eprintln!(
                    "booking {}: refund of {transaction_id} failed: {error}; recorded as refund pending",
                    booking.id
                );
                format!("refund pending: {error}")
            }
        };
        let mut next = booking.clone();
        next.failure_reason = with_note(reason, Some(&outcome));
        next.updated_at = self.ports.env.now();
        match self.store(next, booking.version).await {
            Ok(noted) => noted,
            Err(store_error) => {
                eprintln!(
                    "booking {}: could not record the refund of {transaction_id} ({outcome}): {store_error}",
                    booking.id
                );
                booking
            }
        }
    }

    /// The booking is already CONFIRMED: success, nothing charged. Its
    /// confirmation is published again under the same event id, in case
    /// the attempt that confirmed it could not tell its write landed.
    async fn replay_confirmed(&self, booking: Booking) -> PaymentOutcome {
        self.announce(EventKind::BookingConfirmed, &booking, booking.version)
            .await;
        PaymentOutcome::confirmed(booking, true)
    }

    /// Writes the charge onto the PENDING booking before the seats are
    /// confirmed, so that a crash or a failed confirmation leaves a trace
    /// of the money and whoever ends the booking refunds it.
    async fn record_charge(
        &self,
        booking: Booking,
        transaction_id: &str,
    ) -> Result<Charged, BookingError> {
        if booking.payment_transaction_id.as_deref() == Some(transaction_id) {
            return Ok(Charged::Pending(booking));
        }
        let mut next = booking.clone();
        next.payment_transaction_id = Some(transaction_id.to_string());
        next.updated_at = self.ports.env.now();
        match self.store(next, booking.version).await {
            Ok(recorded) => Ok(Charged::Pending(recorded)),
            Err(BookingError::ConcurrentModification(message)) => {
                self.charge_record_lost(&booking.id, transaction_id, message)
                    .await
            }
            Err(other) => Err(other),
        }
    }

    /// Someone changed the booking between our read and recording the
    /// charge. Decide from its current state who owns the money.
    async fn charge_record_lost(
        &self,
        booking_id: &str,
        transaction_id: &str,
        message: String,
    ) -> Result<Charged, BookingError> {
        let current = self.load(booking_id).await?;
        let ours = current.payment_transaction_id.as_deref() == Some(transaction_id);
        match (current.status, ours) {
            // A concurrent attempt recorded the same charge (same key):
            // carry on from its version.
            (BookingStatus::Pending, true) => Ok(Charged::Pending(current)),
            (BookingStatus::Confirmed, true) => Ok(Charged::Confirmed(current)),
            // Still PENDING: a retry records the charge (same key, same
            // receipt). Ended with our charge on it: whoever ended it
            // refunded it.
            (BookingStatus::Pending, false) | (_, true) => {
                Err(BookingError::ConcurrentModification(message))
            }
            // Ended (expired, cancelled) without knowing about this
            // charge: nobody else will ever refund it.
            (_, false) => {
                let refund = match self.ports.payments.refund(transaction_id).await {
                    Ok(_) => "the payment was refunded".to_string(),
                    Err(error) => {
                        eprintln!(
                            "booking {booking_id}: refund of orphaned charge {transaction_id} failed: {error}"
                        );
                        format!("refund pending for {transaction_id}: {error}")
                    }
                };
                Err(BookingError::ConcurrentModification(format!(
                    "{message}; {refund}"
                )))
            }
        }
    }

    /// `update_if_version` with the error mapping every write shares.
    async fn store(
        &self,
        mut next: Booking,
        expected_version: u64,
    ) -> Result<Booking, BookingError> {
        match self
            .ports
            .storage
            .update_if_version(&next, expected_version)
            .await
        {
            Ok(version) => {
                next.version = version;
                Ok(next)
            }
            Err(PortError::Conflict(_)) => Err(self.lost_race(&next.id).await),
            Err(PortError::NotFound(_)) => Err(BookingError::BookingNotFound(next.id)),
            // The write may have landed. If the store now holds exactly
            // what we wrote, one version on, it is ours.
            Err(PortError::Timeout(detail)) => {
                let landed = expected_version.checked_add(1).map(|version| Booking {
                    version,
                    ..next.clone()
                });
                match self.ports.storage.get(&next.id).await {
                    Ok(Some(current)) if Some(&current) == landed.as_ref() => Ok(current),
                    _ => Err(BookingError::DependencyTimeout {
                        dependency: BOOKING_STORE,
                        detail,
                    }),
                }
            }
            Err(other) => Err(dependency(BOOKING_STORE, other)),
        }
    }

    /// A version conflict: re-read to tell the client what the booking
    /// became.
    async fn lost_race(&self, booking_id: &str) -> BookingError {
        let now = match self.ports.storage.get(booking_id).await {
            Ok(Some(current)) => format!("it is now {}", current.status.as_str()),
            Ok(None) => "it no longer exists".to_string(),
            Err(_) => "its current state could not be read".to_string(),
        };
        BookingError::ConcurrentModification(format!(
            "booking {booking_id} was changed by another request ({now}); retry to see the outcome"
        ))
    }

    async fn insert(&self, booking: &Booking) -> Result<(), BookingError> {
        match self.ports.storage.insert(booking).await {
            Ok(()) => Ok(()),
            // The insert may have landed; only a read can tell.
            Err(PortError::Timeout(detail)) => match self.ports.storage.get(&booking.id).await {
                Ok(Some(_)) => Ok(()),
                _ => Err(BookingError::DependencyTimeout {
                    dependency: BOOKING_STORE,
                    detail,
                }),
            },
            Err(PortError::Conflict(detail)) => Err(BookingError::Internal(format!(
                "booking id {} is already taken: {detail}",
                booking.id
            ))),
            Err(other) => Err(dependency(BOOKING_STORE, other)),
        }
    }

    async fn load(&self, booking_id: &str) -> Result<Booking, BookingError> {
        self.ports
            .storage
            .get(booking_id)
            .await
            .map_err(|error| dependency(BOOKING_STORE, error))?
            .ok_or_else(|| BookingError::BookingNotFound(booking_id.to_string()))
    }

    async fn showtime(&self, showtime_id: &str) -> Result<Showtime, BookingError> {
        self.ports
            .seats
            .get_showtime(showtime_id)
            .await
            .map_err(|error| match error {
                PortError::NotFound(_) => BookingError::ShowtimeNotFound(showtime_id.to_string()),
                other => dependency(SEAT_SERVICE, other),
            })
    }

    /// Releases a seat lock as a compensation. A failure is only logged:
    /// the lock frees itself when its TTL runs out.
    async fn release_quietly(&self, booking_id: &str, lock_id: &str) {
        if let Err(error) = self.ports.seats.release_seats(lock_id).await {
            eprintln!(
                "booking {booking_id}: releasing seat lock {lock_id} failed: {error}; it frees itself when it expires"
            );
        }
    }

    /// Publishes an event about the booking as it now stands, for the move
    /// committed as version `moved_as`. The state is already committed and
    /// is the truth, so a failure is logged (the host captures guest
    /// stderr), not returned.
    ///
    /// The event id is the booking id and that version, not a fresh id:
    /// two requests that each believe they made the move (a write that
    /// timed out but landed looks the same as an identical write that
    /// did) publish one event, which consumers de-duplicate by id.
    async fn announce(&self, kind: EventKind, booking: &Booking, moved_as: u64) {
        let event = Event {
            id: format!("{}-v{moved_as}", booking.id),
            kind,
            occurred_at: self.ports.env.now(),
            booking_id: booking.id.clone(),
            user_id: booking.user_id.clone(),
            showtime_id: booking.showtime_id.clone(),
            seats: booking.seats.clone(),
            amount_cents: booking.total_cents,
            currency: booking.currency.clone(),
            status: booking.status,
            reason: booking.failure_reason.clone(),
        };
        if let Err(error) = self.ports.events.publish(&event).await {
            eprintln!(
                "booking {}: publishing {} ({}) failed: {error}",
                booking.id,
                kind.as_str(),
                event.id
            );
        }
    }
}

/// A `(reason, note)` pair as one failure reason, e.g. "cancelled by the
/// customer; payment refunded"; either part may be missing.
fn with_note(reason: &str, note: Option<&str>) -> Option<String> {
    match (reason.is_empty(), note) {
        (true, None) => None,
        (true, Some(note)) => Some(note.to_string()),
        (false, None) => Some(reason.to_string()),
        (false, Some(note)) => Some(format!("{reason}; {note}")),
    }
}

/// After money moved, an error the client would not retry leaves the
/// booking halfway (charged but not confirmed, refunded but still
/// CONFIRMED). The dependency answered something unexpected; as far as
/// the logic can tell that is transient, and the retry repeats only
/// idempotent steps, so the client is told to retry.
fn retry_to_finish(error: BookingError, dependency: &'static str, next_step: &str) -> BookingError {
    if error.retryable() {
        return error;
    }
    BookingError::DependencyUnavailable {
        dependency,
        detail: format!("{error}; {next_step}"),
    }
}

/// Maps a dependency failure that the caller has no specific meaning for.
/// An answer the contract does not foresee there (say, `conflict` from a
/// read) counts as the dependency being unavailable: the operation may be
/// a retry of one that already moved money, and only a client that
/// retries again lets it finish; every step is idempotent, so retrying
/// costs nothing.
fn dependency(name: &'static str, error: PortError) -> BookingError {
    match error {
        PortError::Unavailable(detail) => BookingError::DependencyUnavailable {
            dependency: name,
            detail,
        },
        PortError::Timeout(detail) => BookingError::DependencyTimeout {
            dependency: name,
            detail,
        },
        other => BookingError::DependencyUnavailable {
            dependency: name,
            detail: format!("answered unexpectedly: {other}"),
        },
    }
}

#[cfg(test)]
mod tests;
