//! A fleet: three hosts (`e2e-host` processes) behind HAProxy on one
//! MongoDB-wire server, one RabbitMQ and one set of peers, as replicas of
//! a Deployment run. A flash sale through the balancer; one rollout,
//! canary and rollback made through one replica's admin API and followed
//! by all, under load; one replica SIGKILLed under load, audited.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use booking_peers::{PaymentBehaviour, RunningPeers};
use e2e_tests::process::HostProcess;
use e2e_tests::{error_code, graphql};
use serde_json::{Value, json};
use test_support::amqp::Subscriber;
use test_support::haproxy::Balancer;
use test_support::{service_url, unique};

use crate::audit;

const REPLICAS: usize = 3;
const ADMIN_TOKEN: &str = "scale-out-test-admin-token-0123456789abcdef";

struct Fleet {
    hosts: Vec<HostProcess>,
    balancer: Balancer,
    peers: RunningPeers,
    subscriber: Subscriber,
    client: reqwest::Client,
    /// The fleet's MongoDB database.
    database: mongodb::Database,
    _data: Vec<tempfile::TempDir>,
}

impl Fleet {
    /// Three replicas on one new database and exchange, behind HAProxy;
    /// `None` (skipped loudly) without the test servers outside CI.
    async fn start(extra_args: &[&str]) -> Option<Fleet> {
        let mongodb_url = service_url("TEST_MONGODB_URL")?;
        let rabbitmq_url = service_url("TEST_RABBITMQ_URL")?;
        service_url("TEST_HAPROXY_BIN")?;
        let (database, exchange) = (unique("fleet"), unique("fleet"));
        let subscriber = Subscriber::declare_and_bind(&rabbitmq_url, &exchange, "booking.#").await;
        let peers = e2e_tests::reference_peers(PaymentBehaviour::default()).await;
        let data: Vec<_> = (0..REPLICAS)
            .map(|_| tempfile::tempdir().expect("a data dir"))
            .collect();
        let binary = env!("CARGO_BIN_EXE_e2e-host");
        let starts = data.iter().enumerate().map(|(n, dir)| {
            let replica = format!("replica{n}");
            let mut args = vec![
                "--replica-id",
                replica.as_str(),
                "--admin-token",
                ADMIN_TOKEN,
                "--mongodb-url",
                mongodb_url.as_str(),
                "--mongodb-database",
                database.as_str(),
                "--mongodb-timeout-ms",
                "3000",
                "--rabbitmq-url",
                rabbitmq_url.as_str(),
                "--rabbitmq-exchange",
                exchange.as_str(),
                "--auth-mode",
                "disabled",
            ];
            args.extend_from_slice(extra_args);
            let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
            let (peers, dir) = (&peers, dir.path().to_owned());
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                HostProcess::start(binary, peers, &dir, &args).await
            }
        });
        let hosts = futures::future::join_all(starts).await;
        let backends: Vec<String> = hosts.iter().map(|host| host.base_url.clone()).collect();
        let balancer = Balancer::start(&backends).await?;
        let database = mongodb::Client::with_uri_str(&mongodb_url)
            .await
            .expect("a MongoDB client")
            .database(&database);
        Some(Fleet {
            database,
            hosts,
            balancer,
            peers,
            subscriber,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client"),
            _data: data,
        })
    }

    fn admin(
        &self,
        replica: usize,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.hosts[replica].admin_url))
            .bearer_auth(ADMIN_TOKEN)
            // A change waits (up to a minute) until every replica has
            // loaded what it names.
            .timeout(Duration::from_secs(90))
    }

    /// An admin call that must succeed; its answer.
    async fn admin_ok(&self, replica: usize, request: reqwest::RequestBuilder) -> Value {
        let response = request.send().await.expect("the admin API answers");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON answer");
        assert!(status.is_success(), "replica{replica}: {status} {body}");
        body
    }

    /// The sha256 of the version `base_url` serves a request with now.
    async fn serving(&self, base_url: &str) -> String {
        let response = self
            .client
            .post(format!("{base_url}/graphql"))
            .json(&json!({"query": "{ logicVersion }"}))
            .send()
            .await
            .expect("an answer");
        assert!(response.status().is_success());
        response.headers()[LOGIC_VERSION]
            .to_str()
            .expect("a version")
            .to_owned()
    }

    /// How long after `since` every replica served only `sha256` (ten
    /// answers in a row: a canary's share cannot fake that), asking each
    /// every 20 ms for at most 10 s.
    async fn converged(&self, sha256: &str, since: Instant) -> Duration {
        let deadline = since + Duration::from_secs(10);
        let mut pending: HashSet<usize> = (0..REPLICAS).collect();
        while !pending.is_empty() {
            for replica in pending.clone() {
                let url = &self.hosts[replica].base_url;
                let mut in_a_row = 0;
                while in_a_row < 10 && self.serving(url).await == sha256 {
                    in_a_row += 1;
                }
                if in_a_row == 10 {
                    pending.remove(&replica);
                }
            }
            assert!(
                Instant::now() < deadline,
                "replicas {pending:?} still do not serve {sha256} after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        since.elapsed()
    }
}

/// The response header naming the version that answered.
const LOGIC_VERSION: &str = "x-logic-version";

/// Reads through the balancer from `clients` tasks until `stop`: every
/// answer that is not a 200 with data counts as failed; the versions
/// that answered are counted.
struct ReadLoad {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

/// Requests sent, failed, and answered by each version.
type Tally = (usize, usize, HashMap<String, usize>);

impl ReadLoad {
    fn start(url: &str, clients: usize) -> ReadLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|client| {
                let (stop, url) = (stop.clone(), url.to_owned());
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let (mut sent, mut failed) = (0, 0);
                    let mut versions = HashMap::new();
                    let queries = [
                        "{ logicVersion }",
                        "{ showtimeSeats(showtimeId: \"showtime_789\") { seats { number status } } }",
                    ];
                    while !stop.load(Ordering::Relaxed) {
                        sent += 1;
                        let query = queries[(sent + client) % queries.len()];
                        let answer = http
                            .post(format!("{url}/graphql"))
                            .json(&json!({ "query": query }))
                            .send()
                            .await;
                        match answer {
                            Ok(response) if response.status().is_success() => {
                                let version = response
                                    .headers()
                                    .get(LOGIC_VERSION)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned();
                                let body: Value = response.json().await.unwrap_or_default();
                                if body["data"].is_null() || body.get("errors").is_some() {
                                    failed += 1;
                                    eprintln!("failed read: {body}");
                                }
                                *versions.entry(version).or_default() += 1;
                            }
                            other => {
                                failed += 1;
                                eprintln!("failed read: {other:?}");
                            }
                        }
                    }
                    (sent, failed, versions)
                })
            })
            .collect();
        ReadLoad { stop, tasks }
    }

    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut totals = (0, 0, HashMap::new());
        for task in self.tasks {
            let (sent, failed, versions) = task.await.expect("a load task");
            totals.0 += sent;
            totals.1 += failed;
            for (version, count) in versions {
                *totals.2.entry(version).or_default() += count;
            }
        }
        totals
    }
}

/// Of `draws` requests, how many `version` answered, per replica asked directly.
async fn share(fleet: &Fleet, base_url: &str, version: &str, draws: usize) -> usize {
    let mut hits = 0;
    for _ in 0..draws {
        if fleet.serving(base_url).await == version {
            hits += 1;
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_behind_haproxy_sells_each_seat_once_and_rolls_out_canaries_and_rolls_back_as_one()
{
    let Some(fleet) = Fleet::start(&[]).await else {
        return;
    };
    let url = fleet.balancer.url.clone();

    // Flash sale: 100 customers at once, two adjacent seats each, in the
    // 50 seats of showtime_456, through the balancer; then the winners pay.
    let client = fleet.client.clone();
    let sale = (0..100).map(|customer| {
        let (client, url) = (client.clone(), url.clone());
        let row = (b'A' + (customer % 5) as u8) as char;
        let first = customer / 5 % 9 + 1;
        let seats = vec![format!("{row}{first}"), format!("{row}{}", first + 1)];
        tokio::spawn(async move {
            graphql(
                &client,
                &url,
                "mutation($u: String!, $n: [String!]!) { createBooking(userId: $u, showtimeId: \"showtime_456\", seatNumbers: $n) { success booking { id seats } } }",
                json!({"u": format!("loadtest_user_{}", customer + 1), "n": seats}),
            )
            .await
        })
    });
    let mut sold = Vec::new();
    let mut winners = Vec::new();
    for request in sale {
        let (status, body) = request.await.expect("a customer");
        assert_eq!(status, 200, "{body}");
        let created = &body["data"]["createBooking"];
        if created["success"] == true {
            winners.push(created["booking"]["id"].as_str().expect("an id").to_owned());
            for seat in created["booking"]["seats"].as_array().expect("seats") {
                sold.push(seat.as_str().expect("a seat").to_owned());
            }
        } else {
            assert_eq!(error_code(&body), Some("SEATS_UNAVAILABLE"), "{body}");
        }
    }
    let distinct: HashSet<&String> = sold.iter().collect();
    let oversold = sold.len() - distinct.len();
    for booking in &winners {
        let (status, body) = graphql(
            &client,
            &url,
            "mutation($b: String!) { processPayment(bookingId: $b, paymentMethod: \"credit_card\", paymentDetails: \"card_token_xyz\") { success } }",
            json!({"b": booking}),
        )
        .await;
        assert_eq!(
            body["data"]["processPayment"]["success"], true,
            "{status} {body}"
        );
    }
    let mut at_cinema = fleet.peers.cinema.booked_seats("showtime_456");
    let mut in_store: Vec<String> = Vec::new();
    for booking in &winners {
        let (_, body) = graphql(
            &client,
            &url,
            "query($b: String!) { getBooking(bookingId: $b) { status seats } }",
            json!({"b": booking}),
        )
        .await;
        assert_eq!(body["data"]["getBooking"]["status"], "CONFIRMED", "{body}");
        for seat in body["data"]["getBooking"]["seats"]
            .as_array()
            .expect("seats")
        {
            in_store.push(seat.as_str().expect("a seat").to_owned());
        }
    }
    at_cinema.sort();
    in_store.sort();
    println!(
        "fleet flash sale: {} of 100 customers won {} seats; oversold {oversold}",
        winners.len(),
        sold.len()
    );
    assert_eq!(oversold, 0, "{sold:?}");
    assert!(!winners.is_empty());
    assert_eq!(
        at_cinema, in_store,
        "the Cinema service and the store disagree"
    );

    // Every replica started on v1 and agrees on it.
    let v1 = fleet.serving(&fleet.hosts[0].base_url).await;
    for host in &fleet.hosts {
        assert_eq!(fleet.serving(&host.base_url).await, v1);
    }
    let load = ReadLoad::start(&url, 4);

    // Upload v2 through replica 0: stored, loaded everywhere, serving nowhere.
    let v2_bytes = std::fs::read(e2e_tests::component("booking_component_v2")).expect("v2");
    let uploaded = fleet
        .admin_ok(
            0,
            fleet
                .admin(0, reqwest::Method::POST, "/admin/versions")
                .header("content-type", "application/wasm")
                .body(v2_bytes),
        )
        .await;
    let v2 = uploaded["version"]["sha256"]
        .as_str()
        .expect("a sha256")
        .to_owned();
    assert_eq!(uploaded["version"]["role"], "candidate", "{uploaded}");

    // A 20 % canary of v2, started through replica 1, holds on every replica.
    // The call returns once the change is stored; give every replica the
    // 2 s a change may take to reach it.
    fleet
        .admin_ok(
            1,
            fleet
                .admin(1, reqwest::Method::POST, "/admin/canary")
                .json(&json!({"version": &v2[..12], "percent": 20})),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let draws = 400;
    let mut canary_shares = Vec::new();
    for host in &fleet.hosts {
        let hits = share(&fleet, &host.base_url, &v2, draws).await;
        canary_shares.push(hits as f64 * 100.0 / draws as f64);
        // 20 % of 400: binomial sd 8; allow 4 sd.
        let fleet_log: Vec<String> = host
            .log()
            .lines()
            .filter(|line| line.contains("fleet"))
            .map(str::to_owned)
            .collect();
        assert!(
            (48..=112).contains(&hits),
            "{hits} of {draws} on {}: {fleet_log:#?}",
            host.base_url
        );
    }
    let through_balancer = share(&fleet, &url, &v2, 1000).await;
    // 20 % of 1000: sd 12.6; allow 4 sd.
    assert!(
        (150..=250).contains(&through_balancer),
        "{through_balancer} of 1000 through the balancer"
    );

    // Promote through replica 2: every replica serves v2 within 2 s.
    let promoted = Instant::now();
    fleet
        .admin_ok(
            2,
            fleet.admin(2, reqwest::Method::POST, "/admin/canary/promote"),
        )
        .await;
    let rollout = fleet.converged(&v2, promoted).await;

    // `admin list` on any replica shows each replica serving v2.
    // (Each replica reports after every poll.)
    let listing_deadline = Instant::now() + Duration::from_secs(2);
    let listed = loop {
        let listed = fleet
            .admin_ok(0, fleet.admin(0, reqwest::Method::GET, "/admin/versions"))
            .await;
        let replicas = listed["fleet"]["replicas"].as_array().expect("replicas");
        let live_on_v2 = replicas
            .iter()
            .filter(|r| r["live"] == true && r["active"] == v2.as_str() && r["canary"].is_null())
            .count();
        if live_on_v2 == REPLICAS || Instant::now() > listing_deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let replicas = listed["fleet"]["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), REPLICAS, "{listed}");
    for replica in replicas {
        assert_eq!(replica["live"], true, "{listed}");
        assert_eq!(replica["active"], v2.as_str(), "{listed}");
        assert_eq!(replica["previous"], v1.as_str(), "{listed}");
        assert!(replica["canary"].is_null(), "{listed}");
    }
    assert_eq!(listed["fleet"]["deployment"]["active"], v2.as_str());

    // Roll back through replica 0: every replica serves v1 within 2 s.
    let rolled_back = Instant::now();
    fleet
        .admin_ok(0, fleet.admin(0, reqwest::Method::POST, "/admin/rollback"))
        .await;
    let rollback = fleet.converged(&v1, rolled_back).await;

    // Write access to the database alone deploys nothing: a record changed
    // without the fleet's admin token is not followed.
    fleet
        .database
        .collection::<mongodb::bson::Document>("logicDeployment")
        .update_one(
            mongodb::bson::doc! {},
            mongodb::bson::doc! { "$set": { "active": &v2, "revision": 1000_i64 } },
        )
        .await
        .expect("the record, tampered with");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for host in &fleet.hosts {
        for _ in 0..10 {
            assert_eq!(
                fleet.serving(&host.base_url).await,
                v1,
                "a forged record was followed"
            );
        }
    }

    let (sent, failed, versions) = load.finish().await;
    println!(
        "fleet rollout: canary 20 % measured {canary_shares:?} per replica, {}% through the balancer; \
         promote converged in {} ms, rollback in {} ms; load {sent} requests, {failed} failed, by version {versions:?}",
        through_balancer as f64 / 10.0,
        rollout.as_millis(),
        rollback.as_millis()
    );
    assert_eq!(failed, 0);
    assert!(rollout <= Duration::from_secs(2), "{rollout:?}");
    assert!(rollback <= Duration::from_secs(2), "{rollback:?}");
    assert!(versions.get(&v2).is_some_and(|n| *n > 0), "{versions:?}");
    fleet.subscriber.delete_exchange().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_under_load_loses_nothing_and_duplicate_deliveries_are_removed_by_id() {
    let Some(mut fleet) =
        Fleet::start(&["--seat-lock-duration", "4", "--sweep-interval", "1"]).await
    else {
        return;
    };
    const CUSTOMERS: u64 = 8;
    let customers = audit::Customers::start(&fleet.balancer.url, CUSTOMERS);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let victim = fleet.hosts.remove(1);
    victim.signal("KILL");
    let killed_at = Instant::now();
    drop(victim);
    // The load goes on through the balancer on the two others.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let users = customers.stop().await;

    // Settling the bookings the load left PENDING needs sweeps, and their
    // events need relays: only the two survivors run them now.
    let audit = audit::settle_and_audit(
        &fleet.balancer.url,
        &users,
        &fleet.peers,
        &mut fleet.subscriber,
    )
    .await;
    println!(
        "fleet crash test: replica1 SIGKILLed {} s before the audit; {audit}",
        killed_at.elapsed().as_secs()
    );
    audit.assert_nothing_lost();
    let Fleet { subscriber, .. } = fleet;
    subscriber.delete_exchange().await;
}
