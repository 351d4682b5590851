//! Fault injection, call counting and interleaving, shared by every
//! fake: each port call goes through `Knobs::run`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use super::{Op, lock};
use crate::ports::{PortError, PortResult};

/// How an injected failure behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Fail before doing anything (the WIT's "nothing changed").
    Fail(PortError),
    /// Do the call, then report this error anyway, e.g. a charge that went
    /// through but whose answer timed out.
    FailAfterEffect(PortError),
    /// The process dies during the call, after it took effect or before:
    /// no answer ever comes (the call stays pending) and
    /// `Knobs::take_crashed` tells the driver to drop the request.
    Crash { after_effect: bool },
}

/// Decides the fate of a port call that has no queued fault: `None` lets
/// it run. The simulation plugs in a seeded schedule here; it may also
/// move the clock, which then happens before the call takes effect.
pub type Chaos = Box<dyn FnMut(Op) -> Option<Fault> + Send>;

#[derive(Default)]
struct KnobState {
    faults: HashMap<Op, VecDeque<Fault>>,
    /// Set by a `Fault::Crash` until `take_crashed` reads it.
    crashed: bool,
    calls: HashMap<Op, usize>,
    interleave: bool,
    chaos: Option<Chaos>,
}

/// Fault injection, call counting and interleaving, shared by all fakes.
#[derive(Default)]
pub struct Knobs {
    state: Mutex<KnobState>,
}

impl Knobs {
    /// Makes the next call of `op` fail with `fault`; queued faults are
    /// used in order, one per call.
    pub fn fail_next(&self, op: Op, fault: Fault) {
        lock(&self.state)
            .faults
            .entry(op)
            .or_default()
            .push_back(fault);
    }

    /// How many times `op` was called (including failed calls).
    pub fn calls(&self, op: Op) -> usize {
        lock(&self.state).calls.get(&op).copied().unwrap_or(0)
    }

    /// When on, every port call first yields once to the executor, so
    /// operations joined with `futures::future::join` interleave call by call in
    /// a fixed order instead of each running to completion.
    pub fn set_interleaving(&self, on: bool) {
        lock(&self.state).interleave = on;
    }

    /// Whether a call has crashed "the process" since the last look: the
    /// request in flight must then be dropped where it stands.
    pub fn take_crashed(&self) -> bool {
        std::mem::take(&mut lock(&self.state).crashed)
    }

    /// Consults `chaos` for every call without a queued fault, until it is
    /// replaced or removed (`None`).
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        lock(&self.state).chaos = chaos;
    }

    /// Runs one port call: yields if interleaving, counts it, applies the
    /// next queued fault for `op` or else what the chaos decides,
    /// otherwise runs `body`.
    pub(super) async fn run<T>(
        &self,
        op: Op,
        body: impl FnOnce() -> PortResult<T>,
    ) -> PortResult<T> {
        let interleave = lock(&self.state).interleave;
        if interleave {
            YieldOnce(false).await;
        }
        let fault = {
            let mut state = lock(&self.state);
            *state.calls.entry(op).or_default() += 1;
            match state.faults.get_mut(&op).and_then(VecDeque::pop_front) {
                Some(fault) => Some(fault),
                None => state.chaos.as_mut().and_then(|chaos| chaos(op)),
            }
        };
        match fault {
            None => body(),
            Some(Fault::Fail(error)) => Err(error),
            Some(Fault::FailAfterEffect(error)) => {
                // The effect happens; its answer is lost.
                let _ = body();
                Err(error)
            }
            Some(Fault::Crash { after_effect }) => {
                if after_effect {
                    let _ = body();
                }
                lock(&self.state).crashed = true;
                std::future::pending().await
            }
        }
    }
}

/// Returns `Pending` once (waking itself), then `Ready`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
