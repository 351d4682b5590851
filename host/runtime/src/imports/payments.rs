//! `cinema:booking/payments` → `ports::Payments`.

use booking_logic::model;

use super::wit_error;
use crate::bindings::payments::{ChargeRequest, Host, Receipt, RefundReceipt};
use crate::bindings::types::Error;
use crate::state::RequestState;

fn receipt_to_wit(receipt: model::Receipt) -> Receipt {
    Receipt {
        transaction_id: receipt.transaction_id,
        amount_cents: receipt.amount_cents,
        currency: receipt.currency,
        charged_at: receipt.charged_at,
    }
}

impl Host for RequestState {
    async fn charge(&mut self, request: ChargeRequest) -> Result<Receipt, Error> {
        let request = model::ChargeRequest {
            idempotency_key: request.idempotency_key,
            amount_cents: request.amount_cents,
            currency: request.currency,
            method: request.method,
            details: request.details,
            description: request.description,
        };
        let receipt = self
            .ports
            .payments
            .charge(&request)
            .await
            .map_err(wit_error)?;
        Ok(receipt_to_wit(receipt))
    }

    async fn refund(&mut self, transaction_id: String) -> Result<RefundReceipt, Error> {
        let refund = self
            .ports
            .payments
            .refund(&transaction_id)
            .await
            .map_err(wit_error)?;
        Ok(RefundReceipt {
            refund_id: refund.refund_id,
            transaction_id: refund.transaction_id,
            amount_cents: refund.amount_cents,
        })
    }

    async fn void_charge(&mut self, idempotency_key: String) -> Result<Option<Receipt>, Error> {
        let voided = self
            .ports
            .payments
            .void_charge(&idempotency_key)
            .await
            .map_err(wit_error)?;
        Ok(voided.map(receipt_to_wit))
    }
}
