//! The RAT actor update of the separate actor–critic (ALGORITHMS.md §2.2), one minibatch at a
//! time, on `rat-core`'s factored Jacobian: one recorded forward, one backward of Σ log π, no
//! per-sample loop.

use candle_core::{DType, Tensor};
use rat_core::jacobian::{FactoredJacobian, ScoreJacobian};
use rat_core::kaczmarz::ReferenceKaczmarz;
use rat_core::{Result, clip, params, woodbury};

use crate::config::{AlgoConfig, NormObj};
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
    /// −mean(r ψ log π), the policy term of the loss.
    pub loss_pi: f64,
}

/// The hyperparameters of the step, from `algo_config`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatParams {
    /// λ (`cg_damping`).
    pub damping: f64,
    /// Advantage scaling.
    pub norm_obj: NormObj,
    /// (min, max) ratio clamp, if any.
    pub clamp: Option<(f64, f64)>,
    /// Entropy bonus coefficient.
    pub ent_coef: f64,
    /// Global L2 clip.
    pub max_grad_norm: f64,
    /// Subtract J·(momentum buffer) from the advantage (`is_karzmarz`).
    pub kaczmarz: bool,
    /// Solve with the published non-symmetric LU form instead of Cholesky.
    pub reference_solve: bool,
}

impl RatParams {
    /// The step's parameters from a config.
    pub fn from_config(c: &AlgoConfig) -> Self {
        Self {
            damping: c.cg_damping,
            norm_obj: c.norm_obj,
            clamp: c.clamp_ratio.then_some((c.min_ratio, c.max_ratio)),
            ent_coef: c.ent_coef,
            max_grad_norm: c.max_grad_norm,
            kaczmarz: c.is_karzmarz,
            reference_solve: false,
        }
    }
}

/// The actor's optimiser state: SGD with momentum 1e-6, whose buffer is the Kaczmarz vector.
#[derive(Debug, Clone)]
pub struct RatActor {
    /// The hyperparameters.
    pub params: RatParams,
    sgd: ReferenceKaczmarz,
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

impl RatActor {
    /// A fresh state (no momentum buffer yet).
    pub fn new(params: RatParams) -> Result<Self> {
        Ok(Self {
            params,
            sgd: ReferenceKaczmarz::new(params.damping)?,
        })
    }

    /// The SGD momentum buffer (the Kaczmarz vector), once a step was taken.
    pub fn momentum_buffer(&self) -> Option<&[Tensor]> {
        self.sgd.buffer()
    }

    /// a = (Ã) / (s + 1e-8) with Ã = A − mean(A) and s chosen by `norm_obj`.
    fn normalise(&self, adv: &Tensor, ratio: &Tensor) -> Result<Tensor> {
        let centred = adv.broadcast_sub(&adv.mean_all()?)?;
        let rms = |t: &Tensor| -> Result<f64> { Ok(scalar(&t.sqr()?.mean_all()?)?.sqrt()) };
        let s = match self.params.norm_obj {
            NormObj::Adv => rms(&centred)?,
            NormObj::Obj => rms(&ratio.mul(&centred)?)?,
            NormObj::Ratio => scalar(&ratio.mean_all()?)? * rms(&centred)?,
        };
        Ok(centred.affine(1.0 / (s + 1e-8), 0.0)?)
    }

    /// One RAT step on `batch`, updating `actor` in place (θ ← θ − lr·buf).
    pub fn step(&mut self, actor: &dyn Actor, batch: &ActorBatch, lr: f64) -> Result<StepInfo> {
        let mut rec = rat_core::layers::Recorder::new();
        let dist = actor.policy(&batch.obs, Some(&mut rec))?;
        let logp = dist.log_prob(&batch.actions)?;
        let old = &batch.old;
        let kl = scalar(&old.kl(&dist)?.mean_all()?)?;
        let entropy = scalar(&dist.entropy()?.mean_all()?)?;
        let rho = logp.sub(&old.log_prob(&batch.actions)?)?.exp()?.detach();
        let ratio = match self.params.clamp {
            Some((lo, hi)) => rho.clamp(lo, hi)?,
            None => rho,
        };
        let b = logp.dims()[0];
        let a = self.normalise(&batch.advantages, &ratio)?;
        let logp_value = logp.detach();
        let jac = FactoredJacobian::from_objective(&rec, &logp)?;
        let a = if self.params.kaczmarz {
            self.sgd.correct(&jac, &a)?
        } else {
            a
        };
        let kernel = jac.kernel()?;
        let psi = if self.params.reference_solve {
            woodbury::transform_advantages_reference(&kernel, &ratio, &a, self.params.damping)?
        } else {
            woodbury::transform_advantages(&kernel, &ratio, &a, self.params.damping)?
        };
        let weights = ratio.mul(&psi)?;
        let loss_pi = -scalar(&weights.mul(&logp_value)?.mean_all()?)?;
        // ∇L = −Jᵀ(r ⊙ ψ)/b − ent_coef ∇ℋ.
        let mut grad = params::scale(&jac.vjp(&weights.affine(1.0 / b as f64, 0.0)?)?, -1.0)?;
        if self.params.ent_coef != 0.0 {
            let h = actor.policy(&batch.obs, None)?.entropy()?.mean_all()?;
            let g = h.backward()?;
            let ent: Vec<Tensor> = jac
                .params()
                .iter()
                .map(|p| {
                    g.get(p.as_tensor())
                        .cloned()
                        .map_or_else(|| p.as_tensor().zeros_like(), Ok)
                })
                .collect::<candle_core::Result<_>>()?;
            grad = params::axpy(-self.params.ent_coef, &ent, &grad)?;
        }
        let (clipped, grad_norm) = clip::clip_grad_norm(&grad, self.params.max_grad_norm)?;
        let step = self.sgd.momentum_step(&clipped)?;
        for (p, d) in jac.params().iter().zip(step) {
            p.set(&p.as_tensor().sub(&d.affine(lr, 0.0)?)?)?;
        }
        Ok(StepInfo {
            kl,
            entropy,
            grad_norm,
            ratio_max: scalar(&ratio.max(0)?)?,
            ratio_min: scalar(&ratio.min(0)?)?,
            loss_pi,
        })
    }
}
