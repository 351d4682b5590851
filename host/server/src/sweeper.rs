//! Calls the component's `sweep-expired` on a timer. The expiry rule lives
//! in the logic; this only decides when to run it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::app::AppState;

/// Bookings expired (and idempotency records purged) per component call;
/// a full batch means "run again".
const BATCH: u32 = 100;

/// Runs until `stop` turns true or its sender is dropped. It is checked
/// between component calls only: a batch is never cut halfway.
pub async fn run(state: Arc<AppState>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = ticker.tick() => {}
        }
        while !*stop.borrow() {
            let swept = match &state.native {
                Some(native) => native.sweep_expired(BATCH).await,
                None => state.runtime.sweep_expired(BATCH).await,
            };
            match swept {
                Ok(report) => {
                    if report.expired > 0 || report.skipped > 0 || report.idempotency_purged > 0 {
                        tracing::info!(
                            expired = report.expired,
                            skipped = report.skipped,
                            idempotency_purged = report.idempotency_purged,
                            "expiry sweep"
                        );
                    }
                    // Either batch full means more may be due.
                    if report.expired + report.skipped < BATCH && report.idempotency_purged < BATCH
                    {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!("expiry sweep failed: {error:#}");
                    break;
                }
            }
        }
    }
}
