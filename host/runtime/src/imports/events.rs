//! `cinema:booking/events` → `ports::Events`.

use super::storage::event_to_wit;
use super::wit_error;
use crate::bindings::events::{Event, Host};
use crate::bindings::types::Error;
use crate::state::RequestState;

impl Host for RequestState {
    async fn history(&mut self, booking_id: String) -> Result<Vec<Event>, Error> {
        let history = self
            .ports
            .events
            .history(&booking_id)
            .await
            .map_err(wit_error)?;
        Ok(history.into_iter().map(event_to_wit).collect())
    }
}
