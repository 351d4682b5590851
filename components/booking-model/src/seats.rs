//! WIT `seats`: the Cinema service's inventory.

use crate::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Showtime {
    pub id: String,
    pub movie_id: String,
    pub movie_title: String,
    pub theater: String,
    pub starts_at: Timestamp,
    /// Currency of every seat price of this showtime.
    pub currency: String,
    pub total_seats: u32,
    pub available_seats: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatStatus {
    Available,
    Locked,
    Booked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// Seat label as customers know it, e.g. "A1".
    pub number: String,
    pub row: String,
    pub price_cents: u64,
    pub status: SeatStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedSeat {
    pub number: String,
    pub price_cents: u64,
}

/// A temporary, exclusive hold on some seats of one showtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatLock {
    pub id: String,
    pub showtime_id: String,
    pub seats: Vec<PricedSeat>,
    pub expires_at: Timestamp,
}
