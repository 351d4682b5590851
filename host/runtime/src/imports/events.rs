//! `cinema:booking/events` → `ports::Events`.

use super::wit;
use crate::bindings::events::{Event, Host};
use crate::bindings::types::Error;
use crate::state::RequestState;

impl Host for RequestState {
    async fn history(&mut self, booking_id: String) -> Result<Vec<Event>, Error> {
        Ok(wit(self
            .call("events", "history", |ports| {
                ports.events.history(&booking_id)
            })
            .await?))
    }
}
