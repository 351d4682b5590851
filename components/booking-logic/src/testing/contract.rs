//! The storage contract of `wit/booking.wit` as one suite, generic over
//! the `Storage` and `Events` ports, so every backend is held to the same
//! promises: the fakes here, SQLite and MongoDB in `host/adapters`, the
//! Spin SQLite statements in theirs.
//!
//! Run it against an **empty** store with `check_all(storage, events)`
//! (or one check at a time), where `events` reads the log `storage`
//! writes. A broken promise panics with what was expected. The checks use
//! disjoint booking ids, users and time ranges, so they share one store:
//! bookings outside the listing checks lock their seats until `LATER` and
//! are never due for settling, idempotency records outside the purge
//! check expire at `LATER`.
//!
//! What each check holds the store to:
//! - `insert_then_get`: an insert is stored at version 1, every field
//!   read back as written; an unknown id reads as none.
//! - `insert_conflict`: a second insert of an id is `Conflict` and changes
//!   nothing, its events included.
//! - `compare_and_swap`: `update-if-version` returns the new version and
//!   stores the booking; a stale version is `Conflict`, an unknown id
//!   `NotFound`, both changing nothing.
//! - `events_commit_with_their_write`: the events of every successful
//!   write are in `history`, in commit order, per booking; a write that
//!   failed its check leaves no event.
//! - `paging`: a user's bookings newest first (created-at, then id, both
//!   descending), pages of at most `limit` linked by cursors without gaps
//!   or repeats; a malformed cursor is `Rejected`.
//! - `expired_pending`: only PENDING bookings whose lock expired, oldest
//!   lock first, at most `limit`.
//! - `unsettled`: only bookings whose `settle-after` is at or before now,
//!   earliest first, at most `limit`.
//! - `idempotency_records`: inserted once per (user, key), updated by
//!   compare-and-swap, purged when expired before now, oldest first, at
//!   most `limit`.

use crate::model::{
    Booking, BookingStatus, Event, EventKind, IdempotencyRecord, PageRequest, Timestamp,
};
use crate::ports::{Events, PortError, Storage};

/// A time after every time the listing checks use.
pub const LATER: Timestamp = 4_000_000_000_000;

/// Runs every check, in order, on one empty store.
pub async fn check_all(storage: &dyn Storage, events: &dyn Events) {
    insert_then_get(storage).await;
    insert_conflict(storage, events).await;
    compare_and_swap(storage).await;
    events_commit_with_their_write(storage, events).await;
    paging(storage).await;
    expired_pending(storage).await;
    unsettled(storage).await;
    idempotency_records(storage).await;
}

/// A PENDING booking of `user`, locked until `LATER`, never charged.
pub fn booking(id: &str, user: &str, created_at: Timestamp) -> Booking {
    Booking {
        id: id.into(),
        user_id: user.into(),
        showtime_id: "showtime_456".into(),
        seats: vec!["A1".into(), "A2".into()],
        total_cents: 3000,
        currency: "USD".into(),
        status: BookingStatus::Pending,
        lock_id: format!("lock-{id}"),
        lock_expires_at: LATER,
        payment_transaction_id: None,
        failure_reason: None,
        created_at,
        updated_at: created_at,
        version: 0,
        charge_attempted_at: None,
        refunded_at: None,
        settle_after: None,
        settle_attempts: 0,
    }
}

/// The event announcing `booking` as it is now, id `<booking>-<suffix>`.
pub fn event(booking: &Booking, kind: EventKind, suffix: &str) -> Event {
    let id = format!("{}-{suffix}", booking.id);
    Event::announcing(booking, kind, id, booking.updated_at)
}

fn ids(bookings: &[Booking]) -> Vec<&str> {
    bookings.iter().map(|booking| booking.id.as_str()).collect()
}

fn event_ids(events: &[Event]) -> Vec<&str> {
    events.iter().map(|event| event.id.as_str()).collect()
}

pub async fn insert_then_get(storage: &dyn Storage) {
    let plain = booking("get-plain", "get-user", 10);
    storage.insert(&plain, &[]).await.expect("insert");
    assert_eq!(
        storage.get("get-plain").await,
        Ok(Some(Booking {
            version: 1,
            ..plain
        })),
        "stored at version 1, whatever version the caller sent"
    );

    let full = Booking {
        status: BookingStatus::Expired,
        payment_transaction_id: Some("txn-1".into()),
        failure_reason: Some("lock expired".into()),
        updated_at: 20,
        charge_attempted_at: Some(11),
        refunded_at: Some(19),
        settle_after: Some(LATER),
        settle_attempts: 3,
        version: 7,
        ..booking("get-full", "get-user", 10)
    };
    storage.insert(&full, &[]).await.expect("insert");
    assert_eq!(
        storage.get("get-full").await,
        Ok(Some(Booking { version: 1, ..full })),
        "every optional field round-trips"
    );
    assert_eq!(storage.get("get-unknown").await, Ok(None));
}

pub async fn insert_conflict(storage: &dyn Storage, events: &dyn Events) {
    let first = booking("dup", "dup-user", 10);
    let created = event(&first, EventKind::BookingCreated, "v1");
    storage
        .insert(&first, std::slice::from_ref(&created))
        .await
        .expect("insert");

    let second = Booking {
        total_cents: 9999,
        ..booking("dup", "dup-user", 11)
    };
    let again = event(&second, EventKind::BookingCreated, "again");
    let result = storage.insert(&second, std::slice::from_ref(&again)).await;
    assert!(
        matches!(result, Err(PortError::Conflict(_))),
        "a second insert of an id: {result:?}"
    );
    assert_eq!(
        storage.get("dup").await,
        Ok(Some(Booking {
            version: 1,
            ..first
        })),
        "the first insert stays"
    );
    assert_eq!(
        events.history("dup").await,
        Ok(vec![created]),
        "the refused insert left no event"
    );
}

pub async fn compare_and_swap(storage: &dyn Storage) {
    let original = Booking {
        charge_attempted_at: Some(12),
        settle_after: Some(LATER),
        settle_attempts: 2,
        ..booking("cas", "cas-user", 10)
    };
    storage.insert(&original, &[]).await.expect("insert");
    let stored = storage.get("cas").await.expect("get").expect("stored");

    let confirmed = Booking {
        status: BookingStatus::Confirmed,
        payment_transaction_id: Some("txn-cas".into()),
        updated_at: 30,
        charge_attempted_at: None,
        refunded_at: Some(29),
        settle_after: None,
        settle_attempts: 0,
        ..stored.clone()
    };
    assert_eq!(
        storage.update_if_version(&confirmed, 1, &[]).await,
        Ok(2),
        "returns the new version"
    );
    let now = Booking {
        version: 2,
        ..confirmed.clone()
    };
    assert_eq!(
        storage.get("cas").await,
        Ok(Some(now.clone())),
        "every field as updated, options cleared too"
    );

    let stale = Booking {
        status: BookingStatus::Expired,
        ..stored
    };
    let result = storage.update_if_version(&stale, 1, &[]).await;
    assert!(
        matches!(result, Err(PortError::Conflict(_))),
        "a stale version: {result:?}"
    );
    assert_eq!(storage.get("cas").await, Ok(Some(now)), "unchanged");

    assert_eq!(
        storage
            .update_if_version(
                &Booking {
                    status: BookingStatus::Cancelled,
                    ..confirmed
                },
                2,
                &[]
            )
            .await,
        Ok(3),
        "versions go on counting"
    );

    let ghost = booking("cas-ghost", "cas-user", 10);
    let result = storage.update_if_version(&ghost, 1, &[]).await;
    assert!(
        matches!(result, Err(PortError::NotFound(_))),
        "an unknown id: {result:?}"
    );
    assert_eq!(storage.get("cas-ghost").await, Ok(None), "not created");
}

pub async fn events_commit_with_their_write(storage: &dyn Storage, events: &dyn Events) {
    let one = booking("log-one", "log-user", 10);
    let other = booking("log-other", "log-user", 10);
    let one_created = event(&one, EventKind::BookingCreated, "v1");
    let other_created = event(&other, EventKind::BookingCreated, "v1");
    storage
        .insert(&one, std::slice::from_ref(&one_created))
        .await
        .expect("insert");
    storage
        .insert(&other, std::slice::from_ref(&other_created))
        .await
        .expect("insert");

    let confirmed = Booking {
        status: BookingStatus::Confirmed,
        updated_at: 20,
        ..one.clone()
    };
    let one_confirmed = event(&confirmed, EventKind::BookingConfirmed, "v2");
    assert_eq!(
        storage
            .update_if_version(&confirmed, 1, std::slice::from_ref(&one_confirmed))
            .await,
        Ok(2)
    );
    // A write without events, then one with two.
    assert_eq!(storage.update_if_version(&confirmed, 2, &[]).await, Ok(3));
    let refunded = Booking {
        status: BookingStatus::Refunded,
        refunded_at: Some(40),
        updated_at: 40,
        ..one.clone()
    };
    let both = [
        event(&refunded, EventKind::BookingRefunded, "v4"),
        event(&refunded, EventKind::PaymentRefunded, "v4-refund"),
    ];
    assert_eq!(storage.update_if_version(&refunded, 3, &both).await, Ok(4));

    let lost = event(&refunded, EventKind::BookingExpired, "lost");
    let result = storage
        .update_if_version(&refunded, 3, std::slice::from_ref(&lost))
        .await;
    assert!(
        matches!(result, Err(PortError::Conflict(_))),
        "a stale version: {result:?}"
    );
    let ghost = booking("log-ghost", "log-user", 10);
    let result = storage
        .update_if_version(&ghost, 1, &[event(&ghost, EventKind::BookingExpired, "v2")])
        .await;
    assert!(
        matches!(result, Err(PortError::NotFound(_))),
        "an unknown id: {result:?}"
    );

    let history = events.history("log-one").await.expect("history");
    assert_eq!(
        event_ids(&history),
        [
            "log-one-v1",
            "log-one-v2",
            "log-one-v4",
            "log-one-v4-refund"
        ],
        "the events of each successful write, in commit order, none of a failed one"
    );
    assert_eq!(
        history,
        [vec![one_created, one_confirmed], both.to_vec()].concat(),
        "events read back as written"
    );
    assert_eq!(events.history("log-other").await, Ok(vec![other_created]));
    assert_eq!(events.history("log-ghost").await, Ok(vec![]));
}

pub async fn paging(storage: &dyn Storage) {
    // Pairs share a created-at: ties are ordered by id.
    for n in 0..7u64 {
        storage
            .insert(
                &booking(&format!("page-{n}"), "page-user", 100 + n / 2),
                &[],
            )
            .await
            .expect("insert");
    }
    storage
        .insert(&booking("page-stranger", "page-other", 500), &[])
        .await
        .expect("insert");

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    loop {
        let page = storage
            .list_by_user("page-user", &PageRequest { cursor, limit: 3 })
            .await
            .expect("a page");
        sizes.push(page.items.len());
        seen.extend(page.items.iter().map(|b| (b.created_at, b.id.clone())));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(sizes.len() < 10, "the cursors do not end: {sizes:?}");
    }
    assert_eq!(sizes, [3, 3, 1], "full pages until the last");
    let mut expected: Vec<(Timestamp, String)> = (0..7u64)
        .map(|n| (100 + n / 2, format!("page-{n}")))
        .collect();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected, "newest first, no gaps, no repeats");

    let all = storage
        .list_by_user(
            "page-user",
            &PageRequest {
                cursor: None,
                limit: 50,
            },
        )
        .await
        .expect("a page");
    assert_eq!(all.items.len(), 7);
    assert_eq!(all.next_cursor, None, "nothing after the last page");
    assert_eq!(
        all.items[0],
        Booking {
            version: 1,
            ..booking("page-6", "page-user", 103)
        },
        "whole bookings"
    );

    let result = storage
        .list_by_user(
            "page-user",
            &PageRequest {
                cursor: Some("garbage".into()),
                limit: 3,
            },
        )
        .await;
    assert!(
        matches!(result, Err(PortError::Rejected(_))),
        "a malformed cursor: {result:?}"
    );
    let nobody = storage
        .list_by_user(
            "page-nobody",
            &PageRequest {
                cursor: None,
                limit: 3,
            },
        )
        .await
        .expect("a page");
    assert!(nobody.items.is_empty() && nobody.next_cursor.is_none());
}

pub async fn expired_pending(storage: &dyn Storage) {
    for (id, status, lock_expires_at) in [
        ("exp-late", BookingStatus::Pending, 5_000),
        ("exp-later", BookingStatus::Pending, 4_000),
        ("exp-fresh", BookingStatus::Pending, 9_000),
        ("exp-paid", BookingStatus::Confirmed, 1_000),
    ] {
        let due = Booking {
            status,
            lock_expires_at,
            ..booking(id, "exp-user", 1)
        };
        storage.insert(&due, &[]).await.expect("insert");
    }
    let due = storage
        .list_expired_pending(6_000, 10)
        .await
        .expect("expired");
    assert_eq!(
        ids(&due),
        ["exp-later", "exp-late"],
        "oldest lock first, only PENDING"
    );
    let first = storage
        .list_expired_pending(6_000, 1)
        .await
        .expect("expired");
    assert_eq!(ids(&first), ["exp-later"], "at most the limit");
    assert_eq!(storage.list_expired_pending(3_000, 10).await, Ok(vec![]));
}

pub async fn unsettled(storage: &dyn Storage) {
    for (id, settle_after) in [
        ("due-b", Some(3_000)),
        ("due-a", Some(2_000)),
        ("due-later", Some(8_000)),
        ("due-never", None),
    ] {
        let ended = Booking {
            status: BookingStatus::Expired,
            lock_expires_at: 1_000,
            settle_after,
            ..booking(id, "due-user", 1)
        };
        storage.insert(&ended, &[]).await.expect("insert");
    }
    let due = storage.list_unsettled(3_000, 10).await.expect("unsettled");
    assert_eq!(
        ids(&due),
        ["due-a", "due-b"],
        "earliest first, due at or before now"
    );
    let first = storage.list_unsettled(3_000, 1).await.expect("unsettled");
    assert_eq!(ids(&first), ["due-a"], "at most the limit");
    assert_eq!(storage.list_unsettled(1_999, 10).await, Ok(vec![]));

    let settled = Booking {
        settle_after: None,
        ..due[0].clone()
    };
    storage
        .update_if_version(&settled, 1, &[])
        .await
        .expect("settled");
    let due = storage.list_unsettled(9_000, 10).await.expect("unsettled");
    assert_eq!(
        ids(&due),
        ["due-b", "due-later"],
        "a settled booking is no longer listed"
    );
}

fn record(user: &str, key: &str, expires_at: Timestamp) -> IdempotencyRecord {
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

pub async fn idempotency_records(storage: &dyn Storage) {
    storage
        .insert_idempotency_record(&record("idem-u1", "k1", LATER))
        .await
        .expect("insert");
    let result = storage
        .insert_idempotency_record(&record("idem-u1", "k1", LATER + 1))
        .await;
    assert!(
        matches!(result, Err(PortError::Conflict(_))),
        "a second insert of (user, key): {result:?}"
    );
    storage
        .insert_idempotency_record(&record("idem-u2", "k1", LATER))
        .await
        .expect("keys are scoped per user");
    assert_eq!(
        storage.get_idempotency_record("idem-u1", "k1").await,
        Ok(Some(IdempotencyRecord {
            version: 1,
            ..record("idem-u1", "k1", LATER)
        })),
        "the first insert stays, at version 1"
    );
    assert_eq!(
        storage
            .get_idempotency_record("idem-u2", "k1")
            .await
            .map(|found| found.map(|r| r.user_id)),
        Ok(Some("idem-u2".to_owned()))
    );
    assert_eq!(
        storage.get_idempotency_record("idem-u1", "other").await,
        Ok(None)
    );

    let answered = IdempotencyRecord {
        response: Some(r#"{"data":{}}"#.into()),
        fingerprint: "createBooking:5678".into(),
        lease_expires_at: 70,
        expires_at: LATER + 5,
        ..record("idem-u1", "k1", LATER)
    };
    assert_eq!(storage.update_idempotency_record(&answered, 1).await, Ok(2));
    let result = storage.update_idempotency_record(&answered, 1).await;
    assert!(
        matches!(result, Err(PortError::Conflict(_))),
        "a stale version: {result:?}"
    );
    assert_eq!(storage.update_idempotency_record(&answered, 2).await, Ok(3));
    assert_eq!(
        storage.get_idempotency_record("idem-u1", "k1").await,
        Ok(Some(IdempotencyRecord {
            version: 3,
            ..answered
        }))
    );
    let result = storage
        .update_idempotency_record(&record("idem-u1", "ghost", LATER), 1)
        .await;
    assert!(
        matches!(result, Err(PortError::NotFound(_))),
        "an unknown key: {result:?}"
    );
    assert_eq!(
        storage.get_idempotency_record("idem-u1", "ghost").await,
        Ok(None)
    );

    for (key, expires_at) in [("a", 30), ("b", 10), ("c", 20), ("d", 100)] {
        storage
            .insert_idempotency_record(&record("idem-purge", key, expires_at))
            .await
            .expect("insert");
    }
    assert_eq!(
        storage.purge_idempotency_records(50, 2).await,
        Ok(2),
        "at most the limit"
    );
    for (key, kept) in [("a", true), ("b", false), ("c", false), ("d", true)] {
        let found = storage
            .get_idempotency_record("idem-purge", key)
            .await
            .expect("get");
        assert_eq!(found.is_some(), kept, "oldest expired first: {key}");
    }
    assert_eq!(
        storage.purge_idempotency_records(30, 10).await,
        Ok(0),
        "expiring exactly now is not yet expired"
    );
    assert_eq!(storage.purge_idempotency_records(1_000, 10).await, Ok(2));
    assert_eq!(storage.purge_idempotency_records(1_000, 10).await, Ok(0));
    assert!(
        storage
            .get_idempotency_record("idem-u1", "k1")
            .await
            .is_ok_and(|found| found.is_some()),
        "unexpired records stay"
    );
}

#[cfg(test)]
mod tests {
    use crate::testing::Fakes;

    #[test]
    fn the_fakes_keep_the_storage_contract() {
        let fakes = Fakes::new(1);
        futures::executor::block_on(super::check_all(&*fakes.storage, &*fakes.events));
    }
}
