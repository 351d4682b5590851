//! The outbox under Spin, which runs no background task: the component
//! drains it in the request (after a write that committed events, and at
//! the start of each sweep) over Spin's MQTT, one event at a time in
//! commit order. What goes out is the log's payload byte for byte —
//! [`booking_model::Event::to_json`], the body the host's relay publishes
//! to RabbitMQ — under the topic RabbitMQ's MQTT plugin turns into the
//! host's routing key.

use booking_adapters_core::sqlite::{self, Database};
use booking_model::{EventKind, PortResult, Timestamp};

/// Hands the oldest unpublished events (up to `limit`) to `publish` in
/// commit order as (kind, payload), marking each published only after
/// `publish` took it. Stops at the first failure, so no event overtakes
/// an earlier one; the rest wait for the next drain. Returns how many
/// were published.
pub fn drain_outbox(
    db: &impl Database,
    limit: u32,
    now: Timestamp,
    mut publish: impl FnMut(EventKind, &str) -> PortResult<()>,
) -> PortResult<u32> {
    let mut published = 0;
    for event in sqlite::unpublished(db, limit)? {
        publish(event.kind, &event.payload)?;
        sqlite::mark_published(db, [event.id.as_str()], now)?;
        published += 1;
    }
    Ok(published)
}

/// The MQTT topic of an event type. RabbitMQ's MQTT plugin maps `/` in a
/// topic to `.` in the AMQP routing key, so `booking/created` arrives with
/// routing key `booking.created`, the key the host publishes with.
pub fn mqtt_topic(kind: EventKind) -> String {
    kind.as_str().replace('.', "/")
}

#[cfg(test)]
mod tests {
    use booking_model::{Booking, BookingStatus, Event};

    use super::*;

    fn event(kind: EventKind, status: BookingStatus, n: usize) -> Event {
        Event {
            id: format!("b{n}-v1"),
            kind,
            occurred_at: 1_700_000_000_123,
            booking_id: format!("b{n}"),
            user_id: "user_123".into(),
            showtime_id: "showtime_456".into(),
            seats: vec!["A1".into(), "A2".into()],
            amount_cents: 3000,
            currency: "USD".into(),
            status,
            reason: n.is_multiple_of(2).then(|| "card \"declined\" ✓".into()),
        }
    }

    fn booking(event: &Event) -> Booking {
        Booking {
            id: event.booking_id.clone(),
            user_id: event.user_id.clone(),
            showtime_id: event.showtime_id.clone(),
            seats: event.seats.clone(),
            total_cents: event.amount_cents,
            currency: event.currency.clone(),
            status: event.status,
            lock_id: "l".into(),
            lock_expires_at: 1,
            payment_transaction_id: None,
            failure_reason: event.reason.clone(),
            created_at: 1,
            updated_at: 1,
            version: 0,
            charge_attempted_at: None,
            refunded_at: None,
            settle_after: None,
            settle_attempts: 0,
        }
    }

    /// What Spin publishes is what the host's RabbitMQ publisher sends
    /// (`serde_json::to_vec(event)` in `host/adapters/src/rabbitmq.rs`),
    /// byte for byte, for every kind and status, after the round trip
    /// through the write's `new_events` and the log's trigger.
    #[test]
    fn the_drained_payloads_are_the_hosts_message_bodies() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        sqlite::migrate(&db).unwrap();
        let mut written = Vec::new();
        for kind in EventKind::ALL {
            for status in BookingStatus::ALL {
                let e = event(kind, status, written.len());
                sqlite::insert_booking(&db, &booking(&e), std::slice::from_ref(&e)).unwrap();
                written.push(e);
            }
        }
        let mut sent = Vec::new();
        let published = drain_outbox(&db, 1000, 5, |kind, payload| {
            sent.push((kind, payload.as_bytes().to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(published as usize, written.len());
        let host: Vec<(EventKind, Vec<u8>)> = written
            .iter()
            .map(|e| (e.kind, serde_json::to_vec(e).unwrap()))
            .collect();
        assert_eq!(sent, host);
        assert_eq!(sqlite::backlog(&db).unwrap(), 0);
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
