//! The `payments` port over the Payment service's REST API
//! (`POST /payments`, `POST /payments/{id}/refund`, and `POST
//! /payments/void` with `{"idempotency_key"}`: 200 `{"voided": true,
//! "charge": <the succeeded charge made under that key> | null}`; the key
//! charges no more).
//!
//! Once a request may have reached the service and its outcome is unknown
//! (no answer in time, a connection broken mid-request, a 500/502/504, a
//! redirect, which is never followed, an answer over 1 MiB, an
//! unreadable success body for a charge) the error is `Timeout`: the logic
//! then retries with the same idempotency key, which cannot charge twice.
//! `Unavailable` is kept for failures where nothing can have happened.

use std::time::Duration;

use anyhow::ensure;
use async_trait::async_trait;
use booking_adapters_core::rest as rest_core;
use booking_logic::ports::{Payments, PortError, PortResult};
use booking_model::{ChargeRequest, Receipt, RefundReceipt};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::Adapter;
use crate::rest::{Failure, describe, read, url};
use crate::tls::TlsRoots;

#[derive(Debug, Clone)]
pub struct PaymentsConfig {
    /// e.g. `http://localhost:8002`.
    pub url: String,
    /// Per charge (the seed's PAYMENT_TIMEOUT).
    pub charge_timeout: Duration,
    /// Per refund or health check (the seed's API_TIMEOUT).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Trusted for an `https://` URL.
    pub tls: TlsRoots,
}

pub struct RestPayments {
    client: reqwest::Client,
    base: Url,
    charge_timeout: Duration,
    timeout: Duration,
}

#[derive(Serialize)]
struct ChargeBody<'a> {
    idempotency_key: &'a str,
    amount_cents: u64,
    currency: &'a str,
    method: &'a str,
    details: &'a str,
    description: &'a str,
}

#[derive(Deserialize)]
struct ReceiptBody {
    transaction_id: String,
    amount_cents: u64,
    currency: String,
    created_at_ms: u64,
}

impl From<ReceiptBody> for Receipt {
    fn from(receipt: ReceiptBody) -> Receipt {
        Receipt {
            transaction_id: receipt.transaction_id,
            amount_cents: receipt.amount_cents,
            currency: receipt.currency,
            charged_at: receipt.created_at_ms,
        }
    }
}

#[derive(Deserialize)]
struct RefundBody {
    refund_id: String,
    transaction_id: String,
    amount_cents: u64,
}

impl RestPayments {
    pub fn new(config: &PaymentsConfig) -> anyhow::Result<Self> {
        let base = Url::parse(&config.url)?;
        ensure!(
            !base.cannot_be_a_base(),
            "payment service URL {base} cannot have paths"
        );
        let client = crate::rest::client(&config.tls, config.connect_timeout)?.build()?;
        Ok(RestPayments {
            client,
            base,
            charge_timeout: config.charge_timeout,
            timeout: config.timeout,
        })
    }
}

#[async_trait]
impl Payments for RestPayments {
    async fn charge(&self, request: &ChargeRequest) -> PortResult<Receipt> {
        let body = ChargeBody {
            idempotency_key: &request.idempotency_key,
            amount_cents: request.amount_cents,
            currency: &request.currency,
            method: &request.method,
            details: &request.details,
            description: &request.description,
        };
        let response = self
            .client
            .post(url(&self.base, &["payments"]))
            .timeout(self.charge_timeout)
            .json(&body)
            .send()
            .await
            .map_err(transport_error)?;
        let (status, body) = read(response).await.map_err(read_error)?;
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        // The service charged; only a retry with the key can tell us how.
        let receipt: ReceiptBody = serde_json::from_slice(&body)
            .map_err(|e| PortError::Timeout(format!("payments: unreadable charge receipt: {e}")))?;
        Ok(receipt.into())
    }

    async fn refund(&self, transaction_id: &str) -> PortResult<RefundReceipt> {
        // These would address another resource, not a transaction.
        if matches!(transaction_id, "" | "." | "..") {
            return Err(PortError::NotFound(format!(
                "payments: no transaction {transaction_id:?}"
            )));
        }
        let response = self
            .client
            .post(url(&self.base, &["payments", transaction_id, "refund"]))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let (status, body) = read(response).await.map_err(read_error)?;
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        let refund: RefundBody = serde_json::from_slice(&body)
            .map_err(|e| PortError::Unavailable(format!("payments: malformed refund: {e}")))?;
        Ok(RefundReceipt {
            refund_id: refund.refund_id,
            transaction_id: refund.transaction_id,
            amount_cents: refund.amount_cents,
        })
    }

    async fn void_charge(&self, idempotency_key: &str) -> PortResult<Option<Receipt>> {
        let response = self
            .client
            .post(url(&self.base, &["payments", "void"]))
            .json(&VoidRequest { idempotency_key })
            .timeout(self.timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let (status, body) = read(response).await.map_err(read_error)?;
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        // Only an explicit `"voided": true` answer may say "no charge": a
        // service without the endpoint must never make the sweep keep money.
        match serde_json::from_slice::<VoidBody>(&body) {
            Ok(VoidBody {
                voided: true,
                charge,
            }) => Ok(charge.map(Receipt::from)),
            Ok(_) => Err(PortError::Unavailable(format!(
                "{}: the key was not voided",
                describe("payments", status, &body)
            ))),
            Err(e) => Err(PortError::Unavailable(format!(
                "payments: unreadable void answer: {e}"
            ))),
        }
    }
}

#[derive(Serialize)]
struct VoidRequest<'a> {
    idempotency_key: &'a str,
}

#[derive(Deserialize)]
struct VoidBody {
    voided: bool,
    charge: Option<ReceiptBody>,
}

/// A redirect (the service may have acted, then pointed elsewhere), an
/// answer too large to read, or any failure after sending hides what the
/// service did, as a lost answer would.
fn read_error((failure, detail): Failure) -> PortError {
    rest_core::payments_transport_error(failure, &detail)
}

/// Only a failed connect proves the request never arrived.
fn transport_error(error: reqwest::Error) -> PortError {
    read_error(crate::rest::failure(error))
}

fn status_error(status: StatusCode, body: &[u8]) -> PortError {
    rest_core::payments_status_error(status.as_u16(), body)
}

#[async_trait]
impl Adapter for RestPayments {
    const NAME: &'static str = "payments";
    type Config = PaymentsConfig;

    async fn from_config(config: PaymentsConfig) -> anyhow::Result<Self> {
        RestPayments::new(&config)
    }

    async fn health(&self) -> Result<(), String> {
        let response = self
            .client
            .get(url(&self.base, &["health"]))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| transport_error(e).to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "payments: health answered HTTP {}",
                response.status()
            ))
        }
    }
}
