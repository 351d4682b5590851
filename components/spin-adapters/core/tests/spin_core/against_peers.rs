//! The adapters' wire logic against the real reference peers, natively:
//! gRPC-Web frames over HTTP/1.1 to the tonic-web Cinema server (data and
//! trailer frames, grpc-status mapping), and the REST mapping against the
//! User and Payment servers. The transport here is reqwest (HTTP/1.1
//! only); in the component it is `wasi:http`.

use booking_adapters_core::rest::{self, ServiceUrl};
use booking_adapters_core::{cinema, grpc_web};
use booking_model::{PortError as Error, SeatStatus};
use booking_peers::PeersConfig;
use prost::Message;

async fn grpc_web_call<Req: Message, Resp: Message + Default>(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    request: &Req,
) -> Result<Resp, Error> {
    let url = ServiceUrl::parse(base).unwrap();
    let path = grpc_web::method_path(cinema::SERVICE, method);
    let mut call = client.post(format!("{}://{}{}", url.scheme, url.authority, path));
    for (name, value) in grpc_web::REQUEST_HEADERS {
        call = call.header(name, value);
    }
    let response = call
        .body(grpc_web::frame(&request.encode_to_vec()))
        .send()
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let status = response.status().as_u16();
    let headers: Vec<(String, Vec<u8>)> = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let body = response.bytes().await.unwrap();
    let message = grpc_web::unframe_response(status, &headers, &body)
        .map_err(grpc_web::Status::into_error)?;
    cinema::decode(&message)
}

#[tokio::test]
async fn grpc_web_over_http1_runs_the_seat_workflow_against_the_tonic_web_cinema() {
    let peers = booking_peers::start(PeersConfig::default()).await.unwrap();
    let client = reqwest::Client::new();
    let base = peers.cinema_url.as_str();

    let showtime: cinema::Showtime = grpc_web_call(
        &client,
        base,
        "GetShowtime",
        &cinema::GetShowtimeRequest {
            showtime_id: "showtime_456".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (showtime.id.as_str(), showtime.currency.as_str()),
        ("showtime_456", "USD")
    );

    let missing = grpc_web_call::<_, cinema::Showtime>(
        &client,
        base,
        "GetShowtime",
        &cinema::GetShowtimeRequest {
            showtime_id: "nope".into(),
        },
    )
    .await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");

    let lock_request = cinema::LockSeatsRequest {
        showtime_id: "showtime_456".into(),
        seat_numbers: vec!["C3".into(), "C4".into()],
        holder: "spin-test".into(),
        ttl_seconds: 60,
    };
    let lock: cinema::SeatLock = grpc_web_call(&client, base, "LockSeats", &lock_request)
        .await
        .unwrap();
    assert_eq!(lock.seats.iter().map(|s| s.price_cents).sum::<u64>(), 2400);
    let again =
        grpc_web_call::<_, cinema::SeatLock>(&client, base, "LockSeats", &lock_request).await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    let unknown_seat = grpc_web_call::<_, cinema::SeatLock>(
        &client,
        base,
        "LockSeats",
        &cinema::LockSeatsRequest {
            seat_numbers: vec!["Z99".into()],
            ..lock_request.clone()
        },
    )
    .await;
    assert!(
        matches!(unknown_seat, Err(Error::Rejected(_))),
        "{unknown_seat:?}"
    );

    let extend = |lock_id: &str, ttl_seconds| cinema::ExtendLockRequest {
        lock_id: lock_id.into(),
        ttl_seconds,
    };
    let extended: cinema::SeatLock =
        grpc_web_call(&client, base, "ExtendLock", &extend(&lock.lock_id, 600))
            .await
            .unwrap();
    assert!(extended.expires_at_ms > lock.expires_at_ms);
    let unknown_lock =
        grpc_web_call::<_, cinema::SeatLock>(&client, base, "ExtendLock", &extend("nope", 60))
            .await;
    assert!(
        matches!(unknown_lock, Err(Error::NotFound(_))),
        "{unknown_lock:?}"
    );

    // An empty answer message (ConfirmSeatsResponse) is a zero-length frame.
    let _: cinema::ConfirmSeatsResponse = grpc_web_call(
        &client,
        base,
        "ConfirmSeats",
        &cinema::ConfirmSeatsRequest {
            lock_id: lock.lock_id.clone(),
        },
    )
    .await
    .unwrap();
    let map: cinema::SeatMap = grpc_web_call(
        &client,
        base,
        "GetSeatMap",
        &cinema::GetSeatMapRequest {
            showtime_id: "showtime_456".into(),
        },
    )
    .await
    .unwrap();
    let c3 = map.seats.iter().find(|s| s.number == "C3").unwrap();
    assert_eq!(
        cinema::seat_status(c3.status, "C3").unwrap(),
        SeatStatus::Booked
    );
    let confirmed = grpc_web_call::<_, cinema::SeatLock>(
        &client,
        base,
        "ExtendLock",
        &extend(&lock.lock_id, 60),
    )
    .await;
    assert!(
        matches!(confirmed, Err(Error::Conflict(_))),
        "{confirmed:?}"
    );
    let _: cinema::ReleaseSeatsResponse = grpc_web_call(
        &client,
        base,
        "ReleaseSeats",
        &cinema::ReleaseSeatsRequest {
            lock_id: lock.lock_id,
        },
    )
    .await
    .unwrap();
    peers.shutdown().await.unwrap();
}

#[tokio::test]
async fn rest_mapping_against_the_user_and_payment_peers() {
    let peers = booking_peers::start(PeersConfig::default()).await.unwrap();
    let client = reqwest::Client::new();

    let users = ServiceUrl::parse(&peers.users_url).unwrap();
    let get = |segments: Vec<&str>| {
        format!(
            "{}://{}{}",
            users.scheme,
            users.authority,
            users.path(&segments)
        )
    };
    let response = client
        .get(get(vec!["users", "user_123"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        rest::parse_user(&response.bytes().await.unwrap())
            .unwrap()
            .active
    );
    let response = client
        .get(get(vec!["users", "nobody"]))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!(matches!(
        rest::users_status_error(status, &response.bytes().await.unwrap()),
        Error::NotFound(_)
    ));
    let response = client
        .get(get(vec!["auth", "me"]))
        .header("authorization", rest::bearer("forged").unwrap())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!(matches!(
        rest::auth_status_error(status, &response.bytes().await.unwrap()),
        Error::Rejected(_)
    ));

    let payments = ServiceUrl::parse(&peers.payments_url).unwrap();
    let charge = |details: &'static str, key: &'static str| {
        let body = rest::charge_json(&rest::ChargeBody {
            idempotency_key: key,
            amount_cents: 3000,
            currency: "USD",
            method: "credit_card",
            details,
            description: "spin adapter test",
        })
        .unwrap();
        client
            .post(format!(
                "{}://{}{}",
                payments.scheme,
                payments.authority,
                payments.path(&["payments"])
            ))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = charge("card_token_xyz", "spin-k1").await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let receipt = rest::parse_receipt(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(receipt.amount_cents, 3000);
    let response = charge("card_declined", "spin-k2").await.unwrap();
    let status = response.status().as_u16();
    assert!(matches!(
        rest::payments_status_error(status, &response.bytes().await.unwrap()),
        Error::Rejected(_)
    ));
    peers.shutdown().await.unwrap();
}
