//! The Cinema service's reference server: `proto/cinema.proto` over an
//! in-memory seat inventory.

mod inventory;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cinema_grpc::cinema_service_server::{CinemaService, CinemaServiceServer};
use cinema_grpc::{
    ConfirmSeatsRequest, ConfirmSeatsResponse, ExtendLockRequest, GetSeatMapRequest,
    GetShowtimeRequest, LockSeatsRequest, ReleaseSeatsRequest, ReleaseSeatsResponse, SeatLock,
    SeatMap, Showtime,
};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::catalog;
use crate::clock::now_ms;
use crate::traces::SeenTraces;
use inventory::{Inventory, InventoryError};

pub use inventory::Lock;

/// Shared handle on the cinema's state: the server uses it, tests inspect
/// it. One mutex over the whole inventory makes every RPC atomic.
#[derive(Clone)]
pub struct CinemaState {
    inventory: Arc<Mutex<Inventory>>,
}

impl CinemaState {
    pub fn new(showtimes: Vec<catalog::Showtime>) -> Self {
        CinemaState {
            inventory: Arc::new(Mutex::new(Inventory::new(showtimes))),
        }
    }

    /// Booked seat numbers of the showtime, in seat-map order.
    pub fn booked_seats(&self, showtime_id: &str) -> Vec<String> {
        self.inventory().booked_seats(showtime_id)
    }

    /// Unconfirmed locks of the showtime that have not expired.
    pub fn live_locks(&self, showtime_id: &str) -> Vec<Lock> {
        self.inventory().live_locks(showtime_id, now_ms())
    }

    fn inventory(&self) -> MutexGuard<'_, Inventory> {
        // No operation panics half-way, so a poisoned lock still holds
        // consistent state.
        self.inventory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The tonic service over a `CinemaState`.
/// The Cinema service, noting the trace id each call carries (gRPC
/// metadata `traceparent`).
pub fn service(
    state: CinemaState,
    traces: SeenTraces,
) -> InterceptedService<CinemaServiceServer<Cinema>, impl tonic::service::Interceptor + Clone> {
    let note = move |request: tonic::Request<()>| {
        let traceparent = request.metadata().get("traceparent");
        traces.note("cinema", traceparent.and_then(|value| value.to_str().ok()));
        Ok(request)
    };
    CinemaServiceServer::with_interceptor(Cinema { state }, note)
}

pub struct Cinema {
    state: CinemaState,
}

#[tonic::async_trait]
impl CinemaService for Cinema {
    async fn get_showtime(
        &self,
        request: Request<GetShowtimeRequest>,
    ) -> Result<Response<Showtime>, Status> {
        let id = request.into_inner().showtime_id;
        let showtime = self.state.inventory().showtime(&id, now_ms())?;
        Ok(Response::new(showtime))
    }

    async fn get_seat_map(
        &self,
        request: Request<GetSeatMapRequest>,
    ) -> Result<Response<SeatMap>, Status> {
        let id = request.into_inner().showtime_id;
        let map = self.state.inventory().seat_map(&id, now_ms())?;
        Ok(Response::new(map))
    }

    async fn lock_seats(
        &self,
        request: Request<LockSeatsRequest>,
    ) -> Result<Response<SeatLock>, Status> {
        let req = request.into_inner();
        let result = self.state.inventory().lock(
            &req.showtime_id,
            &req.seat_numbers,
            &req.holder,
            req.ttl_seconds,
            now_ms(),
        );
        match &result {
            Ok(lock) => tracing::debug!(
                lock_id = %lock.lock_id, showtime = %req.showtime_id,
                seats = ?req.seat_numbers, holder = %req.holder, "seats locked"
            ),
            Err(error) => tracing::debug!(
                showtime = %req.showtime_id, seats = ?req.seat_numbers,
                holder = %req.holder, %error, "lock refused"
            ),
        }
        Ok(Response::new(result?))
    }

    async fn confirm_seats(
        &self,
        request: Request<ConfirmSeatsRequest>,
    ) -> Result<Response<ConfirmSeatsResponse>, Status> {
        let lock_id = request.into_inner().lock_id;
        let result = self.state.inventory().confirm(&lock_id, now_ms());
        tracing::debug!(%lock_id, ok = result.is_ok(), "confirm seats");
        result?;
        Ok(Response::new(ConfirmSeatsResponse {}))
    }

    async fn extend_lock(
        &self,
        request: Request<ExtendLockRequest>,
    ) -> Result<Response<SeatLock>, Status> {
        let req = request.into_inner();
        let result = self
            .state
            .inventory()
            .extend(&req.lock_id, req.ttl_seconds, now_ms());
        tracing::debug!(
            lock_id = %req.lock_id, ttl_seconds = req.ttl_seconds,
            expires_at_ms = ?result.as_ref().map(|lock| lock.expires_at_ms).ok(), "extend lock"
        );
        Ok(Response::new(result?))
    }

    async fn release_seats(
        &self,
        request: Request<ReleaseSeatsRequest>,
    ) -> Result<Response<ReleaseSeatsResponse>, Status> {
        let lock_id = request.into_inner().lock_id;
        self.state.inventory().release(&lock_id);
        tracing::debug!(%lock_id, "seats released");
        Ok(Response::new(ReleaseSeatsResponse {}))
    }
}

impl From<InventoryError> for Status {
    fn from(error: InventoryError) -> Status {
        let message = error.to_string();
        match error {
            InventoryError::UnknownShowtime(_) | InventoryError::UnknownLock(_) => {
                Status::not_found(message)
            }
            InventoryError::Invalid(_) => Status::invalid_argument(message),
            InventoryError::Conflict(_) => Status::failed_precondition(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use cinema_grpc::cinema_service_client::CinemaServiceClient;
    use tokio::net::TcpListener;
    use tonic::Code;
    use tonic::transport::Channel;
    use tonic::transport::server::TcpIncoming;

    use super::*;

    async fn serve() -> (CinemaState, CinemaServiceClient<Channel>) {
        let state = CinemaState::new(catalog::showtimes());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service(state.clone(), SeenTraces::default()))
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        let client = CinemaServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
        (state, client)
    }

    fn lock_request(seats: &[String], ttl_seconds: u32) -> LockSeatsRequest {
        LockSeatsRequest {
            showtime_id: "showtime_456".into(),
            seat_numbers: seats.to_vec(),
            holder: "test".into(),
            ttl_seconds,
        }
    }

    /// Overlapping windows of three seats in row A, all at once: the
    /// winners must hold disjoint seats and every loser must be told why.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_overlapping_locks_never_share_a_seat() {
        let (state, client) = serve().await;
        let attempts: Vec<_> = (0..50)
            .map(|i| {
                let mut client = client.clone();
                let start = i % 8 + 1;
                let seats: Vec<String> = (start..start + 3).map(|n| format!("A{n}")).collect();
                tokio::spawn(async move { client.lock_seats(lock_request(&seats, 60)).await })
            })
            .collect();

        let mut won = Vec::new();
        for attempt in attempts {
            match attempt.await.expect("task") {
                Ok(lock) => won.push(lock.into_inner()),
                Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
            }
        }

        assert!(!won.is_empty(), "some request must win");
        let mut held = HashSet::new();
        for lock in &won {
            for seat in &lock.seats {
                assert!(
                    held.insert(seat.number.clone()),
                    "{} locked twice",
                    seat.number
                );
            }
        }
        let live = state.live_locks("showtime_456");
        assert_eq!(live.len(), won.len());
        let live_seats: HashSet<String> = live.into_iter().flat_map(|l| l.seats).collect();
        assert_eq!(live_seats, held);
    }

    #[tokio::test]
    async fn errors_use_the_documented_codes() {
        let (_, mut client) = serve().await;
        let seats = |s: &[&str]| s.iter().map(|n| n.to_string()).collect::<Vec<_>>();

        let unknown = client
            .get_showtime(GetShowtimeRequest {
                showtime_id: "nope".into(),
            })
            .await;
        assert_eq!(unknown.map_err(|s| s.code()).err(), Some(Code::NotFound));

        let zero_ttl = client.lock_seats(lock_request(&seats(&["A1"]), 0)).await;
        assert_eq!(
            zero_ttl.map_err(|s| s.code()).err(),
            Some(Code::InvalidArgument)
        );

        let lock = client
            .lock_seats(lock_request(&seats(&["A1"]), 60))
            .await
            .expect("free")
            .into_inner();
        let again = client.lock_seats(lock_request(&seats(&["A1"]), 60)).await;
        assert_eq!(
            again.map_err(|s| s.code()).err(),
            Some(Code::FailedPrecondition)
        );

        let confirm_unknown = client
            .confirm_seats(ConfirmSeatsRequest {
                lock_id: "nope".into(),
            })
            .await;
        assert_eq!(
            confirm_unknown.map_err(|s| s.code()).err(),
            Some(Code::FailedPrecondition)
        );

        let extend = |lock_id: &str, ttl_seconds| ExtendLockRequest {
            lock_id: lock_id.into(),
            ttl_seconds,
        };
        let extended = client
            .extend_lock(extend(&lock.lock_id, 120))
            .await
            .expect("live")
            .into_inner();
        assert!(extended.expires_at_ms > lock.expires_at_ms);
        let codes = [
            (extend("nope", 60), Code::NotFound),
            (extend("", 60), Code::InvalidArgument),
            (extend(&lock.lock_id, 0), Code::InvalidArgument),
        ];
        for (request, code) in codes {
            let result = client.extend_lock(request).await;
            assert_eq!(result.map_err(|s| s.code()).err(), Some(code));
        }

        client
            .release_seats(ReleaseSeatsRequest {
                lock_id: lock.lock_id.clone(),
            })
            .await
            .expect("release");
        let released = client.extend_lock(extend(&lock.lock_id, 60)).await;
        assert_eq!(
            released.map_err(|s| s.code()).err(),
            Some(Code::FailedPrecondition)
        );
        let showtime = client
            .get_showtime(GetShowtimeRequest {
                showtime_id: "showtime_456".into(),
            })
            .await
            .expect("known")
            .into_inner();
        assert_eq!((showtime.total_seats, showtime.available_seats), (50, 50));
    }
}
