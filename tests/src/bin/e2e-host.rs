//! The booking host's command line, built with the end-to-end tests so
//! they can run it as a process of its own (`CARGO_BIN_EXE_e2e-host`):
//! signals, exit status, restarts on the same data.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    booking_host::main().await
}
