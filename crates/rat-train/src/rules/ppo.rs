//! PPO's clipped surrogate (Schulman et al. 2017) as an actor rule (`algo: ppo`), with
//! CleanRL's defaults (`configs/ppo_mlp.yaml`): advantages normalised per minibatch with the
//! sample std, L = −mean(min(r a, clip(r, 1 − ε, 1 + ε) a)) − c_ent ℋ with the unclamped ratio
//! r = π/π_old, a global L2 clip and Adam (ε = 1e-5). Its gradient is
//!
//! ∇L = −Jᵀ(m ⊙ r ⊙ a)/b,  m_i = 0 where the clipped branch is the minimum and constant
//! (r_i > 1 + ε with a_i > 0, or r_i < 1 − ε with a_i < 0), else 1.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Tensor};
use rat_core::dist::Communicator;
use rat_core::jacobian::ScoreJacobian;
use rat_core::{Result, clip};

use super::score::{ScorePass, rms, scalar};
use super::shard::Rows;
use super::update::{ActorBatch, ActorUpdate, StepInfo};
use crate::config::AlgoConfig;
use crate::nets::Actor;
use crate::optim::LazyAdam;

/// The PPO rule and its Adam state.
#[derive(Debug, Clone)]
pub struct PpoActor {
    clip_coef: f64,
    max_grad_norm: f64,
    adam: LazyAdam,
    rows: Rows,
}

impl PpoActor {
    /// The rule with `algo_config`'s `clip_coef`, entropy coefficient and clip.
    pub fn new(c: &AlgoConfig) -> Result<Self> {
        if !(c.clip_coef > 0.0 && c.clip_coef < 1.0) {
            return Err(rat_core::Error::InvalidArgument {
                op: "PpoActor::new",
                msg: format!("clip_coef must be in (0, 1), got {}", c.clip_coef),
            });
        }
        Ok(Self {
            clip_coef: c.clip_coef,
            max_grad_norm: c.max_grad_norm,
            adam: LazyAdam::new(1e-5),
            rows: Rows::default(),
        })
    }
}

impl ActorUpdate for PpoActor {
    fn name(&self) -> &'static str {
        "ppo"
    }

    fn step(&mut self, actor: &dyn Actor, batch: &ActorBatch, lr: f64) -> Result<StepInfo> {
        let pass = ScorePass::new(actor, batch, None)?;
        let split = self.rows.clone();
        let rows = split.of(&pass)?;
        let b = rows.total(pass.jac.num_samples());
        let adv = rows.all(&batch.advantages)?;
        let centred = adv.broadcast_sub(&adv.mean_all()?)?;
        // The sample std (divisor b − 1), as torch's `std()` in CleanRL.
        let std = rms(&centred)? * (b as f64 / (b.max(2) - 1) as f64).sqrt();
        let a = rows.mine(&centred.affine(1.0 / (std + 1e-8), 0.0)?)?;
        let r = &pass.ratio;
        let (lo, hi) = (1.0 - self.clip_coef, 1.0 + self.clip_coef);
        let clipped = r.clamp(lo, hi)?;
        let surrogate = r.mul(&a)?.minimum(&clipped.mul(&a)?)?;
        let loss_pi = -rows.mean(scalar(&surrogate.mean_all()?)?)?;
        let positive = a.gt(0.0)?.to_dtype(DType::U8)?;
        let negative = a.lt(0.0)?.to_dtype(DType::U8)?;
        let flat = r.gt(hi)?.mul(&positive)?.add(&r.lt(lo)?.mul(&negative)?)?;
        let mask = flat.eq(0u8)?.to_dtype(r.dtype())?;
        let w = r.mul(&a)?.mul(&mask)?;
        let grad =
            rows.mean_params(pass.loss_gradient(actor, &batch.obs, &w, batch.ent_coef)?)?;
        let (clipped_grad, grad_norm) = clip::clip_grad_norm(&grad, self.max_grad_norm)?;
        let ps = pass.jac.params().to_vec();
        self.adam.step(&ps, &clipped_grad, lr)?;
        // CleanRL's clipfrac: the fraction with |r − 1| > ε.
        let outside = r.affine(1.0, -1.0)?.abs()?.gt(self.clip_coef)?;
        let clipfrac = rows.mean(scalar(&outside.to_dtype(r.dtype())?.mean_all()?)?)?;
        Ok(StepInfo {
            clipfrac,
            ..rows.info(&pass, grad_norm, loss_pi)?
        })
    }

    fn shard_rows(&mut self, comm: Arc<dyn Communicator>) -> Result<()> {
        self.rows = Rows::sharded(comm);
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.adam.state()
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.adam.load_state(state)
    }
}
