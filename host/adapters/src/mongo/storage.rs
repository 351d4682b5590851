//! `storage` on MongoDB: one document per booking in `bookings`, keyed by
//! the booking's string id, holding its events too (`events.rs`).
//! Versioned updates are a single `findOneAndUpdate` whose filter holds
//! the expected version and which appends the write's events, so two
//! writers of one version cannot both win and a move commits with its
//! events; paging is `booking_model::paging`'s keyset rule on
//! (createdAt, _id). Idempotency records live in `idempotency_records`,
//! unique on (userId, key) and versioned the same way.

use async_trait::async_trait;
use booking_logic::ports::{PortError, PortResult, Storage};
use booking_model::{
    Booking, BookingPage, BookingStatus, Event, IdempotencyRecord, PageRequest, Timestamp, paging,
};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use serde::{Deserialize, Serialize};

use crate::Adapter;
use crate::mongo::events::MongoEventLog;
use crate::mongo::{MongoDatabase, Operation};

pub const COLLECTION: &str = "bookings";
pub const IDEMPOTENCY_COLLECTION: &str = "idempotency_records";

/// A booking as stored. Times are Int64 milliseconds since the epoch, money
/// Int64 cents, exactly as in the WIT records.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BookingDocument {
    #[serde(rename = "_id")]
    id: String,
    user_id: String,
    showtime_id: String,
    seats: Vec<String>,
    total_cents: i64,
    currency: String,
    status: BookingStatus,
    lock_id: String,
    lock_expires_at: i64,
    payment_transaction_id: Option<String>,
    failure_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
    version: i64,
    // Absent in documents of builds before settlement.
    #[serde(default)]
    charge_attempted_at: Option<i64>,
    #[serde(default)]
    refunded_at: Option<i64>,
    #[serde(default)]
    settle_after: Option<i64>,
    #[serde(default)]
    settle_attempts: i64,
}

/// A new booking's document: the booking and the events of its insert.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NewBookingDocument {
    #[serde(flatten)]
    booking: BookingDocument,
    events: Vec<String>,
    pending_events: Vec<String>,
    unpublished: i64,
    #[serde(skip_serializing_if = "Document::is_empty")]
    event_traces: Document,
}

/// The event fields (`events.rs`), left out of booking reads.
fn booking_fields() -> Document {
    doc! { "events": 0, "pendingEvents": 0, "unpublished": 0, "eventTraces": 0 }
}

/// BSON integers are i64; refuse rather than wrap an absurd value.
fn int(value: u64, what: &str) -> PortResult<i64> {
    i64::try_from(value).map_err(|_| PortError::Rejected(format!("{what} is too large")))
}

/// A stored negative would be corruption, not input.
fn uint(value: i64, what: &str) -> PortResult<u64> {
    u64::try_from(value)
        .map_err(|_| PortError::Unavailable(format!("database: negative {what} in a booking")))
}

fn optional_int(value: Option<u64>, what: &str) -> PortResult<Option<i64>> {
    value.map(|value| int(value, what)).transpose()
}

fn optional_uint(value: Option<i64>, what: &str) -> PortResult<Option<u64>> {
    value.map(|value| uint(value, what)).transpose()
}

impl BookingDocument {
    fn from_booking(booking: &Booking, version: u64) -> PortResult<BookingDocument> {
        Ok(BookingDocument {
            id: booking.id.clone(),
            user_id: booking.user_id.clone(),
            showtime_id: booking.showtime_id.clone(),
            seats: booking.seats.clone(),
            total_cents: int(booking.total_cents, "total")?,
            currency: booking.currency.clone(),
            status: booking.status,
            lock_id: booking.lock_id.clone(),
            lock_expires_at: int(booking.lock_expires_at, "lock expiry")?,
            payment_transaction_id: booking.payment_transaction_id.clone(),
            failure_reason: booking.failure_reason.clone(),
            created_at: int(booking.created_at, "created-at")?,
            updated_at: int(booking.updated_at, "updated-at")?,
            version: int(version, "version")?,
            charge_attempted_at: optional_int(booking.charge_attempted_at, "charge-attempted-at")?,
            refunded_at: optional_int(booking.refunded_at, "refunded-at")?,
            settle_after: optional_int(booking.settle_after, "settle-after")?,
            settle_attempts: i64::from(booking.settle_attempts),
        })
    }

    fn into_booking(self) -> PortResult<Booking> {
        Ok(Booking {
            charge_attempted_at: optional_uint(self.charge_attempted_at, "charge-attempted-at")?,
            refunded_at: optional_uint(self.refunded_at, "refunded-at")?,
            settle_after: optional_uint(self.settle_after, "settle-after")?,
            settle_attempts: u32::try_from(self.settle_attempts).map_err(|_| {
                PortError::Unavailable("database: settle attempts out of range in a booking".into())
            })?,
            total_cents: uint(self.total_cents, "total")?,
            lock_expires_at: uint(self.lock_expires_at, "lock expiry")?,
            created_at: uint(self.created_at, "created-at")?,
            updated_at: uint(self.updated_at, "updated-at")?,
            version: uint(self.version, "version")?,
            id: self.id,
            user_id: self.user_id,
            showtime_id: self.showtime_id,
            seats: self.seats,
            currency: self.currency,
            status: self.status,
            lock_id: self.lock_id,
            payment_transaction_id: self.payment_transaction_id,
            failure_reason: self.failure_reason,
        })
    }
}

/// An idempotency record as stored; times in Int64 milliseconds. The
/// server assigns `_id`; (userId, key) is the identity, held unique by an
/// index (nx-27017 cannot query a document-valued `_id`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordDocument {
    user_id: String,
    key: String,
    fingerprint: String,
    response: Option<String>,
    lease_expires_at: i64,
    expires_at: i64,
    version: i64,
}

impl RecordDocument {
    fn from_record(record: &IdempotencyRecord, version: u64) -> PortResult<RecordDocument> {
        Ok(RecordDocument {
            user_id: record.user_id.clone(),
            key: record.key.clone(),
            fingerprint: record.fingerprint.clone(),
            response: record.response.clone(),
            lease_expires_at: int(record.lease_expires_at, "lease expiry")?,
            expires_at: int(record.expires_at, "expiry")?,
            version: int(version, "version")?,
        })
    }

    fn into_record(self) -> PortResult<IdempotencyRecord> {
        Ok(IdempotencyRecord {
            lease_expires_at: uint(self.lease_expires_at, "lease expiry")?,
            expires_at: uint(self.expires_at, "expiry")?,
            version: uint(self.version, "version")?,
            user_id: self.user_id,
            key: self.key,
            fingerprint: self.fingerprint,
            response: self.response,
        })
    }
}

/// The filter selecting one idempotency record.
fn record_filter(user_id: &str, key: &str) -> Document {
    doc! { "userId": user_id, "key": key }
}

#[derive(Clone)]
pub struct MongoStorage {
    db: MongoDatabase,
    bookings: Collection<BookingDocument>,
    idempotency: Collection<RecordDocument>,
    /// Embeds the events of each write in its booking document.
    log: MongoEventLog,
}

impl MongoStorage {
    /// Opens the collections of `log`'s database and makes sure their
    /// indexes exist (creating an existing index is a no-op), so it fails
    /// here if the database is unreachable at start-up.
    pub async fn open(log: MongoEventLog) -> PortResult<MongoStorage> {
        let db = log.db.clone();
        let bookings = db.collection::<BookingDocument>(COLLECTION);
        let indexes = [
            // getUserBookings: a user's bookings, newest first. Ties on
            // createdAt are ordered by _id in memory: nx-27017 cannot index
            // _id inside a compound key.
            ("bookings_by_user", doc! { "userId": 1, "createdAt": -1 }),
            // The sweeper: PENDING bookings by lock expiry.
            (
                "bookings_by_expiry",
                doc! { "status": 1, "lockExpiresAt": 1 },
            ),
            // The sweep's settling.
            ("bookings_by_settle_after", doc! { "settleAfter": 1 }),
        ]
        .map(|(name, keys)| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().name(name.to_owned()).build())
                .build()
        });
        db.run(Operation::Write, bookings.create_indexes(indexes))
            .await?;
        let idempotency = db.collection::<RecordDocument>(IDEMPOTENCY_COLLECTION);
        let indexes = [
            // The identity: a second insert of (user, key) is a conflict.
            ("idempotency_by_key", doc! { "userId": 1, "key": 1 }, true),
            // The sweep's purge: records by expiry.
            ("idempotency_by_expiry", doc! { "expiresAt": 1 }, false),
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
        db.run(Operation::Write, idempotency.create_indexes(indexes))
            .await?;
        // Bookings that ended under a build without settlement may still
        // owe a refund or a seat release it gave up on: settle each once
        // (every step is idempotent, so one that owed nothing loses nothing).
        db.run(
            Operation::Write,
            bookings.update_many(
                doc! {
                    "settleAfter": { "$exists": false },
                    "status": { "$nin": ["PENDING", "CONFIRMED"] },
                },
                doc! { "$set": { "settleAfter": 0_i64, "settleAttempts": 0_i64 } },
            ),
        )
        .await?;
        Ok(MongoStorage {
            db,
            bookings,
            idempotency,
            log,
        })
    }

    async fn find(&self, filter: Document, sort: Document, limit: u32) -> PortResult<Vec<Booking>> {
        let documents: Vec<BookingDocument> = self
            .db
            .run(Operation::Read, async {
                self.bookings
                    .find(filter)
                    .sort(sort)
                    .limit(i64::from(limit))
                    .projection(booking_fields())
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        documents
            .into_iter()
            .map(BookingDocument::into_booking)
            .collect()
    }
}

#[async_trait]
impl Storage for MongoStorage {
    async fn insert(&self, booking: &Booking, events: &[Event]) -> PortResult<()> {
        let embedded = self.log.embed(events)?;
        let document = NewBookingDocument {
            booking: BookingDocument::from_booking(booking, 1)?,
            unpublished: embedded.pending.len() as i64,
            event_traces: embedded
                .traces
                .into_iter()
                .map(|(id, traceparent)| (id, traceparent.into()))
                .collect(),
            events: embedded.events,
            pending_events: embedded.pending,
        };
        let inserted = self
            .db
            .run(
                Operation::Write,
                self.bookings
                    .clone_with_type::<NewBookingDocument>()
                    .insert_one(document),
            )
            .await;
        match inserted {
            Ok(_) => {}
            Err(PortError::Conflict(_)) => {
                return Err(PortError::Conflict(format!(
                    "booking {} already exists",
                    booking.id
                )));
            }
            Err(other) => return Err(other),
        }
        if !events.is_empty() {
            self.log.notify_written();
        }
        Ok(())
    }

    async fn get(&self, booking_id: &str) -> PortResult<Option<Booking>> {
        self.db
            .run(
                Operation::Read,
                self.bookings
                    .find_one(doc! { "_id": booking_id })
                    .projection(booking_fields()),
            )
            .await?
            .map(BookingDocument::into_booking)
            .transpose()
    }

    async fn update_if_version(
        &self,
        booking: &Booking,
        expected_version: u64,
        events: &[Event],
    ) -> PortResult<u64> {
        let next_version = expected_version
            .checked_add(1)
            .ok_or_else(|| PortError::Rejected("version is too large".into()))?;
        let next = BookingDocument::from_booking(booking, next_version)?;
        // Identity fields (user, showtime, created-at) never change.
        let mut update = doc! { "$set": {
            "seats": next.seats,
            "totalCents": next.total_cents,
            "currency": next.currency,
            "status": next.status.as_str(),
            "lockId": next.lock_id,
            "lockExpiresAt": next.lock_expires_at,
            "paymentTransactionId": next.payment_transaction_id,
            "failureReason": next.failure_reason,
            "updatedAt": next.updated_at,
            "version": next.version,
            "chargeAttemptedAt": next.charge_attempted_at,
            "refundedAt": next.refunded_at,
            "settleAfter": next.settle_after,
            "settleAttempts": next.settle_attempts,
        }};
        // Appended in the same atomic update; nothing to append is left
        // out (an empty `$each` is not accepted everywhere).
        let embedded = self.log.embed(events)?;
        let mut push = Document::new();
        if !embedded.events.is_empty() {
            push.insert("events", doc! { "$each": &embedded.events });
        }
        if !embedded.pending.is_empty() {
            push.insert("pendingEvents", doc! { "$each": &embedded.pending });
            update.insert(
                "$inc",
                doc! { "unpublished": embedded.pending.len() as i64 },
            );
        }
        if !push.is_empty() {
            update.insert("$push", push);
        }
        if let Ok(set) = update.get_document_mut("$set") {
            for (id, traceparent) in embedded.traces {
                set.insert(format!("eventTraces.{id}"), traceparent);
            }
        }
        let filter = doc! { "_id": &booking.id, "version": int(expected_version, "version")? };
        let previous = self
            .db
            .run(
                Operation::Write,
                self.bookings
                    .clone_with_type::<Document>()
                    .find_one_and_update(filter, update),
            )
            .await?;
        if previous.is_some() {
            if !events.is_empty() {
                self.log.notify_written();
            }
            return Ok(next_version);
        }
        let exists = self
            .db
            .run(
                Operation::Read,
                self.bookings
                    .clone_with_type::<Document>()
                    .find_one(doc! { "_id": &booking.id })
                    .projection(doc! { "_id": 1 }),
            )
            .await?
            .is_some();
        Err(if exists {
            PortError::Conflict(format!(
                "booking {} changed since version {expected_version}",
                booking.id
            ))
        } else {
            PortError::NotFound(format!("booking {}", booking.id))
        })
    }

    async fn list_by_user(&self, user_id: &str, page: &PageRequest) -> PortResult<BookingPage> {
        let limit = paging::clamp_limit(page.limit);
        let after = paging::Cursor::after(page.cursor.as_deref())?;
        let filter = doc! {
            "userId": user_id,
            "$or": [
                { "createdAt": { "$lt": after.created_at } },
                { "createdAt": after.created_at, "_id": { "$lt": after.id } },
            ],
        };
        let items = self
            .find(filter, doc! { "createdAt": -1, "_id": -1 }, limit + 1)
            .await?;
        Ok(paging::page(items, limit))
    }

    async fn list_expired_pending(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        let filter = doc! {
            "status": BookingStatus::Pending.as_str(),
            "lockExpiresAt": { "$lt": int(now, "now")? },
        };
        self.find(
            filter,
            doc! { "lockExpiresAt": 1 },
            paging::clamp_limit(limit),
        )
        .await
    }

    async fn list_unsettled(&self, now: Timestamp, limit: u32) -> PortResult<Vec<Booking>> {
        self.find(
            doc! { "settleAfter": { "$lte": int(now, "now")? } },
            doc! { "settleAfter": 1, "_id": 1 },
            paging::clamp_limit(limit),
        )
        .await
    }

    async fn insert_idempotency_record(&self, record: &IdempotencyRecord) -> PortResult<()> {
        let document = RecordDocument::from_record(record, 1)?;
        match self
            .db
            .run(Operation::Write, self.idempotency.insert_one(document))
            .await
        {
            Ok(_) => Ok(()),
            Err(PortError::Conflict(_)) => Err(PortError::Conflict(format!(
                "idempotency key {} of {} already exists",
                record.key, record.user_id
            ))),
            Err(other) => Err(other),
        }
    }

    async fn get_idempotency_record(
        &self,
        user_id: &str,
        key: &str,
    ) -> PortResult<Option<IdempotencyRecord>> {
        self.db
            .run(
                Operation::Read,
                self.idempotency.find_one(record_filter(user_id, key)),
            )
            .await?
            .map(RecordDocument::into_record)
            .transpose()
    }

    async fn update_idempotency_record(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
    ) -> PortResult<u64> {
        let next_version = expected_version
            .checked_add(1)
            .ok_or_else(|| PortError::Rejected("version is too large".into()))?;
        let next = RecordDocument::from_record(record, next_version)?;
        let update = doc! { "$set": {
            "fingerprint": next.fingerprint,
            "response": next.response,
            "leaseExpiresAt": next.lease_expires_at,
            "expiresAt": next.expires_at,
            "version": next.version,
        }};
        let mut filter = record_filter(&record.user_id, &record.key);
        filter.insert("version", int(expected_version, "version")?);
        let previous = self
            .db
            .run(
                Operation::Write,
                self.idempotency.find_one_and_update(filter, update),
            )
            .await?;
        if previous.is_some() {
            return Ok(next_version);
        }
        let exists = self
            .db
            .run(
                Operation::Read,
                self.idempotency
                    .clone_with_type::<Document>()
                    .find_one(record_filter(&record.user_id, &record.key))
                    .projection(doc! { "_id": 1 }),
            )
            .await?
            .is_some();
        Err(if exists {
            PortError::Conflict(format!(
                "idempotency key {} of {} changed since version {expected_version}",
                record.key, record.user_id
            ))
        } else {
            PortError::NotFound(format!(
                "idempotency key {} of {}",
                record.key, record.user_id
            ))
        })
    }

    async fn purge_idempotency_records(&self, now: Timestamp, limit: u32) -> PortResult<u32> {
        if limit == 0 {
            return Ok(0);
        }
        let expired = doc! { "expiresAt": { "$lt": int(now, "now")? } };
        // deleteMany has no limit: pick the oldest ids, then delete those
        // (still expired: one may have been renewed in between).
        let ids: Vec<mongodb::bson::Bson> = self
            .db
            .run(Operation::Read, async {
                self.idempotency
                    .clone_with_type::<Document>()
                    .find(expired.clone())
                    .sort(doc! { "expiresAt": 1 })
                    .limit(i64::from(limit))
                    .projection(doc! { "_id": 1 })
                    .await?
                    .try_collect::<Vec<Document>>()
                    .await
            })
            .await?
            .into_iter()
            .filter_map(|mut document| document.remove("_id"))
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let mut filter = expired;
        filter.insert("_id", doc! { "$in": ids });
        let deleted = self
            .db
            .run(Operation::Write, self.idempotency.delete_many(filter))
            .await?;
        Ok(u32::try_from(deleted.deleted_count).unwrap_or(u32::MAX))
    }
}

#[async_trait]
impl Adapter for MongoStorage {
    const NAME: &'static str = "storage";
    /// The log whose database it uses and whose events its writes embed.
    type Config = MongoEventLog;

    async fn from_config(log: MongoEventLog) -> anyhow::Result<Self> {
        let name = log.db.name().to_owned();
        let storage = MongoStorage::open(log)
            .await
            .map_err(|error| anyhow::anyhow!("MongoDB database {name}: {error}"))?;
        tracing::info!(database = name, "bookings and events in MongoDB");
        Ok(storage)
    }

    async fn health(&self) -> Result<(), String> {
        self.db.health().await
    }
}
