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

use crate::Adapter;
use crate::rest::{Failure, SendTraced, read, url};
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
        let response = self
            .client
            .post(url(&self.base, &["payments"]))
            .timeout(self.charge_timeout)
            .json(&rest_core::ChargeBody::of(request))
            .send_traced()
            .await
            .map_err(transport_error)?;
        let (status, body) = read(response).await.map_err(read_error)?;
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        Ok(rest_core::parse_receipt(&body)?.into())
    }

    async fn refund(&self, transaction_id: &str) -> PortResult<RefundReceipt> {
        if rest_core::is_unaddressable(transaction_id) {
            return Err(PortError::NotFound(format!(
                "payments: no transaction {transaction_id:?}"
            )));
        }
        let response = self
            .client
            .post(url(&self.base, &["payments", transaction_id, "refund"]))
            .timeout(self.timeout)
            .send_traced()
            .await
            .map_err(transport_error)?;
        let (status, body) = read(response).await.map_err(read_error)?;
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        Ok(rest_core::parse_refund(&body)?.into())
    }

    async fn void_charge(&self, idempotency_key: &str) -> PortResult<Option<Receipt>> {
        let response = self
            .client
            .post(url(&self.base, &["payments", "void"]))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(rest_core::void_charge_json(idempotency_key)?)
            .timeout(self.timeout)
            .send_traced()
            .await
            .map_err(transport_error)?;
        let (status, body) = read(response).await.map_err(read_error)?;
        // Only an explicit `"voided": true` answer may say "no charge": a
        // service without the endpoint must never make the sweep keep money.
        Ok(rest_core::voided_charge(status.as_u16(), &body)?.map(Receipt::from))
    }
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
            .send_traced()
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
