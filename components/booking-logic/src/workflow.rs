//! The booking workflow: create (lock seats, store a PENDING booking), pay
//! (charge, confirm the seats, CONFIRMED), cancel, and the sweep that
//! expires unpaid bookings and settles what ended bookings still owe.
//!
//! The logic owns no state: every fact lives behind a port, and every
//! change of a booking is an optimistic-concurrency write
//! (`Storage::update_if_version`) that carries the events of that move in
//! the same atomic write, so the event log is complete without any
//! delivery step here (the host relays it to a broker as its outbox).
//! That write is the commit point; a crash before it changed nothing, a
//! crash after it left a record the sweep finishes from:
//!
//! - **Intent before money.** Before every charge the booking records
//!   `charge_attempted_at`. A crash between the charge and recording its
//!   receipt leaves that mark; once the booking has ended, settling voids
//!   the charge's key at the Payment service (`void_charge`, the booking
//!   id is the key), which answers whether it charged and refuses any
//!   charge still in flight, so the answer is final without any timing
//!   assumption.
//! - **Decisions before effects.** Every move to an ended state (from
//!   PENDING: PAYMENT_FAILED, FAILED, CANCELLED, EXPIRED; from CONFIRMED:
//!   REFUNDED) is committed first, with `settle_after` set. Settling then
//!   releases the seats, finds an unrecorded charge and refunds it, and
//!   clears `settle_after` only once all of that succeeded; any failure
//!   leaves it set with a backoff, and the sweep retries. So an ended
//!   booking never keeps money and never keeps seats, and when two
//!   requests race only the winner of the write compensates.
//! - **Events are part of the write.** An event's id is the booking id and
//!   the version its move was committed as, so a retried write (a timeout
//!   that in fact landed) yields the same event, which consumers
//!   de-duplicate by id. `booking.payment_refunded` is committed with the
//!   write that records the refund (`refunded_at`).
//!
//! Payments use the booking id as idempotency key, so any retry of
//! `process_payment` (after a timeout, an outage, a crash) reaches the
//! same charge and never charges twice. Once money has moved every later
//! failure is reported as retryable, and so is any answer a dependency's
//! contract does not foresee: the retry repeats only idempotent steps.
//!
//! `tests/simulation` runs this workflow against faulty fakes, with the
//! process dying after any port call, under thousands of seeded schedules
//! and checks that after settling nothing is lost (see
//! `tests/simulation/invariants.rs`).

use std::collections::HashSet;

use crate::error::BookingError;
use crate::model::{
    Booking, BookingPage, BookingStatus, ChargeRequest, Event, EventKind, IdempotencyRecord,
    PageRequest, Seat, Showtime, SweepReport,
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

/// Owner of the sweep claims (`Workflow::sweep_if_due`): user ids have no
/// spaces (`validation::id`), so no client's key can take a claim.
pub const SWEEP_CLAIMS_USER: &str = "sweep claims";
/// Most bookings a request's sweep expires, and most it settles: it runs
/// after the request's answer, so it stays short.
pub const REQUEST_SWEEP_LIMIT: u32 = 20;

/// Failure reasons stored on bookings, for people.
const REASON_EXPIRED: &str = "seat lock expired before payment";
const REASON_LOCK_LOST: &str = "seat lock expired before confirmation";
const REASON_CANCELLED: &str = "cancelled by the customer";
const REASON_OVER_HOLD_LIMIT: &str =
    "withdrawn: a concurrent booking of the same user reached the hold limit first";

/// Most pages of a user's recent bookings read to count what they hold;
/// more bookings created within one lock duration count as over the limit.
const HOLD_SCAN_PAGES: usize = 10;

/// First wait after a failed settle attempt; doubles per failure up to
/// `SETTLE_BACKOFF_MAX_MS`.
const SETTLE_BACKOFF_MS: u64 = 1_000;
const SETTLE_BACKOFF_MAX_MS: u64 = 300_000;

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

/// Where marking a charge attempt on the booking left it.
enum Attempt {
    /// PENDING and marked (or with a charge already recorded): charge.
    Ready(Booking),
    /// A concurrent attempt confirmed it meanwhile: nothing to charge.
    Confirmed(Booking),
}

/// How often marking an attempt is retried when concurrent attempts keep
/// changing the booking.
const ATTEMPT_MARK_TRIES: usize = 3;

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
        let holds = self.live_holds(user_id).await?;
        self.check_hold_limits(&holds, showtime_id, seat_numbers.len())?;

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
            charge_attempted_at: None,
            refunded_at: None,
            settle_after: None,
            settle_attempts: 0,
        };
        if let Err(error) = self.insert(&booking).await {
            // Compensate: without a stored booking nobody would ever pay
            // for or release these seats before the lock runs out.
            self.release_quietly(&booking.id, &lock.id).await;
            return Err(error);
        }
        self.recheck_hold_limits(&booking).await?;
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
            BookingStatus::Confirmed => return Ok(PaymentOutcome::confirmed(booking, true)),
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

        let booking = match self.record_attempt(booking).await? {
            Attempt::Ready(booking) => booking,
            Attempt::Confirmed(booking) => return Ok(PaymentOutcome::confirmed(booking, true)),
        };
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
            .map_err(retry_to_finish)
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
            Charged::Confirmed(booking) => return Ok(PaymentOutcome::confirmed(booking, true)),
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
                            Ok(PaymentOutcome::confirmed(current, true))
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

    /// Extends a PENDING booking's seat lock to `SEAT_LOCK_DURATION` from
    /// now, never past `LOCK_MAX_HOLD_SECONDS` after its creation. The
    /// Cinema extends the lock first and the booking stores the end the
    /// Cinema reports, with `booking.lock_extended`: if the write is lost,
    /// the booking still expires at its earlier end and releases the
    /// seats then, so no seat is held past the booking's own lock.
    pub async fn extend_lock(&self, booking_id: &str) -> Result<Booking, BookingError> {
        validation::id("bookingId", booking_id)?;
        let booking = self.expire_if_lapsed(self.load(booking_id).await?).await?;
        match booking.status {
            BookingStatus::Pending => {}
            BookingStatus::Expired => return Err(BookingError::BookingExpired(booking.id)),
            other => {
                return Err(BookingError::InvalidState(format!(
                    "booking {booking_id} is {}; only a PENDING booking's lock can be extended",
                    other.as_str()
                )));
            }
        }
        let now = self.ports.env.now();
        let cap = booking
            .created_at
            .saturating_add(u64::from(self.settings.lock_max_hold_seconds) * 1_000);
        let wanted = now
            .saturating_add(u64::from(self.settings.seat_lock_seconds) * 1_000)
            .min(cap);
        // Whole seconds, rounded down, so the Cinema's end never passes the cap.
        let ttl_seconds = u32::try_from(wanted.saturating_sub(now) / 1_000).unwrap_or(u32::MAX);
        if ttl_seconds == 0
            || now.saturating_add(u64::from(ttl_seconds) * 1_000) <= booking.lock_expires_at
        {
            return Err(BookingError::LockExtensionLimit(format!(
                "booking {booking_id} holds its seats as long as it may: a hold lasts at most {} seconds from booking",
                self.settings.lock_max_hold_seconds
            )));
        }
        let expires_at = self
            .ports
            .seats
            .extend_lock(&booking.lock_id, ttl_seconds)
            .await
            .map_err(|error| match error {
                PortError::Conflict(_) | PortError::NotFound(_) => {
                    BookingError::BookingExpired(booking.id.clone())
                }
                other => dependency(SEAT_SERVICE, other),
            })?;
        let mut next = booking.clone();
        next.lock_expires_at = expires_at.max(booking.lock_expires_at);
        next.updated_at = now;
        self.store(next, booking.version, &[EventKind::BookingLockExtended])
            .await
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
            // The decision is committed first; settling (inline, and by
            // the sweep until it succeeds) refunds and frees the seats.
            BookingStatus::Confirmed => {
                self.transition(booking, BookingStatus::Refunded, REASON_CANCELLED)
                    .await
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

    /// A booking as a client should see it: a PENDING booking read past
    /// its seat lock expires now (seats released, `booking.expired`), as
    /// the sweep would have made it, so a host without a timer (Spin)
    /// never shows a hold the Cinema has already let go.
    pub async fn expire_if_lapsed(&self, booking: Booking) -> Result<Booking, BookingError> {
        if booking.status != BookingStatus::Pending
            || self.ports.env.now() < booking.lock_expires_at
        {
            return Ok(booking);
        }
        let id = booking.id.clone();
        match self
            .transition(booking, BookingStatus::Expired, REASON_EXPIRED)
            .await
        {
            Ok(expired) => Ok(expired),
            // A payment or a sweeper moved it first: show what they left.
            Err(BookingError::ConcurrentModification(_) | BookingError::InvalidState(_)) => {
                self.load(&id).await
            }
            Err(other) => Err(other),
        }
    }

    /// The bounded sweep a request runs after its answer when
    /// `SWEEP_ON_REQUESTS_SECONDS` is set (hosts without a timer; which
    /// requests ask is the component's choice): only the first request
    /// of each interval that asks runs it, the one whose claim on the
    /// interval the store accepts. The claim is an idempotency record of
    /// [`SWEEP_CLAIMS_USER`]: the store lets exactly one insert of a key
    /// through, across instances and hosts. `None` when off or claimed.
    pub async fn sweep_if_due(&self) -> Result<Option<SweepReport>, BookingError> {
        let Some(interval_seconds) = self.settings.sweep_on_requests_seconds else {
            return Ok(None);
        };
        let now = self.ports.env.now();
        let interval_ms = u64::from(interval_seconds) * 1_000;
        let key = format!("sweep/{interval_seconds}s/{}", now / interval_ms);
        // Most requests find the interval claimed: a read, not a write.
        let claimed = self
            .ports
            .storage
            .get_idempotency_record(SWEEP_CLAIMS_USER, &key)
            .await
            .map_err(|error| dependency(BOOKING_STORE, error))?;
        if claimed.is_some() {
            return Ok(None);
        }
        let claim = IdempotencyRecord {
            user_id: SWEEP_CLAIMS_USER.to_owned(),
            key,
            fingerprint: String::new(),
            response: Some(String::new()),
            lease_expires_at: now,
            // The purge forgets claims of past intervals.
            expires_at: now + 2 * interval_ms,
            version: 0,
        };
        match self.ports.storage.insert_idempotency_record(&claim).await {
            Ok(()) => self.sweep_expired(REQUEST_SWEEP_LIMIT).await.map(Some),
            Err(PortError::Conflict(_)) => Ok(None),
            Err(error) => Err(dependency(BOOKING_STORE, error)),
        }
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

    /// The user's PENDING bookings whose seat lock still runs, newest
    /// first. Only bookings created within the longest hold (extensions
    /// included) can hold a lock, so the scan stops at the first older one.
    async fn live_holds(&self, user_id: &str) -> Result<Vec<Booking>, BookingError> {
        let now = self.ports.env.now();
        let lock_ms = u64::from(self.settings.lock_max_hold_seconds) * 1_000;
        let mut holds = Vec::new();
        let mut cursor = None;
        for _ in 0..HOLD_SCAN_PAGES {
            let page = self
                .ports
                .storage
                .list_by_user(
                    user_id,
                    &PageRequest {
                        cursor,
                        limit: validation::MAX_PAGE_SIZE,
                    },
                )
                .await
                .map_err(|error| dependency(BOOKING_STORE, error))?;
            let mut older_than_a_lock = false;
            for booking in page.items {
                older_than_a_lock |= booking.created_at.saturating_add(lock_ms) <= now;
                if booking.status == BookingStatus::Pending && booking.lock_expires_at > now {
                    holds.push(booking);
                }
            }
            match page.next_cursor {
                Some(next) if !older_than_a_lock => cursor = Some(next),
                _ => return Ok(holds),
            }
        }
        Err(BookingError::HoldLimitExceeded(format!(
            "too many bookings were created for this user in the last {} seconds; try again later",
            self.settings.lock_max_hold_seconds
        )))
    }

    /// Refuses a booking of `seats` more seats in `showtime_id` when the
    /// user's other live `holds` already reach a per-user limit.
    fn check_hold_limits(
        &self,
        holds: &[Booking],
        showtime_id: &str,
        seats: usize,
    ) -> Result<(), BookingError> {
        let max_pending = self.settings.max_pending_bookings_per_user;
        if holds.len() >= max_pending as usize {
            return Err(BookingError::HoldLimitExceeded(format!(
                "this user already has {} PENDING bookings holding seats (at most {max_pending}); pay or cancel one first",
                holds.len()
            )));
        }
        let max_seats = self.settings.max_seats_per_user_per_showtime;
        let held: usize = holds
            .iter()
            .filter(|booking| booking.showtime_id == showtime_id)
            .map(|booking| booking.seats.len())
            .sum();
        if held + seats > max_seats as usize {
            return Err(BookingError::HoldLimitExceeded(format!(
                "this user's PENDING bookings already hold {held} seats of showtime {showtime_id}; {seats} more would exceed {max_seats}"
            )));
        }
        Ok(())
    }

    /// Counts again once `booking` is stored: two creates of one user
    /// that raced past the first check both see each other now, and each
    /// that finds the limit exceeded withdraws its own booking. So the
    /// user never keeps more than the limits allow (under a race both
    /// may withdraw). If the count cannot be read the booking stands.
    async fn recheck_hold_limits(&self, booking: &Booking) -> Result<(), BookingError> {
        let others: Vec<Booking> = match self.live_holds(&booking.user_id).await {
            Ok(holds) => holds
                .into_iter()
                .filter(|hold| hold.id != booking.id)
                .collect(),
            Err(error) => {
                eprintln!(
                    "booking {}: recounting the user's holds failed: {error}; it stands",
                    booking.id
                );
                return Ok(());
            }
        };
        let Err(over) = self.check_hold_limits(&others, &booking.showtime_id, booking.seats.len())
        else {
            return Ok(());
        };
        if let Err(error) = self
            .transition(
                booking.clone(),
                BookingStatus::Cancelled,
                REASON_OVER_HOLD_LIMIT,
            )
            .await
        {
            eprintln!(
                "booking {}: withdrawing it over the hold limit failed: {error}; its lock expires",
                booking.id
            );
        }
        Err(over)
    }

    /// A showtime (its seat counts included), without the seat map: the
    /// map is a second Cinema call, made only when it is asked for.
    pub async fn find_showtime(&self, showtime_id: &str) -> Result<Showtime, BookingError> {
        validation::id("showtimeId", showtime_id)?;
        self.showtime(showtime_id).await
    }

    /// The current status of every seat of a showtime.
    pub async fn seat_map(&self, showtime_id: &str) -> Result<Vec<Seat>, BookingError> {
        validation::id("showtimeId", showtime_id)?;
        self.ports
            .seats
            .seat_map(showtime_id)
            .await
            .map_err(|error| match error {
                PortError::NotFound(_) => BookingError::ShowtimeNotFound(showtime_id.to_string()),
                other => dependency(SEAT_SERVICE, other),
            })
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

    /// Expires up to `limit` PENDING bookings whose seat lock has run out,
    /// then settles up to `limit` bookings that still owe something.
    /// Several sweepers (or a sweeper and a payment) may race: the
    /// versioned write lets exactly one of them move a booking; the others
    /// count it as skipped and touch nothing.
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
                Ok(expired) => {
                    report.expired = report.expired.saturating_add(1);
                    count_settlement(&mut report, &expired);
                }
                // Someone else moved it first (it may no longer be PENDING
                // when we get to it): theirs to compensate, not ours.
                Err(BookingError::ConcurrentModification(_) | BookingError::InvalidState(_)) => {
                    report.skipped = report.skipped.saturating_add(1);
                }
                // The store is failing: stop; the next sweep resumes.
                Err(other) => return Err(other),
            }
        }
        let owing = self
            .ports
            .storage
            .list_unsettled(now, limit)
            .await
            .map_err(|error| dependency(BOOKING_STORE, error))?;
        for booking in owing {
            match self.settle(booking).await {
                Ok(settled) => count_settlement(&mut report, &settled),
                Err(BookingError::ConcurrentModification(_)) => {
                    report.skipped = report.skipped.saturating_add(1);
                }
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
    /// the state machine and commits it with its event, only if nobody
    /// changed the booking since it was read. A move to an ended state is
    /// committed owing its settlement (`settle_after` = now), which is
    /// then attempted at once. `reason` is the failure reason recorded for
    /// people (empty for none).
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
        let now = self.ports.env.now();
        let mut next = booking.clone();
        next.status = to;
        next.failure_reason = (!reason.is_empty()).then(|| reason.to_string());
        next.updated_at = now;
        let ended = to.is_ended();
        next.settle_after = ended.then_some(now);
        next.settle_attempts = 0;
        let committed = self.store(next, booking.version, &[kind]).await?;
        if !ended {
            return Ok(committed);
        }
        // Committed: the move stands even if settling fails now (the
        // sweep retries it), so that failure is not the caller's error.
        let fallback = committed.clone();
        match self.settle(committed).await {
            Ok(settled) => Ok(settled),
            Err(error) => {
                eprintln!(
                    "booking {}: settling after {} failed: {error}; the sweep retries",
                    fallback.id,
                    to.as_str()
                );
                Ok(fallback)
            }
        }
    }

    /// Does what an ended booking still owes and records how far it got:
    /// its seats released (a CONFIRMED booking's seats have no TTL), the key
    /// of an unrecorded charge attempt voided (and its charge, if any,
    /// recorded), every known charge refunded.
    /// Every step is idempotent, so a settle that failed halfway is simply
    /// repeated. `settle_after` is cleared only once nothing is owed; a
    /// failure reschedules it with backoff. Bookings that have not ended
    /// owe nothing yet and are returned unchanged.
    async fn settle(&self, booking: Booking) -> Result<Booking, BookingError> {
        if !booking.status.is_ended() || booking.settle_after.is_none() {
            return Ok(booking);
        }
        let now = self.ports.env.now();
        let mut next = booking.clone();
        let mut events = Vec::new();
        let mut failures = Vec::new();

        if let Err(error) = self.ports.seats.release_seats(&booking.lock_id).await {
            failures.push(format!("releasing seat lock {}: {error}", booking.lock_id));
        }
        // An attempt whose charge was never recorded: close its key and
        // learn whether it charged. Ended bookings take no more charges.
        if next.payment_transaction_id.is_none() && next.charge_attempted_at.is_some() {
            match self.ports.payments.void_charge(&booking.id).await {
                Ok(Some(receipt)) => next.payment_transaction_id = Some(receipt.transaction_id),
                Ok(None) => {}
                Err(error) => failures.push(format!("voiding the charge key: {error}")),
            }
        }
        if let (Some(transaction_id), None) = (&next.payment_transaction_id, next.refunded_at) {
            match self.ports.payments.refund(transaction_id).await {
                Ok(_) => {
                    next.refunded_at = Some(now);
                    events.push(EventKind::PaymentRefunded);
                }
                Err(error) => failures.push(format!("refunding {transaction_id}: {error}")),
            }
        }

        if failures.is_empty() {
            next.settle_after = None;
            next.settle_attempts = 0;
        } else {
            eprintln!(
                "booking {}: settling incomplete ({}); retried by the sweep",
                booking.id,
                failures.join("; ")
            );
            let backoff = SETTLE_BACKOFF_MS
                .saturating_mul(1u64 << booking.settle_attempts.min(20))
                .min(SETTLE_BACKOFF_MAX_MS);
            next.settle_after = Some(now.saturating_add(backoff));
            next.settle_attempts = booking.settle_attempts.saturating_add(1);
        }
        next.updated_at = now;
        self.store(next, booking.version, &events).await
    }

    /// Records that a charge is about to be attempted, before it is sent:
    /// if the process dies between the charge and recording its receipt,
    /// this mark tells the sweep to look the charge up. Not needed once a
    /// charge is recorded (a retry reaches that same charge). Two attempts
    /// racing mark the same thing, so losing that race to another attempt
    /// just means marking again on top of it.
    async fn record_attempt(&self, mut booking: Booking) -> Result<Attempt, BookingError> {
        for _ in 0..ATTEMPT_MARK_TRIES {
            match booking.status {
                BookingStatus::Pending if booking.payment_transaction_id.is_some() => {
                    return Ok(Attempt::Ready(booking));
                }
                BookingStatus::Pending => {}
                BookingStatus::Confirmed => return Ok(Attempt::Confirmed(booking)),
                other => {
                    return Err(BookingError::InvalidState(format!(
                        "booking {} is {}; only a PENDING booking can be paid",
                        booking.id,
                        other.as_str()
                    )));
                }
            }
            let mut next = booking.clone();
            next.charge_attempted_at = Some(self.ports.env.now());
            next.updated_at = self.ports.env.now();
            match self.store(next, booking.version, &[]).await {
                Ok(marked) => return Ok(Attempt::Ready(marked)),
                Err(BookingError::ConcurrentModification(_)) => {
                    booking = self.load(&booking.id).await?;
                }
                Err(other) => return Err(other),
            }
        }
        Err(BookingError::ConcurrentModification(format!(
            "booking {} keeps changing; retry processPayment",
            booking.id
        )))
    }

    /// Writes the charge onto the PENDING booking before the seats are
    /// confirmed, so that a failed confirmation or a crash leaves a trace
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
        match self.store(next, booking.version, &[]).await {
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
            // receipt). Ended with our charge on it: it is being settled.
            (BookingStatus::Pending, false) | (_, true) => {
                Err(BookingError::ConcurrentModification(message))
            }
            // Ended (expired, cancelled) without knowing about this
            // charge: record it on the ended booking so that settling
            // refunds it, now and until it succeeds.
            (_, false) => {
                let mut next = current.clone();
                next.payment_transaction_id = Some(transaction_id.to_string());
                next.settle_after = Some(self.ports.env.now());
                next.updated_at = self.ports.env.now();
                let adopted = self.store(next, current.version, &[]).await?;
                self.settle(adopted).await?;
                Err(BookingError::ConcurrentModification(format!(
                    "{message}; the payment {transaction_id} is being refunded"
                )))
            }
        }
    }

    /// `update_if_version` of `next` with the events of `kinds`, with the
    /// error mapping every write shares.
    async fn store(
        &self,
        mut next: Booking,
        expected_version: u64,
        kinds: &[EventKind],
    ) -> Result<Booking, BookingError> {
        let version = expected_version.saturating_add(1);
        let events: Vec<Event> = kinds
            .iter()
            .map(|kind| self.event(*kind, &next, version))
            .collect();
        match self
            .ports
            .storage
            .update_if_version(&next, expected_version, &events)
            .await
        {
            Ok(version) => {
                next.version = version;
                Ok(next)
            }
            Err(PortError::Conflict(_)) => Err(self.lost_race(&next.id).await),
            Err(PortError::NotFound(_)) => Err(BookingError::BookingNotFound(next.id)),
            // The write may have landed. If the store now holds exactly
            // what we wrote, one version on, it is ours (events included:
            // they were one write).
            Err(PortError::Timeout(detail)) => {
                let landed = Booking {
                    version,
                    ..next.clone()
                };
                match self.ports.storage.get(&next.id).await {
                    Ok(Some(current)) if current == landed => Ok(current),
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

    /// Inserts a new booking with its `booking.created` event.
    async fn insert(&self, booking: &Booking) -> Result<(), BookingError> {
        let created = [self.event(EventKind::BookingCreated, booking, 1)];
        match self.ports.storage.insert(booking, &created).await {
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

    /// The event announcing `booking` as committed at `version`. Its id
    /// is the booking id and that version, not a fresh id: a write that
    /// timed out but landed and its retry carry one event, which consumers
    /// de-duplicate by id.
    fn event(&self, kind: EventKind, booking: &Booking, version: u64) -> Event {
        let id = format!("{}-v{version}", booking.id);
        Event::announcing(booking, kind, id, self.ports.env.now())
    }
}

/// After the charge, an error the client would not retry leaves the
/// booking halfway (charged but not confirmed). The store answered
/// something unexpected; as far as the logic can tell that is transient,
/// and the retry repeats only idempotent steps, so the client is told to
/// retry.
fn retry_to_finish(error: BookingError) -> BookingError {
    if error.retryable() {
        return error;
    }
    BookingError::PaymentUnfinished(format!("{error:?}"))
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

/// Counts a booking the sweep just settled (or tried to).
fn count_settlement(report: &mut SweepReport, booking: &Booking) {
    if booking.settle_after.is_none() {
        report.settled = report.settled.saturating_add(1);
    } else {
        report.unsettled = report.unsettled.saturating_add(1);
    }
}

#[cfg(test)]
mod tests;
