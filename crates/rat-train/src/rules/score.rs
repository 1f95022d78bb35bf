//! What every score-based rule computes first for a minibatch ([`ScorePass`]), and the small
//! pieces the rules share: advantage scaling, the entropy gradient, the parameter step.

use candle_core::Tensor;
use rat_core::Result;
use rat_core::jacobian::ScoreJacobian;
use rat_core::layers::Tangents;

use super::update::{ActorBatch, StepInfo};
use crate::config::{AlgoConfig, NormObj};
use crate::nets::Actor;
use crate::nets::Policy;

/// What every score-based rule computes first for a minibatch (ALGORITHMS.md 2.2 steps 1–3): one
/// recorded forward pass, one backward pass of Σ log π for the factored Jacobian, and the
/// per-minibatch statistics, all at the current θ before the step.
pub struct ScorePass {
    /// The factored score Jacobian (rows ∇θ log π(a_i|s_i)).
    pub jac: rat_core::jacobian::FactoredJacobian,
    /// The recorded forward pass (layer inputs, probes), for rules that keep layer statistics.
    pub rec: rat_core::layers::Recorder,
    /// The backward pass of Σ log π(a_i|s_i) at the stored actions (the probes' gradients are
    /// the per-sample output gradients).
    pub grads: candle_core::backprop::GradStore,
    /// The policy of the recorded forward pass (in its autograd graph).
    pub policy: Policy,
    /// log π(a_i|s_i), detached (b).
    pub logp: Tensor,
    /// The (clamped, detached) ratio π/π_old (b).
    pub ratio: Tensor,
    /// KL(π_old ‖ π_θ), mean over the minibatch.
    pub kl: f64,
    /// Mean entropy.
    pub entropy: f64,
    /// The fraction of samples whose ratio π/π_old lies on or outside the clamp.
    pub clipfrac: f64,
}

/// f64 value of a one-element tensor.
pub fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

/// Root mean square of a tensor's entries.
pub fn rms(t: &Tensor) -> Result<f64> {
    Ok(scalar(&t.sqr()?.mean_all()?)?.sqrt())
}

impl ScorePass {
    /// The pass for `batch`; `clamp` bounds the ratio when given.
    pub fn new(actor: &dyn Actor, batch: &ActorBatch, clamp: Option<(f64, f64)>) -> Result<Self> {
        let mut rec = rat_core::layers::Recorder::new();
        let dist = actor.policy(&batch.obs, Some(&mut rec))?;
        let logp = dist.log_prob(&batch.actions)?;
        let old = &batch.old;
        let kl = scalar(&old.kl(&dist)?.mean_all()?)?;
        let entropy = scalar(&dist.entropy()?.mean_all()?)?;
        let rho = logp.sub(&old.log_prob(&batch.actions)?)?.exp()?.detach();
        let (ratio, clipfrac) = match clamp {
            Some((lo, hi)) => {
                let inside = rho.gt(lo)?.mul(&rho.lt(hi)?)?.to_dtype(rho.dtype())?;
                (rho.clamp(lo, hi)?, 1.0 - scalar(&inside.mean_all()?)?)
            }
            None => (rho, 0.0),
        };
        let value = logp.detach();
        let grads = logp.sum_all()?.backward()?;
        let jac = rat_core::jacobian::FactoredJacobian::from_grads(&rec, &grads)?;
        Ok(Self {
            jac,
            rec,
            grads,
            policy: dist,
            logp: value,
            ratio,
            kl,
            entropy,
            clipfrac,
        })
    }

    /// −Jᵀw/b − c_ent ∇ℋ: the loss gradient of the surrogate −mean(w ⊙ log π) − c_ent ℋ for
    /// per-sample score weights `w` (constants), one tensor per parameter.
    pub fn loss_gradient(
        &self,
        actor: &dyn Actor,
        obs: &Tensor,
        w: &Tensor,
        ent_coef: f64,
    ) -> Result<Vec<Tensor>> {
        let b = self.jac.num_samples() as f64;
        let grad = self.jac.vjp(&w.affine(-1.0 / b, 0.0)?)?;
        if ent_coef == 0.0 {
            return Ok(grad);
        }
        rat_core::params::axpy(-ent_coef, &entropy_grad(actor, obs)?, &grad)
    }

    /// The step's report: this pass's KL, entropy and ratio range with the rule's pre-clip
    /// gradient norm and policy loss.
    pub fn info(&self, grad_norm: f64, loss_pi: f64) -> Result<StepInfo> {
        Ok(StepInfo {
            kl: self.kl,
            entropy: self.entropy,
            grad_norm,
            ratio_max: scalar(&self.ratio.max(0)?)?,
            ratio_min: scalar(&self.ratio.min(0)?)?,
            loss_pi,
            clipfrac: self.clipfrac,
            kl_pred: f64::NAN,
            kernel_scale: f64::NAN,
        })
    }
}

/// ½ vᵀ F v, F the exact Fisher of `policy` (the actor's policy at `obs`, at the current θ)
/// averaged over `obs`: the quadratic estimate of the KL a step v moves the policy by.
pub fn quadratic_kl(actor: &dyn Actor, policy: &Policy, obs: &Tensor, v: &[Tensor]) -> Result<f64> {
    let tangent = actor.policy_tangent(obs, &Tangents::new(&actor.params(), v)?)?;
    Ok(0.5 * scalar(&policy.fisher_quadratic(&tangent)?.mean_all()?)?)
}

/// The per-step KL bound (`max_kl`) and its measurement (`step_diagnostics`), for the rules whose
/// step is θ ← θ − lr·d (SGD with the reference's momentum 1e-6, which this neglects).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepControl {
    /// The largest quadratic KL a step may have.
    pub max_kl: Option<f64>,
    /// Compute the predicted KL even without a bound.
    pub measure: bool,
}

impl StepControl {
    /// The control `algo_config` asks for.
    pub fn from_config(c: &AlgoConfig) -> Self {
        Self {
            max_kl: c.max_kl,
            measure: c.step_diagnostics,
        }
    }

    /// Whether a step's predicted KL is needed (a bound or its measurement is on).
    pub fn active(&self) -> bool {
        self.max_kl.is_some() || self.measure
    }

    /// d scaled by min(1, √(max_kl / kl)) for a step whose predicted KL is `kl`, and the KL of
    /// the step returned (the second half of [`StepRows::bound`](super::shard::StepRows::bound),
    /// which computes the KL).
    pub fn limit(&self, d: Vec<Tensor>, kl: f64) -> Result<(Vec<Tensor>, f64)> {
        match self.max_kl {
            Some(bound) if kl > bound => {
                let d = rat_core::params::scale(&d, (bound / kl).sqrt())?;
                Ok((d, bound))
            }
            _ => Ok((d, kl)),
        }
    }
}

/// a = Ã / (s + 1e-8) with Ã = A − mean(A) and s chosen by `norm_obj` (ALGORITHMS.md 2.2 step 4).
pub fn normalise_advantages(adv: &Tensor, ratio: &Tensor, norm_obj: NormObj) -> Result<Tensor> {
    let centred = adv.broadcast_sub(&adv.mean_all()?)?;
    let s = match norm_obj {
        NormObj::Adv => rms(&centred)?,
        NormObj::Obj => rms(&ratio.mul(&centred)?)?,
        NormObj::Ratio => scalar(&ratio.mean_all()?)? * rms(&centred)?,
    };
    Ok(centred.affine(1.0 / (s + 1e-8), 0.0)?)
}

/// ∇θ of the mean entropy at `obs`, one tensor per parameter of `actor` (zeros where it does not
/// depend on a parameter).
pub fn entropy_grad(actor: &dyn Actor, obs: &Tensor) -> Result<Vec<Tensor>> {
    let h = actor.policy(obs, None)?.entropy()?.mean_all()?;
    rat_core::params::gradients(&h.backward()?, &actor.params())
}
