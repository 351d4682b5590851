//! The MongoDB storage and event log against a real MongoDB-wire server
//! (`TEST_MONGODB_URL`, nx-27017 from scripts/test-services.sh). Each test
//! works in a database of its own.

mod support;

use std::time::{Duration, Instant};

use booking_adapters::mongo::{MongoConfig, MongoDatabase};
use booking_adapters::mongo_events::MongoEventLog;
use booking_adapters::mongo_storage::MongoStorage;
use booking_adapters::outbox::{Delivery, Outbox};
use booking_logic::model::{Booking, BookingStatus, EventKind, IdempotencyRecord, PageRequest};
use booking_logic::ports::{Events, PortError, Storage};
use futures::TryStreamExt;
use mongodb::bson::Document;
use support::{Proxy, event, service_url, unique};

fn config(url: String, database: &str) -> MongoConfig {
    MongoConfig {
        url,
        database: Some(database.to_owned()),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
    }
}

/// A fresh database on the test server, or `None` to skip.
async fn database() -> Option<MongoDatabase> {
    let url = service_url("TEST_MONGODB_URL")?;
    Some(
        MongoDatabase::connect(&config(url, &unique("test")))
            .await
            .expect("a valid MongoDB URL"),
    )
}

fn booking(
    id: &str,
    user: &str,
    created_at: u64,
    status: BookingStatus,
    lock_expires_at: u64,
) -> Booking {
    Booking {
        id: id.into(),
        user_id: user.into(),
        showtime_id: "showtime_456".into(),
        seats: vec!["A1".into(), "A2".into()],
        total_cents: 3000,
        currency: "USD".into(),
        status,
        lock_id: format!("lock-{id}"),
        lock_expires_at,
        payment_transaction_id: None,
        failure_reason: None,
        created_at,
        updated_at: created_at,
        version: 0,
    }
}

#[tokio::test]
async fn versioned_updates_let_exactly_one_writer_win() {
    let Some(db) = database().await else { return };
    let storage = MongoStorage::open(db).await.expect("indexes");
    let original = booking("b1", "u1", 10, BookingStatus::Pending, 100);
    storage.insert(&original).await.unwrap();
    assert!(matches!(
        storage.insert(&original).await,
        Err(PortError::Conflict(_))
    ));

    let stored = storage.get("b1").await.unwrap().unwrap();
    assert_eq!(
        stored,
        Booking {
            version: 1,
            ..original
        }
    );

    let mut confirmed = stored.clone();
    confirmed.status = BookingStatus::Confirmed;
    confirmed.payment_transaction_id = Some("tx".into());
    confirmed.updated_at = 20;
    assert_eq!(storage.update_if_version(&confirmed, 1).await.unwrap(), 2);

    let mut expired = stored;
    expired.status = BookingStatus::Expired;
    assert!(matches!(
        storage.update_if_version(&expired, 1).await,
        Err(PortError::Conflict(_))
    ));
    let now = storage.get("b1").await.unwrap().unwrap();
    assert_eq!(
        now,
        Booking {
            version: 2,
            ..confirmed
        }
    );

    let ghost = booking("ghost", "u1", 1, BookingStatus::Pending, 1);
    assert!(matches!(
        storage.update_if_version(&ghost, 1).await,
        Err(PortError::NotFound(_))
    ));
    assert_eq!(storage.get("ghost").await.unwrap(), None);
}

#[tokio::test]
async fn twenty_racing_updates_of_one_version_have_one_winner() {
    let Some(db) = database().await else { return };
    let storage = MongoStorage::open(db).await.expect("indexes");
    storage
        .insert(&booking("b1", "u1", 10, BookingStatus::Pending, 100))
        .await
        .unwrap();
    let stored = storage.get("b1").await.unwrap().unwrap();
    let attempts: Vec<_> = (0..20)
        .map(|n| {
            let (storage, mut update) = (storage.clone(), stored.clone());
            update.failure_reason = Some(format!("writer {n}"));
            update.status = BookingStatus::Cancelled;
            tokio::spawn(async move { storage.update_if_version(&update, 1).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (n, attempt) in attempts.into_iter().enumerate() {
        match attempt.await.unwrap() {
            Ok(version) => winners.push((n, version)),
            Err(PortError::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (winner, version) = winners[0];
    let now = storage.get("b1").await.unwrap().unwrap();
    assert_eq!(version, 2);
    assert_eq!(now.version, 2);
    assert_eq!(now.failure_reason, Some(format!("writer {winner}")));
}

#[tokio::test]
async fn user_listing_pages_newest_first_without_gaps_or_repeats() {
    let Some(db) = database().await else { return };
    let storage = MongoStorage::open(db).await.expect("indexes");
    for n in 0..7u64 {
        storage
            .insert(&booking(
                &format!("b{n}"),
                "u1",
                100 + n / 2,
                BookingStatus::Pending,
                1,
            ))
            .await
            .unwrap();
    }
    storage
        .insert(&booking("other", "u2", 500, BookingStatus::Pending, 1))
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = storage
            .list_by_user("u1", &PageRequest { cursor, limit: 3 })
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|b| (b.created_at, b.id.clone())));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut expected = seen.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected, "newest first");
    assert_eq!(seen.len(), 7);
    assert!(matches!(
        storage
            .list_by_user(
                "u1",
                &PageRequest {
                    cursor: Some("garbage".into()),
                    limit: 3
                }
            )
            .await,
        Err(PortError::Rejected(_))
    ));
}

#[tokio::test]
async fn only_pending_bookings_past_their_lock_are_expired_candidates() {
    let Some(db) = database().await else { return };
    let storage = MongoStorage::open(db).await.expect("indexes");
    for (id, status, expires) in [
        ("late", BookingStatus::Pending, 50),
        ("later", BookingStatus::Pending, 40),
        ("fresh", BookingStatus::Pending, 500),
        ("paid", BookingStatus::Confirmed, 10),
    ] {
        storage
            .insert(&booking(id, "u1", 1, status, expires))
            .await
            .unwrap();
    }
    let due = storage.list_expired_pending(100, 10).await.unwrap();
    let ids: Vec<_> = due.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["later", "late"],
        "oldest lock first, only PENDING"
    );
    assert_eq!(storage.list_expired_pending(100, 1).await.unwrap().len(), 1);
}

fn record(user: &str, key: &str, expires_at: u64) -> IdempotencyRecord {
    IdempotencyRecord {
        user_id: user.into(),
        key: key.into(),
        fingerprint: "createBooking:1234".into(),
        response: None,
        lease_expires_at: 50,
        expires_at,
        version: 0,
    }
}

#[tokio::test]
async fn idempotency_records_are_inserted_once_per_user_and_key() {
    let Some(db) = database().await else { return };
    let storage = MongoStorage::open(db).await.expect("indexes");
    storage
        .insert_idempotency_record(&record("u1", "k1", 100))
        .await
        .unwrap();
    assert!(matches!(
        storage
            .insert_idempotency_record(&record("u1", "k1", 999))
            .await,
        Err(PortError::Conflict(_))
    ));
    // Keys are scoped per user.
    storage
        .insert_idempotency_record(&record("u2", "k1", 100))
        .await
        .unwrap();
    let stored = storage.get_idempotency_record("u1", "k1").await.unwrap();
    assert_eq!(
        stored,
        Some(IdempotencyRecord {
            version: 1,
            ..record("u1", "k1", 100)
        }),
        "the first insert stays, at version 1"
    );
    assert_eq!(
        storage
            .get_idempotency_record("u2", "k1")
            .await
            .unwrap()
            .map(|r| r.user_id),
        Some("u2".to_owned())
    );
    assert_eq!(
        storage.get_idempotency_record("u1", "other").await,
        Ok(None)
    );
}

#[tokio::test]
async fn idempotency_record_updates_are_compare_and_swap() {
    let Some(db) = database().await else { return };
    let storage = MongoStorage::open(db).await.expect("indexes");
    storage
        .insert_idempotency_record(&record("u1", "k1", 100))
        .await
        .unwrap();
    let answered = IdempotencyRecord {
        response: Some(r#"{"data":{}}"#.into()),
        expires_at: 200,
        ..record("u1", "k1", 100)
    };
    assert_eq!(storage.update_idempotency_record(&answered, 1).await, Ok(2));
    assert!(matches!(
        storage.update_idempotency_record(&answered, 1).await,
        Err(PortError::Conflict(_))
    ));
    assert_eq!(storage.update_idempotency_record(&answered, 2).await, Ok(3));
    assert_eq!(
        storage.get_idempotency_record("u1", "k1").await,
        Ok(Some(IdempotencyRecord {
            version: 3,
            ..answered.clone()
        }))
    );
    assert!(matches!(
        storage
            .update_idempotency_record(&record("u1", "ghost", 1), 1)
            .await,
        Err(PortError::NotFound(_))
    ));

    let attempts: Vec<_> = (0..20)
        .map(|n| {
            let (storage, mut update) = (storage.clone(), answered.clone());
            update.response = Some(format!("writer {n}"));
            tokio::spawn(async move { storage.update_idempotency_record(&update, 3).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (n, attempt) in attempts.into_iter().enumerate() {
        match attempt.await.unwrap() {
            Ok(version) => winners.push((n, version)),
            Err(PortError::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (winner, version) = winners[0];
    let now = storage
        .get_idempotency_record("u1", "k1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((version, now.version), (4, 4));
    assert_eq!(now.response, Some(format!("writer {winner}")));
}

#[tokio::test]
async fn purging_deletes_expired_records_oldest_first_up_to_the_limit() {
    let Some(db) = database().await else { return };
    let storage = MongoStorage::open(db).await.expect("indexes");
    for (key, expires_at) in [("a", 30), ("b", 10), ("c", 20), ("d", 100)] {
        storage
            .insert_idempotency_record(&record("u1", key, expires_at))
            .await
            .unwrap();
    }
    assert_eq!(storage.purge_idempotency_records(50, 2).await, Ok(2));
    for (key, kept) in [("a", true), ("b", false), ("c", false), ("d", true)] {
        let found = storage.get_idempotency_record("u1", key).await.unwrap();
        assert_eq!(found.is_some(), kept, "{key}");
    }
    // Expiring exactly now is not yet before now.
    assert_eq!(storage.purge_idempotency_records(30, 10).await, Ok(0));
    assert_eq!(storage.purge_idempotency_records(1_000, 10).await, Ok(2));
    assert_eq!(storage.purge_idempotency_records(1_000, 10).await, Ok(0));
}

/// Key names of each index of a collection, in key order, with its
/// uniqueness (the test server ignores index names and key directions, so
/// that is what can be compared).
async fn indexes(db: &MongoDatabase, collection: &str) -> Vec<(Vec<String>, bool)> {
    db.collection::<Document>(collection)
        .list_indexes()
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|index| {
            let unique = index.options.and_then(|o| o.unique).unwrap_or(false);
            (index.keys.keys().cloned().collect(), unique)
        })
        .collect()
}

fn has_index(indexes: &[(Vec<String>, bool)], keys: &[&str], unique: bool) -> bool {
    indexes
        .iter()
        .any(|(k, u)| k.iter().eq(keys.iter()) && (*u || !unique))
}

#[tokio::test]
async fn indexes_exist_after_opening_and_opening_again_is_harmless() {
    let Some(db) = database().await else { return };
    MongoStorage::open(db.clone()).await.expect("indexes");
    MongoStorage::open(db.clone()).await.expect("indexes again");
    MongoEventLog::open(db.clone(), Delivery::Relayed)
        .await
        .expect("event indexes");

    let bookings = indexes(&db, booking_adapters::mongo_storage::COLLECTION).await;
    assert!(
        has_index(&bookings, &["userId", "createdAt"], false),
        "{bookings:?}"
    );
    assert!(
        has_index(&bookings, &["status", "lockExpiresAt"], false),
        "{bookings:?}"
    );
    let events = indexes(&db, booking_adapters::mongo_events::COLLECTION).await;
    assert!(has_index(&events, &["seq"], true), "{events:?}");
    assert!(
        has_index(&events, &["bookingId", "seq"], false),
        "{events:?}"
    );
    assert!(has_index(&events, &["pending", "seq"], false), "{events:?}");
    let records = indexes(&db, booking_adapters::mongo_storage::IDEMPOTENCY_COLLECTION).await;
    assert!(has_index(&records, &["userId", "key"], true), "{records:?}");
    assert!(has_index(&records, &["expiresAt"], false), "{records:?}");
}

#[tokio::test]
async fn event_log_keeps_publication_order_and_is_the_outbox() {
    let Some(db) = database().await else { return };
    let log = MongoEventLog::open(db, Delivery::Relayed)
        .await
        .expect("indexes");
    log.publish(&event("e1", "b1", EventKind::BookingCreated))
        .await
        .unwrap();
    log.publish(&event("x1", "b2", EventKind::BookingCreated))
        .await
        .unwrap();
    log.publish(&event("e2", "b1", EventKind::BookingConfirmed))
        .await
        .unwrap();
    // A retried publish is not a second event.
    log.publish(&event("e1", "b1", EventKind::BookingCreated))
        .await
        .unwrap();

    let history = log.history("b1").await.unwrap();
    assert_eq!(
        history,
        vec![
            event("e1", "b1", EventKind::BookingCreated),
            event("e2", "b1", EventKind::BookingConfirmed)
        ]
    );

    let ids = |events: Vec<booking_logic::model::Event>| -> Vec<String> {
        events.into_iter().map(|e| e.id).collect()
    };
    assert_eq!(log.backlog().await.unwrap(), 3);
    assert_eq!(ids(log.unpublished(10).await.unwrap()), ["e1", "x1", "e2"]);
    assert_eq!(ids(log.unpublished(2).await.unwrap()), ["e1", "x1"]);
    log.mark_published(&["e1".into(), "x1".into()])
        .await
        .unwrap();
    assert_eq!(ids(log.unpublished(10).await.unwrap()), ["e2"]);
    assert_eq!(log.backlog().await.unwrap(), 1);
    assert_eq!(
        log.history("b1").await.unwrap().len(),
        2,
        "history keeps sent events"
    );
}

#[tokio::test]
async fn with_no_broker_the_log_is_the_sink() {
    let Some(db) = database().await else { return };
    let log = MongoEventLog::open(db, Delivery::Stored)
        .await
        .expect("indexes");
    log.publish(&event("e1", "b1", EventKind::BookingCreated))
        .await
        .unwrap();
    assert_eq!(log.backlog().await.unwrap(), 0);
    assert_eq!(log.history("b1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_dead_database_is_unavailable_and_recovery_needs_no_restart() {
    let Some(url) = service_url("TEST_MONGODB_URL") else {
        return;
    };
    let (proxy, proxied) = Proxy::in_front_of(&url).await;
    let db = MongoDatabase::connect(&config(proxied, &unique("test")))
        .await
        .expect("a valid URL");
    let storage = MongoStorage::open(db).await.expect("indexes");
    storage
        .insert(&booking("b1", "u1", 1, BookingStatus::Pending, 1))
        .await
        .unwrap();

    proxy.cut();
    let started = Instant::now();
    let error = storage.get("b1").await.expect_err("the database is down");
    assert!(matches!(error, PortError::Unavailable(_)), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(storage.health().await.is_err());

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match storage.get("b1").await {
            Ok(found) => {
                assert!(found.is_some());
                break;
            }
            Err(error) if Instant::now() < deadline => {
                eprintln!("not yet recovered: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("no recovery: {error}"),
        }
    }
    assert_eq!(storage.health().await, Ok(()));
}
