//! The `payments` port: the Payment service's charges, idempotent by
//! key, refunds, and voided keys.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Knobs, Op, lock};
use crate::model::{ChargeRequest, Receipt, RefundReceipt};
use crate::ports::{Environment, Payments, PortError, PortResult};

#[derive(Default)]
struct PaymentsState {
    /// By idempotency key: the request that created the charge and its
    /// receipt.
    charges: BTreeMap<String, (ChargeRequest, Receipt)>,
    refunds: BTreeMap<String, RefundReceipt>,
    declined_details: HashSet<String>,
    /// Keys closed by `void_charge`: no new charge with them.
    voided: HashSet<String>,
    next: u64,
}

/// The Payment service: one charge per idempotency key (a retry gets the
/// same receipt; reusing a key for another amount is a conflict; a voided
/// key charges no more), one refund per transaction.
pub struct FakePayments {
    env: Arc<dyn Environment>,
    knobs: Arc<Knobs>,
    state: Mutex<PaymentsState>,
}

impl FakePayments {
    pub fn new(env: Arc<dyn Environment>, knobs: Arc<Knobs>) -> FakePayments {
        FakePayments {
            env,
            knobs,
            state: Mutex::default(),
        }
    }

    /// Charges whose `details` equal `token` are declined.
    pub fn decline_details(&self, token: &str) {
        lock(&self.state).declined_details.insert(token.to_string());
    }

    /// Every charge made, in idempotency-key order.
    pub fn charges(&self) -> Vec<Receipt> {
        lock(&self.state)
            .charges
            .values()
            .map(|(_, receipt)| receipt.clone())
            .collect()
    }

    /// The request that created the charge under `idempotency_key`.
    pub fn charge_request(&self, idempotency_key: &str) -> Option<ChargeRequest> {
        lock(&self.state)
            .charges
            .get(idempotency_key)
            .map(|(request, _)| request.clone())
    }

    /// The receipt of the charge under `idempotency_key`.
    pub fn receipt(&self, idempotency_key: &str) -> Option<Receipt> {
        lock(&self.state)
            .charges
            .get(idempotency_key)
            .map(|(_, receipt)| receipt.clone())
    }

    /// Every refund made, in transaction order.
    pub fn refunds(&self) -> Vec<RefundReceipt> {
        lock(&self.state).refunds.values().cloned().collect()
    }

    pub fn is_refunded(&self, transaction_id: &str) -> bool {
        lock(&self.state).refunds.contains_key(transaction_id)
    }
}

#[async_trait]
impl Payments for FakePayments {
    async fn charge(&self, request: &ChargeRequest) -> PortResult<Receipt> {
        self.knobs
            .run(Op::Charge, || {
                let mut state = lock(&self.state);
                if let Some((original, receipt)) = state.charges.get(&request.idempotency_key) {
                    if original.amount_cents != request.amount_cents
                        || original.currency != request.currency
                    {
                        return Err(PortError::Conflict(format!(
                            "idempotency key {} was used for another charge",
                            request.idempotency_key
                        )));
                    }
                    return Ok(receipt.clone());
                }
                if state.voided.contains(&request.idempotency_key) {
                    return Err(PortError::Rejected(format!(
                        "idempotency key {} was voided",
                        request.idempotency_key
                    )));
                }
                if state.declined_details.contains(&request.details) {
                    return Err(PortError::Rejected("card declined".into()));
                }
                state.next += 1;
                let receipt = Receipt {
                    transaction_id: format!("txn-{}", state.next),
                    amount_cents: request.amount_cents,
                    currency: request.currency.clone(),
                    charged_at: self.env.now(),
                };
                state.charges.insert(
                    request.idempotency_key.clone(),
                    (request.clone(), receipt.clone()),
                );
                Ok(receipt)
            })
            .await
    }

    async fn refund(&self, transaction_id: &str) -> PortResult<RefundReceipt> {
        self.knobs
            .run(Op::Refund, || {
                let mut state = lock(&self.state);
                if let Some(refund) = state.refunds.get(transaction_id) {
                    return Ok(refund.clone());
                }
                let amount_cents = state
                    .charges
                    .values()
                    .find(|(_, receipt)| receipt.transaction_id == transaction_id)
                    .map(|(_, receipt)| receipt.amount_cents)
                    .ok_or_else(|| PortError::NotFound(format!("transaction {transaction_id}")))?;
                state.next += 1;
                let refund = RefundReceipt {
                    refund_id: format!("refund-{}", state.next),
                    transaction_id: transaction_id.to_string(),
                    amount_cents,
                };
                state
                    .refunds
                    .insert(transaction_id.to_string(), refund.clone());
                Ok(refund)
            })
            .await
    }

    async fn void_charge(&self, idempotency_key: &str) -> PortResult<Option<Receipt>> {
        self.knobs
            .run(Op::VoidCharge, || {
                let mut state = lock(&self.state);
                state.voided.insert(idempotency_key.to_string());
                Ok(state
                    .charges
                    .get(idempotency_key)
                    .map(|(_, receipt)| receipt.clone()))
            })
            .await
    }
}
