//! WIT `maintenance`: what the host's timer triggers.

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Bookings moved to EXPIRED by this call.
    pub expired: u32,
    /// Bookings another sweeper or request changed first.
    pub skipped: u32,
    /// Idempotency records past their retention, deleted.
    pub idempotency_purged: u32,
    /// Ended bookings whose seats, charge and refund are now settled.
    pub settled: u32,
    /// Bookings that still owe something; retried with backoff.
    pub unsettled: u32,
}
