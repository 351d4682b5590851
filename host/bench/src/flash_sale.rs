//! Scenario 3: 2,000 clients race for the 500 seats of one showtime, each
//! wanting 1–4 seats, then an audit of the cinema's seat map against the
//! bookings store.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::Api;
use crate::load::Stats;
use crate::workflow::{FLASH_SEATS, FLASH_SHOWTIME, flash_seat};

/// Attempts a client makes before giving up on a seat it keeps losing.
const MAX_ATTEMPTS: u32 = 40;

pub struct FlashSale {
    /// Every createBooking and processPayment call.
    pub requests: Stats,
    /// Start → the last successful payment.
    pub sell_out: Duration,
    /// BOOKED in the cinema's seat map.
    pub booked_in_cinema: usize,
    /// Seats of CONFIRMED bookings in the store.
    pub confirmed_seats: usize,
    /// Seats held by more than one CONFIRMED booking.
    pub double_booked: usize,
    pub confirmed_bookings: usize,
}

/// A small deterministic generator: runs are repeatable per client.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick(&mut self, from: &mut Vec<String>, count: usize) -> Vec<String> {
        (0..count.min(from.len()))
            .map(|_| {
                let index = self.below(from.len());
                from.swap_remove(index)
            })
            .collect()
    }
}

struct Shared {
    stats: Stats,
    booking_ids: Vec<String>,
    last_sale: Option<Instant>,
}

pub async fn run(api: &Api, clients: usize) -> anyhow::Result<FlashSale> {
    let shared = Arc::new(Mutex::new(Shared {
        stats: Stats::new(),
        booking_ids: Vec::new(),
        last_sale: None,
    }));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (api, shared) = (api.clone(), shared.clone());
            tokio::spawn(async move { buyer(&api, client, &shared).await })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();
    let (mut requests, booking_ids, last_sale) = {
        let mut shared = shared.lock().expect("no panics while held");
        let stats = std::mem::replace(&mut shared.stats, Stats::new());
        (
            stats,
            std::mem::take(&mut shared.booking_ids),
            shared.last_sale,
        )
    };
    requests.elapsed = elapsed;

    let booked_in_cinema = api
        .seat_statuses(FLASH_SHOWTIME)
        .await?
        .iter()
        .filter(|(_, status)| status == "BOOKED")
        .count();
    let (mut confirmed_seats, mut confirmed_bookings) = (0, 0);
    let mut seen = HashSet::new();
    let mut double_booked = 0;
    for id in &booking_ids {
        let booking = api.get_booking(id).await?;
        if booking.status == "CONFIRMED" {
            confirmed_bookings += 1;
            confirmed_seats += booking.seats.len();
            double_booked += booking
                .seats
                .into_iter()
                .filter(|seat| !seen.insert(seat.clone()))
                .count();
        }
    }
    Ok(FlashSale {
        requests,
        sell_out: last_sale.map(|at| at - started).unwrap_or(elapsed),
        booked_in_cinema,
        confirmed_seats,
        double_booked,
        confirmed_bookings,
    })
}

/// One buyer: tries seats chosen blind, and after losing a race looks at
/// the seat map and picks among the seats still available, until it has
/// bought or the showtime is sold out.
async fn buyer(api: &Api, client: usize, shared: &Mutex<Shared>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (client as u64 + 1).wrapping_mul(0x2545_F491));
    let wanted = 1 + rng.below(4);
    let mut candidates: Vec<String> = (0..FLASH_SEATS).map(flash_seat).collect();
    let user = format!("loadtest_user_{}", client % 10_000 + 1);
    for _ in 0..MAX_ATTEMPTS {
        let seats = rng.pick(&mut candidates, wanted);
        if seats.is_empty() {
            return;
        }
        let begun = Instant::now();
        let created = api.create_booking(&user, FLASH_SHOWTIME, &seats).await;
        let booking = match created {
            Ok(id) => {
                record(shared, begun, Ok(()));
                id
            }
            Err(error) => {
                let lost_race = error.to_string().starts_with("SEATS_UNAVAILABLE");
                record(shared, begun, if lost_race { Ok(()) } else { Err(error) });
                let Ok(map) = api.seat_statuses(FLASH_SHOWTIME).await else {
                    continue;
                };
                candidates = map
                    .into_iter()
                    .filter(|(_, status)| status == "AVAILABLE")
                    .map(|(number, _)| number)
                    .collect();
                continue;
            }
        };
        let begun = Instant::now();
        let paid = api.process_payment(&booking).await;
        let mut shared = shared.lock().expect("no panics while held");
        shared.booking_ids.push(booking);
        if paid.is_ok() {
            shared.last_sale = Some(Instant::now());
        }
        shared.stats.record(begun, paid);
        return;
    }
}

fn record(shared: &Mutex<Shared>, begun: Instant, outcome: anyhow::Result<()>) {
    shared
        .lock()
        .expect("no panics while held")
        .stats
        .record(begun, outcome);
}
