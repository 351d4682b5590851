//! The load scenarios over the full workflow: read-only `getBooking`,
//! and createBooking → processPayment (→ cancelBooking, which refunds and
//! frees the seat for the next iteration: showtimes have 618 seats in all,
//! fewer than a run books).

use std::time::Duration;

use crate::api::Api;
use crate::load::{Stats, closed_loop};

/// The 500-seat showtime of the reference cinema.
pub const FLASH_SHOWTIME: &str = "showtime_flash";
pub const FLASH_SEATS: usize = 500;

/// Seat `index` of the flash showtime: rows A–T of 25 seats.
pub fn flash_seat(index: usize) -> String {
    let row = char::from(b'A' + (index / 25) as u8);
    format!("{row}{}", index % 25 + 1)
}

fn load_test_user(client: usize, iteration: u64) -> String {
    let n = (client as u64 * 7919 + iteration) % 10_000 + 1;
    format!("loadtest_user_{n}")
}

/// Scenario 1's reads: each document as a client sends it.
pub const READS: [(&str, &str); 3] = [
    ("{ logicVersion }", "{ logicVersion }"),
    (
        "showtimeSeats { showtime { id availableSeats } }",
        r#"{ showtimeSeats(showtimeId: "showtime_456") { showtime { id availableSeats } } }"#,
    ),
    (
        "getBooking { id status seats totalAmount }",
        r#"query($b: String!) { getBooking(bookingId: $b) { id status seats totalAmount } }"#,
    ),
];

/// One confirmed booking on `seat` of showtime_456 (each server under
/// test books its own seat: they may share one Cinema service), for
/// `getBooking` to read.
pub async fn confirmed_booking(api: &Api, seat: &str) -> anyhow::Result<String> {
    let id = api
        .create_booking("loadtest_user_1", "showtime_456", &[seat.to_owned()])
        .await?;
    api.process_payment(&id).await?;
    Ok(id)
}

/// Scenario 1: `document` (with `$b` = `booking`), sent over and over.
pub async fn read_only(
    api: &Api,
    document: &'static str,
    booking: &str,
    clients: usize,
    duration: Duration,
) -> Stats {
    let api = api.clone();
    let variables = if document.contains("$b") {
        serde_json::json!({ "b": booking })
    } else {
        serde_json::json!({})
    };
    closed_loop(clients, duration, move |_, _| {
        let (api, variables) = (api.clone(), variables.clone());
        async move { api.read_with(document, variables).await }
    })
    .await
}

/// Scenarios 2 and 4: each client books, pays for and cancels its own
/// seat, so clients never contend for seats (the flash sale does).
pub async fn book_pay_cancel(api: &Api, clients: usize, duration: Duration) -> Stats {
    assert!(clients <= FLASH_SEATS, "one seat per client");
    let api = api.clone();
    closed_loop(clients, duration, move |client, iteration| {
        let api = api.clone();
        async move {
            let seat = [flash_seat(client)];
            let user = load_test_user(client, iteration);
            let id = api.create_booking(&user, FLASH_SHOWTIME, &seat).await?;
            api.process_payment(&id).await?;
            api.cancel_booking(&id).await
        }
    })
    .await
}
