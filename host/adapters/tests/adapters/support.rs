//! What the adapter tests share beyond `test_support`: test events, the
//! trust roots of a test CA, MongoDB settings and databases.

use std::time::Duration;

use booking_adapters::mongo::{Durability, MongoConfig, MongoDatabase};
use booking_adapters::tls::TlsRoots;
use booking_logic::model::{Event, EventKind};
use test_support::tls::TestCa;
use test_support::{service_url, unique};

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

/// MongoDB settings for `database` on `url`: short timeouts, the default
/// durability, the public roots.
pub fn config(url: String, database: &str) -> MongoConfig {
    MongoConfig {
        url,
        database: Some(database.to_owned()),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        durability: Durability::default(),
        tls: TlsRoots::default(),
    }
}

/// A fresh database on the test server (`TEST_MONGODB_URL`), or `None` to
/// skip.
pub async fn mongo_database() -> Option<MongoDatabase> {
    let url = service_url("TEST_MONGODB_URL")?;
    Some(
        MongoDatabase::connect(&config(url, &unique("test")))
            .await
            .expect("a valid MongoDB URL"),
    )
}
