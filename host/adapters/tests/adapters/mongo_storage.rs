//! What is particular to the MongoDB storage and event log, against a
//! real MongoDB-wire server (`TEST_MONGODB_URL`, nx-27017 from
//! scripts/test-services.sh): indexes, the durability settings, documents
//! of older builds, outages, TLS (through a TLS front of the test server's
//! own). The storage contract itself is checked in
//! `storage_contract.rs`. Each test works in a database of its own.

use std::time::{Duration, Instant};

use booking_adapters::Adapter;
use booking_adapters::mongo::events::MongoEventLog;
use booking_adapters::mongo::storage::MongoStorage;
use booking_adapters::mongo::{Durability, MongoConfig, MongoDatabase};
use booking_adapters::outbox::{Delivery, Outbox};
use booking_logic::model::{Booking, BookingStatus, EventKind};
use booking_logic::ports::{Events, PortError, Storage};
use booking_logic::testing::contract::{booking, event};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use test_support::tls::{TestCa, tls_front};
use test_support::{Proxy, service_url, unique};

use crate::support::{config, mongo_database, roots};

async fn open(db: MongoDatabase, delivery: Delivery) -> (MongoStorage, MongoEventLog) {
    let log = MongoEventLog::open(db, delivery).await.expect("indexes");
    let storage = MongoStorage::open(log.clone()).await.expect("indexes");
    (storage, log)
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
    let Some(db) = mongo_database().await else {
        return;
    };
    open(db.clone(), Delivery::Relayed).await;
    open(db.clone(), Delivery::Relayed).await;

    let bookings = indexes(&db, booking_adapters::mongo::storage::COLLECTION).await;
    assert!(
        has_index(&bookings, &["userId", "createdAt"], false),
        "{bookings:?}"
    );
    assert!(
        has_index(&bookings, &["status", "lockExpiresAt"], false),
        "{bookings:?}"
    );
    assert!(
        has_index(&bookings, &["settleAfter"], false),
        "{bookings:?}"
    );
    assert!(
        has_index(&bookings, &["unpublished", "updatedAt"], false),
        "{bookings:?}"
    );
    let records = indexes(
        &db,
        booking_adapters::mongo::storage::IDEMPOTENCY_COLLECTION,
    )
    .await;
    assert!(has_index(&records, &["userId", "key"], true), "{records:?}");
    assert!(has_index(&records, &["expiresAt"], false), "{records:?}");
}

#[tokio::test]
async fn the_durability_settings_are_accepted_and_nonsense_is_refused() {
    let Some(url) = service_url("TEST_MONGODB_URL") else {
        return;
    };
    for durability in [
        Durability::default(),
        Durability {
            write: "1".into(),
            journal: false,
            read: "local".into(),
        },
    ] {
        let db = MongoDatabase::connect(&MongoConfig {
            durability: durability.clone(),
            ..config(url.clone(), &unique("test"))
        })
        .await
        .expect("valid settings");
        let (storage, _) = open(db, Delivery::Stored).await;
        storage.insert(&booking("b1", "u1", 1), &[]).await.unwrap();
        assert!(storage.get("b1").await.unwrap().is_some(), "{durability:?}");
    }
    for durability in [
        Durability {
            write: "0".into(),
            ..Durability::default()
        },
        Durability {
            write: String::new(),
            ..Durability::default()
        },
        Durability {
            read: "eventual".into(),
            ..Durability::default()
        },
    ] {
        let refused = MongoDatabase::connect(&MongoConfig {
            durability: durability.clone(),
            ..config(url.clone(), &unique("test"))
        })
        .await;
        assert!(refused.is_err(), "{durability:?}");
    }
}

#[tokio::test]
async fn a_booking_keeps_its_events_as_wire_json_in_its_own_document() {
    let Some(db) = mongo_database().await else {
        return;
    };
    let (storage, log) = open(db.clone(), Delivery::Relayed).await;
    let created = booking("b1", "u1", 1);
    let announced = event(&created, EventKind::BookingCreated, "v1");
    storage
        .insert(&created, std::slice::from_ref(&announced))
        .await
        .unwrap();
    let document = db
        .collection::<Document>(booking_adapters::mongo::storage::COLLECTION)
        .find_one(doc! { "_id": "b1" })
        .await
        .unwrap()
        .expect("stored");
    let events = document.get_array("events").unwrap();
    assert_eq!(events.len(), 1);
    let json: serde_json::Value =
        serde_json::from_str(events[0].as_str().expect("a JSON string")).unwrap();
    assert_eq!(json, serde_json::to_value(&announced).unwrap());
    assert_eq!(json["type"], "booking.created");
    assert_eq!(document.get_array("pendingEvents").map(Vec::len), Ok(1));
    assert_eq!(log.backlog().await, Ok(1));
    log.mark_published(&[announced]).await.unwrap();
    assert_eq!(log.backlog().await, Ok(0));
}

#[tokio::test]
async fn the_relays_of_two_hosts_divide_the_outbox_by_leasing_bookings() {
    let Some(db) = mongo_database().await else {
        return;
    };
    let (storage, first) = open(db.clone(), Delivery::Relayed).await;
    // Another host's log on the same database: a relay of its own.
    let (_, second) = open(db.clone(), Delivery::Relayed).await;
    let mut stored = Vec::new();
    for n in 0..4 {
        let created = booking(&format!("b{n}"), "u1", 1);
        let announced = event(&created, EventKind::BookingCreated, "v1");
        storage
            .insert(&created, std::slice::from_ref(&announced))
            .await
            .unwrap();
        stored.push(announced);
    }
    let ids = |unsent: Vec<booking_adapters::outbox::Unsent>| -> Vec<String> {
        unsent.into_iter().map(|u| u.event.id).collect()
    };
    // The first relay leases two bookings, the second the other two; a
    // claim again renews what a relay holds and takes nothing of the other's.
    let by_first = ids(first.claim(2).await.unwrap());
    let by_second = ids(second.claim(10).await.unwrap());
    assert_eq!(by_first.len(), 2, "{by_first:?}");
    assert_eq!(by_second.len(), 2, "{by_second:?}");
    assert!(by_first.iter().all(|id| !by_second.contains(id)));
    assert_eq!(ids(first.claim(10).await.unwrap()), by_first);
    assert_eq!(ids(second.claim(10).await.unwrap()), by_second);
    // Everyone still sees the whole backlog.
    assert_eq!(first.unsent(10).await.unwrap().len(), 4);
    assert_eq!(second.backlog().await, Ok(4));
    // Once sent, a booking is no one's to send again.
    let sent: Vec<_> = stored
        .iter()
        .filter(|event| by_first.contains(&event.id))
        .cloned()
        .collect();
    first.mark_published(&sent).await.unwrap();
    assert!(first.claim(10).await.unwrap().is_empty());
    assert_eq!(ids(second.claim(10).await.unwrap()), by_second);
    // A lease that ran out is free again: expire the second's by hand (to
    // 2001; nx-27017 would store a small number as a 32-bit one, which it
    // does not compare with the 64-bit clock).
    db.collection::<Document>(booking_adapters::mongo::storage::COLLECTION)
        .update_many(
            doc! {},
            doc! { "$set": { "relayLeaseUntil": 1_000_000_000_000_i64 } },
        )
        .await
        .unwrap();
    assert_eq!(ids(first.claim(10).await.unwrap()), by_second);
}

#[tokio::test]
async fn a_booking_stored_before_the_outbox_reads_and_takes_events() {
    let Some(db) = mongo_database().await else {
        return;
    };
    let (storage, log) = open(db.clone(), Delivery::Relayed).await;
    // As the builds before embedded events wrote it.
    db.collection::<Document>(booking_adapters::mongo::storage::COLLECTION)
        .insert_one(doc! {
            "_id": "old", "userId": "u1", "showtimeId": "showtime_456",
            "seats": ["A1"], "totalCents": 1500_i64, "currency": "USD",
            "status": "PENDING", "lockId": "lock-old", "lockExpiresAt": 9_i64,
            "paymentTransactionId": null, "failureReason": null,
            "createdAt": 1_i64, "updatedAt": 1_i64, "version": 1_i64,
            "chargeAttemptedAt": null, "refundedAt": null, "settleAfter": null,
            "settleAttempts": 0_i64,
        })
        .await
        .unwrap();
    let old = storage.get("old").await.unwrap().expect("readable");
    assert_eq!(log.history("old").await, Ok(vec![]));
    let cancelled = Booking {
        status: BookingStatus::Cancelled,
        ..old
    };
    let announced = event(&cancelled, EventKind::BookingCancelled, "v2");
    assert_eq!(
        storage
            .update_if_version(&cancelled, 1, std::slice::from_ref(&announced))
            .await,
        Ok(2)
    );
    assert_eq!(log.history("old").await, Ok(vec![announced.clone()]));
    assert_eq!(log.unpublished(10).await, Ok(vec![announced]));
    assert_eq!(log.backlog().await, Ok(1));
}

#[tokio::test]
async fn bookings_of_builds_before_settlement_are_read_and_the_ended_ones_settled_once() {
    let Some(db) = mongo_database().await else {
        return;
    };
    // As the builds before settlement wrote them: no settlement fields.
    let old = |id: &str, status: &str| {
        doc! {
            "_id": id, "userId": "u1", "showtimeId": "showtime_456",
            "seats": ["A1"], "totalCents": 1500_i64, "currency": "USD",
            "status": status, "lockId": format!("lock-{id}"), "lockExpiresAt": 9_i64,
            "paymentTransactionId": "txn-old", "failureReason": "refund pending",
            "createdAt": 1_i64, "updatedAt": 1_i64, "version": 3_i64,
        }
    };
    db.collection::<Document>(booking_adapters::mongo::storage::COLLECTION)
        .insert_many([old("confirmed", "CONFIRMED"), old("failed", "FAILED")])
        .await
        .unwrap();
    let (storage, _log) = open(db, Delivery::Stored).await;

    let confirmed = storage.get("confirmed").await.unwrap().expect("readable");
    assert_eq!(
        (confirmed.settle_after, confirmed.settle_attempts),
        (None, 0)
    );
    let failed = storage.get("failed").await.unwrap().expect("readable");
    assert_eq!(failed.settle_after, Some(0), "owed once");
    assert_eq!(storage.list_unsettled(0, 10).await, Ok(vec![failed]));
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
    let (storage, _) = open(db, Delivery::Stored).await;
    storage.insert(&booking("b1", "u1", 1), &[]).await.unwrap();

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

#[tokio::test]
async fn bookings_round_trip_over_tls_trusting_the_ca() {
    let Some(url) = service_url("TEST_MONGODB_URL") else {
        return;
    };
    let server = url
        .trim_start_matches("mongodb://")
        .split(['/', '?'])
        .next()
        .expect("host:port");
    let ca = TestCa::new();
    let front = tls_front(&ca, server).await;
    let tls_url = format!("mongodb://{front}/?directConnection=true&tls=true");
    let name = unique("test");

    // The CA option.
    let db = MongoDatabase::connect(&MongoConfig {
        tls: roots(&ca),
        ..config(tls_url.clone(), &name)
    })
    .await
    .expect("valid settings");
    let (storage, _) = open(db, Delivery::Stored).await;
    storage
        .insert(&booking("b_tls", "u1", 1), &[])
        .await
        .unwrap();

    // The URL's own `tlsCAFile`, read back.
    let with_ca_file = format!("{tls_url}&tlsCAFile={}", ca.ca_file.display());
    let db = MongoDatabase::connect(&config(with_ca_file, &name))
        .await
        .expect("valid settings");
    let (storage, _) = open(db, Delivery::Stored).await;
    let read = storage.get("b_tls").await.unwrap().expect("stored");
    assert_eq!((read.id.as_str(), read.user_id.as_str()), ("b_tls", "u1"));

    // The public roots only: unavailable within the connect timeout.
    let untrusted = MongoDatabase::connect(&config(tls_url, &name))
        .await
        .expect("valid settings");
    let started = Instant::now();
    let refused = untrusted.health().await.expect_err("untrusted certificate");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(refused.contains("database"), "{refused}");
}

#[tokio::test]
async fn srv_urls_are_resolved_through_dns() {
    // `.invalid` never resolves (RFC 2606): the lookup is made and fails,
    // where a build without the DNS resolver refused the URL unread.
    let started = Instant::now();
    let error = MongoDatabase::connect(&config(
        "mongodb+srv://booking-test.invalid/".into(),
        "test",
    ))
    .await
    .err()
    .expect("no such host");
    let error = format!("{error:#}");
    assert!(!error.contains("dns-resolver"), "{error}");
    assert!(error.contains("booking-test.invalid"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
