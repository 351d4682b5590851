//! Idempotency keys for mutations, with Stripe's semantics: the first
//! answer to a key is stored (at least 24 h); the same key with the same
//! arguments gets that answer again without a second effect; the same key
//! with other arguments is refused (`IDEMPOTENCY_KEY_REUSED`); a retry
//! while the first request still runs gets a retryable
//! `IDEMPOTENCY_KEY_IN_USE`. Keys are scoped per user.
//!
//! Only final answers are stored. A retryable failure (a dependency down,
//! a payment timeout) releases the key instead, so the retry runs the
//! operation again — which the workflow makes safe: payments reuse the
//! booking id as charge key, status moves are versioned.
//!
//! A request that dies between claiming and finishing (a trap, a crash)
//! leaves a lease that runs out after `lease_ms` (longer than a request
//! may run, see `Settings::idempotency_lease_seconds`); then a retry takes the
//! key over and runs the operation again. For `createBooking` that second
//! run finds the seats still held by the first attempt's lock (until it
//! expires) and answers SEATS_UNAVAILABLE: never a second booking.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::BookingError;
use crate::model::IdempotencyRecord;
use crate::ports::{Environment, PortError, Storage};

/// Longest key accepted (Stripe's limit).
pub const MAX_KEY_LENGTH: usize = 255;

/// Tries at claiming a key that other requests keep changing.
const CLAIM_ATTEMPTS: usize = 3;

const STORE: &str = "booking store";

/// 1 to 255 visible ASCII characters (UUIDs, ULIDs, hashes…).
pub fn validate_key(key: &str) -> Result<(), BookingError> {
    if key.is_empty()
        || key.len() > MAX_KEY_LENGTH
        || !key.bytes().all(|byte| byte.is_ascii_graphic())
    {
        return Err(BookingError::InvalidInput(format!(
            "an idempotency key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters"
        )));
    }
    Ok(())
}

/// A digest of the operation and its arguments. Stored instead of the
/// arguments themselves, which include card tokens.
pub fn fingerprint(operation: &str, arguments: &serde_json::Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    hasher.update([0]);
    hasher.update(arguments.to_string().as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A final answer as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
enum Stored<T> {
    Ok { value: T },
    Err { code: String, message: String },
}

/// A final error answered the first time, replayed as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedError {
    pub code: String,
    pub message: String,
}

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum Claim<T> {
    /// This request owns the key: run the operation, then `finish`.
    Run(Lease),
    /// The key was answered before: send that answer.
    Replay(Result<T, ReplayedError>),
}

/// Ownership of a key while its first request runs.
#[derive(Debug)]
pub struct Lease {
    record: IdempotencyRecord,
}

pub struct Idempotency<'a> {
    pub storage: &'a dyn Storage,
    pub env: &'a dyn Environment,
    pub retention_ms: u64,
    /// How long a first request owns its key.
    pub lease_ms: u64,
}

impl Idempotency<'_> {
    pub async fn claim<T: DeserializeOwned>(
        &self,
        user_id: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<Claim<T>, BookingError> {
        for _ in 0..CLAIM_ATTEMPTS {
            let now = self.env.now();
            let fresh = IdempotencyRecord {
                user_id: user_id.to_string(),
                key: key.to_string(),
                fingerprint: fingerprint.to_string(),
                response: None,
                lease_expires_at: now.saturating_add(self.lease_ms),
                expires_at: now.saturating_add(self.retention_ms),
                version: 1,
            };
            let existing = self
                .storage
                .get_idempotency_record(user_id, key)
                .await
                .map_err(unavailable)?;
            let (written, record) = match existing {
                None => {
                    let written = self.storage.insert_idempotency_record(&fresh).await;
                    (written.map(|()| 1), fresh)
                }
                // Past retention: the key is free again.
                Some(stored) if stored.expires_at <= now => {
                    let written = self
                        .storage
                        .update_idempotency_record(&fresh, stored.version)
                        .await;
                    (written, fresh)
                }
                Some(stored) if stored.fingerprint != fingerprint => {
                    return Err(BookingError::IdempotencyKeyReused(format!(
                        "idempotency key {key:?} was used with other arguments; use a new key for a new request"
                    )));
                }
                Some(IdempotencyRecord {
                    response: Some(answer),
                    ..
                }) => return replay(&answer).map(Claim::Replay),
                Some(stored) if stored.lease_expires_at > now => {
                    return Err(BookingError::IdempotencyKeyInUse(format!(
                        "a request with idempotency key {key:?} is still running; retry in {} s",
                        (stored.lease_expires_at - now).div_ceil(1000)
                    )));
                }
                // The first request died without an answer: take over.
                Some(stored) => {
                    let takeover = IdempotencyRecord {
                        expires_at: stored.expires_at,
                        ..fresh
                    };
                    let written = self
                        .storage
                        .update_idempotency_record(&takeover, stored.version)
                        .await;
                    (written, takeover)
                }
            };
            match written {
                Ok(version) => {
                    return Ok(Claim::Run(Lease {
                        record: IdempotencyRecord { version, ..record },
                    }));
                }
                // Another request claimed or changed it first: look again.
                Err(PortError::Conflict(_) | PortError::NotFound(_)) => continue,
                Err(other) => return Err(unavailable(other)),
            }
        }
        Err(BookingError::IdempotencyKeyInUse(format!(
            "idempotency key {key:?} is being claimed by concurrent requests; retry"
        )))
    }

    /// Stores a final answer, or releases the key after a retryable
    /// failure. A failed write is only logged: the lease runs out and a
    /// retry runs the operation again, which the workflow tolerates.
    pub async fn finish<T: Serialize>(&self, lease: Lease, outcome: &Result<T, BookingError>) {
        let response = match outcome {
            Ok(value) => Some(serde_json::to_string(&Stored::Ok { value })),
            Err(error) if error.retryable() => None,
            Err(error) => Some(serde_json::to_string(&Stored::<T>::Err {
                code: error.code().to_string(),
                message: error.to_string(),
            })),
        };
        let response = match response.transpose() {
            Ok(response) => response,
            Err(error) => {
                eprintln!("idempotency: could not encode the answer: {error}");
                None
            }
        };
        let released = response.is_none();
        let record = IdempotencyRecord {
            response,
            lease_expires_at: if released {
                0
            } else {
                lease.record.lease_expires_at
            },
            ..lease.record.clone()
        };
        if let Err(error) = self
            .storage
            .update_idempotency_record(&record, lease.record.version)
            .await
        {
            eprintln!(
                "idempotency: could not record the answer to key {:?}: {error}",
                lease.record.key
            );
        }
    }
}

fn replay<T: DeserializeOwned>(answer: &str) -> Result<Result<T, ReplayedError>, BookingError> {
    match serde_json::from_str::<Stored<T>>(answer) {
        Ok(Stored::Ok { value }) => Ok(Ok(value)),
        Ok(Stored::Err { code, message }) => Ok(Err(ReplayedError { code, message })),
        Err(error) => Err(BookingError::Internal(format!(
            "a stored idempotent answer is unreadable: {error}"
        ))),
    }
}

fn unavailable(error: PortError) -> BookingError {
    match error {
        PortError::Timeout(detail) => BookingError::DependencyTimeout {
            dependency: STORE,
            detail,
        },
        other => BookingError::DependencyUnavailable {
            dependency: STORE,
            detail: other.to_string(),
        },
    }
}
