//! The trust-region-style FVP + conjugate-gradient actor update (`algo: fvp`, ALGORITHMS.md 4.1):
//!
//! L = −mean(r ⊙ a) − c_ent ℋ with the clamped ratio r *with* gradient (clamped samples give
//! zero gradient); d = CG(F + λI, ∇L) (`grad: npg`) or d = ∇L (`grad: pg`), with F the **exact**
//! Fisher of the policy averaged over the minibatch, F v = J_outᵀ M J_out v / b (forward-mode
//! J_out v, one backward pass for J_outᵀ; no double backward); then `post_grad` (`fisher_clip`:
//! q = dᵀ(F + λI)d, squared as the reference, d ← d·min(0.5/q, 1)) and SGD (momentum 1e-6).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;
use rat_core::cg::{CgOptions, conjugate_gradient};
use rat_core::clip::PostGrad;
use rat_core::dist::Communicator;
use rat_core::layers::Tangents;
use rat_core::{Result, fisher, params};

use super::score::{ScorePass, StepControl, normalise_advantages, scalar};
use super::shard::{Rows, StepRows};
use super::update::{ActorBatch, ActorUpdate, StepInfo};
use crate::config::{AlgoConfig, GradKind, NormObj, PostGradKind};
use crate::nets::{Actor, Policy};

/// The FVP rule and its SGD state.
#[derive(Debug, Clone)]
pub struct FvpActor {
    damping: f64,
    norm_obj: NormObj,
    clamp: Option<(f64, f64)>,
    control: StepControl,
    max_grad_norm: f64,
    grad: GradKind,
    post_grad: PostGrad,
    cg: CgOptions,
    sgd: crate::optim::Sgd,
    rows: Rows,
}

impl FvpActor {
    /// The rule with `algo_config`'s λ (`cg_damping`), `cg_steps`, `grad`, `post_grad`, scaling,
    /// clamp, entropy and threshold (`max_grad_norm`).
    pub fn new(c: &AlgoConfig) -> Result<Self> {
        Ok(Self {
            damping: c.cg_damping,
            norm_obj: c.norm_obj,
            clamp: c.clamp_ratio.then_some((c.min_ratio, c.max_ratio)),
            control: StepControl::from_config(c),
            max_grad_norm: c.max_grad_norm,
            grad: c.grad,
            post_grad: match c.post_grad {
                PostGradKind::FisherClip => PostGrad::FisherClip,
                PostGradKind::L2Clip => PostGrad::L2Clip,
                PostGradKind::Norm => PostGrad::Norm,
                PostGradKind::None => PostGrad::None,
            },
            cg: CgOptions {
                max_iters: c.cg_steps,
                ..CgOptions::default()
            },
            sgd: crate::optim::Sgd::new(),
            rows: Rows::default(),
        })
    }

    /// (F + λI) v on the whole minibatch: this rank's rows' F v, averaged over the ranks.
    fn fvp(
        &self,
        rows: &StepRows,
        actor: &dyn Actor,
        policy: &Policy,
        obs: &Tensor,
        v: &[Tensor],
    ) -> Result<Vec<Tensor>> {
        if rows.shard().is_none() {
            return fisher_vector_product(actor, policy, obs, v, self.damping);
        }
        let fv = rows.mean_params(fisher_vector_product(actor, policy, obs, v, 0.0)?)?;
        params::axpy(self.damping, v, &fv)
    }
}

/// L = −mean(r ⊙ a) − c_ent ℋ with the clamped ratio *with* gradient, and its gradient
/// −Jᵀ(r ⊙ a ⊙ 1[r not clamped])/b − c_ent ∇ℋ (∇r = r ∇log π inside the clamp, 0 outside): the
/// surrogate of FVP and K-FAC (ALGORITHMS.md 4.1 step 1, 4.3 step 3).
pub(crate) fn clamped_surrogate_gradient(
    pass: &ScorePass,
    rows: &StepRows,
    actor: &dyn Actor,
    batch: &ActorBatch,
    clamp: Option<(f64, f64)>,
    norm_obj: NormObj,
    ent_coef: f64,
) -> Result<(f64, Vec<Tensor>)> {
    let (adv, ratio) = (rows.all(&batch.advantages)?, rows.all(&pass.ratio)?);
    let a = rows.mine(&normalise_advantages(&adv, &ratio, norm_obj)?)?;
    let loss_pi = -rows.mean(scalar(&pass.ratio.mul(&a)?.mean_all()?)?)?;
    let free = match clamp {
        Some((lo, hi)) => pass
            .ratio
            .gt(lo)?
            .mul(&pass.ratio.lt(hi)?)?
            .to_dtype(pass.ratio.dtype())?,
        None => pass.ratio.ones_like()?,
    };
    let w = pass.ratio.mul(&a)?.mul(&free)?;
    let grad = pass.loss_gradient(actor, &batch.obs, &w, ent_coef)?;
    Ok((loss_pi, rows.mean_params(grad)?))
}

/// (F + λI) v with F = J_outᵀ M J_out / b the exact Fisher of the actor's policy at `obs`;
/// `policy` is `actor.policy(obs, None)` (computed with the parameters in the graph, so it can
/// be reused across products).
pub fn fisher_vector_product(
    actor: &dyn Actor,
    policy: &Policy,
    obs: &Tensor,
    v: &[Tensor],
    damping: f64,
) -> Result<Vec<Tensor>> {
    let params = actor.params();
    let tangent = actor.policy_tangent(obs, &Tangents::new(&params, v)?)?;
    let (outputs, metric) = policy.fisher_outputs(&tangent)?;
    fisher::exact_fvp(&params, &outputs, &metric, v, damping)
}

impl ActorUpdate for FvpActor {
    fn name(&self) -> &'static str {
        "fvp"
    }

    fn step(&mut self, actor: &dyn Actor, batch: &ActorBatch, lr: f64) -> Result<StepInfo> {
        let pass = ScorePass::new(actor, batch, self.clamp)?;
        let rows = self.rows.of(&pass)?;
        let (loss_pi, grad) = clamped_surrogate_gradient(
            &pass,
            &rows,
            actor,
            batch,
            self.clamp,
            self.norm_obj,
            batch.ent_coef,
        )?;
        let policy = actor.policy(&batch.obs, None)?;
        let shapes: Vec<_> = grad.iter().map(|g| g.shape().clone()).collect();
        let d = match self.grad {
            GradKind::Pg => grad,
            GradKind::Npg => {
                let flat = params::flatten(&grad)?;
                let sol = conjugate_gradient(
                    |x| {
                        let v = params::unflatten(x, &shapes)?;
                        params::flatten(&self.fvp(&rows, actor, &policy, &batch.obs, &v)?)
                    },
                    &flat,
                    self.cg,
                )?;
                params::unflatten(&sol.x, &shapes)?
            }
        };
        let fd = match self.post_grad {
            PostGrad::FisherClip | PostGrad::Norm => {
                Some(self.fvp(&rows, actor, &policy, &batch.obs, &d)?)
            }
            _ => None,
        };
        let (d, q) =
            rat_core::clip::post_grad(&d, fd.as_deref(), self.post_grad, self.max_grad_norm)?;
        let (step, kl_pred) = rows.bound(&self.control, actor, &pass, &batch.obs, d, lr)?;
        self.sgd.step(pass.jac.params(), &step, lr)?;
        Ok(StepInfo {
            kl_pred,
            ..rows.info(&pass, q, loss_pi)?
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
