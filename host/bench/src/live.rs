//! Scenario 6: `seatMap` subscribers over WebSocket (graphql-transport-ws).
//! N clients subscribe to the flash showtime's seat map; the host's
//! resident memory before and after they did gives its memory per
//! subscriber. Then M customers buy the showtime's seats two at a time over
//! HTTP (createBooking, then processPayment), and every subscriber notes
//! when each seat's LOCKED and BOOKED reached it: its delivery latency is
//! that instant less the instant the mutation that made the change
//! answered its client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

use crate::api::Api;
use crate::load::Stats;
use crate::process::ServerProcess;
use crate::workflow::{FLASH_SEATS, FLASH_SHOWTIME, flash_seat};

/// graphql-ws's subprotocol (`/work/notes/live-protocol.md` §1).
const SUBPROTOCOL: &str = "graphql-transport-ws";
/// The id of each client's one subscription.
const SUBSCRIPTION_ID: &str = "1";
/// Connection → snapshot, per subscriber.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// The last mutation's answer → every change at every subscriber.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Seat statuses as the subscribers keep them, one byte per seat.
const UNKNOWN: u8 = 0;
const AVAILABLE: u8 = 1;
const LOCKED: u8 = 2;
const BOOKED: u8 = 3;

/// The changes a sale can make: each seat's LOCKED (even index) and
/// BOOKED (odd index).
const CHANGES: usize = FLASH_SEATS * 2;

pub struct Config {
    pub subscribers: usize,
    /// Subscribers connecting at once.
    pub connect_concurrency: usize,
    /// Customers buying at once.
    pub customers: usize,
    /// Bookings of 2 seats each customer makes, one after the other.
    pub rounds: usize,
}

impl Config {
    /// Open files each side (the bench, the host) needs: the
    /// subscribers' sockets and room for everything else.
    pub fn open_files(&self) -> u64 {
        (self.subscribers + self.connect_concurrency + 1024) as u64
    }
}

/// What the scenario measured.
pub struct Live {
    /// Subscribers that got their snapshot.
    pub subscribed: usize,
    /// Those that did not, and the first one's reason.
    pub setup_failures: usize,
    pub first_setup_error: Option<String>,
    /// Connection → snapshot, µs.
    pub setup_us: Histogram<u64>,
    /// The first connection → the last snapshot.
    pub all_subscribed_after: Duration,
    /// The host's VmRSS before the first connection and after the last
    /// snapshot, MiB.
    pub rss_before_mib: f64,
    pub rss_after_mib: f64,
    /// Every createBooking and processPayment call.
    pub requests: Stats,
    pub bookings: usize,
    pub seats_sold: usize,
    /// The sale's first request → its last answer.
    pub sale: Duration,
    /// The last mutation's answer → every change at every subscriber still
    /// up (or the timeout).
    pub delivered_after: Duration,
    pub delivery_timed_out: bool,
    /// Delivery latency over all (subscriber, change) pairs, µs; pairs
    /// whose message came before the mutation's answer count as 0.
    pub latency_us: Histogram<u64>,
    /// Of those, how many came before the answer.
    pub before_answer: u64,
    /// The same pairs measured from when the mutation was sent: the
    /// change committed in between, so this bounds the delivery from
    /// above as the first bounds it from below.
    pub from_request_us: Histogram<u64>,
    /// A seat's LOCKED that a subscriber only saw as BOOKED: both changes
    /// fell into one batch, whose message shows each seat's latest status.
    pub coalesced: u64,
    /// Changes the sale made, and the pairs a subscriber still up never got
    /// (coalesced ones aside), over how many subscribers.
    pub changes: usize,
    pub missed_changes: u64,
    pub missed_subscribers: usize,
    /// Subscribers the server closed (or whose stream ended) before the
    /// end, and the first one's reason.
    pub dropped: usize,
    pub first_drop: Option<String>,
    /// Seat-map messages after the snapshots, over all subscribers.
    pub messages: u64,
    /// Seat entries in them that no change of the sale explains.
    pub unexpected: u64,
    /// Subscribers still up whose seat map at the end differs from
    /// `showtimeSeats`.
    pub diverged: usize,
    /// CPU time of the host and of the bench (which parses every message
    /// on the same cores) from the sale's start to the last delivery.
    pub host_cpu: Duration,
    pub bench_cpu: Duration,
}

impl Live {
    pub fn per_subscriber_kib(&self) -> f64 {
        (self.rss_after_mib - self.rss_before_mib) * 1024.0 / self.subscribed.max(1) as f64
    }
}

/// Raises this process's soft limit on open files to `needed` (the host,
/// started after, inherits it); fails when the hard limit is lower.
pub fn raise_open_files_limit(needed: u64) -> anyhow::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    if limit.rlim_cur >= needed {
        return Ok(limit.rlim_cur);
    }
    if limit.rlim_max < needed {
        bail!(
            "{needed} open files needed, the hard limit is {} (raise it: ulimit -Hn, or fewer --subscribers)",
            limit.rlim_max
        );
    }
    limit.rlim_cur = needed;
    // SAFETY: setrlimit reads the struct it is given, nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
    }
    Ok(needed)
}

/// This process's CPU time so far, user and system.
fn own_cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the struct it is given, nothing else.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

pub async fn run(api: &Api, process: &ServerProcess, config: &Config) -> anyhow::Result<Live> {
    if config.customers * config.rounds * 2 > FLASH_SEATS {
        bail!(
            "{} customers × {} rounds × 2 seats is more than the {FLASH_SEATS} seats of {FLASH_SHOWTIME}",
            config.customers,
            config.rounds
        );
    }
    let address = api
        .url()
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .context("the GraphQL URL is not http://<address>/...")?
        .to_owned();
    let url = format!("ws://{address}/graphql");

    // Warm-up: as many subscribers as connect at once, then closed, so the
    // instances and buffers a subscription's start uses at that
    // concurrency are resident before the first measurement.
    let warm: Vec<_> = (0..config.connect_concurrency.min(config.subscribers))
        .map(|_| {
            let (address, url) = (address.clone(), url.clone());
            tokio::spawn(async move {
                tokio::time::timeout(SETUP_TIMEOUT, subscribe(&address, &url)).await
            })
        })
        .collect();
    for task in warm {
        let mut subscription = task
            .await?
            .context("warm-up: no snapshot in time")?
            .with_context(|| format!("warm-up: subscribing over {url}"))?;
        if subscription.seats.iter().any(|&status| status != AVAILABLE) {
            bail!("{FLASH_SHOWTIME} is not fresh: its snapshot has seats that are not AVAILABLE");
        }
        let _ = subscription.ws.close(None).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let rss_before_mib = process.rss_mib()?;
    let base = Instant::now();
    let shared = Arc::new(Shared {
        base,
        booked_seen: AtomicUsize::new(0),
        up: AtomicUsize::new(0),
    });
    let (stop, stopped) = watch::channel(false);
    let (ready, mut readiness) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(config.connect_concurrency.max(1)));
    let tasks: Vec<_> = (0..config.subscribers)
        .map(|_| {
            let (address, url) = (address.clone(), url.clone());
            let (shared, permits) = (shared.clone(), permits.clone());
            let (ready, stopped) = (ready.clone(), stopped.clone());
            tokio::spawn(async move {
                let permit = permits.acquire_owned().await;
                let begun = Instant::now();
                let subscribed = tokio::time::timeout(SETUP_TIMEOUT, subscribe(&address, &url))
                    .await
                    .unwrap_or_else(|_| {
                        Err(anyhow::anyhow!("no snapshot within {SETUP_TIMEOUT:?}"))
                    });
                drop(permit);
                match subscribed {
                    Ok(subscription) => {
                        shared.up.fetch_add(1, Ordering::SeqCst);
                        let _ = ready.send(Ok(begun.elapsed()));
                        Some(watch_seat_map(subscription, &shared, stopped).await)
                    }
                    Err(error) => {
                        let _ = ready.send(Err(format!("{error:#}")));
                        None
                    }
                }
            })
        })
        .collect();
    drop(ready);
    let mut setup_us = histogram();
    let (mut subscribed, mut setup_failures, mut first_setup_error) = (0, 0, None);
    while let Some(outcome) = readiness.recv().await {
        match outcome {
            Ok(took) => {
                subscribed += 1;
                setup_us.saturating_record(took.as_micros() as u64);
            }
            Err(error) => {
                setup_failures += 1;
                first_setup_error.get_or_insert(error);
            }
        }
        if subscribed + setup_failures == config.subscribers {
            break;
        }
    }
    let all_subscribed_after = base.elapsed();
    let rss_after_mib = process.rss_mib()?;
    if subscribed == 0 {
        let _ = stop.send(true);
        bail!(
            "no subscriber got its snapshot: {}",
            first_setup_error.unwrap_or_default()
        );
    }

    let (host_cpu_before, bench_cpu_before) = (process.cpu_time()?, own_cpu_time());
    let sale = sale(api, config.customers, config.rounds).await;
    let booked = sale
        .changed_at
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|at| at.is_some())
        .count();
    let deadline = sale.last_answer + DELIVERY_TIMEOUT;
    let delivery_timed_out = loop {
        let up = shared.up.load(Ordering::SeqCst);
        if shared.booked_seen.load(Ordering::SeqCst) >= up * booked {
            break false;
        }
        if Instant::now() > deadline {
            break true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let delivered_after = sale.last_answer.elapsed();
    let host_cpu = process.cpu_time()?.saturating_sub(host_cpu_before);
    let bench_cpu = own_cpu_time().saturating_sub(bench_cpu_before);
    let final_map = api.seat_statuses(FLASH_SHOWTIME).await?;
    let mut expected = vec![UNKNOWN; FLASH_SEATS];
    for (number, status) in &final_map {
        if let (Some(index), Some(status)) = (seat_index(number), status_code(status)) {
            expected[index] = status;
        }
    }

    let _ = stop.send(true);
    let mut reports = Vec::new();
    for task in tasks {
        reports.extend(task.await?);
    }

    let mut live = Live {
        subscribed,
        setup_failures,
        first_setup_error,
        setup_us,
        all_subscribed_after,
        rss_before_mib,
        rss_after_mib,
        requests: sale.requests,
        bookings: sale.bookings,
        seats_sold: booked,
        sale: sale.duration,
        delivered_after,
        delivery_timed_out,
        latency_us: histogram(),
        before_answer: 0,
        from_request_us: histogram(),
        coalesced: 0,
        changes: sale.changed_at.iter().flatten().count(),
        missed_changes: 0,
        missed_subscribers: 0,
        dropped: 0,
        first_drop: None,
        messages: 0,
        unexpected: 0,
        diverged: 0,
        host_cpu,
        bench_cpu,
    };
    for report in &reports {
        live.messages += report.messages;
        live.unexpected += report.unexpected;
        let mut missed = false;
        for (change, changed_at) in sale.changed_at.iter().enumerate() {
            let Some((sent, changed_at)) = changed_at else {
                continue;
            };
            let stamp = report.received[change];
            if stamp != 0 {
                let at = base + Duration::from_micros(u64::from(stamp - 1));
                let latency = at.checked_duration_since(*changed_at).unwrap_or_else(|| {
                    live.before_answer += 1;
                    Duration::ZERO
                });
                live.latency_us
                    .saturating_record(latency.as_micros() as u64);
                live.from_request_us
                    .saturating_record(at.saturating_duration_since(*sent).as_micros() as u64);
            } else if change % 2 == 0 && report.received[change + 1] != 0 {
                live.coalesced += 1;
            } else if report.ended.is_none() {
                live.missed_changes += 1;
                missed = true;
            }
        }
        match &report.ended {
            Some(reason) => {
                live.dropped += 1;
                live.first_drop.get_or_insert_with(|| reason.clone());
            }
            None => {
                live.missed_subscribers += usize::from(missed);
                live.diverged += usize::from(report.seats != expected);
            }
        }
    }
    Ok(live)
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds and precision")
}

/// Seat `number` of the flash showtime (`A1`…`T25`) as `flash_seat`'s index.
fn seat_index(number: &str) -> Option<usize> {
    let row = number.bytes().next()?;
    let seat: usize = number.get(1..)?.parse().ok()?;
    let index = usize::from(row.checked_sub(b'A')?) * 25 + seat.checked_sub(1)?;
    (seat <= 25 && index < FLASH_SEATS && flash_seat(index) == number).then_some(index)
}

fn status_code(status: &str) -> Option<u8> {
    match status {
        "AVAILABLE" => Some(AVAILABLE),
        "LOCKED" => Some(LOCKED),
        "BOOKED" => Some(BOOKED),
        _ => None,
    }
}

type Socket = WebSocketStream<TcpStream>;

/// A subscriber that got its snapshot.
struct Subscription {
    ws: Socket,
    /// Its seat map: a status per `flash_seat` index.
    seats: Vec<u8>,
}

/// Connects, initializes, subscribes to the flash showtime's seat map and
/// reads up to its snapshot.
async fn subscribe(address: &str, url: &str) -> anyhow::Result<Subscription> {
    let stream = TcpStream::connect(address).await?;
    let _ = stream.set_nodelay(true);
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    // Small buffers: thousands of clients in this one process, each
    // reading short messages (a snapshot is ~20 kB, read in pieces).
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    // tungstenite fails the handshake unless the server selects the
    // subprotocol offered.
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    send(&mut ws, &json!({ "type": "connection_init" })).await?;
    loop {
        let message = next_json(&mut ws).await?;
        match message["type"].as_str() {
            Some("connection_ack") => break,
            Some("ping") => pong(&mut ws, &message).await?,
            Some("pong") => {}
            _ => bail!("expected connection_ack first, got {}", brief(&message)),
        }
    }
    let query = format!(
        "subscription {{ seatMap(showtimeId: \"{FLASH_SHOWTIME}\") {{ snapshot seats {{ number status }} }} }}"
    );
    send(
        &mut ws,
        &json!({ "id": SUBSCRIPTION_ID, "type": "subscribe", "payload": { "query": query } }),
    )
    .await?;
    loop {
        let message = next_json(&mut ws).await?;
        match message["type"].as_str() {
            Some("ping") => pong(&mut ws, &message).await?,
            Some("pong") => {}
            Some("next") if message["id"] == SUBSCRIPTION_ID => {
                let map = &message["payload"]["data"]["seatMap"];
                if message["payload"].get("errors").is_some() || map["snapshot"] != true {
                    bail!("expected the snapshot, got {}", brief(&message));
                }
                let mut seats = vec![UNKNOWN; FLASH_SEATS];
                for seat in map["seats"].as_array().into_iter().flatten() {
                    let index = seat["number"].as_str().and_then(seat_index);
                    let status = seat["status"].as_str().and_then(status_code);
                    if let (Some(index), Some(status)) = (index, status) {
                        seats[index] = status;
                    }
                }
                if seats.contains(&UNKNOWN) {
                    bail!("the snapshot does not list every seat of {FLASH_SHOWTIME}");
                }
                return Ok(Subscription { ws, seats });
            }
            _ => bail!("expected the snapshot, got {}", brief(&message)),
        }
    }
}

async fn send(ws: &mut Socket, message: &Value) -> anyhow::Result<()> {
    ws.send(Message::text(message.to_string())).await?;
    Ok(())
}

/// Answers a graphql-ws `ping`, echoing its payload if it has one.
async fn pong(ws: &mut Socket, ping: &Value) -> anyhow::Result<()> {
    let pong = match ping.get("payload") {
        Some(payload) if payload.is_object() => json!({ "type": "pong", "payload": payload }),
        _ => json!({ "type": "pong" }),
    };
    send(ws, &pong).await
}

/// The next graphql-ws message (tungstenite answers WebSocket pings).
async fn next_json(ws: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match ws.next().await {
            None => bail!("the connection ended"),
            Some(Err(error)) => return Err(error.into()),
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str()).context("a message that is not JSON");
            }
            Some(Ok(Message::Close(frame))) => bail!("{}", closed(frame)),
            Some(Ok(_)) => {}
        }
    }
}

fn closed(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(frame) => format!(
            "closed by the server: {} {:?}",
            u16::from(frame.code),
            frame.reason.as_str()
        ),
        None => "closed by the server (no code)".to_owned(),
    }
}

/// A message, cut short for an error.
fn brief(message: &Value) -> String {
    let text = message.to_string();
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// Shared by the subscribers and the scenario.
struct Shared {
    /// Receive times are µs after it.
    base: Instant,
    /// Seats the subscribers still up have seen turn BOOKED.
    booked_seen: AtomicUsize,
    /// Subscribers up.
    up: AtomicUsize,
}

/// One subscriber's record of the sale.
struct Report {
    /// Per change (`CHANGES`): when the first message showing it came, µs
    /// after `Shared::base` plus 1; 0 for never.
    received: Vec<u32>,
    /// Seat-map messages after the snapshot.
    messages: u64,
    /// Seat entries no change of the sale explains.
    unexpected: u64,
    /// Why it ended before the scenario stopped it.
    ended: Option<String>,
    /// Its seat map at the end.
    seats: Vec<u8>,
}

/// Reads seat-map messages until `stop`, answering `ping`s and noting
/// when each seat change first arrived.
async fn watch_seat_map(
    mut subscription: Subscription,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) -> Report {
    let mut report = Report {
        received: vec![0; CHANGES],
        messages: 0,
        unexpected: 0,
        ended: None,
        seats: Vec::new(),
    };
    let mut booked = 0;
    let ws = &mut subscription.ws;
    let seats = &mut subscription.seats;
    loop {
        let message = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            message = ws.next() => message,
        };
        let stamp = u32::try_from(shared.base.elapsed().as_micros() + 1).unwrap_or(u32::MAX);
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                report.ended = Some(closed(frame));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                report.ended = Some(format!("{error}"));
                break;
            }
            None => {
                report.ended = Some("the connection ended without a close frame".to_owned());
                break;
            }
        };
        let message: Value = match serde_json::from_str(text.as_str()) {
            Ok(message) => message,
            Err(error) => {
                report.ended = Some(format!("a message that is not JSON: {error}"));
                break;
            }
        };
        match message["type"].as_str() {
            Some("ping") => {
                if let Err(error) = pong(ws, &message).await {
                    report.ended = Some(format!("answering ping: {error:#}"));
                    break;
                }
            }
            Some("pong") => {}
            Some("next")
                if message["id"] == SUBSCRIPTION_ID
                    && message["payload"].get("errors").is_none() =>
            {
                report.messages += 1;
                let map = &message["payload"]["data"]["seatMap"];
                let snapshot = map["snapshot"] == true;
                for seat in map["seats"].as_array().into_iter().flatten() {
                    let index = seat["number"].as_str().and_then(seat_index);
                    let status = seat["status"].as_str().and_then(status_code);
                    let (Some(index), Some(status)) = (index, status) else {
                        report.unexpected += 1;
                        continue;
                    };
                    let before = std::mem::replace(&mut seats[index], status);
                    let change = match status {
                        LOCKED => index * 2,
                        BOOKED => index * 2 + 1,
                        _ => {
                            // AVAILABLE: in a fresh snapshot, as it was;
                            // in a change, nothing this sale does.
                            report.unexpected += u64::from(!snapshot);
                            continue;
                        }
                    };
                    if report.received[change] == 0 {
                        report.received[change] = stamp;
                    }
                    if status == BOOKED && before != BOOKED {
                        booked += 1;
                        shared.booked_seen.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            _ => {
                report.ended = Some(format!("unexpected message: {}", brief(&message)));
                break;
            }
        }
    }
    if report.ended.is_some() {
        shared.up.fetch_sub(1, Ordering::SeqCst);
        shared.booked_seen.fetch_sub(booked, Ordering::SeqCst);
    } else {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }
    report.seats = std::mem::take(seats);
    report
}

/// The sale's record.
struct Sale {
    /// Per change (`CHANGES`): when the mutation that made it was sent and
    /// when it answered.
    changed_at: Vec<Option<(Instant, Instant)>>,
    requests: Stats,
    bookings: usize,
    duration: Duration,
    last_answer: Instant,
}

/// What the customers write down as they go.
struct Ledger {
    changed_at: Vec<Option<(Instant, Instant)>>,
    requests: Stats,
    bookings: usize,
    last_answer: Option<Instant>,
}

impl Ledger {
    /// A mutation sent at `begun` answered `outcome` at `answered`; when it
    /// succeeded, it made `changes`.
    fn note(
        ledger: &Mutex<Ledger>,
        begun: Instant,
        answered: Instant,
        outcome: anyhow::Result<()>,
        changes: &[usize],
    ) {
        let mut ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
        if outcome.is_ok() {
            for &change in changes {
                ledger.changed_at[change] = Some((begun, answered));
            }
        }
        ledger.requests.record(begun, outcome);
        ledger.last_answer = Some(answered);
    }
}

/// `customers` at once, each booking `rounds` pairs of seats of its own
/// (pair `round * customers + customer`, so no two contend and every
/// change has one mutation that made it) with `Api::create_booking`, the
/// flash sale's call, then paying with `Api::process_payment` before the
/// next; each booking as its own load-test user, so the per-user limits
/// stay out of it.
async fn sale(api: &Api, customers: usize, rounds: usize) -> Sale {
    let ledger = Arc::new(Mutex::new(Ledger {
        changed_at: vec![None; CHANGES],
        requests: Stats::new(),
        bookings: 0,
        last_answer: None,
    }));
    let started = Instant::now();
    let tasks: Vec<_> = (0..customers)
        .map(|customer| {
            let (api, ledger) = (api.clone(), ledger.clone());
            tokio::spawn(async move {
                for round in 0..rounds {
                    let pair = round * customers + customer;
                    let seats = [2 * pair, 2 * pair + 1];
                    let user = format!("loadtest_user_{}", pair + 1);
                    let begun = Instant::now();
                    let created = api
                        .create_booking(&user, FLASH_SHOWTIME, &seats.map(flash_seat))
                        .await;
                    let answered = Instant::now();
                    let (booking, outcome) = match created {
                        Ok(booking) => (Some(booking), Ok(())),
                        Err(error) => (None, Err(error)),
                    };
                    let locked = seats.map(|seat| seat * 2);
                    Ledger::note(&ledger, begun, answered, outcome, &locked);
                    let Some(booking) = booking else {
                        continue;
                    };
                    ledger
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .bookings += 1;
                    let begun = Instant::now();
                    let paid = api.process_payment(&booking).await;
                    let answered = Instant::now();
                    let booked = seats.map(|seat| seat * 2 + 1);
                    Ledger::note(&ledger, begun, answered, paid, &booked);
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let mut ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
    let last_answer = ledger.last_answer.unwrap_or(started);
    let mut requests = std::mem::replace(&mut ledger.requests, Stats::new());
    requests.elapsed = last_answer - started;
    Sale {
        changed_at: std::mem::take(&mut ledger.changed_at),
        requests,
        bookings: ledger.bookings,
        duration: last_answer - started,
        last_answer,
    }
}
