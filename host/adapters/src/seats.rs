//! The `seats` port over the Cinema service's gRPC API.

use std::time::Duration;

use async_trait::async_trait;
use booking_adapters_core::{cinema, grpc};
use booking_logic::ports::{PortError, PortResult, Seats};
use booking_model::{PricedSeat, Seat, SeatLock, Showtime, Timestamp};
use cinema_grpc::cinema_service_client::CinemaServiceClient;
use cinema_grpc::{
    ConfirmSeatsRequest, ExtendLockRequest, GetSeatMapRequest, GetShowtimeRequest,
    LockSeatsRequest, ReleaseSeatsRequest,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

use crate::Adapter;
use crate::tls::TlsRoots;

#[derive(Debug, Clone)]
pub struct SeatsConfig {
    /// `http://host:port`, or the seed's `host:port` (plain HTTP/2), or
    /// `https://host:port` (TLS).
    pub url: String,
    /// Per call (the seed's API_TIMEOUT).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Trusted for an `https://` URL.
    pub tls: TlsRoots,
}

/// Every call carries the current span's trace context (`traceparent`
/// metadata), so the Cinema service continues the booking's trace.
type TracedChannel = InterceptedService<Channel, fn(Request<()>) -> Result<Request<()>, Status>>;

fn with_trace_context(mut request: Request<()>) -> Result<Request<()>, Status> {
    if let Some(traceparent) = booking_telemetry::traceparent()
        && let Ok(value) = traceparent.parse()
    {
        request
            .metadata_mut()
            .insert(booking_telemetry::traces::TRACEPARENT, value);
    }
    Ok(request)
}

pub struct GrpcSeats {
    client: CinemaServiceClient<TracedChannel>,
}

impl GrpcSeats {
    /// Connects lazily, so the host starts while the cinema is down. Must
    /// be called inside a tokio runtime.
    pub fn new(config: &SeatsConfig) -> anyhow::Result<Self> {
        let url = if config.url.contains("://") {
            config.url.clone()
        } else {
            format!("http://{}", config.url)
        };
        let mut endpoint = Endpoint::from_shared(url)?;
        if endpoint.uri().scheme_str() == Some("https") {
            let mut tls = ClientTlsConfig::new().with_webpki_roots();
            if let Some(pem) = config.tls.extra_pem() {
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(GrpcSeats {
            client: CinemaServiceClient::with_interceptor(
                channel,
                with_trace_context as fn(_) -> _,
            ),
        })
    }
}

#[async_trait]
impl Seats for GrpcSeats {
    async fn get_showtime(&self, showtime_id: &str) -> PortResult<Showtime> {
        let request = GetShowtimeRequest {
            showtime_id: showtime_id.to_owned(),
        };
        let showtime = self
            .client
            .clone()
            .get_showtime(request)
            .await
            .map_err(port_error)?
            .into_inner();
        Ok(Showtime {
            id: showtime.id,
            movie_id: showtime.movie_id,
            movie_title: showtime.movie_title,
            theater: showtime.theater,
            starts_at: showtime.starts_at_ms,
            currency: showtime.currency,
            total_seats: showtime.total_seats,
            available_seats: showtime.available_seats,
        })
    }

    async fn seat_map(&self, showtime_id: &str) -> PortResult<Vec<Seat>> {
        let request = GetSeatMapRequest {
            showtime_id: showtime_id.to_owned(),
        };
        let map = self
            .client
            .clone()
            .get_seat_map(request)
            .await
            .map_err(port_error)?
            .into_inner();
        map.seats
            .into_iter()
            .map(|seat| {
                Ok(Seat {
                    status: cinema::seat_status(seat.status, &seat.number)?,
                    number: seat.number,
                    row: seat.row,
                    price_cents: seat.price_cents,
                })
            })
            .collect()
    }

    async fn lock_seats(
        &self,
        showtime_id: &str,
        seats: &[String],
        holder: &str,
        ttl_seconds: u32,
    ) -> PortResult<SeatLock> {
        let request = LockSeatsRequest {
            showtime_id: showtime_id.to_owned(),
            seat_numbers: seats.to_vec(),
            holder: holder.to_owned(),
            ttl_seconds,
        };
        let lock = self
            .client
            .clone()
            .lock_seats(request)
            .await
            .map_err(port_error)?
            .into_inner();
        Ok(SeatLock {
            id: lock.lock_id,
            showtime_id: lock.showtime_id,
            seats: lock
                .seats
                .into_iter()
                .map(|seat| PricedSeat {
                    number: seat.number,
                    price_cents: seat.price_cents,
                })
                .collect(),
            expires_at: lock.expires_at_ms,
        })
    }

    async fn confirm_seats(&self, lock_id: &str) -> PortResult<()> {
        let request = ConfirmSeatsRequest {
            lock_id: lock_id.to_owned(),
        };
        self.client
            .clone()
            .confirm_seats(request)
            .await
            .map_err(port_error)?;
        Ok(())
    }

    async fn extend_lock(&self, lock_id: &str, ttl_seconds: u32) -> PortResult<Timestamp> {
        let request = ExtendLockRequest {
            lock_id: lock_id.to_owned(),
            ttl_seconds,
        };
        let lock = self
            .client
            .clone()
            .extend_lock(request)
            .await
            .map_err(port_error)?
            .into_inner();
        Ok(lock.expires_at_ms)
    }

    async fn release_seats(&self, lock_id: &str) -> PortResult<()> {
        let request = ReleaseSeatsRequest {
            lock_id: lock_id.to_owned(),
        };
        self.client
            .clone()
            .release_seats(request)
            .await
            .map_err(port_error)?;
        Ok(())
    }
}

/// gRPC status → port error, as for the Spin adapter's gRPC-Web calls.
fn port_error(status: Status) -> PortError {
    grpc::Status::new(
        grpc::Code::from_i32(i32::from(status.code())),
        status.message(),
    )
    .into_error()
}

#[async_trait]
impl Adapter for GrpcSeats {
    const NAME: &'static str = "cinema";
    type Config = SeatsConfig;

    async fn from_config(config: SeatsConfig) -> anyhow::Result<Self> {
        GrpcSeats::new(&config)
    }

    /// A cheap round trip: an unknown showtime answered NOT_FOUND proves
    /// the cinema is up.
    async fn health(&self) -> Result<(), String> {
        let probe = GetShowtimeRequest {
            showtime_id: "__health_probe__".into(),
        };
        match self.client.clone().get_showtime(probe).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(port_error(status).to_string()),
        }
    }
}
