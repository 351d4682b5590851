//! Builds the ports from configuration: a real server where a URL is set,
//! otherwise the embedded default (a database file). The Cinema, User and
//! Payment services have no silent default: an unset URL refuses to start
//! unless `--reference-peers` asks for the in-process reference peers.
//!
//! Bookings and events always share one store (SQLite file or MongoDB), so
//! an event is stored where its booking is; with RABBITMQ_URL set that
//! event log is also the outbox, and the relay forwards it to the broker.

use std::sync::Arc;

use anyhow::Context;
use booking_adapters::mongo::events::MongoEventLog;
use booking_adapters::mongo::storage::MongoStorage;
use booking_adapters::mongo::{MongoConfig, MongoDatabase};
use booking_adapters::outbox::{Delivery, Outbox};
use booking_adapters::payments::{PaymentsConfig, RestPayments};
use booking_adapters::rabbitmq::{RabbitConfig, RabbitPublisher};
use booking_adapters::relay::{self, RelayConfig};
use booking_adapters::seats::{GrpcSeats, SeatsConfig};
use booking_adapters::sqlite::Database;
use booking_adapters::sqlite::events::SqliteEventLog;
use booking_adapters::sqlite::storage::SqliteStorage;
use booking_adapters::tls::TlsRoots;
use booking_adapters::users::{RestUsers, UsersConfig};
use booking_logic::model::Timestamp;
use booking_logic::ports::{Environment, Events, PortResult, Ports, Storage};
use booking_peers::{PeersConfig, RunningPeers};

use crate::config::{Config, ServiceUrls};

/// A dependency that does not accept a connection this fast is down.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Every adapter, kept concretely typed for health checks.
pub struct Dependencies {
    pub seats: Arc<GrpcSeats>,
    pub users: Arc<RestUsers>,
    pub payments: Arc<RestPayments>,
    pub store: Store,
    /// Where the relay sends events; none when the event log is the sink.
    pub broker: Option<Arc<RabbitPublisher>>,
    /// Reference peers started in-process, kept alive while we serve.
    pub _peers: Option<RunningPeers>,
    /// The services (`cinema`, `users`, `payments`) the reference peers
    /// stand in for: only those named by `--reference-peers`' unset URLs.
    pub reference_peers: Vec<&'static str>,
    /// The services' URLs: configured, or the reference peers'.
    pub urls: ServiceUrls,
}

/// Bookings and their event log, in one store.
pub enum Store {
    Embedded {
        storage: Arc<SqliteStorage>,
        events: Arc<SqliteEventLog>,
    },
    Mongo {
        storage: Arc<MongoStorage>,
        events: Arc<MongoEventLog>,
    },
}

impl Store {
    async fn open(config: &Config, delivery: Delivery, tls: &TlsRoots) -> anyhow::Result<Store> {
        let Some(url) = &config.mongodb_url else {
            let db =
                Database::open(&config.data_dir.join("booking.sqlite3")).with_context(|| {
                    format!("opening the database in {}", config.data_dir.display())
                })?;
            let events = SqliteEventLog::with_delivery(db, delivery);
            return Ok(Store::Embedded {
                storage: Arc::new(SqliteStorage::new(events.clone())),
                events: Arc::new(events),
            });
        };
        let timeout = config.mongodb_timeout();
        let db = MongoDatabase::connect(&MongoConfig {
            url: url.clone(),
            database: config.mongodb_database.clone(),
            timeout,
            // Well inside the operation deadline, so a dead database is
            // reported as unavailable (nothing happened), not as a timeout.
            connect_timeout: CONNECT_TIMEOUT.min(timeout / 2),
            durability: config.mongodb_durability(),
            tls: tls.clone(),
        })
        .await?;
        // Creating the indexes is the first round trip: an unreachable
        // database stops the start-up here, with the reason.
        let unreachable = |error| anyhow::anyhow!("MongoDB database {}: {error}", db.name());
        let events = MongoEventLog::open(db.clone(), delivery)
            .await
            .map_err(unreachable)?;
        let storage = MongoStorage::open(events.clone())
            .await
            .map_err(unreachable)?;
        tracing::info!(database = db.name(), "bookings and events in MongoDB");
        Ok(Store::Mongo {
            storage: Arc::new(storage),
            events: Arc::new(events),
        })
    }

    fn storage(&self) -> Arc<dyn Storage> {
        match self {
            Store::Embedded { storage, .. } => storage.clone(),
            Store::Mongo { storage, .. } => storage.clone(),
        }
    }

    fn events(&self) -> Arc<dyn Events> {
        match self {
            Store::Embedded { events, .. } => events.clone(),
            Store::Mongo { events, .. } => events.clone(),
        }
    }

    fn outbox(&self) -> Arc<dyn Outbox> {
        match self {
            Store::Embedded { events, .. } => events.clone(),
            Store::Mongo { events, .. } => events.clone(),
        }
    }

    pub async fn storage_health(&self) -> Result<(), String> {
        match self {
            Store::Embedded { storage, .. } => storage.health().await,
            Store::Mongo { storage, .. } => storage.health().await,
        }
    }

    pub async fn events_health(&self) -> Result<(), String> {
        match self {
            Store::Embedded { events, .. } => events.health().await,
            Store::Mongo { events, .. } => events.health().await,
        }
    }

    /// Events stored but not yet confirmed by the broker.
    pub async fn backlog(&self) -> PortResult<u64> {
        self.outbox().backlog().await
    }
}

impl Dependencies {
    pub async fn connect(config: &Config) -> anyhow::Result<Dependencies> {
        let tls = config.tls_roots()?;
        let broker = config.rabbitmq_url.as_ref().map(|url| {
            // Not connected yet: the booking API must not wait for the broker.
            Arc::new(RabbitPublisher::new(RabbitConfig {
                url: url.clone(),
                exchange: config.rabbitmq_exchange.clone(),
                timeout: config.api_timeout(),
                confirm_window: config.rabbitmq_confirm_window,
                tls: tls.clone(),
            }))
        });
        let delivery = if broker.is_some() {
            Delivery::Relayed
        } else {
            Delivery::Stored
        };
        let store = Store::open(config, delivery, &tls).await?;
        let urls = [
            (&config.cinema_service_url, "CINEMA_SERVICE_URL"),
            (&config.user_service_url, "USER_SERVICE_URL"),
            (&config.payment_service_url, "PAYMENT_SERVICE_URL"),
        ]
        .map(|(url, variable)| (url.clone().filter(|url| !url.trim().is_empty()), variable));
        let unset: Vec<&str> = urls
            .iter()
            .filter(|(url, _)| url.is_none())
            .map(|(_, variable)| *variable)
            .collect();
        if !unset.is_empty() && !config.reference_peers {
            anyhow::bail!(
                "{} not set: point them at the real services, or pass --reference-peers \
                 (REFERENCE_PEERS=true) to serve the unset ones with the in-process reference \
                 peers, for demos only (their Payment service approves every card, their User \
                 service logs anyone in)",
                unset.join(", ")
            );
        }
        let peers = if unset.is_empty() {
            None
        } else {
            Some(
                booking_peers::start(PeersConfig {
                    users_addr: config.reference_users_listen,
                    ..PeersConfig::default()
                })
                .await
                .context("starting the reference peers")?,
            )
        };
        let [cinema, users, payments] = urls.map(|(url, _)| url);
        let mut reference_peers = Vec::new();
        let mut resolve = |configured: Option<String>,
                           service: &'static str,
                           reference: fn(&RunningPeers) -> &String| {
            configured.unwrap_or_else(|| {
                reference_peers.push(service);
                peers.as_ref().map(reference).cloned().unwrap_or_default()
            })
        };
        let urls = ServiceUrls {
            cinema: resolve(cinema, "cinema", |p| &p.cinema_url),
            users: resolve(users, "users", |p| &p.users_url),
            payments: resolve(payments, "payments", |p| &p.payments_url),
        };
        if !reference_peers.is_empty() {
            tracing::warn!(
                cinema = %urls.cinema, users = %urls.users, payments = %urls.payments,
                "REFERENCE PEERS serve {}: demo services, not for production (every card \
                 is approved, anyone logs in)",
                reference_peers.join(", ")
            );
        }
        let (cinema_url, users_url, payments_url) = (
            urls.cinema.clone(),
            urls.users.clone(),
            urls.payments.clone(),
        );

        let (timeout, connect_timeout) = (
            config.api_timeout(),
            CONNECT_TIMEOUT.min(config.api_timeout()),
        );
        Ok(Dependencies {
            seats: Arc::new(GrpcSeats::new(&SeatsConfig {
                url: cinema_url,
                timeout,
                connect_timeout,
                tls: tls.clone(),
            })?),
            users: Arc::new(
                RestUsers::new(&UsersConfig {
                    url: users_url,
                    timeout,
                    connect_timeout,
                    tls: tls.clone(),
                })?
                .with_auth_cache_ttl(std::time::Duration::from_secs(config.auth_cache_seconds)),
            ),
            payments: Arc::new(RestPayments::new(&PaymentsConfig {
                url: payments_url,
                charge_timeout: config.payment_timeout(),
                timeout,
                connect_timeout,
                tls,
            })?),
            store,
            broker,
            _peers: peers,
            reference_peers,
            urls,
        })
    }

    /// Starts relaying the outbox to the broker, if there is one. The relay
    /// runs until `stop` turns true, then ends after its current round.
    pub fn start_relay(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let broker = self.broker.clone()?;
        tracing::info!(exchange = broker.exchange(), "relaying events to RabbitMQ");
        Some(tokio::spawn(relay::run(
            self.store.outbox(),
            broker,
            RelayConfig::default(),
            stop,
        )))
    }

    pub fn ports(&self) -> Ports {
        Ports {
            seats: self.seats.clone(),
            users: self.users.clone(),
            payments: self.payments.clone(),
            storage: self.store.storage(),
            events: self.store.events(),
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
