//! `seats` (gRPC-Web), `users` and `payments` (REST) over outbound HTTP.

use prost::Message;
use spin_adapters_core::Error;
use spin_adapters_core::cinema::{self, SeatStatus as ProtoSeatStatus};
use spin_adapters_core::grpc_web;
use spin_adapters_core::rest::{self, TransportFailure};
use wasip2::http::types::Method;

use super::exports::cinema::booking::types::Error as WitError;
use super::exports::cinema::booking::{payments, seats, users};
use super::{Adapters, config, http, wit_error};

type WitResult<T> = Result<T, WitError>;

/// One unary gRPC-Web call to the Cinema service.
fn cinema_call<Req: Message, Resp: Message + Default>(
    method: &str,
    request: &Req,
) -> Result<Resp, Error> {
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
    .map_err(|(failure, detail)| {
        let message = format!("cinema: {detail}");
        match failure {
            TransportFailure::TimedOut => Error::Timeout(message),
            TransportFailure::NotSent | TransportFailure::Broken => Error::Unavailable(message),
        }
    })?;
    let message = grpc_web::unframe_response(response.status, &response.headers, &response.body)
        .map_err(grpc_web::Status::into_error)?;
    cinema::decode(&message)
}

impl seats::Guest for Adapters {
    fn get_showtime(showtime_id: String) -> WitResult<seats::Showtime> {
        let s: cinema::Showtime =
            cinema_call("GetShowtime", &cinema::GetShowtimeRequest { showtime_id })
                .map_err(wit_error)?;
        Ok(seats::Showtime {
            id: s.id,
            movie_id: s.movie_id,
            movie_title: s.movie_title,
            theater: s.theater,
            starts_at: s.starts_at_ms,
            currency: s.currency,
            total_seats: s.total_seats,
            available_seats: s.available_seats,
        })
    }

    fn seat_map(showtime_id: String) -> WitResult<Vec<seats::Seat>> {
        let map: cinema::SeatMap =
            cinema_call("GetSeatMap", &cinema::GetSeatMapRequest { showtime_id })
                .map_err(wit_error)?;
        map.seats
            .into_iter()
            .map(|seat| {
                let status =
                    match cinema::seat_status(seat.status, &seat.number).map_err(wit_error)? {
                        ProtoSeatStatus::Available => seats::SeatStatus::Available,
                        ProtoSeatStatus::Locked => seats::SeatStatus::Locked,
                        ProtoSeatStatus::Booked | ProtoSeatStatus::Unspecified => {
                            seats::SeatStatus::Booked
                        }
                    };
                Ok(seats::Seat {
                    number: seat.number,
                    row: seat.row,
                    price_cents: seat.price_cents,
                    status,
                })
            })
            .collect()
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
        let lock: cinema::SeatLock = cinema_call("LockSeats", &request).map_err(wit_error)?;
        Ok(seats::SeatLock {
            id: lock.lock_id,
            showtime_id: lock.showtime_id,
            seats: lock
                .seats
                .into_iter()
                .map(|seat| seats::PricedSeat {
                    number: seat.number,
                    price_cents: seat.price_cents,
                })
                .collect(),
            expires_at: lock.expires_at_ms,
        })
    }

    fn confirm_seats(lock_id: String) -> WitResult<()> {
        cinema_call::<_, cinema::ConfirmSeatsResponse>(
            "ConfirmSeats",
            &cinema::ConfirmSeatsRequest { lock_id },
        )
        .map(drop)
        .map_err(wit_error)
    }

    fn release_seats(lock_id: String) -> WitResult<()> {
        cinema_call::<_, cinema::ReleaseSeatsResponse>(
            "ReleaseSeats",
            &cinema::ReleaseSeatsRequest { lock_id },
        )
        .map(drop)
        .map_err(wit_error)
    }
}

impl users::Guest for Adapters {
    fn get_user(user_id: String) -> WitResult<users::User> {
        (|| {
            if rest::is_unaddressable(&user_id) {
                return Err(Error::NotFound(format!("users: no user {user_id:?}")));
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
            let user = rest::parse_user(&response.body)?;
            Ok(users::User {
                id: user.id,
                name: user.name,
                email: user.email,
                active: user.active,
            })
        })()
        .map_err(wit_error)
    }

    fn authenticate(token: String) -> WitResult<users::Caller> {
        (|| {
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
            let caller = rest::parse_caller(&response.body)?;
            Ok(users::Caller {
                user_id: caller.user_id,
                roles: caller.roles,
                expires_at: caller.expires_at,
            })
        })()
        .map_err(wit_error)
    }
}

impl payments::Guest for Adapters {
    fn charge(request: payments::ChargeRequest) -> WitResult<payments::Receipt> {
        (|| {
            let url = config::service_url(config::PAYMENTS_URL)?;
            let timeout = config::seconds(config::PAYMENT_TIMEOUT, 300);
            let body = serde_json_body(&rest::ChargeBody {
                idempotency_key: &request.idempotency_key,
                amount_cents: request.amount_cents,
                currency: &request.currency,
                method: &request.method,
                details: &request.details,
                description: &request.description,
            })?;
            let response = http::send(
                Method::Post,
                &url,
                &url.path(&["payments"]),
                &[
                    ("content-type", "application/json"),
                    ("accept", "application/json"),
                ],
                Some(&body),
                timeout,
            )
            .map_err(|(failure, detail)| rest::payments_transport_error(failure, &detail))?;
            if !(200..300).contains(&response.status) {
                return Err(rest::payments_status_error(response.status, &response.body));
            }
            let receipt = rest::parse_receipt(&response.body)?;
            Ok(payments::Receipt {
                transaction_id: receipt.transaction_id,
                amount_cents: receipt.amount_cents,
                currency: receipt.currency,
                charged_at: receipt.created_at_ms,
            })
        })()
        .map_err(wit_error)
    }

    fn refund(transaction_id: String) -> WitResult<payments::RefundReceipt> {
        (|| {
            if rest::is_unaddressable(&transaction_id) {
                return Err(Error::NotFound(format!(
                    "payments: no transaction {transaction_id:?}"
                )));
            }
            let url = config::service_url(config::PAYMENTS_URL)?;
            let timeout = config::seconds(config::API_TIMEOUT, 30);
            let response = http::send(
                Method::Post,
                &url,
                &url.path(&["payments", &transaction_id, "refund"]),
                &[("accept", "application/json")],
                None,
                timeout,
            )
            .map_err(|(failure, detail)| rest::payments_transport_error(failure, &detail))?;
            if !(200..300).contains(&response.status) {
                return Err(rest::payments_status_error(response.status, &response.body));
            }
            let refund = rest::parse_refund(&response.body)?;
            Ok(payments::RefundReceipt {
                refund_id: refund.refund_id,
                transaction_id: refund.transaction_id,
                amount_cents: refund.amount_cents,
            })
        })()
        .map_err(wit_error)
    }

    fn void_charge(idempotency_key: String) -> WitResult<Option<payments::Receipt>> {
        (|| {
            let url = config::service_url(config::PAYMENTS_URL)?;
            let timeout = config::seconds(config::API_TIMEOUT, 30);
            let body = rest::void_charge_json(&idempotency_key)?;
            let response = http::send(
                Method::Post,
                &url,
                &rest::void_charge_path(&url),
                &[
                    ("content-type", "application/json"),
                    ("accept", "application/json"),
                ],
                Some(&body),
                timeout,
            )
            .map_err(|(failure, detail)| rest::payments_transport_error(failure, &detail))?;
            let voided = rest::voided_charge(response.status, &response.body)?;
            Ok(voided.map(|receipt| payments::Receipt {
                transaction_id: receipt.transaction_id,
                amount_cents: receipt.amount_cents,
                currency: receipt.currency,
                charged_at: receipt.created_at_ms,
            }))
        })()
        .map_err(wit_error)
    }
}

fn serde_json_body(body: &rest::ChargeBody<'_>) -> Result<Vec<u8>, Error> {
    rest::charge_json(body)
}
