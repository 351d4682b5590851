//! The outbox relay: forwards stored events to the broker and marks each
//! published only after the broker confirmed it. At least once: a crash
//! between the confirm and the mark sends an event again, and consumers
//! de-duplicate on the event id.
//!
//! Order per booking holds even across failures and several hosts sharing
//! one store: a round sends only the oldest unpublished event of each
//! booking, so a booking's next event is sent only once its previous one
//! is confirmed and marked.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use booking_telemetry::metrics::RelayMetrics;
use tokio::sync::watch;

use crate::outbox::{Outbox, Unsent};
use crate::rabbitmq::RabbitPublisher;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Events read from the outbox per round.
    pub batch: u32,
    /// Longest wait between checks of an idle outbox. Writes of this host
    /// wake the relay at once; this catches other hosts' events.
    pub idle_poll: Duration,
    /// First wait after a failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch: 200,
            idle_poll: Duration::from_secs(1),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Why a round stopped short.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("outbox: {0}")]
    Outbox(#[from] booking_logic::ports::PortError),
    #[error("{0}")]
    Publish(#[from] crate::rabbitmq::PublishError),
}

/// Runs until `stop` turns true or its sender is dropped. It is checked
/// only between rounds, so a round's confirmed events are always marked
/// before the relay returns.
pub async fn run(
    outbox: Arc<dyn Outbox>,
    publisher: Arc<RabbitPublisher>,
    config: RelayConfig,
    metrics: RelayMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let written = outbox.written();
    let mut backoff = config.min_backoff;
    let mut failing = false;
    loop {
        let (pause, wake_on_write) = match round(outbox.as_ref(), &publisher, config.batch).await {
            Ok(published) => {
                metrics.published.inc_by(published as u64);
                if failing {
                    tracing::info!(exchange = publisher.exchange(), "event relay recovered");
                    failing = false;
                }
                backoff = config.min_backoff;
                // Idle: wait for a write here, or poll for other hosts'.
                if published == 0 {
                    (config.idle_poll, true)
                } else {
                    (Duration::ZERO, false)
                }
            }
            Err(error) => {
                metrics.failures.inc();
                // Log a failing streak once, not every retry.
                if !failing {
                    tracing::warn!(
                        "event relay: {error}; retrying with backoff up to {:?}",
                        config.max_backoff
                    );
                    failing = true;
                }
                let pause = backoff;
                backoff = (backoff * 2).min(config.max_backoff);
                (pause, false)
            }
        };
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = written.notified(), if wake_on_write => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One round: returns how many events were published.
async fn round(
    outbox: &dyn Outbox,
    publisher: &RabbitPublisher,
    batch: u32,
) -> Result<usize, RoundError> {
    let heads = oldest_per_booking(outbox.claim(batch).await?);
    if heads.is_empty() {
        return Ok(0);
    }
    let results = publisher.publish(&heads).await;
    let mut confirmed = Vec::with_capacity(heads.len());
    let mut first_failure = None;
    for (unsent, result) in heads.into_iter().zip(results) {
        match result {
            Ok(()) => confirmed.push(unsent.event),
            Err(error) => {
                first_failure.get_or_insert(error);
            }
        }
    }
    if !confirmed.is_empty() {
        outbox.mark_published(&confirmed).await?;
    }
    match first_failure {
        Some(error) => Err(error.into()),
        None => Ok(confirmed.len()),
    }
}

/// The first event of each booking, keeping the outbox's order.
fn oldest_per_booking(events: Vec<Unsent>) -> Vec<Unsent> {
    let mut seen = HashSet::new();
    events
        .into_iter()
        .filter(|unsent| seen.insert(unsent.event.booking_id.clone()))
        .collect()
}
