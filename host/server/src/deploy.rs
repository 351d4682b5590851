//! Changes to which logic serves, made by the admin API and the deploy
//! directory's watch alike: to this process's deployment, or, in a fleet
//! (`fleet.rs`), to the fleet's.

use std::sync::Arc;

use booking_logic::ports::PortError;
use booking_runtime::deployment::{Deployment, DeploymentError};
use booking_runtime::{AdminError, LogicComponent};

use crate::app::AppState;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("the fleet's store: {0}")]
    Store(#[from] PortError),
    #[error("not every replica is ready: {0}")]
    NotReady(String),
    #[error("other changes kept winning; try again")]
    Contended,
}

impl From<DeploymentError> for DeployError {
    fn from(error: DeploymentError) -> Self {
        DeployError::Admin(AdminError::Deployment(error))
    }
}

/// A change of the deployment; versions are named by a unique prefix of
/// their sha256.
pub enum Change {
    Activate(String),
    Rollback,
    Canary { version: String, percent: u32 },
    Promote,
    Abort,
}

/// Loads (compiles, smoke-tests) an uploaded version here and, in a
/// fleet, stores it there as a candidate every replica loads.
pub async fn upload(
    state: &AppState,
    bytes: &[u8],
    source: &str,
) -> Result<Arc<LogicComponent>, DeployError> {
    let loaded = state.runtime.load(bytes, source).await?;
    if let Some(fleet) = &state.fleet {
        fleet.upload(&state.runtime, &loaded, bytes).await?;
    }
    Ok(loaded)
}

/// Makes `change`; once it returns, this process serves the result.
pub async fn change(state: &AppState, change: Change) -> Result<(), DeployError> {
    let runtime = &state.runtime;
    let Some(fleet) = &state.fleet else {
        match change {
            Change::Activate(version) => runtime.activate(&version).await.map(drop),
            Change::Rollback => runtime.rollback().await.map(drop),
            Change::Canary { version, percent } => {
                runtime.start_canary(&version, percent).await.map(drop)
            }
            Change::Promote => runtime.promote_canary().await.map(drop),
            Change::Abort => runtime.abort_canary().await,
        }?;
        return Ok(());
    };
    type Decide = Box<
        dyn Fn(&Deployment<String>) -> Result<Deployment<String>, DeploymentError> + Sync + Send,
    >;
    let decide: Decide = match change {
        Change::Activate(version) => {
            let version = fleet.find(&version).await?;
            Box::new(move |current| current.activate(version.clone()))
        }
        Change::Rollback => Box::new(Deployment::rollback),
        Change::Canary { version, percent } => {
            let version = fleet.find(&version).await?;
            Box::new(move |current| current.with_canary(version.clone(), percent))
        }
        Change::Promote => Box::new(Deployment::promote_canary),
        Change::Abort => Box::new(Deployment::abort_canary),
    };
    fleet.change(runtime, &*decide).await.map(drop)
}
