//! The event JSON: byte for byte what the host's RabbitMQ publisher sends
//! (`serde_json::to_vec(&booking_logic::model::Event)` in
//! `host/adapters/src/rabbitmq.rs`), and the MQTT topic that RabbitMQ's
//! MQTT plugin turns into the host's routing key.

use serde::{Deserialize, Serialize};

use crate::model::{BookingStatus, Error, Event, EventKind};

/// Field order and names as `booking_logic::model::Event` serialises.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    occurred_at: u64,
    booking_id: String,
    user_id: String,
    showtime_id: String,
    seats: Vec<String>,
    amount_cents: u64,
    currency: String,
    status: String,
    reason: Option<String>,
}

pub fn to_json(event: &Event) -> String {
    let wire = Wire {
        id: event.id.clone(),
        kind: event.kind.as_str().to_owned(),
        occurred_at: event.occurred_at,
        booking_id: event.booking_id.clone(),
        user_id: event.user_id.clone(),
        showtime_id: event.showtime_id.clone(),
        seats: event.seats.clone(),
        amount_cents: event.amount_cents,
        currency: event.currency.clone(),
        status: event.status.as_str().to_owned(),
        reason: event.reason.clone(),
    };
    // Strings, integers and lists of strings always serialise.
    serde_json::to_string(&wire).unwrap_or_default()
}

pub fn from_json(payload: &str) -> Result<Event, Error> {
    let corrupt =
        |detail: String| Error::Unavailable(format!("corrupt event in the log: {detail}"));
    let wire: Wire = serde_json::from_str(payload).map_err(|e| corrupt(e.to_string()))?;
    Ok(Event {
        kind: EventKind::parse(&wire.kind).ok_or_else(|| corrupt(format!("type {}", wire.kind)))?,
        status: BookingStatus::parse(&wire.status)
            .ok_or_else(|| corrupt(format!("status {}", wire.status)))?,
        id: wire.id,
        occurred_at: wire.occurred_at,
        booking_id: wire.booking_id,
        user_id: wire.user_id,
        showtime_id: wire.showtime_id,
        seats: wire.seats,
        amount_cents: wire.amount_cents,
        currency: wire.currency,
        reason: wire.reason,
    })
}

/// The MQTT topic of an event type. RabbitMQ's MQTT plugin maps `/` in a
/// topic to `.` in the AMQP routing key, so `booking/created` arrives with
/// routing key `booking.created`, the key the host publishes with.
pub fn mqtt_topic(kind: EventKind) -> String {
    kind.as_str().replace('.', "/")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn event() -> Event {
        Event {
            id: "e1".into(),
            kind: EventKind::BookingPaymentFailed,
            occurred_at: 1_700_000_000_123,
            booking_id: "b1".into(),
            user_id: "user_123".into(),
            showtime_id: "showtime_456".into(),
            seats: vec!["A1".into(), "A2".into()],
            amount_cents: 3000,
            currency: "USD".into(),
            status: BookingStatus::PaymentFailed,
            reason: Some("card \"declined\" ✓".into()),
        }
    }

    fn host_event(e: &Event) -> booking_logic::model::Event {
        use booking_logic::model as host;
        host::Event {
            id: e.id.clone(),
            kind: host::EventKind::parse(e.kind.as_str()).unwrap(),
            occurred_at: e.occurred_at,
            booking_id: e.booking_id.clone(),
            user_id: e.user_id.clone(),
            showtime_id: e.showtime_id.clone(),
            seats: e.seats.clone(),
            amount_cents: e.amount_cents,
            currency: e.currency.clone(),
            status: serde_json::from_value(serde_json::Value::String(e.status.as_str().into()))
                .unwrap(),
            reason: e.reason.clone(),
        }
    }

    #[test]
    fn the_json_is_byte_identical_to_the_hosts_for_every_kind_and_status() {
        for kind in EventKind::ALL {
            for status in BookingStatus::ALL {
                for reason in [None, Some("why".to_owned())] {
                    let ours = Event {
                        kind,
                        status,
                        reason,
                        ..event()
                    };
                    let host = serde_json::to_vec(&host_event(&ours)).unwrap();
                    assert_eq!(to_json(&ours).as_bytes(), host.as_slice());
                    assert_eq!(from_json(&to_json(&ours)).unwrap(), ours);
                }
            }
        }
        let ours = event();
        assert_eq!(
            to_json(&ours).into_bytes(),
            serde_json::to_vec(&host_event(&ours)).unwrap()
        );
    }

    #[test]
    fn the_log_payload_reads_back() {
        let e = event();
        assert_eq!(from_json(&to_json(&e)).unwrap(), e);
        assert!(matches!(from_json("{}"), Err(Error::Unavailable(_))));
        let odd = to_json(&e).replace("booking.payment_failed", "booking.exploded");
        assert!(matches!(from_json(&odd), Err(Error::Unavailable(_))));
    }

    #[test]
    fn topics_become_the_hosts_routing_keys_in_rabbitmq() {
        assert_eq!(mqtt_topic(EventKind::BookingCreated), "booking/created");
        assert_eq!(
            mqtt_topic(EventKind::BookingPaymentFailed),
            "booking/payment_failed"
        );
        assert_eq!(
            mqtt_topic(EventKind::PaymentRefunded),
            "booking/payment_refunded"
        );
    }
}
