//! The score Jacobian J (b x P), rows ∇θ ℓ_i, and the four products of it that every
//! natural-gradient method needs.
//!
//! | method | needs |
//! |---|---|
//! | RAT (Woodbury) | [`kernel`](ScoreJacobian::kernel) J Jᵀ, [`jvp`](ScoreJacobian::jvp) J v, [`vjp`](ScoreJacobian::vjp) Jᵀ w |
//! | empirical-Fisher FVP + CG | J v and Jᵀ w |
//! | diagonal Fisher | [`sq_col_sums`](ScoreJacobian::sq_col_sums) diag(Jᵀ J) |
//!
//! [`FactoredJacobian`] computes them from the layer inputs and output gradients recorded in one
//! forward and one backward pass, never forming J; [`MaterialisedJacobian`] holds J explicitly and
//! is the reference the factored one is tested against.

mod blocks;
mod factored;
mod host;
mod materialised;

use candle_core::{DType, Device, Shape, Tensor};

pub use blocks::ConvKernelMode;
pub use factored::FactoredJacobian;
pub use materialised::MaterialisedJacobian;

use crate::error::Result;

/// The per-sample score matrix J (b x P) through its products.
///
/// Parameter-space vectors are `[Tensor]`s shaped like the parameters, in the order of
/// [`param_shapes`](ScoreJacobian::param_shapes) (see [`crate::params`]).
pub trait ScoreJacobian {
    /// b, the number of rows (samples).
    fn num_samples(&self) -> usize;

    /// The shapes of the parameter blocks, in J's column order.
    fn param_shapes(&self) -> Vec<Shape>;

    /// The dtype of the products.
    fn dtype(&self) -> DType;

    /// The device of the products.
    fn device(&self) -> &Device;

    /// P, the number of columns.
    fn num_params(&self) -> usize {
        self.param_shapes().iter().map(|s| s.elem_count()).sum()
    }

    /// The sample-space kernel K = J Jᵀ (b x b), K_ij = ∇ℓ_i · ∇ℓ_j (not divided by b).
    fn kernel(&self) -> Result<Tensor>;

    /// J v (b): the directional derivative of each ℓ_i along the parameter-space vector v.
    fn jvp(&self, v: &[Tensor]) -> Result<Tensor>;

    /// Jᵀ w = Σ_i w_i ∇ℓ_i for a sample-space vector w (b), shaped like the parameters.
    fn vjp(&self, w: &Tensor) -> Result<Vec<Tensor>>;

    /// diag(Jᵀ J) = Σ_i (∇ℓ_i)², elementwise, shaped like the parameters.
    fn sq_col_sums(&self) -> Result<Vec<Tensor>>;
}

pub(crate) fn check_sample_vector(op: &'static str, w: &Tensor, b: usize) -> Result<()> {
    if w.dims() != [b] {
        return crate::error::shape_err(
            op,
            format!("expected a vector of {b} samples, got {:?}", w.shape()),
        );
    }
    Ok(())
}
