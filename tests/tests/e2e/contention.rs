//! Many clients at once: racing for overlapping seats (no seat is held
//! twice), and in flight while the host is told to stop (every accepted
//! request completes), and slow or too many clients against a small pool
//! (they hold connections, not slots; excess load is shed).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::process::HostProcess;
use e2e_tests::{
    Options, TestService, args, error_code, graphql, login, reference_peers, slow_payments,
};
use serde_json::{Value, json};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_bookings_for_overlapping_seats_never_share_a_seat() {
    let service = Arc::new(TestService::start(Options::default()).await);
    // Each client wants two adjacent seats of row A (A1..A10), so every
    // request overlaps with its neighbours'.
    let requests = (0..50).map(|client| {
        let service = service.clone();
        let first = client % 9 + 1;
        let seats = vec![format!("A{first}"), format!("A{}", first + 1)];
        tokio::spawn(async move {
            let (status, body) = service
                .graphql(
                    "mutation($u: String!, $n: [String!]!) { createBooking(userId: $u, showtimeId: \"showtime_456\", seatNumbers: $n) { success booking { id seats } } }",
                    // One user each: the per-user hold limit is not what
                    // this test races for.
                    json!({"u": format!("loadtest_user_{}", client + 1), "n": seats}),
                )
                .await;
            (status, body)
        })
    });
    let mut won_seats = Vec::new();
    let mut winners = 0;
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert!(status < 500, "{body}");
        if body["data"]["createBooking"]["success"] == true {
            winners += 1;
            for seat in body["data"]["createBooking"]["booking"]["seats"]
                .as_array()
                .unwrap()
            {
                won_seats.push(seat.as_str().unwrap().to_owned());
            }
        } else {
            assert_eq!(error_code(&body), Some("SEATS_UNAVAILABLE"), "{body}");
        }
    }
    let distinct: HashSet<_> = won_seats.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        won_seats.len(),
        "a seat was sold twice: {won_seats:?}"
    );
    assert!(
        (1..=5).contains(&winners),
        "{winners} winners for 10 seats in pairs"
    );
    // The cinema agrees: exactly the winners' seats are locked.
    let mut locked = service.seats_with_status("showtime_456", "LOCKED").await;
    let mut won: Vec<_> = distinct.into_iter().collect();
    locked.sort();
    won.sort();
    assert_eq!(locked, won);
}

/// One client's view of a request: when it was sent, and its answer.
struct Sent {
    at: Instant,
    outcome: Result<(u16, Value), reqwest::Error>,
}

/// A client that books a seat and pays for it slowly, again and again,
/// until the host stops answering. Returns every request it sent.
async fn book_and_pay_until_refused(
    client: reqwest::Client,
    base_url: String,
    token: String,
    user: String,
    seats: Vec<String>,
) -> Vec<(&'static str, Option<String>, Sent)> {
    let mut sent = Vec::new();
    for seat in seats {
        let request = |query: &str, variables: Value| {
            let request = client
                .post(format!("{base_url}/graphql"))
                .bearer_auth(&token)
                .json(&json!({"query": query, "variables": variables}));
            async move {
                let at = Instant::now();
                let outcome: Result<(u16, Value), reqwest::Error> = async {
                    let response = request.send().await?;
                    let status = response.status().as_u16();
                    Ok((status, response.json::<Value>().await?))
                }
                .await;
                Sent { at, outcome }
            }
        };
        let created = request(
            "mutation($u: String!, $n: [String!]!) { createBooking(userId: $u, showtimeId: \"showtime_flash\", seatNumbers: $n) { success booking { id status } } }",
            json!({"u": user, "n": [seat]}),
        )
        .await;
        let booking = created.outcome.as_ref().ok().and_then(|(_, body)| {
            body["data"]["createBooking"]["booking"]["id"]
                .as_str()
                .map(str::to_owned)
        });
        sent.push(("createBooking", booking.clone(), created));
        let Some(booking) = booking else { break };
        let paid = request(
            "mutation($b: String!) { processPayment(bookingId: $b, paymentMethod: \"credit_card\", paymentDetails: \"card_slow\") { success code booking { id status paymentTransactionId } } }",
            json!({"b": booking}),
        )
        .await;
        let refused = paid.outcome.is_err();
        sent.push(("processPayment", Some(booking), paid));
        if refused {
            break;
        }
    }
    sent
}

/// SIGTERM while payments are in flight: the host stops accepting, every
/// request it had accepted completes successfully, it exits 0 well within
/// the grace period, and a restart on the same data finds each booking
/// exactly as its client last saw it — nothing half-done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_completes_every_accepted_request_then_exits_zero() {
    const CLIENTS: usize = 12;
    const GRACE_SECONDS: u64 = 15;
    let peers = reference_peers(slow_payments(Duration::from_secs(2))).await;
    let data_dir = tempfile::tempdir().unwrap();
    let grace = GRACE_SECONDS.to_string();
    let mut host = HostProcess::start(
        env!("CARGO_BIN_EXE_e2e-host"),
        &peers,
        data_dir.path(),
        &[
            "--auth-mode",
            "required",
            "--payment-timeout",
            "30",
            // The sweeper runs during the drain and must stop cleanly too.
            "--sweep-interval",
            "1",
            "--shutdown-grace-seconds",
            &grace,
        ],
    )
    .await;

    // A fresh connection per request: after the signal a request is either
    // refused at connect or served, never lost on a reused connection.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let user = format!("loadtest_user_{}", n + 1);
        let token = login(&client, &peers.users_url, &user).await;
        // Row by client, so no two clients ever want the same seat.
        let row = char::from(b'A' + n as u8);
        let seats = (1..=25).map(|seat| format!("{row}{seat}")).collect();
        clients.push(tokio::spawn(book_and_pay_until_refused(
            client.clone(),
            host.base_url.clone(),
            token,
            user,
            seats,
        )));
    }

    // The charge is recorded at the peer before its slow answer: once
    // every client's first one is there, those payments are in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    while peers.payments.charges().len() < CLIENTS {
        assert!(Instant::now() < deadline, "the payments never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let in_flight_at_signal: HashSet<String> = peers
        .payments
        .charges()
        .into_iter()
        .map(|charge| charge.idempotency_key)
        .collect();
    let signalled = Instant::now();
    host.signal("TERM");
    let status = host
        .wait(Duration::from_secs(GRACE_SECONDS + 5))
        .await
        .expect("the host exits");
    let exited_after = signalled.elapsed();
    let log = host.log();
    assert!(status.success(), "exit status {status}:\n{log}");
    assert!(
        exited_after < Duration::from_secs(GRACE_SECONDS),
        "exited {exited_after:?} after SIGTERM:\n{log}"
    );
    assert!(!log.contains("are cut"), "nothing had to be cut:\n{log}");

    let mut paid = HashSet::new();
    let mut unpaid = HashSet::new();
    let (mut answered, mut refused) = (0, 0);
    for client in clients {
        for (operation, booking, sent) in client.await.unwrap() {
            match sent.outcome {
                Ok((status, body)) => {
                    answered += 1;
                    assert_eq!(status, 200, "{operation}: {body}");
                    assert!(body.get("errors").is_none(), "{operation}: {body}");
                    assert_eq!(body["data"][operation]["success"], true, "{body}");
                    let booking = booking.expect("a booking id");
                    if operation == "processPayment" {
                        assert_eq!(body["data"][operation]["booking"]["status"], "CONFIRMED");
                        unpaid.remove(&booking);
                        paid.insert(booking);
                    } else {
                        unpaid.insert(booking);
                    }
                }
                Err(error) => {
                    refused += 1;
                    assert!(
                        sent.at >= signalled && error.is_connect(),
                        "{operation} failed other than by a refused connection after the signal: {error}"
                    );
                }
            }
        }
    }
    eprintln!(
        "SIGTERM under load: {answered} requests answered, {refused} refused after the signal, \
         {} payments in flight at the signal, exit after {exited_after:?}",
        in_flight_at_signal.len()
    );
    assert!(
        in_flight_at_signal.is_subset(&paid),
        "every payment in flight at the signal completed: {in_flight_at_signal:?} vs {paid:?}"
    );
    assert!(
        refused > 0,
        "clients outlived the host: the signal came too late"
    );

    // Restarted on the same data, the store and the cinema agree with the
    // clients: paid bookings CONFIRMED (charged once), the rest PENDING.
    let mut restarted = HostProcess::start(
        env!("CARGO_BIN_EXE_e2e-host"),
        &peers,
        data_dir.path(),
        &["--auth-mode", "disabled"],
    )
    .await;
    let mut confirmed_seats = Vec::new();
    let mut pending_seats = Vec::new();
    for (bookings, status, events) in [
        (
            &paid,
            "CONFIRMED",
            &["booking.created", "booking.confirmed"][..],
        ),
        (&unpaid, "PENDING", &["booking.created"][..]),
    ] {
        for booking in bookings {
            let (_, body) = graphql(
                &client,
                &restarted.base_url,
                "query($b: String!) { getBooking(bookingId: $b) { status seats } bookingEvents(bookingId: $b) { type } }",
                json!({"b": booking}),
            )
            .await;
            let data = &body["data"];
            assert_eq!(data["getBooking"]["status"], status, "{booking}: {body}");
            let types: Vec<&str> = data["bookingEvents"]
                .as_array()
                .expect("events")
                .iter()
                .filter_map(|event| event["type"].as_str())
                .collect();
            assert_eq!(types, events, "{booking}");
            let seats = data["getBooking"]["seats"].as_array().unwrap().iter();
            let seats = seats.map(|seat| seat.as_str().unwrap().to_owned());
            if status == "CONFIRMED" {
                confirmed_seats.extend(seats);
            } else {
                pending_seats.extend(seats);
            }
        }
    }
    let mut charged: Vec<String> = peers
        .payments
        .charges()
        .into_iter()
        .map(|charge| charge.idempotency_key)
        .collect();
    let mut paid_ids: Vec<String> = paid.iter().cloned().collect();
    charged.sort();
    paid_ids.sort();
    assert_eq!(charged, paid_ids, "one charge per paid booking, none other");
    let mut booked = peers.cinema.booked_seats("showtime_flash");
    let mut locked: Vec<String> = peers
        .cinema
        .live_locks("showtime_flash")
        .into_iter()
        .flat_map(|lock| lock.seats)
        .collect();
    for seats in [
        &mut booked,
        &mut locked,
        &mut confirmed_seats,
        &mut pending_seats,
    ] {
        seats.sort();
    }
    assert_eq!(
        booked, confirmed_seats,
        "BOOKED seats = seats of CONFIRMED bookings"
    );
    assert_eq!(
        locked, pending_seats,
        "LOCKED seats = seats of PENDING bookings"
    );
    restarted.signal("TERM");
    let status = restarted.wait(Duration::from_secs(GRACE_SECONDS)).await;
    assert!(status.is_some_and(|status| status.success()), "{status:?}");
}

/// A request that outlasts the grace period does not hold the host up:
/// it is cut, the host says how many were, and still exits 0 in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_grace_period_are_cut_and_counted() {
    let peers = reference_peers(slow_payments(Duration::from_secs(20))).await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut host = HostProcess::start(
        env!("CARGO_BIN_EXE_e2e-host"),
        &peers,
        data_dir.path(),
        &[
            "--auth-mode",
            "disabled",
            "--payment-timeout",
            "60",
            "--shutdown-grace-seconds",
            "1",
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let (_, created) = graphql(
        &client,
        &host.base_url,
        "mutation { createBooking(userId: \"user_123\", showtimeId: \"showtime_456\", seatNumbers: [\"A1\"]) { booking { id } } }",
        json!({}),
    )
    .await;
    let booking = created["data"]["createBooking"]["booking"]["id"]
        .as_str()
        .expect("a booking")
        .to_owned();
    let payment = tokio::spawn({
        let base_url = host.base_url.clone();
        async move {
            client
                .post(format!("{base_url}/graphql"))
                .json(&json!({
                    "query": "mutation($b: String!) { processPayment(bookingId: $b, paymentMethod: \"credit_card\", paymentDetails: \"card_slow\") { success } }",
                    "variables": {"b": booking},
                }))
                .send()
                .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while peers.payments.charges().is_empty() {
        assert!(Instant::now() < deadline, "the payment never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let signalled = Instant::now();
    host.signal("TERM");
    let status = host
        .wait(Duration::from_secs(10))
        .await
        .expect("the host exits without waiting for the payment");
    let log = host.log();
    assert!(status.success(), "exit status {status}:\n{log}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "took {:?}",
        signalled.elapsed()
    );
    let cut = log
        .lines()
        .find(|line| line.contains("are cut"))
        .unwrap_or_else(|| panic!("no warning about the cut request:\n{log}"));
    assert!(cut.contains("requests=1"), "{cut}");
    assert!(
        payment.await.unwrap().is_err(),
        "the cut request got no answer"
    );
}

/// Writes all of `bytes` to a raw connection (readiness and `try_write`:
/// tokio's `io-util` is not among the tests' features).
async fn send_raw(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Reads until the host closes (or resets) the connection, `until`
/// appears in what arrived, or `limit` passes; returns what arrived and
/// whether the connection was closed.
async fn read_raw(stream: &TcpStream, until: &str, limit: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = async {
        loop {
            if stream.readable().await.is_err() {
                return true;
            }
            match stream.try_read(&mut buffer) {
                Ok(0) => return true,
                Ok(read) => {
                    received.extend_from_slice(&buffer[..read]);
                    if String::from_utf8_lossy(&received).contains(until) {
                        return false;
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return true,
            }
        }
    };
    let closed = tokio::time::timeout(limit, read).await.unwrap_or(false);
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

/// The start of a request whose headers never end.
const SLOW_HEADERS: &[u8] = b"POST /graphql HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
/// Complete headers of a request whose 100,000-byte body never ends.
const SLOW_BODY: &[u8] = b"POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";

/// A slowloris client: sends `start`, then one more byte every `pause`
/// (of a header value, or of the body) until `stop`. Returns whether the
/// connection was still open then: the host neither closed nor answered it.
async fn trickle(
    address: std::net::SocketAddr,
    start: &'static [u8],
    pause: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> bool {
    let Ok(stream) = TcpStream::connect(address).await else {
        return false;
    };
    if send_raw(&stream, start).await.is_err() {
        return false;
    }
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep(pause) => {
                if send_raw(&stream, b" ").await.is_err() {
                    return false;
                }
            }
        }
    }
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
}

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

/// 300 slowloris connections (150 trickling headers, 150 trickling
/// bodies) held open against a pool of 4: they hold connections, never
/// instance slots, so normal clients keep getting answers and the
/// sweeper keeps expiring unpaid bookings.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_connections_hold_no_slot_normal_clients_keep_getting_answers() {
    const SLOW_CLIENTS: usize = 300;
    let service = Arc::new(
        TestService::start(Options {
            seat_lock_seconds: 2,
            sweep_interval_seconds: 1,
            max_concurrent_requests: 4,
            extra_args: args(&[
                // Longer than the test: the slow clients stay connected.
                "--header-read-timeout-seconds",
                "120",
                "--body-read-timeout-seconds",
                "120",
            ]),
            ..Options::default()
        })
        .await,
    );
    let address: std::net::SocketAddr = service
        .base_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let unpaid = service
        .create_booking("user_123", "showtime_456", &["E1"])
        .await;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let slow: Vec<_> = (0..SLOW_CLIENTS)
        .map(|n| {
            let start = if n % 2 == 0 { SLOW_HEADERS } else { SLOW_BODY };
            tokio::spawn(trickle(
                address,
                start,
                Duration::from_millis(500),
                stopped.clone(),
            ))
        })
        .collect();
    // Every slow request is in: headers read, its body being waited for.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let normal: Vec<_> = (0..8)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for _ in 0..25 {
                    let started = Instant::now();
                    let (status, body) = service
                        .graphql(
                            "query { showtimeSeats(showtimeId: \"showtime_456\") { seats { number status } } }",
                            json!({}),
                        )
                        .await;
                    latencies.push(started.elapsed());
                    assert_eq!(status, 200, "{body}");
                    assert!(body.get("errors").is_none(), "{body}");
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for client in normal {
        latencies.extend(client.await.unwrap());
    }
    let slowest = *latencies.iter().max().unwrap();
    let p99 = p99(&mut latencies);
    eprintln!(
        "{} normal requests beside {SLOW_CLIENTS} slowloris connections: p99 {p99:?}, max {slowest:?}",
        latencies.len()
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a normal request took {slowest:?}"
    );

    // The sweeper ran meanwhile: the unpaid booking's lock ran out.
    let booking = service
        .wait_for_status(&unpaid, "EXPIRED", Duration::from_secs(10))
        .await;
    assert_eq!(booking["status"], "EXPIRED", "{booking}");

    let _ = stop.send(true);
    let mut held = 0;
    for client in slow {
        held += usize::from(client.await.unwrap());
    }
    assert_eq!(
        held, SLOW_CLIENTS,
        "every slow connection was held open all along"
    );
}

/// Slow payments hold every request slot: a further request waits the
/// queue timeout, then gets 503 OVERLOADED with `Retry-After`, instead of
/// queueing behind them; the sweeper, on its own slot, still expires an
/// unpaid booking meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saturated_pool_sheds_load_and_the_sweeper_still_runs() {
    let peers = reference_peers(slow_payments(Duration::from_secs(8))).await;
    let data_dir = tempfile::tempdir().unwrap();
    let host = HostProcess::start(
        env!("CARGO_BIN_EXE_e2e-host"),
        &peers,
        data_dir.path(),
        &[
            "--auth-mode",
            "disabled",
            "--max-concurrent-requests",
            "2",
            "--queue-timeout-ms",
            "300",
            "--seat-lock-duration",
            "3",
            "--sweep-interval",
            "1",
            "--payment-timeout",
            "30",
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let create = |seat: &str| {
        let (client, base_url) = (client.clone(), host.base_url.clone());
        let query = format!(
            "mutation {{ createBooking(userId: \"user_123\", showtimeId: \"showtime_456\", seatNumbers: [\"{seat}\"]) {{ booking {{ id }} }} }}"
        );
        async move {
            let (_, body) = graphql(&client, &base_url, &query, json!({})).await;
            body["data"]["createBooking"]["booking"]["id"]
                .as_str()
                .expect("a booking")
                .to_owned()
        }
    };
    let paying = [create("D1").await, create("D2").await];
    let unpaid = create("D3").await;
    let payments: Vec<_> = paying
        .iter()
        .map(|booking| {
            let (client, base_url) = (client.clone(), host.base_url.clone());
            let booking = booking.clone();
            tokio::spawn(async move {
                graphql(
                    &client,
                    &base_url,
                    "mutation($b: String!) { processPayment(bookingId: $b, paymentMethod: \"credit_card\", paymentDetails: \"card_slow\") { success } }",
                    json!({"b": booking}),
                )
                .await
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while peers.payments.charges().len() < 2 {
        assert!(Instant::now() < deadline, "the payments never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let asked = Instant::now();
    let response = client
        .post(format!("{}/graphql", host.base_url))
        .json(&json!({"query": "{ logicVersion }"}))
        .send()
        .await
        .unwrap();
    let waited = asked.elapsed();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (status, error_code(&body)),
        (503, Some("OVERLOADED")),
        "{body}"
    );
    assert!(
        retry_after.is_some_and(|seconds| seconds >= 1),
        "{retry_after:?}"
    );
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "shed after {waited:?}"
    );

    // The lock of D3 runs out after 3 s; the sweep expires it while both
    // request slots are still held by the payments.
    let deadline = Instant::now() + Duration::from_secs(6);
    while !host
        .log()
        .lines()
        .any(|line| line.contains(": sweep expired=") && !line.contains("expired=0 "))
    {
        assert!(
            Instant::now() < deadline,
            "no sweep expired anything while the pool was full:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        payments.iter().all(|payment| !payment.is_finished()),
        "the sweep ran only once the payments had ended"
    );
    for payment in payments {
        let (status, body) = payment.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (_, body) = graphql(
        &client,
        &host.base_url,
        "query($b: String!) { getBooking(bookingId: $b) { status } }",
        json!({"b": unpaid}),
    )
    .await;
    assert_eq!(body["data"]["getBooking"]["status"], "EXPIRED", "{body}");
}

/// Headers not sent within the header-read timeout get the connection
/// closed; a body not sent within the body-read timeout gets 408
/// REQUEST_TIMEOUT; connections past MAX_CONNECTIONS wait until one
/// frees, and are then served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_slow_bodies_get_408_and_excess_connections_wait() {
    let service = TestService::start(Options::with_args(&[
        "--header-read-timeout-seconds",
        "1",
        "--body-read-timeout-seconds",
        "1",
        "--max-connections",
        "2",
    ]))
    .await;
    let address: std::net::SocketAddr = service
        .base_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();

    let headers = TcpStream::connect(address).await.unwrap();
    let body = TcpStream::connect(address).await.unwrap();
    let started = Instant::now();
    send_raw(&headers, SLOW_HEADERS).await.unwrap();
    send_raw(&body, SLOW_BODY).await.unwrap();
    send_raw(&body, b"{\"query\":").await.unwrap();

    // Both connections are taken: a third client waits for one to free.
    let third = tokio::spawn({
        let client = service.client.clone();
        let url = format!("{}/health", service.base_url);
        async move {
            let response = client
                .get(url)
                .send()
                .await
                .expect("served once a slot frees");
            (response.status().as_u16(), started.elapsed())
        }
    });

    let (answer, _) = read_raw(&body, "REQUEST_TIMEOUT", Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"REQUEST_TIMEOUT\""), "{answer}");
    assert!(took < Duration::from_secs(4), "408 after {took:?}");

    let (answer, closed) = read_raw(&headers, "\r\n\r\n", Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(
        closed,
        "the connection with unfinished headers stays open: {answer}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );

    let (status, waited) = third.await.unwrap();
    assert_eq!(status, 200);
    assert!(
        waited >= Duration::from_millis(900),
        "the third connection was served after {waited:?}, before either freed"
    );
}
