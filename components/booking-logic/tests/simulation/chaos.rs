//! The seeded fault schedule: for every port call, whether it runs, fails
//! with one of the WIT's error kinds before taking effect, takes effect
//! and then times out (the answer is lost), kills the process serving the
//! request (before or after the call took effect), or is delayed, the
//! clock moving while it is in flight, possibly past a seat lock's expiry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use booking_logic::ports::PortError;
use booking_logic::testing::{Chaos, FakeEnvironment, Fault, Op};

use super::rng::Rng;

/// What can happen to a call, for the coverage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mishap {
    NotFound,
    Rejected,
    Conflict,
    Unavailable,
    Timeout,
    TimeoutAfterEffect,
    Crash,
    CrashAfterEffect,
    Delay,
    DelayPastLockExpiry,
}

/// How often each mishap happened in a run (or many).
pub type Coverage = BTreeMap<Mishap, u64>;

/// How rough one run is: drawn per seed so that some runs are nearly
/// clean (long happy paths, races decide) and some are brutal.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// Chance in percent that a call fails.
    pub fault_percent: u64,
    /// Chance in percent that a call is delayed.
    pub delay_percent: u64,
}

impl Profile {
    pub fn draw(rng: &mut Rng) -> Profile {
        Profile {
            fault_percent: *rng.pick(&[0, 2, 5, 10, 20, 35]),
            delay_percent: *rng.pick(&[0, 3, 10]),
        }
    }
}

/// Builds the knob that decides each call. `lock_ms` is the seat lock
/// duration, so that a long delay really outlives a lock.
pub fn schedule(
    profile: Profile,
    mut rng: Rng,
    env: Arc<FakeEnvironment>,
    lock_ms: u64,
    coverage: Arc<Mutex<Coverage>>,
) -> Chaos {
    Box::new(move |op: Op| {
        let mut happened = Vec::new();
        if rng.percent(profile.delay_percent) {
            // One delay in five outlives any lock taken just before it.
            if rng.percent(20) {
                env.advance_ms(lock_ms + rng.between(1, 5_000));
                happened.push(Mishap::DelayPastLockExpiry);
            } else {
                env.advance_ms(rng.between(1, lock_ms / 4));
                happened.push(Mishap::Delay);
            }
        }
        let fault = rng.percent(profile.fault_percent).then(|| {
            let detail = format!("injected into {op:?}");
            // Outages and timeouts are what real dependencies mostly do;
            // the other kinds are answers a dependency may give anyway.
            let (mishap, fault) = match rng.between(0, 11) {
                0 => (Mishap::NotFound, Fault::Fail(PortError::NotFound(detail))),
                1 => (Mishap::Rejected, Fault::Fail(PortError::Rejected(detail))),
                2 => (Mishap::Conflict, Fault::Fail(PortError::Conflict(detail))),
                3..=5 => (
                    Mishap::Unavailable,
                    Fault::Fail(PortError::Unavailable(detail)),
                ),
                6 | 7 => (Mishap::Timeout, Fault::Fail(PortError::Timeout(detail))),
                10 => (
                    Mishap::Crash,
                    Fault::Crash {
                        after_effect: false,
                    },
                ),
                11 => (
                    Mishap::CrashAfterEffect,
                    Fault::Crash { after_effect: true },
                ),
                _ => (
                    Mishap::TimeoutAfterEffect,
                    Fault::FailAfterEffect(PortError::Timeout(detail)),
                ),
            };
            happened.push(mishap);
            fault
        });
        let mut coverage = coverage.lock().unwrap_or_else(PoisonError::into_inner);
        for mishap in happened {
            *coverage.entry(mishap).or_default() += 1;
        }
        fault
    })
}
