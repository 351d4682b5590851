//! A guest that loops, traps, hoards memory or answers too much fails only
//! its own request; the host keeps serving and no seat stays locked beyond
//! its TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use booking_peers::PaymentBehaviour;
use e2e_tests::process::HostProcess;
use e2e_tests::{Options, TestService, args, component, reference_peers};

/// (HTTP status, body) of `GET <path>`.
async fn get(service: &TestService, path: &str) -> (u16, String) {
    let response = service.get(path).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn assert_serves_after(service: &TestService, misbehaviour: &str) {
    let (status, body) = get(service, "/").await;
    assert_eq!(status, 200, "the host serves after {misbehaviour}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn misbehaving_requests_fail_alone_and_the_host_keeps_serving() {
    let service = Arc::new(
        TestService::start(Options {
            component: component("misbehaving_guest"),
            extra_args: args(&[
                "--request-cpu-ms",
                "300",
                "--request-memory-mb",
                "32",
                "--max-response-kb",
                "1024",
            ]),
            ..Options::default()
        })
        .await,
    );

    // A runaway request does not block others while it runs.
    let looping = {
        let service = service.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (get(&service, "/loop").await, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&service, "/").await, (200, "ok".to_owned()));
    let ((status, body), took) = looping.await.unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("\"code\":\"INTERNAL\""), "{body}");
    assert!(
        took < Duration::from_secs(5),
        "the CPU deadline took {took:?}"
    );

    for path in ["/trap", "/memory"] {
        let (status, body) = get(&service, path).await;
        assert_eq!(status, 500, "{path}: {body}");
        assert_serves_after(&service, path).await;
    }

    // A response over the cap is refused as a whole, not passed on cut.
    let (status, body) = get(&service, "/huge?mb=2").await;
    assert_eq!(status, 502);
    assert!(body.contains("\"code\":\"RESPONSE_TOO_LARGE\""), "{body}");
    let (status, body) = get(&service, "/huge?mb=0").await;
    assert_eq!((status, body.len()), (200, 0), "under the cap it passes");
    assert_serves_after(&service, "/huge").await;

    // Trapping in the middle of a mutation leaves a lock that expires.
    let (status, _) = get(&service, "/lock-then-trap?seat=E9").await;
    assert_eq!(status, 500);
    assert!(
        service
            .peers
            .cinema
            .live_locks("showtime_456")
            .iter()
            .any(|lock| lock.seats.contains(&"E9".to_owned()))
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        service.peers.cinema.live_locks("showtime_456").is_empty(),
        "the trapped request's lock outlived its TTL"
    );
}

/// A guest writing 256 KiB to stderr gets its first 16 KiB into the
/// host's log, line by line; the rest is dropped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_stderr_reaches_the_log_only_up_to_its_bound() {
    let peers = reference_peers(PaymentBehaviour::default()).await;
    let data_dir = tempfile::tempdir().unwrap();
    let misbehaving = component("misbehaving_guest");
    let host = HostProcess::start(
        env!("CARGO_BIN_EXE_e2e-host"),
        &peers,
        data_dir.path(),
        &["--component", &misbehaving.display().to_string()],
    )
    .await;
    let response = reqwest::get(format!("{}/stderr?kb=256", host.base_url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(10);
    while !host.log().contains("dropped_bytes=") {
        assert!(
            Instant::now() < deadline,
            "no drop count logged:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = host.log();
    let forwarded: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("guest line "))
        .collect();
    // 64-byte lines: 256 of them fill the 16 KiB.
    assert_eq!(forwarded.len(), 256, "{log}");
    assert!(
        forwarded[0].contains("guest line 000000 "),
        "{}",
        forwarded[0]
    );
    assert!(
        forwarded[255].contains("guest line 000255 "),
        "{}",
        forwarded[255]
    );
    assert!(log.contains("guest_stderr"), "{log}");
    assert!(
        log.contains(&format!("dropped_bytes={}", (256 - 16) << 10)),
        "{log}"
    );
}
