//! `events` on MongoDB: the event log in `events`, in the same database as
//! the bookings, which is also the outbox when a broker is configured.
//!
//! MongoDB has no auto-increment, and ordering by clock would let two
//! hosts' clocks reorder a booking's events, so every event takes the next
//! number of one counter document (`counters`, an atomic `$inc`) before it
//! is inserted. An event published after another one returned has a higher
//! number, which is all "in publication order" promises. A number taken by
//! a write that then failed is simply never used. The event id is `_id`:
//! a retried publish hits the unique key and counts as done.

use std::sync::Arc;

use async_trait::async_trait;
use booking_logic::model::Event;
use booking_logic::ports::{Events, PortError, PortResult};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{Collection, IndexModel};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::mongo::{MongoDatabase, Operation};
use crate::outbox::{Delivery, Outbox, now_ms, published_at_on_write};

pub const COLLECTION: &str = "events";
const COUNTERS: &str = "counters";
const EVENT_COUNTER: &str = "events";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventDocument {
    /// The event id.
    #[serde(rename = "_id")]
    id: String,
    /// Position in the log (see the module comment).
    seq: i64,
    booking_id: String,
    /// The event exactly as consumers receive it.
    event: Event,
    /// Present (true) only while it waits in the outbox for the relay.
    /// A flag rather than a null `publishedAt`, and unset rather than
    /// false once sent: servers differ in matching nulls and storing
    /// `$set` booleans.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pending: bool,
    /// Milliseconds since the epoch; null while pending.
    published_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Counter {
    seq: i64,
}

#[derive(Clone)]
pub struct MongoEventLog {
    db: MongoDatabase,
    events: Collection<EventDocument>,
    counters: Collection<Counter>,
    delivery: Delivery,
    written: Arc<Notify>,
}

impl MongoEventLog {
    /// Opens the collections and makes sure their indexes exist.
    pub async fn open(db: MongoDatabase, delivery: Delivery) -> PortResult<MongoEventLog> {
        let events = db.collection::<EventDocument>(COLLECTION);
        let indexes = [
            ("events_by_seq", doc! { "seq": 1 }, true),
            // A booking's history.
            (
                "events_by_booking",
                doc! { "bookingId": 1, "seq": 1 },
                false,
            ),
            // The relay's backlog.
            ("events_pending", doc! { "pending": 1, "seq": 1 }, false),
        ]
        .map(|(name, keys, unique)| {
            IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(name.to_owned())
                        .unique(unique)
                        .build(),
                )
                .build()
        });
        db.run(Operation::Write, events.create_indexes(indexes))
            .await?;
        Ok(MongoEventLog {
            counters: db.collection(COUNTERS),
            db,
            events,
            delivery,
            written: Arc::new(Notify::new()),
        })
    }

    pub async fn health(&self) -> Result<(), String> {
        self.db.health().await
    }

    /// Takes the next log position. Two first-ever upserts can race to
    /// create the counter; the loser sees a duplicate key and just retries.
    async fn next_seq(&self) -> PortResult<i64> {
        let take = || {
            self.counters
                .find_one_and_update(
                    doc! { "_id": EVENT_COUNTER },
                    doc! { "$inc": { "seq": 1_i64 } },
                )
                .upsert(true)
                .return_document(ReturnDocument::After)
        };
        let counter = match self.db.run(Operation::Write, take()).await {
            Err(PortError::Conflict(_)) => self.db.run(Operation::Write, take()).await,
            other => other,
        }?;
        counter
            .map(|counter| counter.seq)
            .ok_or_else(|| PortError::Unavailable("database: the event counter vanished".into()))
    }

    async fn find(&self, filter: Document, limit: Option<u32>) -> PortResult<Vec<Event>> {
        let documents: Vec<EventDocument> = self
            .db
            .run(Operation::Read, async {
                let mut find = self.events.find(filter).sort(doc! { "seq": 1 });
                if let Some(limit) = limit {
                    find = find.limit(i64::from(limit));
                }
                find.await?.try_collect().await
            })
            .await?;
        Ok(documents
            .into_iter()
            .map(|document| document.event)
            .collect())
    }
}

#[async_trait]
impl Events for MongoEventLog {
    async fn publish(&self, event: &Event) -> PortResult<()> {
        let seq = self.next_seq().await?;
        let published_at = published_at_on_write(self.delivery).map(|at| at as i64);
        let document = EventDocument {
            id: event.id.clone(),
            seq,
            booking_id: event.booking_id.clone(),
            event: event.clone(),
            pending: published_at.is_none(),
            published_at,
        };
        match self
            .db
            .run(Operation::Write, self.events.insert_one(document))
            .await
        {
            Ok(_) => {}
            Err(PortError::Conflict(detail)) => {
                // Stored by an earlier attempt of this publish, or a position
                // taken twice, which only a reset counter could cause.
                let stored = self
                    .db
                    .run(
                        Operation::Read,
                        self.events.find_one(doc! { "_id": &event.id }),
                    )
                    .await?;
                if stored.is_none() {
                    return Err(PortError::Unavailable(format!(
                        "database: event position {seq} is taken twice ({detail})"
                    )));
                }
            }
            Err(other) => return Err(other),
        }
        self.written.notify_one();
        Ok(())
    }

    async fn history(&self, booking_id: &str) -> PortResult<Vec<Event>> {
        self.find(doc! { "bookingId": booking_id }, None).await
    }
}

#[async_trait]
impl Outbox for MongoEventLog {
    async fn unpublished(&self, limit: u32) -> PortResult<Vec<Event>> {
        self.find(doc! { "pending": true }, Some(limit)).await
    }

    async fn mark_published(&self, event_ids: &[String]) -> PortResult<()> {
        // Each document is updated atomically on its own; a crash half-way
        // leaves some unmarked, and they are sent again (at least once).
        self.db
            .run(
                Operation::Write,
                self.events.update_many(
                    doc! { "_id": { "$in": event_ids }, "pending": true },
                    doc! {
                        "$set": { "publishedAt": now_ms() as i64 },
                        "$unset": { "pending": "" },
                    },
                ),
            )
            .await
            .map(drop)
    }

    async fn backlog(&self) -> PortResult<u64> {
        self.db
            .run(
                Operation::Read,
                self.events.count_documents(doc! { "pending": true }),
            )
            .await
    }

    fn written(&self) -> Arc<Notify> {
        self.written.clone()
    }
}
