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
//! Money is exposed as integer cents and as a decimal string derived from
//! them (never a float); times as RFC 3339 UTC strings.

use std::sync::Arc;

use async_graphql::{
    Context, EmptySubscription, ErrorExtensions, Object, Result, Schema, SimpleObject,
};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::BookingError;
use crate::model::{
    Booking, BookingPage, BookingStatus, Event, PageRequest, Seat, SeatStatus, Showtime, Timestamp,
};
use crate::validation;
use crate::workflow::{ShowtimeSeats, Workflow};

pub type BookingSchema = Schema<Query, Mutation, EmptySubscription>;

/// Deepest selection nesting accepted.
pub const MAX_DEPTH: usize = 10;
/// Most complexity points (one per field, more for costly fields) one
/// document may cost.
pub const MAX_COMPLEXITY: usize = 500;

pub fn build_schema(workflow: Arc<Workflow>) -> BookingSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .data(workflow)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

fn workflow<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Workflow>> {
    ctx.data::<Arc<Workflow>>()
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
    async fn get_booking(&self, ctx: &Context<'_>, booking_id: String) -> Result<Option<Booking>> {
        workflow(ctx)?
            .get_booking(&booking_id)
            .await
            .map_err(|error| error.extend())
    }

    /// A user's bookings, newest first: one page of `first` (default 50,
    /// at most 100); `userBookingsPage` also returns the next cursor.
    async fn get_user_bookings(
        &self,
        ctx: &Context<'_>,
        user_id: String,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<Vec<Booking>> {
        Ok(user_page(ctx, user_id, first, after).await?.items)
    }

    /// A page of a user's bookings, newest first, with the cursor of the
    /// next page.
    async fn user_bookings_page(
        &self,
        ctx: &Context<'_>,
        user_id: String,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<BookingPage> {
        user_page(ctx, user_id, first, after).await
    }

    /// A showtime and the status of each of its seats.
    async fn showtime_seats(
        &self,
        ctx: &Context<'_>,
        showtime_id: String,
    ) -> Result<ShowtimeSeats> {
        workflow(ctx)?
            .showtime_seats(&showtime_id)
            .await
            .map_err(|error| error.extend())
    }

    /// The events published for a booking, oldest first.
    async fn booking_events(&self, ctx: &Context<'_>, booking_id: String) -> Result<Vec<Event>> {
        workflow(ctx)?
            .booking_events(&booking_id)
            .await
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

#[derive(SimpleObject)]
pub struct CreateBookingPayload {
    success: bool,
    message: String,
    lock_id: Option<String>,
    booking: Option<Booking>,
    code: Option<String>,
}

#[derive(SimpleObject)]
pub struct PaymentPayload {
    success: bool,
    message: String,
    booking: Option<Booking>,
    code: Option<String>,
}

#[derive(SimpleObject)]
pub struct CancelBookingPayload {
    success: bool,
    message: String,
    booking: Option<Booking>,
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
    async fn create_booking(
        &self,
        ctx: &Context<'_>,
        user_id: String,
        showtime_id: String,
        seat_numbers: Vec<String>,
    ) -> Result<Option<CreateBookingPayload>> {
        let created = workflow(ctx)?
            .create_booking(&user_id, &showtime_id, seat_numbers)
            .await
            .map_err(|error| error.extend())?;
        Ok(Some(CreateBookingPayload {
            success: true,
            message: "booking created; pay before the seat lock expires (lockExpiresAt)"
                .to_string(),
            lock_id: Some(created.lock_id),
            booking: Some(created.booking),
            code: None,
        }))
    }

    /// Pays a PENDING booking and confirms its seats. Safe to retry: the
    /// customer is never charged twice for one booking.
    async fn process_payment(
        &self,
        ctx: &Context<'_>,
        booking_id: String,
        payment_method: String,
        payment_details: String,
    ) -> Result<Option<PaymentPayload>> {
        let outcome = workflow(ctx)?
            .process_payment(&booking_id, &payment_method, &payment_details)
            .await
            .map_err(|error| error.extend())?;
        Ok(Some(PaymentPayload {
            success: outcome.succeeded(),
            message: outcome.message(),
            code: outcome
                .failure
                .as_ref()
                .map(|error| error.code().to_string()),
            booking: Some(outcome.booking),
        }))
    }

    /// Cancels a PENDING booking (seats released) or a CONFIRMED one
    /// (payment refunded, seats released).
    async fn cancel_booking(
        &self,
        ctx: &Context<'_>,
        booking_id: String,
    ) -> Result<Option<CancelBookingPayload>> {
        let booking = workflow(ctx)?
            .cancel_booking(&booking_id)
            .await
            .map_err(|error| error.extend())?;
        let message = match &booking.failure_reason {
            Some(reason) => format!("booking {}: {reason}", booking.status.as_str()),
            None => format!("booking {}", booking.status.as_str()),
        };
        Ok(Some(CancelBookingPayload {
            success: true,
            message,
            booking: Some(booking),
            code: None,
        }))
    }
}

#[Object]
impl Booking {
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
        self.status
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

    async fn created_at(&self) -> Result<String> {
        rfc3339(self.created_at)
    }

    async fn updated_at(&self) -> Result<String> {
        rfc3339(self.updated_at)
    }

    /// The booking's events, oldest first. Costs a call to the event log
    /// per booking, hence the higher complexity.
    #[graphql(complexity = "10 + child_complexity")]
    async fn events(&self, ctx: &Context<'_>) -> Result<Vec<Event>> {
        workflow(ctx)?
            .booking_events(&self.id)
            .await
            .map_err(|error| error.extend())
    }
}

#[Object]
impl BookingPage {
    async fn items(&self) -> &[Booking] {
        &self.items
    }

    /// Pass as `after` to get the next page; `null` on the last page.
    async fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }
}

#[Object]
impl ShowtimeSeats {
    async fn showtime(&self) -> &Showtime {
        &self.showtime
    }

    async fn seats(&self) -> &[Seat] {
        &self.seats
    }
}

#[Object]
impl Showtime {
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

#[Object]
impl Seat {
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
        self.status
    }
}

#[Object(name = "BookingEvent")]
impl Event {
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
        self.status
    }

    async fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}
