//! Hot swap of the logic component: zero failed requests under load while
//! versions are swapped and rolled back, canary traffic splitting, precise
//! rejection of bad candidates, the admin API's guards (token, generated
//! token file, content type, cross-site requests), the integrity of cached
//! artifacts, and what the watched directory refuses.
//!
//! v1 is `booking_component.wasm`; v2 is the same logic built with the
//! `booking-fee` feature (label `…+booking-fee`), so each response's
//! `logicVersion` shows which one answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use e2e_tests::{Options, TestService, component};
use serde_json::{Value, json};

const VERSION_QUERY: &str =
    "{ logicVersion showtimeSeats(showtimeId: \"showtime_456\") { showtime { availableSeats } } }";

fn v2_bytes() -> Vec<u8> {
    std::fs::read(component("booking_component_v2")).expect("v2 component")
}

async fn admin(
    service: &TestService,
    method: reqwest::Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut request = service.admin(method, path);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/wasm")
            .body(body);
    }
    let response = request.send().await.expect("the admin API answers");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.expect("JSON from the admin API"),
    )
}

/// Makes the version `sha256` the active one.
async fn activate(service: &TestService, sha256: &str) -> (u16, Value) {
    let path = format!("versions/{sha256}/activate");
    admin(service, reqwest::Method::POST, &path, None).await
}

async fn upload(service: &TestService, bytes: Vec<u8>) -> (u16, Value) {
    admin(service, reqwest::Method::POST, "versions", Some(bytes)).await
}

/// How the active version was obtained: `compiled` or `cached`.
async fn active_compilation(service: &TestService) -> String {
    let (status, versions) = admin(service, reqwest::Method::GET, "versions", None).await;
    assert_eq!(status, 200, "{versions}");
    assert_eq!(versions["versions"][0]["role"], "active", "{versions}");
    versions["versions"][0]["compilation"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The host's configuration on `data_dir`, against `peers`, with the admin
/// API on `admin_listen` and `extra` flags: for starts that are expected
/// to fail, or restarts.
fn config_on(
    peers: &booking_peers::RunningPeers,
    data_dir: &std::path::Path,
    admin_listen: &str,
    extra: &[&str],
) -> booking_host::config::Config {
    let component = component("booking_component").display().to_string();
    let data_dir = data_dir.display().to_string();
    let mut args = vec![
        "booking-host",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        admin_listen,
        "--metrics-listen",
        "127.0.0.1:0",
        "--component",
        &component,
        "--data-dir",
        &data_dir,
        "--cinema-service-url",
        &peers.cinema_url,
        "--user-service-url",
        &peers.users_url,
        "--payment-service-url",
        &peers.payments_url,
    ];
    args.extend_from_slice(extra);
    booking_host::config::Cli::parse_from(args).config
}

/// (x-logic-version, logicVersion label) of one query through the public API.
async fn served_by(service: &TestService) -> Result<(String, String), String> {
    let response = service
        .graphql_request(VERSION_QUERY)
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = response.status();
    let sha = response
        .headers()
        .get("x-logic-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = response.json().await.map_err(|e| format!("body: {e}"))?;
    if !status.is_success() || body.get("errors").is_some() {
        return Err(format!("{status}: {body}"));
    }
    Ok((
        sha,
        body["data"]["logicVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapping_versions_under_load_fails_no_request() {
    let service = Arc::new(TestService::start(Options::default()).await);
    let v1 = service.component_sha256.clone();
    let (status, loaded) = upload(&service, v2_bytes()).await;
    assert_eq!(status, 201, "{loaded}");
    let v2 = loaded["version"]["sha256"].as_str().unwrap().to_owned();
    assert_eq!(loaded["version"]["role"], "candidate");
    assert!(
        loaded["version"]["label"]
            .as_str()
            .unwrap()
            .ends_with("+booking-fee"),
        "{loaded}"
    );

    let running = Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (service, running) = (service.clone(), running.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut failures = Vec::new();
                while running.load(Ordering::Relaxed) {
                    match served_by(&service).await {
                        Ok(version) => seen.push(version),
                        Err(failure) => failures.push(failure),
                    }
                }
                (seen, failures)
            })
        })
        .collect();

    let started = Instant::now();
    let mut expected_active = v1.clone();
    for swap in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let next = if swap % 2 == 0 { &v2 } else { &v1 };
        let (status, body) = activate(&service, next).await;
        assert_eq!(status, 200, "swap {swap}: {body}");
        expected_active = next.clone();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = admin(&service, reqwest::Method::POST, "rollback", None).await;
    assert_eq!(status, 200, "{body}");
    let rolled_back_to = body["active"]["sha256"].as_str().unwrap().to_owned();
    assert_ne!(
        rolled_back_to, expected_active,
        "rollback returns to the version before the last swap"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::Relaxed);

    let mut all_seen = Vec::new();
    for client in clients {
        let (seen, failures) = client.await.unwrap();
        assert!(
            failures.is_empty(),
            "failed requests during swaps: {failures:?}"
        );
        all_seen.extend(seen);
    }
    assert!(
        all_seen.len() > 200,
        "only {} requests in {:?}",
        all_seen.len(),
        started.elapsed()
    );
    // Every answer is internally consistent: the header's version is the
    // one whose rule (label) produced the body.
    for (sha, label) in &all_seen {
        let is_v2 = label.ends_with("+booking-fee");
        assert_eq!(sha == &v2, is_v2, "header {sha} with label {label}");
    }
    let v2_share = all_seen.iter().filter(|(sha, _)| sha == &v2).count();
    assert!(
        v2_share > 0 && v2_share < all_seen.len(),
        "both versions served"
    );
    assert_eq!(served_by(&service).await.unwrap().0, rolled_back_to);

    // The price rule follows the version: v2 adds a 1.50 fee.
    let booking_fee = |service: Arc<TestService>, seat: &'static str| async move {
        let data = service
            .data(
                "mutation($n: [String!]!) { createBooking(userId: \"user_123\", showtimeId: \"showtime_789\", seatNumbers: $n) { booking { totalCents } } }",
                json!({"n": [seat]}),
            )
            .await;
        data["createBooking"]["booking"]["totalCents"]
            .as_u64()
            .unwrap()
    };
    activate(&service, &v1).await;
    let v1_total = booking_fee(service.clone(), "B1").await;
    activate(&service, &v2).await;
    let v2_total = booking_fee(service.clone(), "B2").await;
    assert_eq!(v2_total, v1_total + 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_takes_its_share_and_abort_returns_to_zero() {
    let service = TestService::start(Options::default()).await;
    let v1 = service.component_sha256.clone();
    let (_, loaded) = upload(&service, v2_bytes()).await;
    let v2 = loaded["version"]["sha256"].as_str().unwrap().to_owned();

    let canary = json!({"version": &v2[..12], "percent": 20})
        .to_string()
        .into_bytes();
    let response = service
        .admin(reqwest::Method::POST, "canary")
        .header("content-type", "application/json")
        .body(canary)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let mut on_canary = 0;
    for _ in 0..1000 {
        let (sha, _) = served_by(&service).await.unwrap();
        assert!(sha == v1 || sha == v2);
        on_canary += usize::from(sha == v2);
    }
    // Binomial(1000, 0.2): mean 200, sd ~12.6; 4 sd either side.
    assert!(
        (150..=250).contains(&on_canary),
        "canary got {on_canary} of 1000"
    );
    let (_, health) = service.admin_health().await;
    assert_eq!(health["canary"]["percent"], 20);

    let (status, _) = admin(&service, reqwest::Method::POST, "canary/abort", None).await;
    assert_eq!(status, 200);
    for _ in 0..200 {
        assert_eq!(
            served_by(&service).await.unwrap().0,
            v1,
            "no canary traffic after abort"
        );
    }
    let (status, body) = admin(&service, reqwest::Method::POST, "canary/promote", None).await;
    assert_eq!(status, 409, "nothing to promote: {body}");
}

#[tokio::test]
async fn bad_candidates_are_rejected_precisely_and_the_active_version_keeps_serving() {
    let service = TestService::start(Options::default()).await;
    let v1 = service.component_sha256.clone();
    let v1_bytes = std::fs::read(component("booking_component")).unwrap();
    let empty_component = b"\0asm\x0d\0\x01\0".to_vec();
    let unknown_import =
        wat::parse_str(r#"(component (import "cinema:booking/ticket-printer@0.1.0" (instance (export "print" (func)))))"#)
            .unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "text",
            b"definitely not wasm".to_vec(),
            "not a WebAssembly file",
        ),
        (
            "core module",
            b"\0asm\x01\0\0\0".to_vec(),
            "core WebAssembly module",
        ),
        (
            "truncated",
            v1_bytes[..v1_bytes.len() / 2].to_vec(),
            "does not compile",
        ),
        (
            "no exports",
            empty_component,
            "missing export: wasi:http/incoming-handler",
        ),
        (
            "unknown import",
            unknown_import,
            "cinema:booking/ticket-printer@0.1.0",
        ),
        ("huge", vec![0u8; (64 << 20) + 1], "limit"),
    ];
    for (name, bytes, expected) in cases {
        let (status, body) = upload(&service, bytes).await;
        assert_eq!(status, 422, "{name}: {body}");
        assert_eq!(
            body["error"]["code"], "COMPONENT_REJECTED",
            "{name}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{name}: {message:?} should mention {expected:?}"
        );
        assert_eq!(
            served_by(&service).await.unwrap().0,
            v1,
            "{name} disturbed the active version"
        );
    }
    let (_, versions) = admin(&service, reqwest::Method::GET, "versions", None).await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );

    let (status, body) = admin(
        &service,
        reqwest::Method::POST,
        "versions/ffff/activate",
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("UNKNOWN_VERSION"))
    );
    let (status, _) = admin(&service, reqwest::Method::POST, "rollback", None).await;
    assert_eq!(status, 409, "nothing to roll back to");
}

const ADMIN_TOKEN: &str = "s3cret-admin-token-of-40-characters-long";

#[tokio::test]
async fn the_admin_api_requires_its_token() {
    let service = TestService::start(Options::with_args(&["--admin-token", ADMIN_TOKEN])).await;
    let versions = format!("{}/versions", service.admin_url);
    let anonymous = service.admin_anonymous("versions").await;
    assert_eq!(anonymous.status(), 401);
    let list_with = |token: &str| {
        let request = service.client.get(&versions).bearer_auth(token);
        async move { request.send().await.expect("the admin API answers") }
    };
    for wrong in [
        &ADMIN_TOKEN[..39],
        "s3cret-admin-token-of-40-characters-lonG",
        "x",
    ] {
        let response = list_with(wrong).await;
        assert_eq!(response.status(), 401, "{wrong:?}");
    }
    let upload = service
        .client
        .post(&versions)
        .header("content-type", "application/wasm")
        .body(v2_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 401, "uploads need the token too");
    let right = list_with(ADMIN_TOKEN).await;
    assert_eq!(right.status(), 200);
    let body: Value = right.json().await.unwrap();
    assert_eq!(body["versions"][0]["role"], "active");
}

#[tokio::test]
async fn a_short_admin_token_is_refused_at_start_on_any_address() {
    let service = TestService::start(Options::default()).await;
    for address in ["127.0.0.1:0", "0.0.0.0:0"] {
        let data_dir = tempfile::tempdir().unwrap();
        let config = config_on(
            &service.peers,
            data_dir.path(),
            address,
            &["--admin-token", "s3cret-admin-token"],
        );
        let error = booking_host::app::start(config)
            .await
            .err()
            .expect("refused");
        assert!(format!("{error:#}").contains("at least 32"), "{error:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_admin_token_a_generated_private_token_guards_the_api_and_the_cli_reads_it() {
    use std::os::unix::fs::PermissionsExt;
    let data_dir = tempfile::tempdir().unwrap();
    let service = TestService::start(Options {
        data_dir: Some(data_dir.path().to_owned()),
        ..Options::default()
    })
    .await;
    let token_file = data_dir.path().join("admin-token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let token = service.admin_token.clone().unwrap();
    assert_eq!(token.len(), 64, "256 bits in hex: {token}");
    let anonymous = service.admin_anonymous("versions").await;
    assert_eq!(anonymous.status(), 401, "no token, no admin API");

    let cli = |extra_env: Option<(&'static str, &'static str)>| {
        let admin_address = service.admin_url.trim_end_matches("/admin").to_owned();
        let data_dir = data_dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_e2e-host"));
            command
                .arg("--data-dir")
                .arg(&data_dir)
                .args(["admin", "--url", &admin_address, "list"])
                .env_remove("ADMIN_TOKEN")
                .env_remove("ADMIN_TOKEN_FILE")
                .env_remove("ADMIN_URL");
            if let Some((name, value)) = extra_env {
                command.env(name, value);
            }
            command.output().expect("running the admin CLI")
        })
    };
    let listed = cli(None).await.unwrap();
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(stdout.contains(&service.component_sha256), "{stdout}");
    let overridden = cli(Some(("ADMIN_TOKEN", ADMIN_TOKEN))).await.unwrap();
    assert!(
        !overridden.status.success()
            && String::from_utf8_lossy(&overridden.stdout).contains("UNAUTHENTICATED"),
        "ADMIN_TOKEN wins over the file"
    );

    // Later starts reuse the file; one others may read is refused.
    let peers_config =
        |extra: &[&str]| config_on(&service.peers, data_dir.path(), "127.0.0.1:0", extra);
    let restarted = booking_host::app::start(peers_config(&[])).await.unwrap();
    restarted.stop().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        token,
        "the token is reused"
    );
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = booking_host::app::start(peers_config(&[]))
        .await
        .err()
        .expect("refused");
    assert!(format!("{error:#}").contains("chmod 600"), "{error:#}");
}

#[tokio::test]
async fn an_upload_without_the_wasm_content_type_is_refused() {
    let service = TestService::start(Options::default()).await;
    for content_type in [None, Some("application/octet-stream"), Some("text/plain")] {
        let mut request = service.admin(reqwest::Method::POST, "versions?activate=true");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.body(v2_bytes()).send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNSUPPORTED_MEDIA_TYPE");
    }
    let (_, versions) = admin(&service, reqwest::Method::GET, "versions", None).await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );
}

#[tokio::test]
async fn cross_site_requests_are_refused_and_load_nothing() {
    let service = TestService::start(Options::default()).await;
    let v1 = service.component_sha256.clone();
    let own_origin = service.admin_url.trim_end_matches("/admin").to_owned();
    // With the right token even: a browser page must not reach the API.
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let response = service
            .admin(reqwest::Method::POST, "versions?activate=true")
            .header("content-type", "application/wasm")
            .header(name, value)
            .body(v2_bytes())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{name}: {value}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "CROSS_SITE_REQUEST", "{body}");
    }
    let (_, versions) = admin(&service, reqwest::Method::GET, "versions", None).await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );
    assert_eq!(served_by(&service).await.unwrap().0, v1);

    let same_origin = service
        .admin(reqwest::Method::GET, "versions")
        .header("origin", own_origin.as_str())
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 200, "its own origin is fine");
}

/// The cached artifact of `sha256` in `data_dir`.
fn cached_artifact(data_dir: &std::path::Path, sha256: &str) -> std::path::PathBuf {
    std::fs::read_dir(data_dir.join("component-cache"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with(sha256) && name.ends_with(".cwasm")
        })
        .unwrap_or_else(|| panic!("no cached artifact for {sha256}"))
}

#[tokio::test]
async fn a_tampered_cached_artifact_is_recompiled_not_loaded() {
    let data_dir = tempfile::tempdir().unwrap();
    let on_data_dir = || Options {
        data_dir: Some(data_dir.path().to_owned()),
        ..Options::default()
    };
    let service = TestService::start(on_data_dir()).await;
    let v1 = service.component_sha256.clone();
    assert_eq!(active_compilation(&service).await, "compiled");
    let (status, loaded) = upload(&service, v2_bytes()).await;
    assert_eq!(status, 201, "{loaded}");
    let v2 = loaded["version"]["sha256"].as_str().unwrap().to_owned();
    service.stop().await;

    // A valid artifact of another component under v1's name.
    std::fs::copy(
        cached_artifact(data_dir.path(), &v2),
        cached_artifact(data_dir.path(), &v1),
    )
    .unwrap();
    let service = TestService::start(on_data_dir()).await;
    assert_eq!(active_compilation(&service).await, "compiled");
    let (sha, label) = served_by(&service).await.unwrap();
    assert_eq!(sha, v1);
    assert!(
        !label.ends_with("+booking-fee"),
        "v2's code served as v1: {label}"
    );
    service.stop().await;

    // The recompiled artifact is trusted again.
    let service = TestService::start(on_data_dir()).await;
    assert_eq!(active_compilation(&service).await, "cached");
    service.stop().await;

    // One byte changed.
    let artifact = cached_artifact(data_dir.path(), &v1);
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&artifact, bytes).unwrap();
    let service = TestService::start(on_data_dir()).await;
    assert_eq!(active_compilation(&service).await, "compiled");
    served_by(&service).await.unwrap();

    // A cache directory others may write is refused.
    use std::os::unix::fs::PermissionsExt;
    let cache_dir = data_dir.path().join("component-cache");
    std::fs::set_permissions(&cache_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let error = booking_host::app::start(config_on(
        &service.peers,
        data_dir.path(),
        "127.0.0.1:0",
        &[],
    ))
    .await
    .err()
    .expect("refused");
    assert!(
        format!("{error:#}").contains("component cache"),
        "{error:#}"
    );
    service.stop().await;
}

#[tokio::test]
async fn the_watched_directory_ignores_symlinks_fifos_and_oversize_files_and_keeps_deploying() {
    let watched = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let service = TestService::start(watching(watched.path())).await;
    let v1 = service.component_sha256.clone();
    let outside = elsewhere.path().join("v2.wasm");
    std::fs::write(&outside, v2_bytes()).unwrap();
    std::os::unix::fs::symlink(&outside, watched.path().join("linked.wasm")).unwrap();
    let fifo = watched.path().join("pipe.wasm");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    std::fs::File::create(watched.path().join("huge.wasm"))
        .unwrap()
        .set_len((64 << 20) + 1)
        .unwrap();

    // A few polls: none of them is deployed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(served_by(&service).await.unwrap().0, v1);
    let (_, versions) = admin(&service, reqwest::Method::GET, "versions", None).await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );

    // The watch did not block: a regular file still deploys.
    std::fs::write(watched.path().join("v2.wasm"), v2_bytes()).unwrap();
    wait_until_v2_serves(&service).await;
    let (_, versions) = admin(&service, reqwest::Method::GET, "versions", None).await;
    let source = versions["versions"][0]["source"].as_str().unwrap();
    assert!(source.ends_with("/v2.wasm"), "{versions}");
    service.stop().await;
}

#[tokio::test]
async fn a_component_dropped_into_the_watched_directory_is_deployed() {
    let watched = tempfile::tempdir().unwrap();
    let service = TestService::start(watching(watched.path())).await;
    // A broken file is refused and changes nothing.
    std::fs::write(watched.path().join("broken.wasm"), b"not wasm").unwrap();
    std::fs::write(watched.path().join("v2.wasm"), v2_bytes()).unwrap();

    wait_until_v2_serves(&service).await;
    let (_, versions) = admin(&service, reqwest::Method::GET, "versions", None).await;
    let versions = versions["versions"].as_array().unwrap();
    assert_eq!(
        versions.len(),
        2,
        "the broken file is not a version: {versions:?}"
    );
    assert!(versions[0]["source"].as_str().unwrap().ends_with("v2.wasm"));
    assert_eq!(versions[1]["role"], "previous");
}

/// A host that deploys (and activates) what lands in `dir`.
fn watching(dir: &std::path::Path) -> Options {
    let dir = dir.display().to_string();
    Options::with_args(&["--watch-dir", &dir, "--watch-activate", "true"])
}

/// Polls until v2 answers (for at most 20 s): the watch deployed it.
async fn wait_until_v2_serves(service: &TestService) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut served = served_by(service).await.unwrap();
    while !served.1.ends_with("+booking-fee") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        served = served_by(service).await.unwrap();
    }
    assert!(
        served.1.ends_with("+booking-fee"),
        "v2 was not activated: {served:?}"
    );
}

/// One HTTP/1.1 request over the Unix socket at `path`: the raw answer.
async fn over_unix_socket(path: &std::path::Path, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(path).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn the_admin_api_also_serves_a_private_unix_socket_with_the_token() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("admin.sock");
    let socket_arg = socket.display().to_string();
    let service = TestService::start(Options::with_args(&["--admin-socket", &socket_arg])).await;
    let metadata = std::fs::symlink_metadata(&socket).unwrap();
    assert!(metadata.file_type().is_socket());
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);

    let request = |authorization: &str| {
        format!(
            "GET /admin/versions HTTP/1.1\r\nhost: localhost\r\n{authorization}connection: close\r\n\r\n"
        )
    };
    let anonymous = over_unix_socket(&socket, &request("")).await;
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
    let token = service.admin_token.clone().unwrap();
    let listed = over_unix_socket(
        &socket,
        &request(&format!("authorization: Bearer {token}\r\n")),
    )
    .await;
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
    assert!(listed.contains(&service.component_sha256), "{listed}");
    service.stop().await;
}
