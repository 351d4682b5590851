//! The messages of `proto/cinema.proto` (package `cinema.v1`), written out
//! with prost's derive so the Spin adapter needs no build script or
//! `protoc`, and their meaning in the model.
//! A test encodes with these and decodes with the tonic-generated types of
//! `host/cinema-grpc` (and back), so the two cannot drift silently.

use prost::Message;

use booking_model::{PortError, PortResult};

pub const SERVICE: &str = "cinema.v1.CinemaService";

#[derive(Clone, PartialEq, Message)]
pub struct GetShowtimeRequest {
    #[prost(string, tag = "1")]
    pub showtime_id: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Showtime {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub movie_id: String,
    #[prost(string, tag = "3")]
    pub movie_title: String,
    #[prost(string, tag = "4")]
    pub theater: String,
    #[prost(uint64, tag = "5")]
    pub starts_at_ms: u64,
    #[prost(string, tag = "6")]
    pub currency: String,
    #[prost(uint32, tag = "7")]
    pub total_seats: u32,
    #[prost(uint32, tag = "8")]
    pub available_seats: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct GetSeatMapRequest {
    #[prost(string, tag = "1")]
    pub showtime_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SeatStatus {
    Unspecified = 0,
    Available = 1,
    Locked = 2,
    Booked = 3,
}

#[derive(Clone, PartialEq, Message)]
pub struct Seat {
    #[prost(string, tag = "1")]
    pub number: String,
    #[prost(string, tag = "2")]
    pub row: String,
    #[prost(uint64, tag = "3")]
    pub price_cents: u64,
    #[prost(enumeration = "SeatStatus", tag = "4")]
    pub status: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct SeatMap {
    #[prost(string, tag = "1")]
    pub showtime_id: String,
    #[prost(message, repeated, tag = "2")]
    pub seats: Vec<Seat>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LockSeatsRequest {
    #[prost(string, tag = "1")]
    pub showtime_id: String,
    #[prost(string, repeated, tag = "2")]
    pub seat_numbers: Vec<String>,
    #[prost(string, tag = "3")]
    pub holder: String,
    #[prost(uint32, tag = "4")]
    pub ttl_seconds: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct PricedSeat {
    #[prost(string, tag = "1")]
    pub number: String,
    #[prost(uint64, tag = "2")]
    pub price_cents: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct SeatLock {
    #[prost(string, tag = "1")]
    pub lock_id: String,
    #[prost(string, tag = "2")]
    pub showtime_id: String,
    #[prost(message, repeated, tag = "3")]
    pub seats: Vec<PricedSeat>,
    #[prost(uint64, tag = "4")]
    pub expires_at_ms: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ConfirmSeatsRequest {
    #[prost(string, tag = "1")]
    pub lock_id: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ConfirmSeatsResponse {}

/// Answered with the [`SeatLock`], ending at its new `expires_at_ms`.
#[derive(Clone, PartialEq, Message)]
pub struct ExtendLockRequest {
    #[prost(string, tag = "1")]
    pub lock_id: String,
    #[prost(uint32, tag = "2")]
    pub ttl_seconds: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ReleaseSeatsRequest {
    #[prost(string, tag = "1")]
    pub lock_id: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ReleaseSeatsResponse {}

/// An answer's bytes as `T`; garbage means the cinema is not healthy.
pub fn decode<T: Message + Default>(bytes: &[u8]) -> PortResult<T> {
    T::decode(bytes)
        .map_err(|e| PortError::Unavailable(format!("cinema sent an unreadable message: {e}")))
}

/// The model's seat status of a proto one (the `status` field of
/// [`Seat`], here or in tonic's generated types); an unknown value means
/// the cinema is not one we understand.
pub fn seat_status(status: i32, number: &str) -> PortResult<booking_model::SeatStatus> {
    match SeatStatus::try_from(status) {
        Ok(SeatStatus::Available) => Ok(booking_model::SeatStatus::Available),
        Ok(SeatStatus::Locked) => Ok(booking_model::SeatStatus::Locked),
        Ok(SeatStatus::Booked) => Ok(booking_model::SeatStatus::Booked),
        Ok(SeatStatus::Unspecified) | Err(_) => Err(PortError::Unavailable(format!(
            "cinema sent seat {number} with unknown status {status}"
        ))),
    }
}

impl From<Showtime> for booking_model::Showtime {
    fn from(s: Showtime) -> Self {
        booking_model::Showtime {
            id: s.id,
            movie_id: s.movie_id,
            movie_title: s.movie_title,
            theater: s.theater,
            starts_at: s.starts_at_ms,
            currency: s.currency,
            total_seats: s.total_seats,
            available_seats: s.available_seats,
        }
    }
}

impl TryFrom<Seat> for booking_model::Seat {
    type Error = PortError;

    fn try_from(seat: Seat) -> PortResult<Self> {
        Ok(booking_model::Seat {
            status: seat_status(seat.status, &seat.number)?,
            number: seat.number,
            row: seat.row,
            price_cents: seat.price_cents,
        })
    }
}

impl From<SeatLock> for booking_model::SeatLock {
    fn from(lock: SeatLock) -> Self {
        booking_model::SeatLock {
            id: lock.lock_id,
            showtime_id: lock.showtime_id,
            seats: lock
                .seats
                .into_iter()
                .map(|seat| booking_model::PricedSeat {
                    number: seat.number,
                    price_cents: seat.price_cents,
                })
                .collect(),
            expires_at: lock.expires_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_messages_are_wire_compatible_with_the_generated_ones() {
        let ours = LockSeatsRequest {
            showtime_id: "showtime_456".into(),
            seat_numbers: vec!["A1".into(), "A2".into()],
            holder: "b1".into(),
            ttl_seconds: 300,
        };
        let theirs =
            cinema_grpc::LockSeatsRequest::decode(ours.encode_to_vec().as_slice()).unwrap();
        assert_eq!(theirs.seat_numbers, ["A1", "A2"]);
        assert_eq!((theirs.holder.as_str(), theirs.ttl_seconds), ("b1", 300));

        let ours = ExtendLockRequest {
            lock_id: "l".into(),
            ttl_seconds: 600,
        };
        let theirs =
            cinema_grpc::ExtendLockRequest::decode(ours.encode_to_vec().as_slice()).unwrap();
        assert_eq!((theirs.lock_id.as_str(), theirs.ttl_seconds), ("l", 600));

        let map = cinema_grpc::SeatMap {
            showtime_id: "s".into(),
            seats: vec![cinema_grpc::Seat {
                number: "A1".into(),
                row: "A".into(),
                price_cents: 1500,
                status: cinema_grpc::SeatStatus::Locked as i32,
            }],
        };
        let decoded: SeatMap = decode(&map.encode_to_vec()).unwrap();
        assert_eq!(decoded.seats[0].price_cents, 1500);
        assert_eq!(
            seat_status(decoded.seats[0].status, "A1").unwrap(),
            booking_model::SeatStatus::Locked
        );

        let showtime = cinema_grpc::Showtime {
            id: "s".into(),
            movie_id: "m".into(),
            movie_title: "T".into(),
            theater: "1".into(),
            starts_at_ms: 1_700_000_000_000,
            currency: "USD".into(),
            total_seats: 50,
            available_seats: 48,
        };
        let decoded: Showtime = decode(&showtime.encode_to_vec()).unwrap();
        assert_eq!(
            (decoded.starts_at_ms, decoded.available_seats),
            (1_700_000_000_000, 48)
        );

        let lock = cinema_grpc::SeatLock {
            lock_id: "l".into(),
            showtime_id: "s".into(),
            seats: vec![cinema_grpc::PricedSeat {
                number: "A1".into(),
                price_cents: 1500,
            }],
            expires_at_ms: 9,
        };
        let decoded: SeatLock = decode(&lock.encode_to_vec()).unwrap();
        assert_eq!(decoded.seats[0].number, "A1");
        assert_eq!(decoded.expires_at_ms, 9);
    }

    #[test]
    fn unknown_seat_statuses_and_garbage_are_unavailable() {
        assert!(matches!(
            seat_status(0, "A1"),
            Err(PortError::Unavailable(_))
        ));
        assert!(matches!(
            seat_status(7, "A1"),
            Err(PortError::Unavailable(_))
        ));
        assert!(matches!(
            decode::<Showtime>(&[0xff, 0xff]),
            Err(PortError::Unavailable(_))
        ));
    }
}
