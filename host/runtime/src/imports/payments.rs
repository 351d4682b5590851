//! `cinema:booking/payments` → `ports::Payments`.

use super::Answer;
use crate::bindings::payments::{ChargeRequest, Host, Receipt, RefundReceipt};
use crate::bindings::types::Error;
use crate::state::RequestState;

impl Host for RequestState {
    async fn charge(&mut self, request: ChargeRequest) -> Result<Receipt, Error> {
        let request = request.into();
        self.call("payments", "charge", |ports| {
            ports.payments.charge(&request)
        })
        .await
        .answer()
    }

    async fn refund(&mut self, transaction_id: String) -> Result<RefundReceipt, Error> {
        self.call("payments", "refund", |ports| {
            ports.payments.refund(&transaction_id)
        })
        .await
        .answer()
    }

    async fn void_charge(&mut self, idempotency_key: String) -> Result<Option<Receipt>, Error> {
        let voided = self
            .call("payments", "void_charge", |ports| {
                ports.payments.void_charge(&idempotency_key)
            })
            .await?;
        Ok(voided.map(Into::into))
    }
}
