//! Builds the ports from configuration: a real server where a URL is set,
//! otherwise the embedded default (database file, in-process reference
//! peers on loopback).

use std::sync::Arc;

use anyhow::Context;
use booking_adapters::events::SqliteEventLog;
use booking_adapters::payments::{PaymentsConfig, RestPayments};
use booking_adapters::seats::{GrpcSeats, SeatsConfig};
use booking_adapters::sqlite::Database;
use booking_adapters::storage::SqliteStorage;
use booking_adapters::users::{RestUsers, UsersConfig};
use booking_logic::model::Timestamp;
use booking_logic::ports::{Environment, Ports};
use booking_peers::{PeersConfig, RunningPeers};

/// A dependency that does not accept a connection this fast is down.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Every adapter, kept concretely typed for health checks.
pub struct Dependencies {
    pub seats: Arc<GrpcSeats>,
    pub users: Arc<RestUsers>,
    pub payments: Arc<RestPayments>,
    pub storage: Arc<SqliteStorage>,
    pub events: Arc<SqliteEventLog>,
    /// Reference peers started in-process, kept alive while we serve.
    pub _peers: Option<RunningPeers>,
}

impl Dependencies {
    pub async fn connect(config: &crate::config::Config) -> anyhow::Result<Dependencies> {
        if config.mongodb_url.is_some() || config.rabbitmq_url.is_some() {
            anyhow::bail!(
                "MONGODB_URL / RABBITMQ_URL are set, but this build only has the embedded store and event log; \
                 unset them to use the embedded defaults"
            );
        }
        let needs_peers = config.cinema_service_url.is_none()
            || config.user_service_url.is_none()
            || config.payment_service_url.is_none();
        let peers = if needs_peers {
            let peers = booking_peers::start(PeersConfig::default())
                .await
                .context("starting the reference peers")?;
            tracing::info!(
                cinema = %peers.cinema_url, users = %peers.users_url, payments = %peers.payments_url,
                "reference peers started in-process"
            );
            Some(peers)
        } else {
            None
        };
        let url =
            |configured: &Option<String>, reference: fn(&RunningPeers) -> &String| -> String {
                configured
                    .clone()
                    .unwrap_or_else(|| peers.as_ref().map(reference).cloned().unwrap_or_default())
            };
        let cinema_url = url(&config.cinema_service_url, |p| &p.cinema_url);
        let users_url = url(&config.user_service_url, |p| &p.users_url);
        let payments_url = url(&config.payment_service_url, |p| &p.payments_url);

        let db = Database::open(&config.data_dir.join("booking.sqlite3"))
            .with_context(|| format!("opening the database in {}", config.data_dir.display()))?;
        let (timeout, connect_timeout) = (
            config.api_timeout(),
            CONNECT_TIMEOUT.min(config.api_timeout()),
        );
        Ok(Dependencies {
            seats: Arc::new(GrpcSeats::new(&SeatsConfig {
                url: cinema_url,
                timeout,
                connect_timeout,
            })?),
            users: Arc::new(RestUsers::new(&UsersConfig {
                url: users_url,
                timeout,
                connect_timeout,
            })?),
            payments: Arc::new(RestPayments::new(&PaymentsConfig {
                url: payments_url,
                charge_timeout: config.payment_timeout(),
                timeout,
                connect_timeout,
            })?),
            storage: Arc::new(SqliteStorage::new(db.clone())),
            events: Arc::new(SqliteEventLog::new(db)),
            _peers: peers,
        })
    }

    pub fn ports(&self) -> Ports {
        Ports {
            seats: self.seats.clone(),
            users: self.users.clone(),
            payments: self.payments.clone(),
            storage: self.storage.clone(),
            events: self.events.clone(),
            env: Arc::new(SystemEnvironment),
        }
    }
}

/// The host's clock and id source. The component uses WASI's instead; this
/// one serves the logic when it runs natively.
struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        since_epoch.as_millis() as Timestamp
    }

    fn new_id(&self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}
