//! The vanilla policy-gradient actor update (`algo: pg`), the yardstick the natural-gradient
//! rules are measured against: the RAT/diag surrogate's gradient
//!
//! G = −Jᵀ(r ⊙ a)/b − c_ent ∇ℋ   (r clamped and detached, a centred and scaled),
//!
//! with no preconditioning, then the global L2 clip and SGD (momentum 1e-6).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;
use rat_core::dist::Communicator;
use rat_core::{Result, clip};

use super::score::{ScorePass, StepControl, normalise_advantages, scalar};
use super::shard::{Rows, StepRows};
use super::update::{ActorBatch, ActorUpdate, StepInfo};
use crate::config::{AlgoConfig, NormObj};
use crate::nets::Actor;

/// The plain-gradient rule and its SGD state.
#[derive(Debug, Clone)]
pub struct PgActor {
    norm_obj: NormObj,
    clamp: Option<(f64, f64)>,
    control: StepControl,
    max_grad_norm: f64,
    sgd: crate::optim::Sgd,
    rows: Rows,
}

impl PgActor {
    /// The rule with `algo_config`'s scaling, clamp, entropy and clip.
    pub fn new(c: &AlgoConfig) -> Result<Self> {
        Ok(Self {
            norm_obj: c.norm_obj,
            clamp: c.clamp_ratio.then_some((c.min_ratio, c.max_ratio)),
            control: StepControl::from_config(c),
            max_grad_norm: c.max_grad_norm,
            sgd: crate::optim::Sgd::new(),
            rows: Rows::default(),
        })
    }
}

/// The policy-gradient loss term and its gradient −Jᵀ(r ⊙ a)/b − c_ent ∇ℋ, shared by the rules
/// that precondition it.
pub(crate) fn surrogate_gradient(
    pass: &ScorePass,
    rows: &StepRows,
    actor: &dyn Actor,
    batch: &ActorBatch,
    norm_obj: NormObj,
    ent_coef: f64,
) -> Result<(f64, Vec<Tensor>)> {
    let (adv, ratio) = (rows.all(&batch.advantages)?, rows.all(&pass.ratio)?);
    let a = rows.mine(&normalise_advantages(&adv, &ratio, norm_obj)?)?;
    let weights = pass.ratio.mul(&a)?;
    let loss_pi = -rows.mean(scalar(&weights.mul(&pass.logp)?.mean_all()?)?)?;
    let grad = pass.loss_gradient(actor, &batch.obs, &weights, ent_coef)?;
    Ok((loss_pi, rows.mean_params(grad)?))
}

impl ActorUpdate for PgActor {
    fn name(&self) -> &'static str {
        "pg"
    }

    fn step(&mut self, actor: &dyn Actor, batch: &ActorBatch, lr: f64) -> Result<StepInfo> {
        let pass = ScorePass::new(actor, batch, self.clamp)?;
        let rows = self.rows.of(&pass)?;
        let (loss_pi, grad) =
            surrogate_gradient(&pass, &rows, actor, batch, self.norm_obj, batch.ent_coef)?;
        let (clipped, grad_norm) = clip::clip_grad_norm(&grad, self.max_grad_norm)?;
        let (step, kl_pred) = rows.bound(&self.control, actor, &pass, &batch.obs, clipped, lr)?;
        self.sgd.step(pass.jac.params(), &step, lr)?;
        Ok(StepInfo {
            kl_pred,
            ..rows.info(&pass, grad_norm, loss_pi)?
        })
    }

    fn shard_rows(&mut self, comm: Arc<dyn Communicator>) -> Result<()> {
        self.rows = Rows::sharded(comm);
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.sgd.state()
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.sgd.load_state(state)
    }
}
