//! `cinema:booking/seats` → `ports::Seats`.

use booking_logic::model;

use super::wit_error;
use crate::bindings::seats::{Host, PricedSeat, Seat, SeatLock, SeatStatus, Showtime};
use crate::bindings::types::Error;
use crate::state::RequestState;

impl Host for RequestState {
    async fn get_showtime(&mut self, showtime_id: String) -> Result<Showtime, Error> {
        let s = self
            .ports
            .seats
            .get_showtime(&showtime_id)
            .await
            .map_err(wit_error)?;
        Ok(Showtime {
            id: s.id,
            movie_id: s.movie_id,
            movie_title: s.movie_title,
            theater: s.theater,
            starts_at: s.starts_at,
            currency: s.currency,
            total_seats: s.total_seats,
            available_seats: s.available_seats,
        })
    }

    async fn seat_map(&mut self, showtime_id: String) -> Result<Vec<Seat>, Error> {
        let map = self
            .ports
            .seats
            .seat_map(&showtime_id)
            .await
            .map_err(wit_error)?;
        Ok(map
            .into_iter()
            .map(|seat| Seat {
                number: seat.number,
                row: seat.row,
                price_cents: seat.price_cents,
                status: match seat.status {
                    model::SeatStatus::Available => SeatStatus::Available,
                    model::SeatStatus::Locked => SeatStatus::Locked,
                    model::SeatStatus::Booked => SeatStatus::Booked,
                },
            })
            .collect())
    }

    async fn lock_seats(
        &mut self,
        showtime_id: String,
        numbers: Vec<String>,
        holder: String,
        ttl_seconds: u32,
    ) -> Result<SeatLock, Error> {
        let lock = self
            .ports
            .seats
            .lock_seats(&showtime_id, &numbers, &holder, ttl_seconds)
            .await
            .map_err(wit_error)?;
        Ok(SeatLock {
            id: lock.id,
            showtime_id: lock.showtime_id,
            seats: lock
                .seats
                .into_iter()
                .map(|seat| PricedSeat {
                    number: seat.number,
                    price_cents: seat.price_cents,
                })
                .collect(),
            expires_at: lock.expires_at,
        })
    }

    async fn confirm_seats(&mut self, lock_id: String) -> Result<(), Error> {
        self.ports
            .seats
            .confirm_seats(&lock_id)
            .await
            .map_err(wit_error)
    }

    async fn release_seats(&mut self, lock_id: String) -> Result<(), Error> {
        self.ports
            .seats
            .release_seats(&lock_id)
            .await
            .map_err(wit_error)
    }
}
