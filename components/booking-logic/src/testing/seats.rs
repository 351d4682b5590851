//! The `seats` port: the Cinema service's showtimes, seat maps and seat
//! locks with a TTL.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Knobs, Op, lock};
use crate::model::{PricedSeat, Seat, SeatLock, SeatStatus, Showtime, Timestamp};
use crate::ports::{Environment, PortError, PortResult, Seats};

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

    async fn extend_lock(&self, lock_id: &str, ttl_seconds: u32) -> PortResult<Timestamp> {
        self.knobs
            .run(Op::ExtendLock, || {
                let now = self.env.now();
                let mut state = lock(&self.state);
                let record = state
                    .locks
                    .get_mut(lock_id)
                    .ok_or_else(|| PortError::NotFound(format!("lock {lock_id}")))?;
                match record.state {
                    LockState::Held if now < record.lock.expires_at => {
                        let wanted = now.saturating_add(u64::from(ttl_seconds) * 1000);
                        record.lock.expires_at = record.lock.expires_at.max(wanted);
                        Ok(record.lock.expires_at)
                    }
                    _ => Err(PortError::Conflict(format!("lock {lock_id} is not held"))),
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
