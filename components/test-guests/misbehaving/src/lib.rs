//! Implements the `booking-service` world badly on purpose. The host must
//! contain each failure to the one request that caused it:
//!
//! - `/loop`   spins forever (the CPU deadline must stop it)
//! - `/trap`   panics, which traps (panic = "abort")
//! - `/memory` allocates until the memory limit refuses
//! - `/lock-then-trap?seat=A1` locks a seat of `showtime_456` for 1 s, then
//!   traps mid-mutation (the lock's TTL must free the seat)
//! - `/huge?mb=8` streams an 8 MiB body (the response cap must cut it off)
//! - `/stderr?kb=64` writes 64 KiB of numbered lines to stderr, then
//!   answers 200 (the host must bound what reaches its log)
//! - `/graphql` answers the host's smoke query (`{ logicVersion }`), so the
//!   host accepts it like any logic version
//! - anything else answers 200 "ok"

use std::io::Write;

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "booking-service",
    with: {
        "wasi:http/types@0.2.12": wasip2::http::types,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
    },
});

use exports::cinema::booking::maintenance::{self, SweepReport};
use exports::cinema::booking::subscriptions;
use exports::wasi::http::incoming_handler;

struct Misbehaving;

export!(Misbehaving);

impl incoming_handler::Guest for Misbehaving {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        match path.split('?').next().unwrap_or_default() {
            "/loop" => {
                let mut counter = 0u64;
                loop {
                    counter = std::hint::black_box(counter.wrapping_add(1));
                }
            }
            "/trap" => panic!("deliberate trap"),
            "/memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "/lock-then-trap" => {
                let seat = path.split("seat=").nth(1).unwrap_or("A1").to_owned();
                let locked = cinema::booking::seats::lock_seats(
                    "showtime_456",
                    &[seat],
                    "misbehaving-guest",
                    1,
                );
                panic!(
                    "trapping after lock_seats answered {:?}",
                    locked.map(|lock| lock.id)
                );
            }
            "/huge" => {
                let mib: usize = path
                    .split("mb=")
                    .nth(1)
                    .and_then(|mib| mib.parse().ok())
                    .unwrap_or(8);
                respond(response_out, 200, &vec![b'x'; mib << 20]);
            }
            "/stderr" => {
                let kib: usize = path
                    .split("kb=")
                    .nth(1)
                    .and_then(|kib| kib.parse().ok())
                    .unwrap_or(64);
                let mut stderr = std::io::stderr();
                for line in 0..kib * 16 {
                    // 64 bytes a line: "guest line 000042 " and padding.
                    let _ = writeln!(stderr, "guest line {line:06} {:-<45}", "");
                }
                respond(response_out, 200, b"ok");
            }
            "/graphql" => respond(
                response_out,
                200,
                br#"{"data":{"logicVersion":"misbehaving"}}"#,
            ),
            _ => respond(response_out, 200, b"ok"),
        }
    }
}

impl maintenance::Guest for Misbehaving {
    fn sweep_expired(_limit: u32) -> Result<SweepReport, cinema::booking::types::Error> {
        Ok(SweepReport {
            expired: 0,
            skipped: 0,
            idempotency_purged: 0,
            settled: 0,
            unsettled: 0,
        })
    }
}

/// Refuses every subscription: this guest exists for the HTTP sandbox
/// tests, and a host must survive a guest that watches nothing.
impl subscriptions::Guest for Misbehaving {
    fn start(
        _request: subscriptions::SubscribeRequest,
    ) -> Result<subscriptions::Subscription, String> {
        Err(r#"[{"message":"the misbehaving guest serves no subscriptions","extensions":{"code":"INTERNAL"}}]"#.to_string())
    }

    fn project(_projection: String, _events: Vec<String>) -> Vec<String> {
        Vec::new()
    }
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let response = OutgoingResponse::new(Fields::new());
    let _ = response.set_status_code(status);
    let Ok(outgoing_body) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = outgoing_body.write() {
        // One call writes at most 4096 bytes.
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing_body, None);
}
