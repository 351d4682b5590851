//! `cinema:booking/storage` → `ports::Storage`.

use booking_logic::model;

use super::wit_error;
use crate::bindings::storage::{
    Booking, BookingPage, BookingStatus, Event, EventKind, Host, IdempotencyRecord, PageRequest,
};
use crate::bindings::types::{Error, Timestamp};
use crate::state::RequestState;

fn to_model_status(status: BookingStatus) -> model::BookingStatus {
    match status {
        BookingStatus::Pending => model::BookingStatus::Pending,
        BookingStatus::Confirmed => model::BookingStatus::Confirmed,
        BookingStatus::PaymentFailed => model::BookingStatus::PaymentFailed,
        BookingStatus::Failed => model::BookingStatus::Failed,
        BookingStatus::Cancelled => model::BookingStatus::Cancelled,
        BookingStatus::Expired => model::BookingStatus::Expired,
        BookingStatus::Refunded => model::BookingStatus::Refunded,
    }
}

fn to_wit_status(status: model::BookingStatus) -> BookingStatus {
    match status {
        model::BookingStatus::Pending => BookingStatus::Pending,
        model::BookingStatus::Confirmed => BookingStatus::Confirmed,
        model::BookingStatus::PaymentFailed => BookingStatus::PaymentFailed,
        model::BookingStatus::Failed => BookingStatus::Failed,
        model::BookingStatus::Cancelled => BookingStatus::Cancelled,
        model::BookingStatus::Expired => BookingStatus::Expired,
        model::BookingStatus::Refunded => BookingStatus::Refunded,
    }
}

fn to_model(b: Booking) -> model::Booking {
    model::Booking {
        id: b.id,
        user_id: b.user_id,
        showtime_id: b.showtime_id,
        seats: b.seats,
        total_cents: b.total_cents,
        currency: b.currency,
        status: to_model_status(b.status),
        lock_id: b.lock_id,
        lock_expires_at: b.lock_expires_at,
        payment_transaction_id: b.payment_transaction_id,
        failure_reason: b.failure_reason,
        created_at: b.created_at,
        updated_at: b.updated_at,
        version: b.version,
        charge_attempted_at: b.charge_attempted_at,
        refunded_at: b.refunded_at,
        settle_after: b.settle_after,
        settle_attempts: b.settle_attempts,
    }
}

fn to_wit(b: model::Booking) -> Booking {
    Booking {
        id: b.id,
        user_id: b.user_id,
        showtime_id: b.showtime_id,
        seats: b.seats,
        total_cents: b.total_cents,
        currency: b.currency,
        status: to_wit_status(b.status),
        lock_id: b.lock_id,
        lock_expires_at: b.lock_expires_at,
        payment_transaction_id: b.payment_transaction_id,
        failure_reason: b.failure_reason,
        created_at: b.created_at,
        updated_at: b.updated_at,
        version: b.version,
        charge_attempted_at: b.charge_attempted_at,
        refunded_at: b.refunded_at,
        settle_after: b.settle_after,
        settle_attempts: b.settle_attempts,
    }
}

fn event_to_model(e: Event) -> model::Event {
    model::Event {
        id: e.id,
        kind: match e.kind {
            EventKind::BookingCreated => model::EventKind::BookingCreated,
            EventKind::BookingConfirmed => model::EventKind::BookingConfirmed,
            EventKind::BookingPaymentFailed => model::EventKind::BookingPaymentFailed,
            EventKind::BookingFailed => model::EventKind::BookingFailed,
            EventKind::BookingCancelled => model::EventKind::BookingCancelled,
            EventKind::BookingExpired => model::EventKind::BookingExpired,
            EventKind::BookingRefunded => model::EventKind::BookingRefunded,
            EventKind::PaymentRefunded => model::EventKind::PaymentRefunded,
        },
        occurred_at: e.occurred_at,
        booking_id: e.booking_id,
        user_id: e.user_id,
        showtime_id: e.showtime_id,
        seats: e.seats,
        amount_cents: e.amount_cents,
        currency: e.currency,
        status: to_model_status(e.status),
        reason: e.reason,
    }
}

pub(super) fn event_to_wit(e: model::Event) -> Event {
    Event {
        id: e.id,
        kind: match e.kind {
            model::EventKind::BookingCreated => EventKind::BookingCreated,
            model::EventKind::BookingConfirmed => EventKind::BookingConfirmed,
            model::EventKind::BookingPaymentFailed => EventKind::BookingPaymentFailed,
            model::EventKind::BookingFailed => EventKind::BookingFailed,
            model::EventKind::BookingCancelled => EventKind::BookingCancelled,
            model::EventKind::BookingExpired => EventKind::BookingExpired,
            model::EventKind::BookingRefunded => EventKind::BookingRefunded,
            model::EventKind::PaymentRefunded => EventKind::PaymentRefunded,
        },
        occurred_at: e.occurred_at,
        booking_id: e.booking_id,
        user_id: e.user_id,
        showtime_id: e.showtime_id,
        seats: e.seats,
        amount_cents: e.amount_cents,
        currency: e.currency,
        status: to_wit_status(e.status),
        reason: e.reason,
    }
}

fn record_to_model(r: IdempotencyRecord) -> model::IdempotencyRecord {
    model::IdempotencyRecord {
        user_id: r.user_id,
        key: r.key,
        fingerprint: r.fingerprint,
        response: r.response,
        lease_expires_at: r.lease_expires_at,
        expires_at: r.expires_at,
        version: r.version,
    }
}

fn record_to_wit(r: model::IdempotencyRecord) -> IdempotencyRecord {
    IdempotencyRecord {
        user_id: r.user_id,
        key: r.key,
        fingerprint: r.fingerprint,
        response: r.response,
        lease_expires_at: r.lease_expires_at,
        expires_at: r.expires_at,
        version: r.version,
    }
}

impl Host for RequestState {
    async fn insert(&mut self, booking: Booking, events: Vec<Event>) -> Result<(), Error> {
        let events: Vec<model::Event> = events.into_iter().map(event_to_model).collect();
        self.ports
            .storage
            .insert(&to_model(booking), &events)
            .await
            .map_err(wit_error)
    }

    async fn get(&mut self, booking_id: String) -> Result<Option<Booking>, Error> {
        let booking = self
            .ports
            .storage
            .get(&booking_id)
            .await
            .map_err(wit_error)?;
        Ok(booking.map(to_wit))
    }

    async fn update_if_version(
        &mut self,
        booking: Booking,
        expected_version: u64,
        events: Vec<Event>,
    ) -> Result<u64, Error> {
        let events: Vec<model::Event> = events.into_iter().map(event_to_model).collect();
        self.ports
            .storage
            .update_if_version(&to_model(booking), expected_version, &events)
            .await
            .map_err(wit_error)
    }

    async fn list_by_user(
        &mut self,
        user_id: String,
        page: PageRequest,
    ) -> Result<BookingPage, Error> {
        let page = model::PageRequest {
            cursor: page.cursor,
            limit: page.limit,
        };
        let page = self
            .ports
            .storage
            .list_by_user(&user_id, &page)
            .await
            .map_err(wit_error)?;
        Ok(BookingPage {
            items: page.items.into_iter().map(to_wit).collect(),
            next_cursor: page.next_cursor,
        })
    }

    async fn list_expired_pending(
        &mut self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Booking>, Error> {
        let expired = self
            .ports
            .storage
            .list_expired_pending(now, limit)
            .await
            .map_err(wit_error)?;
        Ok(expired.into_iter().map(to_wit).collect())
    }

    async fn list_unsettled(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Booking>, Error> {
        let due = self
            .ports
            .storage
            .list_unsettled(now, limit)
            .await
            .map_err(wit_error)?;
        Ok(due.into_iter().map(to_wit).collect())
    }

    async fn insert_idempotency_record(&mut self, record: IdempotencyRecord) -> Result<(), Error> {
        self.ports
            .storage
            .insert_idempotency_record(&record_to_model(record))
            .await
            .map_err(wit_error)
    }

    async fn get_idempotency_record(
        &mut self,
        user_id: String,
        key: String,
    ) -> Result<Option<IdempotencyRecord>, Error> {
        let record = self
            .ports
            .storage
            .get_idempotency_record(&user_id, &key)
            .await
            .map_err(wit_error)?;
        Ok(record.map(record_to_wit))
    }

    async fn update_idempotency_record(
        &mut self,
        record: IdempotencyRecord,
        expected_version: u64,
    ) -> Result<u64, Error> {
        self.ports
            .storage
            .update_idempotency_record(&record_to_model(record), expected_version)
            .await
            .map_err(wit_error)
    }

    async fn purge_idempotency_records(
        &mut self,
        now: Timestamp,
        limit: u32,
    ) -> Result<u32, Error> {
        self.ports
            .storage
            .purge_idempotency_records(now, limit)
            .await
            .map_err(wit_error)
    }
}
