//! In-memory fakes of every port, with the semantics `wit/booking.wit`
//! promises (seat locks that expire against a controllable clock,
//! versioned storage with real conflicts, payments idempotent by key,
//! an ordered event log), plus knobs to inject faults and to interleave
//! concurrent operations deterministically. Unit tests use them, and so
//! can other crates (feature `testing`) and the deterministic simulation.
//!
//! Nothing here blocks or sleeps: time moves only when a test moves it.

pub mod contract;
pub mod seed_documents;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use async_trait::async_trait;

use crate::model::{
    Booking, BookingPage, BookingStatus, Caller, ChargeRequest, Event, EventKind,
    IdempotencyRecord, PageRequest, PricedSeat, Receipt, RefundReceipt, Seat, SeatLock, SeatStatus,
    Showtime, Timestamp, User, paging,
};
use crate::ports::{
    Environment, Events, Payments, PortError, PortResult, Ports, Seats, Storage, Users,
};

/// Locks a mutex even if a panicking test poisoned it: the fakes' state
/// stays usable for the assertions that follow.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every port operation, to aim faults at and count calls of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    GetShowtime,
    SeatMap,
    LockSeats,
    ConfirmSeats,
    ReleaseSeats,
    GetUser,
    Authenticate,
    Charge,
    Refund,
    VoidCharge,
    Insert,
    Get,
    UpdateIfVersion,
    ListByUser,
    ListExpiredPending,
    ListUnsettled,
    InsertIdempotencyRecord,
    GetIdempotencyRecord,
    UpdateIdempotencyRecord,
    PurgeIdempotencyRecords,
    History,
}

/// How an injected failure behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Fail before doing anything (the WIT's "nothing changed").
    Fail(PortError),
    /// Do the call, then report this error anyway, e.g. a charge that went
    /// through but whose answer timed out.
    FailAfterEffect(PortError),
    /// The process dies during the call, after it took effect or before:
    /// no answer ever comes (the call stays pending) and
    /// `Knobs::take_crashed` tells the driver to drop the request.
    Crash { after_effect: bool },
}

/// Decides the fate of a port call that has no queued fault: `None` lets
/// it run. The simulation plugs in a seeded schedule here; it may also
/// move the clock, which then happens before the call takes effect.
pub type Chaos = Box<dyn FnMut(Op) -> Option<Fault> + Send>;

#[derive(Default)]
struct KnobState {
    faults: HashMap<Op, VecDeque<Fault>>,
    /// Set by a `Fault::Crash` until `take_crashed` reads it.
    crashed: bool,
    calls: HashMap<Op, usize>,
    interleave: bool,
    chaos: Option<Chaos>,
}

/// Fault injection, call counting and interleaving, shared by all fakes.
#[derive(Default)]
pub struct Knobs {
    state: Mutex<KnobState>,
}

impl Knobs {
    /// Makes the next call of `op` fail with `fault`; queued faults are
    /// used in order, one per call.
    pub fn fail_next(&self, op: Op, fault: Fault) {
        lock(&self.state)
            .faults
            .entry(op)
            .or_default()
            .push_back(fault);
    }

    /// How many times `op` was called (including failed calls).
    pub fn calls(&self, op: Op) -> usize {
        lock(&self.state).calls.get(&op).copied().unwrap_or(0)
    }

    /// When on, every port call first yields once to the executor, so
    /// operations joined with `futures::future::join` interleave call by call in
    /// a fixed order instead of each running to completion.
    pub fn set_interleaving(&self, on: bool) {
        lock(&self.state).interleave = on;
    }

    /// Whether a call has crashed "the process" since the last look: the
    /// request in flight must then be dropped where it stands.
    pub fn take_crashed(&self) -> bool {
        std::mem::take(&mut lock(&self.state).crashed)
    }

    /// Consults `chaos` for every call without a queued fault, until it is
    /// replaced or removed (`None`).
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        lock(&self.state).chaos = chaos;
    }

    /// Runs one port call: yields if interleaving, counts it, applies the
    /// next queued fault for `op` or else what the chaos decides,
    /// otherwise runs `body`.
    async fn run<T>(&self, op: Op, body: impl FnOnce() -> PortResult<T>) -> PortResult<T> {
        let interleave = lock(&self.state).interleave;
        if interleave {
            YieldOnce(false).await;
        }
        let fault = {
            let mut state = lock(&self.state);
            *state.calls.entry(op).or_default() += 1;
            match state.faults.get_mut(&op).and_then(VecDeque::pop_front) {
                Some(fault) => Some(fault),
                None => state.chaos.as_mut().and_then(|chaos| chaos(op)),
            }
        };
        match fault {
            None => body(),
            Some(Fault::Fail(error)) => Err(error),
            Some(Fault::FailAfterEffect(error)) => {
                // The effect happens; its answer is lost.
                let _ = body();
                Err(error)
            }
            Some(Fault::Crash { after_effect }) => {
                if after_effect {
                    let _ = body();
                }
                lock(&self.state).crashed = true;
                std::future::pending().await
            }
        }
    }
}

/// Returns `Pending` once (waking itself), then `Ready`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

struct EnvState {
    now: Timestamp,
    next_id: u64,
    scripted_ids: VecDeque<String>,
}

/// A clock that moves only when told to and predictable ids.
pub struct FakeEnvironment {
    state: Mutex<EnvState>,
}

impl FakeEnvironment {
    pub fn new(now: Timestamp) -> FakeEnvironment {
        FakeEnvironment {
            state: Mutex::new(EnvState {
                now,
                next_id: 1,
                scripted_ids: VecDeque::new(),
            }),
        }
    }

    pub fn set_now(&self, now: Timestamp) {
        lock(&self.state).now = now;
    }

    pub fn advance_ms(&self, millis: u64) {
        let mut state = lock(&self.state);
        state.now = state.now.saturating_add(millis);
    }

    pub fn advance_secs(&self, seconds: u64) {
        self.advance_ms(seconds.saturating_mul(1000));
    }

    /// The next `new_id` calls return these, in order; after them ids are
    /// `id-1`, `id-2`, ...
    pub fn script_ids<I, S>(&self, ids: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        lock(&self.state)
            .scripted_ids
            .extend(ids.into_iter().map(Into::into));
    }
}

impl Environment for FakeEnvironment {
    fn now(&self) -> Timestamp {
        lock(&self.state).now
    }

    fn new_id(&self) -> String {
        let mut state = lock(&self.state);
        if let Some(id) = state.scripted_ids.pop_front() {
            return id;
        }
        let id = format!("id-{}", state.next_id);
        state.next_id += 1;
        id
    }
}

/// The life of a seat lock in the fake seat service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    Held,
    Confirmed,
    Released,
}

/// A lock as the seat service keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRecord {
    pub lock: SeatLock,
    /// Who asked for it (the booking id).
    pub holder: String,
    pub state: LockState,
}

struct FakeShowtime {
    showtime: Showtime,
    /// Seats as configured; a configured `Booked` seat stays booked.
    seats: Vec<Seat>,
}

#[derive(Default)]
struct SeatsState {
    showtimes: BTreeMap<String, FakeShowtime>,
    locks: BTreeMap<String, LockRecord>,
    next_lock: u64,
}

impl SeatsState {
    fn status(&self, showtime_id: &str, seat: &Seat, now: Timestamp) -> SeatStatus {
        if seat.status == SeatStatus::Booked {
            return SeatStatus::Booked;
        }
        let mut status = SeatStatus::Available;
        for record in self.locks.values() {
            let covers = record.lock.showtime_id == showtime_id
                && record
                    .lock
                    .seats
                    .iter()
                    .any(|held| held.number == seat.number);
            if !covers {
                continue;
            }
            match record.state {
                LockState::Confirmed => return SeatStatus::Booked,
                LockState::Held if now < record.lock.expires_at => status = SeatStatus::Locked,
                LockState::Held | LockState::Released => {}
            }
        }
        status
    }

    fn seat_map(&self, showtime_id: &str, now: Timestamp) -> Option<Vec<Seat>> {
        let entry = self.showtimes.get(showtime_id)?;
        Some(
            entry
                .seats
                .iter()
                .map(|seat| Seat {
                    status: self.status(showtime_id, seat, now),
                    ..seat.clone()
                })
                .collect(),
        )
    }
}

/// The Cinema service: showtimes, seat maps and seat locks with a TTL.
/// A lock is expired from the instant `now >= expires_at`.
pub struct FakeSeats {
    env: Arc<dyn Environment>,
    knobs: Arc<Knobs>,
    state: Mutex<SeatsState>,
}

impl FakeSeats {
    pub fn new(env: Arc<dyn Environment>, knobs: Arc<Knobs>) -> FakeSeats {
        FakeSeats {
            env,
            knobs,
            state: Mutex::default(),
        }
    }

    /// Adds (or replaces) a showtime; its seat counts are computed from
    /// the seats.
    pub fn add_showtime(&self, showtime: Showtime, seats: Vec<Seat>) {
        lock(&self.state)
            .showtimes
            .insert(showtime.id.clone(), FakeShowtime { showtime, seats });
    }

    /// The state of a lock, if the service ever issued it.
    pub fn lock_state(&self, lock_id: &str) -> Option<LockState> {
        lock(&self.state)
            .locks
            .get(lock_id)
            .map(|record| record.state)
    }

    /// Every lock ever issued, by id.
    pub fn locks(&self) -> Vec<LockRecord> {
        lock(&self.state).locks.values().cloned().collect()
    }

    /// Who asked for a lock (the booking id).
    pub fn lock_holder(&self, lock_id: &str) -> Option<String> {
        lock(&self.state)
            .locks
            .get(lock_id)
            .map(|record| record.holder.clone())
    }

    /// The current status of one seat.
    pub fn seat_status(&self, showtime_id: &str, number: &str) -> Option<SeatStatus> {
        let now = self.env.now();
        let state = lock(&self.state);
        let entry = state.showtimes.get(showtime_id)?;
        let seat = entry.seats.iter().find(|seat| seat.number == number)?;
        Some(state.status(showtime_id, seat, now))
    }
}

#[async_trait]
impl Seats for FakeSeats {
    async fn get_showtime(&self, showtime_id: &str) -> PortResult<Showtime> {
        self.knobs
            .run(Op::GetShowtime, || {
                let now = self.env.now();
                let state = lock(&self.state);
                let entry = state
                    .showtimes
                    .get(showtime_id)
                    .ok_or_else(|| PortError::NotFound(format!("showtime {showtime_id}")))?;
                let seats = state.seat_map(showtime_id, now).unwrap_or_default();
                let available = seats
                    .iter()
                    .filter(|seat| seat.status == SeatStatus::Available)
                    .count();
                Ok(Showtime {
                    total_seats: u32::try_from(seats.len()).unwrap_or(u32::MAX),
                    available_seats: u32::try_from(available).unwrap_or(u32::MAX),
                    ..entry.showtime.clone()
                })
            })
            .await
    }

    async fn seat_map(&self, showtime_id: &str) -> PortResult<Vec<Seat>> {
        self.knobs
            .run(Op::SeatMap, || {
                lock(&self.state)
                    .seat_map(showtime_id, self.env.now())
                    .ok_or_else(|| PortError::NotFound(format!("showtime {showtime_id}")))
            })
            .await
    }

    async fn lock_seats(
        &self,
        showtime_id: &str,
        seats: &[String],
        holder: &str,
        ttl_seconds: u32,
    ) -> PortResult<SeatLock> {
        self.knobs
            .run(Op::LockSeats, || {
                let now = self.env.now();
                let mut state = lock(&self.state);
                let map = state
                    .seat_map(showtime_id, now)
                    .ok_or_else(|| PortError::NotFound(format!("showtime {showtime_id}")))?;
                let distinct: HashSet<&String> = seats.iter().collect();
                if seats.is_empty() || distinct.len() != seats.len() {
                    return Err(PortError::Rejected(
                        "seats must be a non-empty list without repeats".into(),
                    ));
                }
                let mut priced = Vec::with_capacity(seats.len());
                for number in seats {
                    let seat = map
                        .iter()
                        .find(|seat| &seat.number == number)
                        .ok_or_else(|| PortError::Rejected(format!("no seat {number}")))?;
                    if seat.status != SeatStatus::Available {
                        return Err(PortError::Conflict(format!("seat {number} is taken")));
                    }
                    priced.push(PricedSeat {
                        number: number.clone(),
                        price_cents: seat.price_cents,
                    });
                }
                state.next_lock += 1;
                let lock_record = SeatLock {
                    id: format!("lock-{}", state.next_lock),
                    showtime_id: showtime_id.to_string(),
                    seats: priced,
                    expires_at: now.saturating_add(u64::from(ttl_seconds) * 1000),
                };
                state.locks.insert(
                    lock_record.id.clone(),
                    LockRecord {
                        lock: lock_record.clone(),
                        holder: holder.to_string(),
                        state: LockState::Held,
                    },
                );
                Ok(lock_record)
            })
            .await
    }

    async fn confirm_seats(&self, lock_id: &str) -> PortResult<()> {
        self.knobs
            .run(Op::ConfirmSeats, || {
                let now = self.env.now();
                let mut state = lock(&self.state);
                let record = state
                    .locks
                    .get_mut(lock_id)
                    .ok_or_else(|| PortError::NotFound(format!("lock {lock_id}")))?;
                match record.state {
                    LockState::Confirmed => Ok(()),
                    LockState::Released => {
                        Err(PortError::Conflict(format!("lock {lock_id} was released")))
                    }
                    LockState::Held if now >= record.lock.expires_at => {
                        Err(PortError::Conflict(format!("lock {lock_id} expired")))
                    }
                    LockState::Held => {
                        record.state = LockState::Confirmed;
                        Ok(())
                    }
                }
            })
            .await
    }

    async fn release_seats(&self, lock_id: &str) -> PortResult<()> {
        self.knobs
            .run(Op::ReleaseSeats, || {
                if let Some(record) = lock(&self.state).locks.get_mut(lock_id) {
                    record.state = LockState::Released;
                }
                Ok(())
            })
            .await
    }
}

#[derive(Default)]
struct UsersState {
    users: HashMap<String, User>,
    /// Bearer tokens issued, and whom each stands for until when.
    tokens: HashMap<String, Caller>,
    next_token: u64,
}

/// The User service: users, and bearer tokens that expire against the
/// shared clock (invalid from the instant `now >= expires_at`).
pub struct FakeUsers {
    env: Arc<dyn Environment>,
    knobs: Arc<Knobs>,
    state: Mutex<UsersState>,
}

impl FakeUsers {
    pub fn new(env: Arc<dyn Environment>, knobs: Arc<Knobs>) -> FakeUsers {
        FakeUsers {
            env,
            knobs,
            state: Mutex::default(),
        }
    }

    pub fn add_user(&self, id: &str, active: bool) {
        lock(&self.state).users.insert(
            id.to_string(),
            User {
                id: id.to_string(),
                name: format!("User {id}"),
                email: format!("{id}@example.com"),
                active,
            },
        );
    }

    /// A new token standing for `user_id` with `roles` until `expires_at`.
    /// Like the real service's tokens it does not reveal whose it is.
    pub fn issue_token(&self, user_id: &str, roles: &[&str], expires_at: Timestamp) -> String {
        let mut state = lock(&self.state);
        state.next_token += 1;
        let token = format!("fake-token-{}", state.next_token);
        state.tokens.insert(
            token.clone(),
            Caller {
                user_id: user_id.to_string(),
                roles: roles.iter().map(|role| role.to_string()).collect(),
                expires_at,
            },
        );
        token
    }
}

#[async_trait]
impl Users for FakeUsers {
    async fn get_user(&self, user_id: &str) -> PortResult<User> {
        self.knobs
            .run(Op::GetUser, || {
                lock(&self.state)
                    .users
                    .get(user_id)
                    .cloned()
                    .ok_or_else(|| PortError::NotFound(format!("user {user_id}")))
            })
            .await
    }

    async fn authenticate(&self, token: &str) -> PortResult<Caller> {
        self.knobs
            .run(Op::Authenticate, || {
                let now = self.env.now();
                match lock(&self.state).tokens.get(token) {
                    Some(caller) if now < caller.expires_at => Ok(caller.clone()),
                    Some(_) => Err(PortError::Rejected("token expired".into())),
                    None => Err(PortError::Rejected("unknown token".into())),
                }
            })
            .await
    }
}

#[derive(Default)]
struct PaymentsState {
    /// By idempotency key: the request that created the charge and its
    /// receipt.
    charges: BTreeMap<String, (ChargeRequest, Receipt)>,
    refunds: BTreeMap<String, RefundReceipt>,
    declined_details: HashSet<String>,
    /// Keys closed by `void_charge`: no new charge with them.
    voided: HashSet<String>,
    next: u64,
}

/// The Payment service: one charge per idempotency key (a retry gets the
/// same receipt; reusing a key for another amount is a conflict; a voided
/// key charges no more), one refund per transaction.
pub struct FakePayments {
    env: Arc<dyn Environment>,
    knobs: Arc<Knobs>,
    state: Mutex<PaymentsState>,
}

impl FakePayments {
    pub fn new(env: Arc<dyn Environment>, knobs: Arc<Knobs>) -> FakePayments {
        FakePayments {
            env,
            knobs,
            state: Mutex::default(),
        }
    }

    /// Charges whose `details` equal `token` are declined.
    pub fn decline_details(&self, token: &str) {
        lock(&self.state).declined_details.insert(token.to_string());
    }

    /// Every charge made, in idempotency-key order.
    pub fn charges(&self) -> Vec<Receipt> {
        lock(&self.state)
            .charges
            .values()
            .map(|(_, receipt)| receipt.clone())
            .collect()
    }

    /// The request that created the charge under `idempotency_key`.
    pub fn charge_request(&self, idempotency_key: &str) -> Option<ChargeRequest> {
        lock(&self.state)
            .charges
            .get(idempotency_key)
            .map(|(request, _)| request.clone())
    }

    /// The receipt of the charge under `idempotency_key`.
    pub fn receipt(&self, idempotency_key: &str) -> Option<Receipt> {
        lock(&self.state)
            .charges
            .get(idempotency_key)
            .map(|(_, receipt)| receipt.clone())
    }

    /// Every refund made, in transaction order.
    pub fn refunds(&self) -> Vec<RefundReceipt> {
        lock(&self.state).refunds.values().cloned().collect()
    }

    pub fn is_refunded(&self, transaction_id: &str) -> bool {
        lock(&self.state).refunds.contains_key(transaction_id)
    }
}

#[async_trait]
impl Payments for FakePayments {
    async fn charge(&self, request: &ChargeRequest) -> PortResult<Receipt> {
        self.knobs
            .run(Op::Charge, || {
                let mut state = lock(&self.state);
                if let Some((original, receipt)) = state.charges.get(&request.idempotency_key) {
                    if original.amount_cents != request.amount_cents
                        || original.currency != request.currency
                    {
                        return Err(PortError::Conflict(format!(
                            "idempotency key {} was used for another charge",
                            request.idempotency_key
                        )));
                    }
                    return Ok(receipt.clone());
                }
                if state.voided.contains(&request.idempotency_key) {
                    return Err(PortError::Rejected(format!(
                        "idempotency key {} was voided",
                        request.idempotency_key
                    )));
                }
                if state.declined_details.contains(&request.details) {
                    return Err(PortError::Rejected("card declined".into()));
                }
                state.next += 1;
                let receipt = Receipt {
                    transaction_id: format!("txn-{}", state.next),
                    amount_cents: request.amount_cents,
                    currency: request.currency.clone(),
                    charged_at: self.env.now(),
                };
                state.charges.insert(
                    request.idempotency_key.clone(),
                    (request.clone(), receipt.clone()),
                );
                Ok(receipt)
            })
            .await
    }

    async fn refund(&self, transaction_id: &str) -> PortResult<RefundReceipt> {
        self.knobs
            .run(Op::Refund, || {
                let mut state = lock(&self.state);
                if let Some(refund) = state.refunds.get(transaction_id) {
                    return Ok(refund.clone());
                }
                let amount_cents = state
                    .charges
                    .values()
                    .find(|(_, receipt)| receipt.transaction_id == transaction_id)
                    .map(|(_, receipt)| receipt.amount_cents)
                    .ok_or_else(|| PortError::NotFound(format!("transaction {transaction_id}")))?;
                state.next += 1;
                let refund = RefundReceipt {
                    refund_id: format!("refund-{}", state.next),
                    transaction_id: transaction_id.to_string(),
                    amount_cents,
                };
                state
                    .refunds
                    .insert(transaction_id.to_string(), refund.clone());
                Ok(refund)
            })
            .await
    }

    async fn void_charge(&self, idempotency_key: &str) -> PortResult<Option<Receipt>> {
        self.knobs
            .run(Op::VoidCharge, || {
                let mut state = lock(&self.state);
                state.voided.insert(idempotency_key.to_string());
                Ok(state
                    .charges
                    .get(idempotency_key)
                    .map(|(_, receipt)| receipt.clone()))
            })
            .await
    }
}

/// The booking store: versioned records, optimistic concurrency, and the
/// events of each write appended to `events` under the same lock (the
/// atomic outbox). Cursors are `<created_at>:<id>` of the last item of a
/// page. Idempotency records are versioned the same way, keyed by (user,
/// key).
pub struct FakeStorage {
    knobs: Arc<Knobs>,
    events: Arc<FakeEvents>,
    bookings: Mutex<BTreeMap<String, Booking>>,
    /// Every version ever stored, in the order stored: what the booking
    /// went through, for checking its transitions afterwards.
    history: Mutex<Vec<Booking>>,
    idempotency: Mutex<BTreeMap<(String, String), IdempotencyRecord>>,
}

impl FakeStorage {
    pub fn new(knobs: Arc<Knobs>, events: Arc<FakeEvents>) -> FakeStorage {
        FakeStorage {
            knobs,
            events,
            bookings: Mutex::default(),
            history: Mutex::default(),
            idempotency: Mutex::default(),
        }
    }

    /// Every stored idempotency record, by (user, key), bypassing knobs.
    pub fn idempotency_records(&self) -> Vec<IdempotencyRecord> {
        lock(&self.idempotency).values().cloned().collect()
    }

    /// Every version of the booking that was stored, oldest first.
    pub fn versions(&self, booking_id: &str) -> Vec<Booking> {
        lock(&self.history)
            .iter()
            .filter(|booking| booking.id == booking_id)
            .cloned()
            .collect()
    }

    fn keep(&self, booking: &Booking) {
        lock(&self.history).push(booking.clone());
    }

    /// The stored booking, bypassing knobs (for assertions).
    pub fn booking(&self, booking_id: &str) -> Option<Booking> {
        lock(&self.bookings).get(booking_id).cloned()
    }

    /// Every stored booking, by id.
    pub fn all(&self) -> Vec<Booking> {
        lock(&self.bookings).values().cloned().collect()
    }

    /// Stores a booking as is, bypassing knobs and checks (to set up a
    /// scenario).
    pub fn put(&self, booking: Booking) {
        self.keep(&booking);
        lock(&self.bookings).insert(booking.id.clone(), booking);
    }
}

#[async_trait]
impl Storage for FakeStorage {
    async fn insert(&self, booking: &Booking, events: &[Event]) -> PortResult<()> {
        self.knobs
            .run(Op::Insert, || {
                let mut bookings = lock(&self.bookings);
                if bookings.contains_key(&booking.id) {
                    return Err(PortError::Conflict(format!(
                        "booking {} exists",
                        booking.id
                    )));
                }
                let stored = Booking {
                    version: 1,
                    ..booking.clone()
                };
                self.keep(&stored);
                bookings.insert(booking.id.clone(), stored);
                self.events.append(events);
                Ok(())
            })
            .await
    }

    async fn get(&self, booking_id: &str) -> PortResult<Option<Booking>> {
        self.knobs
            .run(Op::Get, || {
                Ok(lock(&self.bookings).get(booking_id).cloned())
            })
            .await
    }

    async fn update_if_version(
        &self,
        booking: &Booking,
        expected_version: u64,
        events: &[Event],
    ) -> PortResult<u64> {
        self.knobs
            .run(Op::UpdateIfVersion, || {
                let mut bookings = lock(&self.bookings);
                let stored = bookings
                    .get_mut(&booking.id)
                    .ok_or_else(|| PortError::NotFound(format!("booking {}", booking.id)))?;
                if stored.version != expected_version {
                    return Err(PortError::Conflict(format!(
                        "booking {} is at version {}, not {expected_version}",
                        booking.id, stored.version
                    )));
                }
                let version = expected_version.saturating_add(1);
                *stored = Booking {
                    version,
                    ..booking.clone()
                };
                self.keep(stored);
                self.events.append(events);
                Ok(version)
            })
            .await
    }

    async fn list_by_user(&self, user_id: &str, page: &PageRequest) -> PortResult<BookingPage> {
        self.knobs
            .run(Op::ListByUser, || {
                let after = paging::Cursor::after(page.cursor.as_deref())?;
                let bookings = lock(&self.bookings);
                let mut mine: Vec<&Booking> = bookings
                    .values()
                    .filter(|booking| booking.user_id == user_id && after.admits(booking))
                    .collect();
                mine.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
                let limit = paging::clamp_limit(page.limit);
                let rows = mine.into_iter().take(limit as usize + 1).cloned().collect();
                Ok(paging::page(rows, limit))
            })
            .await
    }

    async fn list_expired_pending(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        self.knobs
            .run(Op::ListExpiredPending, || {
                let bookings = lock(&self.bookings);
                let mut due: Vec<&Booking> = bookings
                    .values()
                    .filter(|booking| {
                        booking.status == BookingStatus::Pending && booking.lock_expires_at < now
                    })
                    .collect();
                due.sort_by(|a, b| (a.lock_expires_at, &a.id).cmp(&(b.lock_expires_at, &b.id)));
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                Ok(due.into_iter().take(limit).cloned().collect())
            })
            .await
    }

    async fn list_unsettled(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        self.knobs
            .run(Op::ListUnsettled, || {
                let bookings = lock(&self.bookings);
                let mut due: Vec<(Timestamp, &Booking)> = bookings
                    .values()
                    .filter_map(|booking| Some((booking.settle_after?, booking)))
                    .filter(|(after, _)| *after <= now)
                    .collect();
                due.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                Ok(due
                    .into_iter()
                    .take(limit)
                    .map(|(_, booking)| booking.clone())
                    .collect())
            })
            .await
    }

    async fn insert_idempotency_record(&self, record: &IdempotencyRecord) -> PortResult<()> {
        self.knobs
            .run(Op::InsertIdempotencyRecord, || {
                let mut records = lock(&self.idempotency);
                let id = (record.user_id.clone(), record.key.clone());
                if records.contains_key(&id) {
                    return Err(PortError::Conflict(format!(
                        "idempotency key {} of {} exists",
                        record.key, record.user_id
                    )));
                }
                records.insert(
                    id,
                    IdempotencyRecord {
                        version: 1,
                        ..record.clone()
                    },
                );
                Ok(())
            })
            .await
    }

    async fn get_idempotency_record(
        &self,
        user_id: &str,
        key: &str,
    ) -> PortResult<Option<IdempotencyRecord>> {
        self.knobs
            .run(Op::GetIdempotencyRecord, || {
                let id = (user_id.to_string(), key.to_string());
                Ok(lock(&self.idempotency).get(&id).cloned())
            })
            .await
    }

    async fn update_idempotency_record(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
    ) -> PortResult<u64> {
        self.knobs
            .run(Op::UpdateIdempotencyRecord, || {
                let mut records = lock(&self.idempotency);
                let id = (record.user_id.clone(), record.key.clone());
                let stored = records.get_mut(&id).ok_or_else(|| {
                    PortError::NotFound(format!(
                        "idempotency key {} of {}",
                        record.key, record.user_id
                    ))
                })?;
                if stored.version != expected_version {
                    return Err(PortError::Conflict(format!(
                        "idempotency key {} of {} is at version {}, not {expected_version}",
                        record.key, record.user_id, stored.version
                    )));
                }
                let version = expected_version.saturating_add(1);
                *stored = IdempotencyRecord {
                    version,
                    ..record.clone()
                };
                Ok(version)
            })
            .await
    }

    async fn purge_idempotency_records(&self, now: Timestamp, limit: u32) -> PortResult<u32> {
        self.knobs
            .run(Op::PurgeIdempotencyRecords, || {
                let mut records = lock(&self.idempotency);
                let mut due: Vec<(Timestamp, (String, String))> = records
                    .iter()
                    .filter(|(_, record)| record.expires_at < now)
                    .map(|(id, record)| (record.expires_at, id.clone()))
                    .collect();
                // Oldest first, as the real stores do.
                due.sort();
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                let mut purged = 0u32;
                for (_, id) in due.into_iter().take(limit) {
                    records.remove(&id);
                    purged += 1;
                }
                Ok(purged)
            })
            .await
    }
}

/// The event log: every event `FakeStorage` committed, in commit order.
pub struct FakeEvents {
    knobs: Arc<Knobs>,
    events: Mutex<Vec<Event>>,
}

impl FakeEvents {
    pub fn new(knobs: Arc<Knobs>) -> FakeEvents {
        FakeEvents {
            knobs,
            events: Mutex::default(),
        }
    }

    /// Every event committed, in order.
    pub fn published(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// The kinds of the events published for one booking, in order.
    pub fn kinds(&self, booking_id: &str) -> Vec<EventKind> {
        lock(&self.events)
            .iter()
            .filter(|event| event.booking_id == booking_id)
            .map(|event| event.kind)
            .collect()
    }
}

impl FakeEvents {
    /// Called by `FakeStorage` inside its write.
    fn append(&self, events: &[Event]) {
        lock(&self.events).extend_from_slice(events);
    }
}

#[async_trait]
impl Events for FakeEvents {
    async fn history(&self, booking_id: &str) -> PortResult<Vec<Event>> {
        self.knobs
            .run(Op::History, || {
                Ok(lock(&self.events)
                    .iter()
                    .filter(|event| event.booking_id == booking_id)
                    .cloned()
                    .collect())
            })
            .await
    }
}

/// All fakes wired to one clock and one set of knobs.
pub struct Fakes {
    pub env: Arc<FakeEnvironment>,
    pub knobs: Arc<Knobs>,
    pub seats: Arc<FakeSeats>,
    pub users: Arc<FakeUsers>,
    pub payments: Arc<FakePayments>,
    pub storage: Arc<FakeStorage>,
    pub events: Arc<FakeEvents>,
}

impl Fakes {
    /// Empty fakes whose clock reads `now`.
    pub fn new(now: Timestamp) -> Fakes {
        let env = Arc::new(FakeEnvironment::new(now));
        let knobs = Arc::new(Knobs::default());
        let clock: Arc<dyn Environment> = env.clone();
        let events = Arc::new(FakeEvents::new(knobs.clone()));
        Fakes {
            seats: Arc::new(FakeSeats::new(clock.clone(), knobs.clone())),
            users: Arc::new(FakeUsers::new(clock.clone(), knobs.clone())),
            payments: Arc::new(FakePayments::new(clock, knobs.clone())),
            storage: Arc::new(FakeStorage::new(knobs.clone(), events.clone())),
            events,
            env,
            knobs,
        }
    }

    /// The fakes as the workflow's ports.
    pub fn ports(&self) -> Ports {
        Ports {
            seats: self.seats.clone(),
            users: self.users.clone(),
            payments: self.payments.clone(),
            storage: self.storage.clone(),
            events: self.events.clone(),
            env: self.env.clone(),
        }
    }

    /// The scenario of the original service's README: active `user_123`,
    /// inactive `user_inactive`, and showtime `showtime_456` (USD) with
    /// seats A1–A5 and B1–B5 at 15.00 each.
    pub fn sample(now: Timestamp) -> Fakes {
        let fakes = Fakes::new(now);
        fakes.users.add_user("user_123", true);
        fakes.users.add_user("user_inactive", false);
        let seats: Vec<(String, u64)> = ["A", "B"]
            .iter()
            .flat_map(|row| (1..=5).map(move |n| (format!("{row}{n}"), 1500)))
            .collect();
        let seats: Vec<(&str, u64)> = seats
            .iter()
            .map(|(number, price)| (number.as_str(), *price))
            .collect();
        fakes.add_showtime("showtime_456", "USD", &seats);
        fakes
    }

    /// Adds a showtime whose seats are `(number, price in cents)`, all
    /// available; the row is the seat number's leading letters.
    pub fn add_showtime(&self, id: &str, currency: &str, seats: &[(&str, u64)]) {
        let seats: Vec<Seat> = seats
            .iter()
            .map(|(number, price_cents)| Seat {
                number: number.to_string(),
                row: number
                    .chars()
                    .take_while(char::is_ascii_alphabetic)
                    .collect(),
                price_cents: *price_cents,
                status: SeatStatus::Available,
            })
            .collect();
        let showtime = Showtime {
            id: id.to_string(),
            movie_id: format!("movie-of-{id}"),
            movie_title: format!("Feature {id}"),
            theater: "Hall 1".to_string(),
            starts_at: self.env.now().saturating_add(86_400_000),
            currency: currency.to_string(),
            total_seats: 0,
            available_seats: 0,
        };
        self.seats.add_showtime(showtime, seats);
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;

    fn record(user_id: &str, key: &str, expires_at: Timestamp) -> IdempotencyRecord {
        IdempotencyRecord {
            user_id: user_id.into(),
            key: key.into(),
            fingerprint: "createBooking:abc".into(),
            response: None,
            lease_expires_at: 1_000,
            expires_at,
            version: 0,
        }
    }

    #[test]
    fn tokens_stand_for_their_caller_until_they_expire() {
        let fakes = Fakes::new(1_000);
        let token = fakes.users.issue_token("support_1", &["support"], 2_000);
        let other = fakes.users.issue_token("user_123", &[], 2_000);
        assert_ne!(token, other);

        let caller = block_on(fakes.users.authenticate(&token)).unwrap();
        assert_eq!(caller.user_id, "support_1");
        assert_eq!(caller.roles, vec!["support".to_string()]);
        assert_eq!(caller.expires_at, 2_000);

        assert!(matches!(
            block_on(fakes.users.authenticate("forged")),
            Err(PortError::Rejected(_))
        ));
        fakes.env.set_now(2_000);
        assert!(matches!(
            block_on(fakes.users.authenticate(&token)),
            Err(PortError::Rejected(_))
        ));
        assert_eq!(fakes.knobs.calls(Op::Authenticate), 3);
    }

    #[test]
    fn idempotency_records_are_versioned_per_user_and_key() {
        let storage = Fakes::new(0).storage;
        block_on(storage.insert_idempotency_record(&record("u1", "k", 10))).unwrap();
        // The same key of another user is another record.
        block_on(storage.insert_idempotency_record(&record("u2", "k", 10))).unwrap();
        assert!(matches!(
            block_on(storage.insert_idempotency_record(&record("u1", "k", 10))),
            Err(PortError::Conflict(_))
        ));

        let stored = block_on(storage.get_idempotency_record("u1", "k"))
            .unwrap()
            .unwrap();
        assert_eq!(stored.version, 1);
        let answered = IdempotencyRecord {
            response: Some("{}".into()),
            ..stored.clone()
        };
        assert_eq!(
            block_on(storage.update_idempotency_record(&answered, 1)),
            Ok(2)
        );
        assert!(matches!(
            block_on(storage.update_idempotency_record(&stored, 1)),
            Err(PortError::Conflict(_))
        ));
        assert!(matches!(
            block_on(storage.update_idempotency_record(&record("u3", "k", 10), 1)),
            Err(PortError::NotFound(_))
        ));
        let now = block_on(storage.get_idempotency_record("u1", "k"))
            .unwrap()
            .unwrap();
        assert_eq!((now.response.as_deref(), now.version), (Some("{}"), 2));
        assert_eq!(
            block_on(storage.get_idempotency_record("u1", "x")),
            Ok(None)
        );
    }

    #[test]
    fn purging_forgets_expired_records_oldest_first_up_to_the_limit() {
        let fakes = Fakes::new(0);
        let storage = &fakes.storage;
        for (key, expires_at) in [("a", 30), ("b", 10), ("c", 20), ("d", 100)] {
            block_on(storage.insert_idempotency_record(&record("u1", key, expires_at))).unwrap();
        }
        assert_eq!(block_on(storage.purge_idempotency_records(50, 2)), Ok(2));
        let left: Vec<String> = storage
            .idempotency_records()
            .into_iter()
            .map(|record| record.key)
            .collect();
        assert_eq!(left, vec!["a", "d"]);
        // Expiring exactly now is not yet before now.
        assert_eq!(block_on(storage.purge_idempotency_records(30, 10)), Ok(0));
        assert_eq!(block_on(storage.purge_idempotency_records(31, 10)), Ok(1));

        fakes.knobs.fail_next(
            Op::PurgeIdempotencyRecords,
            Fault::Fail(PortError::Unavailable("down".into())),
        );
        assert!(block_on(storage.purge_idempotency_records(1_000, 10)).is_err());
        assert_eq!(storage.idempotency_records().len(), 1, "nothing changed");
    }
}
