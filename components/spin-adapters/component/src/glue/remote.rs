//! `seats` (gRPC-Web), `users` and `payments` (REST) over outbound HTTP.
//! The messages, bodies and error maps are `booking_adapters_core`'s (the
//! host's adapters apply the same); answers become the model's records,
//! and those their WIT form through the generated conversions.

use booking_adapters_core::{cinema, grpc_web, rest};
use booking_model::{PortError, PortResult};
use prost::Message;
use wasip2::http::types::Method;

use super::exports::cinema::booking::{payments, seats, users};
use super::{Adapters, WitResult, config, http, wit, wit_list};

/// One unary gRPC-Web call to the Cinema service.
fn cinema_call<Req: Message, Resp: Message + Default>(
    method: &str,
    request: &Req,
) -> PortResult<Resp> {
    let url = config::service_url(config::CINEMA_URL)?;
    let timeout = config::seconds(config::API_TIMEOUT, 30);
    let path = format!(
        "{}{}",
        url.path(&[]).trim_end_matches('/'),
        grpc_web::method_path(cinema::SERVICE, method)
    );
    let body = grpc_web::frame(&request.encode_to_vec());
    let response = http::send(
        Method::Post,
        &url,
        &path,
        &grpc_web::REQUEST_HEADERS,
        Some(&body),
        timeout,
    )
    .map_err(|(failure, detail)| rest::transport_error("cinema", failure, &detail))?;
    let message = grpc_web::unframe_response(response.status, &response.headers, &response.body)
        .map_err(grpc_web::Status::into_error)?;
    cinema::decode(&message)
}

impl seats::Guest for Adapters {
    fn get_showtime(showtime_id: String) -> WitResult<seats::Showtime> {
        wit(cinema_call::<_, cinema::Showtime>(
            "GetShowtime",
            &cinema::GetShowtimeRequest { showtime_id },
        )
        .map(booking_model::Showtime::from))
    }

    fn seat_map(showtime_id: String) -> WitResult<Vec<seats::Seat>> {
        wit_list((|| {
            let map: cinema::SeatMap =
                cinema_call("GetSeatMap", &cinema::GetSeatMapRequest { showtime_id })?;
            map.seats
                .into_iter()
                .map(booking_model::Seat::try_from)
                .collect::<PortResult<Vec<_>>>()
        })())
    }

    fn lock_seats(
        showtime_id: String,
        seat_numbers: Vec<String>,
        holder: String,
        ttl_seconds: u32,
    ) -> WitResult<seats::SeatLock> {
        let request = cinema::LockSeatsRequest {
            showtime_id,
            seat_numbers,
            holder,
            ttl_seconds,
        };
        wit(cinema_call::<_, cinema::SeatLock>("LockSeats", &request)
            .map(booking_model::SeatLock::from))
    }

    fn confirm_seats(lock_id: String) -> WitResult<()> {
        wit(cinema_call::<_, cinema::ConfirmSeatsResponse>(
            "ConfirmSeats",
            &cinema::ConfirmSeatsRequest { lock_id },
        )
        .map(drop))
    }

    fn extend_lock(lock_id: String, ttl_seconds: u32) -> WitResult<seats::Timestamp> {
        wit(cinema_call::<_, cinema::SeatLock>(
            "ExtendLock",
            &cinema::ExtendLockRequest {
                lock_id,
                ttl_seconds,
            },
        )
        .map(|lock| lock.expires_at_ms))
    }

    fn release_seats(lock_id: String) -> WitResult<()> {
        wit(cinema_call::<_, cinema::ReleaseSeatsResponse>(
            "ReleaseSeats",
            &cinema::ReleaseSeatsRequest { lock_id },
        )
        .map(drop))
    }
}

impl users::Guest for Adapters {
    fn get_user(user_id: String) -> WitResult<users::User> {
        wit((|| {
            if rest::is_unaddressable(&user_id) {
                return Err(PortError::NotFound(format!("users: no user {user_id:?}")));
            }
            let url = config::service_url(config::USERS_URL)?;
            let timeout = config::seconds(config::API_TIMEOUT, 30);
            let response = http::send(
                Method::Get,
                &url,
                &url.path(&["users", &user_id]),
                &[("accept", "application/json")],
                None,
                timeout,
            )
            .map_err(|(failure, detail)| rest::users_transport_error(failure, &detail))?;
            if !(200..300).contains(&response.status) {
                return Err(rest::users_status_error(response.status, &response.body));
            }
            rest::parse_user(&response.body).map(booking_model::User::from)
        })())
    }

    fn authenticate(token: String) -> WitResult<users::Caller> {
        wit((|| {
            let authorization = rest::bearer(&token)?;
            let url = config::service_url(config::USERS_URL)?;
            let timeout = config::seconds(config::API_TIMEOUT, 30);
            let response = http::send(
                Method::Get,
                &url,
                &url.path(&["auth", "me"]),
                &[
                    ("accept", "application/json"),
                    ("authorization", &authorization),
                ],
                None,
                timeout,
            )
            .map_err(|(failure, detail)| rest::users_transport_error(failure, &detail))?;
            if !(200..300).contains(&response.status) {
                return Err(rest::auth_status_error(response.status, &response.body));
            }
            rest::parse_caller(&response.body).map(booking_model::Caller::from)
        })())
    }
}

/// A POST to the Payment service, its answer's status checked.
fn payments_post(
    segments: &[&str],
    body: Option<&[u8]>,
    timeout: std::time::Duration,
) -> PortResult<http::Response> {
    let url = config::service_url(config::PAYMENTS_URL)?;
    let mut headers = vec![("accept", "application/json")];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    http::send(
        Method::Post,
        &url,
        &url.path(segments),
        &headers,
        body,
        timeout,
    )
    .map_err(|(failure, detail)| rest::payments_transport_error(failure, &detail))
}

impl payments::Guest for Adapters {
    fn charge(request: payments::ChargeRequest) -> WitResult<payments::Receipt> {
        wit((|| {
            let request = booking_model::ChargeRequest::from(request);
            let body = rest::charge_json(&rest::ChargeBody::of(&request))?;
            let timeout = config::seconds(config::PAYMENT_TIMEOUT, 300);
            let response = payments_post(&["payments"], Some(&body), timeout)?;
            if !(200..300).contains(&response.status) {
                return Err(rest::payments_status_error(response.status, &response.body));
            }
            rest::parse_receipt(&response.body).map(booking_model::Receipt::from)
        })())
    }

    fn refund(transaction_id: String) -> WitResult<payments::RefundReceipt> {
        wit((|| {
            if rest::is_unaddressable(&transaction_id) {
                return Err(PortError::NotFound(format!(
                    "payments: no transaction {transaction_id:?}"
                )));
            }
            let timeout = config::seconds(config::API_TIMEOUT, 30);
            let response = payments_post(&["payments", &transaction_id, "refund"], None, timeout)?;
            if !(200..300).contains(&response.status) {
                return Err(rest::payments_status_error(response.status, &response.body));
            }
            rest::parse_refund(&response.body).map(booking_model::RefundReceipt::from)
        })())
    }

    fn void_charge(idempotency_key: String) -> WitResult<Option<payments::Receipt>> {
        (|| {
            let body = rest::void_charge_json(&idempotency_key)?;
            let timeout = config::seconds(config::API_TIMEOUT, 30);
            let response = payments_post(&["payments", "void"], Some(&body), timeout)?;
            rest::voided_charge(response.status, &response.body)
        })()
        .map(|voided| voided.map(|receipt| booking_model::Receipt::from(receipt).into()))
        .map_err(Into::into)
    }
}
