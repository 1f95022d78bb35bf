//! Joint updates of the shared actor–critic (`train_shared`, ALGORITHMS.md 3, 4.2, 4.3): one
//! step per minibatch over **all** parameters, with the value loss in the same step.
//!
//! Every rule starts from a [`JointPass`]: one recorded forward pass and one backward pass of
//! Σ_i ℓ_i with ℓ_i = log π(a_i|s_i) − (v_i − ṽ_i)², ṽ_i = v_i + ε_i a constant, ε_i ~ N(0, 1)
//! fresh per sample and minibatch. Its factored Jacobian has the joint rows
//! h_i = ∇log π_i + 2ε_i ∇v_i (a sampled-target Gauss–Newton score for the value head, whose
//! expected outer product is 4∇v∇vᵀ).
//!
//! * [`RatJoint`], `joint_mode: reference` (default; 3.2): a from the advantages (centred,
//!   RMS-scaled), e = 1; with the Kaczmarz vector g (SGD momentum buffer over all parameters)
//!   c = H g and a ← a − c, e ← e − c; [ψ, φ] = (H Hᵀ R / b + λI)⁻¹ [a, e] in one two-column
//!   solve; loss −mean(r ψ) − c_ent ℋ + c_v mean(φ (v − R)²) with r the clamped ratio *with*
//!   gradient (clamped samples contribute nothing); global L2 clip 0.5; SGD step.
//! * [`RatJoint`], `joint_mode: exact` (3.3): the Tikhonov-regularised natural gradient of the
//!   combined loss L = −mean(r a) − c_ent ℋ + c_v mean((v − R)²) under the joint Fisher
//!   F_R = Hᵀ R H / b, by the general Woodbury identity
//!   (F_R + λI)⁻¹ g = (g − Hᵀ y)/λ,  y = (H Hᵀ + λ b R⁻¹)⁻¹ H g,
//!   one JVP, one b x b solve and one VJP; then the same clip and SGD step, no Kaczmarz term.
//!   The reference step instead keeps only the ∇log π part of each row in the step and weights
//!   the squared errors by the heuristic φ, which can be negative.
//! * [`DiagJoint`] (4.2 shared): d = ∇L / (diag(Hᵀ H)/b + λ) with the plain MSE value loss.
//! * [`KfacJoint`] (4.3 shared): K-FAC with G from the same joint objective (value head in the
//!   Fisher through the sampled target), the plain MSE value loss, momentum 0.9. The value head
//!   is preconditioned like every dense layer (the reference's PopArt head escapes K-FAC only
//!   because it is not an `nn.Linear`).
//!
//! Every rule reports the KL(π_old ‖ π_new) measured *after* its step, as the shared script does.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use rat_core::jacobian::{FactoredJacobian, ScoreJacobian};
use rat_core::kaczmarz::ReferenceKaczmarz;
use rat_core::layers::Recorder;
use rat_core::{clip, params, woodbury};
use rat_kfac::{Kfac, KfacOptions};

use crate::config::{AlgoConfig, JointMode, NormObj};
use crate::error::{Result, invalid};
use crate::nets::Policy;
use crate::rat::{load_momentum_state, momentum_state};
use crate::shared_net::{DropoutMasks, JointOutput, SharedActorCritic};
use crate::update::{Sgd, StepInfo, apply_step, normalise_advantages, scalar};

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

    /// Restores what [`state`](Self::state) saved.
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()>;
}

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
        let ratio = match clamp {
            Some((lo, hi)) => rho.clamp(lo, hi)?,
            None => rho,
        };
        let entropy = out.policy.entropy()?.mean_all()?;
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
        let g = loss.backward()?;
        Ok(self
            .params()
            .iter()
            .map(|p| {
                g.get(p.as_tensor())
                    .cloned()
                    .map_or_else(|| p.as_tensor().zeros_like(), Ok)
            })
            .collect::<candle_core::Result<_>>()?)
    }

    /// mean(w ⊙ (v − R)²) in the graph, for per-sample weights `w` (None: the plain MSE).
    pub fn value_loss(&self, returns: &Tensor, w: Option<&Tensor>) -> Result<Tensor> {
        let sq = self.out.value.sub(returns)?.sqr()?;
        Ok(match w {
            Some(w) => sq.mul(w)?.mean_all()?,
            None => sq.mean_all()?,
        })
    }

    /// The baselines' loss −mean(r ⊙ a) − c_ent ℋ + c_v mean((v − R)²) with a the scaled
    /// advantages, and its policy and value terms.
    pub fn surrogate_loss(
        &self,
        batch: &JointBatch,
        norm_obj: NormObj,
        ent_coef: f64,
        vf_coef: f64,
    ) -> Result<(Tensor, f64, f64)> {
        let a = normalise_advantages(&batch.advantages, &self.ratio_value(), norm_obj)?;
        let loss_pi = self.ratio.mul(&a)?.mean_all()?.neg()?;
        let loss_v = self.value_loss(&batch.returns, None)?;
        let loss = loss_pi
            .sub(&self.entropy.affine(ent_coef, 0.0)?)?
            .add(&loss_v.affine(vf_coef, 0.0)?)?;
        Ok((loss, scalar(&loss_pi)?, scalar(&loss_v)?))
    }

    /// The step's report, with KL(π_old ‖ π_new) from a forward pass after the step (same
    /// dropout masks).
    pub fn info(
        &self,
        net: &SharedActorCritic,
        batch: &JointBatch,
        grad_norm: f64,
        loss_pi: f64,
        loss_v: f64,
    ) -> Result<JointInfo> {
        let new = net.forward(&batch.obs, None, batch.masks.as_ref())?.policy;
        let r = self.ratio_value();
        Ok(JointInfo {
            step: StepInfo {
                kl: scalar(&batch.old.kl(&new)?.mean_all()?)?,
                entropy: scalar(&self.entropy)?,
                grad_norm,
                ratio_max: scalar(&r.max(0)?)?,
                ratio_min: scalar(&r.min(0)?)?,
                loss_pi,
            },
            loss_v,
        })
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
    /// Entropy bonus coefficient.
    pub ent_coef: f64,
    /// Value-loss weight.
    pub vf_coef: f64,
    /// Global L2 clip over all parameters.
    pub max_grad_norm: f64,
    /// The Kaczmarz correction (`is_karzmarz`; RAT reference mode only).
    pub kaczmarz: bool,
    /// Which RAT update.
    pub mode: JointMode,
}

impl JointParams {
    /// The parameters of a config.
    pub fn from_config(c: &AlgoConfig) -> Self {
        Self {
            damping: c.cg_damping,
            norm_obj: c.norm_obj,
            clamp: c.clamp_ratio.then_some((c.min_ratio, c.max_ratio)),
            ent_coef: c.ent_coef,
            vf_coef: c.vf_coef,
            max_grad_norm: c.max_grad_norm,
            kaczmarz: c.is_karzmarz,
            mode: c.joint_mode,
        }
    }
}

/// RAT for the shared network: SGD (momentum 1e-6) whose buffer is the Kaczmarz vector.
#[derive(Debug, Clone)]
pub struct RatJoint {
    /// The hyperparameters.
    pub params: JointParams,
    sgd: ReferenceKaczmarz,
}

impl RatJoint {
    /// A fresh state.
    pub fn new(params: JointParams) -> Result<Self> {
        Ok(Self {
            params,
            sgd: ReferenceKaczmarz::new(params.damping)?,
        })
    }

    /// The SGD momentum buffer (the Kaczmarz vector), once a step was taken.
    pub fn momentum_buffer(&self) -> Option<&[Tensor]> {
        self.sgd.buffer()
    }

    /// [ψ, φ] = (H Hᵀ R / b + λI)⁻¹ [a − c, 1 − c] with c = H g (g the momentum buffer, when the
    /// Kaczmarz correction is on and a buffer exists).
    pub fn transformed_weights(
        &self,
        jac: &FactoredJacobian,
        ratio: &Tensor,
        a: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let b = jac.num_samples();
        let mut rhs = Tensor::stack(&[a, &a.ones_like()?], 1)?;
        if let Some(g) = self.sgd.buffer().filter(|_| self.params.kaczmarz) {
            let c = jac.jvp(g)?;
            rhs = rhs.broadcast_sub(&c.unsqueeze(1)?)?;
        }
        let sol = woodbury::transform_advantages(&jac.kernel()?, ratio, &rhs, self.params.damping)?;
        debug_assert_eq!(sol.dims(), [b, 2]);
        Ok((
            sol.narrow(1, 0, 1)?.squeeze(1)?,
            sol.narrow(1, 1, 1)?.squeeze(1)?,
        ))
    }

    /// (F_R + λI)⁻¹ g with F_R = Hᵀ R H / b, through (g − Hᵀ y)/λ, y = (H Hᵀ + λ b R⁻¹)⁻¹ H g.
    pub fn regularised_natural_gradient(
        jac: &FactoredJacobian,
        ratio: &Tensor,
        g: &[Tensor],
        damping: f64,
    ) -> Result<Vec<Tensor>> {
        let b = jac.num_samples() as f64;
        // (K/b + λR⁻¹) φ = H g gives y = φ/b; transform_advantages returns ψ = R⁻¹φ.
        let psi = woodbury::transform_advantages(&jac.kernel()?, ratio, &jac.jvp(g)?, damping)?;
        let y = psi.mul(ratio)?.affine(1.0 / b, 0.0)?;
        let hty = jac.vjp(&y)?;
        Ok(params::scale(&params::axpy(-1.0, &hty, g)?, 1.0 / damping)?)
    }
}

impl JointUpdate for RatJoint {
    fn name(&self) -> &'static str {
        "rat"
    }

    fn step(&mut self, net: &SharedActorCritic, batch: &JointBatch, lr: f64) -> Result<JointInfo> {
        let p = self.params;
        let pass = JointPass::new(net, batch, p.clamp)?;
        let r = pass.ratio_value();
        let (grad, loss_pi, loss_v) = match p.mode {
            JointMode::Reference => {
                let a = normalise_advantages(&batch.advantages, &r, p.norm_obj)?;
                let (psi, phi) = self.transformed_weights(&pass.jac, &r, &a)?;
                let loss_pi = pass.ratio.mul(&psi)?.mean_all()?.neg()?;
                let loss_v = pass.value_loss(&batch.returns, Some(&phi))?;
                let loss = loss_pi
                    .sub(&pass.entropy.affine(p.ent_coef, 0.0)?)?
                    .add(&loss_v.affine(p.vf_coef, 0.0)?)?;
                (pass.gradient(&loss)?, scalar(&loss_pi)?, scalar(&loss_v)?)
            }
            JointMode::Exact => {
                let (loss, loss_pi, loss_v) =
                    pass.surrogate_loss(batch, p.norm_obj, p.ent_coef, p.vf_coef)?;
                let g = pass.gradient(&loss)?;
                let x = Self::regularised_natural_gradient(&pass.jac, &r, &g, p.damping)?;
                (x, loss_pi, loss_v)
            }
        };
        let (clipped, grad_norm) = clip::clip_grad_norm(&grad, p.max_grad_norm)?;
        apply_step(pass.params(), self.sgd.momentum_step(&clipped)?, lr)?;
        pass.info(net, batch, grad_norm, loss_pi, loss_v)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        momentum_state(&self.sgd)
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        load_momentum_state(&mut self.sgd, state);
        Ok(())
    }
}

/// The diagonal empirical Fisher of the joint rows for the shared network.
#[derive(Debug, Clone)]
pub struct DiagJoint {
    /// The hyperparameters.
    pub params: JointParams,
    sgd: Sgd,
}

impl DiagJoint {
    /// A fresh state.
    pub fn new(params: JointParams) -> Result<Self> {
        Ok(Self {
            params,
            sgd: Sgd::new()?,
        })
    }
}

impl JointUpdate for DiagJoint {
    fn name(&self) -> &'static str {
        "diag"
    }

    fn step(&mut self, net: &SharedActorCritic, batch: &JointBatch, lr: f64) -> Result<JointInfo> {
        let p = self.params;
        let pass = JointPass::new(net, batch, p.clamp)?;
        let (loss, loss_pi, loss_v) =
            pass.surrogate_loss(batch, p.norm_obj, p.ent_coef, p.vf_coef)?;
        let g = pass.gradient(&loss)?;
        let b = pass.jac.num_samples() as f64;
        let d = g
            .iter()
            .zip(pass.jac.sq_col_sums()?)
            .map(|(g, s)| Ok(g.div(&s.affine(1.0 / b, p.damping)?)?))
            .collect::<Result<Vec<_>>>()?;
        let (clipped, grad_norm) = clip::clip_grad_norm(&d, p.max_grad_norm)?;
        self.sgd.step(pass.params(), &clipped, lr)?;
        pass.info(net, batch, grad_norm, loss_pi, loss_v)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.sgd.state()
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        Ok(self.sgd.load_state(state)?)
    }
}

/// K-FAC (or EK-FAC) for the shared network.
#[derive(Debug, Clone)]
pub struct KfacJoint {
    /// The hyperparameters.
    pub params: JointParams,
    kfac: Kfac,
    sites: usize,
}

impl KfacJoint {
    /// A fresh state with K-FAC's reference defaults and `algo_config.kfac_damping`.
    pub fn new(c: &AlgoConfig, eigen_corrected: bool) -> Result<Self> {
        if c.weight_decay != 0.0 {
            return invalid(format!(
                "weight_decay {} is not supported by kfac; use 0.0",
                c.weight_decay
            ));
        }
        Ok(Self {
            params: JointParams::from_config(c),
            kfac: Kfac::new(KfacOptions {
                eigen_corrected,
                damping: c.kfac_damping,
                ..KfacOptions::default()
            })?,
            sites: 0,
        })
    }
}

impl JointUpdate for KfacJoint {
    fn name(&self) -> &'static str {
        if self.kfac.opts.eigen_corrected {
            "ekfac"
        } else {
            "kfac"
        }
    }

    fn step(&mut self, net: &SharedActorCritic, batch: &JointBatch, lr: f64) -> Result<JointInfo> {
        let p = self.params;
        let pass = JointPass::new(net, batch, p.clamp)?;
        self.sites = pass.rec.sites().len();
        self.kfac.update_a(&pass.rec)?;
        if self.kfac.refresh_due() {
            self.kfac.update_g(&pass.rec, &pass.grads)?;
        }
        self.kfac.update_scales(&pass.rec, &pass.grads)?;
        let (loss, loss_pi, loss_v) =
            pass.surrogate_loss(batch, p.norm_obj, p.ent_coef, p.vf_coef)?;
        let g = pass.gradient(&loss)?;
        let (clipped, grad_norm) = clip::clip_grad_norm(&g, p.max_grad_norm)?;
        let (d, _nu) = self.kfac.precondition(&pass.rec, &clipped, lr)?;
        apply_step(pass.params(), self.kfac.momentum_step(&d)?, lr)?;
        pass.info(net, batch, grad_norm, loss_pi, loss_v)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = self.kfac.state();
        if let Ok(t) = Tensor::new(&[self.sites as f64], &candle_core::Device::Cpu) {
            out.push(("sites".into(), t));
        }
        out
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let Some(t) = state.get("sites") else {
            return Ok(());
        };
        self.sites = scalar(&t.flatten_all()?.narrow(0, 0, 1)?.squeeze(0)?)? as usize;
        Ok(self.kfac.load_state(state, self.sites)?)
    }
}
