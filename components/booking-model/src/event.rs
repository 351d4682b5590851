//! WIT `storage.event`: a domain event, and its JSON — the one wire form
//! every event log stores and every publisher (AMQP from the host, MQTT
//! from Spin) sends, byte for byte.

use serde::{Deserialize, Serialize};

use crate::{Booking, BookingStatus, PortError, PortResult, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "booking.created")]
    BookingCreated,
    #[serde(rename = "booking.confirmed")]
    BookingConfirmed,
    #[serde(rename = "booking.payment_failed")]
    BookingPaymentFailed,
    #[serde(rename = "booking.failed")]
    BookingFailed,
    #[serde(rename = "booking.cancelled")]
    BookingCancelled,
    #[serde(rename = "booking.expired")]
    BookingExpired,
    #[serde(rename = "booking.refunded")]
    BookingRefunded,
    #[serde(rename = "booking.payment_refunded")]
    PaymentRefunded,
    #[serde(rename = "booking.lock_extended")]
    BookingLockExtended,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::BookingCreated,
        EventKind::BookingConfirmed,
        EventKind::BookingPaymentFailed,
        EventKind::BookingFailed,
        EventKind::BookingCancelled,
        EventKind::BookingExpired,
        EventKind::BookingRefunded,
        EventKind::PaymentRefunded,
        EventKind::BookingLockExtended,
    ];

    /// The event type and AMQP routing key, e.g. `booking.created`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::BookingCreated => "booking.created",
            EventKind::BookingConfirmed => "booking.confirmed",
            EventKind::BookingPaymentFailed => "booking.payment_failed",
            EventKind::BookingFailed => "booking.failed",
            EventKind::BookingCancelled => "booking.cancelled",
            EventKind::BookingExpired => "booking.expired",
            EventKind::BookingRefunded => "booking.refunded",
            EventKind::PaymentRefunded => "booking.payment_refunded",
            EventKind::BookingLockExtended => "booking.lock_extended",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// Committed with the booking write it announces. Its id is
/// `<booking-id>-v<version>`; consumers de-duplicate on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub occurred_at: Timestamp,
    pub booking_id: String,
    pub user_id: String,
    pub showtime_id: String,
    pub seats: Vec<String>,
    pub amount_cents: u64,
    pub currency: String,
    pub status: BookingStatus,
    pub reason: Option<String>,
}

impl Event {
    /// An event of `kind` announcing `booking` as it is now.
    pub fn announcing(
        booking: &Booking,
        kind: EventKind,
        id: String,
        occurred_at: Timestamp,
    ) -> Event {
        Event {
            id,
            kind,
            occurred_at,
            booking_id: booking.id.clone(),
            user_id: booking.user_id.clone(),
            showtime_id: booking.showtime_id.clone(),
            seats: booking.seats.clone(),
            amount_cents: booking.total_cents,
            currency: booking.currency.clone(),
            status: booking.status,
            reason: booking.failure_reason.clone(),
        }
    }

    /// The wire JSON (camelCase fields, `type` = the routing key).
    pub fn to_json(&self) -> String {
        // Strings, integers and lists of strings always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored event back; a payload that is not one is a corrupt
    /// log, which the store reports as `unavailable`.
    pub fn from_json(payload: &str) -> PortResult<Event> {
        serde_json::from_str(payload)
            .map_err(|error| PortError::Unavailable(format!("corrupt event in the log: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, status: BookingStatus, reason: Option<&str>) -> Event {
        Event {
            id: "b1-v2".into(),
            kind,
            occurred_at: 1_700_000_000_123,
            booking_id: "b1".into(),
            user_id: "user_123".into(),
            showtime_id: "showtime_456".into(),
            seats: vec!["A1".into(), "A2".into()],
            amount_cents: 3000,
            currency: "USD".into(),
            status,
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn the_wire_json_names_every_kind_and_status_as_the_contract_does() {
        for kind in EventKind::ALL {
            for status in BookingStatus::ALL {
                let event = event(kind, status, Some("card \"declined\" ✓"));
                let json = event.to_json();
                assert!(json.starts_with(r#"{"id":"b1-v2","type":""#), "{json}");
                assert!(json.contains(&format!(r#""type":"{}""#, kind.as_str())));
                assert!(json.contains(&format!(r#""status":"{}""#, status.as_str())));
                assert_eq!(Event::from_json(&json), Ok(event));
            }
        }
        assert_eq!(
            event(EventKind::BookingCreated, BookingStatus::Pending, None).to_json(),
            r#"{"id":"b1-v2","type":"booking.created","occurredAt":1700000000123,"bookingId":"b1","userId":"user_123","showtimeId":"showtime_456","seats":["A1","A2"],"amountCents":3000,"currency":"USD","status":"PENDING","reason":null}"#
        );
    }

    #[test]
    fn a_corrupt_payload_is_unavailable() {
        assert!(matches!(
            Event::from_json("{}"),
            Err(PortError::Unavailable(_))
        ));
        let odd = event(
            EventKind::BookingPaymentFailed,
            BookingStatus::PaymentFailed,
            None,
        )
        .to_json()
        .replace("booking.payment_failed", "booking.exploded");
        assert!(matches!(
            Event::from_json(&odd),
            Err(PortError::Unavailable(_))
        ));
    }
}
