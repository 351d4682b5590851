//! The original service's README documents
//! (`booking_logic::testing::seed_documents`), sent as written (only the
//! booking id replaced by the real one), must work end to end. Also: the
//! public and admin health reports, liveness and readiness, GraphiQL, and
//! starting with and without `--reference-peers`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use e2e_tests::{Options, TestService, scenarios};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn the_seed_readme_documents_run_the_whole_workflow() {
    let service = TestService::start(Options::default()).await;
    scenarios::the_seed_documents_run_the_whole_workflow(&service, &service.peers).await;
    service.stop().await;
}

/// A shared service's outage makes `/health` 503 but must not take the
/// replica out of the balancer (`/health/ready`) nor get it restarted
/// (`/health/live`); the store's outage is `real_backends`'.
#[tokio::test]
async fn a_dead_user_service_degrades_health_but_not_readiness_or_liveness() {
    let service = TestService::start(Options {
        // Nothing listens on port 1.
        user_service_url: Some("http://127.0.0.1:1".to_owned()),
        ..Options::default()
    })
    .await;
    assert_eq!(
        service.health().await,
        (503, json!({"status": "degraded", "referencePeers": []}))
    );
    assert_eq!(
        service.health_at("/health/ready").await,
        (200, json!({"status": "ready"}))
    );
    assert_eq!(
        service.health_at("/health/live").await,
        (200, json!({"status": "live"}))
    );
    service.stop().await;
}

#[tokio::test]
async fn public_health_is_minimal_and_the_admin_report_names_every_dependency_and_the_version() {
    let service = TestService::start(Options::default()).await;
    let response = service.get("/health").await;
    assert_eq!(response.status(), 200);
    let logic_version = response.headers()["x-logic-version"]
        .to_str()
        .unwrap()
        .to_owned();
    let public: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        public,
        json!({"status": "healthy", "referencePeers": []}),
        "no checks, URLs or component details in public"
    );

    let anonymous = service.admin_anonymous("health").await;
    assert_eq!(anonymous.status(), 401, "the detail needs the admin token");
    let (status, health) = service.admin_health().await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(
        health["referencePeers"],
        serde_json::json!([]),
        "every URL is set: no reference peer serves"
    );
    for dependency in ["storage", "events", "cinema", "users", "payments"] {
        assert_eq!(
            health["checks"][dependency]["status"], "up",
            "{dependency}: {health}"
        );
    }
    assert_eq!(
        health["component"]["sha256"],
        service.component_sha256.as_str()
    );
    assert_eq!(logic_version, service.component_sha256);
    let data = service.data("{ logicSha256 }", serde_json::json!({})).await;
    assert_eq!(
        data["logicSha256"],
        service.component_sha256.as_str(),
        "the GraphQL field names the same version"
    );
    service.stop().await;
}

/// A User service that answers every request `200 {"status":"ok"}` and
/// counts them: the host calls it only for its health check here.
async fn counting_user_service() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut connection, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match connection.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"status":"ok"}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = connection.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_public_health_calls_share_one_probe_round() {
    let (users_url, probes) = counting_user_service().await;
    let service = Arc::new(
        TestService::start(Options {
            user_service_url: Some(users_url),
            ..Options::default()
        })
        .await,
    );
    let before = probes.load(Ordering::SeqCst);
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { service.health().await })
        })
        .collect();
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let rounds = probes.load(Ordering::SeqCst) - before;
    assert_eq!(
        rounds, 1,
        "50 concurrent /health calls probed the User service {rounds} times"
    );
}

#[tokio::test]
async fn graphiql_is_served_to_browsers() {
    let service = TestService::start(Options::default()).await;
    let response = service
        .client
        .get(format!("{}/graphql", service.base_url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("graphiql"),
        "not a GraphiQL page: {}",
        &page[..page.len().min(300)]
    );
    service.stop().await;
}

/// `booking-host` with `args` (plus a throwaway data dir and loopback
/// ports), started in-process.
async fn start_host_with(
    args: &[&str],
) -> (
    anyhow::Result<booking_host::app::RunningService>,
    tempfile::TempDir,
) {
    let data_dir = tempfile::tempdir().unwrap();
    let component = e2e_tests::component("booking_component");
    let mut argv = vec![
        "booking-host".to_owned(),
        "--listen=127.0.0.1:0".to_owned(),
        "--admin-listen=127.0.0.1:0".to_owned(),
        "--metrics-listen=127.0.0.1:0".to_owned(),
        format!("--component={}", component.display()),
        format!("--data-dir={}", data_dir.path().display()),
    ];
    argv.extend(args.iter().map(|arg| arg.to_string()));
    let config = <booking_host::config::Cli as clap::Parser>::parse_from(argv).config;
    (booking_host::app::start(config).await, data_dir)
}

#[tokio::test]
async fn without_reference_peers_every_service_url_is_required() {
    let (started, _dir) = start_host_with(&[]).await;
    let error = format!("{:#}", started.err().expect("refused without URLs"));
    for variable in [
        "CINEMA_SERVICE_URL",
        "USER_SERVICE_URL",
        "PAYMENT_SERVICE_URL",
    ] {
        assert!(error.contains(variable), "{variable} not named: {error}");
    }
    assert!(error.contains("--reference-peers"), "{error}");

    // Forgetting one variable must not quietly fake that one service.
    let (started, _dir) = start_host_with(&[
        "--cinema-service-url=http://127.0.0.1:1",
        "--user-service-url=http://127.0.0.1:1",
    ])
    .await;
    let error = format!(
        "{:#}",
        started.err().expect("refused without the Payment URL")
    );
    assert!(error.contains("PAYMENT_SERVICE_URL"), "{error}");
    assert!(!error.contains("CINEMA_SERVICE_URL"), "{error}");
    assert!(!error.contains("USER_SERVICE_URL"), "{error}");
}

#[tokio::test]
async fn reference_peers_serve_the_workflow_when_asked_for_by_name() {
    let (started, _dir) = start_host_with(&["--reference-peers", "--auth-mode=disabled"]).await;
    let service = started.expect("starts with --reference-peers");
    let client = reqwest::Client::new();
    let base_url = format!("http://{}", service.address);
    let (_, created) = e2e_tests::graphql(
        &client,
        &base_url,
        r#"mutation { createBooking(userId: "user_123", showtimeId: "showtime_456", seatNumbers: ["C3"]) { success booking { id } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        created["data"]["createBooking"]["success"], true,
        "{created}"
    );
    let health: serde_json::Value = client
        .get(format!("{base_url}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health["referencePeers"],
        json!(["cinema", "users", "payments"]),
        "{health}"
    );
    service.stop().await.unwrap();
}
