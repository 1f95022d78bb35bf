//! The diagonal-Fisher actor update (`algo: diag`, ALGORITHMS.md 4.2, separate networks): the
//! loss gradient preconditioned by the exact diagonal of the empirical Fisher of the minibatch,
//!
//! d = G / (diag F + λ),  diag F_j = Σ_i H_ij² / b,  G = −Jᵀ(r ⊙ a)/b − c_ent ∇ℋ,
//!
//! then a global L2 clip and SGD (momentum 1e-6). diag F comes from the factored Jacobian's
//! column sums of squares — no per-sample gradients.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;
use rat_core::dist::Communicator;
use rat_core::jacobian::ScoreJacobian;
use rat_core::{Result, clip};

use super::score::{ScorePass, StepControl};
use super::shard::Rows;
use super::update::{ActorBatch, ActorUpdate, StepInfo};
use crate::config::{AlgoConfig, NormObj};
use crate::nets::Actor;

/// The diagonal-Fisher rule and its SGD state.
#[derive(Debug, Clone)]
pub struct DiagActor {
    damping: f64,
    norm_obj: NormObj,
    clamp: Option<(f64, f64)>,
    control: StepControl,
    max_grad_norm: f64,
    /// SGD with the reference's momentum 1e-6 (its buffer is not used as a Kaczmarz vector).
    sgd: crate::optim::Sgd,
    rows: Rows,
}

impl DiagActor {
    /// The rule with `algo_config`'s λ (`cg_damping`), scaling, clamp, entropy and clip.
    pub fn new(c: &AlgoConfig) -> Result<Self> {
        Ok(Self {
            damping: c.cg_damping,
            norm_obj: c.norm_obj,
            clamp: c.clamp_ratio.then_some((c.min_ratio, c.max_ratio)),
            control: StepControl::from_config(c),
            max_grad_norm: c.max_grad_norm,
            sgd: crate::optim::Sgd::new(),
            rows: Rows::default(),
        })
    }
}

impl ActorUpdate for DiagActor {
    fn name(&self) -> &'static str {
        "diag"
    }

    fn step(&mut self, actor: &dyn Actor, batch: &ActorBatch, lr: f64) -> Result<StepInfo> {
        let pass = ScorePass::new(actor, batch, self.clamp)?;
        let rows = self.rows.of(&pass)?;
        let b = rows.total(pass.jac.num_samples()) as f64;
        let (loss_pi, grad) = super::pg::surrogate_gradient(
            &pass,
            &rows,
            actor,
            batch,
            self.norm_obj,
            batch.ent_coef,
        )?;
        let diag = rows.sum_params(pass.jac.sq_col_sums()?)?;
        let d = grad
            .iter()
            .zip(&diag)
            .map(|(g, f)| Ok(g.div(&f.affine(1.0 / b, self.damping)?)?))
            .collect::<Result<Vec<_>>>()?;
        let (clipped, grad_norm) = clip::clip_grad_norm(&d, self.max_grad_norm)?;
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
