//! Charges, refunds and the idempotency-key table. Every method is one
//! synchronous step under the payments mutex, so checking a key and
//! recording its outcome can never interleave with another request.

use std::collections::{HashMap, HashSet};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// `POST /payments` body.
#[derive(Debug, Clone, Deserialize)]
pub struct ChargeRequest {
    pub idempotency_key: String,
    pub amount_cents: u64,
    pub currency: String,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub details: String,
    #[serde(default)]
    pub description: String,
}

/// A successful charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Charge {
    pub transaction_id: String,
    pub idempotency_key: String,
    /// Always "succeeded": declines are not charges.
    pub status: String,
    pub amount_cents: u64,
    pub currency: String,
    pub method: String,
    pub details: String,
    pub description: String,
    pub created_at_ms: u64,
    pub refunded: bool,
    pub refund_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refund {
    pub refund_id: String,
    pub transaction_id: String,
    pub amount_cents: u64,
    pub status: &'static str,
}

/// The response a key was first answered with; replays get it verbatim.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

pub struct Attempt {
    pub answer: Answer,
    /// False when the key was seen before and this is a replay.
    pub first: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("idempotency key {0} was already used with different parameters")]
pub struct KeyReused(pub String);

/// What must match for a request to count as a replay of a key
/// (the description is free text and may differ).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Terms {
    amount_cents: u64,
    currency: String,
    method: String,
    details: String,
}

impl From<&ChargeRequest> for Terms {
    fn from(request: &ChargeRequest) -> Self {
        Terms {
            amount_cents: request.amount_cents,
            currency: request.currency.clone(),
            method: request.method.clone(),
            details: request.details.clone(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Ledger {
    by_key: HashMap<String, (Terms, Answer)>,
    charges: Vec<Charge>,
    by_id: HashMap<String, usize>,
    /// Keys closed by `void`: they charge no more.
    voided: HashSet<String>,
}

impl Ledger {
    /// Answers a key's first request by charging (or declining) and
    /// recording the answer; later requests with the same terms get that
    /// answer again.
    pub fn charge(
        &mut self,
        request: &ChargeRequest,
        decline: bool,
        now_ms: u64,
    ) -> Result<Attempt, KeyReused> {
        let terms = Terms::from(request);
        if let Some((stored, answer)) = self.by_key.get(&request.idempotency_key) {
            if *stored != terms {
                return Err(KeyReused(request.idempotency_key.clone()));
            }
            return Ok(Attempt {
                answer: answer.clone(),
                first: false,
            });
        }

        if self.voided.contains(&request.idempotency_key) {
            return Ok(Attempt {
                answer: Answer {
                    status: StatusCode::PAYMENT_REQUIRED,
                    body: json!({
                        "error": "idempotency_key_voided",
                        "message": "This idempotency key was voided and charges no more.",
                    }),
                },
                first: false,
            });
        }
        let answer = if decline {
            Answer {
                status: StatusCode::PAYMENT_REQUIRED,
                body: json!({
                    "error": "card_declined",
                    "message": "Your card was declined.",
                }),
            }
        } else {
            let charge = Charge {
                transaction_id: format!("txn_{}", uuid::Uuid::new_v4().simple()),
                idempotency_key: request.idempotency_key.clone(),
                status: "succeeded".into(),
                amount_cents: request.amount_cents,
                currency: request.currency.clone(),
                method: request.method.clone(),
                details: request.details.clone(),
                description: request.description.clone(),
                created_at_ms: now_ms,
                refunded: false,
                refund_id: None,
            };
            let body = json!({
                "transaction_id": charge.transaction_id,
                "status": charge.status,
                "amount_cents": charge.amount_cents,
                "currency": charge.currency,
                "created_at_ms": charge.created_at_ms,
            });
            self.by_id
                .insert(charge.transaction_id.clone(), self.charges.len());
            self.charges.push(charge);
            Answer {
                status: StatusCode::CREATED,
                body,
            }
        };
        self.by_key
            .insert(request.idempotency_key.clone(), (terms, answer.clone()));
        Ok(Attempt {
            answer,
            first: true,
        })
    }

    /// Refunds the whole charge once; asking again returns the same refund.
    pub fn refund(&mut self, transaction_id: &str) -> Option<Refund> {
        let &i = self.by_id.get(transaction_id)?;
        let charge = &mut self.charges[i];
        let refund_id = charge
            .refund_id
            .get_or_insert_with(|| format!("re_{}", uuid::Uuid::new_v4().simple()))
            .clone();
        charge.refunded = true;
        Some(Refund {
            refund_id,
            transaction_id: charge.transaction_id.clone(),
            amount_cents: charge.amount_cents,
            status: "refunded",
        })
    }

    /// Closes `idempotency_key` for good and returns the succeeded charge
    /// made under it, if any (none for a declined or unknown key). Voiding
    /// again answers the same.
    pub fn void(&mut self, idempotency_key: &str) -> Option<&Charge> {
        self.voided.insert(idempotency_key.to_owned());
        let (_, answer) = self.by_key.get(idempotency_key)?;
        self.get(answer.body["transaction_id"].as_str()?)
    }

    pub fn get(&self, transaction_id: &str) -> Option<&Charge> {
        self.by_id.get(transaction_id).map(|&i| &self.charges[i])
    }

    /// Every charge, oldest first.
    pub fn charges(&self) -> &[Charge] {
        &self.charges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: &str, amount_cents: u64) -> ChargeRequest {
        ChargeRequest {
            idempotency_key: key.into(),
            amount_cents,
            currency: "USD".into(),
            method: "credit_card".into(),
            details: "card_token_xyz".into(),
            description: "booking".into(),
        }
    }

    #[test]
    fn replay_returns_the_first_answer_without_charging_again() {
        let mut ledger = Ledger::default();
        let first = ledger
            .charge(&request("k", 100), false, 1)
            .expect("new key");
        let mut replay = request("k", 100);
        replay.description = "retry".into();
        let second = ledger.charge(&replay, false, 2).expect("same terms");
        assert!(first.first && !second.first);
        assert_eq!(first.answer.body, second.answer.body);
        assert_eq!(ledger.charges().len(), 1);
    }

    #[test]
    fn reusing_a_key_for_other_terms_is_refused() {
        let mut ledger = Ledger::default();
        ledger
            .charge(&request("k", 100), false, 1)
            .expect("new key");
        assert!(ledger.charge(&request("k", 200), false, 2).is_err());
        assert_eq!(ledger.charges().len(), 1);
    }

    #[test]
    fn declines_are_remembered_but_are_not_charges() {
        let mut ledger = Ledger::default();
        let declined = ledger.charge(&request("k", 100), true, 1).expect("new key");
        assert_eq!(declined.answer.status, StatusCode::PAYMENT_REQUIRED);
        // The key is answered from the record even though this call would
        // not decline.
        let replay = ledger
            .charge(&request("k", 100), false, 2)
            .expect("same terms");
        assert_eq!(replay.answer.status, StatusCode::PAYMENT_REQUIRED);
        assert!(ledger.charges().is_empty());
        assert_eq!(ledger.void("k"), None, "a decline is no charge");
    }

    #[test]
    fn a_void_answers_the_key_s_charge_and_closes_the_key() {
        let mut ledger = Ledger::default();
        ledger.charge(&request("k1", 100), false, 1).expect("k1");
        ledger.charge(&request("k2", 200), false, 2).expect("k2");
        let found = ledger.void("k2").expect("charged").clone();
        assert_eq!(
            (found.idempotency_key.as_str(), found.amount_cents),
            ("k2", 200)
        );
        assert_eq!(ledger.void("k2"), Some(&found), "idempotent");
        assert_eq!(ledger.void("k3"), None);
        // A voided key charges no more, whatever the terms.
        let late = ledger
            .charge(&request("k3", 300), false, 3)
            .expect("answered");
        assert_eq!(late.answer.status, StatusCode::PAYMENT_REQUIRED);
        assert_eq!(late.answer.body["error"], "idempotency_key_voided");
        assert_eq!(ledger.charges().len(), 2);
        // A replay of a charge made before the void still gets its receipt.
        let replay = ledger
            .charge(&request("k2", 200), false, 4)
            .expect("replay");
        assert_eq!(replay.answer.body["transaction_id"], found.transaction_id);
    }

    #[test]
    fn refund_is_idempotent() {
        let mut ledger = Ledger::default();
        let attempt = ledger
            .charge(&request("k", 100), false, 1)
            .expect("new key");
        let id = attempt.answer.body["transaction_id"]
            .as_str()
            .expect("id")
            .to_owned();
        let first = ledger.refund(&id).expect("known");
        assert_eq!(ledger.refund(&id), Some(first.clone()));
        assert_eq!(first.amount_cents, 100);
        assert!(ledger.get(&id).is_some_and(|c| c.refunded));
        assert_eq!(ledger.refund("txn_unknown"), None);
    }
}
