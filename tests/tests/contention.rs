//! Many clients at once: racing for overlapping seats (no seat is held
//! twice), and in flight while the host is told to stop (every accepted
//! request completes).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use booking_peers::{PaymentBehaviour, PeersConfig};
use e2e_tests::process::HostProcess;
use e2e_tests::{Options, TestService, error_code};
use serde_json::{Value, json};

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
    let peers = booking_peers::start(PeersConfig {
        payments: PaymentBehaviour {
            slow_delay: Duration::from_secs(2),
            ..PaymentBehaviour::default()
        },
        ..PeersConfig::default()
    })
    .await
    .expect("starting the reference peers");
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
        let login: Value = client
            .post(format!("{}/auth/login", peers.users_url))
            .json(&json!({"userId": user, "password": "demo"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["token"].as_str().expect("a token").to_owned();
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
    let peers = booking_peers::start(PeersConfig {
        payments: PaymentBehaviour {
            slow_delay: Duration::from_secs(20),
            ..PaymentBehaviour::default()
        },
        ..PeersConfig::default()
    })
    .await
    .expect("starting the reference peers");
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

async fn graphql(
    client: &reqwest::Client,
    base_url: &str,
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let response = client
        .post(format!("{base_url}/graphql"))
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .expect("the host answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}
