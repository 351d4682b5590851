//! `events` on MongoDB, and the outbox: a booking's events live in its own
//! document in `bookings`, written by the same single-document
//! `insertOne` / `findOneAndUpdate` as the booking (`MongoStorage`), so a
//! move and its events commit together without transactions.
//!
//! - `events`: every event of the booking, in commit order, each as its
//!   wire JSON (a string: nx-27017 mangles subdocuments pushed into an
//!   array, and consumers get this very JSON).
//! - `pendingEvents`: ids of the events the broker has not confirmed, and
//!   `unpublished` their count (indexed; the relay's query). Both stay
//!   empty when the log is the only sink.
//!
//! Marking an event published pulls its id with a conditional update,
//! so marking it again changes nothing.
//!
//! Every host sharing the database relays it: a relay leases the bookings
//! it sends (`relayLease`, `relayLeaseUntil`), so the relays of a fleet
//! divide the outbox rather than each sending every event.

use std::sync::Arc;

use async_trait::async_trait;
use booking_logic::ports::{Events, PortError, PortResult};
use booking_model::Event;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use serde::Deserialize;
use tokio::sync::Notify;

use crate::Adapter;
use crate::mongo::storage::COLLECTION;
use crate::mongo::{MongoConfig, MongoDatabase, Operation};
use crate::outbox::{Delivery, LogConfig, Outbox, Unsent};

/// The event fields of a booking document.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventFields {
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    pending_events: Vec<String>,
    /// The `traceparent` of the write, by event id, for the relay.
    #[serde(default)]
    event_traces: std::collections::HashMap<String, String>,
}

/// The events of one write as its booking document takes them.
pub(crate) struct Embedded {
    /// Appended to `events`.
    pub events: Vec<String>,
    /// Appended to `pendingEvents` (and counted in `unpublished`).
    pub pending: Vec<String>,
    /// Set in `eventTraces`: each pending event's `traceparent`.
    pub traces: Vec<(String, String)>,
}

/// How long a relay holds the bookings it claimed: longer than a round
/// (a confirm window waits at most the API timeout, 30 s by default, but
/// rounds take milliseconds), short enough that a dead relay's bookings
/// go out soon after. A round that outlasts it may send an event twice.
const RELAY_LEASE_MS: i64 = 15_000;

#[derive(Clone)]
pub struct MongoEventLog {
    pub(crate) db: MongoDatabase,
    bookings: Collection<EventFields>,
    delivery: Delivery,
    written: Arc<Notify>,
    /// This process's relay, as its leases name it.
    relay_id: String,
}

impl MongoEventLog {
    /// Opens the bookings collection and makes sure the outbox index
    /// exists.
    pub async fn open(db: MongoDatabase, delivery: Delivery) -> PortResult<MongoEventLog> {
        let bookings = db.collection::<EventFields>(COLLECTION);
        let index = IndexModel::builder()
            .keys(doc! { "unpublished": 1, "updatedAt": 1 })
            .options(
                IndexOptions::builder()
                    .name("bookings_unpublished".to_owned())
                    .build(),
            )
            .build();
        db.run(Operation::Write, bookings.create_index(index))
            .await?;
        Ok(MongoEventLog {
            db,
            bookings,
            delivery,
            written: Arc::new(Notify::new()),
            relay_id: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// `events` as a write embeds them: all pending for the relay, or none
    /// when the log is the sink.
    pub(crate) fn embed(&self, events: &[Event]) -> PortResult<Embedded> {
        let json = events
            .iter()
            .map(|event| {
                serde_json::to_string(event).map_err(|e| PortError::Rejected(e.to_string()))
            })
            .collect::<PortResult<Vec<_>>>()?;
        let pending: Vec<String> = match self.delivery {
            Delivery::Stored => Vec::new(),
            Delivery::Relayed => events.iter().map(|event| event.id.clone()).collect(),
        };
        let traces = match booking_telemetry::traceparent() {
            Some(traceparent) => pending
                .iter()
                .map(|id| (id.clone(), traceparent.clone()))
                .collect(),
            None => Vec::new(),
        };
        Ok(Embedded {
            events: json,
            pending,
            traces,
        })
    }

    /// Wakes the relay; called after a write with events committed.
    pub(crate) fn notify_written(&self) {
        self.written.notify_one();
    }
}

impl MongoEventLog {
    /// The unsent events of the bookings `filter` selects, oldest
    /// bookings first and each booking's in commit order.
    async fn unsent_of(&self, filter: Document, limit: u32) -> PortResult<Vec<Unsent>> {
        let bookings: Vec<EventFields> = self
            .db
            .run(Operation::Read, async {
                self.bookings
                    .find(filter)
                    .sort(doc! { "updatedAt": 1, "_id": 1 })
                    .limit(i64::from(limit))
                    .projection(doc! { "events": 1, "pendingEvents": 1, "eventTraces": 1 })
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        let mut unpublished = Vec::new();
        for mut booking in bookings {
            for json in &booking.events {
                let event = decode(json)?;
                if booking.pending_events.contains(&event.id) {
                    let traceparent = booking.event_traces.remove(&event.id);
                    unpublished.push(Unsent { event, traceparent });
                }
            }
        }
        unpublished.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(unpublished)
    }
}

fn decode(json: &str) -> PortResult<Event> {
    serde_json::from_str(json)
        .map_err(|e| PortError::Unavailable(format!("database: corrupt event in a booking: {e}")))
}

#[async_trait]
impl Events for MongoEventLog {
    async fn history(&self, booking_id: &str) -> PortResult<Vec<Event>> {
        let fields = self
            .db
            .run(
                Operation::Read,
                self.bookings
                    .find_one(doc! { "_id": booking_id })
                    .projection(doc! { "events": 1 }),
            )
            .await?
            .unwrap_or_default();
        fields.events.iter().map(|json| decode(json)).collect()
    }
}

#[async_trait]
impl Outbox for MongoEventLog {
    async fn unsent(&self, limit: u32) -> PortResult<Vec<Unsent>> {
        self.unsent_of(doc! { "unpublished": { "$gt": 0_i64 } }, limit)
            .await
    }

    /// Leases the oldest bookings with unsent events that no other relay
    /// holds (a lease of its own is renewed), one compare-and-swap on the
    /// lease each, so two relays cannot both win one; then reads what this
    /// relay holds.
    async fn claim(&self, limit: u32) -> PortResult<Vec<Unsent>> {
        let now = i64::try_from(crate::outbox::now_ms()).unwrap_or(i64::MAX);
        let claimable = doc! {
            "unpublished": { "$gt": 0_i64 },
            "$or": [
                { "relayLeaseUntil": { "$exists": false } },
                { "relayLeaseUntil": { "$lt": now } },
                { "relayLease": &self.relay_id },
            ],
        };
        let candidates: Vec<Document> = self
            .db
            .run(Operation::Read, async {
                self.bookings
                    .clone_with_type::<Document>()
                    .find(claimable.clone())
                    .sort(doc! { "updatedAt": 1, "_id": 1 })
                    .limit(i64::from(limit))
                    .projection(doc! { "_id": 1, "relayLeaseUntil": 1 })
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        for candidate in candidates {
            let Some(id) = candidate.get("_id") else {
                continue;
            };
            // A compare-and-swap on the lease as read: of two relays that
            // read the same, one wins.
            let lease_as_read: Bson = match candidate.get("relayLeaseUntil") {
                Some(until) => until.clone(),
                None => doc! { "$exists": false }.into(),
            };
            let filter = doc! { "_id": id.clone(), "relayLeaseUntil": lease_as_read };
            self.db
                .run(
                    Operation::Write,
                    self.bookings.update_one(
                        filter,
                        doc! { "$set": {
                            "relayLease": &self.relay_id,
                            "relayLeaseUntil": now + RELAY_LEASE_MS,
                        } },
                    ),
                )
                .await?;
        }
        self.unsent_of(
            doc! { "unpublished": { "$gt": 0_i64 }, "relayLease": &self.relay_id, "relayLeaseUntil": { "$gte": now } },
            limit,
        )
        .await
    }

    async fn mark_published(&self, events: &[Event]) -> PortResult<()> {
        // One document per event, each atomic; a crash half-way leaves
        // some unmarked, and they are sent again (at least once).
        for event in events {
            self.db
                .run(
                    Operation::Write,
                    self.bookings.update_one(
                        doc! { "_id": &event.booking_id, "pendingEvents": &event.id },
                        doc! {
                            "$pull": { "pendingEvents": &event.id },
                            "$inc": { "unpublished": -1_i64 },
                        },
                    ),
                )
                .await?;
        }
        Ok(())
    }

    async fn backlog(&self) -> PortResult<u64> {
        let totals: Vec<Document> = self
            .db
            .run(Operation::Read, async {
                self.bookings
                    .aggregate([
                        doc! { "$match": { "unpublished": { "$gt": 0_i64 } } },
                        doc! { "$group": { "_id": Bson::Null, "n": { "$sum": "$unpublished" } } },
                    ])
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        let total = match totals.first().and_then(|total| total.get("n")) {
            None => 0,
            Some(Bson::Int32(n)) => i64::from(*n),
            Some(Bson::Int64(n)) => *n,
            Some(other) => {
                return Err(PortError::Unavailable(format!(
                    "database: the backlog sums to {other}"
                )));
            }
        };
        Ok(u64::try_from(total).unwrap_or_default())
    }

    fn written(&self) -> Arc<Notify> {
        self.written.clone()
    }
}

#[async_trait]
impl Adapter for MongoEventLog {
    const NAME: &'static str = "events";
    type Config = LogConfig<MongoConfig>;

    /// Creating the index is the first round trip: an unreachable
    /// database fails here, with the reason.
    async fn from_config(config: LogConfig<MongoConfig>) -> anyhow::Result<Self> {
        let db = MongoDatabase::connect(&config.database).await?;
        let name = db.name().to_owned();
        MongoEventLog::open(db, config.delivery)
            .await
            .map_err(|error| anyhow::anyhow!("MongoDB database {name}: {error}"))
    }

    async fn health(&self) -> Result<(), String> {
        self.db.health().await
    }
}
