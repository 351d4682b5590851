//! What runs concurrently in a simulation: customers (create, then pay,
//! cancel, pay late, pay then cancel, or walk away, retrying what they are
//! told to retry with the same booking, hence the same idempotency key),
//! a customer's second device acting on the same booking at the same
//! time, and expiry sweepers on their timers.

use std::cell::RefCell;

use super::api::{self, Via};
use super::executor::yield_now;
use super::ledger::{Ledger, Reply, Request};
use super::rng::Rng;
use super::world::{DECLINED_CARD, GOOD_CARD, LOCK_MS, World};

/// Where a customer's second device learns which booking to act on.
#[derive(Default)]
pub enum Slot {
    #[default]
    Waiting,
    Booked(String),
    Gone,
}

pub type SharedSlot = RefCell<Slot>;

/// A client's pause: other tasks run, and a little time may pass.
async fn think(world: &World, rng: &mut Rng) {
    for _ in 0..rng.between(0, 4) {
        yield_now().await;
    }
    if rng.percent(50) {
        world.fakes.env.advance_ms(rng.between(0, 3_000));
    }
}

fn via(rng: &mut Rng) -> Via {
    if rng.percent(25) {
        Via::GraphQl
    } else {
        Via::Workflow
    }
}

pub async fn customer(world: &World, ledger: &Ledger, slot: &SharedSlot, mut rng: Rng) {
    think(world, &mut rng).await;
    let user = match rng.between(0, 99) {
        0..=89 => world.users[rng.index(3)],
        90..=94 => world.users[3],
        _ => world.users[4],
    };
    let showtime = rng.pick(&world.showtimes);
    let mut seats = showtime.seats.clone();
    // One request in thirty asks for more seats than allowed.
    let wanted = if rng.percent(3) {
        4
    } else {
        rng.between(1, 3) as usize
    };
    let mut chosen = Vec::new();
    while chosen.len() < wanted.min(seats.len()) {
        chosen.push(seats.swap_remove(rng.index(seats.len())));
    }

    let mut booking_id = None;
    for _ in 0..rng.between(1, 3) {
        let request = api::create(world, via(&mut rng), user, &showtime.id, chosen.clone());
        match api::in_process(world, request).await {
            Ok(id) => {
                ledger.record(Some(&id), Request::Create, Reply::Created);
                booking_id = Some(id);
                break;
            }
            Err(failure) => {
                let retry = failure.retryable;
                ledger.record(None, Request::Create, Reply::Refused(failure));
                if !retry {
                    break;
                }
                think(world, &mut rng).await;
            }
        }
    }
    let Some(booking_id) = booking_id else {
        *slot.borrow_mut() = Slot::Gone;
        return;
    };
    *slot.borrow_mut() = Slot::Booked(booking_id.clone());

    let card = if rng.percent(10) {
        DECLINED_CARD
    } else {
        GOOD_CARD
    };
    match rng.between(0, 99) {
        0..=49 => pay(world, ledger, &booking_id, card, &mut rng).await,
        50..=64 => {
            pay(world, ledger, &booking_id, card, &mut rng).await;
            think(world, &mut rng).await;
            cancel(world, ledger, &booking_id, &mut rng).await;
        }
        65..=74 => {
            think(world, &mut rng).await;
            cancel(world, ledger, &booking_id, &mut rng).await;
        }
        75..=89 => {
            // Pays after the lock ran out (or just before).
            world
                .fakes
                .env
                .advance_ms(LOCK_MS - 1_000 + rng.between(0, 2_000));
            pay(world, ledger, &booking_id, card, &mut rng).await;
        }
        // Walks away: the sweeper has to clean up.
        _ => {}
    }
}

/// The same customer on another device, paying or cancelling the booking
/// while the first device may be doing the same.
pub async fn second_device(world: &World, ledger: &Ledger, slot: &SharedSlot, mut rng: Rng) {
    let booking_id = loop {
        match &*slot.borrow() {
            Slot::Waiting => {}
            Slot::Booked(id) => break id.clone(),
            Slot::Gone => return,
        }
        yield_now().await;
    };
    think(world, &mut rng).await;
    if rng.percent(60) {
        pay(world, ledger, &booking_id, GOOD_CARD, &mut rng).await;
    } else {
        cancel(world, ledger, &booking_id, &mut rng).await;
    }
}

pub async fn sweeper(world: &World, ledger: &Ledger, mut rng: Rng) {
    for _ in 0..rng.between(2, 6) {
        for _ in 0..rng.between(1, 30) {
            yield_now().await;
        }
        if rng.percent(50) {
            world.fakes.env.advance_ms(rng.between(0, LOCK_MS / 2));
        }
        let limit = rng.between(1, 4) as u32;
        let sweep = async { Ok::<_, api::Failure>(world.workflow.sweep_expired(limit).await?) };
        let reply = match api::in_process(world, sweep).await {
            Ok(_) => Reply::Swept,
            Err(failure) => Reply::Refused(failure),
        };
        ledger.record(None, Request::Sweep, reply);
    }
}

/// Pays, retrying (same booking, same card) while told to, up to a
/// patience drawn per customer.
async fn pay(world: &World, ledger: &Ledger, booking_id: &str, card: &str, rng: &mut Rng) {
    for _ in 0..rng.between(1, 4) {
        let reply = match api::in_process(world, api::pay(world, via(rng), booking_id, card)).await
        {
            Ok(paid) => Reply::Paid(paid),
            Err(failure) => Reply::Refused(failure),
        };
        let retry = matches!(&reply, Reply::Refused(failure) if failure.retryable);
        let request = Request::Pay {
            card: card.to_string(),
        };
        ledger.record(Some(booking_id), request, reply);
        if !retry {
            return;
        }
        think(world, rng).await;
    }
}

async fn cancel(world: &World, ledger: &Ledger, booking_id: &str, rng: &mut Rng) {
    for _ in 0..rng.between(1, 4) {
        let reply = match api::in_process(world, api::cancel(world, via(rng), booking_id)).await {
            Ok(status) => Reply::Cancelled(status),
            Err(failure) => Reply::Refused(failure),
        };
        let retry = matches!(&reply, Reply::Refused(failure) if failure.retryable);
        ledger.record(Some(booking_id), Request::Cancel, reply);
        if !retry {
            return;
        }
        think(world, rng).await;
    }
}
