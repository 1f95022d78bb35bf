//! [`JointPass`]: the common first half of every joint step.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use rat_core::jacobian::FactoredJacobian;
use rat_core::layers::Recorder;

use super::update::{JointBatch, JointInfo, JointParams};
use crate::error::Result;
use crate::nets::{JointOutput, SharedActorCritic};
use crate::rules::shard::StepRows;
use crate::rules::{StepInfo, normalise_advantages, scalar};

/// The common first half of every joint step: the recorded forward pass with the parameters in
/// the autograd graph, the joint score Jacobian and the pre-step statistics.
pub struct JointPass {
    /// The factored Jacobian of the joint rows h_i = ∇log π_i + 2ε_i ∇v_i.
    pub jac: FactoredJacobian,
    /// The recorded forward pass.
    pub rec: Recorder,
    /// The backward pass of Σ ℓ_i (the probes' gradients are the per-sample output gradients).
    pub grads: GradStore,
    /// Policy and value of the recorded pass, in the autograd graph.
    pub out: JointOutput,
    /// The (clamped) ratio π/π_old *with* gradient (b).
    pub ratio: Tensor,
    /// Mean entropy in the graph (a scalar tensor).
    pub entropy: Tensor,
    /// Per-sample log π(a|s) and ℋ(s) without their gradients (for RAT's bonus in the
    /// advantages, `ent_mode: advantage` or `normalised_advantage`).
    pub logp_entropy: (Tensor, Tensor),
    /// The fraction of samples whose ratio lies on or outside the clamp.
    pub clipfrac: f64,
}

impl JointPass {
    /// The pass for `batch`; `clamp` bounds the ratio when given.
    pub fn new(
        net: &SharedActorCritic,
        batch: &JointBatch,
        clamp: Option<(f64, f64)>,
    ) -> Result<Self> {
        let mut rec = Recorder::with_param_grads();
        let out = net.forward(&batch.obs, Some(&mut rec), batch.masks.as_ref())?;
        let logp = out.policy.log_prob(&batch.actions)?;
        let rho = logp.sub(&batch.old.log_prob(&batch.actions)?)?.exp()?;
        let (ratio, clipfrac) = match clamp {
            Some((lo, hi)) => {
                let inside = rho.gt(lo)?.mul(&rho.lt(hi)?)?.to_dtype(rho.dtype())?;
                (rho.clamp(lo, hi)?, 1.0 - scalar(&inside.mean_all()?)?)
            }
            None => (rho, 0.0),
        };
        let entropies = out.policy.entropy()?;
        let entropy = entropies.mean_all()?;
        let logp_entropy = (logp.detach(), entropies.detach());
        // ℓ_i = log π_i − (v_i − ṽ_i)² with ṽ_i = v_i + ε_i constant: ∂ℓ_i/∂v_i = 2ε_i.
        let noise = batch.noise.to_dtype(out.value.dtype())?;
        let ell = logp.add(&out.value.mul(&noise.affine(2.0, 0.0)?)?)?;
        let grads = ell.sum_all()?.backward()?;
        let jac = FactoredJacobian::from_grads(&rec, &grads)?;
        Ok(Self {
            jac,
            rec,
            grads,
            out,
            ratio,
            entropy,
            logp_entropy,
            clipfrac,
        })
    }

    /// The parameters in J's column order.
    pub fn params(&self) -> &[Var] {
        self.jac.params()
    }

    /// The ratio without its gradient.
    pub fn ratio_value(&self) -> Tensor {
        self.ratio.detach()
    }

    /// ∇θ `loss`, a scalar built on this pass's graph, one tensor per parameter.
    pub fn gradient(&self, loss: &Tensor) -> Result<Vec<Tensor>> {
        Ok(rat_core::params::gradients(
            &loss.backward()?,
            self.params(),
        )?)
    }

    /// mean(w ⊙ (v − R)²) in the graph, for per-sample weights `w` (None: the plain MSE).
    pub fn value_loss(&self, returns: &Tensor, w: Option<&Tensor>) -> Result<Tensor> {
        let sq = self.out.value.sub(returns)?.sqr()?;
        Ok(match w {
            Some(w) => sq.mul(w)?.mean_all()?,
            None => sq.mean_all()?,
        })
    }

    /// ∇ of the surrogate loss −mean(r ⊙ a) − c_ent ℋ + c_v mean((v − R)²), a the scaled
    /// `advantages` and c_ent = `ent_coef` (the baselines pass the batch's; RAT's exact mode
    /// the advantages with the bonus placed), as the mean over the whole minibatch, with the
    /// loss's policy and value terms. With the rows split over ranks (`rows`), the advantages
    /// are scaled over the whole minibatch and the two terms are the whole minibatch's.
    pub fn surrogate_gradient(
        &self,
        batch: &JointBatch,
        advantages: &Tensor,
        ent_coef: f64,
        rows: &StepRows,
        p: &JointParams,
    ) -> Result<(Vec<Tensor>, f64, f64)> {
        let (adv, ratio) = (rows.all(advantages)?, rows.all(&self.ratio_value())?);
        let a = rows.mine(&normalise_advantages(&adv, &ratio, p.norm_obj)?)?;
        let loss_pi = self.ratio.mul(&a)?.mean_all()?.neg()?;
        let loss_v = self.value_loss(&batch.returns, None)?;
        let loss = loss_pi
            .sub(&self.entropy.affine(ent_coef, 0.0)?)?
            .add(&loss_v.affine(p.vf_coef, 0.0)?)?;
        Ok((
            rows.mean_params(self.gradient(&loss)?)?,
            rows.mean(scalar(&loss_pi)?)?,
            rows.mean(scalar(&loss_v)?)?,
        ))
    }

    /// The step's report, with KL(π_old ‖ π_new) from a forward pass after the step (same
    /// dropout masks), the means over the whole minibatch when its rows are split (`rows`).
    pub fn info(
        &self,
        net: &SharedActorCritic,
        batch: &JointBatch,
        rows: &StepRows,
        (grad_norm, loss_pi, loss_v): (f64, f64, f64),
    ) -> Result<JointInfo> {
        let new = net.forward(&batch.obs, None, batch.masks.as_ref())?.policy;
        let r = rows.all(&self.ratio_value())?;
        Ok(JointInfo {
            step: StepInfo {
                kl: rows.mean(scalar(&batch.old.kl(&new)?.mean_all()?)?)?,
                entropy: rows.mean(scalar(&self.entropy)?)?,
                grad_norm,
                ratio_max: scalar(&r.max(0)?)?,
                ratio_min: scalar(&r.min(0)?)?,
                loss_pi,
                clipfrac: rows.mean(self.clipfrac)?,
                kl_pred: f64::NAN,
                kernel_scale: f64::NAN,
            },
            loss_v,
        })
    }
}
