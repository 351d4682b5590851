//! `cinema:booking/storage` → `ports::Storage`.

use booking_model as model;

use super::{Answer, wit};
use crate::bindings::storage::{Booking, BookingPage, Event, Host, IdempotencyRecord, PageRequest};
use crate::bindings::types::{Error, Timestamp};
use crate::state::RequestState;

impl Host for RequestState {
    async fn insert(&mut self, booking: Booking, events: Vec<Event>) -> Result<(), Error> {
        let events: Vec<model::Event> = wit(events);
        Ok(self.ports.storage.insert(&booking.into(), &events).await?)
    }

    async fn get(&mut self, booking_id: String) -> Result<Option<Booking>, Error> {
        Ok(self.ports.storage.get(&booking_id).await?.map(Into::into))
    }

    async fn update_if_version(
        &mut self,
        booking: Booking,
        expected_version: u64,
        events: Vec<Event>,
    ) -> Result<u64, Error> {
        let events: Vec<model::Event> = wit(events);
        Ok(self
            .ports
            .storage
            .update_if_version(&booking.into(), expected_version, &events)
            .await?)
    }

    async fn list_by_user(
        &mut self,
        user_id: String,
        page: PageRequest,
    ) -> Result<BookingPage, Error> {
        self.ports
            .storage
            .list_by_user(&user_id, &page.into())
            .await
            .answer()
    }

    async fn list_expired_pending(
        &mut self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Booking>, Error> {
        Ok(wit(self
            .ports
            .storage
            .list_expired_pending(now, limit)
            .await?))
    }

    async fn list_unsettled(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Booking>, Error> {
        Ok(wit(self.ports.storage.list_unsettled(now, limit).await?))
    }

    async fn insert_idempotency_record(&mut self, record: IdempotencyRecord) -> Result<(), Error> {
        Ok(self
            .ports
            .storage
            .insert_idempotency_record(&record.into())
            .await?)
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
            .await?;
        Ok(record.map(Into::into))
    }

    async fn update_idempotency_record(
        &mut self,
        record: IdempotencyRecord,
        expected_version: u64,
    ) -> Result<u64, Error> {
        Ok(self
            .ports
            .storage
            .update_idempotency_record(&record.into(), expected_version)
            .await?)
    }

    async fn purge_idempotency_records(
        &mut self,
        now: Timestamp,
        limit: u32,
    ) -> Result<u32, Error> {
        Ok(self
            .ports
            .storage
            .purge_idempotency_records(now, limit)
            .await?)
    }
}
