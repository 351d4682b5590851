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
use booking_adapters::changes::{Announcing, Changes};
use booking_adapters::mongo::{
    MongoConfig, MongoDatabase, MongoEventLog, MongoFleet, MongoStorage,
};
use booking_adapters::outbox::{Delivery, LogConfig, Outbox};
use booking_adapters::payments::{PaymentsConfig, RestPayments};
use booking_adapters::rabbitmq::{RabbitConfig, RabbitPublisher};
use booking_adapters::relay::{self, RelayConfig};
use booking_adapters::seats::{GrpcSeats, SeatsConfig};
use booking_adapters::sqlite::{SqliteEventLog, SqliteStorage};
use booking_adapters::users::{RestUsers, RestUsersConfig, UsersConfig};
use booking_adapters::{Adapter, HealthCheck};
use booking_logic::model::Timestamp;
use booking_logic::ports::{Environment, Events, PortResult, Ports, Storage};
use booking_peers::{PeersConfig, RunningPeers};
use booking_telemetry::metrics::RelayMetrics;

use crate::config::{Config, ServiceUrls};

/// A dependency that does not accept a connection this fast is down.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Every adapter, each registered once: as its port and as a health check.
/// The outbox as the metrics see it.
pub struct OutboxStatus {
    pub backlog: u64,
    pub oldest_at: Option<Timestamp>,
}

pub struct Dependencies {
    /// What the logic talks to: one adapter behind each port trait.
    ports: Ports,
    /// The event log as the relay drains it (the adapter of `ports.events`).
    outbox: Arc<dyn Outbox>,
    /// Every port's adapter, in the order `/admin/health` reports them.
    pub adapters: Vec<Arc<dyn HealthCheck>>,
    /// Where the relay sends events; none when the event log is the sink.
    pub broker: Option<Arc<RabbitPublisher>>,
    /// Reference peers started in-process, kept alive while we serve.
    pub _peers: Option<RunningPeers>,
    /// The services (`cinema`, `users`, `payments`) the reference peers
    /// stand in for: only those named by `--reference-peers`' unset URLs.
    pub reference_peers: Vec<&'static str>,
    /// The services' URLs: configured, or the reference peers'.
    pub urls: ServiceUrls,
    /// Where the fleet's deployment lives: the MongoDB store, when bookings
    /// are there (the embedded store is one process's).
    pub fleet: Option<MongoFleet>,
    /// Committed events for live updates: the broker's (every host's),
    /// or without one this store's own writes.
    pub changes: Changes,
    /// The User service, for the booking page's sign-in.
    pub users: Arc<RestUsers>,
}

/// The adapters as they are built, each kept for the health report.
#[derive(Default)]
struct Registry(Vec<Arc<dyn HealthCheck>>);

impl Registry {
    /// Builds an adapter from its config and registers it.
    async fn open<A: Adapter>(&mut self, config: A::Config) -> anyhow::Result<Arc<A>> {
        let adapter = Arc::new(A::from_config(config).await?);
        self.0.push(adapter.clone());
        Ok(adapter)
    }

    /// Bookings and their event log, in one store: the log first, then
    /// the storage that writes a booking and its events together into it.
    async fn open_store<S, E>(&mut self, config: E::Config) -> anyhow::Result<Store>
    where
        E: Adapter + Events + Outbox + Clone,
        S: Adapter<Config = E> + Storage,
    {
        let events = E::from_config(config).await?;
        let storage = self.open::<S>(events.clone()).await?;
        let events = Arc::new(events);
        self.0.push(events.clone());
        Ok(Store {
            storage,
            events: events.clone(),
            outbox: events,
        })
    }
}

/// A store's two ports, and its event log as the outbox.
struct Store {
    storage: Arc<dyn Storage>,
    events: Arc<dyn Events>,
    outbox: Arc<dyn Outbox>,
}

impl Dependencies {
    pub async fn connect(config: &Config) -> anyhow::Result<Dependencies> {
        let tls = config.tls_roots()?;
        let broker = match &config.rabbitmq_url {
            // Not connected yet: the booking API must not wait for the broker.
            Some(url) => Some(Arc::new(
                RabbitPublisher::from_config(RabbitConfig {
                    url: url.clone(),
                    exchange: config.rabbitmq_exchange.clone(),
                    timeout: config.api_timeout(),
                    confirm_window: config.rabbitmq_confirm_window,
                    tls: tls.clone(),
                })
                .await?,
            )),
            None => None,
        };
        let delivery = if broker.is_some() {
            Delivery::Relayed
        } else {
            Delivery::Stored
        };
        let mut registry = Registry::default();
        let mut fleet = None;
        let store = match &config.mongodb_url {
            None => registry
                .open_store::<SqliteStorage, SqliteEventLog>(LogConfig {
                    database: config.data_dir.join("booking.sqlite3"),
                    delivery,
                })
                .await
                .with_context(|| {
                    format!("opening the database in {}", config.data_dir.display())
                })?,
            Some(url) => {
                let timeout = config.mongodb_timeout();
                let mongo = MongoConfig {
                    url: url.clone(),
                    database: config.mongodb_database.clone(),
                    timeout,
                    // Well inside the operation deadline, so a dead database
                    // is reported as unavailable (nothing happened), not as
                    // a timeout.
                    connect_timeout: CONNECT_TIMEOUT.min(timeout / 2),
                    durability: config.mongodb_durability(),
                    tls: tls.clone(),
                };
                fleet = Some(MongoFleet::open(MongoDatabase::connect(&mongo).await?));
                registry
                    .open_store::<MongoStorage, MongoEventLog>(LogConfig {
                        database: mongo,
                        delivery,
                    })
                    .await?
            }
        };
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
            cinema: resolve(cinema, GrpcSeats::NAME, |p| &p.cinema_url),
            users: resolve(users, RestUsers::NAME, |p| &p.users_url),
            payments: resolve(payments, RestPayments::NAME, |p| &p.payments_url),
        };
        if !reference_peers.is_empty() {
            tracing::warn!(
                cinema = %urls.cinema, users = %urls.users, payments = %urls.payments,
                "REFERENCE PEERS serve {}: demo services, not for production (every card \
                 is approved, anyone logs in)",
                reference_peers.join(", ")
            );
        }

        let (timeout, connect_timeout) = (
            config.api_timeout(),
            CONNECT_TIMEOUT.min(config.api_timeout()),
        );
        let seats = registry
            .open::<GrpcSeats>(SeatsConfig {
                url: urls.cinema.clone(),
                timeout,
                connect_timeout,
                tls: tls.clone(),
            })
            .await?;
        let users = registry
            .open::<RestUsers>(RestUsersConfig {
                service: UsersConfig {
                    url: urls.users.clone(),
                    timeout,
                    connect_timeout,
                    tls: tls.clone(),
                },
                auth_cache_ttl: std::time::Duration::from_secs(config.auth_cache_seconds),
            })
            .await?;
        let payments = registry
            .open::<RestPayments>(PaymentsConfig {
                url: urls.payments.clone(),
                charge_timeout: config.payment_timeout(),
                timeout,
                connect_timeout,
                tls,
            })
            .await?;
        let changes = Changes::default();
        let storage = match broker {
            Some(_) => store.storage,
            None => Arc::new(Announcing {
                store: store.storage,
                changes: changes.clone(),
            }),
        };
        Ok(Dependencies {
            ports: Ports {
                seats,
                users: users.clone(),
                payments,
                storage,
                events: store.events,
                env: Arc::new(SystemEnvironment),
            },
            outbox: store.outbox,
            adapters: registry.0,
            broker,
            _peers: peers,
            reference_peers,
            urls,
            fleet,
            changes,
            users,
        })
    }

    /// Follows the broker for live updates until `stop`, if there is one
    /// (without, the store announces its writes itself).
    pub fn start_live_feed(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let broker = self.broker.clone()?;
        let changes = self.changes.clone();
        Some(tokio::spawn(
            async move { broker.follow(&changes, stop).await },
        ))
    }

    /// Starts relaying the outbox to the broker, if there is one. The relay
    /// runs until `stop` turns true, then ends after its current round.
    pub fn start_relay(
        &self,
        metrics: RelayMetrics,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let broker = self.broker.clone()?;
        tracing::info!(exchange = broker.exchange(), "relaying events to RabbitMQ");
        Some(tokio::spawn(relay::run(
            self.outbox.clone(),
            broker,
            RelayConfig::default(),
            metrics,
            stop,
        )))
    }

    /// How many events wait for the broker and when the oldest of them
    /// happened (the first the relay would send).
    pub async fn outbox_status(&self) -> PortResult<OutboxStatus> {
        let backlog = self.outbox.backlog().await?;
        let oldest_at = match backlog {
            0 => None,
            _ => self
                .outbox
                .unpublished(1)
                .await?
                .first()
                .map(|event| event.occurred_at),
        };
        Ok(OutboxStatus { backlog, oldest_at })
    }

    /// Events stored but not yet confirmed by the broker.
    pub async fn backlog(&self) -> PortResult<u64> {
        self.outbox.backlog().await
    }

    pub fn ports(&self) -> Ports {
        self.ports.clone()
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
