//! Which component serves: the active version, the one before it (for
//! rollback) and optionally a canary taking a share of requests. A
//! `Deployment` is immutable; changes build a new one and swap it in
//! atomically, so a request sees one consistent deployment and keeps the
//! component it picked until it ends.

use std::sync::Arc;

use crate::component::LogicComponent;

#[derive(Clone)]
pub struct Canary {
    pub candidate: Arc<LogicComponent>,
    /// Share of requests, 0..=100.
    pub percent: u8,
}

#[derive(Clone)]
pub struct Deployment {
    pub active: Arc<LogicComponent>,
    pub previous: Option<Arc<LogicComponent>>,
    pub canary: Option<Canary>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeploymentError {
    #[error("there is no previous version to roll back to")]
    NothingToRollBack,
    #[error("no canary is running")]
    NoCanary,
    #[error("canary percent must be 0..=100, got {0}")]
    BadPercent(u32),
    #[error("{0} is already the active version")]
    AlreadyActive(String),
}

impl Deployment {
    pub fn new(active: Arc<LogicComponent>) -> Deployment {
        Deployment {
            active,
            previous: None,
            canary: None,
        }
    }

    /// The component for a request whose uniform random draw is `roll`.
    pub fn pick(&self, roll: u64) -> &Arc<LogicComponent> {
        match &self.canary {
            Some(canary) if roll % 100 < u64::from(canary.percent) => &canary.candidate,
            _ => &self.active,
        }
    }

    pub fn activate(&self, next: Arc<LogicComponent>) -> Result<Deployment, DeploymentError> {
        if next.sha256 == self.active.sha256 {
            return Err(DeploymentError::AlreadyActive(next.sha256.clone()));
        }
        Ok(Deployment {
            active: next,
            previous: Some(self.active.clone()),
            canary: None,
        })
    }

    /// Swaps active and previous, so a second rollback undoes the first.
    pub fn rollback(&self) -> Result<Deployment, DeploymentError> {
        let previous = self
            .previous
            .clone()
            .ok_or(DeploymentError::NothingToRollBack)?;
        Ok(Deployment {
            active: previous,
            previous: Some(self.active.clone()),
            canary: None,
        })
    }

    pub fn with_canary(
        &self,
        candidate: Arc<LogicComponent>,
        percent: u32,
    ) -> Result<Deployment, DeploymentError> {
        let percent = u8::try_from(percent)
            .ok()
            .filter(|p| *p <= 100)
            .ok_or(DeploymentError::BadPercent(percent))?;
        if candidate.sha256 == self.active.sha256 {
            return Err(DeploymentError::AlreadyActive(candidate.sha256.clone()));
        }
        Ok(Deployment {
            canary: Some(Canary { candidate, percent }),
            ..self.clone()
        })
    }

    pub fn promote_canary(&self) -> Result<Deployment, DeploymentError> {
        let canary = self.canary.clone().ok_or(DeploymentError::NoCanary)?;
        self.activate(canary.candidate)
    }

    pub fn abort_canary(&self) -> Result<Deployment, DeploymentError> {
        if self.canary.is_none() {
            return Err(DeploymentError::NoCanary);
        }
        Ok(Deployment {
            canary: None,
            ..self.clone()
        })
    }
}

/// A fast, well-mixed draw per request (splitmix64 over a counter):
/// unbiased enough for traffic splitting, no lock, no syscall.
pub fn roll(counter: u64) -> u64 {
    let mut z = counter.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::roll;

    #[test]
    fn rolls_split_traffic_evenly() {
        let draws = 100_000;
        let under_twenty = (0..draws).filter(|n| roll(*n) % 100 < 20).count();
        // 20 % of 100 000 with a binomial sd of ~126: allow 5 sd.
        assert!((19_370..=20_630).contains(&under_twenty), "{under_twenty}");
    }
}
