//! One simulation run, entirely determined by its seed: draw a world and
//! a fault profile, let customers and sweepers interleave under the
//! seeded scheduler, settle (faults off: clients retry what they were told
//! to retry, time passes every lock and every settlement that is owed,
//! sweeps until nothing is), then check the invariants.

use std::cell::RefCell;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};

use booking_logic::ports::Environment;
use futures::executor::block_on;

use super::api::{self, Via};
use super::chaos::{self, Coverage, Profile};
use super::clients::{self, SharedSlot};
use super::executor::Executor;
use super::invariants;
use super::ledger::{Ledger, Reply, Request};
use super::rng::Rng;
use super::world::{LOCK_MS, World};

/// Far more polls than any run needs: hitting it means a task spins.
const MAX_POLLS: u64 = 1_000_000;
/// Sweeps after the run; each expires at most `FINAL_SWEEP_LIMIT`.
const FINAL_SWEEPS: u32 = 20;
const FINAL_SWEEP_LIMIT: u32 = 100;

/// What a passing run did, for the totals.
#[derive(Debug, Default)]
pub struct Outcome {
    pub bookings: usize,
    pub confirmed: usize,
    pub coverage: Coverage,
    /// The run's story, when asked for.
    pub trace: Option<String>,
}

/// Why a run failed, and everything needed to understand it.
#[derive(Debug)]
pub struct Failed {
    pub reason: String,
    pub trace: String,
}

/// Runs one seed; `tell` asks for the trace of a passing run too.
pub fn run(seed: u64, tell: bool) -> Result<Outcome, Failed> {
    let mut rng = Rng::new(seed);
    let world = World::new(&mut rng);
    let profile = Profile::draw(&mut rng);
    let coverage = Arc::new(Mutex::new(Coverage::new()));
    world.fakes.knobs.set_chaos(Some(chaos::schedule(
        profile,
        rng.fork(),
        world.fakes.env.clone(),
        LOCK_MS,
        coverage.clone(),
    )));
    let ledger = Ledger::default();
    let slots: Vec<SharedSlot> = (0..rng.between(2, 8)).map(|_| RefCell::default()).collect();

    let mut executor = Executor::new(rng.fork());
    for slot in &slots {
        executor.spawn(clients::customer(&world, &ledger, slot, rng.fork()));
        if rng.percent(30) {
            executor.spawn(clients::second_device(&world, &ledger, slot, rng.fork()));
        }
    }
    for _ in 0..rng.between(1, 2) {
        executor.spawn(clients::sweeper(&world, &ledger, rng.fork()));
    }
    let checked = executor
        .run(MAX_POLLS)
        .and_then(|()| settle(&world, &ledger))
        .and_then(|()| invariants::check(&world, &ledger));
    match checked {
        Ok(()) => {
            let bookings = world.fakes.storage.all();
            Ok(Outcome {
                confirmed: bookings
                    .iter()
                    .filter(|booking| booking.status.as_str() == "CONFIRMED")
                    .count(),
                bookings: bookings.len(),
                coverage: coverage
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
                trace: tell.then(|| trace(&world, &ledger, profile)),
            })
        }
        Err(reason) => Err(Failed {
            reason,
            trace: trace(&world, &ledger, profile),
        }),
    }
}

/// Faults off; what clients were told to retry is retried (until a final
/// answer); then time passes every lock, and sweeps run (time passing each
/// owed settlement's due time) until nothing is left to expire or settle.
fn settle(world: &World, ledger: &Ledger) -> Result<(), String> {
    world.fakes.knobs.set_chaos(None);
    for exchange in ledger.unsettled() {
        let booking_id = exchange.booking_id.unwrap_or_default();
        for _ in 0..5 {
            let reply = match &exchange.request {
                Request::Pay { card } => {
                    match block_on(api::pay(world, Via::Workflow, &booking_id, card)) {
                        Ok(paid) => Reply::Paid(paid),
                        Err(failure) => Reply::Refused(failure),
                    }
                }
                _ => match block_on(api::cancel(world, Via::Workflow, &booking_id)) {
                    Ok(status) => Reply::Cancelled(status),
                    Err(failure) => Reply::Refused(failure),
                },
            };
            let retry = matches!(&reply, Reply::Refused(failure) if failure.retryable);
            ledger.record(Some(&booking_id), exchange.request.clone(), reply);
            if !retry {
                break;
            }
        }
    }

    let last_expiry = world
        .fakes
        .seats
        .locks()
        .iter()
        .map(|record| record.lock.expires_at)
        .chain(
            world
                .fakes
                .storage
                .all()
                .iter()
                .map(|booking| booking.lock_expires_at),
        )
        .max()
        .unwrap_or_default();
    if world.fakes.env.now() <= last_expiry {
        world.fakes.env.set_now(last_expiry + 1);
    }
    for _ in 0..FINAL_SWEEPS {
        let report = block_on(world.workflow.sweep_expired(FINAL_SWEEP_LIMIT))
            .map_err(|error| format!("the final sweep failed with no faults left: {error}"))?;
        let next_due = world
            .fakes
            .storage
            .all()
            .iter()
            .filter_map(|booking| booking.settle_after)
            .max();
        match next_due {
            None if report.expired == 0 && report.skipped == 0 => return Ok(()),
            None => {}
            Some(due) if world.fakes.env.now() < due => world.fakes.env.set_now(due),
            Some(_) => {}
        }
    }
    Err(format!("{FINAL_SWEEPS} final sweeps did not settle"))
}

/// The run as a story: the profile, what clients were told, how each
/// booking ended and what happened to its money, seats and events.
fn trace(world: &World, ledger: &Ledger, profile: Profile) -> String {
    let mut out = format!("{profile:?}\n-- exchanges\n");
    for exchange in ledger.exchanges() {
        let _ = writeln!(
            out,
            "{:?} {:?} -> {:?}",
            exchange.booking_id, exchange.request, exchange.reply
        );
    }
    let _ = writeln!(out, "-- bookings (every stored version)");
    for booking in world.fakes.storage.all() {
        for version in world.fakes.storage.versions(&booking.id) {
            let _ = writeln!(
                out,
                "{} v{} {} lock {} until {} attempt {:?} txn {:?} refunded {:?} settle {:?}/{} reason {:?} at {}",
                version.id,
                version.version,
                version.status.as_str(),
                version.lock_id,
                version.lock_expires_at,
                version.charge_attempted_at,
                version.payment_transaction_id,
                version.refunded_at,
                version.settle_after,
                version.settle_attempts,
                version.failure_reason,
                version.updated_at
            );
        }
        let _ = writeln!(
            out,
            "  charge {:?} refunded {:?} events {:?}",
            world.fakes.payments.receipt(&booking.id),
            world
                .fakes
                .payments
                .receipt(&booking.id)
                .map(|receipt| world.fakes.payments.is_refunded(&receipt.transaction_id)),
            world
                .fakes
                .events
                .published()
                .iter()
                .filter(|event| event.booking_id == booking.id)
                .map(|event| format!("{}({})", event.kind.as_str(), event.id))
                .collect::<Vec<_>>()
        );
    }
    let _ = writeln!(out, "-- locks");
    for record in world.fakes.seats.locks() {
        let _ = writeln!(
            out,
            "{} {:?} for {} seats {:?} until {}",
            record.lock.id,
            record.state,
            record.holder,
            record
                .lock
                .seats
                .iter()
                .map(|seat| seat.number.as_str())
                .collect::<Vec<_>>(),
            record.lock.expires_at
        );
    }
    out
}
