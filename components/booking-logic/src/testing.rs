//! In-memory fakes of every port, with the semantics `wit/booking.wit`
//! promises, plus knobs to inject faults and to interleave concurrent
//! operations deterministically. Unit tests use them, and so can other
//! crates (feature `testing`) and the deterministic simulation. One
//! module per port, as in `ports.rs`:
//!
//! - `seats`: seat locks that expire against a controllable clock;
//! - `users`: users and bearer tokens;
//! - `payments`: charges idempotent by key, refunds, voided keys;
//! - `storage`: versioned storage with real conflicts, each write
//!   appending its events to `events`, the ordered event log;
//! - `environment`: the clock and the ids;
//! - `knobs`: faults, call counts, interleaving, shared by all of them;
//!   the operations they count are `Op` (here);
//! - `contract`: the storage contract suite every backend runs.
//!
//! `Fakes` (here) wires them all to one clock and one set of knobs.
//! Nothing here blocks or sleeps: time moves only when a test moves it.

pub mod contract;
mod environment;
mod events;
mod knobs;
mod payments;
mod seats;
pub mod seed_documents;
mod storage;
mod users;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use environment::FakeEnvironment;
pub use events::FakeEvents;
pub use knobs::{Chaos, Fault, Knobs};
pub use payments::FakePayments;
pub use seats::{FakeSeats, LockRecord, LockState};
pub use storage::FakeStorage;
pub use users::FakeUsers;

use crate::model::{Seat, SeatStatus, Showtime, Timestamp};
use crate::ports::{Environment, Ports};

/// Locks a mutex even if a panicking test poisoned it: the fakes' state
/// stays usable for the assertions that follow.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every port operation, to aim faults at and count calls of (`Knobs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    GetShowtime,
    SeatMap,
    LockSeats,
    ConfirmSeats,
    ExtendLock,
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
