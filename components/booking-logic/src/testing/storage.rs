//! The `storage` port: versioned bookings and idempotency records, each
//! write appending its events to the fake event log under the same lock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{FakeEvents, Knobs, Op, lock};
use crate::model::{
    Booking, BookingPage, BookingStatus, Event, IdempotencyRecord, PageRequest, Timestamp, paging,
};
use crate::ports::{PortError, PortResult, Storage};

/// The booking store: versioned records, optimistic concurrency, and the
/// events of each write appended to `events` under the same lock, as a
/// real store commits them with the write. Cursors are `<created_at>:<id>`
/// of the last item of a page (`paging`). Idempotency records are
/// versioned the same way, keyed by (user, key).
pub struct FakeStorage {
    knobs: Arc<Knobs>,
    events: Arc<FakeEvents>,
    bookings: Mutex<BTreeMap<String, Booking>>,
    /// Every version ever stored, in the order stored: what the booking
    /// went through, for checking its transitions afterwards.
    history: Mutex<Vec<Booking>>,
    idempotency: Mutex<BTreeMap<(String, String), IdempotencyRecord>>,
}

impl FakeStorage {
    pub fn new(knobs: Arc<Knobs>, events: Arc<FakeEvents>) -> FakeStorage {
        FakeStorage {
            knobs,
            events,
            bookings: Mutex::default(),
            history: Mutex::default(),
            idempotency: Mutex::default(),
        }
    }

    /// Every stored idempotency record, by (user, key), bypassing knobs.
    pub fn idempotency_records(&self) -> Vec<IdempotencyRecord> {
        lock(&self.idempotency).values().cloned().collect()
    }

    /// Every version of the booking that was stored, oldest first.
    pub fn versions(&self, booking_id: &str) -> Vec<Booking> {
        lock(&self.history)
            .iter()
            .filter(|booking| booking.id == booking_id)
            .cloned()
            .collect()
    }

    fn keep(&self, booking: &Booking) {
        lock(&self.history).push(booking.clone());
    }

    /// The stored booking, bypassing knobs (for assertions).
    pub fn booking(&self, booking_id: &str) -> Option<Booking> {
        lock(&self.bookings).get(booking_id).cloned()
    }

    /// Every stored booking, by id.
    pub fn all(&self) -> Vec<Booking> {
        lock(&self.bookings).values().cloned().collect()
    }

    /// Stores a booking as is, bypassing knobs and checks (to set up a
    /// scenario).
    pub fn put(&self, booking: Booking) {
        self.keep(&booking);
        lock(&self.bookings).insert(booking.id.clone(), booking);
    }
}

#[async_trait]
impl Storage for FakeStorage {
    async fn insert(&self, booking: &Booking, events: &[Event]) -> PortResult<()> {
        self.knobs
            .run(Op::Insert, || {
                let mut bookings = lock(&self.bookings);
                if bookings.contains_key(&booking.id) {
                    return Err(PortError::Conflict(format!(
                        "booking {} exists",
                        booking.id
                    )));
                }
                let stored = Booking {
                    version: 1,
                    ..booking.clone()
                };
                self.keep(&stored);
                bookings.insert(booking.id.clone(), stored);
                self.events.append(events);
                Ok(())
            })
            .await
    }

    async fn get(&self, booking_id: &str) -> PortResult<Option<Booking>> {
        self.knobs
            .run(Op::Get, || {
                Ok(lock(&self.bookings).get(booking_id).cloned())
            })
            .await
    }

    async fn update_if_version(
        &self,
        booking: &Booking,
        expected_version: u64,
        events: &[Event],
    ) -> PortResult<u64> {
        self.knobs
            .run(Op::UpdateIfVersion, || {
                let mut bookings = lock(&self.bookings);
                let stored = bookings
                    .get_mut(&booking.id)
                    .ok_or_else(|| PortError::NotFound(format!("booking {}", booking.id)))?;
                if stored.version != expected_version {
                    return Err(PortError::Conflict(format!(
                        "booking {} is at version {}, not {expected_version}",
                        booking.id, stored.version
                    )));
                }
                let version = expected_version.saturating_add(1);
                *stored = Booking {
                    version,
                    ..booking.clone()
                };
                self.keep(stored);
                self.events.append(events);
                Ok(version)
            })
            .await
    }

    async fn list_by_user(&self, user_id: &str, page: &PageRequest) -> PortResult<BookingPage> {
        self.knobs
            .run(Op::ListByUser, || {
                let after = paging::Cursor::after(page.cursor.as_deref())?;
                let bookings = lock(&self.bookings);
                let mut mine: Vec<&Booking> = bookings
                    .values()
                    .filter(|booking| booking.user_id == user_id && after.admits(booking))
                    .collect();
                mine.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
                let limit = paging::clamp_limit(page.limit);
                let rows = mine.into_iter().take(limit as usize + 1).cloned().collect();
                Ok(paging::page(rows, limit))
            })
            .await
    }

    async fn list_expired_pending(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        self.knobs
            .run(Op::ListExpiredPending, || {
                let bookings = lock(&self.bookings);
                let mut due: Vec<&Booking> = bookings
                    .values()
                    .filter(|booking| {
                        booking.status == BookingStatus::Pending && booking.lock_expires_at < now
                    })
                    .collect();
                due.sort_by(|a, b| (a.lock_expires_at, &a.id).cmp(&(b.lock_expires_at, &b.id)));
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                Ok(due.into_iter().take(limit).cloned().collect())
            })
            .await
    }

    async fn list_unsettled(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        self.knobs
            .run(Op::ListUnsettled, || {
                let bookings = lock(&self.bookings);
                let mut due: Vec<(Timestamp, &Booking)> = bookings
                    .values()
                    .filter_map(|booking| Some((booking.settle_after?, booking)))
                    .filter(|(after, _)| *after <= now)
                    .collect();
                due.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                Ok(due
                    .into_iter()
                    .take(limit)
                    .map(|(_, booking)| booking.clone())
                    .collect())
            })
            .await
    }

    async fn insert_idempotency_record(&self, record: &IdempotencyRecord) -> PortResult<()> {
        self.knobs
            .run(Op::InsertIdempotencyRecord, || {
                let mut records = lock(&self.idempotency);
                let id = (record.user_id.clone(), record.key.clone());
                if records.contains_key(&id) {
                    return Err(PortError::Conflict(format!(
                        "idempotency key {} of {} exists",
                        record.key, record.user_id
                    )));
                }
                records.insert(
                    id,
                    IdempotencyRecord {
                        version: 1,
                        ..record.clone()
                    },
                );
                Ok(())
            })
            .await
    }

    async fn get_idempotency_record(
        &self,
        user_id: &str,
        key: &str,
    ) -> PortResult<Option<IdempotencyRecord>> {
        self.knobs
            .run(Op::GetIdempotencyRecord, || {
                let id = (user_id.to_string(), key.to_string());
                Ok(lock(&self.idempotency).get(&id).cloned())
            })
            .await
    }

    async fn update_idempotency_record(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
    ) -> PortResult<u64> {
        self.knobs
            .run(Op::UpdateIdempotencyRecord, || {
                let mut records = lock(&self.idempotency);
                let id = (record.user_id.clone(), record.key.clone());
                let stored = records.get_mut(&id).ok_or_else(|| {
                    PortError::NotFound(format!(
                        "idempotency key {} of {}",
                        record.key, record.user_id
                    ))
                })?;
                if stored.version != expected_version {
                    return Err(PortError::Conflict(format!(
                        "idempotency key {} of {} is at version {}, not {expected_version}",
                        record.key, record.user_id, stored.version
                    )));
                }
                let version = expected_version.saturating_add(1);
                *stored = IdempotencyRecord {
                    version,
                    ..record.clone()
                };
                Ok(version)
            })
            .await
    }

    async fn purge_idempotency_records(&self, now: Timestamp, limit: u32) -> PortResult<u32> {
        self.knobs
            .run(Op::PurgeIdempotencyRecords, || {
                let mut records = lock(&self.idempotency);
                let mut due: Vec<(Timestamp, (String, String))> = records
                    .iter()
                    .filter(|(_, record)| record.expires_at < now)
                    .map(|(id, record)| (record.expires_at, id.clone()))
                    .collect();
                // Oldest first, as the real stores do.
                due.sort();
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                let mut purged = 0u32;
                for (_, id) in due.into_iter().take(limit) {
                    records.remove(&id);
                    purged += 1;
                }
                Ok(purged)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use crate::model::{IdempotencyRecord, Timestamp};
    use crate::ports::{PortError, Storage};
    use crate::testing::{Fakes, Fault, Op};

    fn record(user_id: &str, key: &str, expires_at: Timestamp) -> IdempotencyRecord {
        IdempotencyRecord {
            user_id: user_id.into(),
            key: key.into(),
            fingerprint: "createBooking:abc".into(),
            response: None,
            lease_expires_at: 1_000,
            expires_at,
            version: 0,
        }
    }

    #[test]
    fn idempotency_records_are_versioned_per_user_and_key() {
        let storage = Fakes::new(0).storage;
        block_on(storage.insert_idempotency_record(&record("u1", "k", 10))).unwrap();
        // The same key of another user is another record.
        block_on(storage.insert_idempotency_record(&record("u2", "k", 10))).unwrap();
        assert!(matches!(
            block_on(storage.insert_idempotency_record(&record("u1", "k", 10))),
            Err(PortError::Conflict(_))
        ));

        let stored = block_on(storage.get_idempotency_record("u1", "k"))
            .unwrap()
            .unwrap();
        assert_eq!(stored.version, 1);
        let answered = IdempotencyRecord {
            response: Some("{}".into()),
            ..stored.clone()
        };
        assert_eq!(
            block_on(storage.update_idempotency_record(&answered, 1)),
            Ok(2)
        );
        assert!(matches!(
            block_on(storage.update_idempotency_record(&stored, 1)),
            Err(PortError::Conflict(_))
        ));
        assert!(matches!(
            block_on(storage.update_idempotency_record(&record("u3", "k", 10), 1)),
            Err(PortError::NotFound(_))
        ));
        let now = block_on(storage.get_idempotency_record("u1", "k"))
            .unwrap()
            .unwrap();
        assert_eq!((now.response.as_deref(), now.version), (Some("{}"), 2));
        assert_eq!(
            block_on(storage.get_idempotency_record("u1", "x")),
            Ok(None)
        );
    }

    #[test]
    fn purging_forgets_expired_records_oldest_first_up_to_the_limit() {
        let fakes = Fakes::new(0);
        let storage = &fakes.storage;
        for (key, expires_at) in [("a", 30), ("b", 10), ("c", 20), ("d", 100)] {
            block_on(storage.insert_idempotency_record(&record("u1", key, expires_at))).unwrap();
        }
        assert_eq!(block_on(storage.purge_idempotency_records(50, 2)), Ok(2));
        let left: Vec<String> = storage
            .idempotency_records()
            .into_iter()
            .map(|record| record.key)
            .collect();
        assert_eq!(left, vec!["a", "d"]);
        // Expiring exactly now is not yet before now.
        assert_eq!(block_on(storage.purge_idempotency_records(30, 10)), Ok(0));
        assert_eq!(block_on(storage.purge_idempotency_records(31, 10)), Ok(1));

        fakes.knobs.fail_next(
            Op::PurgeIdempotencyRecords,
            Fault::Fail(PortError::Unavailable("down".into())),
        );
        assert!(block_on(storage.purge_idempotency_records(1_000, 10)).is_err());
        assert_eq!(storage.idempotency_records().len(), 1, "nothing changed");
    }
}
