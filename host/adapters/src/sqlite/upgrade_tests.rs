//! A file the previous host release wrote — its schema exactly as it
//! created it, rows as its statements stored them, a relay's backlog
//! half drained — opened by this build: migrated in place, then read,
//! paged, written and relayed as before.

use booking_logic::ports::{Events, Storage};
use booking_logic::testing::contract::{self, booking, event};
use booking_model::{Booking, BookingStatus, EventKind, IdempotencyRecord, PageRequest};

use crate::outbox::{Delivery, Outbox};
use crate::sqlite::{Database, SqliteEventLog, SqliteStorage};

/// What the previous release ran on a new file: its `SCHEMA`, the
/// columns `migrate` added, its `LATE_INDEXES`.
const PREVIOUS_RELEASE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS bookings (
    id                     TEXT PRIMARY KEY,
    user_id                TEXT NOT NULL,
    showtime_id            TEXT NOT NULL,
    seats                  TEXT NOT NULL,
    total_cents            INTEGER NOT NULL,
    currency               TEXT NOT NULL,
    status                 TEXT NOT NULL,
    lock_id                TEXT NOT NULL,
    lock_expires_at        INTEGER NOT NULL,
    payment_transaction_id TEXT,
    failure_reason         TEXT,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    version                INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bookings_by_user ON bookings (user_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS bookings_by_expiry ON bookings (status, lock_expires_at);
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    booking_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    payload     TEXT NOT NULL,
    published_at INTEGER
);
CREATE INDEX IF NOT EXISTS events_by_booking ON events (booking_id, seq);
CREATE TABLE IF NOT EXISTS idempotency_records (
    user_id          TEXT NOT NULL,
    key              TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    response         TEXT,
    lease_expires_at INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    version          INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency_records (expires_at);
ALTER TABLE bookings ADD COLUMN charge_attempted_at INTEGER;
ALTER TABLE bookings ADD COLUMN refunded_at INTEGER;
ALTER TABLE bookings ADD COLUMN settle_after INTEGER;
ALTER TABLE bookings ADD COLUMN settle_attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS events_unpublished ON events (seq) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS bookings_unsettled ON bookings (settle_after) WHERE settle_after IS NOT NULL;
"#;

/// A file with the previous release's schema, set up by `fill`.
fn previous_release(fill: impl FnOnce(&rusqlite::Connection)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let old = rusqlite::Connection::open(dir.path().join("booking.sqlite3")).unwrap();
    old.pragma_update(None, "journal_mode", "WAL").unwrap();
    old.execute_batch(PREVIOUS_RELEASE_SCHEMA).unwrap();
    fill(&old);
    dir
}

/// A booking as the previous release's insert and update stored it.
fn store_old_booking(old: &rusqlite::Connection, b: &Booking) {
    old.execute(
        "INSERT INTO bookings (id, user_id, showtime_id, seats, total_cents, currency, status, \
         lock_id, lock_expires_at, payment_transaction_id, failure_reason, created_at, \
         updated_at, version, charge_attempted_at, refunded_at, settle_after, settle_attempts) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        rusqlite::params![
            b.id,
            b.user_id,
            b.showtime_id,
            serde_json::to_string(&b.seats).unwrap(),
            b.total_cents as i64,
            b.currency,
            b.status.as_str(),
            b.lock_id,
            b.lock_expires_at as i64,
            b.payment_transaction_id,
            b.failure_reason,
            b.created_at as i64,
            b.updated_at as i64,
            b.version as i64,
            b.charge_attempted_at.map(|at| at as i64),
            b.refunded_at.map(|at| at as i64),
            b.settle_after.map(|at| at as i64),
            b.settle_attempts,
        ],
    )
    .unwrap();
}

/// An event as the previous release's `append` stored it.
fn store_old_event(
    old: &rusqlite::Connection,
    e: &booking_model::Event,
    published_at: Option<i64>,
) {
    old.execute(
        "INSERT INTO events (id, booking_id, kind, occurred_at, payload, published_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![
            e.id,
            e.booking_id,
            e.kind.as_str(),
            e.occurred_at as i64,
            serde_json::to_string(e).unwrap(),
            published_at
        ],
    )
    .unwrap();
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|item| id(item).to_owned()).collect()
}

fn open(dir: &tempfile::TempDir) -> (SqliteStorage, SqliteEventLog) {
    let db = Database::open(&dir.path().join("booking.sqlite3")).unwrap();
    let log = SqliteEventLog::with_delivery(db, Delivery::Relayed);
    (SqliteStorage::new(log.clone()), log)
}

#[tokio::test]
async fn a_file_of_the_previous_release_is_read_paged_written_and_relayed() {
    let stored = |id: &str, created_at| Booking {
        version: 1,
        ..booking(id, "u1", created_at)
    };
    let (b1, b2) = (stored("b1", 10), stored("b2", 20));
    let b3 = Booking {
        status: BookingStatus::Expired,
        settle_after: Some(5),
        settle_attempts: 1,
        charge_attempted_at: Some(15),
        payment_transaction_id: Some("tx-3".into()),
        failure_reason: Some("lock expired".into()),
        version: 2,
        ..stored("b3", 20)
    };
    let record = IdempotencyRecord {
        user_id: "u1".into(),
        key: "k1".into(),
        fingerprint: "f".into(),
        response: Some("{}".into()),
        lease_expires_at: 30,
        expires_at: contract::LATER,
        version: 2,
    };
    let (e1, e2, e3, e3_expired) = (
        event(&b1, EventKind::BookingCreated, "v1"),
        event(&b2, EventKind::BookingCreated, "v1"),
        event(&b3, EventKind::BookingCreated, "v1"),
        event(&b3, EventKind::BookingExpired, "v2"),
    );
    let dir = previous_release(|old| {
        for b in [&b1, &b2, &b3] {
            store_old_booking(old, b);
        }
        store_old_event(old, &e1, Some(11));
        for e in [&e2, &e3, &e3_expired] {
            store_old_event(old, e, None);
        }
        old.execute(
            "INSERT INTO idempotency_records VALUES ('u1', 'k1', 'f', '{}', 30, ?1, 2)",
            [contract::LATER as i64],
        )
        .unwrap();
    });
    let (storage, log) = open(&dir);

    // Read back field for field, paged, listed for the sweep.
    assert_eq!(storage.get("b3").await.unwrap(), Some(b3.clone()));
    assert_eq!(
        storage.get_idempotency_record("u1", "k1").await.unwrap(),
        Some(record)
    );
    let first = storage
        .list_by_user(
            "u1",
            &PageRequest {
                cursor: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&first.items, |b| &b.id), ["b3", "b2"]);
    let rest = storage
        .list_by_user(
            "u1",
            &PageRequest {
                cursor: first.next_cursor,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!((rest.items, rest.next_cursor), (vec![b1.clone()], None));
    assert_eq!(
        storage.list_unsettled(10, 10).await.unwrap(),
        std::slice::from_ref(&b3)
    );

    // The relay finds the backlog in commit order and drains it.
    assert_eq!(log.backlog().await.unwrap(), 3);
    let pending = log.unpublished(10).await.unwrap();
    assert_eq!(pending, [e2.clone(), e3.clone(), e3_expired.clone()]);
    log.mark_published(&pending[..1]).await.unwrap();
    assert_eq!(log.backlog().await.unwrap(), 2);

    // A new write appends its event after the old ones, atomically.
    let confirmed = Booking {
        status: BookingStatus::Confirmed,
        ..b1.clone()
    };
    let e1_confirmed = event(&confirmed, EventKind::BookingConfirmed, "v2");
    assert_eq!(
        storage
            .update_if_version(&confirmed, 1, std::slice::from_ref(&e1_confirmed))
            .await,
        Ok(2)
    );
    assert_eq!(log.history("b1").await.unwrap(), [e1, e1_confirmed.clone()]);
    assert_eq!(
        ids(&log.unpublished(10).await.unwrap(), |e| &e.id),
        ["b3-v1", "b3-v2", "b1-v2"]
    );
    assert_eq!(
        ids(&log.tail(2).await.unwrap(), |e| &e.id),
        ["b3-v2", "b1-v2"]
    );

    // The schema is the shared one now; opening again changes nothing.
    drop((storage, log));
    let (storage, log) = open(&dir);
    assert_eq!(log.backlog().await.unwrap(), 3);
    assert_eq!(
        storage.get("b1").await.unwrap(),
        Some(Booking {
            version: 2,
            ..confirmed
        })
    );
    let raw = rusqlite::Connection::open(dir.path().join("booking.sqlite3")).unwrap();
    let names: Vec<String> = raw
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('index', 'trigger') ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for want in [
        "bookings_by_settle_after",
        "bookings_events_on_insert",
        "bookings_events_on_update",
        "events_unpublished",
    ] {
        assert!(names.iter().any(|name| name == want), "{want}: {names:?}");
    }
    assert!(
        !names.iter().any(|name| name == "bookings_unsettled"),
        "{names:?}"
    );
}

#[tokio::test]
async fn an_upgraded_file_keeps_the_storage_contract() {
    let dir = previous_release(|_| {});
    let (storage, log) = open(&dir);
    contract::check_all(&storage, &log).await;
}
