//! The Spin adapter's storage statements on a real SQLite (through
//! `harness::SpinSqlite`, the booking-logic ports over `store`): the
//! atomic booking + events write, compare-and-swap, settlement listing,
//! migration of a database from the previous release, and the outbox.

use std::path::PathBuf;

use booking_adapters_core::sqlite::{self as store, Database, Outcome, Statement};
use booking_logic::model::{
    Booking, BookingStatus, Event, EventKind, IdempotencyRecord, PageRequest,
};
use booking_logic::ports::{Events, PortError, PortResult, Storage};
use booking_logic::testing::contract;
use spin_adapters_core::outbox;

use crate::harness::SpinSqlite;

fn database() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spin.db");
    (dir, path)
}

/// A PENDING booking whose lock expires at 1,000, created at 100.
fn booking(id: &str) -> Booking {
    Booking {
        lock_expires_at: 1_000,
        ..contract::booking(id, "user_123", 100)
    }
}

/// The event of `booking`'s move to `version`, named as the workflow names
/// it, with a reason that needs escaping in JSON.
fn event(kind: EventKind, booking: &Booking, version: u64) -> Event {
    Event {
        occurred_at: 100 + version,
        reason: Some("card \"declined\" ✓".into()),
        ..contract::event(booking, kind, &format!("v{version}"))
    }
}

fn ids(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.id.as_str()).collect()
}

fn count(db: &SpinSqlite, sql: &str) -> i64 {
    db.raw().query_row(sql, [], |row| row.get(0)).unwrap()
}

/// The storage contract every backend is held to, on the Spin statements.
#[tokio::test]
async fn the_spin_statements_keep_the_storage_contract() {
    let (_dir, path) = database();
    let db = SpinSqlite::open(&path);
    contract::check_all(&db, &db).await;
}

#[tokio::test]
async fn a_booking_and_its_events_are_stored_together_and_read_back_as_written() {
    let (_dir, path) = database();
    let db = SpinSqlite::open(&path);
    let b = Booking {
        charge_attempted_at: Some(150),
        refunded_at: Some(160),
        settle_after: Some(170),
        settle_attempts: 3,
        payment_transaction_id: Some("tx".into()),
        ..booking("b1")
    };
    let created = event(EventKind::BookingCreated, &b, 1);
    db.insert(&b, std::slice::from_ref(&created)).await.unwrap();

    assert_eq!(
        db.get("b1").await.unwrap(),
        Some(Booking {
            version: 1,
            ..b.clone()
        })
    );
    assert_eq!(
        db.history("b1").await.unwrap(),
        std::slice::from_ref(&created)
    );
    // The log holds the host's wire JSON byte for byte, and the
    // hand-over column is empty again once the statement is done.
    let payload: String = db
        .raw()
        .query_row("SELECT payload FROM events WHERE id = 'b1-v1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(payload, serde_json::to_string(&created).unwrap());
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM bookings WHERE new_events IS NOT NULL"
        ),
        0
    );
    assert_eq!(db.get("nope").await.unwrap(), None);
}

#[tokio::test]
async fn a_refused_write_leaves_neither_the_booking_nor_its_events() {
    let (_dir, path) = database();
    let db = SpinSqlite::open(&path);
    let b = booking("b1");
    db.insert(&b, &[event(EventKind::BookingCreated, &b, 1)])
        .await
        .unwrap();

    let again = Booking {
        total_cents: 1,
        ..b.clone()
    };
    let other = Event {
        id: "other".into(),
        ..event(EventKind::BookingCreated, &b, 1)
    };
    assert!(matches!(
        db.insert(&again, std::slice::from_ref(&other)).await,
        Err(PortError::Conflict(_))
    ));

    let stored = db.get("b1").await.unwrap().unwrap();
    let confirmed = Booking {
        status: BookingStatus::Confirmed,
        ..stored.clone()
    };
    let stale = db
        .update_if_version(&confirmed, 7, &[event(EventKind::BookingConfirmed, &b, 8)])
        .await;
    assert!(matches!(stale, Err(PortError::Conflict(_))), "{stale:?}");
    let missing = db
        .update_if_version(
            &booking("ghost"),
            1,
            &[event(EventKind::BookingConfirmed, &booking("ghost"), 2)],
        )
        .await;
    assert!(
        matches!(missing, Err(PortError::NotFound(_))),
        "{missing:?}"
    );

    assert_eq!(db.get("b1").await.unwrap(), Some(stored));
    assert_eq!(ids(&db.history("b1").await.unwrap()), ["b1-v1"]);
    assert_eq!(db.history("ghost").await.unwrap(), []);
}

#[tokio::test]
async fn when_the_events_cannot_be_written_the_booking_is_not_written_either() {
    let (_dir, path) = database();
    let db = SpinSqlite::open(&path);
    let b = booking("b1");
    let created = event(EventKind::BookingCreated, &b, 1);
    db.insert(&b, std::slice::from_ref(&created)).await.unwrap();
    let stored = db.get("b1").await.unwrap().unwrap();

    // An event id already in the log fails the events' half of the
    // statement; the booking's half must go with it.
    let confirmed = Booking {
        status: BookingStatus::Confirmed,
        ..stored.clone()
    };
    let clash = Event {
        kind: EventKind::BookingConfirmed,
        ..created
    };
    assert!(db.update_if_version(&confirmed, 1, &[clash]).await.is_err());
    assert_eq!(db.get("b1").await.unwrap(), Some(stored.clone()));
    assert_eq!(ids(&db.history("b1").await.unwrap()), ["b1-v1"]);

    // The same move with a proper event then goes through.
    let version = db
        .update_if_version(
            &confirmed,
            1,
            &[event(EventKind::BookingConfirmed, &confirmed, 2)],
        )
        .await
        .unwrap();
    assert_eq!(version, 2);
    assert_eq!(ids(&db.history("b1").await.unwrap()), ["b1-v1", "b1-v2"]);
}

#[tokio::test]
async fn updates_are_compare_and_swap_and_append_their_events_in_order() {
    let (_dir, path) = database();
    let db = SpinSqlite::open(&path);
    let b = booking("b1");
    db.insert(&b, &[]).await.unwrap();
    assert_eq!(db.history("b1").await.unwrap(), []);

    let attempted = Booking {
        charge_attempted_at: Some(200),
        updated_at: 200,
        ..b.clone()
    };
    assert_eq!(db.update_if_version(&attempted, 1, &[]).await.unwrap(), 2);
    let expired = Booking {
        status: BookingStatus::Expired,
        settle_after: Some(300),
        ..attempted.clone()
    };
    let two = [
        event(EventKind::BookingExpired, &expired, 3),
        Event {
            id: "b1-v3-refund".into(),
            ..event(EventKind::PaymentRefunded, &expired, 3)
        },
    ];
    assert_eq!(db.update_if_version(&expired, 2, &two).await.unwrap(), 3);
    assert!(matches!(
        db.update_if_version(&expired, 2, &[]).await,
        Err(PortError::Conflict(_))
    ));
    assert_eq!(
        db.get("b1").await.unwrap(),
        Some(Booking {
            version: 3,
            ..expired
        })
    );
    assert_eq!(db.history("b1").await.unwrap(), two);
}

#[test]
fn of_racing_writers_on_one_file_exactly_one_wins_and_only_its_event_is_logged() {
    let (_dir, path) = database();
    let b = booking("b1");
    let setup = SpinSqlite::open(&path);
    block_on(setup.insert(&b, &[])).unwrap();

    let winners: Vec<bool> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..6)
            .map(|n| {
                let (path, b) = (&path, &b);
                scope.spawn(move || {
                    // Its own connection, as every Spin instance has.
                    let db = SpinSqlite::open(path);
                    let next = Booking {
                        failure_reason: Some(format!("racer {n}")),
                        status: BookingStatus::Cancelled,
                        ..b.clone()
                    };
                    let moved = Event {
                        reason: next.failure_reason.clone(),
                        ..event(EventKind::BookingCancelled, &next, 2)
                    };
                    block_on(db.update_if_version(&next, 1, &[moved])).is_ok()
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });

    assert_eq!(winners.iter().filter(|won| **won).count(), 1, "{winners:?}");
    let stored = block_on(setup.get("b1")).unwrap().unwrap();
    let history = block_on(setup.history("b1")).unwrap();
    assert_eq!((stored.version, history.len()), (2, 1));
    assert_eq!(history[0].reason, stored.failure_reason);
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[tokio::test]
async fn unsettled_bookings_are_listed_earliest_first_through_their_index() {
    let (_dir, path) = database();
    let db = SpinSqlite::open(&path);
    for (id, settle_after) in [
        ("b-late", Some(500)),
        ("b-none", None),
        ("b-due2", Some(200)),
        ("b-due1", Some(200)),
        ("b-now", Some(400)),
        ("b-first", Some(100)),
    ] {
        let b = Booking {
            settle_after,
            status: BookingStatus::Expired,
            ..booking(id)
        };
        db.insert(&b, &[]).await.unwrap();
    }
    let listed = |limit| {
        let db = &db;
        async move {
            db.list_unsettled(400, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|b| b.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(10).await, ["b-first", "b-due1", "b-due2", "b-now"]);
    assert_eq!(listed(2).await, ["b-first", "b-due1"]);

    // The plan of the very statement `list_unsettled` runs.
    let recorder = Recording(&db, std::cell::RefCell::default());
    store::list_unsettled(&recorder, 400, 10).unwrap();
    let [statement] = recorder.1.take().try_into().unwrap();
    let plan: Vec<String> = {
        let raw = db.raw();
        let mut explain = raw
            .prepare(&format!("EXPLAIN QUERY PLAN {}", statement.sql))
            .unwrap();
        explain
            .query_map(
                rusqlite::params_from_iter(statement.params.iter().map(|p| match p {
                    store::Value::Integer(n) => *n,
                    other => panic!("unexpected parameter {other:?}"),
                })),
                |row| row.get::<_, String>(3),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert!(
        plan.iter()
            .any(|step| step.contains("bookings_by_settle_after")),
        "{plan:?}"
    );
    assert!(
        !plan.iter().any(|step| step.contains("TEMP B-TREE")),
        "{plan:?}"
    );
}

/// Runs statements and keeps a copy of each.
struct Recording<'a>(&'a SpinSqlite, std::cell::RefCell<Vec<Statement>>);

impl Database for Recording<'_> {
    fn run(&self, statement: Statement) -> PortResult<Outcome> {
        self.1.borrow_mut().push(statement.clone());
        self.0.run(statement)
    }
}

/// What the previous release created, and a booking it stored.
const PREVIOUS_RELEASE: &str = "
    CREATE TABLE bookings (
        id TEXT PRIMARY KEY, user_id TEXT NOT NULL, showtime_id TEXT NOT NULL,
        seats TEXT NOT NULL, total_cents INTEGER NOT NULL, currency TEXT NOT NULL,
        status TEXT NOT NULL, lock_id TEXT NOT NULL, lock_expires_at INTEGER NOT NULL,
        payment_transaction_id TEXT, failure_reason TEXT,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, version INTEGER NOT NULL);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        booking_id TEXT NOT NULL, kind TEXT NOT NULL, occurred_at INTEGER NOT NULL,
        payload TEXT NOT NULL, published_at INTEGER);
    INSERT INTO bookings VALUES ('old', 'user_123', 'showtime_456', '[\"A1\"]', 1500, 'USD',
        'CONFIRMED', 'lock-old', 1000, 'tx-old', NULL, 50, 60, 4);
    INSERT INTO bookings VALUES ('ended', 'user_123', 'showtime_456', '[\"A2\"]', 1500, 'USD',
        'FAILED', 'lock-ended', 1000, 'tx-ended', 'refund pending', 50, 60, 3);
    INSERT INTO events (id, booking_id, kind, occurred_at, payload, published_at) VALUES
        ('e-old', 'old', 'booking.confirmed', 60, '{}', 61);";

#[tokio::test]
async fn a_database_of_the_previous_release_is_migrated_in_place() {
    let (_dir, path) = database();
    SpinSqlite::unmigrated(&path)
        .raw()
        .execute_batch(PREVIOUS_RELEASE)
        .unwrap();
    let db = SpinSqlite::open(&path);
    // Idempotent: every instance runs it.
    store::migrate(&db).unwrap();

    let old = db.get("old").await.unwrap().unwrap();
    assert_eq!(
        (
            old.version,
            old.payment_transaction_id.as_deref(),
            old.charge_attempted_at,
            old.refunded_at,
            old.settle_after,
            old.settle_attempts
        ),
        (4, Some("tx-old"), None, None, None, 0)
    );
    // An ended booking of that release is settled once, whatever it owes.
    let ended = db.get("ended").await.unwrap().unwrap();
    assert_eq!(ended.settle_after, Some(0));
    assert_eq!(db.list_unsettled(0, 10).await.unwrap(), vec![ended]);
    let refunded = Booking {
        status: BookingStatus::Refunded,
        refunded_at: Some(70),
        ..old
    };
    let moved = event(EventKind::BookingRefunded, &refunded, 5);
    assert_eq!(
        db.update_if_version(&refunded, 4, std::slice::from_ref(&moved))
            .await
            .unwrap(),
        5
    );
    let log: Vec<String> = {
        let raw = db.raw();
        let mut statement = raw.prepare("SELECT id FROM events ORDER BY seq").unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(log, ["e-old", "old-v5"]);
}

/// Runs every `ALTER` twice: first as another instance that got there
/// first, then as ours, which then fails as it would in that race.
struct OutrunOnAlter<'a>(&'a SpinSqlite);

impl Database for OutrunOnAlter<'_> {
    fn run(&self, statement: Statement) -> PortResult<Outcome> {
        if statement.sql.starts_with("ALTER TABLE") {
            self.0.run(statement.clone())?;
        }
        self.0.run(statement)
    }
}

/// Fails every `ALTER` without doing it.
struct BrokenAlter<'a>(&'a SpinSqlite);

impl Database for BrokenAlter<'_> {
    fn run(&self, statement: Statement) -> PortResult<Outcome> {
        if statement.sql.starts_with("ALTER TABLE") {
            return Err(PortError::Unavailable("disk I/O error".into()));
        }
        self.0.run(statement)
    }
}

#[test]
fn a_migration_outrun_by_another_instance_succeeds_but_a_failed_one_does_not() {
    let (_dir, path) = database();
    let db = SpinSqlite::unmigrated(&path);
    db.raw().execute_batch(PREVIOUS_RELEASE).unwrap();
    assert!(matches!(
        store::migrate(&BrokenAlter(&db)),
        Err(PortError::Unavailable(_))
    ));
    store::migrate(&OutrunOnAlter(&db)).unwrap();
    assert!(block_on(db.list_unsettled(0, 10)).unwrap().is_empty());
}

/// Counts the statements it runs.
struct Counted<'a>(&'a SpinSqlite, std::cell::Cell<usize>);

impl Database for Counted<'_> {
    fn run(&self, statement: Statement) -> PortResult<Outcome> {
        self.1.set(self.1.get() + 1);
        self.0.run(statement)
    }
}

/// Spin migrates in every instance, so a current database must cost one
/// read of its version, and an older one the whole migration again.
#[test]
fn a_current_database_is_checked_with_one_statement_and_an_older_one_migrated() {
    let (_dir, path) = database();
    let db = SpinSqlite::unmigrated(&path);
    db.raw().execute_batch(PREVIOUS_RELEASE).unwrap();
    assert_eq!(store::schema::schema_version(&db).unwrap(), 0);

    let first = Counted(&db, 0.into());
    store::migrate(&first).unwrap();
    assert!(first.1.get() > 10, "{} statements", first.1.get());
    assert_eq!(
        store::schema::schema_version(&db).unwrap(),
        store::schema::SCHEMA_VERSION
    );

    let again = Counted(&db, 0.into());
    store::migrate(&again).unwrap();
    assert_eq!(again.1.get(), 1);
    assert_eq!(block_on(db.list_unsettled(0, 10)).unwrap().len(), 1);

    // A database a release with fewer steps recorded is brought up again.
    db.raw().execute_batch("PRAGMA user_version = 3").unwrap();
    let older = Counted(&db, 0.into());
    store::migrate(&older).unwrap();
    assert!(older.1.get() > 1);
    assert_eq!(
        store::schema::schema_version(&db).unwrap(),
        store::schema::SCHEMA_VERSION
    );
}

/// An event as the outbox hands it over: (kind, payload).
fn wire(event: &Event) -> (EventKind, String) {
    (event.kind, event.to_json())
}

#[tokio::test]
async fn the_outbox_drains_in_commit_order_and_marks_only_what_was_published() {
    let (_dir, path) = database();
    let db = SpinSqlite::open(&path);
    let (a, b) = (booking("a"), booking("b"));
    let mut committed = Vec::new();
    for (booking, kind, version) in [
        (&a, EventKind::BookingCreated, 1),
        (&b, EventKind::BookingCreated, 1),
        (&a, EventKind::BookingConfirmed, 2),
        (&b, EventKind::BookingPaymentFailed, 2),
    ] {
        let e = event(kind, booking, version);
        if version == 1 {
            db.insert(booking, std::slice::from_ref(&e)).await.unwrap();
        } else {
            db.update_if_version(booking, 1, std::slice::from_ref(&e))
                .await
                .unwrap();
        }
        committed.push(wire(&e));
    }

    // The broker takes two, then fails.
    let mut sent = Vec::new();
    let outcome = outbox::drain_outbox(&db, 10, 900, |kind, payload| {
        if sent.len() == 2 {
            return Err(PortError::Unavailable("broker gone".into()));
        }
        sent.push((kind, payload.to_owned()));
        Ok(())
    });
    assert!(matches!(outcome, Err(PortError::Unavailable(_))));
    assert_eq!(sent, committed[..2]);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events WHERE published_at = 900"),
        2
    );

    // The next drain starts at the first event not taken, in batches.
    let mut resent = Vec::new();
    let published = outbox::drain_outbox(&db, 1, 901, |kind, payload| {
        resent.push((kind, payload.to_owned()));
        Ok(())
    })
    .unwrap();
    assert_eq!((published, resent.as_slice()), (1, &committed[2..3]));
    assert_eq!(
        outbox::drain_outbox(&db, 10, 902, |_, _| Ok(())).unwrap(),
        1
    );
    assert_eq!(
        outbox::drain_outbox(&db, 10, 903, |_, _| panic!("nothing is left")).unwrap(),
        0
    );

    let late = event(
        EventKind::BookingExpired,
        &Booking {
            status: BookingStatus::Expired,
            ..a.clone()
        },
        3,
    );
    db.update_if_version(&a, 2, &[late]).await.unwrap();
    store::mark_all_published(&db, 904).unwrap();
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM events WHERE published_at IS NULL"
        ),
        0
    );
}

#[tokio::test]
async fn pages_are_newest_first_and_cursors_continue_them() {
    let (_dir, path) = database();
    let db = SpinSqlite::open(&path);
    for (id, created_at) in [("b1", 10), ("b2", 20), ("b3", 20), ("b4", 30)] {
        db.insert(
            &Booking {
                created_at,
                ..booking(id)
            },
            &[],
        )
        .await
        .unwrap();
    }
    db.insert(
        &Booking {
            user_id: "someone_else".into(),
            ..booking("x")
        },
        &[],
    )
    .await
    .unwrap();
    let mut cursor = None;
    let mut seen = Vec::new();
    loop {
        let page = db
            .list_by_user("user_123", &PageRequest { cursor, limit: 3 })
            .await
            .unwrap();
        seen.extend(page.items.into_iter().map(|b| b.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["b4", "b3", "b2", "b1"]);
}

#[tokio::test]
async fn idempotency_records_are_versioned_and_purged_oldest_first() {
    let (_dir, path) = database();
    let db = SpinSqlite::open(&path);
    let record = |key: &str, expires_at| IdempotencyRecord {
        user_id: "user_123".into(),
        key: key.into(),
        fingerprint: "f".into(),
        response: None,
        lease_expires_at: 5,
        expires_at,
        version: 0,
    };
    for (key, expires_at) in [("k1", 30), ("k2", 10), ("k3", 20), ("k4", 99)] {
        db.insert_idempotency_record(&record(key, expires_at))
            .await
            .unwrap();
    }
    assert!(matches!(
        db.insert_idempotency_record(&record("k1", 1)).await,
        Err(PortError::Conflict(_))
    ));
    let answered = IdempotencyRecord {
        response: Some("{}".into()),
        ..record("k1", 30)
    };
    assert_eq!(db.update_idempotency_record(&answered, 1).await.unwrap(), 2);
    assert!(matches!(
        db.update_idempotency_record(&answered, 1).await,
        Err(PortError::Conflict(_))
    ));
    assert!(matches!(
        db.update_idempotency_record(&record("nope", 1), 1).await,
        Err(PortError::NotFound(_))
    ));
    assert_eq!(
        db.get_idempotency_record("user_123", "k1").await.unwrap(),
        Some(IdempotencyRecord {
            version: 2,
            ..answered
        })
    );

    assert_eq!(db.purge_idempotency_records(50, 2).await.unwrap(), 2);
    assert!(
        db.get_idempotency_record("user_123", "k1")
            .await
            .unwrap()
            .is_some(),
        "k2 and k3 expired first"
    );
    assert_eq!(db.purge_idempotency_records(50, 10).await.unwrap(), 1);
    assert!(
        db.get_idempotency_record("user_123", "k4")
            .await
            .unwrap()
            .is_some()
    );
}
