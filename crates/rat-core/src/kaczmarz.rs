//! Block Kaczmarz across minibatches: how RAT carries information from one minibatch's
//! sample-space solve to the next.
//!
//! Over a rollout of N samples the regularised natural gradient is x* = Jᵀ R ψ* / N with
//! (K_N R + λI) ψ* = a, K_N = J Jᵀ / N (N x N, too large to form). Two modes:
//!
//! * [`ExactKaczmarz`] — textbook randomized block Kaczmarz (block Gauss–Seidel with exact block
//!   solves) on that system. For a block S it solves (K_SS R_S + λI) Δψ_S = a_S − J_S x − λψ_S with
//!   K_SS = J_S J_Sᵀ / N, then ψ_S += Δψ_S and x += J_Sᵀ R_S Δψ_S / N. The residual needs only
//!   J_S x, never K_N. On a fixed system it converges to the full-batch x*.
//! * [`ReferenceKaczmarz`] — exactly what the published code does: each block is solved as if it
//!   were the whole batch, ψ_S = (J_S J_Sᵀ R_S / B + λI)⁻¹ (a_S − J_S g), where g is the SGD
//!   momentum buffer (momentum 1e-6, so ≈ the previous minibatch's clipped *loss* gradient).
//!   Since g ≈ −x_prev, this adds the previous step's predicted log-likelihood gain to the
//!   advantage; in an idealised fixed-block setting its fixed point is g_R/λ, not x* (see
//!   ALGORITHMS.md 2.4). The buffer persists across rollouts. This is the default, because it is
//!   what the published results were produced with.

use candle_core::{DType, Device, Shape, Tensor};

use crate::error::{Result, arg_err, shape_err};
use crate::jacobian::{ScoreJacobian, check_sample_vector};
use crate::params;
use crate::woodbury;

/// The momentum of the reference's SGD: tiny, so that the buffer is ≈ the last clipped gradient.
pub const REFERENCE_MOMENTUM: f64 = 1e-6;

/// Which Kaczmarz variant to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KaczmarzMode {
    /// The published behaviour ([`ReferenceKaczmarz`]).
    #[default]
    Reference,
    /// Textbook randomized block Kaczmarz ([`ExactKaczmarz`]).
    Exact,
}

/// The result of one block: the transformed advantages of the block and a direction.
#[derive(Debug, Clone)]
pub struct BlockStep {
    /// ψ_S (b), or (b, k) for k right-hand sides in reference mode.
    pub psi: Tensor,
    /// Reference: this block's natural-gradient estimate Jᵀ(r ⊙ ψ)/b (first column of ψ).
    /// Exact: the accumulated primal iterate x. Both are ascent directions.
    pub direction: Vec<Tensor>,
}

/// The reference's Kaczmarz state: the SGD momentum buffer, which doubles as the Kaczmarz vector.
#[derive(Debug, Clone)]
pub struct ReferenceKaczmarz {
    damping: f64,
    momentum: f64,
    buffer: Option<Vec<Tensor>>,
}

impl ReferenceKaczmarz {
    /// A fresh state (no buffer yet) with damping λ and momentum [`REFERENCE_MOMENTUM`].
    pub fn new(damping: f64) -> Result<Self> {
        Self::with_momentum(damping, REFERENCE_MOMENTUM)
    }

    /// A fresh state with an explicit SGD momentum.
    pub fn with_momentum(damping: f64, momentum: f64) -> Result<Self> {
        check_damping("ReferenceKaczmarz::new", damping)?;
        if !(momentum.is_finite() && momentum >= 0.0) {
            return arg_err(
                "ReferenceKaczmarz::new",
                format!("momentum must be finite and ≥ 0, got {momentum}"),
            );
        }
        Ok(Self {
            damping,
            momentum,
            buffer: None,
        })
    }

    /// The momentum buffer g (the SGD step direction of the last step), if a step was taken.
    pub fn buffer(&self) -> Option<&[Tensor]> {
        self.buffer.as_deref()
    }

    /// a − J g, the corrected right-hand side (a unchanged before the first step). `a` is (b) or
    /// (b, k); the same correction goes into every column.
    pub fn correct(&self, jac: &dyn ScoreJacobian, a: &Tensor) -> Result<Tensor> {
        reference_correction(jac, self.buffer(), a)
    }

    /// ψ = (K R / b + λI)⁻¹ (a − J g) and the direction Jᵀ(r ⊙ ψ)/b.
    pub fn block_step(
        &self,
        jac: &dyn ScoreJacobian,
        ratio: &Tensor,
        a: &Tensor,
    ) -> Result<BlockStep> {
        let rhs = self.correct(jac, a)?;
        let psi = woodbury::transform_advantages(&jac.kernel()?, ratio, &rhs, self.damping)?;
        let first = if psi.rank() == 1 {
            psi.clone()
        } else {
            psi.narrow(1, 0, 1)?.squeeze(1)?
        };
        let direction = woodbury::natural_gradient(jac, ratio, &first)?;
        Ok(BlockStep { psi, direction })
    }

    /// The SGD momentum update with the clipped loss gradient ĝ: buf ← ĝ on the first step,
    /// buf ← μ·buf + ĝ afterwards. Returns buf; the optimiser then sets θ ← θ − lr·buf.
    pub fn momentum_step(&mut self, clipped_loss_grad: &[Tensor]) -> Result<&[Tensor]> {
        let next = match &self.buffer {
            None => clipped_loss_grad.to_vec(),
            Some(buf) => {
                let shapes: Vec<Shape> = buf.iter().map(|t| t.shape().clone()).collect();
                params::check_shapes(
                    "ReferenceKaczmarz::momentum_step",
                    &shapes,
                    clipped_loss_grad,
                )?;
                params::axpy(self.momentum, buf, clipped_loss_grad)?
            }
        };
        Ok(self.buffer.insert(next))
    }

    /// Replaces the buffer (e.g. when resuming from a checkpoint).
    pub fn set_buffer(&mut self, buffer: Option<Vec<Tensor>>) {
        self.buffer = buffer;
    }
}

/// The reference's Kaczmarz right-hand side a − J g for a momentum buffer g (a unchanged when
/// there is none yet, before the first step). `a` is (b) or (b, k); the same correction goes into
/// every column. An optimiser that owns its buffer (rat-train's `Sgd`) calls this directly.
pub fn reference_correction(
    jac: &dyn ScoreJacobian,
    buffer: Option<&[Tensor]>,
    a: &Tensor,
) -> Result<Tensor> {
    let Some(g) = buffer else {
        return Ok(a.clone());
    };
    let c = jac.jvp(g)?;
    Ok(if a.rank() == 1 {
        a.sub(&c)?
    } else {
        a.broadcast_sub(&c.unsqueeze(1)?)?
    })
}

/// Textbook randomized block Kaczmarz on the N-sample regularised system.
#[derive(Debug, Clone)]
pub struct ExactKaczmarz {
    n: usize,
    damping: f64,
    psi: Tensor,
    x: Vec<Tensor>,
}

impl ExactKaczmarz {
    /// A zero iterate (ψ = 0, x = 0) for a rollout of `n_total` samples.
    pub fn new(
        n_total: usize,
        param_shapes: &[Shape],
        damping: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        check_damping("ExactKaczmarz::new", damping)?;
        if n_total == 0 || param_shapes.is_empty() {
            return arg_err(
                "ExactKaczmarz::new",
                "need at least one sample and one parameter",
            );
        }
        Ok(Self {
            n: n_total,
            damping,
            psi: Tensor::zeros(n_total, dtype, device)?,
            x: params::zeros(param_shapes, dtype, device)?,
        })
    }

    /// The primal iterate x = Jᵀ R ψ / N (→ x* = (F_R + λI)⁻¹ g_R).
    pub fn primal(&self) -> &[Tensor] {
        &self.x
    }

    /// The dual iterate ψ (N).
    pub fn dual(&self) -> &Tensor {
        &self.psi
    }

    /// Zeroes ψ and x, for a new rollout.
    pub fn reset(&mut self) -> Result<()> {
        self.psi = self.psi.zeros_like()?;
        self.x = self
            .x
            .iter()
            .map(|t| t.zeros_like())
            .collect::<candle_core::Result<_>>()?;
        Ok(())
    }

    /// One exact block update for the samples `block` (indices into the rollout) whose score
    /// rows are `jac`, with ratios r_S and advantages a_S of the block.
    pub fn block_step(
        &mut self,
        jac: &dyn ScoreJacobian,
        block: &[usize],
        ratio: &Tensor,
        a: &Tensor,
    ) -> Result<BlockStep> {
        const OP: &str = "ExactKaczmarz::block_step";
        let b = jac.num_samples();
        if block.len() != b {
            return shape_err(
                OP,
                format!("{} block indices for {b} score rows", block.len()),
            );
        }
        if let Some(&i) = block.iter().find(|&&i| i >= self.n) {
            return shape_err(
                OP,
                format!("block index {i} outside the rollout of {}", self.n),
            );
        }
        check_sample_vector(OP, a, b)?;
        let idx = Tensor::from_vec(
            block.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            b,
            self.psi.device(),
        )?;
        let psi_s = self.psi.index_select(&idx, 0)?;
        let residual = a
            .sub(&jac.jvp(&self.x)?)?
            .sub(&psi_s.affine(self.damping, 0.0)?)?;
        let inv_n = 1.0 / self.n as f64;
        let delta =
            woodbury::solve_regularised(&jac.kernel()?, inv_n, ratio, &residual, self.damping)?;
        self.psi = self.psi.index_add(&idx, &delta, 0)?;
        let dx = jac.vjp(&ratio.mul(&delta)?.affine(inv_n, 0.0)?)?;
        self.x = params::axpy(1.0, &dx, &self.x)?;
        Ok(BlockStep {
            psi: psi_s.add(&delta)?,
            direction: self.x.clone(),
        })
    }
}

/// Either mode behind one interface, for loops that select it from a config.
#[derive(Debug, Clone)]
pub enum Kaczmarz {
    /// See [`ReferenceKaczmarz`].
    Reference(ReferenceKaczmarz),
    /// See [`ExactKaczmarz`].
    Exact(ExactKaczmarz),
}

impl Kaczmarz {
    /// One block: `block` (indices into the rollout) is used by the exact mode only.
    pub fn block_step(
        &mut self,
        jac: &dyn ScoreJacobian,
        block: &[usize],
        ratio: &Tensor,
        a: &Tensor,
    ) -> Result<BlockStep> {
        match self {
            Self::Reference(k) => k.block_step(jac, ratio, a),
            Self::Exact(k) => k.block_step(jac, block, ratio, a),
        }
    }

    /// The mode.
    pub fn mode(&self) -> KaczmarzMode {
        match self {
            Self::Reference(_) => KaczmarzMode::Reference,
            Self::Exact(_) => KaczmarzMode::Exact,
        }
    }
}

/// An error naming `op` unless the damping λ is positive and finite.
pub fn check_damping(op: &'static str, damping: f64) -> Result<()> {
    if damping.is_finite() && damping > 0.0 {
        Ok(())
    } else {
        arg_err(
            op,
            format!("damping must be positive and finite, got {damping}"),
        )
    }
}
