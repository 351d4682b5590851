//! The subscription root. Its resolvers never wait for changes
//! themselves: an instance lives for one call. Each call brings a
//! [`Source`] — `Start` (authorize, answer the current state, name the
//! topic to watch) or `Changes` (the committed events of that topic the
//! host has carried since) — and the resolvers answer from it, so the
//! selection set, arguments and errors work as for any GraphQL field
//! (see `crate::live`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::{Context, Result, SimpleObject, Subscription as GraphqlSubscription};
use futures::stream::{self, BoxStream, StreamExt};

use super::{BookingView, SeatStatus, coded, readable_booking, workflow};
use crate::error::BookingError;
use crate::model::{self, Event, EventKind};
use crate::validation;

/// What one call answers from.
#[derive(Clone)]
pub enum Source {
    /// A subscription starts: the resolver checks access, answers the
    /// current state and names its topic here.
    Start(Arc<Mutex<Option<String>>>),
    /// Events of the subscription's topic, committed since, in commit
    /// order per booking.
    Changes(Arc<[Event]>),
}

/// The topic of a showtime's seat changes.
pub fn showtime_topic(showtime_id: &str) -> String {
    format!("showtime:{showtime_id}")
}

/// The topic of one booking's changes.
pub fn booking_topic(booking_id: &str) -> String {
    format!("booking:{booking_id}")
}

/// One seat's status as of a change.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct SeatChange {
    number: String,
    status: SeatStatus,
}

/// A message of `seatMap`.
#[derive(SimpleObject, Debug, Clone)]
pub struct SeatMapUpdate {
    showtime_id: String,
    /// True for the first message, which lists every seat; later ones
    /// list only the seats that changed.
    snapshot: bool,
    seats: Vec<SeatChange>,
}

pub struct Subscription;

#[GraphqlSubscription]
impl Subscription {
    /// A showtime's seat statuses: a snapshot of every seat first, then
    /// the seats each batch of bookings changed. Public, like
    /// `showtimeSeats`.
    async fn seat_map(
        &self,
        ctx: &Context<'_>,
        showtime_id: String,
    ) -> Result<BoxStream<'static, SeatMapUpdate>> {
        validation::id("showtimeId", &showtime_id).map_err(coded)?;
        let update = match source(ctx)? {
            Source::Start(topic) => {
                let seats = workflow(ctx)?.seat_map(&showtime_id).await.map_err(coded)?;
                name_topic(&topic, showtime_topic(&showtime_id));
                Some(SeatMapUpdate {
                    seats: seats
                        .into_iter()
                        .map(|seat| SeatChange {
                            number: seat.number,
                            status: seat.status.into(),
                        })
                        .collect(),
                    showtime_id,
                    snapshot: true,
                })
            }
            Source::Changes(events) => {
                let seats = seat_changes(&showtime_id, &events);
                (!seats.is_empty()).then_some(SeatMapUpdate {
                    showtime_id,
                    snapshot: false,
                    seats,
                })
            }
        };
        Ok(stream::iter(update).boxed())
    }

    /// One booking as it changes: the booking now, then after every
    /// change (status, `lockExpiresAt`, refund). For its owner or the
    /// `support` role, as `getBooking`.
    async fn booking_status(
        &self,
        ctx: &Context<'_>,
        booking_id: String,
    ) -> Result<BoxStream<'static, BookingView>> {
        let booking = match source(ctx)? {
            Source::Start(topic) => {
                let booking = readable_booking(ctx, &booking_id)
                    .await?
                    .ok_or_else(|| coded(BookingError::BookingNotFound(booking_id.clone())))?;
                name_topic(&topic, booking_topic(&booking_id));
                Some(booking)
            }
            // Access was decided when it started; the booking as stored
            // now is what every change of it looks like.
            Source::Changes(events)
                if events.iter().any(|event| event.booking_id == booking_id) =>
            {
                workflow(ctx)?
                    .get_booking(&booking_id)
                    .await
                    .map_err(coded)?
            }
            Source::Changes(_) => None,
        };
        Ok(stream::iter(booking.map(BookingView)).boxed())
    }
}

fn source(ctx: &Context<'_>) -> Result<Source> {
    ctx.data::<Source>().cloned()
}

fn name_topic(cell: &Mutex<Option<String>>, topic: String) {
    *cell.lock().unwrap_or_else(PoisonError::into_inner) = Some(topic);
}

/// What `events` did to the seats of `showtime_id`, the latest status
/// of each seat they touch (events are in commit order per booking).
/// Ended bookings give their seats back; their release by the Cinema
/// follows at once (or with the sweep's retries).
fn seat_changes(showtime_id: &str, events: &[Event]) -> Vec<SeatChange> {
    let mut seats = BTreeMap::new();
    for event in events
        .iter()
        .filter(|event| event.showtime_id == showtime_id)
    {
        let status = match event.kind {
            EventKind::BookingCreated => model::SeatStatus::Locked,
            EventKind::BookingConfirmed => model::SeatStatus::Booked,
            EventKind::BookingPaymentFailed
            | EventKind::BookingFailed
            | EventKind::BookingCancelled
            | EventKind::BookingExpired
            | EventKind::BookingRefunded => model::SeatStatus::Available,
            EventKind::PaymentRefunded | EventKind::BookingLockExtended => continue,
        };
        for seat in &event.seats {
            seats.insert(seat.clone(), status);
        }
    }
    seats
        .into_iter()
        .map(|(number, status)| SeatChange {
            number,
            status: status.into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Booking, BookingStatus};

    fn event(booking: &str, kind: EventKind, seats: &[&str]) -> Event {
        let booking = Booking {
            id: booking.into(),
            user_id: "user_123".into(),
            showtime_id: "showtime_456".into(),
            seats: seats.iter().map(|seat| seat.to_string()).collect(),
            total_cents: 0,
            currency: "USD".into(),
            status: BookingStatus::Pending,
            lock_id: "lock".into(),
            lock_expires_at: 0,
            payment_transaction_id: None,
            failure_reason: None,
            created_at: 0,
            updated_at: 0,
            version: 1,
            charge_attempted_at: None,
            refunded_at: None,
            settle_after: None,
            settle_attempts: 0,
        };
        Event::announcing(&booking, kind, format!("{}-{kind:?}", booking.id), 0)
    }

    #[test]
    fn each_seat_shows_its_latest_status_and_other_showtimes_are_left_out() {
        let mut other = event("b9", EventKind::BookingCreated, &["A1"]);
        other.showtime_id = "showtime_789".into();
        let events = [
            event("b1", EventKind::BookingCreated, &["A1", "A2"]),
            event("b2", EventKind::BookingCreated, &["B1"]),
            event("b1", EventKind::BookingLockExtended, &["A1", "A2"]),
            event("b1", EventKind::BookingPaymentFailed, &["A1", "A2"]),
            event("b3", EventKind::BookingCreated, &["A2"]),
            event("b2", EventKind::BookingConfirmed, &["B1"]),
            event("b1", EventKind::PaymentRefunded, &["A1", "A2"]),
            other,
        ];
        let changes = seat_changes("showtime_456", &events);
        let expected = [
            ("A1", SeatStatus::Available),
            ("A2", SeatStatus::Locked),
            ("B1", SeatStatus::Booked),
        ]
        .map(|(number, status)| SeatChange {
            number: number.into(),
            status,
        });
        assert_eq!(changes, expected);
        assert!(seat_changes("showtime_456", &events[2..3]).is_empty());
    }
}
