//! The `events` port: the log of every event `FakeStorage` committed.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Knobs, Op, lock};
use crate::model::{Event, EventKind};
use crate::ports::{Events, PortResult};

/// The event log: every event `FakeStorage` committed, in commit order.
pub struct FakeEvents {
    knobs: Arc<Knobs>,
    events: Mutex<Vec<Event>>,
}

impl FakeEvents {
    pub fn new(knobs: Arc<Knobs>) -> FakeEvents {
        FakeEvents {
            knobs,
            events: Mutex::default(),
        }
    }

    /// Every event committed, in order.
    pub fn published(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// The kinds of the events published for one booking, in order.
    pub fn kinds(&self, booking_id: &str) -> Vec<EventKind> {
        lock(&self.events)
            .iter()
            .filter(|event| event.booking_id == booking_id)
            .map(|event| event.kind)
            .collect()
    }
}

impl FakeEvents {
    /// Called by `FakeStorage` inside its write.
    pub(super) fn append(&self, events: &[Event]) {
        lock(&self.events).extend_from_slice(events);
    }
}

#[async_trait]
impl Events for FakeEvents {
    async fn history(&self, booking_id: &str) -> PortResult<Vec<Event>> {
        self.knobs
            .run(Op::History, || {
                Ok(lock(&self.events)
                    .iter()
                    .filter(|event| event.booking_id == booking_id)
                    .cloned()
                    .collect())
            })
            .await
    }
}
