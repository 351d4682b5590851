//! Shared by the real-backend adapter tests: the test servers and an
//! outage proxy (from the end-to-end harness), and test events.

use booking_logic::model::{Event, EventKind};

// Shared with the end-to-end tests.
#[path = "../../../../tests/src/servers.rs"]
mod servers;
pub use servers::{Proxy, service_url, unique};

pub fn event(id: &str, booking: &str, kind: EventKind) -> Event {
    Event {
        id: id.into(),
        kind,
        occurred_at: 1_700_000_000_000,
        booking_id: booking.into(),
        user_id: "user_123".into(),
        showtime_id: "showtime_456".into(),
        seats: vec!["A1".into(), "A2".into()],
        amount_cents: 3000,
        currency: "USD".into(),
        status: booking_logic::model::BookingStatus::Pending,
        reason: None,
    }
}
