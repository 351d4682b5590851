//! Version management: every loaded version of the component, which
//! of them are deployed (active, previous, canary), and the admin
//! operations that change that — load (with the smoke test a candidate
//! passes), activate, roll back, canary. Each change builds a new
//! `Deployment` and swaps it in atomically; requests never wait for them.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use booking_telemetry::metrics::{VersionLabels, short_version};

use super::Runtime;
use crate::component::{LogicComponent, Rejection, hex};
use crate::deployment::{Deployment, DeploymentError};

/// Version information for listings.
pub struct VersionInfo {
    pub component: Arc<LogicComponent>,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Active,
    Canary,
    Previous,
    Candidate,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Canary => "canary",
            Role::Previous => "previous",
            Role::Candidate => "candidate",
        }
    }
}

/// Candidates kept in memory besides the deployed versions.
const MAX_IDLE_VERSIONS: usize = 8;

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("rejected: {0}")]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Deployment(#[from] DeploymentError),
    #[error("no loaded version {0}")]
    UnknownVersion(String),
}

/// The one version among `known` that `prefix` names: a unique prefix of
/// its sha256 is enough, as with git.
pub fn find_by_prefix<'a>(
    known: impl IntoIterator<Item = &'a str>,
    prefix: &str,
) -> Result<&'a str, AdminError> {
    let mut matches = known
        .into_iter()
        .filter(|sha256| sha256.starts_with(prefix));
    match (matches.next(), matches.next()) {
        (Some(sha256), None) if !prefix.is_empty() => Ok(sha256),
        _ => Err(AdminError::UnknownVersion(prefix.to_owned())),
    }
}

impl Runtime {
    /// The version serving requests (canaries aside).
    pub fn active(&self) -> Arc<LogicComponent> {
        self.deployment.load().active.clone()
    }

    pub fn deployment(&self) -> Arc<Deployment> {
        self.deployment.load_full()
    }

    /// Compiles (or reads from cache), links and smoke-tests a candidate,
    /// and keeps it loaded. Nothing serves it until it is activated.
    pub async fn load(
        &self,
        bytes: &[u8],
        source: &str,
    ) -> Result<Arc<LogicComponent>, AdminError> {
        let sha256 = hex(&Sha256::digest(bytes));
        if let Some(known) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sha256)
        {
            return Ok(known.clone());
        }
        let (engine, linker, cache) = (
            self.engine.engine.clone(),
            self.linker.clone(),
            self.cache.clone(),
        );
        let (bytes, source) = (bytes.to_vec(), source.to_owned());
        // Compilation takes up to a second of CPU: keep it off the
        // request-serving threads.
        let candidate = tokio::task::spawn_blocking(move || {
            LogicComponent::prepare(&engine, &linker, cache.as_deref(), &bytes, source)
        })
        .await
        .map_err(|e| Rejection::Invalid(format!("compilation task failed: {e}")))??;
        let candidate = Arc::new(candidate);
        self.smoke_test(&candidate).await?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        loaded.insert(candidate.sha256.clone(), candidate.clone());
        self.evict_idle(&mut loaded);
        Ok(candidate)
    }

    pub async fn activate(&self, sha256: &str) -> Result<Arc<LogicComponent>, AdminError> {
        let next = self.find(sha256)?;
        self.change(|deployment| deployment.activate(next.clone()))
            .await?;
        Ok(next)
    }

    pub async fn rollback(&self) -> Result<Arc<LogicComponent>, AdminError> {
        let active = self.change(Deployment::rollback).await?.active.clone();
        self.metrics.versions.rollbacks.inc();
        Ok(active)
    }

    pub async fn start_canary(
        &self,
        sha256: &str,
        percent: u32,
    ) -> Result<Arc<LogicComponent>, AdminError> {
        let candidate = self.find(sha256)?;
        self.change(|deployment| deployment.with_canary(candidate.clone(), percent))
            .await?;
        Ok(candidate)
    }

    pub async fn promote_canary(&self) -> Result<Arc<LogicComponent>, AdminError> {
        Ok(self
            .change(Deployment::promote_canary)
            .await?
            .active
            .clone())
    }

    pub async fn abort_canary(&self) -> Result<(), AdminError> {
        self.change(Deployment::abort_canary).await?;
        Ok(())
    }

    /// Every loaded version with its role, active first.
    pub fn versions(&self) -> Vec<VersionInfo> {
        let deployment = self.deployment.load();
        let role = |component: &LogicComponent| {
            if component.sha256 == deployment.active.sha256 {
                Role::Active
            } else if deployment
                .canary
                .as_ref()
                .is_some_and(|c| c.candidate.sha256 == component.sha256)
            {
                Role::Canary
            } else if deployment
                .previous
                .as_ref()
                .is_some_and(|p| p.sha256 == component.sha256)
            {
                Role::Previous
            } else {
                Role::Candidate
            }
        };
        let mut versions: Vec<VersionInfo> = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|component| VersionInfo {
                role: role(component),
                component: component.clone(),
            })
            .collect();
        versions.sort_by_key(|v| (v.role as u8, std::cmp::Reverse(v.component.loaded_at_ms)));
        versions
    }

    fn find(&self, sha256: &str) -> Result<Arc<LogicComponent>, AdminError> {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let sha256 = find_by_prefix(loaded.keys().map(String::as_str), sha256)?;
        Ok(loaded[sha256].clone())
    }

    /// Whether this version is loaded here (an exact sha256).
    pub fn is_loaded(&self, sha256: &str) -> bool {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(sha256)
    }

    /// Serves `desired`, whose versions must all be loaded, unless it
    /// serves it already: what a fleet replica does when the fleet's
    /// deployment changes. True if it changed anything.
    pub async fn apply(&self, desired: &Deployment<String>) -> Result<bool, AdminError> {
        let next = {
            let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            desired.resolve(|sha256| {
                loaded
                    .get(sha256)
                    .cloned()
                    .ok_or_else(|| AdminError::UnknownVersion(sha256.clone()))
            })?
        };
        if self.deployment.load().ids() == *desired {
            return Ok(false);
        }
        self.change(|_| Ok(next)).await?;
        Ok(true)
    }

    async fn change(
        &self,
        next: impl FnOnce(&Deployment) -> Result<Deployment, DeploymentError>,
    ) -> Result<Arc<Deployment>, DeploymentError> {
        let _serialised = self.admin.lock().await;
        let current = self.deployment.load_full();
        let next = Arc::new(next(&current)?);
        self.deployment.store(next.clone());
        if next.active.sha256 != current.active.sha256 {
            self.metrics.versions.swaps.inc();
        }
        self.publish_deployment(&next);
        tracing::info!(
            active = next.active.short_id(),
            canary =
                next.canary
                    .as_ref()
                    .map(|c| format!("{}@{}%", c.candidate.short_id(), c.percent)),
            "deployment changed"
        );
        Ok(next)
    }

    /// `booking_logic_version`: 1 for each deployed version and its role.
    pub(super) fn publish_deployment(&self, deployment: &Deployment) {
        let info = &self.metrics.versions.info;
        info.clear();
        let set = |role: &'static str, component: &LogicComponent| {
            info.get_or_create(&VersionLabels {
                role,
                version: short_version(&component.sha256),
                label: component.label.get().cloned().unwrap_or_default(),
            })
            .set(1);
        };
        set(Role::Active.as_str(), &deployment.active);
        if let Some(canary) = &deployment.canary {
            set(Role::Canary.as_str(), &canary.candidate);
        }
        if let Some(previous) = &deployment.previous {
            set(Role::Previous.as_str(), previous);
        }
    }

    fn evict_idle(&self, loaded: &mut BTreeMap<String, Arc<LogicComponent>>) {
        let deployment = self.deployment.load();
        let deployed = |sha: &str| {
            sha == deployment.active.sha256
                || deployment
                    .previous
                    .as_ref()
                    .is_some_and(|p| p.sha256 == sha)
                || deployment
                    .canary
                    .as_ref()
                    .is_some_and(|c| c.candidate.sha256 == sha)
        };
        while loaded.len() > MAX_IDLE_VERSIONS + 3 {
            let oldest_idle = loaded
                .values()
                .filter(|c| !deployed(&c.sha256))
                .min_by_key(|c| c.loaded_at_ms)
                .map(|c| c.sha256.clone());
            match oldest_idle {
                Some(sha) => loaded.remove(&sha),
                None => break,
            };
        }
    }

    /// Asks the candidate for its version label over its own HTTP handler:
    /// proves it instantiates, reads its settings and answers GraphQL.
    pub(super) async fn smoke_test(
        &self,
        component: &Arc<LogicComponent>,
    ) -> Result<(), Rejection> {
        let request = hyper::Request::post("http://localhost/graphql")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"query":"{ logicVersion }"}"#,
            )))
            .map_err(|e| Rejection::SmokeTestFailed(e.to_string()))?;
        let slot = self
            .maintenance
            .clone()
            .acquire_owned()
            .await
            .map(super::Slot::maintenance)
            .map_err(|e| Rejection::SmokeTestFailed(e.to_string()))?;
        let deadline = Instant::now() + self.engine.limits.deadline;
        let response = self
            .handle_with(component, request, slot, deadline)
            .await
            .map_err(|e| Rejection::SmokeTestFailed(format!("{e:#}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Rejection::SmokeTestFailed(format!("reading the answer: {e}")))?
            .to_bytes();
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Rejection::SmokeTestFailed(format!("the answer is not JSON ({e})")))?;
        match answer["data"]["logicVersion"].as_str() {
            Some(label) if status.is_success() => {
                let _ = component.label.set(label.to_owned());
                Ok(())
            }
            _ => Err(Rejection::SmokeTestFailed(format!(
                "`{{ logicVersion }}` answered {status}: {answer}"
            ))),
        }
    }
}
