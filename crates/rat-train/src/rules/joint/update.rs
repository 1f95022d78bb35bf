//! The interface of the shared network's joint rules ([`JointUpdate`]), what a step is given
//! ([`JointBatch`]) and reports ([`JointInfo`]), and their common hyperparameters
//! ([`JointParams`]).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;
use rat_core::dist::Communicator;

use crate::config::{AlgoConfig, DampingMode, EntMode, JointMode, NormObj};
use crate::error::Result;
use crate::nets::{DropoutMasks, Policy, SharedActorCritic};
use crate::rules::StepInfo;
use crate::rules::rat::SolveOptions;

/// One joint minibatch.
#[derive(Debug, Clone)]
pub struct JointBatch {
    /// Normalised observations (b, obs_dim).
    pub obs: Tensor,
    /// Pre-squash actions (b, act_dim), or action indices (b) of dtype u32.
    pub actions: Tensor,
    /// Advantages (b), PopArt-normalised.
    pub advantages: Tensor,
    /// Returns (b), PopArt-normalised: the value targets R.
    pub returns: Tensor,
    /// The old policy at `obs`, detached.
    pub old: Policy,
    /// The value-target noise ε (b), drawn from N(0, 1) for this minibatch.
    pub noise: Tensor,
    /// Dropout masks for every forward pass of this update (None: no dropout).
    pub masks: Option<DropoutMasks>,
    /// The entropy bonus coefficient for this step (`ent_coef`, or its schedule's value).
    pub ent_coef: f64,
}

/// What one joint step reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JointInfo {
    /// KL (measured after the step), entropy, gradient norm, ratio range and policy loss.
    pub step: StepInfo,
    /// The value-loss term of the step's loss (RAT: φ-weighted; others: plain MSE).
    pub loss_v: f64,
}

/// A joint update rule of the shared network.
pub trait JointUpdate {
    /// The rule's name as in `algo`.
    fn name(&self) -> &'static str;

    /// One step on `batch` with learning rate `lr`, updating `net` in place.
    fn step(&mut self, net: &SharedActorCritic, batch: &JointBatch, lr: f64) -> Result<JointInfo>;

    /// The optimiser state to checkpoint, by name.
    fn state(&self) -> Vec<(String, Tensor)>;

    /// Measurements of the last rollout for TensorBoard (see
    /// [`ActorUpdate::diagnostics`](crate::rules::ActorUpdate::diagnostics)); none by default.
    fn diagnostics(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// Called once per iteration before the joint passes. The default does nothing.
    fn begin_rollout(&mut self) {}

    /// Restores what [`state`](Self::state) saved.
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()>;

    /// Splits every later minibatch's rows over the ranks of `comm` (`dist_mode: exact`; see
    /// [`ActorUpdate::shard_rows`](crate::rules::ActorUpdate::shard_rows)).
    fn shard_rows(&mut self, comm: Arc<dyn Communicator>) -> Result<()> {
        crate::error::invalid(format!(
            "joint rule {} has no sharded step on {} ranks",
            self.name(),
            comm.size()
        ))
    }
}

/// The shared hyperparameters of the joint rules, from `algo_config`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JointParams {
    /// λ (`cg_damping`).
    pub damping: f64,
    /// Advantage scaling.
    pub norm_obj: NormObj,
    /// (min, max) ratio clamp, if any.
    pub clamp: Option<(f64, f64)>,
    /// λ as given or relative to tr(K)/b (`damping_mode`; RAT reference mode only).
    pub damping_mode: DampingMode,
    /// Value-loss weight.
    pub vf_coef: f64,
    /// Global L2 clip over all parameters.
    pub max_grad_norm: f64,
    /// The Kaczmarz correction (`is_karzmarz`; RAT reference mode only).
    pub kaczmarz: bool,
    /// Which RAT update.
    pub mode: JointMode,
    /// How RAT's b x b system is solved (reference mode).
    pub solve: SolveOptions,
    /// Where RAT's entropy bonus enters: the loss (`gradient`), the advantages before they are
    /// normalised (`advantage`) or after (`normalised_advantage`, reference mode only).
    pub ent_mode: EntMode,
}

impl JointParams {
    /// The parameters of a config.
    pub fn from_config(c: &AlgoConfig) -> Self {
        Self {
            damping: c.cg_damping,
            norm_obj: c.norm_obj,
            clamp: c.clamp_ratio.then_some((c.min_ratio, c.max_ratio)),
            damping_mode: c.damping_mode,
            vf_coef: c.vf_coef,
            max_grad_norm: c.max_grad_norm,
            kaczmarz: c.is_karzmarz,
            mode: c.joint_mode,
            solve: SolveOptions::from_config(c),
            ent_mode: c.ent_mode,
        }
    }
}
