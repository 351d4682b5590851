//! `cinema:booking/storage` → `ports::Storage`.

use booking_model as model;

use super::{Answer, wit};
use crate::bindings::storage::{Booking, BookingPage, Event, Host, IdempotencyRecord, PageRequest};
use crate::bindings::types::{Error, Timestamp};
use crate::state::RequestState;

impl Host for RequestState {
    async fn insert(&mut self, booking: Booking, events: Vec<Event>) -> Result<(), Error> {
        let (booking, events): (model::Booking, Vec<model::Event>) = (booking.into(), wit(events));
        Ok(self
            .call("storage", "insert", |ports| {
                ports.storage.insert(&booking, &events)
            })
            .await?)
    }

    async fn get(&mut self, booking_id: String) -> Result<Option<Booking>, Error> {
        let booking = self
            .call("storage", "get", |ports| ports.storage.get(&booking_id))
            .await?;
        Ok(booking.map(Into::into))
    }

    async fn update_if_version(
        &mut self,
        booking: Booking,
        expected_version: u64,
        events: Vec<Event>,
    ) -> Result<u64, Error> {
        let (booking, events): (model::Booking, Vec<model::Event>) = (booking.into(), wit(events));
        Ok(self
            .call("storage", "update_if_version", |ports| {
                ports
                    .storage
                    .update_if_version(&booking, expected_version, &events)
            })
            .await?)
    }

    async fn list_by_user(
        &mut self,
        user_id: String,
        page: PageRequest,
    ) -> Result<BookingPage, Error> {
        let page = page.into();
        self.call("storage", "list_by_user", |ports| {
            ports.storage.list_by_user(&user_id, &page)
        })
        .await
        .answer()
    }

    async fn list_expired_pending(
        &mut self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Booking>, Error> {
        Ok(wit(self
            .call("storage", "list_expired_pending", |ports| {
                ports.storage.list_expired_pending(now, limit)
            })
            .await?))
    }

    async fn list_unsettled(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Booking>, Error> {
        Ok(wit(self
            .call("storage", "list_unsettled", |ports| {
                ports.storage.list_unsettled(now, limit)
            })
            .await?))
    }

    async fn insert_idempotency_record(&mut self, record: IdempotencyRecord) -> Result<(), Error> {
        let record = record.into();
        Ok(self
            .call("storage", "insert_idempotency_record", |ports| {
                ports.storage.insert_idempotency_record(&record)
            })
            .await?)
    }

    async fn get_idempotency_record(
        &mut self,
        user_id: String,
        key: String,
    ) -> Result<Option<IdempotencyRecord>, Error> {
        let record = self
            .call("storage", "get_idempotency_record", |ports| {
                ports.storage.get_idempotency_record(&user_id, &key)
            })
            .await?;
        Ok(record.map(Into::into))
    }

    async fn update_idempotency_record(
        &mut self,
        record: IdempotencyRecord,
        expected_version: u64,
    ) -> Result<u64, Error> {
        let record = record.into();
        Ok(self
            .call("storage", "update_idempotency_record", |ports| {
                ports
                    .storage
                    .update_idempotency_record(&record, expected_version)
            })
            .await?)
    }

    async fn purge_idempotency_records(
        &mut self,
        now: Timestamp,
        limit: u32,
    ) -> Result<u32, Error> {
        Ok(self
            .call("storage", "purge_idempotency_records", |ports| {
                ports.storage.purge_idempotency_records(now, limit)
            })
            .await?)
    }
}
