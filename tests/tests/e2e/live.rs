//! Live updates as real clients see them: the `graphql-ws` and
//! `graphql-sse` npm clients (`tests/browser/subscriptions.mjs`), two
//! pages of the booking page in headless Chromium
//! (`tests/browser/booking-page.mjs`), and a subscriber on one host of a
//! MongoDB + RabbitMQ pair seeing a booking made on the other. Each
//! script prints one JSON line, which these tests check.

use std::process::Command;

use e2e_tests::{Options, TestService, args};
use serde_json::Value;
use test_support::{service_url, unique};

use crate::graphiql_browser::{browser_dir, browser_ready};

/// Runs `node tests/browser/<script> <argument>` with `env`; its JSON.
async fn node(script: &str, argument: &str, env: Vec<(&'static str, String)>) -> Value {
    let script = browser_dir().join(script);
    let argument = argument.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .arg(&argument)
            .envs(env)
            .output()
            .expect("running node")
    })
    .await
    .expect("the node script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let result: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no result ({}):\n{stdout}\n{stderr}", output.status));
    assert!(
        output.status.success() && result["ok"] == true,
        "{result}\n{stderr}"
    );
    result
}

fn codes(value: &Value) -> Vec<&str> {
    value["codes"]
        .as_array()
        .map(|codes| codes.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_ws_and_graphql_sse_clients_get_snapshots_changes_and_refusals() {
    if !browser_ready().await {
        return;
    }
    let service = TestService::start(Options {
        auth_required: true,
        ..Options::default()
    })
    .await;
    let env = || vec![("BOOKING_URL", service.base_url.clone())];

    // Someone else's booking turns the subscriber's seats LOCKED, and a
    // declined card frees them; over SSE a paid one turns them BOOKED.
    for scenario in ["ws-seat-map", "sse-seat-map"] {
        let result = node("subscriptions.mjs", scenario, env()).await;
        assert_eq!(result["snapshotSeats"], 50, "{result}");
        assert_eq!(result["declined"]["lockedMessages"], 1, "{result}");
        assert_eq!(result["declined"]["availableMessages"], 1, "{result}");
        if scenario == "sse-seat-map" {
            assert_eq!(result["paid"]["bookedMessages"], 1, "{result}");
        }
    }

    // The owner follows PENDING → (extended) → CONFIRMED; another user,
    // and nobody, are refused with the query's own codes.
    let result = node("subscriptions.mjs", "ws-booking-status", env()).await;
    let statuses: Vec<&str> = result["ownerMessages"]
        .as_array()
        .expect("the owner's messages")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(statuses.first(), Some(&"PENDING"), "{result}");
    assert_eq!(statuses.last(), Some(&"CONFIRMED"), "{result}");
    assert!(
        result["extendedLockExpiresAt"].as_str() > result["initialLockExpiresAt"].as_str(),
        "the extension moved lockExpiresAt: {result}"
    );
    assert_eq!(codes(&result["wsForbidden"]), ["FORBIDDEN"], "{result}");
    assert_eq!(
        codes(&result["wsUnauthenticated"]),
        ["UNAUTHENTICATED"],
        "{result}"
    );
    assert_eq!(codes(&result["sseForbidden"]), ["FORBIDDEN"], "{result}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_limits_refuse_close_silent_connections_and_drop_slow_consumers() {
    if !browser_ready().await {
        return;
    }
    let service = TestService::start(Options {
        auth_required: true,
        extra_args: args(&["--subscription-init-timeout-ms", "1000"]),
        ..Options::default()
    })
    .await;
    let result = node(
        "subscriptions.mjs",
        "ws-limits",
        vec![
            ("BOOKING_URL", service.base_url.clone()),
            ("INIT_TIMEOUT_MS", "1000".to_owned()),
        ],
    )
    .await;
    assert_eq!(result["snapshots"], 10, "{result}");
    assert_eq!(
        codes(&result["overLimit"]),
        ["TOO_MANY_SUBSCRIPTIONS"],
        "{result}"
    );
    assert_eq!(result["overLimit"]["othersStillOpen"], true, "{result}");
    assert_eq!(result["initTimeout"]["code"], 4408, "{result}");
    assert_eq!(result["slowConsumer"]["close"]["code"], 1013, "{result}");
    let metrics = reqwest::get(&service.metrics_url)
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics");
    let dropped: f64 = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(r#"booking_live_dropped_total{reason="slow_consumer"} "#)
        })
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no slow-consumer drops counted:\n{metrics}"));
    assert!(dropped >= 1.0, "{dropped}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_is_limited_across_connections_and_silent_connections_are_closed() {
    if !browser_ready().await {
        return;
    }
    let service = TestService::start(Options {
        auth_required: true,
        extra_args: args(&[
            "--subscriptions-per-user",
            "3",
            "--subscription-keepalive-seconds",
            "1",
            "--subscription-idle-seconds",
            "2",
        ]),
        ..Options::default()
    })
    .await;
    let result = node(
        "subscriptions.mjs",
        "ws-user-limit-and-idle",
        vec![
            ("BOOKING_URL", service.base_url.clone()),
            ("PER_USER", "3".to_owned()),
            ("IDLE_MS", "2000".to_owned()),
        ],
    )
    .await;
    assert_eq!(
        codes(&result["perUser"]),
        ["TOO_MANY_SUBSCRIPTIONS"],
        "{result}"
    );
    assert_eq!(result["perUser"]["freedByLeaving"], true, "{result}");
    assert_eq!(result["idle"]["code"], 1001, "{result}");
    assert_eq!(result["idle"]["answeringClientsStayed"], true, "{result}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_booking_pages_see_each_others_holds_payments_and_declines_live() {
    if !browser_ready().await {
        return;
    }
    let service = TestService::start(Options {
        auth_required: true,
        ..Options::default()
    })
    .await;
    let result = node(
        "booking-page.mjs",
        "",
        vec![("BOOKING_URL", service.base_url.clone())],
    )
    .await;
    for figure in ["lockedAfterMs", "freedAfterMs", "bookedAfterMs"] {
        let after = result[figure].as_f64().expect(figure);
        assert!(after <= 1000.0, "{figure} = {after} ms: {result}");
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_host_sees_a_booking_made_on_another() {
    let (Some(mongodb_url), Some(rabbitmq_url)) = (
        service_url("TEST_MONGODB_URL"),
        service_url("TEST_RABBITMQ_URL"),
    ) else {
        return;
    };
    if !browser_ready().await {
        return;
    }
    let (database, exchange) = (unique("live"), unique("live.booking.events"));
    let options = || Options {
        auth_required: true,
        extra_args: args(&[
            "--mongodb-url",
            &mongodb_url,
            "--mongodb-database",
            &database,
            "--rabbitmq-url",
            &rabbitmq_url,
            "--rabbitmq-exchange",
            &exchange,
        ]),
        ..Options::default()
    };
    let first = TestService::start(options()).await;
    let second = first.second_host(options()).await;
    let result = node(
        "subscriptions.mjs",
        "two-hosts",
        vec![
            ("BOOKING_URL", first.base_url.clone()),
            ("BOOKING_URL_B", second.base_url.clone()),
        ],
    )
    .await;
    eprintln!("two hosts: {result}");
    second.stop().await;
    first.stop().await;
}
