//! The network adapters (seats, users, payments) against the real
//! reference peers on loopback (also over TLS, with a test CA), plus a few
//! deliberately broken servers for the failure mappings the peers never
//! produce (redirects and oversized answers among them).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use booking_adapters::Adapter;
use booking_adapters::payments::{PaymentsConfig, RestPayments};
use booking_adapters::seats::{GrpcSeats, SeatsConfig};
use booking_adapters::tls::TlsRoots;
use booking_adapters::users::{RestUsers, UsersConfig};
use booking_logic::model::{ChargeRequest, PricedSeat, Receipt, SeatStatus};
use booking_logic::ports::{Payments, PortError, Seats, Users};
use booking_peers::{PaymentBehaviour, PeersConfig, PeersTls, RunningPeers};
use test_support::tls::TestCa;
use tokio::net::TcpListener;

use crate::support::roots;

const API_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

async fn peers() -> RunningPeers {
    booking_peers::start(PeersConfig {
        payments: PaymentBehaviour {
            slow_delay: Duration::from_millis(400),
            lost_reply_delay: Duration::from_secs(5),
        },
        ..PeersConfig::default()
    })
    .await
    .expect("peers start")
}

/// A `$config` (seats' or users', which share these fields) for `$url`.
macro_rules! endpoint {
    ($config:ident, $url:expr, $timeout:expr, $tls:expr) => {
        $config {
            url: $url.to_owned(),
            timeout: $timeout,
            connect_timeout: CONNECT_TIMEOUT,
            tls: $tls,
        }
    };
}

fn seats_at(url: &str, timeout: Duration) -> GrpcSeats {
    seats_trusting(url, timeout, TlsRoots::default())
}

fn seats_trusting(url: &str, timeout: Duration, tls: TlsRoots) -> GrpcSeats {
    GrpcSeats::new(&endpoint!(SeatsConfig, url, timeout, tls)).expect("valid url")
}

fn users_at(url: &str, timeout: Duration) -> RestUsers {
    users_trusting(url, timeout, TlsRoots::default())
}

fn users_trusting(url: &str, timeout: Duration, tls: TlsRoots) -> RestUsers {
    RestUsers::new(&endpoint!(UsersConfig, url, timeout, tls)).expect("valid url")
}

fn payments_at(url: &str, charge_timeout: Duration) -> RestPayments {
    payments_trusting(url, charge_timeout, TlsRoots::default())
}

fn payments_trusting(url: &str, charge_timeout: Duration, tls: TlsRoots) -> RestPayments {
    RestPayments::new(&PaymentsConfig {
        url: url.to_owned(),
        charge_timeout,
        timeout: API_TIMEOUT,
        connect_timeout: CONNECT_TIMEOUT,
        tls,
    })
    .expect("valid url")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn charge_request(key: &str, details: &str, amount_cents: u64) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: key.into(),
        amount_cents,
        currency: "USD".into(),
        method: "credit_card".into(),
        details: details.into(),
        description: "2 seats for Inception".into(),
    }
}

/// Charges `amount_cents` with a card that works, under `key`: the receipt.
async fn charged(payments: &RestPayments, key: &str, amount_cents: u64) -> Receipt {
    payments
        .charge(&charge_request(key, "card_token_xyz", amount_cents))
        .await
        .expect("charged")
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    u64::try_from(since_epoch.as_millis()).expect("fits")
}

/// An address nothing listens on.
async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("bound")
}

/// Accepts connections and never answers.
async fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// Answers every request with the same status and body.
async fn canned_server(status: StatusCode, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    let app = Router::new().fallback(move || async move { (status, body) });
    tokio::spawn(axum::serve(listener, app).into_future());
    url
}

fn assert_kind<T: std::fmt::Debug>(result: Result<T, PortError>, kind: fn(&PortError) -> bool) {
    match result {
        Err(error) if kind(&error) => {}
        other => panic!("unexpected result: {other:?}"),
    }
}

fn not_found(e: &PortError) -> bool {
    matches!(e, PortError::NotFound(_))
}
fn rejected(e: &PortError) -> bool {
    matches!(e, PortError::Rejected(_))
}
fn conflict(e: &PortError) -> bool {
    matches!(e, PortError::Conflict(_))
}
fn unavailable(e: &PortError) -> bool {
    matches!(e, PortError::Unavailable(_))
}
fn timeout(e: &PortError) -> bool {
    matches!(e, PortError::Timeout(_))
}

// ---- seats ----

#[tokio::test]
async fn seats_reads_showtime_and_seat_map() {
    let peers = peers().await;
    let seats = seats_at(&peers.cinema_url, API_TIMEOUT);

    let showtime = seats.get_showtime("showtime_456").await.expect("known");
    assert_eq!(showtime.movie_title, "Inception");
    assert_eq!(showtime.currency, "USD");
    assert_eq!((showtime.total_seats, showtime.available_seats), (50, 50));

    let map = seats.seat_map("showtime_456").await.expect("known");
    assert_eq!(map.len(), 50);
    let a1 = map.iter().find(|s| s.number == "A1").expect("A1");
    assert_eq!(
        (a1.row.as_str(), a1.price_cents, a1.status),
        ("A", 1500, SeatStatus::Available)
    );

    assert_kind(seats.get_showtime("showtime_nope").await, not_found);
    assert_kind(seats.seat_map("showtime_nope").await, not_found);
    seats.health().await.expect("healthy");
}

#[tokio::test]
async fn seats_lock_confirm_release() {
    let peers = peers().await;
    let seats = seats_at(&peers.cinema_url, API_TIMEOUT);

    let before = now_ms();
    let lock = seats
        .lock_seats("showtime_456", &strings(&["A1", "C1"]), "booking_1", 60)
        .await
        .expect("free seats");
    assert_eq!(lock.showtime_id, "showtime_456");
    assert_eq!(
        lock.seats,
        [
            PricedSeat {
                number: "A1".into(),
                price_cents: 1500
            },
            PricedSeat {
                number: "C1".into(),
                price_cents: 1200
            },
        ]
    );
    assert!((before + 59_000..=now_ms() + 60_000).contains(&lock.expires_at));

    // Overlapping request: all or nothing, so C2 stays free too.
    let taken = seats
        .lock_seats("showtime_456", &strings(&["C1", "C2"]), "booking_2", 60)
        .await;
    assert_kind(taken, conflict);
    let map = seats.seat_map("showtime_456").await.expect("known");
    let status = |n: &str| map.iter().find(|s| s.number == n).map(|s| s.status);
    assert_eq!(status("A1"), Some(SeatStatus::Locked));
    assert_eq!(status("C2"), Some(SeatStatus::Available));

    seats.confirm_seats(&lock.id).await.expect("live lock");
    seats
        .confirm_seats(&lock.id)
        .await
        .expect("confirm is idempotent");
    assert_eq!(peers.cinema.booked_seats("showtime_456"), ["A1", "C1"]);
    let available = seats
        .get_showtime("showtime_456")
        .await
        .expect("known")
        .available_seats;
    assert_eq!(available, 48);

    // Releasing a confirmed lock frees its seats (a cancelled booking).
    seats.release_seats(&lock.id).await.expect("release");
    seats
        .release_seats(&lock.id)
        .await
        .expect("release is idempotent");
    assert!(peers.cinema.booked_seats("showtime_456").is_empty());
    assert_kind(seats.confirm_seats(&lock.id).await, conflict);
    seats
        .lock_seats("showtime_456", &strings(&["C1", "C2"]), "booking_2", 60)
        .await
        .expect("freed");
}

#[tokio::test]
async fn seats_extend_lock() {
    let peers = peers().await;
    let seats = seats_at(&peers.cinema_url, API_TIMEOUT);

    let lock = seats
        .lock_seats("showtime_456", &strings(&["B7"]), "booking_1", 60)
        .await
        .expect("free");
    let before = now_ms();
    let ends = seats.extend_lock(&lock.id, 600).await.expect("live lock");
    assert!((before + 600_000..=now_ms() + 600_000).contains(&ends));
    assert_eq!(
        seats.extend_lock(&lock.id, 60).await,
        Ok(ends),
        "never earlier"
    );
    let live = peers.cinema.live_locks("showtime_456");
    assert_eq!(
        live.iter().map(|l| l.expires_at_ms).collect::<Vec<_>>(),
        [ends]
    );

    seats.release_seats(&lock.id).await.expect("release");
    assert_kind(seats.extend_lock(&lock.id, 60).await, conflict);
    assert_kind(seats.extend_lock("no-such-lock", 60).await, not_found);
    assert_kind(seats.extend_lock(&lock.id, 0).await, rejected);
}

#[tokio::test]
async fn seats_refuses_bad_lock_requests() {
    let peers = peers().await;
    let seats = seats_at(&peers.cinema_url, API_TIMEOUT);
    let lock = |showtime: &'static str, numbers: &'static [&'static str], ttl: u32| {
        let seats = &seats;
        async move {
            seats
                .lock_seats(showtime, &strings(numbers), "b", ttl)
                .await
        }
    };

    assert_kind(lock("showtime_nope", &["A1"], 60).await, not_found);
    assert_kind(lock("showtime_456", &["Z99"], 60).await, rejected);
    assert_kind(lock("showtime_456", &["A1", "A1"], 60).await, rejected);
    assert_kind(lock("showtime_456", &[], 60).await, rejected);
    assert_kind(lock("showtime_456", &["A1"], 0).await, rejected);
    assert!(peers.cinema.live_locks("showtime_456").is_empty());

    assert_kind(seats.confirm_seats("no-such-lock").await, conflict);
    seats
        .release_seats("no-such-lock")
        .await
        .expect("unknown release is ok");
}

#[tokio::test]
async fn seats_lock_expires_after_its_ttl() {
    let peers = peers().await;
    let seats = seats_at(&peers.cinema_url, API_TIMEOUT);

    let old = seats
        .lock_seats("showtime_789", &strings(&["B1"]), "slow_booking", 1)
        .await
        .expect("free");
    assert_kind(
        seats
            .lock_seats("showtime_789", &strings(&["B1"]), "other", 60)
            .await,
        conflict,
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    assert_kind(seats.confirm_seats(&old.id).await, conflict);
    let new = seats
        .lock_seats("showtime_789", &strings(&["B1"]), "other", 60)
        .await
        .expect("expired lock frees the seat");
    // Releasing the dead lock must not free the new holder's seat.
    seats
        .release_seats(&old.id)
        .await
        .expect("release of expired is ok");
    seats
        .confirm_seats(&new.id)
        .await
        .expect("new lock is live");
    assert_eq!(peers.cinema.booked_seats("showtime_789"), ["B1"]);
}

#[tokio::test]
async fn seats_accepts_the_seed_url_form() {
    let peers = peers().await;
    let host_port = peers.cinema_url.trim_start_matches("http://");
    let seats = seats_at(host_port, API_TIMEOUT);
    seats.health().await.expect("healthy");
    assert_eq!(
        seats
            .get_showtime("showtime_flash")
            .await
            .map(|s| s.total_seats),
        Ok(500)
    );
}

#[tokio::test]
async fn seats_down_or_silent() {
    // Built without a server: the host must start while the cinema is down.
    let down = seats_at(&dead_addr().await.to_string(), API_TIMEOUT);
    assert_kind(down.get_showtime("showtime_456").await, unavailable);
    assert_kind(down.release_seats("lock").await, unavailable);
    assert!(down.health().await.is_err());

    let silent = seats_at(&silent_server().await, Duration::from_millis(300));
    let locked = silent
        .lock_seats("showtime_456", &strings(&["A1"]), "b", 60)
        .await;
    assert_kind(locked, timeout);
    assert_kind(silent.extend_lock("lock", 60).await, timeout);
}

// ---- users ----

#[tokio::test]
async fn users_found_missing_and_inactive() {
    let peers = peers().await;
    let users = users_at(&peers.users_url, API_TIMEOUT);

    let alice = users.get_user("user_123").await.expect("demo user");
    assert_eq!(alice.id, "user_123");
    assert!(alice.active && alice.email.contains('@'));
    assert_eq!(
        users.get_user("user_inactive").await.map(|u| u.active),
        Ok(false)
    );
    assert!(users.get_user("loadtest_user_9999").await.is_ok());
    assert_kind(users.get_user("user_nope").await, not_found);
    users.health().await.expect("healthy");
}

#[tokio::test]
async fn users_ids_are_path_segments() {
    let peers = peers().await;
    let users = users_at(&peers.users_url, API_TIMEOUT);
    // Unencoded, these would fetch user_123 or hit /health.
    for id in [
        "user_123?x=1",
        "user_123#top",
        "../health",
        "user_123/",
        "..",
        "",
    ] {
        assert_kind(users.get_user(id).await, not_found);
    }
}

#[tokio::test]
async fn users_failures() {
    let down = users_at(&format!("http://{}", dead_addr().await), API_TIMEOUT);
    assert_kind(down.get_user("user_123").await, unavailable);
    assert!(down.health().await.is_err());

    let silent = users_at(&silent_server().await, Duration::from_millis(300));
    assert_kind(silent.get_user("user_123").await, timeout);

    let failing = users_at(
        &canned_server(StatusCode::BAD_GATEWAY, "").await,
        API_TIMEOUT,
    );
    assert_kind(failing.get_user("user_123").await, unavailable);
    let garbled = users_at(
        &canned_server(StatusCode::OK, "{\"id\":").await,
        API_TIMEOUT,
    );
    assert_kind(garbled.get_user("user_123").await, unavailable);
    let refusing = users_at(&canned_server(StatusCode::FORBIDDEN, "").await, API_TIMEOUT);
    assert_kind(refusing.get_user("user_123").await, rejected);
}

/// Signs in at the users peer through `client`; the bearer token.
async fn log_in_with(client: &reqwest::Client, users_url: &str, user_id: &str) -> String {
    let body: serde_json::Value = client
        .post(format!("{users_url}/auth/login"))
        .json(&serde_json::json!({ "userId": user_id, "password": "demo" }))
        .send()
        .await
        .expect("login answered")
        .json()
        .await
        .expect("login JSON");
    body["token"].as_str().expect("a token").to_owned()
}

/// Signs in at the users peer (plain HTTP); the bearer token.
async fn log_in(users_url: &str, user_id: &str) -> String {
    log_in_with(&reqwest::Client::new(), users_url, user_id).await
}

#[tokio::test]
async fn users_authenticate_valid_and_invalid_tokens() {
    let peers = peers().await;
    // No cache: every call asks the service.
    let users = users_at(&peers.users_url, API_TIMEOUT).with_auth_cache_ttl(Duration::ZERO);

    let token = log_in(&peers.users_url, "user_123").await;
    let caller = users.authenticate(&token).await.expect("valid token");
    assert_eq!(caller.user_id, "user_123");
    assert!(caller.roles.is_empty());
    assert!(caller.expires_at > now_ms() + 3_000_000, "about an hour");

    let support = users
        .authenticate(&log_in(&peers.users_url, "support_1").await)
        .await
        .expect("valid token");
    assert_eq!(
        (support.user_id.as_str(), support.roles),
        ("support_1", strings(&["support"]))
    );

    for bad in ["forged", "", "two words", "line\nbreak", "ünicode"] {
        assert_kind(users.authenticate(bad).await, rejected);
    }
    let revoked = reqwest::Client::new()
        .post(format!("{}/auth/logout", peers.users_url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("reachable");
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_kind(users.authenticate(&token).await, rejected);
}

/// A users service whose `/auth/me` knows the tokens "good" (valid for
/// an hour) and "brief" (valid for 300 ms), counting its calls.
async fn counting_auth_server() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let handler = move |headers: HeaderMap| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let valid_ms = match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                Some("Bearer good") => 3_600_000,
                Some("Bearer brief") => 300,
                _ => return (StatusCode::UNAUTHORIZED, String::new()),
            };
            let body = serde_json::json!({
                "userId": "user_123",
                "roles": ["support"],
                "expiresAt": now_ms() + valid_ms,
            });
            (StatusCode::OK, body.to_string())
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    let app = Router::new().route("/auth/me", axum::routing::get(handler));
    tokio::spawn(axum::serve(listener, app).into_future());
    (url, calls)
}

#[tokio::test]
async fn users_authenticate_caches_valid_and_rejected_tokens_briefly() {
    let (url, calls) = counting_auth_server().await;
    let users = users_at(&url, API_TIMEOUT);

    let first = users.authenticate("good").await.expect("valid");
    let second = users.authenticate("good").await.expect("cached");
    assert_eq!(first, second);
    assert_eq!(second.roles, strings(&["support"]));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the second call did not hit the server"
    );

    assert_kind(users.authenticate("bad").await, rejected);
    assert_kind(users.authenticate("bad").await, rejected);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "a rejected token is not sent again at once"
    );

    // Cached no longer than the token is valid.
    users.authenticate("brief").await.expect("valid");
    users.authenticate("brief").await.expect("cached");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    users.authenticate("brief").await.expect("asked again");
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    // Nor longer than the cache's TTL, rejections included.
    let short = users_at(&url, API_TIMEOUT).with_auth_cache_ttl(Duration::from_millis(100));
    short.authenticate("good").await.expect("valid");
    short.authenticate("good").await.expect("cached");
    assert_kind(short.authenticate("bad").await, rejected);
    assert_kind(short.authenticate("bad").await, rejected);
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    tokio::time::sleep(Duration::from_millis(150)).await;
    short.authenticate("good").await.expect("asked again");
    assert_kind(short.authenticate("bad").await, rejected);
    assert_eq!(calls.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn users_authenticate_failures() {
    let down = users_at(&format!("http://{}", dead_addr().await), API_TIMEOUT);
    assert_kind(down.authenticate("good").await, unavailable);

    let silent = users_at(&silent_server().await, Duration::from_millis(300));
    assert_kind(silent.authenticate("good").await, timeout);

    for (status, body, kind) in [
        (
            StatusCode::FORBIDDEN,
            "",
            rejected as fn(&PortError) -> bool,
        ),
        (
            StatusCode::UNAUTHORIZED,
            "{\"error\":\"invalid_token\"}",
            rejected,
        ),
        (StatusCode::INTERNAL_SERVER_ERROR, "", unavailable),
        (StatusCode::NOT_FOUND, "", unavailable),
        (StatusCode::OK, "{\"userId\":", unavailable),
    ] {
        let users = users_at(&canned_server(status, body).await, API_TIMEOUT);
        assert_kind(users.authenticate("good").await, kind);
    }
}

// ---- payments ----

#[tokio::test]
async fn payments_charge_is_idempotent_per_key() {
    let peers = peers().await;
    let payments = payments_at(&peers.payments_url, API_TIMEOUT);

    let receipt = charged(&payments, "booking_1", 3000).await;
    assert_eq!(
        (receipt.amount_cents, receipt.currency.as_str()),
        (3000, "USD")
    );
    assert!(receipt.charged_at > 0);

    let replay = payments
        .charge(&charge_request("booking_1", "card_token_xyz", 3000))
        .await
        .expect("replayed");
    assert_eq!(replay, receipt);
    assert_eq!(peers.payments.charges_for_key("booking_1").len(), 1);

    // Same key, other amount: a client bug, refused.
    let reused = payments
        .charge(&charge_request("booking_1", "card_token_xyz", 4500))
        .await;
    assert_kind(reused, conflict);
    assert_eq!(peers.payments.charges().len(), 1);
    payments.health().await.expect("healthy");
}

#[tokio::test]
async fn payments_declines_and_invalid_requests_are_rejected() {
    let peers = peers().await;
    let payments = payments_at(&peers.payments_url, API_TIMEOUT);

    let declined = charge_request("booking_2", "card_declined", 3000);
    assert_kind(payments.charge(&declined).await, rejected);
    assert_kind(payments.charge(&declined).await, rejected);
    assert_kind(
        payments
            .charge(&charge_request("booking_3", "card_token_xyz", 0))
            .await,
        rejected,
    );
    assert!(peers.payments.charges().is_empty());
}

#[tokio::test]
async fn payments_lost_reply_times_out_and_the_retry_finds_the_charge() {
    let peers = peers().await;
    let payments = payments_at(&peers.payments_url, Duration::from_millis(500));
    let request = charge_request("booking_lost", "card_lost_reply", 2400);

    assert_kind(payments.charge(&request).await, timeout);
    let charged = peers.payments.charges_for_key("booking_lost");
    assert_eq!(
        charged.len(),
        1,
        "the money moved although the reply was lost"
    );

    let receipt = payments
        .charge(&request)
        .await
        .expect("replay answers at once");
    assert_eq!(receipt.transaction_id, charged[0].transaction_id);
    assert_eq!(peers.payments.charges_for_key("booking_lost").len(), 1);
}

#[tokio::test]
async fn payments_slow_card_uses_the_charge_timeout() {
    let peers = peers().await;
    let impatient = payments_at(&peers.payments_url, Duration::from_millis(100));
    let patient = payments_at(&peers.payments_url, Duration::from_secs(3));
    let request = charge_request("booking_slow", "card_slow", 1200);

    assert_kind(impatient.charge(&request).await, timeout);
    let receipt = patient.charge(&request).await.expect("slow but fine");
    assert_eq!(peers.payments.charges_for_key("booking_slow").len(), 1);
    assert_eq!(
        peers
            .payments
            .charge(&receipt.transaction_id)
            .map(|c| c.amount_cents),
        Some(1200)
    );
}

#[tokio::test]
async fn payments_refund_is_idempotent() {
    let peers = peers().await;
    let payments = payments_at(&peers.payments_url, API_TIMEOUT);
    let receipt = charged(&payments, "booking_4", 2700).await;

    let refund = payments
        .refund(&receipt.transaction_id)
        .await
        .expect("refunded");
    assert_eq!(refund.transaction_id, receipt.transaction_id);
    assert_eq!(refund.amount_cents, 2700);
    assert_eq!(payments.refund(&receipt.transaction_id).await, Ok(refund));
    assert!(
        peers
            .payments
            .charge(&receipt.transaction_id)
            .is_some_and(|c| c.refunded)
    );

    assert_kind(payments.refund("txn_unknown").await, not_found);
    assert_kind(payments.refund("..").await, not_found);
    assert_kind(payments.refund("../../health").await, not_found);
}

#[tokio::test]
async fn payments_failures() {
    let request = charge_request("booking_5", "card_token_xyz", 1000);

    let down = payments_at(&format!("http://{}", dead_addr().await), API_TIMEOUT);
    assert_kind(down.charge(&request).await, unavailable);
    assert_kind(down.refund("txn_1").await, unavailable);
    assert!(down.health().await.is_err());

    let silent = payments_at(&silent_server().await, Duration::from_millis(300));
    assert_kind(silent.charge(&request).await, timeout);

    // A 500 may come after the charge; a 503 comes before any work.
    let crashed = payments_at(
        &canned_server(StatusCode::INTERNAL_SERVER_ERROR, "").await,
        API_TIMEOUT,
    );
    assert_kind(crashed.charge(&request).await, timeout);
    let busy = payments_at(
        &canned_server(StatusCode::SERVICE_UNAVAILABLE, "").await,
        API_TIMEOUT,
    );
    assert_kind(busy.charge(&request).await, unavailable);
    assert_kind(busy.refund("txn_1").await, unavailable);

    // A success nobody can read still charged: retry, do not give up.
    let garbled = payments_at(
        &canned_server(StatusCode::CREATED, "<html>").await,
        API_TIMEOUT,
    );
    assert_kind(garbled.charge(&request).await, timeout);
    assert_kind(garbled.refund("txn_1").await, unavailable);
}

#[tokio::test]
async fn payments_void_answers_the_charge_of_a_key_and_closes_it() {
    let peers = peers().await;
    let payments = payments_at(&peers.payments_url, API_TIMEOUT);
    let receipt = charged(&payments, "booking_found", 1800).await;
    assert_eq!(
        payments.void_charge("booking_found").await,
        Ok(Some(receipt.clone()))
    );
    // A charge made before the void still replays; the key is closed to
    // new ones.
    assert_eq!(
        payments
            .charge(&charge_request("booking_found", "card_token_xyz", 1800))
            .await,
        Ok(receipt)
    );

    let declined = charge_request("booking_declined", "card_declined", 1800);
    assert_kind(payments.charge(&declined).await, rejected);
    assert_eq!(payments.void_charge("booking_declined").await, Ok(None));
    assert_eq!(payments.void_charge("booking_never").await, Ok(None));
    assert_eq!(payments.void_charge("a key/with ?&= in it").await, Ok(None));
    let late = charge_request("booking_never", "card_token_xyz", 1800);
    assert_kind(payments.charge(&late).await, rejected);
    assert!(peers.payments.charges_for_key("booking_never").is_empty());
}

#[tokio::test]
async fn payments_void_failures_never_read_as_no_charge() {
    let down = payments_at(&format!("http://{}", dead_addr().await), API_TIMEOUT);
    assert_kind(down.void_charge("k").await, unavailable);

    let silent = payments_at(&silent_server().await, Duration::from_millis(300));
    assert_kind(silent.void_charge("k").await, timeout);

    // A service (or path) without the endpoint answers something else.
    for (status, body) in [
        (StatusCode::NOT_FOUND, r#"{"error":"no_route"}"#),
        (StatusCode::NOT_FOUND, ""),
        (StatusCode::OK, r#"{"charge":null}"#),
        (StatusCode::OK, r#"{"voided":false,"charge":null}"#),
        (StatusCode::OK, "<html>"),
        (StatusCode::SERVICE_UNAVAILABLE, ""),
    ] {
        let odd = payments_at(&canned_server(status, body).await, API_TIMEOUT);
        let answer = odd.void_charge("k").await;
        assert!(
            matches!(
                answer,
                Err(PortError::Unavailable(_)
                    | PortError::Rejected(_)
                    | PortError::NotFound(_)
                    | PortError::Timeout(_))
            ),
            "{status} {body}: {answer:?}"
        );
    }
}

// ---- TLS, redirects, answer size ----

async fn tls_peers(ca: &TestCa) -> RunningPeers {
    booking_peers::start(PeersConfig {
        tls: Some(PeersTls {
            cert_pem: ca.cert_pem.clone(),
            key_pem: ca.key_pem.clone(),
        }),
        ..PeersConfig::default()
    })
    .await
    .expect("TLS peers start")
}

#[tokio::test]
async fn all_three_adapters_work_over_tls_trusting_the_ca() {
    let ca = TestCa::new();
    let peers = tls_peers(&ca).await;
    for url in [&peers.cinema_url, &peers.users_url, &peers.payments_url] {
        assert!(url.starts_with("https://"), "{url}");
    }

    let seats = seats_trusting(&peers.cinema_url, API_TIMEOUT, roots(&ca));
    seats.health().await.expect("cinema over TLS");
    assert_eq!(
        seats
            .get_showtime("showtime_flash")
            .await
            .map(|s| s.total_seats),
        Ok(500)
    );

    let users = users_trusting(&peers.users_url, API_TIMEOUT, roots(&ca));
    users.health().await.expect("users over TLS");
    assert_eq!(
        users.get_user("user_123").await.map(|u| u.id),
        Ok("user_123".to_owned())
    );
    let token = log_in_over_tls(&peers.users_url, &ca, "user_123").await;
    assert_eq!(
        users.authenticate(&token).await.map(|c| c.user_id),
        Ok("user_123".to_owned())
    );

    let payments = payments_trusting(&peers.payments_url, API_TIMEOUT, roots(&ca));
    payments.health().await.expect("payments over TLS");
    let receipt = payments
        .charge(&charge_request("booking_tls", "card_token_ok", 1500))
        .await
        .expect("charged over TLS");
    assert_eq!(receipt.amount_cents, 1500);
}

/// Logs in over HTTPS, trusting only the test CA.
async fn log_in_over_tls(users_url: &str, ca: &TestCa, user_id: &str) -> String {
    let ca_cert = reqwest::Certificate::from_pem(std::fs::read(&ca.ca_file).unwrap().as_slice())
        .expect("CA PEM");
    let client = reqwest::Client::builder()
        .tls_certs_only([ca_cert])
        .build()
        .expect("client");
    log_in_with(&client, users_url, user_id).await
}

#[tokio::test]
async fn without_the_ca_every_adapter_fails_fast_as_unavailable() {
    let ca = TestCa::new();
    let peers = tls_peers(&ca).await;
    let public_roots_only = TlsRoots::default();
    let seats = seats_trusting(&peers.cinema_url, API_TIMEOUT, public_roots_only.clone());
    let users = users_trusting(&peers.users_url, API_TIMEOUT, public_roots_only.clone());
    let payments = payments_trusting(&peers.payments_url, API_TIMEOUT, public_roots_only);
    let refused = async {
        assert_kind(seats.get_showtime("showtime_flash").await, unavailable);
        assert_kind(users.get_user("user_123").await, unavailable);
        assert_kind(
            payments
                .charge(&charge_request("booking_untrusted", "card_token_ok", 1500))
                .await,
            unavailable,
        );
        assert!(seats.health().await.is_err());
    };
    tokio::time::timeout(Duration::from_secs(5), refused)
        .await
        .expect("refused at once, not hung");
    assert!(
        peers.payments.charges().is_empty(),
        "no charge over an untrusted connection"
    );
}

#[tokio::test]
async fn a_ca_file_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("empty.pem");
    std::fs::write(&file, "not a certificate\n").unwrap();
    let error = TlsRoots::with_ca_file(&file).expect_err("no certificate");
    assert!(error.to_string().contains("no certificate"), "{error}");
    let missing = TlsRoots::with_ca_file(&dir.path().join("missing.pem")).expect_err("no file");
    assert!(missing.to_string().contains("missing.pem"), "{missing}");
}

/// A server that redirects every request to a second one, which counts
/// what reaches it.
async fn redirecting_server(status: StatusCode) -> (String, Arc<AtomicUsize>) {
    let reached = Arc::new(AtomicUsize::new(0));
    let target = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target_url = format!("http://{}", target.local_addr().expect("bound"));
    let counter = reached.clone();
    let target_app = Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "{}" }
    });
    tokio::spawn(axum::serve(target, target_app).into_future());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    let app = Router::new().fallback(move || async move {
        (
            status,
            [(axum::http::header::LOCATION, target_url.clone())],
            "",
        )
    });
    tokio::spawn(axum::serve(listener, app).into_future());
    (url, reached)
}

#[tokio::test]
async fn redirects_are_not_followed_and_fail_as_dependency_errors() {
    for status in [StatusCode::FOUND, StatusCode::TEMPORARY_REDIRECT] {
        let (url, reached) = redirecting_server(status).await;
        // The charge may have been made before the redirect: only a
        // retry with the key can tell.
        let payments = payments_at(&url, API_TIMEOUT);
        let request = charge_request("booking_redirect", "card_token_ok", 1000);
        assert_kind(payments.charge(&request).await, timeout);
        assert_kind(payments.refund("txn_1").await, timeout);
        assert_kind(payments.void_charge("booking_redirect").await, timeout);
        let users = users_at(&url, API_TIMEOUT);
        assert_kind(users.authenticate("secret_token").await, unavailable);
        assert_kind(users.get_user("user_123").await, unavailable);
        assert_eq!(
            reached.load(Ordering::SeqCst),
            0,
            "{status}: nothing (card details, bearer token) reached the redirect target"
        );
    }
}

/// Answers every request with 200 and `json` padded with spaces to
/// `size` bytes, declared in `Content-Length` or streamed without it.
async fn padded_server(json: &'static str, size: usize, declared: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    let app = Router::new().fallback(move || async move {
        let mut body = json.as_bytes().to_vec();
        body.resize(size, b' ');
        if declared {
            axum::body::Body::from(body)
        } else {
            let chunks: Vec<_> = body
                .chunks(1024)
                .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
                .collect();
            axum::body::Body::from_stream(futures::stream::iter(chunks))
        }
    });
    tokio::spawn(axum::serve(listener, app).into_future());
    url
}

#[tokio::test]
async fn answers_over_one_mebibyte_are_not_read() {
    const USER: &str = r#"{"id":"u1","name":"U","email":"u@example.com","active":true}"#;
    for declared in [true, false] {
        // Up to the bound, a padded answer is read whole.
        let url = padded_server(USER, 1 << 20, declared).await;
        let user = users_at(&url, API_TIMEOUT).get_user("u1").await;
        assert_eq!(
            user.map(|u| u.id),
            Ok("u1".to_owned()),
            "declared: {declared}"
        );

        let url = padded_server(USER, (1 << 20) + 1, declared).await;
        let users = users_at(&url, API_TIMEOUT);
        assert_kind(users.get_user("u1").await, unavailable);
        assert_kind(users.authenticate("token").await, unavailable);
        // A charge answered unreadably may have been made.
        let payments = payments_at(&url, API_TIMEOUT);
        let request = charge_request("booking_big", "card_token_ok", 1000);
        assert_kind(payments.charge(&request).await, timeout);
        assert_kind(payments.void_charge("booking_big").await, timeout);
    }
}
