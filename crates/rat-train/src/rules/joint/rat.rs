//! [`RatJoint`]: RAT for the shared network, in the reference's form or the exact regularised
//! natural gradient of the combined loss (see the [module overview](super)).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;
use rat_core::dist::Communicator;
use rat_core::jacobian::{FactoredJacobian, ScoreJacobian};
use rat_core::kaczmarz::{check_damping, reference_correction};
use rat_core::{clip, params, woodbury};

use super::pass::JointPass;
use super::update::{JointBatch, JointInfo, JointParams, JointUpdate};
use crate::config::JointMode;
use crate::error::{Result, invalid};
use crate::nets::SharedActorCritic;
use crate::optim::Sgd;
use crate::rules::rat::{add_late_bonus, effective_damping, place_entropy_bonus};
use crate::rules::shard::{Rows, StepRows};
use crate::rules::{normalise_advantages, scalar};

/// The transformed weights [ψ, φ] of the policy and value terms.
type Weights = (Tensor, Tensor);

/// RAT for the shared network: SGD (momentum 1e-6) whose buffer is the Kaczmarz vector.
#[derive(Debug, Clone)]
pub struct RatJoint {
    /// The hyperparameters.
    pub params: JointParams,
    sgd: Sgd,
    /// Set at a rollout's start when the solve is to be measured on its first minibatch.
    measure: bool,
    /// The last measurement: (relative residual, condition number).
    quality: Option<(f64, f64)>,
    /// Whole minibatches, or (`dist_mode: exact`) each rank's rows of them.
    rows: Rows,
}

impl RatJoint {
    /// A fresh state.
    pub fn new(params: JointParams) -> Result<Self> {
        check_damping("RatJoint::new", params.damping)?;
        Ok(Self {
            params,
            sgd: Sgd::new(),
            measure: false,
            quality: None,
            rows: Rows::default(),
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
        Ok(self.weights(jac, &StepRows::whole(), ratio, a, false)?.0)
    }

    /// [`transformed_weights`](Self::transformed_weights), and the solve's (relative residual,
    /// condition number) when `measure`.
    /// With the rows split (`rows`), `jac` is this rank's rows' and `ratio`, `a` and the
    /// weights are the whole minibatch's.
    fn weights(
        &self,
        jac: &FactoredJacobian,
        rows: &StepRows,
        ratio: &Tensor,
        a: &Tensor,
        measure: bool,
    ) -> Result<(Weights, Option<(f64, f64)>)> {
        let b = ratio.dims()[0];
        let rhs = Tensor::stack(&[a, &a.ones_like()?], 1)?;
        let g = self.sgd.buffer().filter(|_| self.params.kaczmarz);
        let rhs = rows.all(&reference_correction(jac, g, &rows.mine(&rhs)?)?)?;
        let kernel = rows.kernel(jac)?;
        let p = &self.params;
        let (damping, _) = effective_damping(p.damping, p.damping_mode, false, &kernel)?;
        let sol = self.params.solve.transform(&kernel, ratio, &rhs, damping)?;
        debug_assert_eq!(sol.dims(), [b, 2]);
        let quality = if measure {
            Some(woodbury::solve_quality(
                &kernel, ratio, &rhs, &sol, damping,
            )?)
        } else {
            None
        };
        Ok((
            (
                sol.narrow(1, 0, 1)?.squeeze(1)?,
                sol.narrow(1, 1, 1)?.squeeze(1)?,
            ),
            quality,
        ))
    }

    /// (F_R + λI)⁻¹ g with F_R = Hᵀ R H / b, through (g − Hᵀ y)/λ, y = (H Hᵀ + λ b R⁻¹)⁻¹ H g.
    pub fn regularised_natural_gradient(
        jac: &FactoredJacobian,
        ratio: &Tensor,
        g: &[Tensor],
        damping: f64,
    ) -> Result<Vec<Tensor>> {
        Self::regularised_natural_gradient_on(jac, &StepRows::whole(), ratio, g, damping)
    }

    /// [`regularised_natural_gradient`](Self::regularised_natural_gradient) with the rows split
    /// (`rows`): `jac` and `ratio` this rank's rows', `g` the whole minibatch's gradient; H g is
    /// gathered, every rank solves the same system, and Hᵀy is summed over the ranks.
    fn regularised_natural_gradient_on(
        jac: &FactoredJacobian,
        rows: &StepRows,
        ratio: &Tensor,
        g: &[Tensor],
        damping: f64,
    ) -> Result<Vec<Tensor>> {
        let kernel = rows.kernel(jac)?;
        let (ratio_all, hg) = (rows.all(ratio)?, rows.all(&jac.jvp(g)?)?);
        let b = ratio_all.dims()[0] as f64;
        // (K/b + λR⁻¹) φ = H g gives y = φ/b; transform_advantages returns ψ = R⁻¹φ.
        let psi = woodbury::transform_advantages(&kernel, &ratio_all, &hg, damping)?;
        let y = rows.mine(&psi.mul(&ratio_all)?.affine(1.0 / b, 0.0)?)?;
        let hty = rows.sum_params(jac.vjp(&y)?)?;
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
        let split = self.rows.clone();
        let rows = split.of_len(batch.obs.dims()[0])?;
        let r = pass.ratio_value();
        let (adv, ent_coef, late) =
            place_entropy_bonus(p.ent_mode, &batch.advantages, batch.ent_coef, || {
                Ok(pass.logp_entropy.clone())
            })?;
        let (grad, loss_pi, loss_v) = match p.mode {
            JointMode::Reference => {
                let ratio = rows.all(&r)?;
                let a = normalise_advantages(&rows.all(&adv)?, &ratio, p.norm_obj)?;
                let late = late.map(|bonus| rows.all(&bonus)).transpose()?;
                let a = add_late_bonus(a, late.as_ref())?;
                let ((psi, phi), quality) =
                    self.weights(&pass.jac, &rows, &ratio, &a, self.measure)?;
                if quality.is_some() {
                    (self.measure, self.quality) = (false, quality);
                }
                let (psi, phi) = (rows.mine(&psi)?, rows.mine(&phi)?);
                let loss_pi = pass.ratio.mul(&psi)?.mean_all()?.neg()?;
                let loss_v = pass.value_loss(&batch.returns, Some(&phi))?;
                let loss = loss_pi
                    .sub(&pass.entropy.affine(ent_coef, 0.0)?)?
                    .add(&loss_v.affine(p.vf_coef, 0.0)?)?;
                (
                    rows.mean_params(pass.gradient(&loss)?)?,
                    rows.mean(scalar(&loss_pi)?)?,
                    rows.mean(scalar(&loss_v)?)?,
                )
            }
            JointMode::Exact if late.is_some() => {
                return invalid(
                    "ent_mode: normalised_advantage needs joint_mode: reference in train_shared \
                     (joint_mode exact takes the bonus as c·∇ℋ or inside the advantages)",
                );
            }
            JointMode::Exact => {
                let (g, loss_pi, loss_v) =
                    pass.surrogate_gradient(batch, &adv, ent_coef, &rows, &p)?;
                let x = Self::regularised_natural_gradient_on(&pass.jac, &rows, &r, &g, p.damping)?;
                (x, loss_pi, loss_v)
            }
        };
        let (clipped, grad_norm) = clip::clip_grad_norm(&grad, p.max_grad_norm)?;
        self.sgd.step(pass.params(), &clipped, lr)?;
        pass.info(net, batch, &rows, (grad_norm, loss_pi, loss_v))
    }

    fn shard_rows(&mut self, comm: Arc<dyn Communicator>) -> Result<()> {
        self.rows = Rows::sharded(comm);
        Ok(())
    }

    fn begin_rollout(&mut self) {
        self.measure = self.params.solve.diagnostics;
    }

    fn diagnostics(&self) -> Vec<(&'static str, f64)> {
        crate::rules::rat::solve_tags(self.quality)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.sgd.state()
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        Ok(self.sgd.load_state(state)?)
    }
}
