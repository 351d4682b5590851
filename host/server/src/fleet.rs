//! One rollout for a fleet. With MONGODB_URL every host is a replica of
//! one fleet, whose deployment (active, previous, canary and its share)
//! is one record in that database (`MongoFleet`), as are the versions'
//! bytes. An admin change on any replica is decided on that record, with
//! the transitions one process uses (`Deployment<String>`: sha256s), and
//! stored by a compare-and-swap on its revision. Every replica polls the
//! record every `POLL_INTERVAL` and swaps to it as one process swaps, so
//! a request keeps the version it started with.
//!
//! Uploads are offered to the fleet as candidates that every replica
//! loads (compiles, smoke-tests) ahead of their activation, and a change
//! is stored only once every live replica has loaded what it names:
//! applying it is then a pointer swap everywhere, within one poll.
//!
//! The record carries an HMAC keyed from the fleet's admin token (every
//! replica's `ADMIN_TOKEN`), so write access to the database alone does
//! not deploy logic: a replica follows no record without a valid tag.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use booking_adapters::mongo::{FleetDeployment, MongoFleet, ReplicaStatus};
use booking_adapters::outbox::now_ms;
use booking_logic::ports::PortError;
use booking_runtime::deployment::{Canary, Deployment, DeploymentError};
use booking_runtime::{LogicComponent, Runtime, find_by_prefix};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::app::AppState;
use crate::deploy::DeployError;

/// How often each replica reads the fleet's deployment (and reports).
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// A replica that reported within this long counts as live: a change
/// waits for the live ones to be ready for it.
const LIVE_WITHIN_MS: i64 = 5_000;

/// How long a change waits for every live replica to load its versions.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(60);

/// Candidates the fleet keeps loaded besides the deployed versions.
const MAX_CANDIDATES: usize = 8;

/// Compare-and-swap attempts of one change against concurrent ones.
const MAX_ATTEMPTS: usize = 10;

type HmacSha256 = Hmac<Sha256>;

/// What vouches for the fleet's deployment record. Whoever can write the
/// database could otherwise deploy logic; the bytes a record names are
/// checked against their sha256, so the record is all there is to sign.
pub struct RecordKey([u8; 32]);

impl RecordKey {
    /// A key of its own (domain separation from the admin token itself and
    /// from the artifact cache's key).
    pub fn derive(admin_secret: &[u8]) -> RecordKey {
        let mut mac = HmacSha256::new_from_slice(admin_secret).expect("HMAC takes any key length");
        mac.update(b"booking-host fleet deployment record key v1");
        RecordKey(mac.finalize().into_bytes().into())
    }

    fn mac(&self, record: &FleetDeployment) -> HmacSha256 {
        let unsigned = FleetDeployment {
            tag: String::new(),
            ..record.clone()
        };
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(&serde_json::to_vec(&unsigned).unwrap_or_default());
        mac
    }

    fn sign(&self, mut record: FleetDeployment) -> FleetDeployment {
        let tag = self.mac(&record).finalize().into_bytes();
        record.tag = tag.iter().map(|b| format!("{b:02x}")).collect();
        record
    }

    /// The tag is checked in constant time.
    fn verify(&self, record: &FleetDeployment) -> bool {
        let tag: Option<Vec<u8>> = (0..record.tag.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(record.tag.get(i..i + 2)?, 16).ok())
            .collect();
        tag.is_some_and(|tag| self.mac(record).verify_slice(&tag).is_ok())
    }
}

pub struct Fleet {
    store: MongoFleet,
    key: RecordKey,
    /// This replica's name in the fleet (`REPLICA_ID`).
    pub replica: String,
    /// The revision of the fleet deployment this replica serves.
    applied: AtomicI64,
    /// Versions that failed to load here, not tried again.
    broken: std::sync::Mutex<BTreeSet<String>>,
    /// Admin changes made through this replica, one at a time.
    changing: tokio::sync::Mutex<()>,
    /// Polls one at a time (the timer's and a change's own), so an older
    /// read of the record is never applied after a newer one.
    syncing: tokio::sync::Mutex<()>,
}

/// A change to the fleet's deployment, decided on the current one.
pub type Transition<'a> =
    &'a (dyn Fn(&Deployment<String>) -> Result<Deployment<String>, DeploymentError> + Sync);

impl Fleet {
    /// Joins the fleet before serving: the first replica writes the
    /// deployment (its component active); any other serves the fleet's.
    /// A replica started with a component the fleet does not serve offers
    /// it as a candidate; nothing serves it until it is activated.
    pub async fn join(
        store: MongoFleet,
        replica: String,
        key: RecordKey,
        runtime: &Runtime,
        seed: &[u8],
    ) -> anyhow::Result<Fleet> {
        let fleet = Fleet {
            store,
            key,
            replica,
            applied: AtomicI64::new(0),
            broken: Default::default(),
            changing: Default::default(),
            syncing: Default::default(),
        };
        let active = runtime.active();
        fleet
            .store
            .store_component(&active.sha256, seed, &active.source, now())
            .await?;
        if fleet.store.deployment().await?.is_none() {
            let first = fleet.record(0, &Deployment::new(active.sha256.clone()), Vec::new());
            // Another replica starting now may have written it first.
            fleet.store.replace(None, &first).await?;
        }
        anyhow::ensure!(
            fleet.current().await.is_ok(),
            "the fleet's deployment record in MongoDB is not signed with this ADMIN_TOKEN: every \
             replica of a fleet needs the same token (a record written under another token, or \
             by anyone else, is not followed; delete the logicDeployment document to start anew)"
        );
        fleet.offer(runtime, &active).await?;
        let deadline = Instant::now() + PREPARE_TIMEOUT;
        while !fleet.sync(runtime).await {
            anyhow::ensure!(
                Instant::now() < deadline,
                "could not serve the fleet's deployment within {PREPARE_TIMEOUT:?} (see the log)"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        tracing::info!(
            replica = fleet.replica,
            revision = fleet.applied.load(Ordering::Relaxed),
            "joined the fleet"
        );
        Ok(fleet)
    }

    /// One poll: loads what the fleet's deployment names and serves it,
    /// then reports. True once this replica serves the stored revision.
    pub async fn sync(&self, runtime: &Runtime) -> bool {
        let _one = self.syncing.lock().await;
        let desired = match self.current().await {
            Ok(desired) => desired,
            Err(error) => {
                tracing::warn!("fleet: reading the deployment: {error}");
                return false;
            }
        };
        // A read from a lagging secondary is older than what is served.
        if desired.revision < self.applied.load(Ordering::Relaxed) {
            return true;
        }
        let deployment = deployment_of(&desired);
        for sha256 in deployment.versions().chain(&desired.candidates) {
            self.ensure_loaded(runtime, sha256).await;
        }
        let served = match runtime.apply(&deployment).await {
            Ok(changed) => {
                if changed {
                    tracing::info!(
                        revision = desired.revision,
                        changed_by = desired.changed_by,
                        "fleet deployment applied"
                    );
                }
                self.applied.store(desired.revision, Ordering::Relaxed);
                true
            }
            Err(error) => {
                tracing::warn!(revision = desired.revision, "fleet: cannot serve: {error}");
                false
            }
        };
        if let Err(error) = self.store.report(&self.status(runtime)).await {
            tracing::warn!("fleet: reporting: {error}");
        }
        served
    }

    async fn ensure_loaded(&self, runtime: &Runtime, sha256: &str) {
        let broken = || {
            self.broken
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(sha256)
        };
        if runtime.is_loaded(sha256) || broken() {
            return;
        }
        let outcome = match self.store.component(sha256).await {
            Ok(Some((bytes, source))) => match runtime.load(&bytes, &source).await {
                Ok(component) if component.sha256 == sha256 => Ok(()),
                Ok(component) => Err(format!("the stored bytes are {}", component.sha256)),
                Err(error) => Err(error.to_string()),
            },
            Ok(None) => Err("not in the store".to_owned()),
            // The store may be back next poll.
            Err(error) => return tracing::warn!("fleet: fetching {sha256}: {error}"),
        };
        if let Err(why) = outcome {
            tracing::error!(version = sha256, "fleet: cannot load this version: {why}");
            self.broken
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(sha256.to_owned());
        }
    }

    fn status(&self, runtime: &Runtime) -> ReplicaStatus {
        let serving = runtime.deployment().ids();
        ReplicaStatus {
            replica: self.replica.clone(),
            revision: self.applied.load(Ordering::Relaxed),
            active: serving.active,
            previous: serving.previous,
            canary_percent: serving.canary.as_ref().map_or(0, |c| c.percent.into()),
            canary: serving.canary.map(|c| c.candidate),
            loaded: runtime
                .versions()
                .into_iter()
                .map(|version| version.component.sha256.clone())
                .collect(),
            seen_at_ms: now(),
        }
    }

    /// Stores an uploaded (and here loaded) version and makes it a
    /// candidate, which every replica then loads.
    pub async fn upload(
        &self,
        runtime: &Runtime,
        component: &LogicComponent,
        bytes: &[u8],
    ) -> Result<(), DeployError> {
        self.store
            .store_component(&component.sha256, bytes, &component.source, now())
            .await?;
        self.offer(runtime, component).await
    }

    async fn offer(
        &self,
        runtime: &Runtime,
        component: &LogicComponent,
    ) -> Result<(), DeployError> {
        let _one = self.changing.lock().await;
        for _ in 0..MAX_ATTEMPTS {
            let current = self.current().await?;
            let deployed = deployment_of(&current);
            if deployed
                .versions()
                .chain(&current.candidates)
                .any(|v| *v == component.sha256)
            {
                return Ok(());
            }
            let mut candidates = current.candidates.clone();
            candidates.push(component.sha256.clone());
            let excess = candidates.len().saturating_sub(MAX_CANDIDATES);
            candidates.drain(..excess);
            let next = self.record(current.revision, &deployed, candidates);
            if self.store.replace(Some(current.revision), &next).await? {
                self.sync(runtime).await;
                return Ok(());
            }
        }
        Err(DeployError::Contended)
    }

    /// The full sha256 of the fleet's version `prefix` names.
    pub async fn find(&self, prefix: &str) -> Result<String, DeployError> {
        let current = self.current().await?;
        let deployed = deployment_of(&current);
        let known = deployed.versions().chain(&current.candidates);
        Ok(find_by_prefix(known.map(String::as_str), prefix)?.to_owned())
    }

    /// Decides `transition` on the fleet's deployment, waits until every
    /// live replica has loaded the versions it names, stores it if no
    /// other change came first (else decides again), and serves it here.
    pub async fn change(
        &self,
        runtime: &Runtime,
        transition: Transition<'_>,
    ) -> Result<Deployment<String>, DeployError> {
        let _one = self.changing.lock().await;
        for _ in 0..MAX_ATTEMPTS {
            let current = self.current().await?;
            let next = transition(&deployment_of(&current))?;
            self.prepare(runtime, &next).await?;
            let candidates = current
                .candidates
                .iter()
                .filter(|candidate| !next.versions().any(|v| v == *candidate))
                .cloned()
                .collect();
            let record = self.record(current.revision, &next, candidates);
            if self.store.replace(Some(current.revision), &record).await? {
                tracing::info!(
                    revision = record.revision,
                    active = record.active,
                    canary = record.canary,
                    percent = record.canary_percent,
                    "fleet deployment changed"
                );
                self.sync(runtime).await;
                return Ok(next);
            }
        }
        Err(DeployError::Contended)
    }

    /// Waits until this replica and every live one have loaded each
    /// version of `next`.
    async fn prepare(
        &self,
        runtime: &Runtime,
        next: &Deployment<String>,
    ) -> Result<(), DeployError> {
        let deadline = Instant::now() + PREPARE_TIMEOUT;
        loop {
            for version in next.versions() {
                self.ensure_loaded(runtime, version).await;
            }
            let now = now();
            let mut missing: Vec<String> = next
                .versions()
                .filter(|version| !runtime.is_loaded(version))
                .map(|version| format!("{} lacks {version}", self.replica))
                .collect();
            for replica in self.store.replicas().await? {
                if replica.replica == self.replica || now - replica.seen_at_ms > LIVE_WITHIN_MS {
                    continue;
                }
                missing.extend(
                    next.versions()
                        .filter(|version| !replica.loaded.contains(version))
                        .map(|version| format!("{} lacks {version}", replica.replica)),
                );
            }
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DeployError::NotReady(missing.join(", ")));
            }
            tokio::time::sleep(POLL_INTERVAL / 2).await;
        }
    }

    /// The stored deployment, if its tag is valid.
    async fn current(&self) -> Result<FleetDeployment, DeployError> {
        let record = self.store.deployment().await?.ok_or_else(|| {
            DeployError::Store(PortError::NotFound("the fleet deployment".into()))
        })?;
        if !self.key.verify(&record) {
            return Err(DeployError::Store(PortError::Rejected(format!(
                "the fleet deployment (revision {}) does not carry this ADMIN_TOKEN's tag: not followed",
                record.revision
            ))));
        }
        Ok(record)
    }

    /// The record after `revision` that stores `deployment`.
    fn record(
        &self,
        revision: i64,
        deployment: &Deployment<String>,
        candidates: Vec<String>,
    ) -> FleetDeployment {
        self.key.sign(FleetDeployment {
            revision: revision + 1,
            active: deployment.active.clone(),
            previous: deployment.previous.clone(),
            canary: deployment.canary.as_ref().map(|c| c.candidate.clone()),
            canary_percent: deployment.canary.as_ref().map_or(0, |c| c.percent.into()),
            candidates,
            changed_by: self.replica.clone(),
            changed_at_ms: now(),
            tag: String::new(),
        })
    }

    /// The fleet's deployment and what each replica serves, for `admin list`.
    pub async fn describe(&self) -> Result<serde_json::Value, DeployError> {
        let deployment = self.current().await?;
        let now = now();
        let replicas: Vec<serde_json::Value> = self
            .store
            .replicas()
            .await?
            .into_iter()
            .map(|replica| {
                let live = now - replica.seen_at_ms <= LIVE_WITHIN_MS;
                let mut value = serde_json::to_value(&replica).unwrap_or_default();
                if let Some(fields) = value.as_object_mut() {
                    fields.remove("_id");
                }
                value["replica"] = replica.replica.clone().into();
                value["live"] = live.into();
                value["self"] = (replica.replica == self.replica).into();
                value
            })
            .collect();
        Ok(serde_json::json!({
            "replica": self.replica,
            "deployment": deployment,
            "replicas": replicas,
        }))
    }
}

/// Milliseconds since the epoch, as the fleet's records keep them.
fn now() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}

/// The stored record as the transitions see it.
fn deployment_of(record: &FleetDeployment) -> Deployment<String> {
    Deployment {
        active: record.active.clone(),
        previous: record.previous.clone(),
        canary: record.canary.clone().map(|candidate| Canary {
            candidate,
            percent: u8::try_from(record.canary_percent.clamp(0, 100)).unwrap_or(0),
        }),
    }
}

/// Polls the fleet's deployment until `stop` turns true.
pub async fn run(state: Arc<AppState>, fleet: Arc<Fleet>, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = ticker.tick() => {}
        }
        fleet.sync(&state.runtime).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> FleetDeployment {
        FleetDeployment {
            revision: 3,
            active: "a".into(),
            previous: Some("b".into()),
            canary: None,
            canary_percent: 0,
            candidates: vec!["c".into()],
            changed_by: "replica0".into(),
            changed_at_ms: 1,
            tag: String::new(),
        }
    }

    #[test]
    fn only_a_record_signed_with_the_fleets_token_is_followed() {
        let key = RecordKey::derive(b"the fleet's admin token, 32+ chars long");
        let signed = key.sign(record());
        assert!(key.verify(&signed));
        assert!(!key.verify(&record()), "unsigned");
        let forged = FleetDeployment {
            active: "evil".into(),
            ..signed.clone()
        };
        assert!(!key.verify(&forged), "a field changed after signing");
        let other = RecordKey::derive(b"another fleet's admin token, 32+ chars");
        assert!(!other.verify(&signed), "another token's key");
        let garbled = FleetDeployment {
            tag: "zz".repeat(32),
            ..signed
        };
        assert!(!key.verify(&garbled));
    }
}
