//! What the logic was told by its dependencies, call by call. The fakes
//! know what happened; the journal knows what the logic *saw* (a charge
//! whose answer was lost, a refund that failed), which is what decides
//! whether the logic could have done better.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use booking_logic::model::{
    Booking, BookingPage, ChargeRequest, Event, EventKind, IdempotencyRecord, PageRequest, Receipt,
    RefundReceipt, Seat, SeatLock, Showtime, Timestamp,
};
use booking_logic::ports::{Events, Payments, PortError, PortResult, Seats, Storage};
use booking_logic::testing::{FakeEvents, FakePayments, FakeSeats, FakeStorage};

use super::executor::current_task;

#[derive(Default)]
struct Entries {
    /// Idempotency keys whose charge answered with a receipt.
    receipts: Vec<String>,
    /// Transactions whose refund failed (whether a later one worked, the
    /// payment service knows).
    refund_failed: Vec<String>,
    /// Locks whose release failed, and whose release succeeded.
    release_failed: Vec<String>,
    released: Vec<String>,
    /// Events whose publication failed: booking id and kind.
    publish_failed: Vec<(String, EventKind)>,
    /// Writes that landed although they timed out, by task, until that
    /// task reads the booking back.
    landed_unanswered: Vec<(usize, Booking)>,
    /// Bookings a write of which landed and the writer could not tell.
    unresolved: Vec<String>,
}

#[derive(Default)]
pub struct Journal {
    entries: Mutex<Entries>,
}

impl Journal {
    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The logic was handed the receipt of the charge under this key.
    pub fn saw_receipt(&self, key: &str) -> bool {
        self.entries().receipts.iter().any(|seen| seen == key)
    }

    /// The logic tried to refund the transaction and was told it failed.
    pub fn refund_failed(&self, transaction_id: &str) -> bool {
        self.entries()
            .refund_failed
            .iter()
            .any(|failed| failed == transaction_id)
    }

    /// The logic tried to release the lock, and the last try failed.
    pub fn release_failed_last(&self, lock_id: &str) -> bool {
        let entries = self.entries();
        entries.release_failed.iter().any(|id| id == lock_id)
            && !entries.released.iter().any(|id| id == lock_id)
    }

    /// A write to the booking landed, its answer was lost, and the read
    /// that should have told the writer so failed or showed something
    /// else: the writer stopped without compensating or announcing.
    pub fn outcome_unknown(&self, booking_id: &str) -> bool {
        self.entries()
            .unresolved
            .iter()
            .any(|unresolved| unresolved == booking_id)
    }

    pub fn publish_failed(&self, booking_id: &str, kind: EventKind) -> bool {
        self.entries()
            .publish_failed
            .iter()
            .any(|(booking, failed)| booking == booking_id && *failed == kind)
    }
}

/// The seat service as the logic sees it: releases are journaled.
pub struct ObservedSeats(pub Arc<FakeSeats>, pub Arc<Journal>);

#[async_trait]
impl Seats for ObservedSeats {
    async fn get_showtime(&self, showtime_id: &str) -> PortResult<Showtime> {
        self.0.get_showtime(showtime_id).await
    }

    async fn seat_map(&self, showtime_id: &str) -> PortResult<Vec<Seat>> {
        self.0.seat_map(showtime_id).await
    }

    async fn lock_seats(
        &self,
        showtime_id: &str,
        seats: &[String],
        holder: &str,
        ttl_seconds: u32,
    ) -> PortResult<SeatLock> {
        self.0
            .lock_seats(showtime_id, seats, holder, ttl_seconds)
            .await
    }

    async fn confirm_seats(&self, lock_id: &str) -> PortResult<()> {
        self.0.confirm_seats(lock_id).await
    }

    async fn release_seats(&self, lock_id: &str) -> PortResult<()> {
        let result = self.0.release_seats(lock_id).await;
        let mut entries = self.1.entries();
        match result {
            Ok(()) => entries.released.push(lock_id.to_string()),
            Err(_) => entries.release_failed.push(lock_id.to_string()),
        }
        result
    }
}

/// The payment service as the logic sees it: receipts and refunds are
/// journaled.
pub struct ObservedPayments(pub Arc<FakePayments>, pub Arc<Journal>);

#[async_trait]
impl Payments for ObservedPayments {
    async fn charge(&self, request: &ChargeRequest) -> PortResult<Receipt> {
        let result = self.0.charge(request).await;
        if result.is_ok() {
            self.1
                .entries()
                .receipts
                .push(request.idempotency_key.clone());
        }
        result
    }

    async fn refund(&self, transaction_id: &str) -> PortResult<RefundReceipt> {
        let result = self.0.refund(transaction_id).await;
        if result.is_err() {
            self.1
                .entries()
                .refund_failed
                .push(transaction_id.to_string());
        }
        result
    }
}

/// The event log as the logic sees it: failed publications are journaled.
pub struct ObservedEvents(pub Arc<FakeEvents>, pub Arc<Journal>);

#[async_trait]
impl Events for ObservedEvents {
    async fn publish(&self, event: &Event) -> PortResult<()> {
        let result = self.0.publish(event).await;
        if result.is_err() {
            self.1
                .entries()
                .publish_failed
                .push((event.booking_id.clone(), event.kind));
        }
        result
    }

    async fn history(&self, booking_id: &str) -> PortResult<Vec<Event>> {
        self.0.history(booking_id).await
    }
}

/// The booking store as the logic sees it: a write that landed but timed
/// out is followed to the writer's read-back, to learn whether the
/// writer found out.
pub struct ObservedStorage(pub Arc<FakeStorage>, pub Arc<Journal>);

impl ObservedStorage {
    /// Notes a write that timed out although `written` is what the store
    /// now holds: it landed, and the writer does not know yet.
    fn wrote<T>(&self, result: &PortResult<T>, written: Booking) {
        let timed_out = matches!(result, Err(PortError::Timeout(_)));
        if timed_out && self.0.booking(&written.id).as_ref() == Some(&written) {
            self.1
                .entries()
                .landed_unanswered
                .push((current_task(), written));
        }
    }
}

#[async_trait]
impl Storage for ObservedStorage {
    async fn insert(&self, booking: &Booking) -> PortResult<()> {
        let result = self.0.insert(booking).await;
        let written = Booking {
            version: 1,
            ..booking.clone()
        };
        self.wrote(&result, written);
        result
    }

    async fn get(&self, booking_id: &str) -> PortResult<Option<Booking>> {
        let result = self.0.get(booking_id).await;
        let task = current_task();
        let mut entries = self.1.entries();
        let mine = entries
            .landed_unanswered
            .iter()
            .position(|(writer, landed)| *writer == task && landed.id == booking_id);
        if let Some(index) = mine {
            let (_, landed) = entries.landed_unanswered.remove(index);
            // The workflow reads back exactly what it wrote to decide.
            let confirmed = matches!(&result, Ok(Some(current)) if *current == landed);
            if !confirmed {
                entries.unresolved.push(booking_id.to_string());
            }
        }
        result
    }

    async fn update_if_version(&self, booking: &Booking, expected_version: u64) -> PortResult<u64> {
        let result = self.0.update_if_version(booking, expected_version).await;
        let written = Booking {
            version: expected_version + 1,
            ..booking.clone()
        };
        self.wrote(&result, written);
        result
    }

    async fn list_by_user(&self, user_id: &str, page: &PageRequest) -> PortResult<BookingPage> {
        self.0.list_by_user(user_id, page).await
    }

    async fn list_expired_pending(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        self.0.list_expired_pending(now, limit).await
    }

    async fn insert_idempotency_record(&self, record: &IdempotencyRecord) -> PortResult<()> {
        self.0.insert_idempotency_record(record).await
    }

    async fn get_idempotency_record(
        &self,
        user_id: &str,
        key: &str,
    ) -> PortResult<Option<IdempotencyRecord>> {
        self.0.get_idempotency_record(user_id, key).await
    }

    async fn update_idempotency_record(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
    ) -> PortResult<u64> {
        self.0
            .update_idempotency_record(record, expected_version)
            .await
    }

    async fn purge_idempotency_records(&self, now: Timestamp, limit: u32) -> PortResult<u32> {
        self.0.purge_idempotency_records(now, limit).await
    }
}
