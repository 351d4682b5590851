//! Which component serves: the active version, the one before it (for
//! rollback) and optionally a canary taking a share of requests. A
//! `Deployment` is immutable; changes build a new one and swap it in
//! atomically, so a request sees one consistent deployment and keeps the
//! component it picked until it ends.
//!
//! The transitions (activate, roll back, canary) are written once, over
//! any `Version`: a process deploys loaded components, a fleet agrees on
//! a `Deployment<String>` of sha256s in its shared store and each replica
//! resolves it to its own loaded components.

use std::sync::Arc;

use crate::component::LogicComponent;

/// What a deployment is made of: anything with a version's identity.
pub trait Version: Clone {
    fn sha256(&self) -> &str;
}

impl Version for Arc<LogicComponent> {
    fn sha256(&self) -> &str {
        &self.sha256
    }
}

impl Version for String {
    fn sha256(&self) -> &str {
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canary<V = Arc<LogicComponent>> {
    pub candidate: V,
    /// Share of requests, 0..=100.
    pub percent: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment<V = Arc<LogicComponent>> {
    pub active: V,
    pub previous: Option<V>,
    pub canary: Option<Canary<V>>,
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

impl<V: Version> Deployment<V> {
    pub fn new(active: V) -> Deployment<V> {
        Deployment {
            active,
            previous: None,
            canary: None,
        }
    }

    /// The component for a request whose uniform random draw is `roll`.
    pub fn pick(&self, roll: u64) -> &V {
        match &self.canary {
            Some(canary) if roll % 100 < u64::from(canary.percent) => &canary.candidate,
            _ => &self.active,
        }
    }

    pub fn activate(&self, next: V) -> Result<Deployment<V>, DeploymentError> {
        if next.sha256() == self.active.sha256() {
            return Err(DeploymentError::AlreadyActive(next.sha256().to_owned()));
        }
        Ok(Deployment {
            active: next,
            previous: Some(self.active.clone()),
            canary: None,
        })
    }

    /// Swaps active and previous, so a second rollback undoes the first.
    pub fn rollback(&self) -> Result<Deployment<V>, DeploymentError> {
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
        candidate: V,
        percent: u32,
    ) -> Result<Deployment<V>, DeploymentError> {
        let percent = u8::try_from(percent)
            .ok()
            .filter(|p| *p <= 100)
            .ok_or(DeploymentError::BadPercent(percent))?;
        if candidate.sha256() == self.active.sha256() {
            return Err(DeploymentError::AlreadyActive(
                candidate.sha256().to_owned(),
            ));
        }
        Ok(Deployment {
            canary: Some(Canary { candidate, percent }),
            ..self.clone()
        })
    }

    pub fn promote_canary(&self) -> Result<Deployment<V>, DeploymentError> {
        let canary = self.canary.clone().ok_or(DeploymentError::NoCanary)?;
        self.activate(canary.candidate)
    }

    pub fn abort_canary(&self) -> Result<Deployment<V>, DeploymentError> {
        if self.canary.is_none() {
            return Err(DeploymentError::NoCanary);
        }
        Ok(Deployment {
            canary: None,
            ..self.clone()
        })
    }

    /// Every version it names: active, canary, previous.
    pub fn versions(&self) -> impl Iterator<Item = &V> {
        std::iter::once(&self.active)
            .chain(self.canary.as_ref().map(|canary| &canary.candidate))
            .chain(self.previous.as_ref())
    }

    /// The same deployment by sha256 only, as a fleet stores it.
    pub fn ids(&self) -> Deployment<String> {
        self.resolve(|version| Ok::<_, std::convert::Infallible>(version.sha256().to_owned()))
            .unwrap_or_else(|never| match never {})
    }

    /// The same deployment of other handles to the same versions.
    pub fn resolve<W, E>(
        &self,
        mut find: impl FnMut(&V) -> Result<W, E>,
    ) -> Result<Deployment<W>, E> {
        Ok(Deployment {
            active: find(&self.active)?,
            previous: self.previous.as_ref().map(&mut find).transpose()?,
            canary: match &self.canary {
                Some(canary) => Some(Canary {
                    candidate: find(&canary.candidate)?,
                    percent: canary.percent,
                }),
                None => None,
            },
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
    use super::{Canary, Deployment, DeploymentError, roll};

    fn v(sha256: &str) -> String {
        sha256.to_owned()
    }

    #[test]
    fn the_transitions_over_sha256s_are_the_process_ones() {
        let first = Deployment::new(v("a"));
        assert_eq!(
            first.activate(v("a")),
            Err(DeploymentError::AlreadyActive(v("a")))
        );
        assert_eq!(first.rollback(), Err(DeploymentError::NothingToRollBack));
        let second = first.activate(v("b")).unwrap();
        assert_eq!(
            (second.active.as_str(), second.previous.as_deref()),
            ("b", Some("a"))
        );
        let canary = second.with_canary(v("c"), 20).unwrap();
        assert_eq!(
            canary.canary,
            Some(Canary {
                candidate: v("c"),
                percent: 20
            })
        );
        assert_eq!(canary.versions().collect::<Vec<_>>(), ["b", "c", "a"]);
        assert_eq!(
            second.with_canary(v("c"), 101),
            Err(DeploymentError::BadPercent(101))
        );
        assert_eq!(canary.abort_canary().unwrap(), second);
        let promoted = canary.promote_canary().unwrap();
        assert_eq!(
            (promoted.active.as_str(), promoted.previous.as_deref()),
            ("c", Some("b"))
        );
        let back = promoted.rollback().unwrap();
        assert_eq!(
            (back.active.as_str(), back.previous.as_deref()),
            ("b", Some("c"))
        );
        assert_eq!(back.ids(), back);
        let missing: Result<Deployment<u8>, String> =
            canary.resolve(|sha| if sha == "c" { Err(sha.clone()) } else { Ok(0) });
        assert_eq!(missing, Err(v("c")));
    }

    #[test]
    fn rolls_split_traffic_evenly() {
        let draws = 100_000;
        let under_twenty = (0..draws).filter(|n| roll(*n) % 100 < 20).count();
        // 20 % of 100 000 with a binomial sd of ~126: allow 5 sd.
        assert!((19_370..=20_630).contains(&under_twenty), "{under_twenty}");
    }
}
