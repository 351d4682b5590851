//! `cinema:booking/events` → `ports::Events`.

use booking_logic::model;

use super::storage::{to_model_status, to_wit_status};
use super::wit_error;
use crate::bindings::events::{Event, EventKind, Host};
use crate::bindings::types::Error;
use crate::state::RequestState;

fn to_model(e: Event) -> model::Event {
    model::Event {
        id: e.id,
        kind: match e.kind {
            EventKind::BookingCreated => model::EventKind::BookingCreated,
            EventKind::BookingConfirmed => model::EventKind::BookingConfirmed,
            EventKind::BookingPaymentFailed => model::EventKind::BookingPaymentFailed,
            EventKind::BookingFailed => model::EventKind::BookingFailed,
            EventKind::BookingCancelled => model::EventKind::BookingCancelled,
            EventKind::BookingExpired => model::EventKind::BookingExpired,
            EventKind::BookingRefunded => model::EventKind::BookingRefunded,
        },
        occurred_at: e.occurred_at,
        booking_id: e.booking_id,
        user_id: e.user_id,
        showtime_id: e.showtime_id,
        seats: e.seats,
        amount_cents: e.amount_cents,
        currency: e.currency,
        status: to_model_status(e.status),
        reason: e.reason,
    }
}

fn to_wit(e: model::Event) -> Event {
    Event {
        id: e.id,
        kind: match e.kind {
            model::EventKind::BookingCreated => EventKind::BookingCreated,
            model::EventKind::BookingConfirmed => EventKind::BookingConfirmed,
            model::EventKind::BookingPaymentFailed => EventKind::BookingPaymentFailed,
            model::EventKind::BookingFailed => EventKind::BookingFailed,
            model::EventKind::BookingCancelled => EventKind::BookingCancelled,
            model::EventKind::BookingExpired => EventKind::BookingExpired,
            model::EventKind::BookingRefunded => EventKind::BookingRefunded,
        },
        occurred_at: e.occurred_at,
        booking_id: e.booking_id,
        user_id: e.user_id,
        showtime_id: e.showtime_id,
        seats: e.seats,
        amount_cents: e.amount_cents,
        currency: e.currency,
        status: to_wit_status(e.status),
        reason: e.reason,
    }
}

impl Host for RequestState {
    async fn publish(&mut self, event: Event) -> Result<(), Error> {
        self.ports
            .events
            .publish(&to_model(event))
            .await
            .map_err(wit_error)
    }

    async fn history(&mut self, booking_id: String) -> Result<Vec<Event>, Error> {
        let history = self
            .ports
            .events
            .history(&booking_id)
            .await
            .map_err(wit_error)?;
        Ok(history.into_iter().map(to_wit).collect())
    }
}
