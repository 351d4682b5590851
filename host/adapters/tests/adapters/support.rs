//! What the adapter tests share beyond `test_support`: test events and
//! the trust roots of a test CA.

use booking_adapters::tls::TlsRoots;
use booking_logic::model::{Event, EventKind};
use test_support::tls::TestCa;

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

/// The public roots and `ca`.
pub fn roots(ca: &TestCa) -> TlsRoots {
    TlsRoots::with_ca_file(&ca.ca_file).expect("a valid CA file")
}
