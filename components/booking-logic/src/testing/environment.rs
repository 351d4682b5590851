//! The `Environment` port: a clock that moves only when a test moves it,
//! and predictable ids.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::lock;
use crate::model::Timestamp;
use crate::ports::Environment;

struct EnvState {
    now: Timestamp,
    next_id: u64,
    scripted_ids: VecDeque<String>,
}

/// A clock that moves only when told to and predictable ids.
pub struct FakeEnvironment {
    state: Mutex<EnvState>,
}

impl FakeEnvironment {
    pub fn new(now: Timestamp) -> FakeEnvironment {
        FakeEnvironment {
            state: Mutex::new(EnvState {
                now,
                next_id: 1,
                scripted_ids: VecDeque::new(),
            }),
        }
    }

    pub fn set_now(&self, now: Timestamp) {
        lock(&self.state).now = now;
    }

    pub fn advance_ms(&self, millis: u64) {
        let mut state = lock(&self.state);
        state.now = state.now.saturating_add(millis);
    }

    pub fn advance_secs(&self, seconds: u64) {
        self.advance_ms(seconds.saturating_mul(1000));
    }

    /// The next `new_id` calls return these, in order; after them ids are
    /// `id-1`, `id-2`, ...
    pub fn script_ids<I, S>(&self, ids: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        lock(&self.state)
            .scripted_ids
            .extend(ids.into_iter().map(Into::into));
    }
}

impl Environment for FakeEnvironment {
    fn now(&self) -> Timestamp {
        lock(&self.state).now
    }

    fn new_id(&self) -> String {
        let mut state = lock(&self.state);
        if let Some(id) = state.scripted_ids.pop_front() {
            return id;
        }
        let id = format!("id-{}", state.next_id);
        state.next_id += 1;
        id
    }
}
