//! The crash tests' load and audit: customers booking and paying over and
//! over while hosts are killed, then, once everything settled, every
//! booking checked against the peers' own records and a RabbitMQ consumer
//! bound before the run. Every figure must be 0 (duplicate deliveries
//! aside, which consumers remove by event id).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use booking_peers::RunningPeers;
use serde_json::{Value, json};
use test_support::amqp::Subscriber;
use test_support::unique;

/// What the clients of a crash test share: where the host answers now
/// (it moves with every restart) and when to stop.
pub struct Load {
    base_url: std::sync::RwLock<String>,
    stop: std::sync::atomic::AtomicBool,
    client: reqwest::Client,
}

impl Load {
    fn base_url(&self) -> String {
        self.base_url
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn stopped(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends a mutation with an idempotency key until it gets a final
    /// answer (transport errors, 5xx and retryable errors are retried with
    /// the same key, like a careful client), or gives up after `patience`
    /// (zero: one try, as a client that walks away when the host dies).
    async fn mutate(&self, query: &str, variables: Value, patience: Duration) -> Option<Value> {
        let deadline = Instant::now() + patience;
        loop {
            let sent = self
                .client
                .post(format!("{}/graphql", self.base_url()))
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await;
            let body: Option<Value> = match sent {
                Ok(response) if response.status().is_success() => response.json().await.ok(),
                _ => None,
            };
            match body {
                Some(body) if body["errors"][0]["extensions"]["retryable"] != Value::Bool(true) => {
                    return Some(body);
                }
                _ if Instant::now() >= deadline => return None,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// The crash tests' customers, `loadtest_user_1` ..= `loadtest_user_<n>`,
/// each running `crash_test_customer` until stopped.
pub struct Customers {
    pub load: Arc<Load>,
    pub users: Vec<String>,
    /// Printed, so a failing run can be told from others.
    pub seed: u64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Customers {
    pub fn start(base_url: &str, count: u64) -> Customers {
        let load = Arc::new(Load {
            base_url: std::sync::RwLock::new(base_url.to_owned()),
            stop: std::sync::atomic::AtomicBool::new(false),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client"),
        });
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as u64
            | 1;
        println!("crash test seed {seed}");
        let users: Vec<String> = (1..=count).map(|n| format!("loadtest_user_{n}")).collect();
        let tasks = users
            .iter()
            .enumerate()
            .map(|(n, user)| {
                tokio::spawn(crash_test_customer(
                    load.clone(),
                    user.clone(),
                    seed.wrapping_mul(n as u64 + 1) | 1,
                ))
            })
            .collect();
        Customers {
            load,
            users,
            seed,
            tasks,
        }
    }

    /// Moves the customers to another host.
    pub fn redirect(&self, base_url: &str) {
        *self
            .load
            .base_url
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = base_url.to_owned();
    }

    /// Stops them once their current request is answered or given up.
    pub async fn stop(self) -> Vec<String> {
        self.load
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a customer task");
        }
        self.users
    }
}

/// One customer: create → pay, over and over, each with its own keys.
/// Some pay with a slow card (the charge is made, the answer comes 1.5 s
/// later: a kill then leaves a charge the host never recorded), some walk
/// away when the host dies, some never pay.
async fn crash_test_customer(load: Arc<Load>, user: String, seed: u64) {
    let mut rng = seed;
    let mut next = move |below: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % below
    };
    let showtimes = [
        ("showtime_456", 'E', 10),
        ("showtime_789", 'D', 8),
        ("showtime_101", 'C', 12),
    ];
    while !load.stopped() {
        let (showtime, last_row, per_row) = showtimes[next(3) as usize];
        let row = (b'A' + next(u64::from(last_row as u8 - b'A' + 1)) as u8) as char;
        let seat = format!("{row}{}", 1 + next(per_row));
        let created = load
            .mutate(
                "mutation($u: String!, $s: String!, $seats: [String!]!, $k: String!) { \
                 createBooking(userId: $u, showtimeId: $s, seatNumbers: $seats, idempotencyKey: $k) \
                 { success booking { id } } }",
                json!({ "u": user, "s": showtime, "seats": [seat], "k": unique("create") }),
                Duration::from_secs(15),
            )
            .await;
        let Some(booking_id) = created
            .as_ref()
            .and_then(|body| body["data"]["createBooking"]["booking"]["id"].as_str())
            .map(str::to_owned)
        else {
            continue;
        };
        let card = match next(10) {
            0 => continue,
            1..=3 => "card_slow",
            _ => "card_token_xyz",
        };
        let patience = if next(2) == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(15)
        };
        load.mutate(
            "mutation($b: String!, $d: String!, $k: String!) { processPayment(bookingId: $b, \
             paymentMethod: \"credit_card\", paymentDetails: $d, idempotencyKey: $k) { success } }",
            json!({ "b": booking_id, "d": card, "k": unique("pay") }),
            patience,
        )
        .await;
    }
}

/// Every stored booking of `users`, through the API (paged).
pub async fn all_bookings(service_url: &str, users: &[String]) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut bookings = Vec::new();
    for user in users {
        let mut after = Value::Null;
        loop {
            let (_, body) = e2e_tests::graphql(
                &client,
                service_url,
                "query($u: String!, $after: String) { userBookingsPage(userId: $u, first: 10, after: $after) \
                 { items { id status seats showtimeId totalCents paymentTransactionId refundedAt settlementPending \
                 events { id type } } nextCursor } }",
                json!({ "u": user, "after": after }),
            )
            .await;
            let page = &body["data"]["userBookingsPage"];
            bookings.extend(page["items"].as_array().expect("a page").iter().cloned());
            if page["nextCursor"].is_null() {
                break;
            }
            after = page["nextCursor"].clone();
        }
    }
    bookings
}

/// What an audit found.
#[derive(Debug)]
pub struct Audit {
    pub bookings: usize,
    pub confirmed: usize,
    pub charges: usize,
    pub refunded: usize,
    pub events: usize,
    /// Messages received again with an event id already received: at
    /// least once delivery (several relays, a relay killed before it
    /// marked what it sent); the consumer drops them by id.
    pub duplicates: usize,
    pub money_wrong: usize,
    pub orphan_charges: usize,
    pub events_not_received: usize,
    pub status_event_missing: usize,
    pub seats_wrong: usize,
    pub live_locks: usize,
    pub unsettled: usize,
}

impl std::fmt::Display for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bookings ({} confirmed), {} charges ({} refunded), {} events ({} duplicate deliveries removed by id); \
             money wrong {}, charges without a booking {}, events not received {}, status without its event {}, \
             seat mismatches {}, live locks {}, unsettled {}",
            self.bookings,
            self.confirmed,
            self.charges,
            self.refunded,
            self.events,
            self.duplicates,
            self.money_wrong,
            self.orphan_charges,
            self.events_not_received,
            self.status_event_missing,
            self.seats_wrong,
            self.live_locks,
            self.unsettled
        )
    }
}

impl Audit {
    pub fn assert_nothing_lost(&self) {
        assert!(
            self.bookings >= 20,
            "the load made too few bookings to mean anything: {self}"
        );
        assert_eq!(
            (
                self.money_wrong,
                self.orphan_charges,
                self.events_not_received,
                self.status_event_missing,
                self.seats_wrong,
                self.live_locks,
                self.unsettled
            ),
            (0, 0, 0, 0, 0, 0, 0),
            "{self}"
        );
    }
}

/// Waits until every booking of `users` (read through `service_url`) is
/// settled, receives their events, and audits them.
pub async fn settle_and_audit(
    service_url: &str,
    users: &[String],
    peers: &RunningPeers,
    subscriber: &mut Subscriber,
) -> Audit {
    // Settle: every lock runs out, the sweep expires and settles.
    let deadline = Instant::now() + Duration::from_secs(60);
    let bookings = loop {
        let bookings = all_bookings(service_url, users).await;
        let done = bookings
            .iter()
            .all(|booking| booking["status"] != "PENDING" && booking["settlementPending"] == false);
        if done || Instant::now() > deadline {
            break bookings;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // The events the store committed, which the consumer must receive.
    let committed: HashSet<String> = bookings
        .iter()
        .flat_map(|booking| booking["events"].as_array().cloned().unwrap_or_default())
        .map(|event| event["id"].as_str().expect("an event id").to_owned())
        .collect();
    let mut received = HashSet::new();
    let mut duplicates = 0;
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing = !committed.is_subset(&received) && Instant::now() < drain_deadline;
        match subscriber.next(Duration::from_millis(500)).await {
            Some(message) if !received.insert(message.id()) => duplicates += 1,
            Some(_) => {}
            // Quiet for half a second with nothing missing: late
            // duplicates are in too.
            None if !missing => break,
            None => {}
        }
    }

    let by_id: HashMap<&str, &Value> = bookings
        .iter()
        .map(|booking| (booking["id"].as_str().expect("an id"), booking))
        .collect();
    let charges = peers.payments.charges();
    let mut net: HashMap<&str, u64> = HashMap::new();
    let mut orphan_charges = 0;
    for charge in &charges {
        if !by_id.contains_key(charge.idempotency_key.as_str()) {
            orphan_charges += 1;
        }
        if !charge.refunded {
            *net.entry(charge.idempotency_key.as_str()).or_default() += charge.amount_cents;
        }
    }
    let mut money_wrong = 0;
    let mut status_event_missing = 0;
    let mut unsettled = 0;
    let mut confirmed_seats: HashMap<String, Vec<String>> = HashMap::new();
    for booking in &bookings {
        let id = booking["id"].as_str().expect("an id");
        let status = booking["status"].as_str().expect("a status");
        let kept = net.get(id).copied().unwrap_or(0);
        let owed = if status == "CONFIRMED" {
            booking["totalCents"].as_u64().expect("a total")
        } else {
            0
        };
        if kept != owed {
            money_wrong += 1;
            eprintln!("money: {id} is {status}, keeps {kept} cents, should keep {owed}");
        }
        let announced = format!("booking.{}", status.to_lowercase());
        let types: Vec<&str> = booking["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .filter_map(|event| event["type"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        if !types.contains(&announced.as_str()) {
            status_event_missing += 1;
            eprintln!("events: {id} is {status} but has events {types:?}");
        }
        if booking["settlementPending"] != false || status == "PENDING" {
            unsettled += 1;
            eprintln!("unsettled: {booking}");
        }
        if status == "CONFIRMED" {
            let showtime = booking["showtimeId"]
                .as_str()
                .expect("a showtime")
                .to_owned();
            let seats = booking["seats"].as_array().expect("seats");
            confirmed_seats.entry(showtime).or_default().extend(
                seats
                    .iter()
                    .map(|seat| seat.as_str().expect("a seat").to_owned()),
            );
        }
    }
    let events_not_received = committed.difference(&received).count();
    let mut seats_wrong = 0;
    let mut live_locks = 0;
    for showtime in ["showtime_456", "showtime_789", "showtime_101"] {
        let mut booked = peers.cinema.booked_seats(showtime);
        let mut expected = confirmed_seats.remove(showtime).unwrap_or_default();
        booked.sort();
        expected.sort();
        if booked != expected {
            seats_wrong += 1;
            eprintln!(
                "seats of {showtime}: booked {booked:?}, confirmed bookings hold {expected:?}"
            );
        }
        live_locks += peers.cinema.live_locks(showtime).len();
    }
    let confirmed = bookings
        .iter()
        .filter(|b| b["status"] == "CONFIRMED")
        .count();
    let refunded = charges.iter().filter(|charge| charge.refunded).count();
    Audit {
        bookings: bookings.len(),
        confirmed,
        charges: charges.len(),
        refunded,
        events: committed.len(),
        duplicates,
        money_wrong,
        orphan_charges,
        events_not_received,
        status_event_missing,
        seats_wrong,
        live_locks,
        unsettled,
    }
}
