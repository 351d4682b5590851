//! The GraphQL API. Field and argument names are those of the original
//! Python service, so its documents (`createBooking`, `processPayment`,
//! `getBooking`, `getUserBookings`) run unchanged.
//!
//! How outcomes are reported — one rule for every mutation:
//!
//! - A request refused with nothing changed (bad input, unknown ids,
//!   seats taken, a dependency down or slow, a payment timeout, a
//!   concurrent modification) is a GraphQL error: the mutation's field is
//!   `null` and the error carries `extensions.code` (see
//!   `BookingError::code`) and `extensions.retryable`. Queries fail the
//!   same way, except that `getBooking` answers `null` for an unknown id.
//! - A workflow that ran and ended in a failure state (payment declined:
//!   PAYMENT_FAILED; seats lost after the charge: FAILED, refunded) is a
//!   payload with `success: false`, a `code`, a `message` and the
//!   `booking` as stored.
//! - Errors async-graphql raises itself (syntax, unknown fields, wrong
//!   argument types, limits) get `GRAPHQL_PARSE_FAILED` or
//!   `GRAPHQL_VALIDATION_FAILED` in `http`.
//!
//! Who may call what is in `access`; the three mutations take an optional
//! `idempotencyKey` (or the `Idempotency-Key` header), see `idempotency`.
//!
//! Money is exposed as integer cents and as a decimal string derived from
//! them (never a float); times as RFC 3339 UTC strings.

mod limits;
pub mod subscription;

use std::future::Future;
use std::sync::{Arc, OnceLock};

use async_graphql::{Context, ErrorExtensions, Object, Result, Schema, SimpleObject};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::access::Principal;
use crate::error::BookingError;
use crate::idempotency::{self, Claim, Idempotency, ReplayedError};
use crate::model::{self, Booking, BookingPage, Event, PageRequest, Seat, Showtime, Timestamp};
use crate::query_cost;
use crate::validation;
use crate::workflow::Workflow;

pub use subscription::Subscription;

pub type BookingSchema = Schema<Query, Mutation, Subscription>;

/// The model's enums as GraphQL enums (the same names; `remote` makes
/// the conversion exhaustive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(remote = "model::BookingStatus")]
enum BookingStatus {
    Pending,
    Confirmed,
    PaymentFailed,
    Failed,
    Cancelled,
    Expired,
    Refunded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(remote = "model::SeatStatus")]
enum SeatStatus {
    Available,
    Locked,
    Booked,
}

/// GraphQL views of the model's records, which know nothing of GraphQL
/// (`booking-model`): wrappers that move the record in, no copy.
macro_rules! views {
    ($($(#[$attribute:meta])* $view:ident($record:ty)),* $(,)?) => {$(
        $(#[$attribute])*
        pub struct $view($record);

        impl std::ops::Deref for $view {
            type Target = $record;
            fn deref(&self) -> &$record {
                &self.0
            }
        }

        impl From<$record> for $view {
            fn from(record: $record) -> Self {
                $view(record)
            }
        }
    )*};
}

fn views<R, V: From<R>>(records: Vec<R>) -> Vec<V> {
    records.into_iter().map(V::from).collect()
}

views!(
    /// Stored in idempotent answers (the mutation payloads).
    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    BookingView(Booking),
    EventView(Event),
    ShowtimeView(Showtime),
    SeatView(Seat),
);

pub struct BookingPageView {
    items: Vec<BookingView>,
    next_cursor: Option<String>,
}

impl From<BookingPage> for BookingPageView {
    fn from(page: BookingPage) -> Self {
        BookingPageView {
            items: views(page.items),
            next_cursor: page.next_cursor,
        }
    }
}

/// A showtime whose seat map is fetched only if `seats` is selected.
pub struct ShowtimeSeatsView {
    showtime: ShowtimeView,
}

/// The schema, built once: per process natively, per component at build
/// time (the pre-initializer runs `wizer-initialize`, which builds it, and
/// ships the memory it left). It holds no settings and no per-request
/// data: each request brings its `Arc<Workflow>` (whose settings carry
/// the depth and complexity limits `limits` applies, and whether
/// introspection is on) and its `RequestContext`.
pub fn schema() -> &'static BookingSchema {
    static SCHEMA: OnceLock<BookingSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::build(Query, Mutation, Subscription)
            .extension(limits::RequestLimits)
            .finish()
    })
}

/// What the transport learned about one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub principal: Principal,
    /// The `Idempotency-Key` header, for a mutation sent without an
    /// `idempotencyKey` argument.
    pub idempotency_key: Option<String>,
    /// Mutations answered from their key's stored answer (for the report).
    pub idempotency_replays: Arc<std::sync::atomic::AtomicU32>,
}

fn workflow<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Workflow>> {
    ctx.data::<Arc<Workflow>>()
}

fn principal<'a>(ctx: &Context<'a>) -> Result<&'a Principal> {
    Ok(&ctx.data::<RequestContext>()?.principal)
}

fn coded(error: BookingError) -> async_graphql::Error {
    error.extend()
}

/// Loads a booking the caller may read (`None` if there is none).
async fn readable_booking(ctx: &Context<'_>, booking_id: &str) -> Result<Option<Booking>> {
    let principal = principal(ctx)?;
    principal.require().map_err(coded)?;
    let workflow = workflow(ctx)?;
    let Some(booking) = workflow.get_booking(booking_id).await.map_err(coded)? else {
        return Ok(None);
    };
    principal.may_read(&booking.user_id).map_err(coded)?;
    // Only once the caller may see it may the read expire it.
    workflow
        .expire_if_lapsed(booking)
        .await
        .map(Some)
        .map_err(coded)
}

/// The owner of a booking the caller wants to change, once checked that
/// the caller is that owner. `None` when nobody needs to know: auth is
/// off and no idempotency key scopes by owner.
async fn changeable_booking_owner(
    ctx: &Context<'_>,
    booking_id: &str,
    key: Option<&str>,
) -> Result<Option<String>> {
    let principal = principal(ctx)?;
    if principal.require().map_err(coded)?.is_none() && key.is_none() {
        return Ok(None);
    }
    let booking = workflow(ctx)?
        .get_booking(booking_id)
        .await
        .map_err(coded)?
        .ok_or_else(|| coded(BookingError::BookingNotFound(booking_id.to_string())))?;
    principal.may_act_for(&booking.user_id).map_err(coded)?;
    Ok(Some(booking.user_id))
}

/// The key a mutation runs under: its argument, else the header.
fn effective_key(ctx: &Context<'_>, argument: Option<String>) -> Result<Option<String>> {
    let header = &ctx.data::<RequestContext>()?.idempotency_key;
    Ok(argument.or_else(|| header.clone()))
}

/// Runs `operation` at most once per (owner, key): see `idempotency`.
async fn idempotently<T, Run, Fut>(
    ctx: &Context<'_>,
    owner: Option<&str>,
    key: Option<String>,
    (operation, arguments): (&str, serde_json::Value),
    run: Run,
) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    Run: FnOnce() -> Fut,
    Fut: Future<Output = std::result::Result<T, BookingError>>,
{
    let (Some(owner), Some(key)) = (owner, key) else {
        return run().await.map_err(coded);
    };
    idempotency::validate_key(&key).map_err(coded)?;
    let workflow = workflow(ctx)?;
    let keys = Idempotency {
        storage: workflow.ports().storage.as_ref(),
        env: workflow.ports().env.as_ref(),
        retention_ms: u64::from(workflow.settings().idempotency_retention_hours) * 3_600_000,
        lease_ms: u64::from(workflow.settings().idempotency_lease_seconds) * 1_000,
    };
    let fingerprint = idempotency::fingerprint(operation, &arguments);
    match keys
        .claim::<T>(owner, &key, &fingerprint)
        .await
        .map_err(coded)?
    {
        Claim::Replay(answer) => {
            if let Ok(context) = ctx.data::<RequestContext>() {
                context
                    .idempotency_replays
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            answer.map_err(replayed)
        }
        Claim::Run(lease) => {
            let outcome = run().await;
            keys.finish(lease, &outcome).await;
            outcome.map_err(coded)
        }
    }
}

/// A final error answered the first time a key was used, as it was.
fn replayed(error: ReplayedError) -> async_graphql::Error {
    async_graphql::Error::new(error.message).extend_with(|_, extensions| {
        extensions.set("code", error.code);
        extensions.set("retryable", false);
        extensions.set("replayed", true);
    })
}

/// Cents as a decimal amount with two places, e.g. 3000 → "30.00".
pub fn decimal(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// A timestamp as RFC 3339 UTC with milliseconds.
pub fn rfc3339(timestamp: Timestamp) -> Result<String> {
    i64::try_from(timestamp)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
        .ok_or_else(|| {
            BookingError::Internal(format!("timestamp {timestamp} is out of range")).extend()
        })
}

pub struct Query;

#[Object]
impl Query {
    /// A booking by id; `null` if there is none.
    #[graphql(complexity = "query_cost::dependency_call(child_complexity)")]
    async fn get_booking(
        &self,
        ctx: &Context<'_>,
        booking_id: String,
    ) -> Result<Option<BookingView>> {
        Ok(readable_booking(ctx, &booking_id).await?.map(BookingView))
    }

    /// A user's bookings, newest first: one page of `first` (default 50,
    /// at most 100); `userBookingsPage` also returns the next cursor.
    #[graphql(complexity = "query_cost::page(first, child_complexity)")]
    async fn get_user_bookings(
        &self,
        ctx: &Context<'_>,
        user_id: String,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<Vec<BookingView>> {
        Ok(views(user_page(ctx, user_id, first, after).await?.items))
    }

    /// A page of a user's bookings, newest first, with the cursor of the
    /// next page.
    #[graphql(complexity = "query_cost::page(first, child_complexity)")]
    async fn user_bookings_page(
        &self,
        ctx: &Context<'_>,
        user_id: String,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<BookingPageView> {
        user_page(ctx, user_id, first, after).await.map(Into::into)
    }

    /// A showtime and the status of each of its seats. The showtime is
    /// one Cinema call, costed with this field; the seat map another,
    /// costed with `seats`.
    #[graphql(complexity = "query_cost::dependency_call(child_complexity)")]
    async fn showtime_seats(
        &self,
        ctx: &Context<'_>,
        showtime_id: String,
    ) -> Result<ShowtimeSeatsView> {
        workflow(ctx)?
            .find_showtime(&showtime_id)
            .await
            .map(|showtime| ShowtimeSeatsView {
                showtime: showtime.into(),
            })
            .map_err(|error| error.extend())
    }

    /// The events published for a booking, oldest first.
    #[graphql(complexity = "query_cost::events(child_complexity)")]
    async fn booking_events(
        &self,
        ctx: &Context<'_>,
        booking_id: String,
    ) -> Result<Vec<EventView>> {
        readable_booking(ctx, &booking_id).await?;
        workflow(ctx)?
            .booking_events(&booking_id)
            .await
            .map(views)
            .map_err(|error| error.extend())
    }

    /// Which build of the booking logic answered.
    async fn logic_version(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(workflow(ctx)?.settings().logic_version.clone())
    }

    /// The sha256 of the component that answered, when its host says
    /// (our host does; a native build has none).
    async fn logic_sha256(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(workflow(ctx)?.settings().logic_sha256.clone())
    }
}

async fn user_page(
    ctx: &Context<'_>,
    user_id: String,
    first: i32,
    after: Option<String>,
) -> Result<BookingPage> {
    principal(ctx)?.may_read(&user_id).map_err(coded)?;
    let limit = validation::page_size(first).map_err(|error| error.extend())?;
    workflow(ctx)?
        .user_bookings(
            &user_id,
            PageRequest {
                cursor: after,
                limit,
            },
        )
        .await
        .map_err(|error| error.extend())
}

pub struct Mutation;

#[derive(SimpleObject, Serialize, Deserialize)]
pub struct CreateBookingPayload {
    success: bool,
    message: String,
    lock_id: Option<String>,
    booking: Option<BookingView>,
    code: Option<String>,
}

#[derive(SimpleObject, Serialize, Deserialize)]
pub struct PaymentPayload {
    success: bool,
    message: String,
    booking: Option<BookingView>,
    code: Option<String>,
}

#[derive(SimpleObject, Serialize, Deserialize)]
pub struct LockExtensionPayload {
    success: bool,
    message: String,
    booking: Option<BookingView>,
    /// Always `null` today, as for `cancelBooking`: a refusal is a
    /// GraphQL error.
    code: Option<String>,
}

#[derive(SimpleObject, Serialize, Deserialize)]
pub struct CancelBookingPayload {
    success: bool,
    message: String,
    booking: Option<BookingView>,
    /// Always `null` today: a cancellation either happens or is refused
    /// with a GraphQL error. Kept for the same shape as the other payloads.
    code: Option<String>,
}

/// Mutation fields are nullable so that a refused request (a GraphQL
/// error) nulls only its own field, not the whole response.
#[Object]
impl Mutation {
    /// Locks the seats and creates a PENDING booking that holds them until
    /// `lockExpiresAt`.
    #[graphql(complexity = "query_cost::dependency_call(child_complexity)")]
    async fn create_booking(
        &self,
        ctx: &Context<'_>,
        user_id: String,
        showtime_id: String,
        seat_numbers: Vec<String>,
        #[graphql(desc = "Sending the same key again replays the first answer (see README).")]
        idempotency_key: Option<String>,
    ) -> Result<Option<CreateBookingPayload>> {
        principal(ctx)?.may_act_for(&user_id).map_err(coded)?;
        let key = effective_key(ctx, idempotency_key)?;
        let arguments = json!({
            "userId": user_id, "showtimeId": showtime_id, "seatNumbers": seat_numbers,
        });
        let workflow = workflow(ctx)?;
        idempotently(
            ctx,
            Some(&user_id),
            key,
            ("createBooking", arguments),
            || async {
                let created = workflow
                    .create_booking(&user_id, &showtime_id, seat_numbers)
                    .await?;
                Ok(Some(CreateBookingPayload {
                    success: true,
                    message: "booking created; pay before the seat lock expires (lockExpiresAt)"
                        .to_string(),
                    lock_id: Some(created.lock_id),
                    booking: Some(BookingView(created.booking)),
                    code: None,
                }))
            },
        )
        .await
    }

    /// Pays a PENDING booking and confirms its seats. Safe to retry: the
    /// customer is never charged twice for one booking.
    #[graphql(complexity = "query_cost::dependency_call(child_complexity)")]
    async fn process_payment(
        &self,
        ctx: &Context<'_>,
        booking_id: String,
        payment_method: String,
        payment_details: String,
        #[graphql(desc = "Sending the same key again replays the first answer (see README).")]
        idempotency_key: Option<String>,
    ) -> Result<Option<PaymentPayload>> {
        let key = effective_key(ctx, idempotency_key)?;
        let owner = changeable_booking_owner(ctx, &booking_id, key.as_deref()).await?;
        let arguments = json!({
            "bookingId": booking_id, "paymentMethod": payment_method,
            "paymentDetails": payment_details,
        });
        let workflow = workflow(ctx)?;
        idempotently(
            ctx,
            owner.as_deref(),
            key,
            ("processPayment", arguments),
            || async {
                let outcome = workflow
                    .process_payment(&booking_id, &payment_method, &payment_details)
                    .await?;
                Ok(Some(PaymentPayload {
                    success: outcome.succeeded(),
                    message: outcome.message(),
                    code: outcome
                        .failure
                        .as_ref()
                        .map(|error| error.code().to_string()),
                    booking: Some(BookingView(outcome.booking)),
                }))
            },
        )
        .await
    }

    /// Extends a PENDING booking's seat lock to `SEAT_LOCK_DURATION` from
    /// now, never beyond `LOCK_MAX_HOLD_SECONDS` after booking
    /// (`LOCK_EXTENSION_LIMIT` once there); `booking.lockExpiresAt` is the
    /// new end.
    #[graphql(complexity = "query_cost::dependency_call(child_complexity)")]
    async fn extend_booking_lock(
        &self,
        ctx: &Context<'_>,
        booking_id: String,
        #[graphql(desc = "Sending the same key again replays the first answer (see README).")]
        idempotency_key: Option<String>,
    ) -> Result<Option<LockExtensionPayload>> {
        let key = effective_key(ctx, idempotency_key)?;
        let owner = changeable_booking_owner(ctx, &booking_id, key.as_deref()).await?;
        let workflow = workflow(ctx)?;
        idempotently(
            ctx,
            owner.as_deref(),
            key,
            ("extendBookingLock", json!({ "bookingId": booking_id })),
            || async {
                let booking = workflow.extend_lock(&booking_id).await?;
                Ok(Some(LockExtensionPayload {
                    success: true,
                    message: "seat lock extended; pay before lockExpiresAt".to_string(),
                    booking: Some(BookingView(booking)),
                    code: None,
                }))
            },
        )
        .await
    }

    /// Cancels a PENDING booking (seats released) or a CONFIRMED one
    /// (payment refunded, seats released).
    #[graphql(complexity = "query_cost::dependency_call(child_complexity)")]
    async fn cancel_booking(
        &self,
        ctx: &Context<'_>,
        booking_id: String,
        #[graphql(desc = "Sending the same key again replays the first answer (see README).")]
        idempotency_key: Option<String>,
    ) -> Result<Option<CancelBookingPayload>> {
        let key = effective_key(ctx, idempotency_key)?;
        let owner = changeable_booking_owner(ctx, &booking_id, key.as_deref()).await?;
        let workflow = workflow(ctx)?;
        idempotently(
            ctx,
            owner.as_deref(),
            key,
            ("cancelBooking", json!({ "bookingId": booking_id })),
            || async {
                let booking = workflow.cancel_booking(&booking_id).await?;
                let money = match (&booking.payment_transaction_id, booking.refunded_at) {
                    (_, Some(_)) => "; payment refunded",
                    (Some(_), None) => "; refund pending, retried until it succeeds",
                    (None, None) => "",
                };
                let message = match &booking.failure_reason {
                    Some(reason) => {
                        format!("booking {}: {reason}{money}", booking.status.as_str())
                    }
                    None => format!("booking {}{money}", booking.status.as_str()),
                };
                Ok(Some(CancelBookingPayload {
                    success: true,
                    message,
                    booking: Some(BookingView(booking)),
                    code: None,
                }))
            },
        )
        .await
    }
}

#[Object(name = "Booking")]
impl BookingView {
    async fn id(&self) -> &str {
        &self.id
    }

    async fn user_id(&self) -> &str {
        &self.user_id
    }

    async fn showtime_id(&self) -> &str {
        &self.showtime_id
    }

    async fn seats(&self) -> &[String] {
        &self.seats
    }

    /// The total as a decimal string, e.g. "30.00".
    async fn total_amount(&self) -> String {
        decimal(self.total_cents)
    }

    async fn total_cents(&self) -> u64 {
        self.total_cents
    }

    async fn currency(&self) -> &str {
        &self.currency
    }

    async fn status(&self) -> BookingStatus {
        self.status.into()
    }

    async fn lock_id(&self) -> &str {
        &self.lock_id
    }

    async fn lock_expires_at(&self) -> Result<String> {
        rfc3339(self.lock_expires_at)
    }

    async fn payment_transaction_id(&self) -> Option<&str> {
        self.payment_transaction_id.as_deref()
    }

    /// Why the booking ended in a failure state, for people.
    async fn failure_reason(&self) -> Option<&str> {
        self.failure_reason.as_deref()
    }

    /// When the charge of an ended booking was paid back; `null` while a
    /// refund is still owed (the service retries it until it succeeds)
    /// and for bookings that were never charged.
    async fn refunded_at(&self) -> Result<Option<String>> {
        self.refunded_at.map(rfc3339).transpose()
    }

    /// Whether the service still owes this ended booking something: its
    /// seats freed, its charge found or refunded. Retried until done.
    async fn settlement_pending(&self) -> bool {
        self.settle_after.is_some()
    }

    async fn created_at(&self) -> Result<String> {
        rfc3339(self.created_at)
    }

    async fn updated_at(&self) -> Result<String> {
        rfc3339(self.updated_at)
    }

    /// The booking's events, oldest first. Costs a call to the event log
    /// per booking, hence the higher complexity.
    #[graphql(complexity = "query_cost::events(child_complexity)")]
    async fn events(&self, ctx: &Context<'_>) -> Result<Vec<EventView>> {
        workflow(ctx)?
            .booking_events(&self.id)
            .await
            .map(views)
            .map_err(|error| error.extend())
    }
}

#[Object(name = "BookingPage")]
impl BookingPageView {
    async fn items(&self) -> &[BookingView] {
        &self.items
    }

    /// Pass as `after` to get the next page; `null` on the last page.
    async fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }
}

#[Object(name = "ShowtimeSeats")]
impl ShowtimeSeatsView {
    async fn showtime(&self) -> &ShowtimeView {
        &self.showtime
    }

    #[graphql(complexity = "query_cost::dependency_call(child_complexity)")]
    async fn seats(&self, ctx: &Context<'_>) -> Result<Vec<SeatView>> {
        workflow(ctx)?
            .seat_map(&self.showtime.id)
            .await
            .map(views)
            .map_err(|error| error.extend())
    }
}

#[Object(name = "Showtime")]
impl ShowtimeView {
    async fn id(&self) -> &str {
        &self.id
    }

    async fn movie_id(&self) -> &str {
        &self.movie_id
    }

    async fn movie_title(&self) -> &str {
        &self.movie_title
    }

    async fn theater(&self) -> &str {
        &self.theater
    }

    async fn starts_at(&self) -> Result<String> {
        rfc3339(self.starts_at)
    }

    async fn currency(&self) -> &str {
        &self.currency
    }

    async fn total_seats(&self) -> u32 {
        self.total_seats
    }

    async fn available_seats(&self) -> u32 {
        self.available_seats
    }
}

#[Object(name = "Seat")]
impl SeatView {
    async fn number(&self) -> &str {
        &self.number
    }

    async fn row(&self) -> &str {
        &self.row
    }

    async fn price_cents(&self) -> u64 {
        self.price_cents
    }

    /// The price as a decimal string, e.g. "15.00".
    async fn price(&self) -> String {
        decimal(self.price_cents)
    }

    async fn status(&self) -> SeatStatus {
        self.status.into()
    }
}

#[Object(name = "BookingEvent")]
impl EventView {
    async fn id(&self) -> &str {
        &self.id
    }

    /// The routing key, e.g. `booking.confirmed`.
    #[graphql(name = "type")]
    async fn kind(&self) -> &'static str {
        self.kind.as_str()
    }

    async fn occurred_at(&self) -> Result<String> {
        rfc3339(self.occurred_at)
    }

    async fn booking_id(&self) -> &str {
        &self.booking_id
    }

    async fn user_id(&self) -> &str {
        &self.user_id
    }

    async fn showtime_id(&self) -> &str {
        &self.showtime_id
    }

    async fn seats(&self) -> &[String] {
        &self.seats
    }

    async fn amount_cents(&self) -> u64 {
        self.amount_cents
    }

    async fn currency(&self) -> &str {
        &self.currency
    }

    async fn status(&self) -> BookingStatus {
        self.status.into()
    }

    async fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}
