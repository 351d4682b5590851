//! `booking-host`: the booking service's native host.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    booking_host::main().await
}
