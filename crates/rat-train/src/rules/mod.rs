//! The actor update rules of the separate actor–critic, behind one interface ([`ActorUpdate`]) so
//! that the training loop does not change when a rule is added, and the factory that picks one
//! from the config ([`actor_update`]). The shared network's rules are in [`joint`].
//!
//! Adding a rule: one file here implementing [`ActorUpdate`], one arm in [`actor_update`] (`factory.rs`), one
//! `configs/<algo>_mlp.yaml` (and a variant of [`Algo`](crate::config::Algo)).

pub mod diag;
pub mod factory;
pub mod fvp;
pub mod joint;
pub mod kfac;
pub mod pg;
pub mod ppo;
pub mod rat;
pub mod score;
pub mod shard;
pub mod update;

pub use factory::actor_update;
pub use score::{
    ScorePass, StepControl, entropy_grad, normalise_advantages, quadratic_kl, rms, scalar,
};
pub use update::{ActorBatch, ActorUpdate, StepInfo};
