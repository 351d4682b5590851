//! WIT `payments`: the Payment service.

use crate::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// The same key always means the same charge.
    pub idempotency_key: String,
    pub amount_cents: u64,
    pub currency: String,
    pub method: String,
    pub details: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub transaction_id: String,
    pub amount_cents: u64,
    pub currency: String,
    pub charged_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReceipt {
    pub refund_id: String,
    pub transaction_id: String,
    pub amount_cents: u64,
}
