//! The one shape every adapter has, as every host capability of Spin is a
//! `spin_factors::Factor` with its own config type and the same phases,
//! registered in one place. Here there are two phases: an adapter is
//! built from its config (`from_config`), then checked (`health`) for as
//! long as the host serves. What it does in between is its port trait
//! (`booking_logic::ports::Seats`, …), which the adapter also implements.
//!
//! The host registers each adapter once (`host/server/src/dependencies.rs`):
//! as its port for the logic, and as a [`HealthCheck`] for `/health`,
//! which iterates over them.

use async_trait::async_trait;

/// An adapter: built from its config, named, and able to say whether
/// what it adapts is up. Every adapter implements it the same way, in
/// one `impl Adapter for …` block at the end of its file.
#[async_trait]
pub trait Adapter: Sized + Send + Sync + 'static {
    /// What it is called in `/admin/health` (`checks.<NAME>`) and in
    /// `referencePeers`: the WIT interface it implements (`storage`,
    /// `events`, `users`, `payments`), except that `seats` is named after
    /// the service it reaches, `cinema`; the broker is `broker`.
    const NAME: &'static str;

    /// Everything it is built from.
    type Config: Send;

    /// Builds it. Adapters of remote services connect lazily, so the host
    /// starts while they are down; a store opens its file or creates its
    /// indexes here, so an unusable database stops the start-up with the
    /// reason.
    async fn from_config(config: Self::Config) -> anyhow::Result<Self>;

    /// One cheap round trip to what it adapts: `Ok` when it is up,
    /// otherwise why not (for operators: clients never see it). The caller
    /// puts a deadline on it.
    async fn health(&self) -> Result<(), String>;
}

/// An adapter with its type erased, as the health report holds it.
/// Implemented for every [`Adapter`]; nothing else implements it.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// [`Adapter::NAME`].
    fn name(&self) -> &'static str;

    /// [`Adapter::health`].
    async fn check(&self) -> Result<(), String>;
}

#[async_trait]
impl<A: Adapter> HealthCheck for A {
    fn name(&self) -> &'static str {
        A::NAME
    }

    async fn check(&self) -> Result<(), String> {
        self.health().await
    }
}
