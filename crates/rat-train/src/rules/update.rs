//! The interface every actor update rule implements ([`ActorUpdate`]), what it is given
//! ([`ActorBatch`]) and what it reports ([`StepInfo`]).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;
use rat_core::dist::Communicator;

use crate::nets::{Actor, Policy};

/// One actor minibatch: normalised observations, actions, advantages and the old policy
/// (recomputed after the observation-normaliser update, as the reference does).
#[derive(Debug, Clone)]
pub struct ActorBatch {
    /// Observations (b, obs_dim).
    pub obs: Tensor,
    /// Pre-squash actions (b, act_dim), or action indices (b) of dtype u32.
    pub actions: Tensor,
    /// Advantages (b), PopArt-normalised.
    pub advantages: Tensor,
    /// The old policy at `obs`, detached.
    pub old: Policy,
    /// The samples' positions in the rollout (rules that keep per-sample state use them).
    pub block: Vec<usize>,
    /// The entropy bonus coefficient for this step (`ent_coef`, or its schedule's value).
    pub ent_coef: f64,
}

/// What one step reports (the reference's per-minibatch log values).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// KL(π_old ‖ π_θ), before the step.
    pub kl: f64,
    /// Mean entropy, before the step.
    pub entropy: f64,
    /// Global L2 norm of the loss gradient before clipping.
    pub grad_norm: f64,
    /// Largest (clamped) ratio.
    pub ratio_max: f64,
    /// Smallest (clamped) ratio.
    pub ratio_min: f64,
    /// The policy term of the loss.
    pub loss_pi: f64,
    /// The fraction of samples whose ratio hit the clamp (ppo: the clip).
    pub clipfrac: f64,
    /// The step's predicted KL ½ Δθᵀ F Δθ under the exact Fisher (NaN unless `max_kl` or
    /// `step_diagnostics`).
    pub kl_pred: f64,
    /// RAT's kernel scale tr(K)/b (NaN for the other rules).
    pub kernel_scale: f64,
}

impl StepInfo {
    /// A report of NaNs, for an iteration that took no step.
    pub const NONE: Self = Self {
        kl: f64::NAN,
        entropy: f64::NAN,
        grad_norm: f64::NAN,
        ratio_max: f64::NAN,
        ratio_min: f64::NAN,
        loss_pi: f64::NAN,
        clipfrac: f64::NAN,
        kl_pred: f64::NAN,
        kernel_scale: f64::NAN,
    };
}

/// An actor update rule: its optimiser state and one step per minibatch.
pub trait ActorUpdate {
    /// The rule's name as in `algo` (`rat`, `diag`, …).
    fn name(&self) -> &'static str;

    /// Called once per iteration before the actor passes, with the rollout's size and its
    /// advantages (N), for rules that work on the whole rollout. The default does nothing.
    fn begin_rollout(&mut self, _n: usize, _advantages: &Tensor) -> rat_core::Result<()> {
        Ok(())
    }

    /// One step on `batch`, updating `actor`'s parameters in place with learning rate `lr`.
    fn step(
        &mut self,
        actor: &dyn Actor,
        batch: &ActorBatch,
        lr: f64,
    ) -> rat_core::Result<StepInfo>;

    /// Measurements of the rule's last rollout for TensorBoard, as (tag, value) (RAT's solve
    /// quality when `solve_diagnostics` is on). The default has none.
    fn diagnostics(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// Splits every later minibatch's rows over the ranks of `comm` (`dist_mode: exact`): each
    /// rank's `step` gets its rows, and the rule computes one process's step from them with
    /// collectives. The default refuses: a rule without it runs replicated.
    fn shard_rows(&mut self, comm: Arc<dyn Communicator>) -> rat_core::Result<()> {
        Err(rat_core::Error::InvalidArgument {
            op: "ActorUpdate::shard_rows",
            msg: format!(
                "rule {} has no sharded step on {} ranks (dist_mode exact is rat's)",
                self.name(),
                comm.size()
            ),
        })
    }

    /// The optimiser state to checkpoint, by name.
    fn state(&self) -> Vec<(String, Tensor)>;

    /// Restores what [`state`](Self::state) saved (names absent from `state` leave a fresh state).
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> rat_core::Result<()>;
}
