//! One storage contract for every backend: the suite of
//! `booking_logic::testing::contract` (what the WIT `storage` interface
//! promises), plus what only concurrency or the outbox can show — racing
//! compare-and-swaps, and the outbox's order and marking — each run
//! against SQLite and MongoDB (`TEST_MONGODB_URL`, nx-27017 from
//! scripts/test-services.sh). Every MongoDB run gets a database of its own.

use std::sync::Arc;
use std::time::Duration;

use booking_adapters::mongo::events::MongoEventLog;
use booking_adapters::mongo::storage::MongoStorage;
use booking_adapters::outbox::{Delivery, Outbox};
use booking_adapters::sqlite::Database;
use booking_adapters::sqlite::events::SqliteEventLog;
use booking_adapters::sqlite::storage::SqliteStorage;
use booking_logic::model::{Booking, BookingStatus, Event, EventKind, IdempotencyRecord};
use booking_logic::ports::{Events, PortError, PortResult, Storage};
use booking_logic::testing::contract::{self, booking, event};
use tokio::task::JoinHandle;

use crate::support::mongo_database;

/// One backend's storage, event log and outbox, over one store.
struct Store {
    storage: Arc<dyn Storage>,
    events: Arc<dyn Events>,
    outbox: Arc<dyn Outbox>,
    /// Keeps a SQLite file until the test ends.
    _dir: Option<tempfile::TempDir>,
}

fn sqlite(delivery: Delivery) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("contract.sqlite3")).unwrap();
    let log = SqliteEventLog::with_delivery(db, delivery);
    Store {
        storage: Arc::new(SqliteStorage::new(log.clone())),
        events: Arc::new(log.clone()),
        outbox: Arc::new(log),
        _dir: Some(dir),
    }
}

/// A store in a fresh database on the test server, or `None` to skip.
async fn mongo(delivery: Delivery) -> Option<Store> {
    let db = mongo_database().await?;
    let log = MongoEventLog::open(db, delivery).await.expect("indexes");
    let storage = MongoStorage::open(log.clone()).await.expect("indexes");
    Some(Store {
        storage: Arc::new(storage),
        events: Arc::new(log.clone()),
        outbox: Arc::new(log),
        _dir: None,
    })
}

fn ids(events: &[Event]) -> Vec<&str> {
    events.iter().map(|event| event.id.as_str()).collect()
}

/// The unpublished events of one booking, in the outbox's order.
async fn unpublished_of(outbox: &dyn Outbox, booking_id: &str) -> Vec<String> {
    outbox
        .unpublished(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.booking_id == booking_id)
        .map(|event| event.id)
        .collect()
}

/// The index and new version of the one compare-and-swap of `attempts`
/// that won; every other one lost with `Conflict`.
async fn the_one_winner(attempts: Vec<JoinHandle<PortResult<u64>>>) -> (usize, u64) {
    let mut winners = Vec::new();
    for (n, attempt) in attempts.into_iter().enumerate() {
        match attempt.await.unwrap() {
            Ok(version) => winners.push((n, version)),
            Err(PortError::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    winners[0]
}

/// Twenty writers of one version: exactly one wins, and only its event is
/// committed.
async fn racing_updates_have_one_winner(store: &Store) {
    let original = booking("race", "race-user", 10);
    let created = event(&original, EventKind::BookingCreated, "v1");
    store
        .storage
        .insert(&original, std::slice::from_ref(&created))
        .await
        .unwrap();
    let attempts: Vec<_> = (0..20)
        .map(|n| {
            let storage = store.storage.clone();
            let update = Booking {
                status: BookingStatus::Cancelled,
                failure_reason: Some(format!("writer {n}")),
                ..original.clone()
            };
            let announced = event(&update, EventKind::BookingCancelled, &format!("v2-{n}"));
            tokio::spawn(async move { storage.update_if_version(&update, 1, &[announced]).await })
        })
        .collect();
    let (winner, version) = the_one_winner(attempts).await;
    let now = store.storage.get("race").await.unwrap().unwrap();
    assert_eq!((version, now.version), (2, 2));
    assert_eq!(now.failure_reason, Some(format!("writer {winner}")));
    let history = store.events.history("race").await.unwrap();
    assert_eq!(
        ids(&history),
        ["race-v1".to_owned(), format!("race-v2-{winner}")],
        "only the winner's event"
    );
}

async fn racing_idempotency_updates_have_one_winner(store: &Store) {
    let record = IdempotencyRecord {
        user_id: "race-user".into(),
        key: "k".into(),
        fingerprint: "createBooking:1".into(),
        response: None,
        lease_expires_at: 50,
        expires_at: contract::LATER,
        version: 0,
    };
    store
        .storage
        .insert_idempotency_record(&record)
        .await
        .unwrap();
    let attempts: Vec<_> = (0..20)
        .map(|n| {
            let storage = store.storage.clone();
            let update = IdempotencyRecord {
                response: Some(format!("writer {n}")),
                ..record.clone()
            };
            tokio::spawn(async move { storage.update_idempotency_record(&update, 1).await })
        })
        .collect();
    let (winner, version) = the_one_winner(attempts).await;
    let now = store
        .storage
        .get_idempotency_record("race-user", "k")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((version, now.version), (2, 2));
    assert_eq!(now.response, Some(format!("writer {winner}")));
}

/// With a relay (`Delivery::Relayed`): every committed event waits in the
/// outbox, each booking's in commit order, until marked published; a
/// failed write adds nothing; writes wake the relay.
async fn outbox_order_and_marking(store: &Store) {
    let (storage, outbox) = (store.storage.as_ref(), store.outbox.as_ref());
    assert_eq!(outbox.backlog().await, Ok(0));
    assert_eq!(outbox.unpublished(10).await, Ok(vec![]));

    let written = outbox.written();
    let ghost = booking("out-ghost", "out-user", 10);
    let missing = storage
        .update_if_version(&ghost, 1, &[event(&ghost, EventKind::BookingExpired, "v2")])
        .await;
    assert!(
        matches!(missing, Err(PortError::NotFound(_))),
        "{missing:?}"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), written.notified())
            .await
            .is_err(),
        "a failed write does not wake the relay"
    );
    let one = booking("out-one", "out-user", 10);
    storage
        .insert(&one, &[event(&one, EventKind::BookingCreated, "v1")])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(1), written.notified())
        .await
        .expect("a write with events wakes the relay");

    let other = booking("out-other", "out-user", 10);
    storage
        .insert(&other, &[event(&other, EventKind::BookingCreated, "v1")])
        .await
        .unwrap();
    let confirmed = Booking {
        status: BookingStatus::Confirmed,
        ..one.clone()
    };
    storage
        .update_if_version(
            &confirmed,
            1,
            &[event(&confirmed, EventKind::BookingConfirmed, "v2")],
        )
        .await
        .unwrap();
    storage.update_if_version(&confirmed, 2, &[]).await.unwrap();
    let refunded = Booking {
        status: BookingStatus::Refunded,
        ..one.clone()
    };
    storage
        .update_if_version(
            &refunded,
            3,
            &[event(&refunded, EventKind::BookingRefunded, "v4")],
        )
        .await
        .unwrap();
    let stale = storage
        .update_if_version(
            &refunded,
            1,
            &[event(&refunded, EventKind::BookingExpired, "lost")],
        )
        .await;
    assert!(matches!(stale, Err(PortError::Conflict(_))), "{stale:?}");

    assert_eq!(outbox.backlog().await, Ok(4), "the failed write added none");
    assert_eq!(
        unpublished_of(outbox, "out-one").await,
        ["out-one-v1", "out-one-v2", "out-one-v4"],
        "a booking's events in commit order"
    );
    assert_eq!(unpublished_of(outbox, "out-other").await, ["out-other-v1"]);
    let first_two = outbox.unpublished(2).await.unwrap();
    assert_eq!(first_two.len(), 2, "at most the limit");

    let heads: Vec<Event> = outbox
        .unpublished(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.id.ends_with("-v1"))
        .collect();
    assert_eq!(heads.len(), 2);
    outbox.mark_published(&heads).await.unwrap();
    assert_eq!(outbox.backlog().await, Ok(2));
    assert_eq!(
        unpublished_of(outbox, "out-one").await,
        ["out-one-v2", "out-one-v4"]
    );
    assert_eq!(
        unpublished_of(outbox, "out-other").await,
        Vec::<String>::new()
    );
    outbox.mark_published(&heads).await.unwrap();
    assert_eq!(outbox.backlog().await, Ok(2), "marking again is harmless");

    let rest = outbox.unpublished(100).await.unwrap();
    outbox.mark_published(&rest).await.unwrap();
    assert_eq!(outbox.backlog().await, Ok(0));
    assert_eq!(outbox.unpublished(100).await, Ok(vec![]));
    assert_eq!(
        ids(&store.events.history("out-one").await.unwrap()),
        ["out-one-v1", "out-one-v2", "out-one-v4"],
        "the history keeps published events"
    );
}

/// Without a broker (`Delivery::Stored`) the log is the sink: nothing
/// waits, the history is complete.
async fn no_broker_nothing_waits(store: &Store) {
    let stored = booking("sink", "sink-user", 10);
    store
        .storage
        .insert(&stored, &[event(&stored, EventKind::BookingCreated, "v1")])
        .await
        .unwrap();
    store
        .storage
        .update_if_version(
            &stored,
            1,
            &[event(&stored, EventKind::BookingCancelled, "v2")],
        )
        .await
        .unwrap();
    assert_eq!(store.outbox.backlog().await, Ok(0));
    assert_eq!(store.outbox.unpublished(10).await, Ok(vec![]));
    assert_eq!(
        ids(&store.events.history("sink").await.unwrap()),
        ["sink-v1", "sink-v2"]
    );
}

#[tokio::test]
async fn sqlite_keeps_the_storage_contract() {
    for delivery in [Delivery::Stored, Delivery::Relayed] {
        let store = sqlite(delivery);
        contract::check_all(store.storage.as_ref(), store.events.as_ref()).await;
    }
}

#[tokio::test]
async fn sqlite_racing_writers_have_one_winner() {
    let store = sqlite(Delivery::Relayed);
    racing_updates_have_one_winner(&store).await;
    racing_idempotency_updates_have_one_winner(&store).await;
}

#[tokio::test]
async fn sqlite_outbox_keeps_order_and_marks() {
    outbox_order_and_marking(&sqlite(Delivery::Relayed)).await;
    no_broker_nothing_waits(&sqlite(Delivery::Stored)).await;
}

#[tokio::test]
async fn mongodb_keeps_the_storage_contract() {
    for delivery in [Delivery::Stored, Delivery::Relayed] {
        let Some(store) = mongo(delivery).await else {
            return;
        };
        contract::check_all(store.storage.as_ref(), store.events.as_ref()).await;
    }
}

#[tokio::test]
async fn mongodb_racing_writers_have_one_winner() {
    let Some(store) = mongo(Delivery::Relayed).await else {
        return;
    };
    racing_updates_have_one_winner(&store).await;
    racing_idempotency_updates_have_one_winner(&store).await;
}

#[tokio::test]
async fn mongodb_outbox_keeps_order_and_marks() {
    let (Some(relayed), Some(stored)) = (
        mongo(Delivery::Relayed).await,
        mongo(Delivery::Stored).await,
    ) else {
        return;
    };
    outbox_order_and_marking(&relayed).await;
    no_broker_nothing_waits(&stored).await;
}
