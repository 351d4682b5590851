//! The seat inventory as a plain state machine. Every operation takes the
//! current time, so expiry is checked lazily on access and tests can move
//! the clock; the cinema server calls it under one mutex, which makes each
//! operation atomic.

use std::collections::{HashMap, HashSet};

use cinema_grpc::{PricedSeat, Seat, SeatLock, SeatMap, SeatStatus, Showtime};

use crate::catalog;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("showtime {0} not found")]
    UnknownShowtime(String),
    #[error("lock {0} not found")]
    UnknownLock(String),
    #[error("{0}")]
    Invalid(String),
    /// Seats taken, or a lock that is no longer live.
    #[error("{0}")]
    Conflict(String),
}

/// A lock as the cinema keeps it, also handed to tests for inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub id: String,
    pub showtime_id: String,
    pub holder: String,
    pub seats: Vec<String>,
    pub expires_at_ms: u64,
    pub confirmed: bool,
}

impl Lock {
    fn is_live(&self, now_ms: u64) -> bool {
        !self.confirmed && now_ms < self.expires_at_ms
    }
}

#[derive(Debug)]
pub struct Inventory {
    showtimes: HashMap<String, ShowtimeSeats>,
    locks: HashMap<String, Lock>,
    /// Ids of the locks released, or forgotten once expired, so that
    /// extending one is a conflict rather than an unknown lock.
    ended: HashSet<String>,
}

#[derive(Debug)]
struct ShowtimeSeats {
    info: catalog::Showtime,
    /// Parallel to `info.seats`.
    holds: Vec<Hold>,
    index: HashMap<String, usize>,
}

/// Who a seat belongs to. A `Locked` seat whose lock is gone or expired is
/// available: expiry needs no timer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hold {
    Free,
    Locked(String),
    Booked(String),
}

impl Inventory {
    pub fn new(showtimes: Vec<catalog::Showtime>) -> Self {
        let showtimes = showtimes
            .into_iter()
            .map(|info| {
                let holds = vec![Hold::Free; info.seats.len()];
                let index = info
                    .seats
                    .iter()
                    .enumerate()
                    .map(|(i, seat)| (seat.number.clone(), i))
                    .collect();
                (info.id.clone(), ShowtimeSeats { info, holds, index })
            })
            .collect();
        Inventory {
            showtimes,
            locks: HashMap::new(),
            ended: HashSet::new(),
        }
    }

    pub fn showtime(&self, showtime_id: &str, now_ms: u64) -> Result<Showtime, InventoryError> {
        let showtime = self.find(showtime_id)?;
        let available = showtime
            .holds
            .iter()
            .filter(|hold| status(hold, &self.locks, now_ms) == SeatStatus::Available)
            .count();
        let info = &showtime.info;
        Ok(Showtime {
            id: info.id.clone(),
            movie_id: info.movie_id.clone(),
            movie_title: info.movie_title.clone(),
            theater: info.theater.clone(),
            starts_at_ms: info.starts_at_ms,
            currency: info.currency.clone(),
            total_seats: count(info.seats.len()),
            available_seats: count(available),
        })
    }

    pub fn seat_map(&self, showtime_id: &str, now_ms: u64) -> Result<SeatMap, InventoryError> {
        let showtime = self.find(showtime_id)?;
        let seats = showtime
            .info
            .seats
            .iter()
            .zip(&showtime.holds)
            .map(|(seat, hold)| Seat {
                number: seat.number.clone(),
                row: seat.row.clone(),
                price_cents: seat.price_cents,
                status: status(hold, &self.locks, now_ms).into(),
            })
            .collect();
        Ok(SeatMap {
            showtime_id: showtime_id.to_owned(),
            seats,
        })
    }

    /// All seats or none: every check happens before the first change.
    pub fn lock(
        &mut self,
        showtime_id: &str,
        seat_numbers: &[String],
        holder: &str,
        ttl_seconds: u32,
        now_ms: u64,
    ) -> Result<SeatLock, InventoryError> {
        let expires_at_ms = expiry(now_ms, ttl_seconds)?;
        if seat_numbers.is_empty() {
            return Err(InventoryError::Invalid("no seats requested".into()));
        }
        let showtime = self
            .showtimes
            .get_mut(showtime_id)
            .ok_or_else(|| InventoryError::UnknownShowtime(showtime_id.to_owned()))?;

        let mut seen = HashSet::new();
        let mut positions = Vec::with_capacity(seat_numbers.len());
        let mut taken = Vec::new();
        for number in seat_numbers {
            if !seen.insert(number.as_str()) {
                return Err(InventoryError::Invalid(format!(
                    "seat {number} requested twice"
                )));
            }
            let &i = showtime.index.get(number).ok_or_else(|| {
                InventoryError::Invalid(format!("showtime {showtime_id} has no seat {number}"))
            })?;
            if status(&showtime.holds[i], &self.locks, now_ms) != SeatStatus::Available {
                taken.push(number.as_str());
            }
            positions.push(i);
        }
        if !taken.is_empty() {
            return Err(InventoryError::Conflict(format!(
                "seats not available: {}",
                taken.join(", ")
            )));
        }

        let id = uuid::Uuid::new_v4().to_string();
        for i in positions {
            // The previous holder can only be a dead lock; forget all but
            // its id so that dead locks do not pile up.
            if let Hold::Locked(dead) = &showtime.holds[i]
                && let Some(dead) = self.locks.remove(dead)
            {
                self.ended.insert(dead.id);
            }
            showtime.holds[i] = Hold::Locked(id.clone());
        }
        let lock = Lock {
            id: id.clone(),
            showtime_id: showtime_id.to_owned(),
            holder: holder.to_owned(),
            seats: seat_numbers.to_vec(),
            expires_at_ms,
            confirmed: false,
        };
        let seat_lock = seat_lock(showtime, &lock);
        self.locks.insert(id, lock);
        Ok(seat_lock)
    }

    pub fn confirm(&mut self, lock_id: &str, now_ms: u64) -> Result<(), InventoryError> {
        let lock = self
            .locks
            .get_mut(lock_id)
            .ok_or_else(|| InventoryError::Conflict(format!("lock {lock_id} is not held")))?;
        if lock.confirmed {
            return Ok(());
        }
        if !lock.is_live(now_ms) {
            return Err(InventoryError::Conflict(format!("lock {lock_id} expired")));
        }
        if let Some(showtime) = self.showtimes.get_mut(&lock.showtime_id) {
            for number in &lock.seats {
                if let Some(&i) = showtime.index.get(number) {
                    showtime.holds[i] = Hold::Booked(lock.id.clone());
                }
            }
        }
        lock.confirmed = true;
        Ok(())
    }

    /// Makes a live lock end `ttl_seconds` from `now_ms`, never earlier
    /// than it does.
    pub fn extend(
        &mut self,
        lock_id: &str,
        ttl_seconds: u32,
        now_ms: u64,
    ) -> Result<SeatLock, InventoryError> {
        let expires_at_ms = expiry(now_ms, ttl_seconds)?;
        if lock_id.is_empty() {
            return Err(InventoryError::Invalid("lock_id is empty".into()));
        }
        let Some(lock) = self.locks.get_mut(lock_id) else {
            return Err(if self.ended.contains(lock_id) {
                InventoryError::Conflict(format!("lock {lock_id} is not held"))
            } else {
                InventoryError::UnknownLock(lock_id.to_owned())
            });
        };
        if lock.confirmed {
            return Err(InventoryError::Conflict(format!(
                "lock {lock_id} is confirmed"
            )));
        }
        if !lock.is_live(now_ms) {
            return Err(InventoryError::Conflict(format!("lock {lock_id} expired")));
        }
        lock.expires_at_ms = lock.expires_at_ms.max(expires_at_ms);
        let showtime = self
            .showtimes
            .get(&lock.showtime_id)
            .ok_or_else(|| InventoryError::UnknownShowtime(lock.showtime_id.clone()))?;
        Ok(seat_lock(showtime, lock))
    }

    /// Frees whatever the lock still holds, booked seats included.
    pub fn release(&mut self, lock_id: &str) {
        let Some(lock) = self.locks.remove(lock_id) else {
            return;
        };
        self.ended.insert(lock.id.clone());
        let Some(showtime) = self.showtimes.get_mut(&lock.showtime_id) else {
            return;
        };
        for number in &lock.seats {
            if let Some(&i) = showtime.index.get(number) {
                // An expired lock's seat may belong to a newer lock by now.
                let held_by_this = match &showtime.holds[i] {
                    Hold::Locked(id) | Hold::Booked(id) => *id == lock.id,
                    Hold::Free => false,
                };
                if held_by_this {
                    showtime.holds[i] = Hold::Free;
                }
            }
        }
    }

    /// Seat numbers of the showtime that are booked, in seat-map order.
    pub fn booked_seats(&self, showtime_id: &str) -> Vec<String> {
        self.showtimes
            .get(showtime_id)
            .map(|showtime| {
                showtime
                    .info
                    .seats
                    .iter()
                    .zip(&showtime.holds)
                    .filter(|(_, hold)| matches!(hold, Hold::Booked(_)))
                    .map(|(seat, _)| seat.number.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Unconfirmed, unexpired locks of the showtime.
    pub fn live_locks(&self, showtime_id: &str, now_ms: u64) -> Vec<Lock> {
        let mut locks: Vec<Lock> = self
            .locks
            .values()
            .filter(|lock| lock.showtime_id == showtime_id && lock.is_live(now_ms))
            .cloned()
            .collect();
        locks.sort_by(|a, b| a.id.cmp(&b.id));
        locks
    }

    fn find(&self, showtime_id: &str) -> Result<&ShowtimeSeats, InventoryError> {
        self.showtimes
            .get(showtime_id)
            .ok_or_else(|| InventoryError::UnknownShowtime(showtime_id.to_owned()))
    }
}

/// When a lock of `ttl_seconds` taken at `now_ms` ends.
fn expiry(now_ms: u64, ttl_seconds: u32) -> Result<u64, InventoryError> {
    if ttl_seconds == 0 {
        return Err(InventoryError::Invalid(
            "ttl_seconds must be positive".into(),
        ));
    }
    Ok(now_ms.saturating_add(u64::from(ttl_seconds) * 1000))
}

/// The lock as the API answers it: its seats priced, in its order.
fn seat_lock(showtime: &ShowtimeSeats, lock: &Lock) -> SeatLock {
    let seats = lock
        .seats
        .iter()
        .filter_map(|number| showtime.index.get(number))
        .map(|&i| {
            let seat = &showtime.info.seats[i];
            PricedSeat {
                number: seat.number.clone(),
                price_cents: seat.price_cents,
            }
        })
        .collect();
    SeatLock {
        lock_id: lock.id.clone(),
        showtime_id: lock.showtime_id.clone(),
        seats,
        expires_at_ms: lock.expires_at_ms,
    }
}

fn status(hold: &Hold, locks: &HashMap<String, Lock>, now_ms: u64) -> SeatStatus {
    match hold {
        Hold::Free => SeatStatus::Available,
        Hold::Booked(_) => SeatStatus::Booked,
        Hold::Locked(id) => match locks.get(id) {
            Some(lock) if lock.is_live(now_ms) => SeatStatus::Locked,
            _ => SeatStatus::Available,
        },
    }
}

/// Showtimes are small; saturate rather than wrap if one ever is not.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn inventory() -> Inventory {
        Inventory::new(catalog::showtimes())
    }

    fn seats(numbers: &[&str]) -> Vec<String> {
        numbers.iter().map(|n| n.to_string()).collect()
    }

    fn status_of(inv: &Inventory, number: &str, now: u64) -> SeatStatus {
        let map = inv.seat_map("showtime_456", now).expect("known showtime");
        let seat = map
            .seats
            .iter()
            .find(|s| s.number == number)
            .expect("known seat");
        SeatStatus::try_from(seat.status).expect("valid status")
    }

    #[test]
    fn lock_returns_prices_and_expiry() {
        let mut inv = inventory();
        let lock = inv
            .lock("showtime_456", &seats(&["A1", "C2"]), "b1", 60, NOW)
            .expect("free seats");
        let prices: Vec<_> = lock
            .seats
            .iter()
            .map(|s| (s.number.as_str(), s.price_cents))
            .collect();
        assert_eq!(prices, [("A1", 1500), ("C2", 1200)]);
        assert_eq!(lock.expires_at_ms, NOW + 60_000);
        assert_eq!(status_of(&inv, "A1", NOW), SeatStatus::Locked);
        assert_eq!(
            inv.showtime("showtime_456", NOW).map(|s| s.available_seats),
            Ok(48)
        );
    }

    #[test]
    fn lock_is_all_or_nothing() {
        let mut inv = inventory();
        inv.lock("showtime_456", &seats(&["A2"]), "b1", 60, NOW)
            .expect("free");
        let err = inv.lock("showtime_456", &seats(&["A1", "A2", "A3"]), "b2", 60, NOW);
        assert!(matches!(err, Err(InventoryError::Conflict(m)) if m.contains("A2")));
        assert_eq!(status_of(&inv, "A1", NOW), SeatStatus::Available);
        assert_eq!(status_of(&inv, "A3", NOW), SeatStatus::Available);
    }

    #[test]
    fn lock_validates_the_request() {
        let mut inv = inventory();
        let mut lock = |showtime: &str, numbers: &[&str], ttl| {
            inv.lock(showtime, &seats(numbers), "b", ttl, NOW)
        };
        assert!(matches!(
            lock("nope", &["A1"], 60),
            Err(InventoryError::UnknownShowtime(_))
        ));
        assert!(matches!(
            lock("showtime_456", &[], 60),
            Err(InventoryError::Invalid(_))
        ));
        assert!(matches!(
            lock("showtime_456", &["A1", "A1"], 60),
            Err(InventoryError::Invalid(_))
        ));
        assert!(matches!(
            lock("showtime_456", &["Z9"], 60),
            Err(InventoryError::Invalid(_))
        ));
        assert!(matches!(
            lock("showtime_456", &["A1"], 0),
            Err(InventoryError::Invalid(_))
        ));
    }

    #[test]
    fn expired_locks_free_their_seats_and_cannot_be_confirmed() {
        let mut inv = inventory();
        let old = inv
            .lock("showtime_456", &seats(&["A1", "A2"]), "b1", 1, NOW)
            .expect("free");
        let later = NOW + 1_000;
        assert_eq!(status_of(&inv, "A1", later), SeatStatus::Available);
        assert!(matches!(
            inv.confirm(&old.lock_id, later),
            Err(InventoryError::Conflict(_))
        ));

        let new = inv
            .lock("showtime_456", &seats(&["A2"]), "b2", 60, later)
            .expect("expired");
        // Releasing the dead lock must not free the seat the new lock holds.
        inv.release(&old.lock_id);
        assert_eq!(status_of(&inv, "A2", later), SeatStatus::Locked);
        inv.confirm(&new.lock_id, later).expect("live");
        assert_eq!(inv.booked_seats("showtime_456"), ["A2"]);
    }

    #[test]
    fn confirm_is_idempotent_and_outlives_the_ttl() {
        let mut inv = inventory();
        let lock = inv
            .lock("showtime_456", &seats(&["B5"]), "b1", 1, NOW)
            .expect("free");
        inv.confirm(&lock.lock_id, NOW).expect("live");
        inv.confirm(&lock.lock_id, NOW + 10_000)
            .expect("already confirmed");
        assert_eq!(status_of(&inv, "B5", NOW + 10_000), SeatStatus::Booked);
        assert!(inv.live_locks("showtime_456", NOW).is_empty());
    }

    #[test]
    fn release_frees_live_and_confirmed_locks_and_is_idempotent() {
        let mut inv = inventory();
        let live = inv
            .lock("showtime_456", &seats(&["D1"]), "b1", 60, NOW)
            .expect("free");
        let booked = inv
            .lock("showtime_456", &seats(&["D2"]), "b2", 60, NOW)
            .expect("free");
        inv.confirm(&booked.lock_id, NOW).expect("live");

        inv.release(&live.lock_id);
        inv.release(&booked.lock_id);
        inv.release(&booked.lock_id);
        inv.release("unknown");

        assert_eq!(status_of(&inv, "D1", NOW), SeatStatus::Available);
        assert_eq!(status_of(&inv, "D2", NOW), SeatStatus::Available);
        assert!(matches!(
            inv.confirm(&live.lock_id, NOW),
            Err(InventoryError::Conflict(_))
        ));
        assert_eq!(
            inv.showtime("showtime_456", NOW).map(|s| s.available_seats),
            Ok(50)
        );
    }

    #[test]
    fn extending_a_live_lock_moves_its_end_never_earlier() {
        let mut inv = inventory();
        let lock = inv
            .lock("showtime_456", &seats(&["D6", "D7"]), "b1", 60, NOW)
            .expect("free");
        let later = NOW + 30_000;
        let extended = inv.extend(&lock.lock_id, 120, later).expect("live lock");
        assert_eq!(extended.expires_at_ms, later + 120_000);
        assert_eq!(
            (extended.lock_id, extended.seats),
            (lock.lock_id.clone(), lock.seats)
        );
        // Past the first TTL, the seats are still held.
        assert_eq!(status_of(&inv, "D6", NOW + 60_000), SeatStatus::Locked);

        let shorter = inv.extend(&lock.lock_id, 1, later).expect("live lock");
        assert_eq!(shorter.expires_at_ms, later + 120_000);
        inv.confirm(&lock.lock_id, NOW + 100_000)
            .expect("still live");
    }

    #[test]
    fn extend_refuses_locks_that_are_not_live() {
        let mut inv = inventory();
        let conflict = |result| matches!(result, Err(InventoryError::Conflict(_)));

        let expired = inv
            .lock("showtime_456", &seats(&["E6"]), "b1", 1, NOW)
            .expect("free");
        assert!(conflict(inv.extend(&expired.lock_id, 60, NOW + 1_000)));
        // Still a conflict once a new lock took its seat and it was forgotten.
        inv.lock("showtime_456", &seats(&["E6"]), "b2", 60, NOW + 1_000)
            .expect("expired");
        assert!(conflict(inv.extend(&expired.lock_id, 60, NOW + 1_000)));

        let released = inv
            .lock("showtime_456", &seats(&["E7"]), "b3", 60, NOW)
            .expect("free");
        inv.release(&released.lock_id);
        assert!(conflict(inv.extend(&released.lock_id, 60, NOW)));

        let confirmed = inv
            .lock("showtime_456", &seats(&["E8"]), "b4", 60, NOW)
            .expect("free");
        inv.confirm(&confirmed.lock_id, NOW).expect("live");
        assert!(conflict(inv.extend(&confirmed.lock_id, 60, NOW)));

        assert!(matches!(
            inv.extend("unknown", 60, NOW),
            Err(InventoryError::UnknownLock(_))
        ));
        assert!(matches!(
            inv.extend("", 60, NOW),
            Err(InventoryError::Invalid(_))
        ));
        let live = inv
            .lock("showtime_456", &seats(&["E9"]), "b5", 60, NOW)
            .expect("free");
        assert!(matches!(
            inv.extend(&live.lock_id, 0, NOW),
            Err(InventoryError::Invalid(_))
        ));
        let unchanged = inv.live_locks("showtime_456", NOW);
        let unchanged = unchanged.iter().find(|l| l.id == live.lock_id);
        assert_eq!(unchanged.map(|l| l.expires_at_ms), Some(NOW + 60_000));
    }

    #[test]
    fn booked_seats_cannot_be_locked() {
        let mut inv = inventory();
        let lock = inv
            .lock("showtime_456", &seats(&["E1"]), "b1", 1, NOW)
            .expect("free");
        inv.confirm(&lock.lock_id, NOW).expect("live");
        let err = inv.lock("showtime_456", &seats(&["E1"]), "b2", 60, NOW + 5_000);
        assert!(matches!(err, Err(InventoryError::Conflict(_))));
    }
}
