//! Calls the component's `sweep-expired` on a timer: expiry, then the
//! settlement of ended bookings (seat releases, voids of unrecorded
//! charge attempts, refunds, retried with backoff). The rules live in the
//! logic; this only decides when to run it.

use std::sync::Arc;
use std::time::Duration;

use booking_telemetry::metrics::{RunLabels, RunOutcome};
use tokio::sync::watch;

use crate::app::AppState;

/// Bookings expired, bookings settled and idempotency records purged per
/// component call (each up to this many); a full batch means "run again".
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
            let metrics = &state.metrics.sweeper;
            let outcome = if swept.is_ok() {
                RunOutcome::ok
            } else {
                RunOutcome::failed
            };
            metrics.runs.get_or_create(&RunLabels { outcome }).inc();
            match swept {
                Ok(report) => {
                    metrics.expired.inc_by(report.expired.into());
                    metrics.settled.inc_by(report.settled.into());
                    metrics.retried.inc_by(report.unsettled.into());
                    metrics
                        .idempotency_purged
                        .inc_by(report.idempotency_purged.into());
                    let settlements = report.settled + report.unsettled;
                    if report.expired > 0
                        || report.skipped > 0
                        || settlements > 0
                        || report.idempotency_purged > 0
                    {
                        tracing::info!(
                            expired = report.expired,
                            skipped = report.skipped,
                            settled = report.settled,
                            unsettled = report.unsettled,
                            idempotency_purged = report.idempotency_purged,
                            "sweep"
                        );
                    }
                    // Any batch full means more may be due. Settlements
                    // that failed are rescheduled later, so this ends.
                    if report.expired + report.skipped < BATCH
                        && settlements < BATCH
                        && report.idempotency_purged < BATCH
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
