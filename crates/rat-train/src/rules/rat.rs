//! The RAT actor update of the separate actor–critic (ALGORITHMS.md §2.2), one minibatch at a
//! time, on `rat-core`'s factored Jacobian: one recorded forward, one backward of Σ log π, no
//! per-sample loop.
//!
//! Two Kaczmarz modes (`kaczmarz_mode`):
//! * `reference` (default): the published step, ψ = (K R / b + λI)⁻¹ (a − J g) with g the SGD
//!   momentum buffer (≈ the previous clipped gradient), step Jᵀ(r ⊙ ψ)/b.
//! * `exact`: textbook randomized block Kaczmarz on the whole rollout's system
//!   (K_N R_N / N + λI) ψ = a_N, restarted at every rollout; a_N is centred and scaled over the
//!   rollout, and each step follows the accumulated primal iterate x = J_Nᵀ R_N ψ / N, which
//!   converges to (F_R + λI)⁻¹ g_R.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;
use rat_core::dist::Communicator;
use rat_core::jacobian::{FactoredJacobian, ScoreJacobian};
use rat_core::kaczmarz::{ExactKaczmarz, check_damping, reference_correction};
use rat_core::woodbury::SolveForm;
use rat_core::{Result, clip, params, woodbury};

use super::score::{ScorePass, StepControl, entropy_grad, normalise_advantages, rms, scalar};
use super::shard::{Rows, StepRows};
pub use super::update::{ActorBatch, ActorUpdate, StepInfo};
use crate::config::{
    AlgoConfig, DampingMode, EntMode, KaczmarzKind, NormObj, Optimizer, Solve, SolveDtype,
};
use crate::nets::Actor;
use crate::optim::{LazyAdam, Sgd};

/// The hyperparameters of the step, from `algo_config`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatParams {
    /// λ (`cg_damping`).
    pub damping: f64,
    /// Advantage scaling.
    pub norm_obj: NormObj,
    /// (min, max) ratio clamp, if any.
    pub clamp: Option<(f64, f64)>,
    /// λ as given or relative to tr(K)/b (`damping_mode`).
    pub damping_mode: DampingMode,
    /// The per-step KL bound and measurement (`max_kl`, `step_diagnostics`).
    pub control: StepControl,
    /// Global L2 clip.
    pub max_grad_norm: f64,
    /// The Kaczmarz correction (`is_karzmarz`).
    pub kaczmarz: bool,
    /// Which Kaczmarz variant, when on.
    pub mode: KaczmarzKind,
    /// How the b x b system is solved and at which precision.
    pub solve: SolveOptions,
    /// Where the entropy bonus enters: the step after the solve (`gradient`), or the advantages
    /// before the transform, before (`advantage`) or after (`normalised_advantage`) they are
    /// centred and scaled.
    pub ent_mode: EntMode,
    /// The clipped step moves θ by Adam (`optimizer: adam`) instead of the reference's SGD.
    pub adam: bool,
}

/// How RAT's b x b system is solved (`solve`, `solve_dtype`) and whether its quality is
/// measured (`solve_diagnostics`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SolveOptions {
    /// Cholesky of the symmetric form (default) or the published LU.
    pub form: SolveForm,
    /// Solve in f64 instead of the networks' precision.
    pub f64: bool,
    /// Measure the residual and condition number on a rollout's first minibatch.
    pub diagnostics: bool,
}

/// A solve measurement (relative residual, condition number) as TensorBoard scalars.
pub fn solve_tags(quality: Option<(f64, f64)>) -> Vec<(&'static str, f64)> {
    quality
        .map(|(residual, cond)| vec![("solve/residual", residual), ("solve/condition", cond)])
        .unwrap_or_default()
}

impl SolveOptions {
    /// The options `algo_config` names.
    pub fn from_config(c: &AlgoConfig) -> Self {
        Self {
            form: match c.solve {
                Solve::Cholesky => SolveForm::Cholesky,
                Solve::Lu => SolveForm::Lu,
            },
            f64: c.solve_dtype == SolveDtype::F64,
            diagnostics: c.solve_diagnostics,
        }
    }

    /// ψ = (K R / b + λ I)⁻¹ a as these options say.
    pub fn transform(
        &self,
        kernel: &Tensor,
        ratio: &Tensor,
        a: &Tensor,
        damping: f64,
    ) -> Result<Tensor> {
        let dtype = if self.f64 {
            candle_core::DType::F64
        } else {
            a.dtype()
        };
        woodbury::transform_advantages_with(kernel, ratio, a, damping, self.form, dtype)
    }
}

impl RatParams {
    /// The step's parameters from a config.
    pub fn from_config(c: &AlgoConfig) -> Self {
        Self {
            damping: c.cg_damping,
            norm_obj: c.norm_obj,
            clamp: c.clamp_ratio.then_some((c.min_ratio, c.max_ratio)),
            damping_mode: c.damping_mode,
            control: StepControl::from_config(c),
            max_grad_norm: c.max_grad_norm,
            kaczmarz: c.is_karzmarz,
            mode: c.kaczmarz_mode,
            solve: SolveOptions::from_config(c),
            ent_mode: c.ent_mode,
            adam: c.optimizer == Optimizer::Adam,
        }
    }
}

/// Where the entropy bonus c goes (`ent_mode`): `(A, c, None)`, the advantages as they are and
/// c left for the plain c·∇ℋ term (`gradient`, and whenever c = 0); `(â, 0, None)` with the bonus
/// inside the advantages before they are normalised (`advantage`, [`score_entropy_advantages`]);
/// `(A, 0, Some(bonus))` with the bonus to add once they are normalised
/// (`normalised_advantage`, [`add_late_bonus`]). `logp_entropy` gives the per-sample
/// log π(a|s) and ℋ(s) and is called only for the last two.
pub fn place_entropy_bonus(
    mode: EntMode,
    advantages: &Tensor,
    c: f64,
    logp_entropy: impl FnOnce() -> Result<(Tensor, Tensor)>,
) -> Result<(Tensor, f64, Option<Tensor>)> {
    if mode == EntMode::Gradient || c == 0.0 {
        return Ok((advantages.clone(), c, None));
    }
    let (logp, entropy) = logp_entropy()?;
    Ok(if mode == EntMode::NormalisedAdvantage {
        let bonus = score_entropy_bonus(&logp, &entropy, c)?;
        (advantages.clone(), 0.0, Some(bonus))
    } else {
        let adv = score_entropy_advantages(advantages, &logp, &entropy, c)?;
        (adv, 0.0, None)
    })
}

/// â_i = A_i − c·(log π(a_i|s_i) + ℋ(s_i)), the entropy bonus in score-function form: since
/// E_a[∇log π] = 0, ∇ℋ(s) = E_a[−(log π(a|s) + ℋ(s)) ∇log π(a|s)], so the policy gradient of â
/// is that of A plus c·∇ℋ, and the Woodbury transform preconditions both alike. `logp` and
/// `entropy` are per sample; ℋ is taken without its gradient.
pub fn score_entropy_advantages(
    advantages: &Tensor,
    logp: &Tensor,
    entropy: &Tensor,
    c: f64,
) -> Result<Tensor> {
    Ok(advantages.add(&score_entropy_bonus(logp, entropy, c)?.to_dtype(advantages.dtype())?)?)
}

/// −c·(log π(a_i|s_i) + ℋ(s_i)) per sample, ℋ without its gradient: the entropy bonus in
/// score-function form ([`score_entropy_advantages`]).
pub fn score_entropy_bonus(logp: &Tensor, entropy: &Tensor, c: f64) -> Result<Tensor> {
    Ok(logp.add(&entropy.detach())?.affine(-c, 0.0)?)
}

/// â = Â + the bonus, where there is one ([`place_entropy_bonus`]).
pub fn add_late_bonus(normalised: Tensor, bonus: Option<&Tensor>) -> Result<Tensor> {
    match bonus {
        None => Ok(normalised),
        Some(b) => Ok(normalised.add(&b.to_dtype(normalised.dtype())?)?),
    }
}

/// The λ the solve uses and the kernel's scale tr(K)/b: λ as given (`absolute`) or λ·tr(K)/b
/// (`relative`; λ as given where K is 0). The scale is NaN unless relative or asked for
/// (`measure`).
pub fn effective_damping(
    damping: f64,
    mode: DampingMode,
    measure: bool,
    kernel: &Tensor,
) -> Result<(f64, f64)> {
    let relative = mode == DampingMode::Relative;
    if !relative && !measure {
        return Ok((damping, f64::NAN));
    }
    let scale = woodbury::kernel_scale(kernel)?;
    let effective = if relative && scale > 0.0 {
        damping * scale
    } else {
        damping
    };
    Ok((effective, scale))
}

/// What moves θ along RAT's clipped step: the reference's SGD, whose buffer is the Kaczmarz
/// vector, or (`optimizer: adam`) Adam, with the SGD buffer still recording each step.
#[derive(Debug, Clone)]
struct StepOptimiser {
    sgd: Sgd,
    adam: Option<LazyAdam>,
}

impl StepOptimiser {
    /// θ ← θ − lr·step (SGD), or Adam's move along `step`.
    fn step(&mut self, params: &[candle_core::Var], step: &[Tensor], lr: f64) -> Result<()> {
        match &mut self.adam {
            None => self.sgd.step(params, step, lr),
            Some(adam) => {
                self.sgd.remember(step)?;
                adam.step(params, step, lr)
            }
        }
    }
}

/// The exact mode's state for one rollout.
#[derive(Debug, Clone)]
struct ExactState {
    solver: Option<ExactKaczmarz>,
    n: usize,
    /// Rollout-wide mean and scale of the advantages.
    mean: f64,
    scale: f64,
}

/// The actor's optimiser state: SGD with momentum 1e-6, whose buffer is the Kaczmarz vector,
/// and, with `optimizer: adam`, the Adam that moves θ instead (the buffer still records each
/// clipped step, so the Kaczmarz correction reads the same vector).
#[derive(Debug, Clone)]
pub struct RatActor {
    /// The hyperparameters.
    pub params: RatParams,
    optimiser: StepOptimiser,
    exact: Option<ExactState>,
    /// Set at a rollout's start when the solve is to be measured on its first minibatch.
    measure: Option<()>,
    /// The last measurement: (relative residual, condition number).
    quality: Option<(f64, f64)>,
    /// Whole minibatches, or (`dist_mode: exact`) each rank's rows of them.
    rows: Rows,
}

impl RatActor {
    /// A fresh state (no momentum buffer yet).
    pub fn new(params: RatParams) -> Result<Self> {
        check_damping("RatActor::new", params.damping)?;
        Ok(Self {
            params,
            optimiser: StepOptimiser {
                sgd: Sgd::new(),
                adam: params.adam.then(|| LazyAdam::new(1e-5)),
            },
            exact: None,
            measure: None,
            quality: None,
            rows: Rows::default(),
        })
    }

    fn exact_mode(&self) -> bool {
        self.params.kaczmarz && self.params.mode == KaczmarzKind::Exact
    }

    /// One step of `dist_mode: exact` (DISTRIBUTED.md §3): `batch` holds this rank's rows of
    /// the minibatch, the ranks' rows concatenate in rank order to one process's minibatch.
    /// Each rank records its rows' layer factors, the factors are all-gathered, every rank
    /// builds the same b x b kernel and solves the same system (identical inputs, identical ψ),
    /// and rank r's part J_rᵀ(r_r ⊙ ψ_r)/b of the natural gradient is summed over the ranks in
    /// rank order. The Kaczmarz correction J_r g is each rank's own rows of J g. One process's
    /// step on the whole minibatch, up to float summation order; every rank holds the same bits.
    fn step_sharded(&mut self, actor: &dyn Actor, batch: &ActorBatch, lr: f64) -> Result<StepInfo> {
        let pass = ScorePass::new(actor, batch, self.params.clamp)?;
        let rows = self.rows.of(&pass)?;
        let p = self.params;
        let (adv, c_grad, late) = self.bonus(&pass, batch)?;
        let ratio = rows.all(&pass.ratio)?;
        let late = late.map(|bonus| rows.all(&bonus)).transpose()?;
        let a = normalise_advantages(&rows.all(&adv)?, &ratio, p.norm_obj)?;
        let a = add_late_bonus(a, late.as_ref())?;
        let a = match p.kaczmarz {
            true => {
                let mine =
                    reference_correction(&pass.jac, self.optimiser.sgd.buffer(), &rows.mine(&a)?)?;
                rows.all(&mine)?
            }
            false => a,
        };
        let kernel = rows.kernel(&pass.jac)?;
        let (damping, kernel_scale) =
            effective_damping(p.damping, p.damping_mode, p.control.measure, &kernel)?;
        let psi = p.solve.transform(&kernel, &ratio, &a, damping)?;
        if self.measure.take().is_some() {
            self.quality = Some(woodbury::solve_quality(&kernel, &ratio, &a, &psi, damping)?);
        }
        let b = kernel.dims()[0] as f64;
        let w = pass.ratio.mul(&rows.mine(&psi)?)?;
        let x = rows.sum_params(pass.jac.vjp(&w.affine(1.0 / b, 0.0)?)?)?;
        let loss_pi = -rows.mean(scalar(&w.mul(&pass.logp)?.mean_all()?)?)?;
        // ∇L = −x − ent_coef ∇ℋ, ∇ℋ of the whole minibatch's mean entropy.
        let mut grad = params::scale(&x, -1.0)?;
        if c_grad != 0.0 {
            let ent = rows.mean_params(entropy_grad(actor, &batch.obs)?)?;
            grad = params::axpy(-c_grad, &ent, &grad)?;
        }
        let (clipped, grad_norm) = clip::clip_grad_norm(&grad, p.max_grad_norm)?;
        let (step, kl_pred) = rows.bound(&p.control, actor, &pass, &batch.obs, clipped, lr)?;
        self.optimiser.step(pass.jac.params(), &step, lr)?;
        Ok(StepInfo {
            kl_pred,
            kernel_scale,
            ..rows.info(&pass, grad_norm, loss_pi)?
        })
    }

    /// The advantages to normalise, the coefficient of the plain ∇ℋ added after the solve, and
    /// the bonus to add once they are normalised ([`place_entropy_bonus`]).
    fn bonus(&self, pass: &ScorePass, batch: &ActorBatch) -> Result<(Tensor, f64, Option<Tensor>)> {
        place_entropy_bonus(
            self.params.ent_mode,
            &batch.advantages,
            batch.ent_coef,
            || Ok((pass.logp.clone(), pass.policy.entropy()?)),
        )
    }

    /// The SGD momentum buffer (the Kaczmarz vector), once a step was taken.
    pub fn momentum_buffer(&self) -> Option<&[Tensor]> {
        self.optimiser.sgd.buffer()
    }

    /// ψ, the ascent direction x for this block in the configured mode, and the kernel's
    /// scale tr(K)/b (NaN where not needed).
    fn direction(
        &mut self,
        jac: &FactoredJacobian,
        batch: &ActorBatch,
        advantages: &Tensor,
        late: Option<&Tensor>,
        ratio: &Tensor,
    ) -> Result<(Tensor, Vec<Tensor>, f64)> {
        let b = jac.num_samples();
        let exact = self.exact_mode();
        if let Some(state) = self.exact.as_mut().filter(|_| exact) {
            let a = advantages.affine(
                1.0 / (state.scale + 1e-8),
                -state.mean / (state.scale + 1e-8),
            )?;
            let a = add_late_bonus(a, late)?;
            let solver = match &mut state.solver {
                Some(solver) => solver,
                slot => {
                    let shapes: Vec<_> = jac.params().iter().map(|v| v.shape().clone()).collect();
                    let damping = self.params.damping;
                    slot.insert(ExactKaczmarz::new(
                        state.n,
                        &shapes,
                        damping,
                        a.dtype(),
                        a.device(),
                    )?)
                }
            };
            let step = solver.block_step(jac, &batch.block, ratio, &a)?;
            return Ok((step.psi, step.direction, f64::NAN));
        }
        let a = normalise_advantages(advantages, ratio, self.params.norm_obj)?;
        let a = add_late_bonus(a, late)?;
        let a = if self.params.kaczmarz {
            reference_correction(jac, self.optimiser.sgd.buffer(), &a)?
        } else {
            a
        };
        let kernel = jac.kernel()?;
        let p = &self.params;
        let (damping, scale) =
            effective_damping(p.damping, p.damping_mode, p.control.measure, &kernel)?;
        let psi = self.params.solve.transform(&kernel, ratio, &a, damping)?;
        if self.measure.take().is_some() {
            self.quality = Some(woodbury::solve_quality(&kernel, ratio, &a, &psi, damping)?);
        }
        let x = jac.vjp(&ratio.mul(&psi)?.affine(1.0 / b as f64, 0.0)?)?;
        Ok((psi, x, scale))
    }
}

impl ActorUpdate for RatActor {
    fn name(&self) -> &'static str {
        "rat"
    }

    fn begin_rollout(&mut self, n: usize, advantages: &Tensor) -> Result<()> {
        self.measure = self.params.solve.diagnostics.then_some(());
        if self.exact_mode() {
            let mean = scalar(&advantages.mean_all()?)?;
            let scale = rms(&advantages.affine(1.0, -mean)?)?;
            self.exact = Some(ExactState {
                solver: None,
                n,
                mean,
                scale,
            });
        }
        Ok(())
    }

    /// One RAT step on `batch`, updating `actor` in place (θ ← θ − lr·buf).
    fn step(&mut self, actor: &dyn Actor, batch: &ActorBatch, lr: f64) -> Result<StepInfo> {
        if self.rows.is_sharded() {
            return self.step_sharded(actor, batch, lr);
        }
        let pass = ScorePass::new(actor, batch, self.params.clamp)?;
        let (adv, c_grad, late) = self.bonus(&pass, batch)?;
        let (psi, x, kernel_scale) =
            self.direction(&pass.jac, batch, &adv, late.as_ref(), &pass.ratio)?;
        let loss_pi = -scalar(&pass.ratio.mul(&psi)?.mul(&pass.logp)?.mean_all()?)?;
        // ∇L = −x − c ∇ℋ (c = 0 when the bonus is in the advantages).
        let mut grad = params::scale(&x, -1.0)?;
        if c_grad != 0.0 {
            let ent = entropy_grad(actor, &batch.obs)?;
            grad = params::axpy(-c_grad, &ent, &grad)?;
        }
        let (clipped, grad_norm) = clip::clip_grad_norm(&grad, self.params.max_grad_norm)?;
        let control = self.params.control;
        let (step, kl_pred) =
            StepRows::whole().bound(&control, actor, &pass, &batch.obs, clipped, lr)?;
        self.optimiser.step(pass.jac.params(), &step, lr)?;
        Ok(StepInfo {
            kl_pred,
            kernel_scale,
            ..pass.info(grad_norm, loss_pi)?
        })
    }

    fn diagnostics(&self) -> Vec<(&'static str, f64)> {
        solve_tags(self.quality)
    }

    fn shard_rows(&mut self, comm: Arc<dyn Communicator>) -> Result<()> {
        if self.exact_mode() {
            return Err(rat_core::Error::InvalidArgument {
                op: "RatActor::shard_rows",
                msg: "kaczmarz_mode exact keeps a rollout-wide iterate; dist_mode exact shards \
                      kaczmarz_mode reference only"
                    .into(),
            });
        }
        self.rows = Rows::sharded(comm);
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut state = self.optimiser.sgd.state();
        state.extend(self.optimiser.adam.iter().flat_map(LazyAdam::state));
        state
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        if let Some(adam) = &mut self.optimiser.adam {
            adam.load_state(state)?;
        }
        self.optimiser.sgd.load_state(state)
    }
}
