//! `cinema:booking/seats` → `ports::Seats`.

use super::{Answer, wit};
use crate::bindings::seats::{Host, Seat, SeatLock, Showtime};
use crate::bindings::types::Error;
use crate::state::RequestState;

impl Host for RequestState {
    async fn get_showtime(&mut self, showtime_id: String) -> Result<Showtime, Error> {
        self.call("seats", "get_showtime", |ports| {
            ports.seats.get_showtime(&showtime_id)
        })
        .await
        .answer()
    }

    async fn seat_map(&mut self, showtime_id: String) -> Result<Vec<Seat>, Error> {
        Ok(wit(self
            .call("seats", "seat_map", |ports| {
                ports.seats.seat_map(&showtime_id)
            })
            .await?))
    }

    async fn lock_seats(
        &mut self,
        showtime_id: String,
        numbers: Vec<String>,
        holder: String,
        ttl_seconds: u32,
    ) -> Result<SeatLock, Error> {
        self.call("seats", "lock_seats", |ports| {
            ports
                .seats
                .lock_seats(&showtime_id, &numbers, &holder, ttl_seconds)
        })
        .await
        .answer()
    }

    async fn confirm_seats(&mut self, lock_id: String) -> Result<(), Error> {
        Ok(self
            .call("seats", "confirm_seats", |ports| {
                ports.seats.confirm_seats(&lock_id)
            })
            .await?)
    }

    async fn extend_lock(&mut self, lock_id: String, ttl_seconds: u32) -> Result<u64, Error> {
        Ok(self
            .call("seats", "extend_lock", |ports| {
                ports.seats.extend_lock(&lock_id, ttl_seconds)
            })
            .await?)
    }

    async fn release_seats(&mut self, lock_id: String) -> Result<(), Error> {
        Ok(self
            .call("seats", "release_seats", |ports| {
                ports.seats.release_seats(&lock_id)
            })
            .await?)
    }
}
